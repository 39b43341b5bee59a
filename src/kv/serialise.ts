// CCF's serialised write set (src/kv/generic_serialise_wrapper.h): a public header, then for each
// map in name order: name, read version, reads, writes and removals, all little-endian with u64
// length prefixes. The public domain holds the header and the public maps; the private domain
// (encrypted by the ledger) holds the private maps in the same per-map layout.

import { FormatError } from "../errors.js";
import { type KeyString, keyToString } from "./keys.js";
import { EntryType } from "../merkle/index.js";
import { isPublicMap, type MapWrites, type WriteSet } from "./write-set.js";

// The entry types are defined once, with the Merkle leaf rules that depend on them.
export { EntryType } from "../merkle/index.js";
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

export interface PublicHeader {
  entryType: EntryType;
  /** The transaction's seqno. */
  version: number;
  claimsDigest?: Uint8Array;
  commitEvidenceDigest?: Uint8Array;
  maxConflictVersion: number;
}

export function hasClaims(t: number): boolean {
  return t === EntryType.WriteSetWithClaims || t === EntryType.WriteSetWithCommitEvidenceAndClaims;
}

export function hasCommitEvidence(t: number): boolean {
  return (
    t === EntryType.WriteSetWithCommitEvidence ||
    t === EntryType.WriteSetWithCommitEvidenceAndClaims
  );
}

function headerSize(h: PublicHeader): number {
  return 1 + 8 + (hasClaims(h.entryType) ? 32 : 0) + (hasCommitEvidence(h.entryType) ? 32 : 0) + 8;
}

function mapSize(name: string, writes: MapWrites): number {
  let n = 8 + Buffer.byteLength(name) + 8 + 8 + 8 + 8;
  for (const [k, v] of writes) {
    n += 8 + k.length + (v === null ? 0 : 8 + v.length);
  }
  return n;
}

function selectMaps(ws: WriteSet, publicDomain: boolean): Array<[string, MapWrites]> {
  const out: Array<[string, MapWrites]> = [];
  for (const [name, writes] of ws) {
    if (writes.size > 0 && isPublicMap(name) === publicDomain) out.push([name, writes]);
  }
  if (out.length > 1) out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return out;
}

/** Serialises one domain: the public one (with its header) or the private one (header omitted). */
export function serialiseDomain(ws: WriteSet, header: PublicHeader | undefined): Buffer {
  const maps = selectMaps(ws, header !== undefined);
  let size = header === undefined ? 0 : headerSize(header);
  for (const [name, writes] of maps) size += mapSize(name, writes);
  const buf = Buffer.allocUnsafe(size);
  let o = 0;
  if (header !== undefined) {
    o = buf.writeUInt8(header.entryType, o);
    o = writeI64(buf, o, header.version);
    if (hasClaims(header.entryType)) o += copy32(buf, o, header.claimsDigest, "claims digest");
    if (hasCommitEvidence(header.entryType)) {
      o += copy32(buf, o, header.commitEvidenceDigest, "commit evidence digest");
    }
    o = writeI64(buf, o, header.maxConflictVersion);
  }
  for (const [name, writes] of maps) {
    o = writeU64(buf, o, Buffer.byteLength(name));
    o += buf.write(name, o);
    o = writeU64(buf, o, 0); // read version: CCF writes 0 in ledger entries
    o = writeU64(buf, o, 0); // reads are not replicated
    let nWrites = 0;
    for (const v of writes.values()) if (v !== null) nWrites++;
    const sorted = writes.size === 1 ? writes.keys() : [...writes.keys()].sort();
    o = writeU64(buf, o, nWrites);
    for (const k of sorted) {
      const v = writes.get(k);
      if (v === null || v === undefined) continue;
      o = writeU64(buf, o, k.length);
      o += buf.write(k, o, "latin1");
      o = writeU64(buf, o, v.length);
      buf.set(v, o);
      o += v.length;
    }
    o = writeU64(buf, o, writes.size - nWrites);
    for (const k of writes.size === 1 ? writes.keys() : sorted) {
      if (writes.get(k) !== null) continue;
      o = writeU64(buf, o, k.length);
      o += buf.write(k, o, "latin1");
    }
  }
  return buf;
}

function copy32(buf: Buffer, o: number, d: Uint8Array | undefined, what: string): number {
  if (d === undefined || d.length !== 32)
    throw new FormatError("InvalidEntry", `${what} must be 32 bytes`);
  buf.set(d, o);
  return 32;
}

