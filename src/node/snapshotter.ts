// The node's snapshotter, as CCF's (src/node/snapshotter.h): every signature is a possible snapshot
// point; one becomes a snapshot point once `txCount` transactions have passed since the last
// unforced one, or at the first signature after `trigger_snapshot`. When the commit point reaches a
// snapshot point, the primary captures the store as it was there, writes the evidence transaction
// (its claims digest is the snapshot's digest) and the pending file `snapshot_<seqno>_<evidence>`;
// once a signature after the evidence commits, the evidence's receipt is appended and the file is
// renamed `.committed`.
//
// The store keeps the state of a past version only in its undo log, which `Store.compact` (called
// by `TxPipeline.committed`) forgets: `commit()` must run before the pipeline is told of the same
// commit point, so the snapshot point (at or below it) is still readable.

import { promises as fsp } from "node:fs";
import { join } from "node:path";
import { setImmediate as nextTurn } from "node:timers/promises";
import {
  captureSnapshot,
  SnapshotSerialiser,
  type SnapshotCapture,
  type SnapshotLayout,
  type SnapshotOptions,
  type Store,
  viewHistoryUntil,
} from "../kv/index.js";
import {
  commitSnapshotFile,
  type EntryParts,
  encodeSnapshotEntry,
  type LedgerSecret,
  type LedgerSecrets,
  snapshotDigest,
  snapshotEvidenceValue,
  snapshotFileName,
  writeSnapshotFile,
} from "../ledger/index.js";
import type { MerkleTree, Receipt } from "../merkle/index.js";

/** CCF's limit: no new snapshot while this many await their evidence's commit. */
export const MAX_PENDING_SNAPSHOTS = 5;

/**
 * Entries serialised between two turns of the event loop (1-2 ms of work): a snapshot of a large
 * store (~1 µs per entry in all) no longer holds up every request for its whole duration.
 */
const SLICE_ENTRIES = 4096;

export interface SnapshotterOptions {
  /** `snapshots.directory`: where pending and committed snapshot files are written. */
  dir: string;
  /** `snapshots.tx_count`: transactions between two (unforced) snapshots. */
  txCount: number;
  store: Store;
  /** The node's Merkle tree: the snapshot's "hash at snapshot" is its leaf at the snapshot seqno. */
  tree: MerkleTree;
  /** The ledger secrets; the one in force at the snapshot's seqno encrypts its private maps. */
  secrets: () => LedgerSecrets;
  /** Where each view starts (consensus's view history). */
  viewHistory: () => ReadonlyArray<{ view: number; seqno: number }>;
  /**
   * The seqno of the snapshot this node started from (CCF's `set_last_snapshot_idx`), so the
   * interval goes on from there; 0 when the node started without one.
   */
  startSeqno?: number;
  log?: (msg: string, err?: unknown) => void;
}

/** A snapshot captured from the store, ready to be written once its evidence has a seqno. */
export interface PreparedSnapshot {
  /** The seqno whose state it holds. */
  seqno: number;
  /** The encrypted snapshot entry, as pieces. */
  entry: EntryParts;
  /** SHA-256 of the entry: the evidence's hash and its transaction's claims digest. */
  digest: Buffer;
  /** What the evidence transaction writes at SNAPSHOT_EVIDENCE_KEY in SNAPSHOT_EVIDENCE. */
  evidenceValue: Buffer;
  /** Entries serialised, and how many of them were copied from the previous snapshot. */
  entries: number;
  reused: number;
}

/** A snapshot whose file is written and whose evidence awaits commit. */
export interface PendingSnapshot {
  seqno: number;
  evidenceSeqno: number;
  digest: Buffer;
  /** The pending file (`snapshot_<seqno>_<evidence>`). */
  path: string;
}

interface SnapshotPoint {
  seqno: number;
  forced: boolean;
  done: boolean;
}

export class Snapshotter {
  private readonly o: SnapshotterOptions;
  /** CCF's `next_snapshot_indices`: the recorded points not yet passed by the commit point. */
  private points: SnapshotPoint[];
  /** The last unforced snapshot point reached by the commit point (CCF's last_snapshot_idx). */
  private lastSnapshotSeqno: number;
  private forceNext = false;
  private readonly pending: PendingSnapshot[] = [];
  /** Snapshots captured and not yet written (between `commit` and `writePending`). */
  private inFlight = 0;
  private enabled = true;
  /** The last snapshot's layout: the next one copies the entries that did not change since. */
  private layout: SnapshotLayout | undefined;

  constructor(options: SnapshotterOptions) {
    if (!Number.isInteger(options.txCount) || options.txCount < 1) {
      throw new RangeError(`snapshots.tx_count must be a positive integer, got ${options.txCount}`);
    }
    this.o = options;
    this.lastSnapshotSeqno = options.startSeqno ?? 0;
    this.points = [{ seqno: this.lastSnapshotSeqno, forced: false, done: true }];
  }

  /** Snapshots written and awaiting their evidence's commit, oldest first. */
  get pendingSnapshots(): readonly PendingSnapshot[] {
    return [...this.pending];
  }

