// A deterministic simulation of a CCF service in one process. Each node is the real consensus state
// machine plus the real KV store, Merkle tree and in-memory ledger: the primary writes through the
// real TxPipeline, backups apply replicated entries through LedgerReplica. The network (loss,
// duplication, reordering, delay, partitions), crashes, replacements and membership changes are
// driven by a seeded PRNG, so a seed replays exactly. Invariants are checked after every step.

import {
  isAllowedStatusTransition,
  type Message,
  type NodeId,
  type Proposal,
  Raft,
  type Ready,
  type TestOnlyFaults,
  type TxStatus,
  txStatus,
} from "../../src/consensus/index.js";
import { EcKeyPair, seededRng } from "../../src/crypto/index.js";
import { Store } from "../../src/kv/index.js";
import { LedgerSecrets, MemoryLedger, TxPipeline } from "../../src/ledger/index.js";
import { LedgerReplica } from "../../src/ledger/replica.js";
import { MerkleTree } from "../../src/merkle/index.js";
import { Prng } from "./prng.js";

export interface SimOptions {
  seed: number;
  /** Ticks of faults before the network heals. */
  faultTicks?: number;
  /** After healing, a client transaction must commit within this many ticks. */
  livenessTicks?: number;
  faults?: TestOnlyFaults;
  /** Collects a line per notable event (for replaying a seed by hand). */
  trace?: (line: string) => void;
}

export interface SimStats {
  ticks: number;
  nodesCreated: number;
  crashes: number;
  reconfigurations: number;
  elections: number;
  clientTxs: number;
  committedClientTxs: number;
  maxCommit: number;
  delivered: number;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  failure?: string;
  stats: SimStats;
}

/** An invariant of the whole system failed. */
/** Committed entries kept in memory behind commit (few, so that read-backs happen often). */
const RECENT_ENTRIES_KEPT = 4;

export class SimInvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SimInvariantError";
  }
}

const MS_PER_TICK = 10;
const HEARTBEAT_TICKS = 2;
const ELECTION_TIMEOUT_TICKS = 20;
const PRIVATE_MAP = "sim.records";
const PUBLIC_MAP = "public:sim.records";
const CONFIG_MAP = "public:sim.configuration";

// Node keys are expensive to make and need not vary per seed: node k always has the same key.
const keyCache = new Map<number, EcKeyPair>();
function nodeKey(k: number): EcKeyPair {
  let key = keyCache.get(k);
  if (key === undefined) {
    key = EcKeyPair.generate("secp384r1", seededRng(1_000_000 + k));
    keyCache.set(k, key);
  }
  return key;
}

interface SimNode {
  id: NodeId;
  index: number;
  raft: Raft;
  store: Store;
  tree: MerkleTree;
  ledger: MemoryLedger;
  replica: LedgerReplica;
  pipeline: TxPipeline | undefined;
  alive: boolean;
  /** Entries the pipeline appended that consensus has not been told about yet. */
  proposals: Proposal[];
  /** Configuration carried by the next (non-signature) entry the pipeline appends. */
  nextConfiguration: NodeId[] | undefined;
  commit: number;
}

interface InFlight {
  at: number;
  order: number;
  from: NodeId;
  to: NodeId;
  message: Message;
}

interface ClientTx {
  view: number;
  seqno: number;
  submittedAt: number;
  /** Last status each node reported for it. */
  seen: Map<NodeId, TxStatus>;
  committed: boolean;
}

function check(condition: boolean, message: () => string): asserts condition {
  if (!condition) throw new SimInvariantError(message());
}

export class Simulation {
  private readonly prng: Prng;
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly secrets: LedgerSecrets;
  private tick = 0;
  private network: InFlight[] = [];
  private orderCounter = 0;
  // Network conditions
  private lossRate = 0;
  private duplicateRate = 0;
  private maxDelay = 3;
  private blocked = new Set<string>();
  private rotatingIsolation = false;
  // Invariant state
  private readonly primaryOfView = new Map<number, NodeId>();
  private readonly entryRegistry = new Map<string, { data: Uint8Array; prevTerm: number }>();
  private readonly committedTerms: number[] = [];
  private readonly clientTxs: ClientTx[] = [];
  private nextNodeIndex = 0;
  private clientCounter = 0;
  readonly stats: SimStats = {
    ticks: 0,
    nodesCreated: 0,
    crashes: 0,
    reconfigurations: 0,
    elections: 0,
    clientTxs: 0,
    committedClientTxs: 0,
    maxCommit: 0,
    delivered: 0,
  };

