// One ledger entry, byte-compatible with CCF 6: an 8-byte header (version 1, flags, u48 size), the
// AES-GCM header (tag, then IV = seqno u64 ‖ view u32), the public domain's length and bytes, then
// the private domain encrypted under the ledger secret with the public domain as additional data.

import { AesGcmKey } from "../crypto/index.js";
import { FormatError } from "../errors.js";
import {
  parsePrivateDomain,
  parsePublicDomain,
  type PublicHeader,
  serialiseDomain,
  type WriteSet,
} from "../kv/index.js";
import type { LedgerSecret } from "./secrets.js";

export const ENTRY_HEADER_SIZE = 8;
export const GCM_TAG_SIZE = 16;
export const GCM_IV_SIZE = 12;
const PREFIX_SIZE = ENTRY_HEADER_SIZE + GCM_TAG_SIZE + GCM_IV_SIZE + 8;
export const ENTRY_FORMAT_VERSION = 1;
const MAX_ENTRY_SIZE = 2 ** 48 - 1;

// Each ledger secret keeps its prepared cipher (key schedule and GHASH tables) while it is in use.
const ciphers = new WeakMap<LedgerSecret, AesGcmKey>();

function cipherFor(secret: LedgerSecret): AesGcmKey {
  let c = ciphers.get(secret);
  if (c === undefined) {
    c = new AesGcmKey(secret.key);
    ciphers.set(secret, c);
  }
  return c;
}

export const EntryFlags = {
  ForceLedgerChunkAfter: 1,
  ForceLedgerChunkBefore: 2,
} as const;

/** CCF's GCM IV for an entry: seqno (u64 LE) then view (u32 LE, top bit set for snapshots). */
export function entryIv(seqno: number, view: number, snapshot = false): Buffer {
  const iv = Buffer.alloc(GCM_IV_SIZE);
  iv.writeUInt32LE(seqno >>> 0, 0);
  iv.writeUInt32LE(Math.floor(seqno / 0x100000000), 4);
  iv.writeUInt32LE(((view & 0x7fffffff) | (snapshot ? 0x80000000 : 0)) >>> 0, 8);
  return iv;
}

export interface EncodeEntryArgs {
  writeSet: WriteSet;
  header: PublicHeader;
  view: number;
  secret: LedgerSecret;
  flags?: number;
}

/** Serialises, encrypts and frames a write set as one ledger entry (header included). */
export function encodeEntry(args: EncodeEntryArgs): Buffer {
  const pub = serialiseDomain(args.writeSet, args.header);
  const priv = serialiseDomain(args.writeSet, undefined);
  const iv = entryIv(args.header.version, args.view);
  const { ciphertext, tag } = cipherFor(args.secret).encrypt(iv, priv, pub);
  const size = GCM_TAG_SIZE + GCM_IV_SIZE + 8 + pub.length + ciphertext.length;
  // Not from node's shared 8 KiB pool: consensus keeps every entry in memory, and a pooled slice
  // would keep its whole slab (and whatever else was cut from it) alive with it.
  const out = Buffer.allocUnsafeSlow(ENTRY_HEADER_SIZE + size);
  out[0] = ENTRY_FORMAT_VERSION;
  out[1] = args.flags ?? 0;
  out.writeUIntLE(size, 2, 6);
  tag.copy(out, 8);
  iv.copy(out, 8 + GCM_TAG_SIZE);
  const o = 8 + GCM_TAG_SIZE + GCM_IV_SIZE;
  out.writeUInt32LE(pub.length, o);
  out.writeUInt32LE(0, o + 4);
  pub.copy(out, PREFIX_SIZE);
  ciphertext.copy(out, PREFIX_SIZE + pub.length);
  return out;
}

/** An entry as the pieces a writer can stream: the fixed headers, the public domain, the ciphertext. */
export interface EntryParts {
  /** Entry header, GCM tag, IV and public domain length. */
  prefix: Buffer;
  publicDomain: Buffer;
  privateCiphertext: Buffer;
  /** Total size, entry header included. */
  size: number;
}

/**
 * Frames already-serialised domains as one entry without joining them: the private domain is
 * encrypted under `secret` with the public domain as additional data. For snapshots the IV's
 * snapshot bit is set (CCF encrypts them at TxID 0.seqno, so `view` is 0 there).
 */
export function encodeEntryParts(args: {
  publicDomain: Buffer;
  privateDomain: Buffer;
  seqno: number;
  view: number;
  secret: LedgerSecret;
  snapshot?: boolean;
  flags?: number;
}): EntryParts {
  const iv = entryIv(args.seqno, args.view, args.snapshot ?? false);
  const { ciphertext, tag } = cipherFor(args.secret).encrypt(
    iv,
    args.privateDomain,
    args.publicDomain,
  );
  const size = GCM_TAG_SIZE + GCM_IV_SIZE + 8 + args.publicDomain.length + ciphertext.length;
  if (size > MAX_ENTRY_SIZE) throw new FormatError("InvalidEntry", `entry of ${size} bytes`);
  const prefix = Buffer.alloc(PREFIX_SIZE);
  prefix[0] = ENTRY_FORMAT_VERSION;
  prefix[1] = args.flags ?? 0;
  prefix.writeUIntLE(size, 2, 6);
  tag.copy(prefix, 8);
  iv.copy(prefix, 8 + GCM_TAG_SIZE);
  const o = 8 + GCM_TAG_SIZE + GCM_IV_SIZE;
  prefix.writeUInt32LE(args.publicDomain.length >>> 0, o);
  prefix.writeUInt32LE(Math.floor(args.publicDomain.length / 0x100000000), o + 4);
  return {
    prefix,
    publicDomain: args.publicDomain,
    privateCiphertext: Buffer.from(ciphertext),
    size: ENTRY_HEADER_SIZE + size,
  };
}

