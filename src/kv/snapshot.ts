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
import type { Entry, MapState, Store } from "./store.js";
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
  /** The map captured, so that a later snapshot reuses this one's bytes only for the same map. */
  state: MapState;
  keys: KeyString[];
  entries: Entry[];
  /**
   * How many of the first entries are in the map's iteration order (the others are the state at
   * the version of keys written after it, taken from the undo log).
   */
  inOrder: number;
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
    }
    const inOrder = keys.length;
    if (delta !== undefined) {
      for (const [key, e] of delta.entries) {
        if (e !== undefined && e.value !== null) {
          keys.push(key);
          entries.push(e);
        }
      }
    }
    maps.push({ name, version: mapVersion, state, keys, entries, inOrder });
  }
  return { version, maps };
}

/**
 * What a serialised snapshot leaves for the next one of the same store: where each map's entries
 * lie in its bytes, in CCF's order. An entry the next capture still holds (the same `Entry`
 * object: same key, value and version) is copied from here, a run of neighbours at a time, instead
 * of being hashed, sorted and written again; between two snapshots most of a large store does not
 * change. Holds the previous snapshot's plaintext domains until replaced.
 */
export class SnapshotLayout {
  /** @internal */
  constructor(readonly maps: ReadonlyMap<string, MapLayout>) {}
}

interface MapLayout {
  map: CapturedMap;
  /** The version the snapshot was taken at. */
  version: number;
  /** CCF position of the capture's entry i. */
  rank: Int32Array;
  /** By CCF position: the key's hash, and where the entry's bytes start (one more: the end). */
  hashes: Float64Array;
  starts: Float64Array;
  bytes: Buffer;
}

/** A map being serialised. */
interface MapWork {
  map: CapturedMap;
  nameBytes: Buffer;
  /** The previous snapshot's layout of the same map, if there is one to copy from. */
  prev: MapLayout | undefined;
  /** Entries matched against `prev` so far (the match phase walks the capture in order). */
  matched: number;
  /** Where the walk is in `prev`'s capture. */
  prevAt: number;
  /** Entries of this capture that the walk expected in `prev` and did not find there. */
  misses: number;
  /** For each entry of `prev` by CCF position, the capture index that reuses it, else -1. */
  reusedAt: Int32Array | undefined;
  /** For each capture index, the CCF position in `prev` of the entry it reuses, else -1. */
  fromPrev: Int32Array;
  /** Capture indexes of the entries to hash and write afresh. */
  fresh: number[];
  /** Fresh entries hashed so far. */
  hashed: number;
  /** Hash of each entry, by capture index. */
  hashes: Float64Array;
  /** Capture indexes in CCF's order, once merged. */
  order: Int32Array | undefined;
  /** Bytes of the entries' section (what the map's size field says). */
  entriesBytes: number;
  /** Entries written so far, and where each one's bytes start (by CCF position; one more: end). */
  written: number;
  starts: Float64Array;
}

/**
 * Serialises a capture as CCF lays out a snapshot, a bounded slice of work per `step`, so that a
 * large store does not hold up its caller (the node serialises between requests). Given the
 * layout of an earlier snapshot of the same store, copies what did not change from it.
 * Deterministic: the bytes do not depend on the slicing or on the earlier snapshot.
 */
export class SnapshotSerialiser {
  private readonly work: MapWork[];
  private phase: "match" | "hash" | "sort" | "write" | "done" = "match";
  /** The map the current phase is at. */
  private at = 0;
  private pub: SnapshotWriter | undefined;
  private priv: SnapshotWriter | undefined;
  private result: SnapshotDomains | undefined;
  private layoutValue: SnapshotLayout | undefined;

  constructor(
    private readonly capture: SnapshotCapture,
    private readonly opts: SnapshotOptions,
    previous?: SnapshotLayout,
  ) {
    this.work = capture.maps.map((map) => {
      const prev = previous?.maps.get(map.name);
      const n = map.keys.length;
      return {
        map,
        nameBytes: Buffer.from(map.name, "utf8"),
        prev: prev !== undefined && prev.map.state === map.state ? prev : undefined,
        matched: 0,
        prevAt: 0,
        misses: 0,
        reusedAt: undefined,
        fromPrev: new Int32Array(n).fill(-1),
        fresh: [],
        hashed: 0,
        hashes: new Float64Array(n),
        order: undefined,
        entriesBytes: 0,
        written: 0,
        starts: new Float64Array(n + 1),
      };
    });
  }