  constructor(private readonly o: SimOptions) {
    this.prng = new Prng(o.seed);
    const rng = seededRng(o.seed);
    this.secrets = new LedgerSecrets([{ key: Buffer.from(rng.bytes(32)), version: 1 }]);
  }

  run(): SimResult {
    const faultTicks = this.o.faultTicks ?? 100;
    const livenessTicks = this.o.livenessTicks ?? 150;
    try {
      this.bootstrap(this.prng.chance(0.6) ? 3 : 5);
      for (; this.tick < faultTicks; ) this.step(true);
      this.heal();
      const healedAt = this.tick;
      const before = this.clientTxs.length;
      let live = false;
      while (this.tick < healedAt + livenessTicks) {
        this.step(false);
        if (this.clientTxs.slice(before).some((t) => t.committed)) {
          live = true;
          break;
        }
      }
      check(live, () => `liveness: nothing committed within ${livenessTicks} ticks of healing`);
      return { seed: this.o.seed, ok: true, stats: this.stats };
    } catch (e) {
      const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      return {
        seed: this.o.seed,
        ok: false,
        failure: `tick ${this.tick}: ${message}`,
        stats: this.stats,
      };
    }
  }

  // ---- nodes -----------------------------------------------------------------------------------

  private createNode(bootstrap: { configuration: NodeId[]; primary: NodeId } | undefined): SimNode {
    const index = this.nextNodeIndex++;
    const id = `n${index}`;
    const prng = this.prng;
    const ledger = new MemoryLedger();
    const raft = new Raft({
      id,
      bootstrap,
      heartbeatTicks: HEARTBEAT_TICKS,
      electionTimeoutTicks: ELECTION_TIMEOUT_TICKS,
      chooseElectionTimeout: () => prng.int(ELECTION_TIMEOUT_TICKS / 2, ELECTION_TIMEOUT_TICKS),
      maxUncommittedTxCount: 40,
      maxEntriesPerMessage: 8,
      preVote: this.o.seed % 2 === 0,
      testOnlyFaults: this.o.faults,
      // Old committed entries leave memory and are read back from the ledger when a peer needs them.
      readEntryData: (idx) => ledger.read(idx),
    });
    const store = new Store();
    const tree = new MerkleTree();
    const replica = new LedgerReplica({ store, tree, storage: ledger, secrets: this.secrets });
    const node: SimNode = {
      id,
      index,
      raft,
      store,
      tree,
      ledger,
      replica,
      pipeline: undefined,
      alive: true,
      proposals: [],
      nextConfiguration: undefined,
      commit: 0,
    };
    this.nodes.set(id, node);
    this.stats.nodesCreated++;
    return node;
  }

  private bootstrap(n: number): void {
    const ids = Array.from({ length: n }, (_, i) => `n${i}`);
    const bootstrap = { configuration: ids, primary: ids[0] };
    for (let i = 0; i < n; i++) this.createNode(bootstrap);
    const primary = this.nodes.get(ids[0]) as SimNode;
    this.primaryOfView.set(2, primary.id);
    this.openPipeline(primary);
    this.writeClientTx(primary, "genesis");
    (primary.pipeline as TxPipeline).emitSignature();
    this.flushProposals(primary);
  }

  private openPipeline(node: SimNode): void {
    node.pipeline = new TxPipeline({
      store: node.store,
      storage: node.ledger,
      tree: node.tree,
      secrets: this.secrets,
      node: { nodeId: node.id, key: nodeKey(node.index), certPem: `sim certificate of ${node.id}` },
      view: node.raft.term,
      signatures: { txCount: 6, delayMs: 6 * MS_PER_TICK },
      clock: { now: () => this.tick * MS_PER_TICK },
      onAppend: (seqno, view, entry, signature) => {
        const proposal: Proposal = { idx: seqno, term: view, isSignature: signature, data: entry };
        if (!signature && node.nextConfiguration !== undefined) {
          proposal.configuration = node.nextConfiguration;
          node.nextConfiguration = undefined;
        }
        node.proposals.push(proposal);
      },
    });
  }

  private flushProposals(node: SimNode): void {
    if (node.proposals.length === 0) return;
    const entries = node.proposals;
    node.proposals = [];
    const ready = node.raft.step({ kind: "propose", entries });
    for (const e of entries) {
      this.registerEntry(node, e.idx, e.term, e.data, node.raft.termAt(e.idx - 1) ?? 0);
    }
    this.applyReady(node, ready);
  }

