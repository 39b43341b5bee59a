// The host side of consensus on a node: feeds Raft its ticks, the messages of other nodes and the
// primary's own appended entries, and carries out each Ready in CCF's order (roll back, append,
// make durable, then send and commit). Owns which node may write: a TxPipeline exists only while
// this node is primary, opened in its view over the same store, tree and ledger.
//
// Durability: a commit index is always a signature on a majority of disks. Consensus commits only
// at signatures, so only they wait for the disk: the primary proposes a signature (and what came
// before it) once it is on its own disk (it counts itself in the quorum), and a backup flushes
// before acknowledging a batch that holds a signature. Other entries are proposed and acknowledged
// as they come, their bytes written with the next flush (one fdatasync per signature, and one in
// the background per BACKGROUND_FLUSH_BYTES, instead of one per batch): an acknowledgement up to X still means every signature up to X is on that disk,
// since batches are carried out in order and a flush covers everything written before it.
//
// Memory: behind commit, the bytes of old entries leave the consensus log (the ledger holds them)
// and the Merkle tree forgets its leaves more than TREE_LEAVES_KEPT behind the commit point (as
// CCF's history `compact` does, with its MAX_HISTORY_LEN). Receipts and historical queries for
// forgotten leaves use the tree each signature stores (node/historical.ts).

import { decodeMessage, encodeMessage } from "../consensus/index.js";
import type { LogEntry, NodeId, Proposal, Raft, Ready, Role } from "../consensus/index.js";
import type { LedgerReplica, LedgerStorage, TxPipeline } from "../ledger/index.js";
import type { MerkleTree } from "../merkle/index.js";

/** The slice of a transport the host uses (see consensus/transport.ts). */
export interface MessageSink {
  send(to: NodeId, payload: Uint8Array): void;
}

export interface ConsensusHostOptions {
  raft: Raft;
  replica: LedgerReplica;
  storage: LedgerStorage;
  transport: MessageSink;
  /**
   * The node's Merkle tree (the one the replica and the pipelines append to): flushed as commit
   * advances, keeping the leaves of the last `treeLeavesKept` seqnos up to the commit point.
   */
  tree?: MerkleTree;
  /** Leaves kept behind the commit point (default TREE_LEAVES_KEPT). */
  treeLeavesKept?: number;
  /** A pipeline in `view` over this node's store/tree/ledger (called on becoming primary). */
  openPipeline(view: number, onAppend: PipelineAppendHook): TxPipeline;
  /**
   * For each transaction the primary appends (not signatures): the configuration it starts, when
   * it changed the set of trusted nodes (a reconfiguration transaction), else undefined.
   */
  configurationOf?(seqno: number): readonly NodeId[] | undefined;
  /** Told of every commit advance (a signature seqno). */
  onCommit?(seqno: number): void;
  /** Told of a commit advance before the store forgets the history up to it (snapshots). */
  beforeCommit?(seqno: number): void;
  /** Told when the log is rolled back to `seqno`. */
  onRollback?(seqno: number): void;
  onRoleChange?(role: Role, view: number, leader: NodeId | undefined): void;
  /** Something failed that leaves this node unable to go on (a replicated entry refused...). */
  onFatal(error: unknown): void;
}

export type PipelineAppendHook = (
  seqno: number,
  view: number,
  entry: Buffer,
  signature: boolean,
) => void;

/** Committed entries whose bytes stay in memory behind commit (for backups slightly behind). */
export const RECENT_ENTRIES_KEPT = 1000;

/**
 * Leaves the tree keeps behind the commit point (~64 bytes each; CCF's MAX_HISTORY_LEN): receipts
 * of recent transactions, the ones clients ask for, come from memory; older ones from the
 * signatures' stored trees.
 */
export const TREE_LEAVES_KEPT = 1000;

/**
 * Bytes appended since the last flush after which one starts in the background, gating nothing:
 * the flush a signature waits for then has at most about this much to write and sync, rather than
 * a whole signature interval's entries (~250 KB under the replication benchmark's load; commit
 * latency there was the same either way, within the swings).
 */
export const BACKGROUND_FLUSH_BYTES = 64 * 1024;

