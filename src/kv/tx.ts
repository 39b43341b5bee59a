// A transaction: reads the store as of one version, buffers its writes, and records what it read
// so that commit can detect a conflicting commit (optimistic concurrency, as CCF's KV).

import { ConflictError } from "../errors.js";
import { type KeyString, keyFromString, keyToString, lowerBound } from "./keys.js";
import type { MapState, Store } from "./store.js";
import type { MapWrites, WriteSet } from "./write-set.js";

interface MapReads {
  /** Keys read individually. */
  keys: Set<KeyString>;
  /** Key ranges [from, to) scanned (beyond CCF); a bound left out is unbounded. */
  ranges: KeyRange[];
  /** The whole map was observed (iteration, size). */
  whole: boolean;
}

interface KeyRange {
  from: KeyString | undefined;
  to: KeyString | undefined;
}

/** How `TxMap.range` walks a range: backwards (from the top) and/or stopping after `limit` entries. */
export interface RangeOptions {
  reverse?: boolean;
  /** At most this many entries (a non-negative integer); unlimited if left out. */
  limit?: number;
}

export class Tx {
  private readonly writes: WriteSet = new Map();
  private readonly reads = new Map<string, MapReads>();
  private readonly handles = new Map<string, TxMap>();

  constructor(
    private readonly store: Store,
    /** The version this transaction reads at. */
    readonly readVersion: number,
  ) {}

  /** A handle on one map; the map need not exist yet (it is created by its first write). */
  map(name: string): TxMap {
    let h = this.handles.get(name);
    if (h === undefined) {
      h = new TxMap(this, name);
      this.handles.set(name, h);
    }
    return h;
  }

  writeSet(): WriteSet {
    return this.writes;
  }

  /** Names of maps this transaction read or wrote. */
  touchedMaps(): string[] {
    return [...new Set([...this.reads.keys(), ...this.writes.keys()])];
  }

  hasWrites(): boolean {
    for (const w of this.writes.values()) if (w.size > 0) return true;
    return false;
  }

  /** Throws ConflictError if something this transaction read has been written since it began. */
  checkStillValid(): void {
    for (const [name, r] of this.reads) {
      const state = this.store.mapState(name);
      if (state === undefined) continue;
      if (r.whole) {
        if (state.version > this.readVersion) this.conflict(name);
        continue;
      }
      for (const key of r.keys) this.committedEntry(state, name, key);
      for (const range of r.ranges) {
        if (this.store.writtenInRange(name, range.from, range.to, this.readVersion)) {
          this.conflict(name);
        }
      }
    }
  }

  /** @internal */
  mapWrites(name: string, create: boolean): MapWrites | undefined {
    let w = this.writes.get(name);
    if (w === undefined && create) {
      w = new Map();
      this.writes.set(name, w);
    }
    return w;
  }

  /** @internal */
  state(name: string): MapState | undefined {
    return this.store.mapState(name);
  }

  /** @internal */
  recordRead(name: string, key: KeyString | undefined): void {
    const r = this.mapReads(name);
    if (key === undefined) r.whole = true;
    else r.keys.add(key);
  }

  /**
   * Records that the keys in [from, to) were observed (a range scan), so that a later write of any
   * key in it (set, removal or insertion of a new key: a phantom) conflicts; and, since the store
   * holds only the latest state, throws at once if such a write has already happened after the
   * read version (what the scan saw would not be the state at the read version).
   * @internal
   */
  readRange(name: string, from: KeyString | undefined, to: KeyString | undefined): void {
    if (from !== undefined && to !== undefined && from >= to) return;
    if (from === undefined && to === undefined) {
      this.recordRead(name, undefined);
    } else {
      const r = this.mapReads(name);
      if (!r.whole) r.ranges.push({ from, to });
    }
    if (this.store.writtenInRange(name, from, to, this.readVersion)) this.conflict(name);
  }

  private mapReads(name: string): MapReads {
    let r = this.reads.get(name);
    if (r === undefined) {
      r = { keys: new Set(), ranges: [], whole: false };
      this.reads.set(name, r);
    }
    return r;
  }

  /**
   * The committed entry of a key as of the read version. A key written after the read version, or
   * a removal whose tombstone is gone, means the consistent view is lost: a conflict.
   * @internal
   */
  committedEntry(
    state: MapState | undefined,
    name: string,
    key: KeyString,
  ): { value: Uint8Array | null; version: number } | undefined {
    if (state === undefined) return undefined;
    const e = state.entries.get(key);
    if (e === undefined) {
      if (state.tombstonesDroppedAt > this.readVersion) this.conflict(name);
      return undefined;
    }
    if (e.version > this.readVersion) this.conflict(name);
    return e;
  }

  /** @internal */
  conflict(name: string): never {
    throw new ConflictError(`map ${name} changed after version ${this.readVersion}`);
  }
}

/** One map as seen by a transaction: its own writes over the committed state at the read version. */
export class TxMap {
  constructor(
    private readonly tx: Tx,
    readonly name: string,
  ) {}

  get(key: Uint8Array): Uint8Array | undefined {
    return this.getByString(keyToString(key));
  }

  has(key: Uint8Array): boolean {
    return this.getByString(keyToString(key)) !== undefined;
  }

  set(key: Uint8Array, value: Uint8Array): void {
    this.setByString(keyToString(key), value);
  }

  /** Removes a key; returns whether it was present. */
  delete(key: Uint8Array): boolean {
    const k = keyToString(key);
    const present = this.getByString(k) !== undefined;
    this.removeByString(k);
    return present;
  }

  /** Version of the last committed write of the key, as of the read version (undefined if none). */
  getVersionOfPreviousWrite(key: Uint8Array): number | undefined {
    const k = keyToString(key);
    this.tx.recordRead(this.name, k);
    const e = this.tx.committedEntry(this.tx.state(this.name), this.name, k);
    return e === undefined || e.value === null ? undefined : e.version;
  }