  /** The host side of the Ready contract. */
  private applyReady(node: SimNode, ready: Ready): void {
    if (ready.rollbackTo !== undefined) {
      check(
        ready.rollbackTo >= node.commit,
        () => `${node.id} rolled back to ${ready.rollbackTo} below its commit ${node.commit}`,
      );
      node.replica.rollback(ready.rollbackTo);
      // As the node's host: appended but not yet proposed entries past that point are void.
      const to = ready.rollbackTo;
      node.proposals = node.proposals.filter((p) => p.idx <= to);
      this.trace(`${node.id} rolls back to ${ready.rollbackTo}`);
    }
    for (const e of ready.appends) {
      const applied = node.replica.apply(e.idx, Buffer.from(e.data));
      check(
        applied.view === e.term && applied.isSignature === e.isSignature,
        () =>
          `${node.id}: entry ${e.idx} is ${applied.view}/${applied.isSignature}, consensus says ${e.term}/${e.isSignature}`,
      );
      this.registerEntry(node, e.idx, e.term, e.data, node.raft.termAt(e.idx - 1) ?? 0);
    }
    check(
      node.store.version === node.raft.lastIdx + node.proposals.length,
      () =>
        `${node.id}: store at ${node.store.version}, log at ${node.raft.lastIdx} with ${node.proposals.length} to propose`,
    );
    for (const out of ready.messages) this.send(node.id, out.to, out.message);
    if (ready.commitIdx !== undefined) this.onCommit(node, ready.commitIdx);
    if (ready.roleChange !== undefined) {
      const { role, term } = ready.roleChange;
      if (role === "Primary") {
        this.stats.elections++;
        const existing = this.primaryOfView.get(term);
        check(
          existing === undefined || existing === node.id,
          () => `two primaries in view ${term}: ${existing} and ${node.id}`,
        );
        this.primaryOfView.set(term, node.id);
        this.trace(`${node.id} becomes primary in view ${term}`);
        this.openPipeline(node);
      } else {
        node.pipeline = undefined;
        this.trace(`${node.id} becomes ${role} in view ${term}`);
      }
    }
    if (ready.shouldSign) {
      check(node.pipeline !== undefined, () => `${node.id} asked to sign while not primary`);
      node.pipeline.emitSignature();
      this.flushProposals(node);
    }
    if (ready.retired) this.trace(`${node.id} retired`);
  }

  private registerEntry(
    node: SimNode,
    idx: number,
    term: number,
    data: Uint8Array,
    prevTerm: number,
  ): void {
    const key = `${idx}.${term}`;
    const known = this.entryRegistry.get(key);
    if (known === undefined) {
      this.entryRegistry.set(key, { data, prevTerm });
      return;
    }
    check(
      known.prevTerm === prevTerm,
      () =>
        `log matching: ${node.id} has ${key} after view ${prevTerm}, another node after ${known.prevTerm}`,
    );
    check(
      known.data === data || Buffer.from(known.data).equals(Buffer.from(data)),
      () => `log matching: two different entries ${key} (${node.id})`,
    );
  }

  private onCommit(node: SimNode, commit: number): void {
    check(commit > node.commit, () => `${node.id}: commit went from ${node.commit} to ${commit}`);
    const entry = node.raft.entryAt(commit);
    check(
      entry !== undefined && entry.isSignature,
      () => `${node.id} committed ${commit}, which is not a signature`,
    );
    for (let i = node.commit + 1; i <= commit; i++) {
      const term = node.raft.termAt(i) as number;
      const known = this.committedTerms[i];
      if (known === undefined) this.committedTerms[i] = term;
      else
        check(
          known === term,
          () =>
            `committed prefix changed: ${node.id} committed ${term}.${i}, another node ${known}.${i}`,
        );
    }
    node.commit = commit;
    node.replica.committed(commit);
    node.raft.releaseEntryData(commit - RECENT_ENTRIES_KEPT);
    this.stats.maxCommit = Math.max(this.stats.maxCommit, commit);
  }

  // ---- network ---------------------------------------------------------------------------------

  private send(from: NodeId, to: NodeId, message: Message): void {
    if (this.isBlocked(from, to) || this.prng.chance(this.lossRate)) return;
    const copies = this.prng.chance(this.duplicateRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.network.push({
        at: this.tick + this.prng.int(1, this.maxDelay),
        order: this.orderCounter++ + this.prng.int(0, 3) * 1_000_000,
        from,
        to,
        message,
      });
    }
  }

