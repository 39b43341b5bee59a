// CCF's snapshot of the store (src/kv/snapshot.h, the untyped map's `Snapshot`, src/ds/champ_map.h):
// one ledger entry of type Snapshot whose public domain holds a header (entry type, seqno, max
// conflict version, the Merkle leaf at the seqno, the view history) then every public map, and
// whose private domain holds every private map. A map is its name, its version, and the byte
// length of its entries; each entry is the key (u64 length, bytes, zero padding to 8) then the
// versioned value (u64 length of version + value, i64 version, value, padding to 8). Entries are in
// the order CCF's CHAMP map writes them: by the low 32 bits of SipHash-2-4 of the key.

import { FormatError } from "../errors.js";
import { EntryType } from "../merkle/index.js";
import { type KeyString, keyToString } from "./keys.js";
import type { Entry, Store } from "./store.js";
import { sipHash24Low32, sipHash24Low32OfLatin1 } from "./siphash.js";
import { isPublicMap } from "./write-set.js";

export interface SnapshotEntry {
  key: KeyString;
  /** Null for a tombstone: CCF's maps keep deleted keys, written with a negated version. */
  value: Uint8Array | null;
  /** The version that wrote (or deleted) the key. */
  version: number;
}

export interface SnapshotMap {
  name: string;
  /** Version of the map's last write at or before the snapshot. */
  version: number;
  entries: SnapshotEntry[];
}

export interface SnapshotHeader {
  /** The snapshot's seqno. */
  version: number;
  /** The Merkle leaf of the transaction at `version` (CCF's "hash at snapshot"). */
  hashAtSnapshot?: Buffer;
  /** CCF's view history: element i is the first seqno of view i + 1. */
  viewHistory: number[];
}

export interface ParsedSnapshot extends SnapshotHeader {
  /** Maps by name; private maps only when the private domain was given. */
  maps: Map<string, SnapshotMap>;
}

export interface SnapshotDomains {
  /** Header and public maps: stored in the clear. */
  publicDomain: Buffer;
  /** Private maps: what the ledger encrypts. */
  privateDomain: Buffer;
}

export interface SnapshotOptions {
  viewHistory: readonly number[];
  hashAtSnapshot?: Uint8Array;
}

/**
 * CCF's view history up to `seqno` (`ViewHistory::get_history_until`) from where each view starts:
 * element i is the first seqno of view i + 1, and a view with no transaction (or before the first
 * known one) gets the start of the next view that has one.
 */
export function viewHistoryUntil(
  starts: ReadonlyArray<{ view: number; seqno: number }>,
  seqno: number,
): number[] {
  const out: number[] = [];
  for (const s of starts) {
    if (s.seqno > seqno) break;
    while (out.length < s.view) out.push(s.seqno);
  }
  return out;
}

/**
 * Serialises every map of `store` as it was at `version` (a version still in the store's undo log, or
 * its current one), tombstones left out, as CCF lays out a snapshot.
 */
export function serialiseSnapshot(
  store: Store,
  version: number,
  opts: SnapshotOptions,
): SnapshotDomains {
  const maps = mapsAt(store, version);
  const pub = new SnapshotWriter(
    1 + 8 + 8 + 8 + (opts.hashAtSnapshot?.length ?? 0) + 8 + opts.viewHistory.length * 8,
  );
  pub.u8(EntryType.Snapshot);
  pub.i64(version);
  pub.i64(0); // max conflict version, as every CCF entry writes it
  // CCF writes the hash only when the store has a history; an empty one keeps the layout readable.
  pub.sized(opts.hashAtSnapshot ?? new Uint8Array(0));
  pub.u64(opts.viewHistory.length * 8);
  for (const v of opts.viewHistory) pub.i64(v);
  let privSize = 0;
  for (const m of maps) {
    if (isPublicMap(m.name)) pub.reserve(m.bytes);
    else privSize += m.bytes;
  }
  const priv = new SnapshotWriter(privSize);
  for (const m of maps) writeMap(isPublicMap(m.name) ? pub : priv, m);
  return { publicDomain: pub.finish(), privateDomain: priv.finish() };
}

