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
  const serialiser = new SnapshotSerialiser(captureSnapshot(store, version), opts);
  while (!serialiser.step(Number.POSITIVE_INFINITY));
  return serialiser.domains;
}

/**
 * The store's live entries at a version, held by reference: a write replaces a key's `Entry`
 * rather than changing it, so a capture stays the state at `version` while the store moves on,
 * and can be serialised later, a slice at a time (`SnapshotSerialiser`).
 */
export interface SnapshotCapture {
  version: number;
  /** In name order. */
  maps: CapturedMap[];
}

interface CapturedMap {
  name: string;
  /** Version of the map's last write at or before the capture's version. */
  version: number;
  keys: KeyString[];
  entries: Entry[];
}

/**
 * Captures the live entries of every map as they were at `version` (ConflictError if the store no
 * longer holds that version). Costs a reference per entry; ordering and bytes come later.
 */
export function captureSnapshot(store: Store, version: number): SnapshotCapture {
  const changed = store.changesSince(version);
  const maps: CapturedMap[] = [];
  for (const name of store.mapNames()) {
    const state = store.mapState(name);
    if (state === undefined) continue;
    const delta = changed.get(name);
    const mapVersion = delta?.version ?? state.version;
    if (mapVersion === 0) continue; // first written after `version`
    const keys: KeyString[] = [];
    const entries: Entry[] = [];
    if (delta === undefined) {
      for (const [key, e] of state.entries) {
        if (e.value !== null) {
          keys.push(key);
          entries.push(e);
        }
      }
    } else {
      for (const [key, e] of state.entries) {
        if (e.value !== null && !delta.entries.has(key)) {
          keys.push(key);
          entries.push(e);
        }
      }
      for (const [key, e] of delta.entries) {
        if (e !== undefined && e.value !== null) {
          keys.push(key);
          entries.push(e);
        }
      }
    }
    maps.push({ name, version: mapVersion, keys, entries });
  }
  return { version, maps };
}

/** A map being serialised: its entries' hashes, then their order, then their bytes. */
interface MapWork {
  map: CapturedMap;
  nameBytes: Buffer;
  hashes: Float64Array;
  /** Entries hashed (and sized) so far. */
  hashed: number;
  /** Positions of the entries in CCF's order, once sorted. */
  order: number[] | undefined;
  /** Bytes of the entries' section (what the map's size field says). */
  entriesBytes: number;
  /** Entries written so far. */
  written: number;
}

/**
 * Serialises a capture as CCF lays out a snapshot, a bounded slice of work per `step`, so that a
 * large store does not hold up its caller (the node serialises between requests). Deterministic:
 * the bytes do not depend on how the work was sliced.
 */
export class SnapshotSerialiser {
  private readonly work: MapWork[];
  private phase: "hash" | "sort" | "write" | "done" = "hash";
  /** The map the current phase is at. */
  private at = 0;
  private pub: SnapshotWriter | undefined;
  private priv: SnapshotWriter | undefined;
  private result: SnapshotDomains | undefined;

  constructor(
    private readonly capture: SnapshotCapture,
    private readonly opts: SnapshotOptions,
  ) {
    this.work = capture.maps.map((map) => ({
      map,
      nameBytes: Buffer.from(map.name, "utf8"),
      hashes: new Float64Array(map.keys.length),
      hashed: 0,
      order: undefined,
      entriesBytes: 0,
      written: 0,
    }));
  }

  /**
   * Does about `budget` entries' worth of work (hashing or writing an entry is one; sorting a map
   * is done whole, at one per entry). Returns true once the snapshot is complete.
   */
  step(budget: number): boolean {
    let left = budget;
    while (left > 0 && this.phase !== "done") {
      if (this.phase === "hash") left -= this.hashSome(left);
      else if (this.phase === "sort") left -= this.sortOne();
      else left -= this.writeSome(left);
    }
    return this.phase === "done";
  }

  /** The serialised domains, once `step` returned true. */
  get domains(): SnapshotDomains {
    if (this.result === undefined) throw new Error("the snapshot is not serialised yet");
    return this.result;
  }

  private hashSome(budget: number): number {
    const w = this.work[this.at];
    if (w === undefined) {
      this.phase = "sort";
      this.at = 0;
      return 0;
    }
    const { keys, entries } = w.map;
    const end = Math.min(keys.length, w.hashed + budget);
    let bytes = 0;
    for (let i = w.hashed; i < end; i++) {
      const key = keys[i];
      const value = entries[i].value as Uint8Array;
      w.hashes[i] = ccfKeyHash(key);
      bytes += 8 + key.length + pad8(key.length) + 16 + value.length + pad8(value.length);
    }
    w.entriesBytes += bytes;
    const done = end - w.hashed;
    w.hashed = end;
    if (end === keys.length) this.at++;
    return Math.max(done, 1);
  }

  private sortOne(): number {
    const w = this.work[this.at];
    if (w === undefined) {
      this.startWriting();
      return 0;
    }
    w.order = ccfOrder(w.map.keys, w.hashes);
    this.at++;
    return Math.max(w.map.keys.length, 1);
  }