/** i64 little-endian without a BigInt for the common non-negative case (seqnos, versions). */
function writeI64(buf: Buffer, o: number, n: number): number {
  return n >= 0 ? writeU64(buf, o, n) : buf.writeBigInt64LE(BigInt(n), o);
}

function writeU64(buf: Buffer, o: number, n: number): number {
  buf.writeUInt32LE(n >>> 0, o);
  buf.writeUInt32LE(Math.floor(n / 0x100000000), o + 4);
  return o + 8;
}

/** A bounds-checked little-endian reader over a domain; every overrun is a FormatError. */
class Reader {
  o: number;
  constructor(
    readonly buf: Buffer,
    start = 0,
  ) {
    this.o = start;
  }
  get done(): boolean {
    return this.o >= this.buf.length;
  }
  need(n: number, what: string): void {
    if (n < 0 || this.o + n > this.buf.length) {
      throw new FormatError(
        "InvalidEntry",
        `write set truncated reading ${what} at byte ${this.o} of ${this.buf.length}`,
      );
    }
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.o++];
  }
  u64(what: string): number {
    this.need(8, what);
    const lo = this.buf.readUInt32LE(this.o);
    const hi = this.buf.readUInt32LE(this.o + 4);
    this.o += 8;
    if (hi > 0x1fffff) throw new FormatError("InvalidEntry", `${what} is out of range`);
    return hi * 0x100000000 + lo;
  }
  i64(what: string): number {
    this.need(8, what);
    const v = this.buf.readBigInt64LE(this.o);
    this.o += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new FormatError("InvalidEntry", `${what} is out of range`);
    }
    return Number(v);
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const b = this.buf.subarray(this.o, this.o + n);
    this.o += n;
    return b;
  }
  sized(what: string): Buffer {
    return this.bytes(this.u64(`${what} length`), what);
  }
}

function parsePublicHeader(r: Reader): PublicHeader {
  const entryType = r.u8("entry type");
  if (entryType > 4) throw new FormatError("InvalidEntry", `unknown entry type ${entryType}`);
  const version = r.i64("version");
  const header: PublicHeader = {
    entryType: entryType as EntryType,
    version,
    maxConflictVersion: 0,
  };
  if (hasClaims(entryType)) header.claimsDigest = r.bytes(32, "claims digest");
  if (hasCommitEvidence(entryType))
    header.commitEvidenceDigest = r.bytes(32, "commit evidence digest");
  header.maxConflictVersion = r.i64("max conflict version");
  return header;
}

function parseMaps(r: Reader, into: WriteSet, expectPublic: boolean): void {
  while (!r.done) {
    const name = r.sized("map name").toString("utf8");
    if (isPublicMap(name) !== expectPublic) {
      throw new FormatError(
        "InvalidEntry",
        `map ${name} found in the ${expectPublic ? "public" : "private"} domain`,
      );
    }
    r.u64("read version");
    const nReads = r.u64("read count");
    for (let i = 0; i < nReads; i++) {
      r.sized("read key");
      r.u64("read key version");
    }
    const writes: MapWrites = into.get(name) ?? new Map<KeyString, Uint8Array | null>();
    const nWrites = r.u64("write count");
    for (let i = 0; i < nWrites; i++) {
      const k = keyToString(r.sized("key"));
      writes.set(k, r.sized("value"));
    }
    const nRemoves = r.u64("remove count");
    for (let i = 0; i < nRemoves; i++) writes.set(keyToString(r.sized("removed key")), null);
    into.set(name, writes);
  }
}

/** Parses a public domain into its header and the public maps' writes. */
export function parsePublicDomain(buf: Buffer): { header: PublicHeader; writeSet: WriteSet } {
  const r = new Reader(buf);
  const header = parsePublicHeader(r);
  if (header.entryType === EntryType.Snapshot) {
    throw new FormatError("InvalidEntry", "snapshot entries are not write sets");
  }
  const writeSet: WriteSet = new Map();
  parseMaps(r, writeSet, true);
  return { header, writeSet };
}

/** Parses a decrypted private domain, adding its maps to `into`. */
export function parsePrivateDomain(buf: Buffer, into: WriteSet = new Map()): WriteSet {
  parseMaps(new Reader(buf), into, false);
  return into;
}
