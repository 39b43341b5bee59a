// Snapshot files as CCF writes them (src/snapshots/, src/node/snapshot_serdes.h): the snapshot entry
// (a ledger entry of type Snapshot, its private maps encrypted under the ledger secret) in
// `snapshot_<seqno>_<evidence seqno>` while the evidence transaction awaits commit, then with the
// evidence's JSON receipt appended and renamed `.committed`. A reader splits the two with the
// entry's size from its 8-byte header; the receipt binds SHA-256 of the entry as its claims digest.

import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { join } from "node:path";
import { CryptoError, FormatError } from "../errors.js";
import { verifyCertificateIssued, verifyDigest } from "../crypto/index.js";
import {
  encodeValue,
  type ParsedSnapshot,
  parseSnapshot,
  SINGLETON_KEY,
  type SnapshotDomains,
  Tables,
} from "../kv/index.js";
import { type Receipt, verifyReceipt } from "../merkle/index.js";
import {
  decryptPrivateDomain,
  type EntryParts,
  encodeEntryParts,
  entrySizeAt,
  splitEntry,
} from "./entry.js";
import type { LedgerSecret } from "./secrets.js";

const PREFIX = "snapshot_";
const COMMITTED = ".committed";
const COSE_SIGN1_TAG_BYTE = 0xd2;

export interface SnapshotFileName {
  seqno: number;
  evidenceSeqno: number;
  committed: boolean;
}

/** `snapshot_<seqno>_<evidence seqno>`, with `.committed` once the receipt is appended. */
export function snapshotFileName(seqno: number, evidenceSeqno: number, committed = false): string {
  return `${PREFIX}${seqno}_${evidenceSeqno}${committed ? COMMITTED : ""}`;
}

/** The seqnos in a snapshot file name, or undefined for any other name. */
export function parseSnapshotFileName(name: string): SnapshotFileName | undefined {
  const m = /^snapshot_(\d+)_(\d+)(\.committed)?$/.exec(name);
  if (m === null) return undefined;
  return { seqno: Number(m[1]), evidenceSeqno: Number(m[2]), committed: m[3] !== undefined };
}

/**
 * The snapshot entry as streamable pieces: CCF encrypts a snapshot at TxID 0.seqno with the IV's
 * snapshot bit set, under the ledger secret in force at that seqno (the caller's `secret`).
 */
export function encodeSnapshotEntry(
  domains: SnapshotDomains,
  seqno: number,
  secret: LedgerSecret,
): EntryParts {
  return encodeEntryParts({ ...domains, seqno, view: 0, secret, snapshot: true });
}

/** SHA-256 of the whole snapshot entry: the evidence's hash and its transaction's claims digest. */
export function snapshotDigest(entry: EntryParts | Buffer): Buffer {
  const h = createHash("sha256");
  if (Buffer.isBuffer(entry)) h.update(entry);
  else h.update(entry.prefix).update(entry.publicDomain).update(entry.privateCiphertext);
  return h.digest();
}

/**
 * The value the snapshot evidence transaction writes at SINGLETON_KEY in
 * `public:ccf.internal.snapshot_evidence`: CCF's `SnapshotHash` JSON, `{"hash": hex, "version": n}`.
 */
export function snapshotEvidenceValue(hash: Uint8Array, version: number): Buffer {
  if (hash.length !== 32) throw new RangeError(`a snapshot hash is 32 bytes, got ${hash.length}`);
  return encodeValue(Tables.SNAPSHOT_EVIDENCE, {
    hash: Buffer.from(hash).toString("hex"),
    version,
  });
}

export { SINGLETON_KEY as SNAPSHOT_EVIDENCE_KEY };

/**
 * Writes the snapshot entry to `dir/snapshot_<seqno>_<evidence seqno>` piece by piece, then syncs
 * file and directory. Refuses to replace an existing file (as CCF). Returns the file's path.
 */