/** A map at the snapshot's version: its live entries in CCF's order, and its serialised size. */
interface MapAt {
  name: string;
  nameBytes: Buffer;
  version: number;
  keys: KeyString[];
  entries: Entry[];
  /** Bytes of the entries' section (what the map's size field says). */
  entriesBytes: number;
  /** Bytes of the whole map: name, version, size and entries. */
  bytes: number;
}

/** The maps at `version` in name order, each entry in CCF's order, tombstones left out. */
function mapsAt(store: Store, version: number): MapAt[] {
  const changed = store.changesSince(version);
  const out: MapAt[] = [];
  for (const name of store.mapNames()) {
    const state = store.mapState(name);
    if (state === undefined) continue;
    const delta = changed.get(name);
    const mapVersion = delta?.version ?? state.version;
    if (mapVersion === 0) continue; // first written after `version`
    let keys: KeyString[] = [];
    let entries: Entry[] = [];
    let entriesBytes = 0;
    const add = (key: KeyString, e: Entry | undefined) => {
      if (e === undefined || e.value === null) return;
      keys.push(key);
      entries.push(e);
      entriesBytes +=
        8 + key.length + pad8(key.length) + 16 + e.value.length + pad8(e.value.length);
    };
    for (const [key, e] of state.entries) {
      if (delta === undefined || !delta.entries.has(key)) add(key, e);
    }
    if (delta !== undefined) for (const [key, e] of delta.entries) add(key, e);
    const order = ccfOrder(keys);
    keys = order.map((i) => keys[i]);
    entries = order.map((i) => entries[i]);
    const nameBytes = Buffer.from(name, "utf8");
    const bytes = 8 + nameBytes.length + 8 + 8 + entriesBytes;
    out.push({ name, nameBytes, version: mapVersion, keys, entries, entriesBytes, bytes });
  }
  return out;
}

/** Packing a 32-bit hash and an index below 2^21 into one double keeps every bit (53 in all). */
const INDEX_BITS = 2 ** 21;

/**
 * The positions of `keys` in CCF's order: by the hash of the key (CCF leaves ties in an
 * unspecified order; key order makes them deterministic). Sorts (hash, position) pairs packed in
 * doubles with the typed array's native sort, then orders the rare runs of equal hashes by key.
 */