  /** Removes every key. */
  clear(): void {
    for (const k of this.liveKeys()) this.removeByString(k);
  }

  get size(): number {
    return this.liveKeys().length;
  }

  /** Visits entries in key byte order. */
  forEach(fn: (value: Uint8Array, key: Uint8Array) => void): void {
    for (const k of this.liveKeys()) fn(this.getByString(k) as Uint8Array, keyFromString(k));
  }

  /**
   * Entries with from <= key < to (beyond CCF: ordered range scans), this transaction's own writes
   * included, in key byte order (unsigned, lexicographic; a prefix sorts first), or in reverse
   * order with `reverse`. A bound left out is unbounded; from >= to is an empty range. Only the
   * part of the range the scan covered joins the read set: all of it, or, when `limit` cut the
   * scan short, up to and including the last key returned (down to it, in reverse).
   */
  range(
    from?: Uint8Array,
    to?: Uint8Array,
    options: RangeOptions = {},
  ): Array<[Uint8Array, Uint8Array]> {
    const lo = from === undefined ? undefined : keyToString(from);
    const hi = to === undefined ? undefined : keyToString(to);
    const out: Array<[Uint8Array, Uint8Array]> = [];
    for (const k of this.rangeKeys(lo, hi, options)) {
      out.push([keyFromString(k), this.valueOf(k) as Uint8Array]);
    }
    return out;
  }

  getByString(key: KeyString): Uint8Array | undefined {
    const own = this.tx.mapWrites(this.name, false)?.get(key);
    if (own !== undefined) return own ?? undefined;
    this.tx.recordRead(this.name, key);
    const e = this.tx.committedEntry(this.tx.state(this.name), this.name, key);
    return e?.value ?? undefined;
  }

  setByString(key: KeyString, value: Uint8Array): void {
    (this.tx.mapWrites(this.name, true) as MapWrites).set(key, value);
  }

  removeByString(key: KeyString): void {
    (this.tx.mapWrites(this.name, true) as MapWrites).set(key, null);
  }

  /** The value a key has in this transaction, without recording a read (the caller has). */
  private valueOf(key: KeyString): Uint8Array | undefined {
    const own = this.tx.mapWrites(this.name, false)?.get(key);
    if (own !== undefined) return own ?? undefined;
    return this.tx.state(this.name)?.entries.get(key)?.value ?? undefined;
  }

  /**
   * Live keys of [from, to) merged with this transaction's writes, in order (or reversed), at most
   * `limit` of them; the range they cover is read (recorded, and checked at once).
   */
  private rangeKeys(
    from: KeyString | undefined,
    to: KeyString | undefined,
    { reverse = false, limit = Number.POSITIVE_INFINITY }: RangeOptions,
  ): KeyString[] {
    const out: KeyString[] = [];
    if ((from !== undefined && to !== undefined && from >= to) || limit <= 0) return out;
    const committed = this.tx.state(this.name)?.sortedKeys() ?? [];
    const start = from === undefined ? 0 : lowerBound(committed, from);
    const end = Math.max(start, to === undefined ? committed.length : lowerBound(committed, to));
    // This transaction's writes in the range, sorted: [key, still live].
    const own: Array<[KeyString, boolean]> = [];
    for (const [k, v] of this.tx.mapWrites(this.name, false) ?? []) {
      if ((from !== undefined && k < from) || (to !== undefined && k >= to)) continue;
      own.push([k, v !== null]);
    }
    own.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    // Merge the two sorted runs from the chosen end; an own write shadows the committed key.
    const step = reverse ? -1 : 1;
    let c = reverse ? end - 1 : start;
    let o = reverse ? own.length - 1 : 0;
    const cDone = () => (reverse ? c < start : c >= end);
    const oDone = () => (reverse ? o < 0 : o >= own.length);
    while (out.length < limit && !(cDone() && oDone())) {
      let key: KeyString;
      let live: boolean;
      const ck = cDone() ? undefined : committed[c];
      const ok = oDone() ? undefined : own[o][0];
      const ownFirst = ok !== undefined && ck !== undefined && (reverse ? ok >= ck : ok <= ck);
      const takeOwn = ck === undefined || ownFirst;
      if (takeOwn) {
        [key, live] = own[o];
        if (ok === ck) c += step;
        o += step;
      } else {
        key = ck;
        live = true;
        c += step;
      }
      if (live) out.push(key);
    }
    // Cut short by the limit: only the keys up to the last one returned were observed.
    const last = out[out.length - 1];
    const cut = out.length === limit && last !== undefined;
    if (cut && !reverse) this.tx.readRange(this.name, from, `${last}\u0000`);
    else if (cut && reverse) this.tx.readRange(this.name, last, to);
    else this.tx.readRange(this.name, from, to);
    return out;
  }

  /** Live keys at the read version merged with this transaction's writes, sorted. */
  private liveKeys(from?: KeyString, to?: KeyString): KeyString[] {
    this.tx.recordRead(this.name, undefined);
    const state = this.tx.state(this.name);
    if (state !== undefined && state.version > this.tx.readVersion) this.tx.conflict(this.name);
    const committed = state === undefined ? [] : state.keysInRange(from, to);
    const own = this.tx.mapWrites(this.name, false);
    if (own === undefined || own.size === 0) return committed.slice();
    const keys = new Set(committed);
    for (const [k, v] of own) {
      if ((from !== undefined && k < from) || (to !== undefined && k >= to)) continue;
      if (v === null) keys.delete(k);
      else keys.add(k);
    }
    const out = [...keys];
    out.sort();
    return out;
  }
}