  /** The last snapshot point reached by the commit point (forced ones aside). */
  get lastSnapshot(): number {
    return this.lastSnapshotSeqno;
  }

  /** Turns generation off (CCF does during a public recovery) or back on. */
  setGeneration(enabled: boolean): void {
    this.enabled = enabled;
  }

  /** trigger_snapshot: the next signature is a snapshot point whatever the interval. */
  requestSnapshot(): void {
    this.forceNext = true;
  }

  private lastUnforced(): number {
    for (let i = this.points.length - 1; i >= 0; i--) {
      if (!this.points[i].forced) return this.points[i].seqno;
    }
    return this.lastSnapshotSeqno;
  }

  /**
   * Whether the signature at `signatureSeqno` would be a snapshot point: `txCount` transactions
   * since the last unforced point, or a snapshot was requested. Reads only; `recordCommittable`
   * records the decision.
   */
  shouldSnapshotAt(signatureSeqno: number): boolean {
    return this.forceNext || signatureSeqno - this.lastUnforced() >= this.o.txCount;
  }

  /**
   * Whether a snapshot is due by the interval at the signature at `signatureSeqno` (what
   * `recordCommittable` would return): CCF ends the ledger chunk after such a signature.
   */
  dueAt(signatureSeqno: number): boolean {
    return signatureSeqno - this.lastUnforced() >= this.o.txCount;
  }

  /**
   * CCF's `record_committable`: call for every signature appended (or replicated: backups too, so
   * a backup that becomes primary keeps the interval), in seqno order. Records the signature as a
   * snapshot point when `shouldSnapshotAt` says so. Returns true when the point is due by the
   * interval (not merely forced): CCF then ends a ledger chunk after that signature.
   */
  recordCommittable(signatureSeqno: number): boolean {
    const last = this.points[this.points.length - 1];
    if (signatureSeqno < last.seqno) {
      throw new RangeError(
        `committable seqno ${signatureSeqno} is before the last snapshot point ${last.seqno}`,
      );
    }
    const due = this.dueAt(signatureSeqno);
    if (due || this.forceNext) {
      this.points.push({ seqno: signatureSeqno, forced: !due, done: false });
      this.forceNext = false;
      return due;
    }
    return false;
  }

  /**
   * CCF's `commit`: the commit point reached `commitSeqno`. Call it BEFORE the pipeline's
   * `committed(commitSeqno)` (which compacts the store). With `generate` (this node is primary),
   * captures the store at the latest snapshot point at or below `commitSeqno` when one is due
   * and returns its preparation (serialised a slice at a time, as CCF serialises snapshots
   * asynchronously): once it resolves, the caller writes the evidence transaction and calls
   * `writePending`. Returns undefined when nothing is due, on a backup, or when the state is no
   * longer readable (logged).
   */
  commit(commitSeqno: number, generate: boolean): Promise<PreparedSnapshot> | undefined {
    // A backup generates nothing: the last layout would only hold its memory.
    if (!generate) this.layout = undefined;
    while (this.points.length > 1 && this.points[1].seqno <= commitSeqno) this.points.shift();
    const next = this.points[0];
    if (commitSeqno < next.seqno) return undefined;
    const due = next.seqno - this.lastSnapshotSeqno >= this.o.txCount;
    let out: Promise<PreparedSnapshot> | undefined;
    if (due || (next.forced && !next.done)) {
      if (this.enabled && generate && next.seqno !== 0) {
        next.done = true;
        if (this.pending.length + this.inFlight >= MAX_PENDING_SNAPSHOTS) {
          this.o.log?.(
            `skipping the snapshot at ${next.seqno}: ${MAX_PENDING_SNAPSHOTS} snapshots are pending`,
          );
        } else {
          try {
            out = this.prepare(next.seqno);
          } catch (e) {
            this.o.log?.(`could not capture the snapshot at ${next.seqno}`, e);
          }
        }
      }
      // As CCF, only unforced points move the interval, so backups (which never see forced
      // points) agree with the primary on the next one.
      if (due && !next.forced) this.lastSnapshotSeqno = next.seqno;
    }
    return out;
  }

  /**
   * Captures the store as it was at `seqno` (which must still be in its undo window: at or after
   * `store.compactedVersion`, at or before `store.version`) synchronously: throws ConflictError if
   * the state is gone. The capture is then serialised a slice at a time (the store may move on and
   * compact meanwhile) and encrypted under the secret in force at `seqno`.
   */
  prepare(seqno: number): Promise<PreparedSnapshot> {
    const capture = captureSnapshot(this.o.store, seqno);
    const options: SnapshotOptions = {
      viewHistory: viewHistoryUntil(this.o.viewHistory(), seqno),
      hashAtSnapshot: this.o.tree.leaf(seqno),
    };
    const secret = this.o.secrets().forSeqno(seqno);
    this.inFlight++;
    return this.serialise(capture, options, secret).catch((e: unknown) => {
      this.inFlight = Math.max(0, this.inFlight - 1);
      throw e;
    });
  }

