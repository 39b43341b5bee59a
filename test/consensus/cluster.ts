// A hand-driven cluster of consensus state machines for unit tests: messages queue up and the test
// decides which are delivered, so each scenario is exact.

import {
  type Event,
  type LogEntry,
  type Message,
  type NodeId,
  Raft,
  type RaftOptions,
  type Ready,
} from "../../src/consensus/index.js";

export const ELECTION_TIMEOUT = 10;

export function options(id: NodeId, overrides: Partial<RaftOptions> = {}): RaftOptions {
  return {
    id,
    heartbeatTicks: 2,
    electionTimeoutTicks: ELECTION_TIMEOUT,
    // Fixed timeouts keep the scenarios exact: n1 times out first, then n2, and so on.
    chooseElectionTimeout: () => ELECTION_TIMEOUT + Number(id.slice(1)),
    maxUncommittedTxCount: 100,
    maxEntriesPerMessage: 10,
    preVote: false,
    ...overrides,
  };
}

export function entry(
  idx: number,
  term: number,
  isSignature = false,
  configuration?: NodeId[],
): LogEntry {
  const e: LogEntry = { idx, term, isSignature, data: Buffer.from(`${term}.${idx}`) };
  if (configuration !== undefined) e.configuration = configuration;
  return e;
}

export interface Envelope {
  from: NodeId;
  to: NodeId;
  message: Message;
}

export class Cluster {
  readonly nodes = new Map<NodeId, Raft>();
  queue: Envelope[] = [];
  /** Every Ready each node produced, newest last. */
  readonly readies = new Map<NodeId, Ready[]>();

  constructor(
    ids: NodeId[],
    overrides: Partial<RaftOptions> | ((id: NodeId) => Partial<RaftOptions>) = {},
  ) {
    const bootstrap = { configuration: ids, primary: ids[0] };
    for (const id of ids) {
      const own = typeof overrides === "function" ? overrides(id) : overrides;
      this.add(new Raft(options(id, { bootstrap, ...own })));
    }
  }

  add(raft: Raft): void {
    this.nodes.set(raft.id, raft);
    this.readies.set(raft.id, []);
  }

  node(id: NodeId): Raft {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  step(id: NodeId, event: Event): Ready {
    const ready = this.node(id).step(event);
    (this.readies.get(id) as Ready[]).push(ready);
    for (const m of ready.messages) this.queue.push({ from: id, to: m.to, message: m.message });
    return ready;
  }

  propose(id: NodeId, entries: LogEntry[]): Ready {
    return this.step(id, { kind: "propose", entries });
  }

  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) this.step(id, { kind: "tick" });
  }

  /** Delivers queued messages (those `accept` lets through; the rest are dropped) until quiet. */
  deliverAll(accept: (e: Envelope) => boolean = () => true, maxRounds = 100): void {
    for (let round = 0; round < maxRounds && this.queue.length > 0; round++) {
      const batch = this.queue;
      this.queue = [];
      for (const e of batch) {
        if (!accept(e) || !this.nodes.has(e.to)) continue;
        this.step(e.to, { kind: "receive", from: e.from, message: e.message });
      }
    }
  }

  /** Messages of one type currently queued. */
  queued<T extends Message["type"]>(
    type: T,
  ): Array<Envelope & { message: Extract<Message, { type: T }> }> {
    return this.queue.filter(
      (e): e is Envelope & { message: Extract<Message, { type: T }> } => e.message.type === type,
    );
  }

  lastReady(id: NodeId): Ready {
    const all = this.readies.get(id) as Ready[];
    return all[all.length - 1];
  }

  /** Whether any Ready of this node since index `from` had the given property. */
  readiesOf(id: NodeId): Ready[] {
    return this.readies.get(id) as Ready[];
  }
}

/**
 * A cluster whose nodes have hosts with a ledger (the bytes of each entry by idx, rolled back and
 * appended as each Ready says) and release committed entries from consensus's memory but the last
 * `keep`, reading them back from that ledger when a peer needs them.
 */
export class ClusterWithLedgers extends Cluster {
  readonly ledgers: Map<NodeId, Map<number, Uint8Array>>;
  /** How many entries each node read back from its ledger. */
  readonly reads: Map<NodeId, number>;
  private readonly keep: number;

  constructor(ids: NodeId[], keep: number, overrides: Partial<RaftOptions> = {}) {
    const ledgers = new Map<NodeId, Map<number, Uint8Array>>();
    const reads = new Map<NodeId, number>();
    super(ids, (id) => ({ ...overrides, readEntryData: reader(id, ledgers, reads) }));
    this.ledgers = ledgers;
    this.reads = reads;
    this.keep = keep;
  }

  /** A node that joins with an empty log (it knows nothing until the primary replicates to it). */
  addJoiner(id: NodeId, overrides: Partial<RaftOptions> = {}): Raft {
    const raft = new Raft(
      options(id, { ...overrides, readEntryData: reader(id, this.ledgers, this.reads) }),
    );
    this.add(raft);
    return raft;
  }

  ledger(id: NodeId): Map<number, Uint8Array> {
    let l = this.ledgers.get(id);
    if (l === undefined) {
      l = new Map();
      this.ledgers.set(id, l);
    }
    return l;
  }

  override step(id: NodeId, event: Event): Ready {
    const ledger = this.ledger(id);
    if (event.kind === "propose") for (const e of event.entries) ledger.set(e.idx, e.data);
    const ready = super.step(id, event);
    if (ready.rollbackTo !== undefined) {
      for (let i = ready.rollbackTo + 1; ledger.delete(i); i++);
    }
    for (const e of ready.appends) ledger.set(e.idx, e.data);
    if (ready.commitIdx !== undefined) {
      this.node(id).releaseEntryData(ready.commitIdx - this.keep);
    }
    return ready;
  }
}

function reader(
  id: NodeId,
  ledgers: Map<NodeId, Map<number, Uint8Array>>,
  reads: Map<NodeId, number>,
): (idx: number) => Uint8Array | undefined {
  return (idx) => {
    reads.set(id, (reads.get(id) ?? 0) + 1);
    return ledgers.get(id)?.get(idx);
  };
}

/** Isolates a node: drops everything to or from it. */
export function without(id: NodeId): (e: Envelope) => boolean {
  return (e) => e.from !== id && e.to !== id;
}
