// Ledger chunk files as CCF lays them out: a u64 offset of the positions table (0 while the chunk
// is open), the entries back to back, and once complete a table of u32 entry offsets. Names are
// `ledger_<start>` (open), `ledger_<start>-<end>` (complete) and `ledger_<start>-<end>.committed`.

import { FormatError } from "../errors.js";
import { entrySizeAt } from "./entry.js";

export const CHUNK_HEADER_SIZE = 8;

export interface ChunkName {
  start: number;
  end?: number;
  committed: boolean;
  recovery: boolean;
  ignored: boolean;
}

const NAME_RE = /^ledger_(\d+)(?:-(\d+))?(\.committed)?(\.recovery)?(\.ignored)?$/;

export function parseChunkName(name: string): ChunkName | undefined {
  const m = NAME_RE.exec(name);
  if (m === null) return undefined;
  const start = Number(m[1]);
  const end = m[2] === undefined ? undefined : Number(m[2]);
  if (start < 1 || (end !== undefined && end < start)) return undefined;
  const out: ChunkName = {
    start,
    committed: m[3] !== undefined,
    recovery: m[4] !== undefined,
    ignored: m[5] !== undefined,
  };
  if (end !== undefined) out.end = end;
  if (out.committed && end === undefined) return undefined;
  return out;
}

export function chunkFileName(start: number, end?: number, committed = false): string {
  if (end === undefined) return `ledger_${start}`;
  return `ledger_${start}-${end}${committed ? ".committed" : ""}`;
}

export interface ChunkLayout {
  /** Offset and size (header included) of each entry, in file order. */
  entries: Array<{ offset: number; size: number }>;
  /** Whether the chunk has its positions table (it is complete). */
  complete: boolean;
  /** An open chunk whose last entry was cut short by a crash: where it starts and its bytes. */
  tornTail?: { offset: number; bytes: number };
}

/**
 * Finds the entries of a chunk. A complete chunk must match its positions table exactly; an open
 * chunk may end in a torn entry, which is reported, not fatal. Anything else is a FormatError.
 */
export function parseChunk(buf: Buffer): ChunkLayout {
  if (buf.length < CHUNK_HEADER_SIZE) {
    throw new FormatError("InvalidChunk", `chunk of ${buf.length} bytes has no header`);
  }
  const tableOffsetBig = buf.readBigUInt64LE(0);
  if (tableOffsetBig === 0n) return parseOpenChunk(buf);
  const tableOffset = Number(tableOffsetBig);
  if (tableOffsetBig > BigInt(buf.length) || tableOffset < CHUNK_HEADER_SIZE) {
    throw new FormatError(
      "InvalidChunk",
      `positions table offset ${tableOffsetBig} is outside the file`,
    );
  }
  const tableBytes = buf.length - tableOffset;
  if (tableBytes % 4 !== 0) {
    throw new FormatError(
      "InvalidChunk",
      `positions table of ${tableBytes} bytes is not whole u32s`,
    );
  }
  const entries: ChunkLayout["entries"] = [];
  let o = CHUNK_HEADER_SIZE;
  while (o < tableOffset) {
    const size = entrySizeAt(buf.subarray(0, tableOffset), o);
    entries.push({ offset: o, size });
    o += size;
  }
  if (entries.length * 4 !== tableBytes) {
    throw new FormatError(
      "InvalidChunk",
      `positions table lists ${tableBytes / 4} entries but the chunk holds ${entries.length}`,
    );
  }
  entries.forEach((e, i) => {
    const listed = buf.readUInt32LE(tableOffset + 4 * i);
    if (listed !== e.offset) {
      throw new FormatError(
        "InvalidChunk",
        `positions table entry ${i} is ${listed}, expected ${e.offset}`,
      );
    }
  });
  return { entries, complete: true };
}

function parseOpenChunk(buf: Buffer): ChunkLayout {
  const entries: ChunkLayout["entries"] = [];
  let o = CHUNK_HEADER_SIZE;
  while (o < buf.length) {
    let size: number;
    try {
      size = entrySizeAt(buf, o);
    } catch (e) {
      if (e instanceof FormatError && e.code === "TruncatedEntry") {
        return { entries, complete: false, tornTail: { offset: o, bytes: buf.length - o } };
      }
      throw e;
    }
    entries.push({ offset: o, size });
    o += size;
  }
  return { entries, complete: false };
}

/** The positions table of a chunk whose entries start at the given offsets. */
export function positionsTable(offsets: readonly number[]): Buffer {
  const t = Buffer.allocUnsafe(offsets.length * 4);
  offsets.forEach((off, i) => t.writeUInt32LE(off, 4 * i));
  return t;
}