export async function writeSnapshotFile(
  dir: string,
  seqno: number,
  evidenceSeqno: number,
  entry: EntryParts,
): Promise<string> {
  const path = join(dir, snapshotFileName(seqno, evidenceSeqno));
  const fh = await fs.promises.open(path, "wx");
  try {
    for (const piece of [entry.prefix, entry.publicDomain, entry.privateCiphertext]) {
      await writeAll(fh, piece);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  await syncDir(dir);
  return path;
}

/**
 * Appends the evidence transaction's receipt to the pending snapshot file, syncs it, and renames it
 * `.committed` (syncing the directory before and after). Refuses a file that is not exactly one
 * entry, so a receipt is never appended twice. Returns the committed file's path.
 */
export async function commitSnapshotFile(
  dir: string,
  seqno: number,
  evidenceSeqno: number,
  receipt: Receipt,
): Promise<string> {
  const name = snapshotFileName(seqno, evidenceSeqno);
  const path = join(dir, name);
  const fh = await fs.promises.open(path, "r+");
  try {
    const { size } = await fh.stat();
    const header = Buffer.alloc(8);
    await fh.read(header, 0, 8, 0);
    const entrySize = 8 + header.readUIntLE(2, 6);
    if (entrySize !== size) {
      throw new FormatError(
        "InvalidSnapshot",
        `${name} is ${size} bytes but its entry is ${entrySize}: not a pending snapshot`,
      );
    }
    // Compact JSON, keys in order: what CCF's receipt `dump()` gives.
    await writeAll(fh, Buffer.from(JSON.stringify(receipt)), size);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await syncDir(dir);
  const committed = join(dir, snapshotFileName(seqno, evidenceSeqno, true));
  await fs.promises.rename(path, committed);
  await syncDir(dir);
  return committed;
}

async function writeAll(
  fh: fs.promises.FileHandle,
  data: Buffer,
  position?: number,
): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(
      data,
      done,
      data.length - done,
      position === undefined ? null : position + done,
    );
    done += bytesWritten;
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface CommittedSnapshot extends SnapshotFileName {
  path: string;
}

/** Committed, non-empty snapshot files in `dir`, newest (highest seqno) first. */
export function listCommittedSnapshots(dir: string): CommittedSnapshot[] {
  const out: CommittedSnapshot[] = [];
  for (const file of fs.readdirSync(dir)) {
    const name = parseSnapshotFileName(file);
    if (name === undefined || !name.committed) continue;
    const path = join(dir, file);
    if (fs.statSync(path).size === 0) continue;
    out.push({ ...name, path });
  }
  return out.sort((a, b) => b.seqno - a.seqno || b.evidenceSeqno - a.evidenceSeqno);
}

export interface SnapshotFile {
  /** The snapshot entry, header included: what the receipt's claims digest covers. */
  entry: Buffer;
  /** The bytes after the entry (empty while the snapshot awaits its evidence's commit). */
  receiptBytes: Buffer;
  /** The receipt, when it is JSON (CCF up to 6); undefined when absent or COSE (CCF 7). */
  receipt: Receipt | undefined;
  /** The entry's seqno, from its public header. */
  seqno: number;
}

/**
 * Reads a snapshot file and splits it at the end of the entry (its size is in its 8-byte header).
 * FormatError if the entry is malformed, is not a snapshot, or disagrees with the file's name.
 */
export function readSnapshotFile(path: string): SnapshotFile {
  const bytes = fs.readFileSync(path);
  const size = entrySizeAt(bytes, 0);
  const entry = bytes.subarray(0, size);
  const receiptBytes = bytes.subarray(size);
  const { seqno } = snapshotHeaderOf(entry);
  const name = parseSnapshotFileName(path.slice(path.lastIndexOf("/") + 1));
  if (name !== undefined && name.seqno !== seqno) {
    throw new FormatError("InvalidSnapshot", `${path} holds a snapshot at seqno ${seqno}`);
  }
  let receipt: Receipt | undefined;
  if (receiptBytes.length > 0 && receiptBytes[0] === 0x7b) {
    try {
      receipt = JSON.parse(receiptBytes.toString("utf8")) as Receipt;
    } catch (e) {
      throw new FormatError("InvalidSnapshot", `${path}: the receipt is not JSON`, { cause: e });
    }
  }
  return { entry, receiptBytes, receipt, seqno };
}

/** The seqno of a snapshot entry, checked against its IV (seqno, snapshot bit). */
function snapshotHeaderOf(entry: Buffer): { seqno: number } {
  const raw = splitEntry(entry);
  const seqno = raw.iv.readUInt32LE(0) + raw.iv.readUInt32LE(4) * 0x100000000;
  if ((raw.iv.readUInt32LE(8) & 0x80000000) === 0) {
    throw new FormatError("InvalidSnapshot", "the entry's IV does not have the snapshot bit");
  }
  if (raw.publicDomain.length < 9 || raw.publicDomain[0] !== 1) {
    throw new FormatError("InvalidSnapshot", "the entry is not of type Snapshot");
  }
  const version = Number(raw.publicDomain.readBigInt64LE(1));
  if (version !== seqno) {
    throw new FormatError("InvalidSnapshot", `IV seqno ${seqno} differs from version ${version}`);
  }
  return { seqno };
}

/**
 * Parses a snapshot entry: the public maps always, the private ones too when given the ledger
 * secret (whose GCM tag check also covers the public domain). CryptoError if the tag does not
 * verify; FormatError if the entry is malformed.
 */
export function decodeSnapshotEntry(entry: Buffer, secret?: LedgerSecret): ParsedSnapshot {
  snapshotHeaderOf(entry);
  const raw = splitEntry(entry);
  const priv = secret === undefined ? undefined : decryptPrivateDomain(raw, secret);
  return parseSnapshot(raw.publicDomain, priv);
}

/**
 * Checks that a committed snapshot is what its receipt vouches for, as CCF's
 * `verify_json_snapshot_receipt` does: the receipt's claims digest is SHA-256 of the entry, its
 * signature verifies over the root its proof leads to, and the signing node's certificate is
 * endorsed by the service certificate (through `service_endorsements` after recoveries). Returns the
 * evidence transaction's seqno from its commit evidence. CryptoError with the reason otherwise.
 */
export function verifySnapshot(
  entry: Buffer,
  receipt: Receipt | Buffer | undefined,
  serviceCertPem: string,
): { evidenceSeqno: number } {
  if (receipt === undefined || (Buffer.isBuffer(receipt) && receipt.length === 0)) {
    throw refuse("the snapshot has no receipt (not committed)");
  }
  if (Buffer.isBuffer(receipt) && receipt[0] === COSE_SIGN1_TAG_BYTE) {
    throw refuse("COSE snapshot receipts (CCF 7) are not supported");
  }
  let r: Receipt;
  try {
    r = Buffer.isBuffer(receipt) ? (JSON.parse(receipt.toString("utf8")) as Receipt) : receipt;
  } catch {
    throw refuse("the receipt is not JSON");
  }
  if (typeof r !== "object" || r === null || !("leaf_components" in r)) {
    throw refuse("the receipt has no leaf_components");
  }
  const components = r.leaf_components as { claims_digest?: unknown; commit_evidence?: unknown };
  const digest = snapshotDigest(entry).toString("hex");
  if (typeof components.claims_digest !== "string" || components.claims_digest !== digest) {
    throw refuse(
      `snapshot digest ${digest} does not match the receipt's claims digest ${String(components.claims_digest)}`,
    );
  }
  let ok: boolean;
  try {
    ok = verifyReceipt(r, verifyDigest, serviceCertPem, verifyCertificateIssued);
  } catch (e) {
    throw refuse(`malformed receipt: ${(e as Error).message}`);
  }
  if (!ok) throw refuse("the receipt does not verify against the service certificate");
  const m =
    typeof components.commit_evidence === "string"
      ? /^ce:\d+\.(\d+):[0-9a-f]+$/.exec(components.commit_evidence)
      : null;
  if (m === null) throw refuse("the receipt's commit evidence is malformed");
  return { evidenceSeqno: Number(m[1]) };
}

function refuse(reason: string): CryptoError {
  return new CryptoError("InvalidSnapshotReceipt", `snapshot refused: ${reason}`);
}
