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

  constructor(ids: NodeId[], overrides: Partial<RaftOptions> = {}) {
    const bootstrap = { configuration: ids, primary: ids[0] };
    for (const id of ids) this.add(new Raft(options(id, { bootstrap, ...overrides })));
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

/** Isolates a node: drops everything to or from it. */
export function without(id: NodeId): (e: Envelope) => boolean {
  return (e) => e.from !== id && e.to !== id;
}