  private async serialise(
    capture: SnapshotCapture,
    options: SnapshotOptions,
    secret: LedgerSecret,
  ): Promise<PreparedSnapshot> {
    const serialiser = new SnapshotSerialiser(capture, options, this.layout);
    while (!serialiser.step(SLICE_ENTRIES)) await nextTurn();
    this.layout = serialiser.layout;
    const seqno = capture.version;
    const entry = encodeSnapshotEntry(serialiser.domains, seqno, secret);
    const digest = snapshotDigest(entry);
    let entries = 0;
    for (const m of capture.maps) entries += m.keys.length;
    return {
      seqno,
      entry,
      digest,
      evidenceValue: snapshotEvidenceValue(digest, seqno),
      entries,
      reused: serialiser.reused,
    };
  }

  /**
   * Writes the prepared snapshot to `snapshot_<seqno>_<evidenceSeqno>` (synced) and remembers it
   * until its evidence commits. `evidenceSeqno` is the seqno of the evidence transaction.
   */
  async writePending(prepared: PreparedSnapshot, evidenceSeqno: number): Promise<PendingSnapshot> {
    this.inFlight = Math.max(0, this.inFlight - 1);
    const path = await writeSnapshotFile(this.o.dir, prepared.seqno, evidenceSeqno, prepared.entry);
    const p: PendingSnapshot = {
      seqno: prepared.seqno,
      evidenceSeqno,
      digest: prepared.digest,
      path,
    };
    this.pending.push(p);
    this.pending.sort((a, b) => a.evidenceSeqno - b.evidenceSeqno);
    return p;
  }

  /** A prepared snapshot that will not be written (its evidence failed to commit). */
  abandon(_prepared: PreparedSnapshot): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
  }

  /**
   * Prepares a snapshot at `seqno`, has the caller append its evidence (returning the evidence
   * transaction's seqno), and writes the pending file: the three steps at once, for a caller
   * that appends synchronously.
   */
  async snapshotAt(
    seqno: number,
    appendEvidence: (prepared: PreparedSnapshot) => number,
  ): Promise<PendingSnapshot> {
    const prepared = await this.prepare(seqno);
    let evidenceSeqno: number;
    try {
      evidenceSeqno = appendEvidence(prepared);
    } catch (e) {
      this.abandon(prepared);
      throw e;
    }
    return this.writePending(prepared, evidenceSeqno);
  }

  /**
   * Commits every pending snapshot whose evidence is covered by a committed signature (the commit
   * point is past the evidence, which is not itself a signature): its receipt, from `receiptFor`,
   * is appended and the file renamed `.committed`. A snapshot whose receipt is not available yet
   * stays pending for the next call. Returns the committed files' paths.
   */
  async onCommit(
    commitSeqno: number,
    receiptFor: (evidenceSeqno: number) => Receipt | undefined | Promise<Receipt | undefined>,
  ): Promise<string[]> {
    const done: string[] = [];
    for (const p of [...this.pending]) {
      if (p.evidenceSeqno >= commitSeqno) continue;
      let receipt: Receipt | undefined;
      try {
        receipt = await receiptFor(p.evidenceSeqno);
      } catch (e) {
        this.o.log?.(`no receipt yet for the evidence of snapshot ${p.seqno}`, e);
        continue;
      }
      if (receipt === undefined) continue;
      const i = this.pending.indexOf(p);
      if (i === -1) continue; // rolled back meanwhile
      this.pending.splice(i, 1);
      try {
        done.push(await commitSnapshotFile(this.o.dir, p.seqno, p.evidenceSeqno, receipt));
      } catch (e) {
        this.o.log?.(`could not commit snapshot ${p.seqno}`, e);
      }
    }
    return done;
  }

  /**
   * The synchronous part of `rollback`: snapshot points after `seqno` are forgotten. It must run
   * when the log is rolled back, before the entries that replace the rolled-back ones are applied
   * (their signatures are recorded as points in seqno order).
   */
  rollbackPoints(seqno: number): void {
    while (this.points.length > 0 && this.points[this.points.length - 1].seqno > seqno) {
      this.points.pop();
    }
    if (this.points.length === 0) {
      this.points.push({ seqno: this.lastSnapshotSeqno, forced: false, done: true });
    }
  }

  /**
   * CCF's `rollback`: the log was truncated after `seqno`. Snapshot points after it are forgotten,
   * and so are pending snapshots whose evidence was rolled back; their files are deleted (a new
   * evidence may land at the same seqno, and the file name would clash).
   */
  async rollback(seqno: number): Promise<void> {
    this.rollbackPoints(seqno);
    const dropped = this.pending.filter((p) => p.evidenceSeqno > seqno);
    for (const p of dropped) this.pending.splice(this.pending.indexOf(p), 1);
    for (const p of dropped) {
      try {
        await fsp.rm(join(this.o.dir, snapshotFileName(p.seqno, p.evidenceSeqno)), {
          force: true,
        });
      } catch (e) {
        this.o.log?.(`could not delete the rolled-back snapshot ${p.path}`, e);
      }
    }
  }
}