  /**
   * Does about `budget` entries' worth of work (matching, hashing or writing an entry is one;
   * ordering a map is done whole, at one per entry). Returns true once the snapshot is complete.
   */
  step(budget: number): boolean {
    if (this.work.length === 0 && this.phase !== "done") {
      this.startWriting();
      this.phase = "done";
      this.finish();
    }
    let left = budget;
    while (left > 0 && this.phase !== "done") {
      if (this.phase === "match") left -= this.matchSome(left);
      else if (this.phase === "hash") left -= this.hashSome(left);
      else if (this.phase === "sort") left -= this.orderOne();
      else left -= this.writeSome(left);
    }
    return this.phase === "done";
  }

  /** The serialised domains, once `step` returned true. */
  get domains(): SnapshotDomains {
    if (this.result === undefined) throw new Error("the snapshot is not serialised yet");
    return this.result;
  }

  /** Entries copied from the previous snapshot rather than written again. */
  get reused(): number {
    let n = 0;
    for (const w of this.work) n += w.map.keys.length - w.fresh.length;
    return n;
  }

  /** Where this snapshot's entries lie, for the next one; once `step` returned true. */
  get layout(): SnapshotLayout {
    if (this.layoutValue === undefined) throw new Error("the snapshot is not serialised yet");
    return this.layoutValue;
  }

  /** Next phase once every map is through this one. */
  private nextMap(then: "hash" | "sort" | "write" | "done"): void {
    this.at++;
    if (this.at === this.work.length) {
      this.at = 0;
      if (then === "write") this.startWriting();
      else this.phase = then;
    }
  }

  /**
   * Finds the captured entries that the previous snapshot holds as they are: both captures list
   * a map's entries in its iteration order, which a key keeps until it is removed, so one walk
   * over both finds them. Everything else is fresh.
   */
  private matchSome(budget: number): number {
    const w = this.work[this.at];
    const { keys, entries, inOrder } = w.map;
    const end = Math.min(keys.length, w.matched + budget);
    const prev = w.prev;
    if (prev !== undefined && w.reusedAt === undefined) {
      w.reusedAt = new Int32Array(prev.hashes.length).fill(-1);
    }
    for (let i = w.matched; i < end; i++) {
      // Only an entry written at or before the previous snapshot's version can be one it holds.
      if (prev !== undefined && i < inOrder && entries[i].version <= prev.version) {
        const key = keys[i];
        const pk = prev.map.keys;
        let p = w.prevAt;
        while (p < prev.map.inOrder && pk[p] !== key) p++;
        if (p < prev.map.inOrder) {
          w.prevAt = p + 1;
          if (prev.map.entries[p] === entries[i]) {
            const j = prev.rank[p];
            (w.reusedAt as Int32Array)[j] = i;
            w.fromPrev[i] = j;
            w.hashes[i] = prev.hashes[j];
            w.entriesBytes += prev.starts[j + 1] - prev.starts[j];
            continue;
          }
        } else if (++w.misses === MAX_MISSES) {
          // Not where the order says (the previous capture took it from the undo log): rare, and
          // each miss walks the rest of the previous capture, so after a few nothing more is reused.
          w.prevAt = prev.map.inOrder;
        }
      }
      w.fresh.push(i);
    }
    const done = end - w.matched;
    w.matched = end;
    if (end === keys.length) this.nextMap("hash");
    return Math.max(done, 1);
  }

  private hashSome(budget: number): number {
    const w = this.work[this.at];
    const { keys, entries } = w.map;
    const end = Math.min(w.fresh.length, w.hashed + budget);
    let bytes = 0;
    for (let f = w.hashed; f < end; f++) {
      const i = w.fresh[f];
      const key = keys[i];
      const value = entries[i].value as Uint8Array;
      w.hashes[i] = ccfKeyHash(key);
      bytes += entryBytes(key.length, value.length);
    }
    w.entriesBytes += bytes;
    const done = end - w.hashed;
    w.hashed = end;
    if (end === w.fresh.length) this.nextMap("sort");
    return Math.max(done, 1);
  }