function ccfOrder(keys: readonly KeyString[]): number[] {
  const n = keys.length;
  const hashes = new Float64Array(n);
  for (let i = 0; i < n; i++) hashes[i] = ccfKeyHash(keys[i]);
  const byKey = (a: number, b: number) => hashes[a] - hashes[b] || compareStrings(keys[a], keys[b]);
  if (n >= INDEX_BITS) return Array.from({ length: n }, (_, i) => i).sort(byKey);
  const packed = new Float64Array(n);
  for (let i = 0; i < n; i++) packed[i] = hashes[i] * INDEX_BITS + i;
  packed.sort();
  const order = new Array<number>(n);
  for (let i = 0; i < n; i++) order[i] = packed[i] % INDEX_BITS;
  for (let i = 0; i < n; ) {
    let j = i + 1;
    while (j < n && hashes[order[j]] === hashes[order[i]]) j++;
    if (j - i > 1) order.splice(i, j - i, ...order.slice(i, j).sort(byKey));
    i = j;
  }
  return order;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function pad8(n: number): number {
  return (8 - (n % 8)) % 8;
}

function writeMap(w: SnapshotWriter, m: MapAt): void {
  w.sized(m.nameBytes);
  w.i64(m.version);
  w.u64(m.entriesBytes);
  for (let i = 0; i < m.keys.length; i++) {
    const key = m.keys[i];
    const { value, version } = m.entries[i];
    const bytes = value ?? EMPTY;
    w.u64(key.length);
    w.latin1(key);
    w.zeros(pad8(key.length));
    w.u64(8 + bytes.length);
    w.i64(value === null ? -version : version);
    w.bytes(bytes);
    w.zeros(pad8(bytes.length));
  }
}

const EMPTY = new Uint8Array(0);

/**
 * Parses a snapshot's public domain and, if given, its decrypted private domain. FormatError for
 * anything that is not a snapshot laid out as CCF writes it.
 */
export function parseSnapshot(publicDomain: Buffer, privateDomain?: Buffer): ParsedSnapshot {
  const r = new SnapshotReader(publicDomain);
  const entryType = r.u8("entry type");
  if (entryType !== EntryType.Snapshot) {
    throw new FormatError("InvalidSnapshot", `entry type ${entryType} is not a snapshot`);
  }
  const version = r.i64("version");
  r.i64("max conflict version");
  const hash = r.sized("hash at snapshot");
  const historyBytes = r.u64("view history size");
  if (historyBytes % 8 !== 0) {
    throw new FormatError("InvalidSnapshot", `view history of ${historyBytes} bytes`);
  }
  const viewHistory: number[] = [];
  for (let i = 0; i < historyBytes / 8; i++) viewHistory.push(r.i64("view history"));
  const maps = new Map<string, SnapshotMap>();
  readMaps(r, maps, true);
  if (privateDomain !== undefined) readMaps(new SnapshotReader(privateDomain), maps, false);
  return {
    version,
    ...(hash.length === 0 ? {} : { hashAtSnapshot: Buffer.from(hash) }),
    viewHistory,
    maps,
  };
}

function readMaps(r: SnapshotReader, into: Map<string, SnapshotMap>, expectPublic: boolean): void {
  while (!r.done) {
    const name = r.sized("map name").toString("utf8");
    if (isPublicMap(name) !== expectPublic) {
      throw new FormatError(
        "InvalidSnapshot",
        `map ${name} found in the ${expectPublic ? "public" : "private"} domain`,
      );
    }
    if (into.has(name)) throw new FormatError("InvalidSnapshot", `map ${name} appears twice`);
    const version = r.i64(`${name} version`);
    const body = new SnapshotReader(r.sized(`${name} entries`));
    const entries: SnapshotEntry[] = [];
    while (!body.done) {
      const key = body.sized("key");
      body.bytes(pad8(key.length), "key padding");
      const size = body.u64("value size");
      if (size < 8) throw new FormatError("InvalidSnapshot", `versioned value of ${size} bytes`);
      const v = body.i64("value version");
      const value = body.bytes(size - 8, "value");
      body.bytes(pad8(size - 8), "value padding");
      if (v < 0 && value.length > 0) {
        throw new FormatError("InvalidSnapshot", `tombstone in ${name} carries a value`);
      }
      entries.push(
        v < 0
          ? { key: keyToString(key), value: null, version: -v }
          : { key: keyToString(key), value: Buffer.from(value), version: v },
      );
    }
    into.set(name, { name, version, entries });
  }
}

/**
 * Puts an empty store in the snapshot's state at its version: every live entry with the version that
 * wrote it, every map with its version. Tombstones are dropped, as compaction would.
 */
export function installSnapshot(store: Store, parsed: ParsedSnapshot): void {
  const maps: Array<{ name: string; version: number; entries: Array<[KeyString, Entry]> }> = [];
  for (const m of parsed.maps.values()) {
    if (m.version > parsed.version) {
      throw new FormatError(
        "InvalidSnapshot",
        `map ${m.name} has version ${m.version}, after the snapshot's ${parsed.version}`,
      );
    }
    const entries: Array<[KeyString, Entry]> = [];
    for (const e of m.entries) {
      if (e.version > m.version) {
        throw new FormatError(
          "InvalidSnapshot",
          `an entry of ${m.name} has version ${e.version}, after the map's ${m.version}`,
        );
      }
      if (e.value !== null) entries.push([e.key, { value: e.value, version: e.version }]);
    }
    maps.push({ name: m.name, version: m.version, entries });
  }
  store.install(parsed.version, maps);
}

/** A growable little-endian writer (snapshots are built once, so simplicity wins over one pass). */
class SnapshotWriter {
  private buf: Buffer;
  private o = 0;

  /** `expected`: the bytes the caller will write (the buffer grows if it writes more). */
  constructor(expected = 256) {
    this.buf = Buffer.alloc(Math.max(expected, 8));
  }

  /** Makes room for `n` more bytes at once. */
  reserve(n: number): void {
    this.room(n);
  }

  private room(n: number): void {
    if (this.o + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.o + n));
    this.buf.copy(next, 0, 0, this.o);
    this.buf = next;
  }
  u8(n: number): void {
    this.room(1);
    this.buf[this.o++] = n;
  }
  u64(n: number): void {
    this.room(8);
    this.buf.writeUInt32LE(n >>> 0, this.o);
    this.buf.writeUInt32LE(Math.floor(n / 0x100000000), this.o + 4);
    this.o += 8;
  }
  i64(n: number): void {
    if (n >= 0) return this.u64(n);
    this.room(8);
    this.o = this.buf.writeBigInt64LE(BigInt(n), this.o);
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.o);
    this.o += b.length;
  }
  latin1(s: string): void {
    this.room(s.length);
    this.o += this.buf.write(s, this.o, "latin1");
  }
  /** Zero padding: the buffer is zero-filled, so skipping over it writes the zeros. */
  zeros(n: number): void {
    this.room(n);
    this.o += n;
  }
  sized(b: Uint8Array): void {
    this.u64(b.length);
    this.bytes(b);
  }
  finish(): Buffer {
    return this.o === this.buf.length ? this.buf : Buffer.from(this.buf.subarray(0, this.o));
  }
}

