// The `/node/*` endpoints (CCF's node frontend): state, network and nodes, version, readiness,
// quotes (virtual attestation), metrics. All without authentication, as in CCF.

import { getHeapStatistics } from "node:v8";
import { HttpErrors } from "../errors.js";
import { decodeRuntimeOptions } from "../js/index.js";
import {
  decodeStoredValue,
  decodeValue,
  keyFromString,
  SINGLETON_KEY,
  type Store,
  Tables,
} from "../kv/index.js";
import type { NodeContext, Quote } from "./context.js";
import { PROMETHEUS_CONTENT_TYPE, prometheusText } from "./prometheus.js";
import { TX_ID_HEADER, txIdString } from "./txid.js";
import type { Endpoint, EndpointResponse } from "./types.js";

interface RpcInterfaceInfo {
  bind_address?: string;
  published_address?: string;
  [k: string]: unknown;
}

interface NodeInfoValue {
  status: string;
  rpc_interfaces?: Record<string, RpcInterfaceInfo>;
  node_data?: unknown;
  retired_committed?: boolean;
}

export interface NodeDescription {
  node_id: string;
  status: string;
  primary: boolean;
  rpc_interfaces: Record<string, { bind_address: string; published_address: string }>;
  node_data: unknown;
  last_written: number;
}

function describeNodes(ctx: NodeContext): NodeDescription[] {
  const out: NodeDescription[] = [];
  const primary = ctx.primaryId();
  for (const { id, info, version } of nodeEntries(ctx.store)) {
    const rpc: NodeDescription["rpc_interfaces"] = {};
    for (const [name, i] of Object.entries(info.rpc_interfaces ?? {})) {
      const bind = i.bind_address ?? "";
      rpc[name] = { bind_address: bind, published_address: i.published_address ?? bind };
    }
    out.push({
      node_id: id,
      status: info.status,
      primary: id === primary,
      rpc_interfaces: rpc,
      node_data: info.node_data ?? null,
      last_written: version,
    });
  }
  return out;
}

/**
 * The nodes.info entries (removed nodes left out) by id order: each node's id, its record decoded
 * (typed as the caller reads it) and the version that wrote it.
 */
export function nodeEntries<T = NodeInfoValue>(
  store: Store,
): Array<{ id: string; info: T; version: number }> {
  const out: Array<{ id: string; info: T; version: number }> = [];
  const state = store.mapState(Tables.NODES);
  if (state === undefined) return out;
  for (const key of state.sortedKeys()) {
    const entry = state.entries.get(key);
    if (entry === undefined || entry.value === null) continue;
    out.push({
      id: keyFromString(key).toString("utf8"),
      info: decodeStoredValue(Tables.NODES, entry.value) as T,
      version: entry.version,
    });
  }
  return out;
}

/** Nodes.info entries as committed (the write is at or below `commitSeqno`), by id order. */
export function committedNodes(
  store: Store,
  commitSeqno: number,
): Array<{ id: string; info: NodeInfoValue; version: number }> {
  return nodeEntries(store).filter((n) => n.version <= commitSeqno);
}

/**
 * Ids of the nodes an operator may remove: Retired with `retired_committed`, as committed (what
 * any future primary also sees), as CCF's removable_nodes.
 */
export function removableNodeIds(store: Store, commitSeqno: number): Set<string> {
  return new Set(
    committedNodes(store, commitSeqno)
      .filter(({ info }) => info.status === "Retired" && info.retired_committed === true)
      .map(({ id }) => id),
  );
}

function json(ctx: NodeContext, body: unknown, status = 200): EndpointResponse {
  return { status, headers: { [TX_ID_HEADER]: txIdString(ctx.lastTxId()) }, body };
}

/** The stored bytes of a singleton table's one value, if set. */
function singletonRaw(ctx: NodeContext, table: string): Uint8Array | undefined {
  return ctx.store.get(table, SINGLETON_KEY.toString("latin1"));
}

/** A singleton table's one value, decoded as CCF encodes it; undefined if not set. */
function singleton(ctx: NodeContext, table: string): unknown {
  const raw = singletonRaw(ctx, table);
  return raw === undefined ? undefined : decodeValue(table, raw);
}

function serviceInfo(ctx: NodeContext): Record<string, unknown> | undefined {
  return singleton(ctx, Tables.SERVICE) as Record<string, unknown> | undefined;
}

/** Quotes recorded for the trusted nodes in `nodes.info` (virtual quotes carry their measurement). */
function trustedQuotes(ctx: NodeContext): Quote[] {
  const out: Quote[] = [];
  ctx.store
    .begin()
    .map(Tables.NODES)
    .forEach((value, key) => {
      const info = decodeValue(Tables.NODES, value) as NodeInfoValue & {
        quote_info?: { format: string; quote: string; endorsements?: string };
      };
      if (info.status !== "Trusted" || info.quote_info === undefined) return;
      let measurement = "";
      try {
        const q = JSON.parse(Buffer.from(info.quote_info.quote, "base64").toString()) as {
          measurement?: string;
        };
        measurement = q.measurement ?? "";
      } catch {
        // not a virtual quote: no measurement to show
      }
      out.push({
        node_id: Buffer.from(key).toString(),
        format: info.quote_info.format,
        raw: info.quote_info.quote,
        endorsements: info.quote_info.endorsements ?? "",
        measurement,
      });
    });
  return out;
}

