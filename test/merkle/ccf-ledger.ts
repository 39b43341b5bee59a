// Just enough of CCF's ledger chunk format to feed the Merkle tests with what CCF really wrote:
// each entry's raw bytes, its public header digests, and the raw values of its public map writes.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export const FIXTURES = join(import.meta.dirname, "../../../shared/fixtures/ccf-ledgers");

export interface FixtureEntry {
  seqno: number;
  view: number;
  entryType: number;
  raw: Buffer;
  claimsDigest?: Buffer;
  commitEvidenceDigest?: Buffer;
  /** map name -> (hex key -> value bytes) */
  writes: Map<string, Map<string, Buffer>>;
}

const HEADER = 8;
// AES-GCM tag (16) then IV (12): seqno u64 LE, view u32 LE whose top bit flags a snapshot.
const GCM_HEADER = 28;

/** The entries of the committed chunks of a fixture service, in seqno order. */
export function readFixtureLedger(service: string): FixtureEntry[] {
  const dir = join(FIXTURES, service, "ledger");
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".committed"))
    .sort((a, b) => Number(a.split(/[_-]/)[1]) - Number(b.split(/[_-]/)[1]));
  const entries: FixtureEntry[] = [];
  for (const file of files) {
    const chunk = readFileSync(join(dir, file));
    const end = Number(chunk.readBigUInt64LE(0));
    for (let pos = 8; pos < end; ) {
      // Entry header: version u8, flags u8, size u48 (bytes after the header), little-endian.
      const bodySize = chunk.readUIntLE(pos + 2, 6);
      const raw = chunk.subarray(pos, pos + HEADER + bodySize);
      entries.push(parseEntry(raw));
      pos += HEADER + bodySize;
    }
  }
  return entries;
}

// Public domain: entry type u8, version i64, [claims digest], [commit evidence digest],
// max_conflict_version i64, then per map: name, read version, read count, writes, removals.
function parseEntry(raw: Buffer): FixtureEntry {
  const iv = raw.subarray(HEADER + 16, HEADER + GCM_HEADER);
  const seqno = Number(iv.readBigUInt64LE(0));
  const view = iv.readUInt32LE(8) & 0x7fffffff;
  let p = HEADER + GCM_HEADER;
  const publicSize = Number(raw.readBigUInt64LE(p));
  p += 8;
  const pub = raw.subarray(p, p + publicSize);
  let q = 0;
  const entryType = pub[q++];
  q += 8; // version
  const entry: FixtureEntry = { seqno, view, entryType, raw, writes: new Map() };
  if (entryType === 2 || entryType === 4) {
    entry.claimsDigest = pub.subarray(q, q + 32);
    q += 32;
  }
  if (entryType === 3 || entryType === 4) {
    entry.commitEvidenceDigest = pub.subarray(q, q + 32);
    q += 32;
  }
  q += 8; // max_conflict_version
  const next = (): Buffer => {
    const n = Number(pub.readBigUInt64LE(q));
    q += 8;
    const b = pub.subarray(q, q + n);
    q += n;
    return b;
  };
  const u64 = (): number => {
    const n = Number(pub.readBigUInt64LE(q));
    q += 8;
    return n;
  };
  while (q < pub.length) {
    const name = next().toString("utf8");
    u64(); // read version
    u64(); // read count, always 0
    const writes = new Map<string, Buffer>();
    for (let w = u64(); w > 0; w--) {
      const key = next();
      writes.set(key.toString("hex"), next());
    }
    for (let r = u64(); r > 0; r--) next();
    entry.writes.set(name, writes);
  }
  return entry;
}