  private startWriting(): void {
    const { opts } = this;
    const pub = new SnapshotWriter(
      1 + 8 + 8 + 8 + (opts.hashAtSnapshot?.length ?? 0) + 8 + opts.viewHistory.length * 8,
    );
    pub.u8(EntryType.Snapshot);
    pub.i64(this.capture.version);
    pub.i64(0); // max conflict version, as every CCF entry writes it
    // CCF writes the hash only when the store has a history; an empty one keeps the layout readable.
    pub.sized(opts.hashAtSnapshot ?? new Uint8Array(0));
    pub.u64(opts.viewHistory.length * 8);
    for (const v of opts.viewHistory) pub.i64(v);
    let privSize = 0;
    for (const w of this.work) {
      const bytes = 8 + w.nameBytes.length + 8 + 8 + w.entriesBytes;
      if (isPublicMap(w.map.name)) pub.reserve(bytes);
      else privSize += bytes;
    }
    this.pub = pub;
    this.priv = new SnapshotWriter(privSize);
    this.phase = "write";
    this.at = 0;
  }

  private writeSome(budget: number): number {
    const w = this.work[this.at];
    const pub = this.pub as SnapshotWriter;
    const priv = this.priv as SnapshotWriter;
    if (w === undefined) {
      this.result = { publicDomain: pub.finish(), privateDomain: priv.finish() };
      this.phase = "done";
      return 0;
    }
    const out = isPublicMap(w.map.name) ? pub : priv;
    if (w.written === 0) {
      out.sized(w.nameBytes);
      out.i64(w.map.version);
      out.u64(w.entriesBytes);
    }
    const end = Math.min(w.map.keys.length, w.written + budget);
    writeEntries(out, w, end);
    const done = end - w.written;
    w.written = end;
    if (end === w.map.keys.length) this.at++;
    return Math.max(done, 1);
  }
}

/** Packing a 32-bit hash and an index below 2^21 into one double keeps every bit (53 in all). */
const INDEX_BITS = 2 ** 21;

/**
 * The positions of `keys` in CCF's order: by the hash of the key (`hashes`, by position) (CCF leaves ties in an
 * unspecified order; key order makes them deterministic). Sorts (hash, position) pairs packed in
 * doubles with the typed array's native sort, then orders the rare runs of equal hashes by key.
 */
function ccfOrder(keys: readonly KeyString[], hashes: Float64Array): number[] {
  const n = keys.length;
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

/**
 * Writes the entries of `w` from `w.written` up to `end` (positions in CCF's order). Entries are
 * written by index into a buffer sized once (the writer's buffer is zero-filled, so padding is
 * skipped): ~3x cheaper per entry than the writer's per-field methods.
 */
function writeEntries(out: SnapshotWriter, w: MapWork, end: number): void {
  const order = w.order as number[];
  const { keys, entries } = w.map;
  let size = 0;
  for (let i = w.written; i < end; i++) {
    const p = order[i];
    const key = keys[p];
    const length = (entries[p].value as Uint8Array).length;
    size += 8 + key.length + pad8(key.length) + 16 + length + pad8(length);
  }
  const buf = out.room(size);
  let o = out.offset;
  for (let i = w.written; i < end; i++) {
    const p = order[i];
    const key = keys[p];
    const { value, version } = entries[p];
    const bytes = value as Uint8Array;
    o = putU64(buf, o, key.length);
    if (key.length <= SHORT) {
      for (let j = 0; j < key.length; j++) buf[o + j] = key.charCodeAt(j);
    } else {
      buf.write(key, o, key.length, "latin1");
    }
    o += key.length + pad8(key.length);
    o = putU64(buf, o, 8 + bytes.length);
    o = putU64(buf, o, version);
    if (bytes.length <= SHORT) {
      for (let j = 0; j < bytes.length; j++) buf[o + j] = bytes[j];
    } else {
      buf.set(bytes, o);
    }
    o += bytes.length + pad8(bytes.length);
  }
  out.offset = o;
}

/** Below this length a byte loop copies faster than a call into the runtime. */
const SHORT = 48;

/** Writes a non-negative integer below 2^53 as a little-endian u64 into zeroed bytes; returns the end. */
function putU64(buf: Buffer, o: number, n: number): number {
  buf[o] = n;
  buf[o + 1] = n >>> 8;
  buf[o + 2] = n >>> 16;
  buf[o + 3] = n >>> 24;
  if (n > 0xffffffff) buf.writeUInt32LE(Math.floor(n / 0x100000000), o + 4);
  return o + 8;
}

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

  /** Where the next byte goes (writeMap writes entries directly into the buffer). */
  get offset(): number {
    return this.o;
  }
  set offset(o: number) {
    this.o = o;
  }

  /** `expected`: the bytes the caller will write (the buffer grows if it writes more). */
  constructor(expected = 256) {
    this.buf = Buffer.alloc(Math.max(expected, 8));
  }

  /** Makes room for `n` more bytes at once. */
  reserve(n: number): void {
    this.room(n);
  }

  /** Makes room for `n` more bytes; returns the buffer (zero from the offset on). */
  room(n: number): Buffer {
    if (this.o + n > this.buf.length) {
      const next = Buffer.alloc(Math.max(this.buf.length * 2, this.o + n));
      this.buf.copy(next, 0, 0, this.o);
      this.buf = next;
    }
    return this.buf;
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