/** The largest heap use `/node/memory` has seen (CCF reports the enclave allocator's peak). */
let peakHeap = 0;

function memoryUsage(): Record<string, number> {
  const stats = getHeapStatistics();
  peakHeap = Math.max(peakHeap, stats.used_heap_size);
  return {
    max_total_heap_size: stats.heap_size_limit,
    current_allocated_heap_size: stats.used_heap_size,
    peak_allocated_heap_size: peakHeap,
  };
}

/** CCF's JSRuntimeOptions as `/node/js_metrics` shows them (no bytecode cache in ccf-ts). */
function jsMetrics(ctx: NodeContext): Record<string, unknown> {
  const o = decodeRuntimeOptions(singletonRaw(ctx, Tables.JS_RUNTIME_OPTIONS));
  return {
    bytecode_size: 0,
    bytecode_used: false,
    max_heap_size: o.limits.maxHeapBytes,
    max_stack_size: o.limits.maxStackBytes,
    max_execution_time: o.limits.maxExecutionTimeMs,
    max_cached_interpreters: o.maxCachedInterpreters,
  };
}

/** The primary's published address: on its primary_rpc_interface, else its first interface. */
function primaryAddress(nodes: NodeDescription[], primary: string): string | undefined {
  const p = nodes.find((n) => n.node_id === primary);
  if (p === undefined) return undefined;
  const first = Object.values(p.rpc_interfaces)[0];
  return p.rpc_interfaces.primary_rpc_interface?.published_address ?? first?.published_address;
}

