// The consensus log as Raft needs it, in memory that does not grow with committed history: entries
// are held whole only while their bytes are (the uncommitted tail and the recent committed ones);
// for every index the term comes from the runs of each view, the signature flag from a sorted list
// of signature indices, and the configuration from the few reconfiguration entries. An entry whose
// object was released is rebuilt from those, its bytes read back from the ledger.

import { invariant } from "./errors.js";
import type { ViewStart } from "./tx-status.js";
import type { LogEntry, NodeId } from "./types.js";

/** Released entries stay in the array (as undefined) until there are at least this many. */
const MIN_COMPACTION = 1024;

export interface RaftLogOptions {
  /** Entries up to `base` are committed and not part of this log (a snapshot; 0 for none). */
  base: number;
  /** The term of the entry at `base`. */
  baseTerm: number;
  /** Where each view started up to `base` (CCF's view history, from a snapshot). */
  baseViews?: readonly ViewStart[];
  /** Reads a released entry's bytes back (from the ledger). Without it nothing can be released. */
  readData?: (idx: number) => Uint8Array | undefined;
}

/** Binary search: the number of items of an ascending list whose key is at most `key`. */
function countAtMost<T>(items: readonly T[], key: number, keyOf: (item: T) => number): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keyOf(items[mid]) <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const identity = (n: number): number => n;
const seqnoOf = (v: ViewStart): number => v.seqno;
const idxOf = (c: { idx: number }): number => c.idx;

export class RaftLog {
  readonly base: number;
  readonly baseTerm: number;
  private readonly baseViews: readonly ViewStart[];
  private readonly readData: ((idx: number) => Uint8Array | undefined) | undefined;
  private last: number;
  /** Where each view starts among base+1..last, ascending (one run per view). */
  private runs: ViewStart[] = [];
  /** The signature indices among base+1..last, ascending. */
  private signatures: number[] = [];
  /** The entries among base+1..last that start a configuration, ascending. */
  private configurations: Array<{ idx: number; nodes: readonly NodeId[] }> = [];
  /** Entries up to this index are released: only their term, flag and configuration are kept. */
  private releasedUpTo: number;
  /**
   * Entries releasedUpTo+1..last from `entries[offset]` on; the slots before `offset` are
   * released ones (undefined), spliced away once they outnumber the held ones (amortised O(1)).
   */
  private entries: Array<LogEntry | undefined> = [];
  private offset = 0;

  constructor(options: RaftLogOptions) {
    invariant(
      Number.isSafeInteger(options.base) && options.base >= 0,
      () => `log base ${options.base} is not an index`,
    );
    this.base = options.base;
    this.baseTerm = options.baseTerm;
    this.baseViews = [...(options.baseViews ?? [])];
    this.readData = options.readData;
    this.last = options.base;
    this.releasedUpTo = options.base;
  }

  /** The last index of the log (base when it holds no entry). */
  get lastIdx(): number {
    return this.last;
  }

  /**
   * The slots of entries in memory (for tests of the memory bound): the held entries, and released
   * ones not yet compacted away (never more than the held ones, or MIN_COMPACTION).
   */
  get heldEntries(): number {
    return this.entries.length;
  }

  /** Entries up to this index are not held (their bytes are in the ledger). */
  get releasedIdx(): number {
    return this.releasedUpTo;
  }

  /** The term of the entry at idx (0 for idx 0, baseTerm at base), undefined outside the log. */
  term(idx: number): number | undefined {
    if (idx === this.base) return this.baseTerm;
    if (idx === 0) return 0;
    if (!this.holds(idx)) return undefined;
    return this.runs[countAtMost(this.runs, idx, seqnoOf) - 1].view;
  }

  /** Whether the entry at idx (base < idx <= lastIdx) is a signature. */
  isSignature(idx: number): boolean {
    const n = countAtMost(this.signatures, idx, identity);
    return n > 0 && this.signatures[n - 1] === idx;
  }

  /** The configuration the entry at idx starts, if it is a reconfiguration entry. */
  configurationAt(idx: number): readonly NodeId[] | undefined {
    const n = countAtMost(this.configurations, idx, idxOf);
    const c = this.configurations[n - 1];
    return c?.idx === idx ? c.nodes : undefined;
  }

