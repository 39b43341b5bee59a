// Where ledger entries are kept: the interface the pipeline and consensus write through, and an
// in-memory implementation for simulation. The file-backed one is in file-ledger.ts.

import { CcfError } from "../errors.js";

export interface AppendOptions {
  /** The entry is a signature transaction: the only place a chunk may end. */
  signature: boolean;
  /** End the chunk after this entry even if it is not full (CCF's FORCE_LEDGER_CHUNK_AFTER). */
  forceChunkAfter?: boolean;
}

export interface LedgerStorage {
  /** Seqno of the last appended entry (0 when empty). */
  readonly lastSeqno: number;
  /** Seqno up to which appended entries are known to be on disk. */
  readonly durableSeqno: number;
  /** Appends the entry for `seqno`, which must be lastSeqno + 1. Durable only after flush(). */
  append(seqno: number, entry: Buffer, options: AppendOptions): void;
  /** Resolves once every entry appended before the call is durable (group commit). */
  flush(): Promise<void>;
  /** The entry at a seqno, if held. */
  read(seqno: number): Buffer | undefined;
  /**
   * The entry at a seqno, read without blocking the event loop on disk I/O (historical queries of
   * old entries); undefined if not held.
   */
  readAsync(seqno: number): Promise<Buffer | undefined>;
  /** Drops every entry after `seqno` (consensus rolling back an uncommitted suffix). */
  truncate(seqno: number): void;
  /** Records that entries up to `seqno` are committed (complete chunks become `.committed`). */
  commit(seqno: number): void;
  close(): Promise<void>;
}

export class LedgerError extends CcfError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, 500, options);
  }
}

export function checkNextSeqno(last: number, seqno: number): void {
  if (seqno !== last + 1) {
    throw new LedgerError("LedgerOutOfOrder", `appending seqno ${seqno} after ${last}`);
  }
}

/** Entries in memory: for the deterministic simulator, where "disk" is part of the model. */
export class MemoryLedger implements LedgerStorage {
  private readonly entries: Buffer[] = [];
  private committed = 0;
  private durable = 0;

  get lastSeqno(): number {
    return this.entries.length;
  }

  get durableSeqno(): number {
    return this.durable;
  }

  get commitSeqno(): number {
    return this.committed;
  }

  append(seqno: number, entry: Buffer, _options: AppendOptions): void {
    checkNextSeqno(this.entries.length, seqno);
    this.entries.push(entry);
  }

  flush(): Promise<void> {
    this.durable = this.entries.length;
    return Promise.resolve();
  }

  read(seqno: number): Buffer | undefined {
    return this.entries[seqno - 1];
  }

  readAsync(seqno: number): Promise<Buffer | undefined> {
    return Promise.resolve(this.read(seqno));
  }

  truncate(seqno: number): void {
    if (seqno < this.committed) {
      throw new LedgerError(
        "LedgerTruncateCommitted",
        `cannot truncate to ${seqno}: committed up to ${this.committed}`,
      );
    }
    this.entries.length = Math.min(this.entries.length, seqno);
    this.durable = Math.min(this.durable, seqno);
  }

  commit(seqno: number): void {
    this.committed = Math.max(this.committed, Math.min(seqno, this.entries.length));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