export function nodeEndpoints(ctx: NodeContext): Endpoint[] {
  const findNode = (id: string): NodeDescription => {
    const node = describeNodes(ctx).find((n) => n.node_id === id);
    if (node === undefined) throw HttpErrors.ResourceNotFound(`Node ${id} not found`);
    return node;
  };
  return [
    {
      method: "GET",
      path: "/node/state",
      openapi: { summary: "This node's state" },
      handler: () => ({
        status: 200,
        body: {
          node_id: ctx.nodeId,
          state: ctx.state(),
          last_signed_seqno: ctx.lastSignedSeqno(),
          startup_seqno: ctx.startupSeqno(),
          stop_notice: false,
        },
      }),
    },
    {
      method: "GET",
      path: "/node/network",
      openapi: { summary: "Network information" },
      handler: () => {
        const info = serviceInfo(ctx);
        if (info === undefined) throw HttpErrors.ResourceNotFound("Service info not found");
        return json(ctx, {
          service_status: info.status,
          service_certificate: info.cert,
          current_view: ctx.currentView(),
          primary_id: ctx.primaryId() ?? null,
          recovery_count: info.recovery_count ?? 0,
          service_data: info.service_data ?? null,
          current_service_create_txid: info.current_service_create_txid ?? null,
        });
      },
    },
    {
      method: "GET",
      path: "/node/network/nodes",
      openapi: { summary: "Nodes of the network, optionally by published host and port" },
      handler: (req) => {
        const q = new URLSearchParams(req.query);
        const host = q.get("host");
        const port = q.get("port");
        const nodes = describeNodes(ctx).filter((n) =>
          Object.values(n.rpc_interfaces).some((i) => {
            const at = i.published_address.lastIndexOf(":");
            const h = i.published_address.slice(0, at);
            const p = i.published_address.slice(at + 1);
            return (host === null || host === h) && (port === null || port === p);
          }),
        );
        return json(ctx, { nodes });
      },
    },
    {
      method: "GET",
      path: "/node/network/removable_nodes",
      openapi: { summary: "Retired nodes whose retirement has committed: safe to stop and delete" },
      handler: () => {
        const removable = removableNodeIds(ctx.store, ctx.commitTxId().seqno);
        const nodes = describeNodes(ctx)
          .filter((n) => removable.has(n.node_id))
          .map((n) => ({ ...n, primary: false }));
        return json(ctx, { nodes });
      },
    },
    {
      method: "GET",
      path: "/node/network/nodes/self",
      openapi: { summary: "This node" },
      handler: () => json(ctx, findNode(ctx.nodeId)),
    },
    {
      method: "GET",
      path: "/node/network/nodes/primary",
      openapi: { summary: "The primary node" },
      handler: () => {
        const primary = ctx.primaryId();
        if (primary === undefined) throw HttpErrors.ResourceNotFound("Primary unknown");
        return json(ctx, findNode(primary));
      },
    },
    {
      method: "GET",
      path: "/node/network/nodes/{node_id}",
      openapi: { summary: "One node" },
      handler: (req) => json(ctx, findNode(req.params.node_id ?? "")),
    },
    {
      method: "GET",
      path: "/node/primary",
      openapi: { summary: "200 if this node is the primary, else 404" },
      handler: () => {
        if (ctx.primaryId() === ctx.nodeId) return { status: 200 };
        throw HttpErrors.ResourceNotFound("Node is not primary");
      },
    },
    {
      method: "GET",
      path: "/node/backup",
      openapi: { summary: "200 if this node is a backup, else 404" },
      handler: () => {
        const primary = ctx.primaryId();
        if (primary !== undefined && primary !== ctx.nodeId) return { status: 200 };
        throw HttpErrors.ResourceNotFound("Node is not backup");
      },
    },
    {
      method: "GET",
      path: "/node/version",
      openapi: { summary: "Software version" },
      handler: () => ({ status: 200, body: ctx.version }),
    },
    {
      method: "GET",
      path: "/node/ready/app",
      openapi: { summary: "204 when the application frontend is ready" },
      handler: () => ({ status: ctx.isReady("app") ? 204 : 503 }),
    },
    {
      method: "GET",
      path: "/node/ready/gov",
      openapi: { summary: "204 when the governance frontend is ready" },
      handler: () => ({ status: ctx.isReady("gov") ? 204 : 503 }),
    },
    {
      method: "GET",
      path: "/node/quotes/self",
      openapi: { summary: "This node's attestation (virtual: insecure)" },
      handler: () => json(ctx, ctx.quote()),
    },
    {
      method: "GET",
      path: "/node/quotes",
      openapi: { summary: "Attestations of the trusted nodes" },
      handler: () => json(ctx, { quotes: trustedQuotes(ctx) }),
    },
    {
      method: "GET",
      path: "/node/attestations/self",
      openapi: { summary: "This node's attestation (virtual: insecure)" },
      handler: () => json(ctx, ctx.quote()),
    },
    {
      method: "GET",
      path: "/node/attestations",
      openapi: { summary: "Attestations of the trusted nodes" },
      handler: () => json(ctx, { attestations: trustedQuotes(ctx) }),
    },
    {
      method: "GET",
      path: "/node/self_signed_certificate",
      openapi: { summary: "This node's self-signed certificate" },
      handler: () => {
        const pem = ctx.selfSignedCertificate?.();
        if (pem === undefined) throw HttpErrors.ResourceNotFound("No self-signed certificate");
        return json(ctx, { self_signed_certificate: pem });
      },
    },
    {
      method: "GET",
      path: "/node/service/previous_identity",
      openapi: { summary: "The identity of the service this one recovered, if any" },
      handler: () => {
        const pem = singleton(ctx, Tables.PREVIOUS_SERVICE_IDENTITY);
        if (pem === undefined) {
          throw HttpErrors.ResourceNotFound(
            "This service is not a recovery of a previous service.",
          );
        }
        return json(ctx, { previous_service_identity: pem });
      },
    },
    {
      method: "GET",
      path: "/node/service/configuration",
      openapi: { summary: "The service configuration (public:ccf.gov.service.config)" },
      handler: () => {
        const config = singleton(ctx, Tables.CONFIGURATION);
        if (config === undefined)
          throw HttpErrors.ResourceNotFound("Service configuration not set");
        return json(ctx, config);
      },
    },
    {
      method: "GET",
      path: "/node/config",
      openapi: { summary: "The configuration this node started with" },
      handler: () => {
        const config = ctx.startupConfig?.();
        if (config === undefined) throw HttpErrors.ResourceNotFound("No startup configuration");
        return json(ctx, config);
      },
    },
    {
      method: "GET",
      path: "/node/memory",
      openapi: { summary: "JavaScript heap of the node's process (CCF: enclave heap)" },
      handler: () => json(ctx, memoryUsage()),
    },
    {
      method: "GET",
      path: "/node/js_metrics",
      openapi: { summary: "The JavaScript runtime's limits" },
      handler: () => json(ctx, jsMetrics(ctx)),
    },
    {
      method: "GET",
      path: "/node/index/strategies",
      openapi: { summary: "Indexing strategies installed (none in ccf-ts)" },
      handler: () => json(ctx, []),
    },
    {
      method: "HEAD",
      path: "/node/primary",
      openapi: { summary: "200 if this node is the primary, else 308 to the primary, or 404" },
      handler: () => {
        const primary = ctx.primaryId();
        if (primary === ctx.nodeId) return { status: 200 };
        const address =
          primary === undefined ? undefined : primaryAddress(describeNodes(ctx), primary);
        if (address === undefined) throw HttpErrors.ResourceNotFound("Primary unknown");
        return { status: 308, headers: { location: `https://${address}/node/primary` } };
      },
    },
    {
      method: "GET",
      path: "/node/metrics",
      openapi: { summary: "Session metrics" },
      handler: () => ({ status: 200, body: { sessions: ctx.sessionMetrics() } }),
    },
    {
      method: "GET",
      path: "/node/metrics/prometheus",
      openapi: { summary: "Node metrics in Prometheus text format (beyond CCF)" },
      handler: () => ({
        status: 200,
        headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
        body: prometheusText(ctx),
      }),
    },
  ];
}