export class ConsensusHost {
  private pipelineValue: TxPipeline | undefined;
  private proposals: Proposal[] = [];
  private proposing: Promise<void> | undefined;
  /** Readies are carried out one at a time, in order (each may await a flush). */
  private chain: Promise<void> = Promise.resolve();
  private commitValue = 0;
  private stopped = false;
  /** Bytes appended since a flush last started. */
  private unflushedBytes = 0;
  private backgroundFlush: Promise<void> | undefined;

  constructor(private readonly o: ConsensusHostOptions) {
    // A recovered ledger starts committed up to its last signature.
    this.commitValue = o.raft.commitIdx;
  }

  /** The writer while this node is primary, else undefined. */
  get pipeline(): TxPipeline | undefined {
    return this.pipelineValue;
  }

  get commitSeqno(): number {
    return this.commitValue;
  }

  get raft(): Raft {
    return this.o.raft;
  }

  /**
   * For the first node of a service: become the writer in the bootstrap view (Raft starts it as
   * primary) before any Ready says so, to write the genesis transaction.
   */
  startAsBootstrapPrimary(): TxPipeline {
    this.openPipeline(this.o.raft.term);
    return this.pipelineValue as TxPipeline;
  }

  tick(): void {
    if (this.stopped) return;
    this.enqueue(this.o.raft.step({ kind: "tick" }));
  }

  /** A frame from another node (already authenticated by the transport). */
  receive(from: NodeId, payload: Uint8Array): void {
    if (this.stopped) return;
    let message: ReturnType<typeof decodeMessage>;
    try {
      message = decodeMessage(payload);
    } catch {
      // A malformed message from a peer is dropped; Raft tolerates loss.
      return;
    }
    this.enqueue(this.o.raft.step({ kind: "receive", from, message }));
  }

  /** Resolves once every Ready queued so far has been carried out. */
  settled(): Promise<void> {
    return this.chain;
  }

  stop(): void {
    this.stopped = true;
    this.pipelineValue?.close();
    this.pipelineValue = undefined;
  }

  private openPipeline(view: number): void {
    this.pipelineValue = this.o.openPipeline(view, (seqno, v, entry, signature) => {
      const proposal: Proposal = { idx: seqno, term: v, isSignature: signature, data: entry };
      const configuration = signature ? undefined : this.o.configurationOf?.(seqno);
      if (configuration !== undefined) proposal.configuration = configuration;
      this.proposals.push(proposal);
      this.unflushedBytes += entry.length;
      this.scheduleProposal();
    });
  }

  /**
   * Proposes what the pipeline appended, a turn of the event loop at a time (one AppendEntries per
   * peer for all of it); a batch that holds a signature first waits for this node's disk (group
   * commit), and only entries appended before that flush began are proposed after it.
   */
  private scheduleProposal(): void {
    // One at a time; what is appended meanwhile waits for the next round (see `finally`).
    if (this.proposing !== undefined) return;
    this.proposing = new Promise<void>((resolve) => setImmediate(resolve))
      .then(async () => {
        if (this.stopped) {
          this.proposals = [];
          return;
        }
        if (this.proposals.length === 0) return;
        const needsDisk = this.proposals.some((p) => p.isSignature);
        const upTo = needsDisk ? this.proposals[this.proposals.length - 1].idx : Infinity;
        if (needsDisk) await this.flush();
        else this.flushIfMuchWaits();
        // A primary that lost its role meanwhile has had its suffix rolled back: nothing to propose.
        if (this.stopped || this.o.raft.role !== "Primary") {
          this.proposals = [];
          return;
        }
        const cut = this.proposals.findIndex((p) => p.idx > upTo);
        const entries = cut === -1 ? this.proposals : this.proposals.slice(0, cut);
        this.proposals = cut === -1 ? [] : this.proposals.slice(cut);
        if (entries.length > 0) this.enqueue(this.o.raft.step({ kind: "propose", entries }));
      })
      .catch((e: unknown) => this.o.onFatal(e))
      .finally(() => {
        this.proposing = undefined;
        if (this.proposals.length > 0) this.scheduleProposal();
      });
  }

  private flush(): Promise<void> {
    this.unflushedBytes = 0;
    return this.o.storage.flush();
  }

