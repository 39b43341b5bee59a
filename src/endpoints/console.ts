// The web console (beyond CCF): the static page every node serves at `/node/console`, and the two
// read-only endpoints it needs that CCF has no equivalent for. The page only calls public endpoints
// from the browser, so it shows nothing an auditor could not see (docs/console.md).
//
// - GET /node/console: `index.html`; GET /node/console/{file}: one of a fixed list of assets. The
//   files are read from `consoleDir` at their first request and kept; nothing else is served from
//   there (the name is looked up in the list, never joined to a path as sent).
// - GET /node/ledger/chunks: names, seqno range, size and committed flag of the chunk files in this
//   node's ledger directory (metadata only, never their content).
// - GET /node/network/consensus: each node's own view, commit and leadership as it reports them on
//   its public `/node/consensus` and `/node/commit` (this node asks its peers over TLS, trusting
//   the service certificate), since a browser may not read other origins.

import * as fs from "node:fs";
import { join } from "node:path";
import { Agent, request } from "undici";
import { HttpErrors } from "../errors.js";
import { decodeValue, SINGLETON_KEY, Tables } from "../kv/index.js";
import { parseChunkName } from "../ledger/index.js";
import type { NodeContext } from "./context.js";
import { committedNodes } from "./node.js";
import { txIdString } from "./txid.js";
import type { Endpoint, EndpointResponse } from "./types.js";

/** The files of the console, by the name they are served under, with their content types. */
const CONSOLE_FILES: Readonly<Record<string, string>> = {
  "index.html": "text/html; charset=utf-8",
  "console.js": "text/javascript; charset=utf-8",
  "console.css": "text/css; charset=utf-8",
};

// The page loads only its own script and style and calls only its own origin.
const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** How long a peer has to answer, and how long one round of answers is reused. */
const PEER_TIMEOUT_MS = 1500;
const PEER_CACHE_MS = 1000;
/** At most this many nodes are asked per round (a service has a handful). */
const MAX_PEERS = 32;

export interface ConsoleEndpointDeps {
  /** The folder holding the console's files (`console/` of the package). */
  consoleDir: string;
  /** `ledger.directory` of this node. */
  ledgerDir: string;
}

export interface LedgerChunkDescription {
  name: string;
  start_seqno: number;
  /** Null while the chunk is open (still being written). */
  end_seqno: number | null;
  committed: boolean;
  size: number;
}

export interface NodeConsensusReport {
  node_id: string;
  address: string | null;
  /** Whether the node answered; when false, `error` says why. */
  reachable: boolean;
  current_view?: number;
  commit?: string;
  leadership_state?: string;
  primary_id?: string | null;
  error?: string;
}

function staticFiles(dir: string): (name: string) => Promise<EndpointResponse> {
  const cache = new Map<string, Buffer>();
  return async (name) => {
    const contentType = Object.hasOwn(CONSOLE_FILES, name) ? CONSOLE_FILES[name] : undefined;
    if (contentType === undefined) {
      throw HttpErrors.ResourceNotFound(
        `The console has no file named ${JSON.stringify(name.slice(0, 100))}; its files are ${Object.keys(CONSOLE_FILES).join(", ")}`,
      );
    }
    let body = cache.get(name);
    if (body === undefined) {
      try {
        body = await fs.promises.readFile(join(dir, name));
      } catch {
        throw HttpErrors.ResourceNotFound(
          `The console's file ${name} is not installed on this node`,
        );
      }
      cache.set(name, body);
    }
    return {
      status: 200,
      headers: {
        "content-type": contentType,
        "cache-control": "no-cache",
        "x-content-type-options": "nosniff",
        "content-security-policy": CONTENT_SECURITY_POLICY,
      },
      body,
    };
  };
}

/** The chunk files of `dir` in seqno order; anything that is not a chunk is left out. */
async function ledgerChunks(dir: string): Promise<LedgerChunkDescription[]> {
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch {
    throw HttpErrors.ResourceNotFound("This node's ledger directory cannot be read");
  }
  const out: LedgerChunkDescription[] = [];
  for (const name of names) {
    const parsed = parseChunkName(name);
    if (parsed === undefined || parsed.ignored) continue;
    let size: number;
    try {
      const st = await fs.promises.stat(join(dir, name));
      if (!st.isFile()) continue;
      size = st.size;
    } catch {
      continue; // renamed (completed or committed) since the listing: the next refresh shows it
    }
    out.push({
      name,
      start_seqno: parsed.start,
      end_seqno: parsed.end ?? null,
      committed: parsed.committed,
      size,
    });
  }
  return out.sort((a, b) => a.start_seqno - b.start_seqno || a.name.localeCompare(b.name));
}