/** Checks an entry's GCM tag (over the public domain too) and returns its decrypted private domain. */
export function decryptPrivateDomain(raw: RawEntry, secret: LedgerSecret): Buffer {
  return Buffer.from(
    cipherFor(secret).decrypt(raw.iv, raw.privateCiphertext, raw.tag, raw.publicDomain),
  );
}

/** A framed entry split into its parts, without decrypting anything. */
export interface RawEntry {
  /** The whole entry, header included: what the Merkle leaf's write-set digest covers. */
  bytes: Buffer;
  flags: number;
  tag: Buffer;
  iv: Buffer;
  publicDomain: Buffer;
  privateCiphertext: Buffer;
}

/** Size of the entry starting at `offset` (header included), or a FormatError if it is not one. */
export function entrySizeAt(buf: Buffer, offset: number): number {
  if (offset + ENTRY_HEADER_SIZE > buf.length) {
    throw new FormatError("TruncatedEntry", `entry header truncated at byte ${offset}`);
  }
  if (buf[offset] !== ENTRY_FORMAT_VERSION) {
    throw new FormatError(
      "InvalidEntry",
      `unknown entry format version ${buf[offset]} at byte ${offset}`,
    );
  }
  const size = buf.readUIntLE(offset + 2, 6);
  if (size > MAX_ENTRY_SIZE || offset + ENTRY_HEADER_SIZE + size > buf.length) {
    throw new FormatError(
      "TruncatedEntry",
      `entry at byte ${offset} claims ${size} bytes but only ${buf.length - offset - ENTRY_HEADER_SIZE} remain`,
    );
  }
  return ENTRY_HEADER_SIZE + size;
}

export function splitEntry(bytes: Buffer): RawEntry {
  const total = entrySizeAt(bytes, 0);
  if (total !== bytes.length) {
    throw new FormatError(
      "InvalidEntry",
      `entry is ${bytes.length} bytes but its header says ${total}`,
    );
  }
  if (total < PREFIX_SIZE)
    throw new FormatError("InvalidEntry", "entry shorter than its fixed headers");
  const o = 8 + GCM_TAG_SIZE + GCM_IV_SIZE;
  const pubLen = bytes.readUInt32LE(o) + bytes.readUInt32LE(o + 4) * 0x100000000;
  if (PREFIX_SIZE + pubLen > total) {
    throw new FormatError("InvalidEntry", `public domain length ${pubLen} exceeds the entry`);
  }
  return {
    bytes,
    flags: bytes[1],
    tag: bytes.subarray(8, 8 + GCM_TAG_SIZE),
    iv: bytes.subarray(8 + GCM_TAG_SIZE, o),
    publicDomain: bytes.subarray(PREFIX_SIZE, PREFIX_SIZE + pubLen),
    privateCiphertext: bytes.subarray(PREFIX_SIZE + pubLen),
  };
}

/** An entry with its public domain parsed. */
export interface DecodedEntry extends RawEntry {
  header: PublicHeader;
  /** The public maps' writes (private maps are added by `decryptEntry`). */
  writeSet: WriteSet;
  /** View from the IV. */
  view: number;
}

export function decodeEntry(bytes: Buffer): DecodedEntry {
  const raw = splitEntry(bytes);
  const { header, writeSet } = parsePublicDomain(raw.publicDomain);
  const ivSeqno = raw.iv.readUInt32LE(0) + raw.iv.readUInt32LE(4) * 0x100000000;
  if (ivSeqno !== header.version) {
    throw new FormatError(
      "InvalidEntry",
      `IV seqno ${ivSeqno} differs from entry version ${header.version}`,
    );
  }
  // An object literal, not a spread: this runs for every entry read or replicated (~5 µs saved).
  return {
    bytes: raw.bytes,
    flags: raw.flags,
    tag: raw.tag,
    iv: raw.iv,
    publicDomain: raw.publicDomain,
    privateCiphertext: raw.privateCiphertext,
    header,
    writeSet,
    view: raw.iv.readUInt32LE(8) & 0x7fffffff,
  };
}

/**
 * Readies the decryption of entries about to be decrypted in this order under `secret` (a batch
 * replicated from the primary): their keystreams come from one call into node:crypto (see
 * AesGcmKey.prepare). Malformed entries are left out (decrypting them reports them). Returns the
 * function that drops what the batch did not use.
 */
export function prepareDecryption(entries: readonly Buffer[], secret: LedgerSecret): () => void {
  const messages: Array<{ iv: Uint8Array; textLength: number; aadLength: number }> = [];
  for (const bytes of entries) {
    let raw: RawEntry;
    try {
      raw = splitEntry(bytes);
    } catch {
      continue;
    }
    messages.push({
      iv: raw.iv,
      textLength: raw.privateCiphertext.length,
      aadLength: raw.publicDomain.length,
    });
  }
  const cipher = cipherFor(secret);
  cipher.prepare(messages);
  return () => cipher.dropAhead();
}

/**
 * Checks the GCM tag (which covers the public domain too) and adds the private maps to the entry's
 * write set. Throws CryptoError if the tag does not verify under the secret.
 */
export function decryptEntry(entry: DecodedEntry, secret: LedgerSecret): WriteSet {
  const plain = cipherFor(secret).decrypt(
    entry.iv,
    entry.privateCiphertext,
    entry.tag,
    entry.publicDomain,
  );
  return parsePrivateDomain(plain, entry.writeSet);
}