  private isBlocked(from: NodeId, to: NodeId): boolean {
    return this.blocked.has(`${from}>${to}`);
  }

  private deliverDue(): void {
    const due = this.network.filter((m) => m.at <= this.tick);
    if (due.length === 0) return;
    this.network = this.network.filter((m) => m.at > this.tick);
    due.sort((a, b) => a.at - b.at || a.order - b.order);
    for (const m of due) {
      const to = this.nodes.get(m.to);
      if (to === undefined || !to.alive || this.isBlocked(m.from, m.to)) continue;
      this.stats.delivered++;
      this.applyReady(to, to.raft.step({ kind: "receive", from: m.from, message: m.message }));
    }
  }

  // ---- one step of the world -------------------------------------------------------------------

  private step(faulty: boolean): void {
    this.tick++;
    this.stats.ticks = this.tick;
    this.deliverDue();
    for (const node of this.liveNodes()) {
      this.applyReady(node, node.raft.step({ kind: "tick" }));
      if (node.pipeline !== undefined && node.raft.role === "Primary") {
        node.pipeline.tick();
        this.flushProposals(node);
      }
    }
    if (faulty) this.injectFaults();
    if (this.rotatingIsolation && this.tick % 15 === 0)
      this.isolate(this.prng.pick(this.liveNodes()).id);
    if (this.prng.chance(0.35)) this.submitClientTx();
    if (this.prng.chance(0.03)) this.reconfigure(faulty);
    this.checkStatuses();
  }