function serviceCertificate(ctx: NodeContext): string | undefined {
  const raw = ctx.store.get(Tables.SERVICE, SINGLETON_KEY.toString("latin1"));
  if (raw === undefined) return undefined;
  const cert = (decodeValue(Tables.SERVICE, raw) as { cert?: unknown }).cert;
  return typeof cert === "string" ? cert : undefined;
}

async function getJson(agent: Agent, url: string): Promise<Record<string, unknown>> {
  const res = await request(url, {
    dispatcher: agent,
    signal: AbortSignal.timeout(PEER_TIMEOUT_MS),
  });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${url} answered ${res.statusCode}`);
  return JSON.parse(text) as Record<string, unknown>;
}

/** What one peer says of itself on its public endpoints. */
async function askPeer(agent: Agent, id: string, address: string): Promise<NodeConsensusReport> {
  const report: NodeConsensusReport = { node_id: id, address, reachable: false };
  try {
    const [consensus, commit] = await Promise.all([
      getJson(agent, `https://${address}/node/consensus`),
      getJson(agent, `https://${address}/node/commit`),
    ]);
    const details = (consensus.details ?? {}) as Record<string, unknown>;
    report.reachable = true;
    if (typeof details.current_view === "number") report.current_view = details.current_view;
    if (typeof details.leadership_state === "string") {
      report.leadership_state = details.leadership_state;
    }
    if (typeof details.primary_id === "string" || details.primary_id === null) {
      report.primary_id = details.primary_id;
    }
    if (typeof commit.transaction_id === "string") report.commit = commit.transaction_id;
  } catch (e) {
    report.error = e instanceof Error ? e.message : String(e);
  }
  return report;
}

async function consensusReports(ctx: NodeContext): Promise<NodeConsensusReport[]> {
  const nodes = committedNodes(ctx.store, Number.MAX_SAFE_INTEGER).slice(0, MAX_PEERS);
  const ca = serviceCertificate(ctx);
  const agent =
    ca === undefined
      ? undefined
      : new Agent({
          connect: { ca, timeout: PEER_TIMEOUT_MS },
          headersTimeout: PEER_TIMEOUT_MS,
          bodyTimeout: PEER_TIMEOUT_MS,
        });
  try {
    return await Promise.all(
      nodes.map(async ({ id, info }): Promise<NodeConsensusReport> => {
        const ifaces = info.rpc_interfaces ?? {};
        const iface = ifaces.primary_rpc_interface ?? Object.values(ifaces)[0];
        const address = iface?.published_address ?? iface?.bind_address ?? null;
        if (id === ctx.nodeId) {
          // This node answers from its own state (its published address may not route to itself).
          const primary = ctx.primaryId();
          return {
            node_id: id,
            address,
            reachable: true,
            current_view: ctx.currentView(),
            commit: txIdString(ctx.commitTxId()),
            leadership_state:
              primary === id ? "Leader" : primary === undefined ? "None" : "Follower",
            primary_id: primary ?? null,
          };
        }
        if (address === null) {
          return { node_id: id, address, reachable: false, error: "no published address" };
        }
        if (agent === undefined) {
          return { node_id: id, address, reachable: false, error: "no service certificate yet" };
        }
        return askPeer(agent, id, address);
      }),
    );
  } finally {
    await agent?.close();
  }
}

/** The console's files, and the ledger and consensus reads it needs beyond CCF's endpoints. */
export function consoleEndpoints(ctx: NodeContext, deps: ConsoleEndpointDeps): Endpoint[] {
  const serve = staticFiles(deps.consoleDir);
  let reports: { at: number; value: Promise<NodeConsensusReport[]> } | undefined;
  return [
    {
      method: "GET",
      path: "/node/console",
      openapi: { summary: "The web console: a read-only page of the service's state (beyond CCF)" },
      handler: () => serve("index.html"),
    },
    {
      method: "GET",
      path: "/node/console/{file}",
      openapi: { summary: "A file of the web console (beyond CCF)" },
      handler: (req) => serve(req.params.file ?? ""),
    },
    {
      method: "GET",
      path: "/node/ledger/chunks",
      openapi: {
        summary: "Chunk files of this node's ledger: names, seqnos, sizes, committed (beyond CCF)",
      },
      handler: async () => ({
        status: 200,
        body: { node_id: ctx.nodeId, chunks: await ledgerChunks(deps.ledgerDir) },
      }),
    },
    {
      method: "GET",
      path: "/node/network/consensus",
      openapi: {
        summary: "Each node's view, commit and leadership as that node reports them (beyond CCF)",
      },
      handler: async () => {
        const now = Date.now();
        if (reports === undefined || now - reports.at > PEER_CACHE_MS) {
          reports = { at: now, value: consensusReports(ctx) };
        }
        return { status: 200, body: { nodes: await reports.value } };
      },
    },
  ];
}
