// CCF's snapshot of the store (src/kv/snapshot.h, the untyped map's `Snapshot`, src/ds/champ_map.h):
// one ledger entry of type Snapshot whose public domain holds a header (entry type, seqno, max
// conflict version, the Merkle leaf at the seqno, the view history) then every public map, and
// whose private domain holds every private map. A map is its name, its version, and the byte
// length of its entries; each entry is the key (u64 length, bytes, zero padding to 8) then the
// versioned value (u64 length of version + value, i64 version, value, padding to 8). Entries are in
// the order CCF's CHAMP map writes them: by the low 32 bits of SipHash-2-4 of the key.

import { FormatError } from "../errors.js";
import { EntryType } from "../merkle/index.js";
import { type KeyString, keyFromString, keyToString } from "./keys.js";
import type { Entry, Store } from "./store.js";
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
  const pub = new SnapshotWriter();
  pub.u8(EntryType.Snapshot);
  pub.i64(version);
  pub.i64(0); // max conflict version, as every CCF entry writes it
  // CCF writes the hash only when the store has a history; an empty one keeps the layout readable.
  pub.sized(opts.hashAtSnapshot ?? new Uint8Array(0));
  pub.u64(opts.viewHistory.length * 8);
  for (const v of opts.viewHistory) pub.i64(v);
  const priv = new SnapshotWriter();
  for (const m of maps) writeMap(isPublicMap(m.name) ? pub : priv, m);
  return { publicDomain: pub.finish(), privateDomain: priv.finish() };
}

/** The maps at `version` in name order, each entry in CCF's order, tombstones left out. */
function mapsAt(store: Store, version: number): SnapshotMap[] {
  const changed = store.changesSince(version);
  const out: SnapshotMap[] = [];
  for (const name of store.mapNames()) {
    const state = store.mapState(name);
    if (state === undefined) continue;
    const delta = changed.get(name);
    const mapVersion = delta?.version ?? state.version;
    if (mapVersion === 0) continue; // first written after `version`
    const entries: SnapshotEntry[] = [];
    const add = (key: KeyString, e: Entry | undefined) => {
      if (e !== undefined && e.value !== null)
        entries.push({ key, value: e.value, version: e.version });
    };
    for (const [key, e] of state.entries) {
      if (delta === undefined || !delta.entries.has(key)) add(key, e);
    }
    if (delta !== undefined) for (const [key, e] of delta.entries) add(key, e);
    out.push({ name, version: mapVersion, entries: sortForCcf(entries) });
  }
  return out;
}

function sortForCcf(entries: SnapshotEntry[]): SnapshotEntry[] {
  const hashed = entries.map((e) => ({ e, h: ccfKeyHash(keyFromString(e.key)) }));
  // CCF sorts by hash alone (ties in an unspecified order); key order makes ties deterministic.
  hashed.sort((a, b) => a.h - b.h || (a.e.key < b.e.key ? -1 : a.e.key > b.e.key ? 1 : 0));
  return hashed.map((x) => x.e);
}

function pad8(n: number): number {
  return (8 - (n % 8)) % 8;
}

function writeMap(w: SnapshotWriter, m: SnapshotMap): void {
  w.sized(Buffer.from(m.name, "utf8"));
  w.i64(m.version);
  let size = 0;
  for (const e of m.entries) {
    const v = e.value?.length ?? 0;
    size += 8 + e.key.length + pad8(e.key.length) + 16 + v + pad8(v);
  }
  w.u64(size);
  for (const e of m.entries) {
    w.u64(e.key.length);
    w.latin1(e.key);
    w.zeros(pad8(e.key.length));
    const value = e.value ?? new Uint8Array(0);
    w.u64(8 + value.length);
    w.i64(e.value === null ? -e.version : e.version);
    w.bytes(value);
    w.zeros(pad8(value.length));
  }
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
  private buf = Buffer.allocUnsafe(256);
  private o = 0;

  private room(n: number): void {
    if (this.o + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.o + n));
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
  zeros(n: number): void {
    this.room(n);
    this.buf.fill(0, this.o, this.o + n);
    this.o += n;
  }
  sized(b: Uint8Array): void {
    this.u64(b.length);
    this.bytes(b);
  }
  finish(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.o));
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
export function ccfKeyHash(key: Uint8Array): number {
  return sipHash24Low32(key, SIP_K0, SIP_K1);
}