  private liveNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.alive);
  }

  private injectFaults(): void {
    const p = this.prng;
    if (p.chance(0.04)) {
      const kind = p.int(0, 3);
      const live = this.liveNodes().map((n) => n.id);
      this.blocked.clear();
      this.rotatingIsolation = false;
      if (kind === 0) {
        // Symmetric split into two sides.
        const side = new Set(live.filter(() => p.chance(0.5)));
        for (const a of live)
          for (const b of live) if (side.has(a) !== side.has(b)) this.blocked.add(`${a}>${b}`);
        this.trace(`partition ${[...side].join(",")} | rest`);
      } else if (kind === 1) {
        // Asymmetric: some directed links drop everything.
        for (const a of live)
          for (const b of live) if (a !== b && p.chance(0.25)) this.blocked.add(`${a}>${b}`);
        this.trace(`asymmetric partition ${[...this.blocked].join(" ")}`);
      } else if (kind === 2) {
        const primary = this.liveNodes().find((n) => n.raft.role === "Primary");
        this.isolate(primary?.id ?? p.pick(live));
      } else {
        this.rotatingIsolation = true;
        this.trace("rotating isolation");
      }
    }
    if (p.chance(0.05)) {
      this.blocked.clear();
      this.rotatingIsolation = false;
      this.trace("partitions healed");
    }
    if (p.chance(0.03)) {
      this.lossRate = p.pick([0, 0, 0.05, 0.2]);
      this.duplicateRate = p.pick([0, 0.05, 0.2]);
      this.maxDelay = p.pick([1, 3, 6]);
    }
    if (p.chance(0.01)) this.crashOne();
  }

  private isolate(id: NodeId): void {
    this.blocked.clear();
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.blocked.add(`${id}>${other}`);
      this.blocked.add(`${other}>${id}`);
    }
    this.trace(`isolate ${id}`);
  }

  private heal(): void {
    this.blocked.clear();
    this.rotatingIsolation = false;
    this.lossRate = 0;
    this.duplicateRate = 0;
    this.maxDelay = 3;
    this.trace("network healed");
  }

  /**
   * Crashes are permanent (a node identity never restarts), so a crash is allowed only while every
   * configuration any live node considers active keeps a live majority without the victim.
   */
  private crashOne(): void {
    const live = this.liveNodes();
    const candidates = live.filter((victim) =>
      live.every((n) =>
        n.raft.activeConfigurations().every((c) => {
          const alive = c.nodes.filter(
            (id) => id !== victim.id && this.nodes.get(id)?.alive === true,
          ).length;
          return alive >= Math.floor(c.nodes.length / 2) + 1;
        }),
      ),
    );
    if (candidates.length === 0) return;
    const victim = this.prng.pick(candidates);
    victim.alive = false;
    // Whatever was not yet synced is lost with the process; the identity is never reused.
    victim.ledger.truncate(Math.max(victim.ledger.durableSeqno, victim.ledger.commitSeqno));
    this.stats.crashes++;
    this.trace(`crash ${victim.id}`);
  }

  /** Replaces a dead member, adds a node, or retires one (possibly the primary), via the primary. */
  private reconfigure(faulty: boolean): void {
    const primary = this.acceptingPrimary();
    if (primary === undefined) return;
    const active = primary.raft.activeConfigurations();
    if (active.length !== 1) return;
    const current = active[0].nodes;
    const dead = current.filter((id) => this.nodes.get(id)?.alive !== true);
    let next: NodeId[];
    if (dead.length > 0) {
      const joiner = this.createNode(undefined);
      next = [...current.filter((id) => id !== dead[0]), joiner.id];
    } else if (current.length < 5 && this.prng.chance(0.5)) {
      next = [...current, this.createNode(undefined).id];
    } else if (current.length > 3 || (!faulty && current.length > 2)) {
      const leaving = this.prng.pick(current);
      next = current.filter((id) => id !== leaving);
    } else {
      return;
    }
    this.stats.reconfigurations++;
    this.trace(`reconfigure ${current.join(",")} -> ${next.join(",")}`);
    primary.nextConfiguration = next;
    (primary.pipeline as TxPipeline).execute((tx) => {
      tx.map(CONFIG_MAP).set(Buffer.from("nodes"), Buffer.from(JSON.stringify(next)));
    });
    this.flushProposals(primary);
  }

  private acceptingPrimary(): SimNode | undefined {
    const primaries = this.liveNodes().filter(
      (n) => n.raft.role === "Primary" && n.pipeline !== undefined && n.raft.canAcceptTransaction(),
    );
    return primaries.length === 0 ? undefined : this.prng.pick(primaries);
  }

  private submitClientTx(): void {
    const primary = this.acceptingPrimary();
    if (primary === undefined) return;
    this.writeClientTx(primary, `c${this.clientCounter++}`, this.prng.chance(0.5));
  }

  private writeClientTx(node: SimNode, key: string, deferProposal = false): void {
    const pipeline = node.pipeline as TxPipeline;
    const { txId } = pipeline.execute((tx) => {
      tx.map(PUBLIC_MAP).set(Buffer.from(key), Buffer.from(`public ${key}`));
      tx.map(PRIVATE_MAP).set(Buffer.from(key), Buffer.from(`private ${key}`));
    });
    // As the node's host, which proposes only after the group-commit flush: the entry may wait
    // (appended here, unknown to consensus) until the next step, while messages arrive.
    if (!deferProposal) this.flushProposals(node);
    this.clientTxs.push({
      view: txId.view,
      seqno: txId.seqno,
      submittedAt: this.tick,
      seen: new Map(),
      committed: false,
    });
    this.stats.clientTxs++;
  }

  /**
   * Every node is asked the status of every client transaction: each node's answers may only move
   * as CCF allows, and no two nodes may disagree on Committed versus Invalid.
   */
  private checkStatuses(): void {
    const views = this.liveNodes().map((n) => ({
      node: n,
      local: {
        viewHistory: n.raft.viewHistory(),
        lastSeqno: n.raft.lastIdx,
        commitSeqno: n.commit,
      },
    }));
    for (const tx of this.clientTxs) {
      let committed = false;
      let invalid = false;
      for (const { node, local } of views) {
        const status = txStatus(local, tx);
        const before = tx.seen.get(node.id) ?? "Unknown";
        check(
          isAllowedStatusTransition(before, status),
          () => `${node.id} reported ${tx.view}.${tx.seqno} ${before} then ${status}`,
        );
        tx.seen.set(node.id, status);
        if (status === "Committed") committed = true;
        if (status === "Invalid") invalid = true;
      }
      check(
        !(committed && invalid),
        () => `${tx.view}.${tx.seqno} is Committed on one node and Invalid on another`,
      );
      if (tx.committed) {
        check(
          this.committedTerms[tx.seqno] === tx.view,
          () => `${tx.view}.${tx.seqno} was reported Committed but is no longer`,
        );
      } else if (committed) {
        tx.committed = true;
        this.stats.committedClientTxs++;
      }
    }
  }

  private trace(line: string): void {
    this.o.trace?.(`[${this.tick}] ${line}`);
  }
}

export function runSeed(options: SimOptions): SimResult {
  return new Simulation(options).run();
}
