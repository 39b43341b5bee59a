// The fault harness (`npm run chaos`): a real network of `ccf-ts node` processes, clients writing
// and reading through every node and recording what they were told, and a nemesis that kills and
// replaces nodes, pauses them, cuts and slows their links and damages their ledger files. At the
// end the history goes through the linearizability checker (src/check) and the harness counts
// anomalies: histories that are not linearizable, writes reported Committed that are lost, two
// writes committed at one TxID, committed writes out of real-time order, and a damaged node that
// served bad data or did not notice the damage.
//
// What "linearizable" means here (DESIGN.md, "Reads"): an answer is an outcome only once the TxID
// it carries reports Committed, and an operation takes effect at its TxID. So the history handed to
// the checker is placed on the TxID's seqno: a committed write at seqno s at time 2s, a committed
// read at seqno s at time 2s+1 (it saw the state after s). A write whose outcome is unknown (time
// out, connection lost, 5xx, TxID never settled) may have happened at any seqno after the commit
// point known when it was sent, or never. Real time is checked where CCF promises it: a write
// answered before another was sent commits before it. Reads on backups may be stale in real time
// (CCF's semantics, not an anomaly): the harness counts them for information.

import { type ChildProcess } from "node:child_process";
import {
  closeSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { Agent, request } from "undici";
import { checkHistory, type CheckReport, type Operation } from "../../src/check/linearizability.js";
import { GovClient } from "../../src/cli/gov-client.js";
import { constitutionFiles, DEFAULT_CONSTITUTION_DIR } from "../../src/gov/index.js";
import { Store } from "../../src/kv/index.js";
import {
  parseChunk,
  parseChunkName,
  parseSnapshotFileName,
  readLedger,
} from "../../src/ledger/index.js";
import { MerkleTree } from "../../src/merkle/index.js";
import { installLoadedSnapshot, loadSnapshot } from "../../src/node/snapshot-fetch.js";
import { makeMemberAndUser } from "../helpers/identities.js";
import { joinCommand, singleNodeConfig } from "../helpers/node-config.js";
import { startCcfTs, waitFor } from "../helpers/process.js";
import { Prng } from "../sim/prng.js";
import { LinkProxy, type LinkRules } from "./proxy.js";

const BUNDLE = join(import.meta.dirname, "../../samples/apps/logging/dist/bundle.json");

export const FAULT_KINDS = ["kill", "pause", "partition", "delay", "corrupt"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface ChaosOptions {
  seed: number;
  /** Nodes in the network (3 or 5 typically). */
  nodes: number;
  /** Concurrent clients. */
  clients: number;
  /** Keys the clients share (few keys: more contention, a harder history). */
  keys: number;
  /** How long clients run while the nemesis injects faults. */
  durationMs: number;
  faults: readonly FaultKind[];
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** Keep the working directory (default: removed when the run passes). */
  keepDir?: boolean;
}

export interface ChaosSummary {
  seed: number;
  faults: number;
  faultsByKind: Record<string, number>;
  operations: number;
  committed: number;
  failed: number;
  unknown: number;
  anomalies: number;
  anomalyDetails: string[];
  /** Liveness: the network did not recover within the deadline after a fault (a bug, not safety). */
  stalls: number;
  staleBackupReads: number;
  checker: CheckReport;
  dir: string;
  elapsedMs: number;
}

interface ChaosNode {
  name: string;
  dir: string;
  proc: ChildProcess & { output: () => string };
  base: string;
  id: string;
  proxy: LinkProxy;
  dead: boolean;
}

/** One operation as a client saw it (after `resolve`, `outcome` reflects the TxID's status). */
export interface HistoryRecord {
  client: number;
  kind: "put" | "get";
  key: string;
  value?: string;
  output?: string;
  invokeWall: number;
  completeWall?: number;
  /** The highest seqno known committed when the operation was sent. */
  floor: number;
  txid?: string;
  outcome: "ok" | "fail" | "unknown";
  node: string;
}

/** The parts of a TxID string "view.seqno". */
function parseTx(txid: string): { view: number; seqno: number } {
  const [v, s] = txid.split(".").map(Number);
  return { view: v, seqno: s };
}

/** A summary line as printed by `npm run chaos` (and put in README's Reliability section). */
export function formatSummary(s: ChaosSummary): string {
  const kinds = Object.entries(s.faultsByKind)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
  return [
    `seed: ${s.seed}`,
    `faults injected: ${s.faults} (${kinds})`,
    `operations: ${s.operations} (committed ${s.committed}, failed ${s.failed}, unknown ${s.unknown})`,
    `checker: ${s.checker.result}`,
    `stale reads on backups (allowed): ${s.staleBackupReads}`,
    `stalls: ${s.stalls}`,
    `anomalies: ${s.anomalies}`,
    ...s.anomalyDetails.map((d) => `  - ${d}`),
    `elapsed: ${(s.elapsedMs / 1000).toFixed(0)} s`,
  ].join("\n");
}

export async function runChaos(o: ChaosOptions): Promise<ChaosSummary> {
  const run = new ChaosRun(o);
  try {
    return await run.run();
  } finally {
    await run.stop();
  }
}

class ChaosRun {
  private readonly dir = mkdtempSync(join(tmpdir(), "ccf-ts-chaos-"));
  private readonly rng: Prng;
  private readonly nodes: ChaosNode[] = [];
  private readonly history: HistoryRecord[] = [];
  private readonly agents: Agent[] = [];
  private readonly spawned: ChildProcess[] = [];
  private readonly proxies: LinkProxy[] = [];
  private readonly anomalies: string[] = [];
  private readonly faultsByKind: Record<string, number> = {};
  private blocked = new Set<string>();
  private slowed = new Map<string, number>();
  private paused = new Set<string>();
  private commitFloor = 0;
  private stopClients = false;
  private stopPolling = false;
  private stalls = 0;
  private nextName = 0;
  private serviceCert = "";
  private gov: GovClient | undefined;
  private admin: Agent | undefined;
  private readonly start = Date.now();

  constructor(private readonly o: ChaosOptions) {
    this.rng = new Prng(o.seed);
  }

  private log(line: string): void {
    this.o.log?.(`[${((Date.now() - this.start) / 1000).toFixed(1)}s] ${line}`);
  }

  private live(): ChaosNode[] {
    return this.nodes.filter((n) => !n.dead);
  }

  private readonly rules: LinkRules = {
    blocked: (from, to) => this.blocked.has(`${from}>${to}`),
    delayMs: (from, to) => Math.max(this.slowed.get(from) ?? 0, this.slowed.get(to) ?? 0),
  };

  async run(): Promise<ChaosSummary> {
    await this.startNetwork();
    await this.populate();
    const poller = this.pollCommit();
    const clients = Array.from({ length: this.o.clients }, (_, c) => this.client(c));
    const faultsDone = this.nemesis();
    await faultsDone;
    this.stopClients = true;
    await Promise.all(clients);
    await this.heal();
    await this.converge();
    await this.finalReads();
    this.stopPolling = true;
    await poller;
    await this.resolve();
    // Kept for a second look (the directory stays when the run finds anything).
    writeFileSync(join(this.dir, "history.json"), JSON.stringify(this.history));
    return this.analyse();
  }

  async stop(): Promise<void> {
    this.stopClients = true;
    this.stopPolling = true;
    for (const p of this.spawned) {
      p.kill("SIGCONT");
      if (p.exitCode === null) p.kill("SIGKILL");
    }
    for (const p of this.proxies) await p.close();
    await this.gov?.close();
    for (const a of this.agents) await a.close().catch(() => undefined);
    if (!this.o.keepDir && this.anomalies.length === 0 && this.stalls === 0) {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  // ---- the network ----------------------------------------------------------------------------

  private userAgent(): Agent {
    const a = new Agent({
      connect: {
        ca: this.serviceCert,
        cert: readFileSync(join(this.dir, "user0_cert.pem"), "utf8"),
        key: readFileSync(join(this.dir, "user0_privk.pem"), "utf8"),
      },
      // A paused node must not hold a client for longer than this.
      connectTimeout: 3000,
    });
    this.agents.push(a);
    return a;
  }

  private nodeConfig(d: string, proxyPort: number): Record<string, unknown> {
    const config = singleNodeConfig(d, {
      signatures: { tx_count: 50, delay: "50ms" },
      ledger: { chunk_size: "32KB" },
    });
    // Frequent snapshots, so replacement nodes start from one (and their ledgers after it).
    config.snapshots = { directory: join(d, "snapshots"), tx_count: 200 };
    const network = config.network as { node_to_node_interface: Record<string, unknown> };
    network.node_to_node_interface.published_address = `127.0.0.1:${proxyPort}`;
    return { ...config, consensus: { message_timeout: "50ms", election_timeout: "1000ms" } };
  }

  private async launch(config: (d: string, proxyPort: number) => Record<string, unknown>) {
    const name = `n${this.nextName++}`;
    const d = join(this.dir, name);
    mkdirSync(d);
    const proxy = new LinkProxy(name, this.rules, () =>
      this.nodes
        .filter((n) => n.proc.pid !== undefined && n.proc.exitCode === null)
        .map((n) => ({ name: n.name, pid: n.proc.pid as number })),
    );
    this.proxies.push(proxy);
    const port = await proxy.listen();
    const file = join(d, "config.json");
    writeFileSync(file, JSON.stringify(config(d, port)));
    const proc = startCcfTs(["node", "--config", file], d);
    this.spawned.push(proc);
    const out = createWriteStream(join(d, "out"));
    proc.stdout?.pipe(out);
    proc.stderr?.pipe(out);
    // Generous deadlines: on a loaded 2-core machine a node can take a while to start.
    const rpc = await waitFor(
      `${name} to listen`,
      () => {
        if (proc.exitCode !== null) throw new Error(`${name} exited: ${proc.output()}`);
        const f = join(d, "rpc_addresses.json");
        return existsSync(f)
          ? (JSON.parse(readFileSync(f, "utf8")) as Record<string, string>)
          : undefined;
      },
      120_000,
    );
    const base = `https://${rpc.primary_rpc_interface}`;
    const n2n = await waitFor(`${name}'s node-to-node address`, () => {
      const f = join(d, "node_address.json");
      if (!existsSync(f)) return undefined;
      const addresses = JSON.parse(readFileSync(f, "utf8")) as Record<string, string>;
      return Object.values(addresses)[0];
    });
    proxy.setTarget(Number(n2n.slice(n2n.lastIndexOf(":") + 1)));
    const probe = new Agent({ connect: { rejectUnauthorized: false } });
    const id = await waitFor(`${name} to answer`, async () => {
      const r = await request(`${base}/node/state`, { dispatcher: probe });
      return ((await r.body.json()) as { node_id: string }).node_id;
    }).finally(() => probe.close());
    const node: ChaosNode = { name, dir: d, proc, base, id, proxy, dead: false };
    this.nodes.push(node);
    return node;
  }

  private async startNetwork(): Promise<void> {
    makeMemberAndUser(this.dir);
    const n0 = await this.launch((d, port) => {
      const config = this.nodeConfig(d, port);
      Object.assign((config.command as { start: Record<string, unknown> }).start, {
        members: [
          {
            certificate_file: join(this.dir, "member0_cert.pem"),
            encryption_public_key_file: join(this.dir, "member0_enc_pubk.pem"),
          },
        ],
        users: [{ certificate_file: join(this.dir, "user0_cert.pem") }],
        constitution_files: constitutionFiles(DEFAULT_CONSTITUTION_DIR),
        js_app_bundle: BUNDLE,
        open_service: true,
      });
      return config;
    });
    this.serviceCert = readFileSync(join(n0.dir, "service_cert.pem"), "utf8");
    this.admin = new Agent({ connect: { ca: this.serviceCert }, connectTimeout: 3000 });
    this.agents.push(this.admin);
    this.gov = new GovClient(n0.base, this.serviceCert, {
      certPem: readFileSync(join(this.dir, "member0_cert.pem"), "utf8"),
      keyPem: readFileSync(join(this.dir, "member0_privk.pem"), "utf8"),
    });
    await waitFor("member0 active", async () => {
      await this.gov?.activate();
      return true;
    });
    for (let i = 1; i < this.o.nodes; i++) await this.addNode();
    this.log(
      `network of ${this.o.nodes} nodes up: ${this.live()
        .map((n) => n.name)
        .join(" ")}`,
    );
  }

  private async getJson(base: string, path: string): Promise<Record<string, unknown>> {
    const r = await request(`${base}${path}`, {
      dispatcher: this.admin,
      headersTimeout: 3000,
      bodyTimeout: 3000,
    });
    const text = await r.body.text();
    if (r.statusCode !== 200) throw new Error(`${path}: ${r.statusCode} ${text}`);
    return JSON.parse(text) as Record<string, unknown>;
  }

  /** Runs a governance proposal to acceptance (member0 alone is the majority), via any live node. */
  private async passProposal(actions: unknown[]): Promise<void> {
    await waitFor(
      "a proposal accepted",
      async () => {
        for (const n of this.reachable()) {
          const gov = new GovClient(n.base, this.serviceCert, {
            certPem: readFileSync(join(this.dir, "member0_cert.pem"), "utf8"),
            keyPem: readFileSync(join(this.dir, "member0_privk.pem"), "utf8"),
          });
          try {
            const p = await gov.propose({ actions });
            if (p.proposalState === "Accepted") return true;
            const v = await gov.vote(
              p.proposalId,
              "export function vote (rawProposal, proposerId) { return true }",
            );
            if (v.proposalState === "Accepted") return true;
          } catch {
            // No primary for a moment, or this node is cut off: another node, or later.
          } finally {
            await gov.close();
          }
        }
        return undefined;
      },
      90_000,
    );
  }

  /** Live nodes that are neither paused nor cut off. */
  private reachable(): ChaosNode[] {
    return this.live().filter(
      (n) => !this.paused.has(n.name) && ![...this.blocked].some((b) => b.startsWith(`${n.name}>`)),
    );
  }

  /** Joins a new node and trusts it through governance; it is live once part of the network. */
  private async addNode(): Promise<ChaosNode> {
    const target = this.reachable()[0];
    const n = await this.launch((d, port) => {
      const config = this.nodeConfig(d, port);
      config.command = joinCommand(join(this.nodes[0].dir, "service_cert.pem"), target.base);
      return config;
    });
    try {
      await waitFor(
        `${n.name} recorded Pending`,
        async () => {
          for (const m of this.reachable()) {
            try {
              const r = await this.getJson(m.base, `/node/network/nodes/${n.id}`);
              if (r.status === "Pending" || r.status === "Trusted") return true;
            } catch {
              // another node
            }
          }
          return undefined;
        },
        60_000,
      );
      await this.passProposal([
        {
          name: "transition_node_to_trusted",
          args: { node_id: n.id, valid_from: new Date().toISOString() },
        },
      ]);
      await waitFor(
        `${n.name} part of the network`,
        async () =>
          (await this.getJson(n.base, "/node/state")).state === "PartOfNetwork" ? true : undefined,
        60_000,
      );
    } catch (e) {
      // A joiner that never made it is stopped, so the rest of the run does not count on it.
      n.proc.kill("SIGKILL");
      n.dead = true;
      throw e;
    }
    this.log(`${n.name} (${n.id.slice(0, 8)}) joined and trusted`);
    return n;
  }

  /** Retires a dead node: remove_node, wait until it is removable, delete its records. */
  private async retire(old: ChaosNode): Promise<void> {
    await this.passProposal([{ name: "remove_node", args: { node_id: old.id } }]);
    await waitFor(
      `${old.name} removable`,
      async () => {
        for (const m of this.reachable()) {
          try {
            const r = await this.getJson(m.base, "/node/network/removable_nodes");
            const ids = (r.nodes as Array<{ node_id: string }>).map((x) => x.node_id);
            if (!ids.includes(old.id)) continue;
            const del = await request(`${m.base}/node/network/nodes/${old.id}`, {
              method: "DELETE",
              dispatcher: this.admin,
              headersTimeout: 3000,
            });
            await del.body.text();
            if (del.statusCode === 200) return true;
          } catch {
            // another node
          }
        }
        return undefined;
      },
      90_000,
    );
    this.log(`${old.name} retired and its records deleted`);
  }

  // ---- clients --------------------------------------------------------------------------------

  /** Every key written once and committed before the faults start (so every read has a value). */
  private async populate(): Promise<void> {
    const agent = this.userAgent();
    for (let k = 1; k <= this.o.keys; k++) {
      const key = String(k);
      await waitFor(`key ${key} written`, async () => {
        const op = await this.put(agent, -1, key, `init-${key}`, this.nodes[0], {
          "x-ccf-ts-wait-for-commit": "true",
        });
        return op.outcome === "ok" ? true : undefined;
      });
    }
  }

  private async pollCommit(): Promise<void> {
    while (!this.stopPolling) {
      await Promise.all(
        this.reachable().map(async (n) => {
          try {
            const r = await this.getJson(n.base, "/node/commit");
            const s = parseTx(r.transaction_id as string).seqno;
            if (s > this.commitFloor) this.commitFloor = s;
          } catch {
            // unreachable for now
          }
        }),
      );
      await delay(100);
    }
  }

  private put(
    agent: Agent,
    client: number,
    key: string,
    value: string,
    node: ChaosNode,
    headers: Record<string, string> = {},
  ): Promise<HistoryRecord> {
    return this.call({ client, kind: "put", key, value }, node, agent, {
      path: "/app/log/private",
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ id: Number(key), msg: value }),
    });
  }

  private get(agent: Agent, client: number, key: string, node: ChaosNode): Promise<HistoryRecord> {
    return this.call({ client, kind: "get", key }, node, agent, {
      path: `/app/log/private?id=${key}`,
      method: "GET",
    });
  }

  /**
   * Sends one operation and records it: invoked now, answered (or not). An answer is "ok" only
   * with 200 and a TxID (settled later); a put refused before it ran (4xx, or a 5xx CCF gives
   * before running anything) failed; a get that was not answered 200 failed (it constrains
   * nothing); no answer at all leaves the outcome unknown.
   */
  private async call(
    what: Pick<HistoryRecord, "client" | "kind" | "key" | "value">,
    node: ChaosNode,
    agent: Agent,
    req: { path: string; method: "GET" | "POST"; headers?: Record<string, string>; body?: string },
  ): Promise<HistoryRecord> {
    const op: HistoryRecord = {
      ...what,
      invokeWall: Date.now(),
      floor: this.commitFloor,
      outcome: "unknown",
      node: node.name,
    };
    this.history.push(op);
    try {
      const r = await request(`${node.base}${req.path}`, {
        method: req.method,
        dispatcher: agent,
        ...(req.headers === undefined ? {} : { headers: req.headers }),
        ...(req.body === undefined ? {} : { body: req.body }),
        headersTimeout: 3000,
        bodyTimeout: 3000,
      });
      const text = await r.body.text();
      op.completeWall = Date.now();
      const txid = r.headers["x-ms-ccf-transaction-id"];
      if (r.statusCode === 200 && typeof txid === "string") {
        op.outcome = "ok";
        op.txid = txid;
        if (op.kind === "get") op.output = (JSON.parse(text) as { msg: string }).msg;
      } else if (op.kind === "get" || r.statusCode < 500 || refusedBeforeRunning(text)) {
        op.outcome = "fail";
      }
    } catch {
      // Timed out or the connection went away: a put may or may not have happened.
    }
    return op;
  }

  private async client(c: number): Promise<void> {
    const rng = new Prng(this.o.seed * 1000 + c + 1);
    const agent = this.userAgent();
    let n = 0;
    while (!this.stopClients) {
      const live = this.live();
      if (live.length === 0) break;
      const node = rng.pick(live);
      const key = String(rng.int(1, this.o.keys));
      if (rng.chance(0.5)) await this.put(agent, c, key, `c${c}-${n++}`, node);
      else await this.get(agent, c, key, node);
    }
  }

  // ---- the nemesis ----------------------------------------------------------------------------

  private async nemesis(): Promise<void> {
    const end = this.start + this.o.durationMs;
    // Let the clients run unharmed for a moment first.
    await delay(Math.min(2000, this.o.durationMs / 10));
    let i = 0;
    while (Date.now() < end || i < this.o.faults.length) {
      // The first round injects each kind once (in order), then kinds are drawn by the seed.
      const kind = i < this.o.faults.length ? this.o.faults[i] : this.rng.pick(this.o.faults);
      i++;
      this.faultsByKind[kind] = (this.faultsByKind[kind] ?? 0) + 1;
      try {
        await this.inject(kind);
      } catch (e) {
        // A fault the network did not get over (a replacement that never joined...): liveness.
        this.stalls++;
        this.log(`stall during ${kind}: ${e instanceof Error ? e.message : String(e)}`);
      }
      await this.waitHealthy(kind);
      if (Date.now() >= end && i >= this.o.faults.length) break;
      await delay(this.rng.int(300, 1500));
    }
  }

  private async inject(kind: FaultKind): Promise<void> {
    const live = this.live();
    const primary = await this.primaryOf(live);
    switch (kind) {
      case "kill": {
        const victim = this.rng.pick(live);
        this.log(
          `kill ${victim.name}${victim === primary ? " (primary)" : ""} with SIGKILL, then replace it`,
        );
        await this.killAndReplace(victim);
        break;
      }
      case "pause": {
        const victim =
          this.rng.chance(0.5) && primary !== undefined ? primary : this.rng.pick(live);
        const ms = this.rng.int(1500, 4000);
        this.log(
          `pause ${victim.name}${victim === primary ? " (primary)" : ""} for ${ms} ms (SIGSTOP)`,
        );
        this.paused.add(victim.name);
        victim.proc.kill("SIGSTOP");
        await delay(ms);
        victim.proc.kill("SIGCONT");
        this.paused.delete(victim.name);
        break;
      }
      case "partition": {
        // A minority cut off from the rest, both ways; half the time it holds the primary.
        const size = Math.floor((live.length - 1) / 2);
        const pool = [...live];
        const minority: ChaosNode[] = [];
        if (primary !== undefined && this.rng.chance(0.5)) {
          minority.push(primary);
          pool.splice(pool.indexOf(primary), 1);
        }
        while (minority.length < size)
          minority.push(pool.splice(this.rng.int(0, pool.length - 1), 1)[0]);
        const ms = this.rng.int(2000, 5000);
        const names = new Set(minority.map((m) => m.name));
        this.log(
          `partition {${[...names].join(",")}}${primary !== undefined && names.has(primary.name) ? " (with the primary)" : ""} from the rest for ${ms} ms`,
        );
        for (const a of live) {
          for (const b of live) {
            if (names.has(a.name) !== names.has(b.name)) this.blocked.add(`${a.name}>${b.name}`);
          }
        }
        this.enforce();
        await delay(ms);
        this.blocked.clear();
        break;
      }
      case "delay": {
        const victim = this.rng.pick(live);
        const lag = this.rng.int(50, 400);
        const ms = this.rng.int(2000, 5000);
        this.log(`delay every message to and from ${victim.name} by ${lag} ms for ${ms} ms`);
        this.slowed.set(victim.name, lag);
        await delay(ms);
        this.slowed.clear();
        break;
      }
      case "corrupt":
        await this.corrupt(primary);
        break;
    }
  }

  private enforce(): void {
    for (const n of this.nodes) n.proxy.enforce();
  }

  private async primaryOf(live: ChaosNode[]): Promise<ChaosNode | undefined> {
    for (const n of live) {
      try {
        const id = (await this.getJson(n.base, "/node/network")).primary_id;
        const p = live.find((m) => m.id === id);
        if (p !== undefined) return p;
      } catch {
        // ask another
      }
    }
    return undefined;
  }

  private async killAndReplace(victim: ChaosNode): Promise<void> {
    victim.proc.kill("SIGKILL");
    victim.dead = true;
    await waitFor(`${victim.name} gone`, () =>
      victim.proc.exitCode !== null || victim.proc.signalCode !== null ? true : undefined,
    );
    await this.waitHealthy("kill");
    await this.addNode();
    await this.retire(victim);
  }

  /**
   * Damages one committed ledger entry on a backup that holds one of our committed writes (a byte
   * flipped inside the entry, or the chunk cut short inside it), asks that node for the write's
   * historical state, which must come back as an error (or the right value, never another), checks
   * that `ledger verify` names the damaged file, then replaces the node.
   */
  private async corrupt(primary: ChaosNode | undefined): Promise<void> {
    const candidates = this.live().filter((n) => n !== primary);
    const victim = candidates.length > 0 ? this.rng.pick(candidates) : this.rng.pick(this.live());
    const ledgerDir = join(victim.dir, "ledger");
    const chunks = readdirSync(ledgerDir)
      .map((f) => ({ f, name: parseChunkName(f) }))
      .filter((c) => c.name?.committed === true && c.name.end !== undefined);
    const writes = this.history.filter(
      (op) => op.kind === "put" && op.outcome === "ok" && op.txid !== undefined && op.client >= 0,
    );
    let target: { op: HistoryRecord; file: string; start: number } | undefined;
    const order = [...writes];
    for (let i = order.length - 1; i > 0; i--) {
      const k = this.rng.int(0, i);
      [order[i], order[k]] = [order[k], order[i]];
    }
    for (const op of order) {
      const { seqno } = parseTx(op.txid as string);
      const c = chunks.find((x) => (x.name?.start ?? 0) <= seqno && seqno <= (x.name?.end ?? 0));
      if (c === undefined) continue;
      const status = await this.txStatus(victim, op.txid as string).catch(() => undefined);
      if (status !== "Committed") continue;
      target = { op, file: c.f, start: c.name?.start ?? 0 };
      break;
    }
    if (target === undefined) {
      this.log(
        `corrupt: no committed chunk of ${victim.name} holds a committed write yet; skipped`,
      );
      return;
    }
    const { op, file, start } = target;
    const path = join(ledgerDir, file);
    const seqno = parseTx(op.txid as string).seqno;
    const bytes = readFileSync(path);
    const entry = parseChunk(bytes).entries[seqno - start];
    const flip = this.rng.chance(0.5);
    const at = entry.offset + Math.floor(entry.size / 2);
    if (flip) {
      const fd = openSync(path, "r+");
      try {
        const b = Buffer.alloc(1);
        readSync(fd, b, 0, 1, at);
        b[0] ^= 1 << this.rng.int(0, 7);
        writeSync(fd, b, 0, 1, at);
      } finally {
        closeSync(fd);
      }
    } else {
      truncateSync(path, at);
    }
    this.log(
      `corrupt ${victim.name}: ${flip ? "flipped a bit in" : "truncated"} ${file} inside seqno ${seqno} (key ${op.key})`,
    );
    const agent = this.userAgent();
    const answer = await waitFor(
      "the damaged node's historical answer",
      async () => {
        const r = await request(`${victim.base}/app/log/private/historical?id=${op.key}`, {
          dispatcher: agent,
          headers: { "x-ms-ccf-transaction-id": op.txid as string },
          headersTimeout: 3000,
          bodyTimeout: 3000,
        });
        const text = await r.body.text();
        if (r.statusCode === 202) {
          return /could not be read/.test(victim.proc.output()) ? { status: 202, text } : undefined;
        }
        return { status: r.statusCode, text };
      },
      20_000,
    ).catch((e: unknown) => ({ status: 0, text: String(e) }));
    if (answer.status === 200) {
      const msg = (JSON.parse(answer.text) as { msg?: string }).msg;
      this.anomalies.push(
        msg === op.value
          ? `${victim.name} answered seqno ${seqno} from a damaged ${file} without noticing`
          : `${victim.name} served bad data for seqno ${seqno} from a damaged ${file}: ${answer.text}`,
      );
    } else if (answer.status === 0) {
      this.anomalies.push(
        `${victim.name} neither answered nor reported the damage to ${file}: ${answer.text}`,
      );
    } else {
      this.log(
        `${victim.name} refused the damaged entry: ${answer.status} ${answer.text.slice(0, 160)}`,
      );
    }
    // Offline, the ledger check must name the damaged file (the node is stopped first).
    victim.proc.kill("SIGKILL");
    victim.dead = true;
    await waitFor(`${victim.name} gone`, () =>
      victim.proc.exitCode !== null || victim.proc.signalCode !== null ? true : undefined,
    );
    const fromSnapshot = this.snapshotStart(victim);
    if (fromSnapshot !== undefined) {
      this.log(`${victim.name}'s ledger starts after its snapshot at ${fromSnapshot.from}`);
    }
    try {
      readLedger(ledgerDir, fromSnapshot);
      this.anomalies.push(`ledger verify accepted ${victim.name}'s damaged ${file}`);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      if (!message.includes(file)) {
        this.anomalies.push(`ledger verify did not name ${file}: ${message}`);
      } else {
        this.log(`ledger verify: ${message.slice(0, 160)}`);
      }
    }
    await this.waitHealthy("corrupt");
    await this.addNode();
    await this.retire(victim);
  }

  /**
   * A node that joined from a snapshot has a ledger that starts after it: the offline check starts
   * from that snapshot (as `ccf-ts ledger verify --snapshot` does).
   */
  private snapshotStart(
    node: ChaosNode,
  ): { from: number; into: { store: Store; tree: MerkleTree } } | undefined {
    const first = Math.min(
      ...readdirSync(join(node.dir, "ledger")).map(
        (f) => parseChunkName(f)?.start ?? Number.POSITIVE_INFINITY,
      ),
    );
    if (first <= 1) return undefined;
    const dir = join(node.dir, "snapshots");
    const name = readdirSync(dir)
      .map((f) => ({ f, n: parseSnapshotFileName(f) }))
      .find((x) => x.n?.committed === true && x.n.seqno + 1 === first);
    if (name === undefined) return undefined;
    const snap = loadSnapshot(join(dir, name.f), this.serviceCert);
    const into = { store: new Store(), tree: new MerkleTree() };
    installLoadedSnapshot(snap, into.store, into.tree);
    return { from: snap.seqno, into };
  }

  /** Waits until every live node knows the same live primary and commit moves on. */
  private async waitHealthy(after: string): Promise<void> {
    const floor = this.commitFloor;
    try {
      await waitFor(
        `the network to recover after ${after}`,
        async () => {
          const live = this.live();
          const primaries = new Set<string>();
          for (const n of live) {
            const p = (await this.getJson(n.base, "/node/network")).primary_id as
              | string
              | undefined;
            primaries.add(p ?? "none");
          }
          if (primaries.size !== 1) return undefined;
          const [p] = [...primaries];
          if (!live.some((n) => n.id === p)) return undefined;
          return this.commitFloor > floor ? true : undefined;
        },
        60_000,
      );
    } catch (e) {
      this.stalls++;
      this.log(`stall: ${String(e)}`);
    }
  }

  private async heal(): Promise<void> {
    this.blocked.clear();
    this.slowed.clear();
    for (const n of this.nodes) if (this.paused.has(n.name)) n.proc.kill("SIGCONT");
    this.paused.clear();
    await this.waitHealthy("the end of the run");
  }

  /** Waits until every live node has committed the same TxID, past every write we were answered. */
  private async converge(): Promise<void> {
    const highest = Math.max(
      0,
      ...this.history
        .filter((h) => h.txid !== undefined)
        .map((h) => parseTx(h.txid as string).seqno),
    );
    try {
      await waitFor(
        "every node to commit the same TxID",
        async () => {
          const commits = await Promise.all(
            this.live().map(
              async (n) => (await this.getJson(n.base, "/node/commit")).transaction_id as string,
            ),
          );
          const same = commits.every((c) => c === commits[0]);
          return same && parseTx(commits[0]).seqno >= highest ? true : undefined;
        },
        60_000,
      );
    } catch (e) {
      this.stalls++;
      this.log(`stall: ${String(e)}`);
    }
  }

  /** Reads every key on every live node; these reads join the history. */
  private async finalReads(): Promise<void> {
    const agent = this.userAgent();
    for (const n of this.live()) {
      for (let k = 1; k <= this.o.keys; k++) await this.get(agent, -2, String(k), n);
    }
  }

  private async txStatus(node: ChaosNode, txid: string): Promise<string> {
    const r = await this.getJson(node.base, `/app/tx?transaction_id=${txid}`);
    return r.status as string;
  }

  /** Settles every answered TxID to Committed or Invalid (still pending at the deadline: unknown). */
  private async resolve(): Promise<void> {
    const statuses = new Map<string, string>();
    const txids = [...new Set(this.history.flatMap((h) => (h.txid === undefined ? [] : [h.txid])))];
    const deadline = Date.now() + 60_000;
    let todo = txids;
    while (todo.length > 0 && Date.now() < deadline) {
      const node = this.live()[0];
      const next: string[] = [];
      for (let i = 0; i < todo.length; i += 32) {
        await Promise.all(
          todo.slice(i, i + 32).map(async (t) => {
            const s = await this.txStatus(node, t).catch(() => "Unknown");
            if (s === "Committed" || s === "Invalid") statuses.set(t, s);
            else next.push(t);
          }),
        );
      }
      todo = next;
      if (todo.length > 0) await delay(200);
    }
    for (const op of this.history) {
      if (op.outcome !== "ok" || op.txid === undefined) continue;
      const s = statuses.get(op.txid);
      if (s === "Invalid") op.outcome = "fail";
      else if (s !== "Committed") op.outcome = "unknown";
    }
  }

  // ---- analysis -------------------------------------------------------------------------------

  private analyse(): ChaosSummary {
    const { anomalies, checker, staleBackupReads } = analyseHistory(this.history);
    this.anomalies.push(...anomalies);
    const committed = this.history.filter((h) => h.outcome === "ok");
    for (const n of this.nodes) {
      if (!n.dead && (n.proc.exitCode !== null || n.proc.signalCode !== null)) {
        this.anomalies.push(
          `${n.name} exited on its own (${n.proc.exitCode ?? n.proc.signalCode}): ${n.proc.output().slice(-2000)}`,
        );
      }
    }
    const faults = Object.values(this.faultsByKind).reduce((a, b) => a + b, 0);
    return {
      seed: this.o.seed,
      faults,
      faultsByKind: this.faultsByKind,
      operations: this.history.length,
      committed: committed.length,
      failed: this.history.filter((h) => h.outcome === "fail").length,
      unknown: this.history.filter((h) => h.outcome === "unknown").length,
      anomalies: this.anomalies.length,
      anomalyDetails: this.anomalies,
      stalls: this.stalls,
      staleBackupReads,
      checker,
      dir: this.dir,
      elapsedMs: Date.now() - this.start,
    };
  }
}

/**
 * Judges a recorded history (TxIDs already settled): the anomalies it shows, the checker's report
 * on it placed on the TxID line, and the reads that were stale in real time (allowed on backups).
 */
export function analyseHistory(history: HistoryRecord[]): {
  anomalies: string[];
  checker: CheckReport;
  staleBackupReads: number;
} {
  const anomalies: string[] = [];
  const committed = history.filter((h) => h.outcome === "ok");
  const writes = committed.filter((h) => h.kind === "put");
  const reads = committed.filter((h) => h.kind === "get");
  // For each value read, the lowest seqno a committed read saw it at.
  const observed = new Map<string, number>();
  for (const r of reads) {
    const k = `${r.key}\u0000${r.output}`;
    const s = parseTx(r.txid as string).seqno;
    observed.set(k, Math.min(s, observed.get(k) ?? s));
  }

  // Two writes committed at one TxID: split brain.
  const bySeqno = new Map<number, HistoryRecord>();
  for (const w of writes) {
    const { seqno } = parseTx(w.txid as string);
    const other = bySeqno.get(seqno);
    if (other !== undefined) {
      anomalies.push(`two writes committed at seqno ${seqno}: ${other.txid} and ${w.txid}`);
    }
    bySeqno.set(seqno, w);
  }
  // A write answered before another was sent commits before it.
  const byComplete = [...writes].sort((a, b) => (a.completeWall ?? 0) - (b.completeWall ?? 0));
  const byInvoke = [...writes].sort((a, b) => a.invokeWall - b.invokeWall);
  let j = 0;
  let maxSeqno = 0;
  let maxTx = "";
  for (const w of byInvoke) {
    while (j < byComplete.length && (byComplete[j].completeWall ?? 0) < w.invokeWall) {
      const s = parseTx(byComplete[j].txid as string).seqno;
      if (s > maxSeqno) {
        maxSeqno = s;
        maxTx = byComplete[j].txid as string;
      }
      j++;
    }
    const s = parseTx(w.txid as string).seqno;
    if (s < maxSeqno) {
      anomalies.push(`write ${w.txid} was sent after ${maxTx} was answered, yet commits before it`);
    }
  }
  // Reads on backups that were behind a write already answered (allowed by CCF, counted).
  const writesOf = new Map<string, HistoryRecord[]>();
  for (const w of writes) writesOf.set(w.key, [...(writesOf.get(w.key) ?? []), w]);
  let staleBackupReads = 0;
  for (const r of reads) {
    const s = parseTx(r.txid as string).seqno;
    const stale = (writesOf.get(r.key) ?? []).some(
      (w) => (w.completeWall ?? 0) < r.invokeWall && parseTx(w.txid as string).seqno > s,
    );
    if (stale) staleBackupReads++;
  }
  // Lost writes: a final read (at or after a key's last committed write) showing an older value.
  const finals = reads.filter((r) => r.client === -2);
  const valueSeqno = new Map(
    writes.map((w) => [`${w.key}\u0000${w.value}`, parseTx(w.txid as string).seqno]),
  );
  for (const r of finals) {
    const last = (writesOf.get(r.key) ?? []).reduce<HistoryRecord | undefined>(
      (a, w) =>
        a === undefined || parseTx(w.txid as string).seqno > parseTx(a.txid as string).seqno
          ? w
          : a,
      undefined,
    );
    if (last === undefined) continue;
    const lastSeqno = parseTx(last.txid as string).seqno;
    if (parseTx(r.txid as string).seqno < lastSeqno) continue;
    const seen = valueSeqno.get(`${r.key}\u0000${r.output}`);
    if (seen !== undefined && seen < lastSeqno) {
      anomalies.push(
        `key ${r.key}: write ${last.txid} reported Committed is lost: ${r.node} reads "${r.output}" at ${r.txid}`,
      );
    }
  }

  // The history on the TxID line, for the checker.
  const ops: Operation[] = [];
  let id = 0;
  for (const h of history) {
    if (h.outcome === "fail") continue;
    if (h.outcome === "ok") {
      const s = parseTx(h.txid as string).seqno;
      const t = h.kind === "put" ? 2 * s : 2 * s + 1;
      ops.push({
        id: id++,
        clientId: h.client,
        key: h.key,
        kind: h.kind,
        ...(h.kind === "put" ? { value: h.value } : { output: h.output }),
        invoke: t,
        complete: t,
      });
    } else if (h.kind === "put") {
      // An unknown write nobody read changes nothing any read saw: leaving it out is equivalent.
      const seenAt = observed.get(`${h.key}\u0000${h.value}`);
      if (seenAt === undefined) continue;
      // One that was read happened, at a seqno after the commit point known when it was sent and
      // at or before the first read that saw it: that bounds it (and keeps the search small).
      if (seenAt <= h.floor) {
        anomalies.push(
          `key ${h.key}: "${h.value}" was read at seqno ${seenAt}, yet sent when ${h.floor} was already committed`,
        );
        continue;
      }
      ops.push({
        id: id++,
        clientId: h.client,
        key: h.key,
        kind: "put",
        value: h.value,
        invoke: 2 * h.floor + 1.5,
        complete: 2 * seenAt + 0.5,
      });
    }
  }
  const checker = checkHistory(ops);
  if (!checker.ok) {
    anomalies.push(
      `checker: ${checker.result} (keys ${[...checker.badKeys, ...checker.unknownKeys].join(", ")}): ${checker.explanation ?? ""}`,
    );
  }
  return { anomalies, checker, staleBackupReads };
}

/** A 5xx that CCF gives before running anything (the request can be retried as not having happened). */
function refusedBeforeRunning(body: string): boolean {
  try {
    const code = (JSON.parse(body) as { error?: { code?: string } }).error?.code;
    return (
      code === "TooManyPendingTransactions" ||
      code === "FrontendNotOpen" ||
      code === "SessionCapExhausted"
    );
  } catch {
    return false;
  }
}
