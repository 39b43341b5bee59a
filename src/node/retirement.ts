// The end of a node's retirement, as CCF runs it. Governance's `remove_node` marks the node
// Retired in `public:ccf.gov.nodes.info`: that transaction starts a configuration without it
// (consensus runs the joint configuration). Once it commits, the primary records
// `retired_committed: true`; from then on the node is listed by `GET
// /node/network/removable_nodes`, and an operator may delete its records with `DELETE
// /node/network/nodes/{node_id}` once it is shut down.

import {
  type Endpoint,
  type EndpointResponse,
  nodeEntries,
  removableNodeIds,
} from "../endpoints/index.js";
import { HttpErrors } from "../errors.js";
import {
  decodeStoredValue,
  decodeValue,
  encodeValue,
  type Store,
  Tables,
  type Tx,
} from "../kv/index.js";

interface NodeInfo {
  status?: string;
  retired_committed?: boolean;
}

/** A nodes.info entry that says Retired without `retired_committed`, and the version that wrote it. */
export interface RetirementCandidate {
  id: string;
  version: number;
}

/**
 * The nodes.info entries that say Retired without `retired_committed`, each with the version that
 * wrote it. It does not depend on the commit point, so the primary keeps it until nodes.info
 * changes (MapState.generation) and only filters it as the commit point moves (`retirementsIn`).
 */
export function retirementCandidates(store: Store): RetirementCandidate[] {
  return nodeEntries<NodeInfo>(store)
    .filter(({ info }) => info.status === "Retired" && info.retired_committed !== true)
    .map(({ id, version }) => ({ id, version }));
}

/**
 * Nodes whose retirement has committed but is not yet recorded as such (the candidates whose entry
 * is committed at `commitSeqno`): the primary writes `retired_committed` for them.
 */
export function retirementsIn(
  candidates: readonly RetirementCandidate[],
  commitSeqno: number,
): string[] {
  return candidates.filter((c) => c.version <= commitSeqno).map((c) => c.id);
}

/** Records `retired_committed: true` for the nodes that are (still) Retired. */
export function recordRetirements(tx: Tx, ids: readonly string[]): void {
  const nodes = tx.map(Tables.NODES);
  for (const id of ids) {
    const key = Buffer.from(id, "utf8");
    const raw = nodes.get(key);
    if (raw === undefined) continue;
    const info = decodeValue(Tables.NODES, raw) as NodeInfo & Record<string, unknown>;
    if (info.status !== "Retired" || info.retired_committed === true) continue;
    info.retired_committed = true;
    nodes.set(key, encodeValue(Tables.NODES, info));
  }
}

/**
 * CCF's retirement phase of this node for `/node/consensus`: null while active; Ordered once the
 * retiring transaction committed; Completed once consensus left it out; RetiredCommitted once
 * that is recorded.
 */
export function retirementPhase(
  store: Store,
  commitSeqno: number,
  nodeId: string,
  consensusRetired: boolean,
): string | null {
  const entry = store
    .mapState(Tables.NODES)
    ?.entries.get(Buffer.from(nodeId, "utf8").toString("latin1"));
  if (entry === undefined || entry.value === null) return null;
  const info = decodeStoredValue(Tables.NODES, entry.value) as NodeInfo;
  if (info.status !== "Retired") return null;
  if (info.retired_committed === true && entry.version <= commitSeqno) return "RetiredCommitted";
  if (consensusRetired) return "Completed";
  return entry.version <= commitSeqno ? "Ordered" : "Started";
}

/**
 * `DELETE /node/network/nodes/{node_id}`: removes a completely retired node's records (its
 * nodes.info entry and endorsed certificate), as CCF: 404 for an unknown node, 400
 * NodeNotRetiredCommitted otherwise.
 */
export function deleteRetiredNodeEndpoint(deps: {
  store: Store;
  commitSeqno(): number;
  write(fn: (tx: Tx) => EndpointResponse): Promise<EndpointResponse>;
}): Endpoint {
  return {
    method: "DELETE",
    path: "/node/network/nodes/{node_id}",
    forwarding: "always",
    redirection: "to_primary",
    openapi: { summary: "Remove the records of a completely retired node" },
    handler: async (req) => {
      const id = req.params.node_id ?? "";
      return await deps.write((tx) => {
        const key = Buffer.from(id, "utf8");
        if (!tx.map(Tables.NODES).has(key)) throw HttpErrors.ResourceNotFound("No such node");
        if (!removableNodeIds(deps.store, deps.commitSeqno()).has(id)) {
          throw HttpErrors.NodeNotRetiredCommitted("Node is not completely retired");
        }
        tx.map(Tables.NODES).delete(key);
        tx.map(Tables.NODE_ENDORSED_CERTIFICATES).delete(key);
        return { status: 200, body: true };
      });
    },
  };
}