/**
 * SipHash-2-4 (Aumasson and Bernstein), the low 32 bits of its 64-bit output, with each 64-bit word
 * held as [high, low] 32-bit halves. `k0`/`k1` are the key's two little-endian words.
 */
export function sipHash24Low32(
  data: Uint8Array,
  k0: readonly [number, number],
  k1: readonly [number, number],
): number {
  // v0..v3 as (high, low) pairs at indices 2i, 2i + 1.
  const v = new Uint32Array(8);
  v[0] = k0[0] ^ 0x736f6d65;
  v[1] = k0[1] ^ 0x70736575;
  v[2] = k1[0] ^ 0x646f7261;
  v[3] = k1[1] ^ 0x6e646f6d;
  v[4] = k0[0] ^ 0x6c796765;
  v[5] = k0[1] ^ 0x6e657261;
  v[6] = k1[0] ^ 0x74656462;
  v[7] = k1[1] ^ 0x79746573;
  const full = data.length - (data.length % 8);
  for (let i = 0; i < full; i += 8) {
    const lo = (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)) >>> 0;
    const hi = (data[i + 4] | (data[i + 5] << 8) | (data[i + 6] << 16) | (data[i + 7] << 24)) >>> 0;
    compress(v, hi, lo);
  }
  // The last block: the remaining bytes, and the length's low byte in the top byte.
  let lo = 0;
  let hi = (data.length & 0xff) << 24;
  for (let i = full; i < data.length; i++) {
    const shift = (i - full) * 8;
    if (shift < 32) lo |= data[i] << shift;
    else hi |= data[i] << (shift - 32);
  }
  compress(v, hi >>> 0, lo >>> 0);
  v[5] ^= 0xff;
  for (let r = 0; r < 4; r++) sipRound(v);
  return (v[1] ^ v[3] ^ v[5] ^ v[7]) >>> 0;
}

function compress(v: Uint32Array, hi: number, lo: number): void {
  v[6] ^= hi;
  v[7] ^= lo;
  sipRound(v);
  sipRound(v);
  v[0] ^= hi;
  v[1] ^= lo;
}

/** a += b on the 64-bit words at pair indices a and b. */
function add(v: Uint32Array, a: number, b: number): void {
  const lo = v[a + 1] + v[b + 1];
  v[a] = v[a] + v[b] + (lo > 0xffffffff ? 1 : 0);
  v[a + 1] = lo;
}

/** Rotates the word at pair index a left by n (0 < n < 32), or swaps its halves (n = 32). */
function rotl(v: Uint32Array, a: number, n: number): void {
  const hi = v[a];
  const lo = v[a + 1];
  if (n === 32) {
    v[a] = lo;
    v[a + 1] = hi;
    return;
  }
  v[a] = (hi << n) | (lo >>> (32 - n));
  v[a + 1] = (lo << n) | (hi >>> (32 - n));
}

function xor(v: Uint32Array, a: number, b: number): void {
  v[a] ^= v[b];
  v[a + 1] ^= v[b + 1];
}

const V0 = 0;
const V1 = 2;
const V2 = 4;
const V3 = 6;

function sipRound(v: Uint32Array): void {
  add(v, V0, V1);
  rotl(v, V1, 13);
  xor(v, V1, V0);
  rotl(v, V0, 32);
  add(v, V2, V3);
  rotl(v, V3, 16);
  xor(v, V3, V2);
  add(v, V0, V3);
  rotl(v, V3, 21);
  xor(v, V3, V0);
  add(v, V2, V1);
  rotl(v, V1, 17);
  xor(v, V1, V2);
  rotl(v, V2, 32);
}