/** A bounds-checked little-endian reader; every overrun is a FormatError. */
class SnapshotReader {
  private o = 0;
  constructor(private readonly buf: Buffer) {}

  get done(): boolean {
    return this.o >= this.buf.length;
  }
  bytes(n: number, what: string): Buffer {
    if (n < 0 || this.o + n > this.buf.length) {
      throw new FormatError(
        "InvalidSnapshot",
        `snapshot truncated reading ${what} at byte ${this.o} of ${this.buf.length}`,
      );
    }
    const b = this.buf.subarray(this.o, this.o + n);
    this.o += n;
    return b;
  }
  u8(what: string): number {
    return this.bytes(1, what)[0];
  }
  u64(what: string): number {
    const b = this.bytes(8, what);
    const hi = b.readUInt32LE(4);
    if (hi > 0x1fffff) throw new FormatError("InvalidSnapshot", `${what} is out of range`);
    return hi * 0x100000000 + b.readUInt32LE(0);
  }
  i64(what: string): number {
    const v = this.bytes(8, what).readBigInt64LE(0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new FormatError("InvalidSnapshot", `${what} is out of range`);
    }
    return Number(v);
  }
  sized(what: string): Buffer {
    return this.bytes(this.u64(`${what} length`), what);
  }
}

// CCF hashes keys with SipHash-2-4 under the fixed key "Kilroy was here!" (include/ccf/byte_vector.h),
// and its CHAMP map orders a snapshot's entries by the low 32 bits of that hash.
const SIP_K0 = [0x7720796f, 0x726c694b] as const;
const SIP_K1 = [0x21657265, 0x68207361] as const;

/** The low 32 bits of SipHash-2-4 of `key` under CCF's fixed key: the order of snapshot entries. */
export function ccfKeyHash(key: Uint8Array | KeyString): number {
  return typeof key === "string"
    ? sipHash24Low32OfLatin1(key, SIP_K0, SIP_K1)
    : sipHash24Low32(key, SIP_K0, SIP_K1);
}