  /** The first signature at or after idx in the log. */
  signatureAtOrAfter(idx: number): number | undefined {
    return this.signatures[countAtMost(this.signatures, idx - 1, identity)];
  }

  /** The last signature in lo..hi, if any. */
  lastSignatureIn(lo: number, hi: number): number | undefined {
    const s = this.signatures[countAtMost(this.signatures, hi, identity) - 1];
    return s !== undefined && s >= lo ? s : undefined;
  }

  /**
   * The entry at idx, or undefined outside base+1..lastIdx. A held entry comes back as appended; a
   * released one is rebuilt, its bytes read back.
   */
  entry(idx: number): LogEntry | undefined {
    if (!this.holds(idx)) return undefined;
    if (idx > this.releasedUpTo) return this.entries[this.slot(idx)];
    const data = this.readData?.(idx);
    invariant(data !== undefined, () => `entry ${idx} was released and cannot be read back`);
    const e: LogEntry = {
      idx,
      term: this.term(idx) as number,
      isSignature: this.isSignature(idx),
      data,
    };
    const configuration = this.configurationAt(idx);
    if (configuration !== undefined) e.configuration = configuration;
    return e;
  }

  /** Where each view starts: the base views, then those of the entries. */
  viewHistory(): ViewStart[] {
    const out: ViewStart[] = this.baseViews.map((v) => ({ ...v }));
    let lastView = out.at(-1)?.view ?? -1;
    for (const r of this.runs) {
      if (r.view !== lastView) out.push({ ...r });
      lastView = r.view;
    }
    return out;
  }

  append(e: LogEntry): void {
    invariant(e.idx === this.last + 1, () => `entry ${e.idx} appended after ${this.last}`);
    const prevTerm = this.term(this.last) as number;
    invariant(e.term >= prevTerm, () => `entry ${e.idx} in view ${e.term} after view ${prevTerm}`);
    if (this.runs.at(-1)?.view !== e.term) this.runs.push({ view: e.term, seqno: e.idx });
    if (e.isSignature) this.signatures.push(e.idx);
    if (e.configuration !== undefined) {
      this.configurations.push({ idx: e.idx, nodes: e.configuration });
    }
    this.entries.push(e);
    this.last = e.idx;
  }

  /** Drops the entries after idx. Released entries cannot be dropped (they are committed). */
  truncate(idx: number): void {
    invariant(
      idx >= this.releasedUpTo && idx <= this.last,
      () => `truncation to ${idx} outside ${this.releasedUpTo}..${this.last}`,
    );
    this.runs.length = countAtMost(this.runs, idx, seqnoOf);
    this.signatures.length = countAtMost(this.signatures, idx, identity);
    this.configurations.length = countAtMost(this.configurations, idx, idxOf);
    this.entries.length = this.slot(idx) + 1;
    this.last = idx;
  }

  /**
   * Stops holding the entries up to `upTo` (the caller knows them committed and in the ledger):
   * what remains of them is their term, signature flag and configuration.
   */
  release(upTo: number): void {
    invariant(this.readData !== undefined, () => "entries released with no way to read them back");
    invariant(upTo <= this.last, () => `release up to ${upTo} past the log's end ${this.last}`);
    if (upTo <= this.releasedUpTo) return;
    const end = this.slot(upTo);
    for (let i = this.offset; i <= end; i++) this.entries[i] = undefined;
    this.offset = end + 1;
    this.releasedUpTo = upTo;
    if (this.offset >= MIN_COMPACTION && this.offset >= this.entries.length - this.offset) {
      this.entries.splice(0, this.offset);
      this.offset = 0;
    }
  }

  private holds(idx: number): boolean {
    return Number.isSafeInteger(idx) && idx > this.base && idx <= this.last;
  }

  /** The position in `entries` of a held idx (releasedUpTo < idx <= last). */
  private slot(idx: number): number {
    return this.offset + idx - this.releasedUpTo - 1;
  }
}