  /** Starts a flush that nothing waits for once BACKGROUND_FLUSH_BYTES wait (one at a time). */
  private flushIfMuchWaits(): void {
    if (this.unflushedBytes < BACKGROUND_FLUSH_BYTES || this.backgroundFlush !== undefined) return;
    this.backgroundFlush = this.flush()
      .catch((e: unknown) => {
        if (!this.stopped) this.o.onFatal(e);
      })
      .finally(() => {
        this.backgroundFlush = undefined;
      });
  }

  private enqueue(ready: Ready): void {
    // A primary stepping down stops writing at once, not when this Ready's turn comes: nothing
    // may be appended after the point consensus rolls the unproposed suffix back to.
    if (ready.roleChange !== undefined && ready.roleChange.role !== "Primary") {
      this.pipelineValue?.close();
    }
    this.chain = this.chain.then(() => this.apply(ready)).catch((e: unknown) => this.o.onFatal(e));
  }

  private async apply(ready: Ready): Promise<void> {
    if (this.stopped) return;
    if (ready.rollbackTo !== undefined) {
      this.proposals = this.proposals.filter((p) => p.idx <= (ready.rollbackTo as number));
      this.o.replica.rollback(ready.rollbackTo);
      this.o.onRollback?.(ready.rollbackTo);
    }
    if (ready.appends.length > 0) {
      const entries = ready.appends.map((e) => ({ seqno: e.idx, bytes: Buffer.from(e.data) }));
      const done = this.o.replica.prepare(entries);
      try {
        for (let i = 0; i < entries.length; i++) {
          this.applyEntry(ready.appends[i], entries[i].bytes);
        }
      } finally {
        done();
      }
      for (const e of entries) this.unflushedBytes += e.bytes.length;
      // Acknowledged next: a signature must be on this disk first (see the head of this file).
      if (ready.appends.some((e) => e.isSignature)) await this.flush();
      else this.flushIfMuchWaits();
    }
    for (const out of ready.messages) this.o.transport.send(out.to, encodeMessage(out.message));
    if (ready.commitIdx !== undefined && ready.commitIdx > this.commitValue) {
      this.commitValue = ready.commitIdx;
      this.o.beforeCommit?.(ready.commitIdx);
      this.o.replica.committed(ready.commitIdx);
      // The ledger holds committed entries: keep only the recent ones' bytes in memory.
      this.o.raft.releaseEntryData(ready.commitIdx - RECENT_ENTRIES_KEPT);
      this.flushTree(ready.commitIdx);
      this.o.onCommit?.(ready.commitIdx);
    }
    if (ready.roleChange !== undefined) {
      const { role, term, leader } = ready.roleChange;
      this.pipelineValue?.close();
      if (role === "Primary") this.openPipeline(term);
      else this.pipelineValue = undefined;
      this.o.onRoleChange?.(role, term, leader);
    }
    if (ready.shouldSign) {
      // The Ready that asks to sign carries (or follows) the role change that opened the pipeline.
      if (this.pipelineValue === undefined) {
        throw new Error(`asked to sign while not primary (role ${this.o.raft.role})`);
      }
      this.pipelineValue.emitSignature();
    }
  }

  /**
   * CCF's history `compact`: forgets the tree's leaves more than `treeLeavesKept` behind `commit`.
   * Nothing needs them any more: a rollback never goes behind commit; a signature serialises the
   * tree from its previous signature or the flush point, whichever is later; the snapshotter
   * reads the leaf of a snapshot point in `beforeCommit` (just above), never of a point behind an
   * earlier commit (the store no longer has the state there); roots for governance are taken at a
   * transaction's read version (a conflict, retried, if it was flushed meanwhile: see Node);
   * receipts and historical queries for flushed leaves read the signatures' stored trees.
   */
  private flushTree(commit: number): void {
    const tree = this.o.tree;
    if (tree === undefined) return;
    const upTo = Math.min(commit - (this.o.treeLeavesKept ?? TREE_LEAVES_KEPT), tree.size);
    if (upTo > tree.minIndex) tree.flush(upTo);
  }

  private applyEntry(e: LogEntry, bytes: Buffer): void {
    const applied = this.o.replica.apply(e.idx, bytes);
    if (applied.view !== e.term || applied.isSignature !== e.isSignature) {
      throw new Error(
        `entry ${e.idx} is ${applied.view}/${applied.isSignature}, consensus says ${e.term}/${e.isSignature}`,
      );
    }
  }
}