  /** CCF's order of one map: the fresh entries sorted, merged with the reused ones (in order). */
  private orderOne(): number {
    const w = this.work[this.at];
    const { keys } = w.map;
    const fresh = ccfOrder(
      w.fresh.map((i) => keys[i]),
      Float64Array.from(w.fresh, (i) => w.hashes[i]),
    ).map((k) => w.fresh[k]);
    const order = new Int32Array(keys.length);
    const reused = w.reusedAt ?? new Int32Array(0);
    let n = 0;
    let f = 0;
    for (let j = 0; j < reused.length; j++) {
      const i = reused[j];
      if (i < 0) continue;
      while (f < fresh.length && before(w, fresh[f], i)) order[n++] = fresh[f++];
      order[n++] = i;
    }
    while (f < fresh.length) order[n++] = fresh[f++];
    w.order = order;
    this.nextMap("write");
    return Math.max(keys.length, 1);
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
      if (isPublicMap(w.map.name)) pub.room(bytes);
      else privSize += bytes;
    }
    this.pub = pub;
    this.priv = new SnapshotWriter(privSize);
    this.phase = "write";
  }

  private writeSome(budget: number): number {
    const w = this.work[this.at];
    const pub = this.pub as SnapshotWriter;
    const priv = this.priv as SnapshotWriter;
    const out = isPublicMap(w.map.name) ? pub : priv;
    if (w.written === 0) {
      out.sized(w.nameBytes);
      out.i64(w.map.version);
      out.u64(w.entriesBytes);
      out.room(w.entriesBytes);
    }
    const end = Math.min(w.map.keys.length, w.written + budget);
    writeEntries(out, w, end);
    const done = end - w.written;
    w.written = end;
    if (end === w.map.keys.length) {
      w.starts[end] = out.offset;
      this.nextMap("done");
      if (this.phase === "done") this.finish();
    }
    return Math.max(done, 1);
  }

  private finish(): void {
    const pub = (this.pub as SnapshotWriter).finish();
    const priv = (this.priv as SnapshotWriter).finish();
    this.result = { publicDomain: pub, privateDomain: priv };
    const maps = new Map<string, MapLayout>();
    for (const w of this.work) {
      const order = w.order as Int32Array;
      const rank = new Int32Array(order.length);
      const hashes = new Float64Array(order.length);
      for (let r = 0; r < order.length; r++) {
        rank[order[r]] = r;
        hashes[r] = w.hashes[order[r]];
      }
      maps.set(w.map.name, {
        map: w.map,
        version: this.capture.version,
        rank,
        hashes,
        starts: w.starts,
        bytes: isPublicMap(w.map.name) ? pub : priv,
      });
    }
    this.layoutValue = new SnapshotLayout(maps);
  }
}

/** Walks of the previous capture that may miss before a map stops reusing it. */
const MAX_MISSES = 8;

/** Whether capture entry `a` comes before `b` in CCF's order: by hash, then by key. */
function before(w: MapWork, a: number, b: number): boolean {
  const ha = w.hashes[a];
  const hb = w.hashes[b];
  return ha < hb || (ha === hb && w.map.keys[a] < w.map.keys[b]);
}

/** Bytes of one serialised entry: key (length, bytes, padding), value (length, version, bytes, padding). */
function entryBytes(keyLength: number, valueLength: number): number {
  return 8 + keyLength + pad8(keyLength) + 16 + valueLength + pad8(valueLength);
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
 * Writes the entries of `w` at CCF positions `w.written` up to `end`, recording where each
 * starts: those reused from the previous snapshot are copied from its bytes, a run of neighbours
 * at a time; the others are written by index into a buffer sized once (the writer's buffer is
 * zero-filled, so padding is skipped), ~3x cheaper per entry than the writer's per-field methods.
 */
function writeEntries(out: SnapshotWriter, w: MapWork, end: number): void {
  const order = w.order as Int32Array;
  const { keys, entries } = w.map;
  const prev = w.prev;
  // The map's whole section was made room for when its header was written.
  const buf = out.room(0);
  let o = out.offset;
  for (let r = w.written; r < end; ) {
    const i = order[r];
    const from = w.fromPrev[i];
    if (prev !== undefined && from >= 0) {
      // A run of entries that were neighbours in the previous snapshot too: one copy.
      let s = r + 1;
      while (s < end && w.fromPrev[order[s]] === from + (s - r)) s++;
      const start = prev.starts[from];
      for (let k = r; k < s; k++) w.starts[k] = o + (prev.starts[from + k - r] - start);
      o += prev.bytes.copy(buf, o, start, prev.starts[from + (s - r)]);
      r = s;
      continue;
    }
    w.starts[r] = o;
    const key = keys[i];
    const { value, version } = entries[i];
    const bytes = value as Uint8Array;
    o = putU64(buf, o, key.length);
    if (key.length <= SHORT) {
      for (let k = 0; k < key.length; k++) buf[o + k] = key.charCodeAt(k);
    } else {
      buf.write(key, o, key.length, "latin1");
    }
    o += key.length + pad8(key.length);
    o = putU64(buf, o, 8 + bytes.length);
    o = putU64(buf, o, version);
    if (bytes.length <= SHORT) {
      for (let k = 0; k < bytes.length; k++) buf[o + k] = bytes[k];
    } else {
      buf.set(bytes, o);
    }
    o += bytes.length + pad8(bytes.length);
    r++;
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
