// What a transaction contributes to the Merkle tree: its leaf digest by ledger entry type, and the
// commit evidence that CCF binds into it (a MAC over the TxID that is only revealed once
// committed).

import { createHmac, hash } from "node:crypto";
import { HmacSha256 } from "../crypto/index.js";
import { FormatError } from "../errors.js";
import { DIGEST_SIZE, requireDigest, sha256 } from "./digest.js";

/** The ledger entry types (first byte of an entry's public domain). */
export const EntryType = {
  WriteSet: 0,
  Snapshot: 1,
  WriteSetWithClaims: 2,
  WriteSetWithCommitEvidence: 3,
  WriteSetWithCommitEvidenceAndClaims: 4,
} as const;

/** The claims digest of a transaction whose application set none: 32 zero bytes. */
export const EMPTY_CLAIMS: Buffer = Buffer.alloc(DIGEST_SIZE);

const leafInput = Buffer.alloc(3 * DIGEST_SIZE);

// CCF derives the commit secret with the label `commit_secret_label_`, which
// src/node/ledger_secret.h first declared as `constexpr auto … = "Commit Secret Label"` and passed
// with a length of sizeof(commit_secret_label_): the size of a pointer, 8. Later versions make the
// truncation explicit as the byte array {'C','o','m','m','i','t',' ','S'}. Both give this label.
const COMMIT_SECRET_LABEL = Buffer.from("Commit S", "ascii");

/**
 * The leaf of a transaction, by the entry type it was written with (CCF's `entry_leaf`,
 * src/kv/claims.h): type 4 = H(wsd ‖ ced ‖ claims), type 3 = H(wsd ‖ ced), type 2 = H(wsd ‖
 * claims), type 0 = wsd. The write set digest is SHA-256 of the whole raw entry; the commit
 * evidence digest is the one stored in the entry's public header. FormatError for snapshots and
 * unknown types, and when the type requires a component that is missing.
 */
export function leafDigest(
  entryType: number,
  writeSetDigest: Uint8Array,
  commitEvidenceDigest?: Uint8Array,
  claimsDigest?: Uint8Array,
): Buffer {
  requireDigest(writeSetDigest, "write set digest");
  if (commitEvidenceDigest !== undefined)
    requireDigest(commitEvidenceDigest, "commit evidence digest");
  if (claimsDigest !== undefined) requireDigest(claimsDigest, "claims digest");
  switch (entryType) {
    case EntryType.WriteSet:
      return Buffer.from(writeSetDigest);
    case EntryType.WriteSetWithClaims:
      return sha256(writeSetDigest, required(claimsDigest, "claims digest", entryType));
    case EntryType.WriteSetWithCommitEvidence:
      return sha256(
        writeSetDigest,
        required(commitEvidenceDigest, "commit evidence digest", entryType),
      );
    case EntryType.WriteSetWithCommitEvidenceAndClaims: {
      // The leaf of every transaction: hashed from one scratch buffer, without concatenating.
      leafInput.set(writeSetDigest, 0);
      leafInput.set(
        required(commitEvidenceDigest, "commit evidence digest", entryType),
        DIGEST_SIZE,
      );
      leafInput.set(claimsDigest ?? EMPTY_CLAIMS, 2 * DIGEST_SIZE);
      return hash("sha256", leafInput, "buffer");
    }
    default:
      throw new FormatError("InvalidEntryType", `entry type ${entryType} has no Merkle leaf`);
  }
}

function required(component: Uint8Array | undefined, what: string, entryType: number): Uint8Array {
  if (component === undefined) {
    throw new FormatError("InvalidLedgerEntry", `an entry of type ${entryType} needs a ${what}`);
  }
  return component;
}

/** HMAC-SHA256(ledger secret, "Commit S"): the key of every commit evidence under that secret. */
export function commitSecret(ledgerSecretKey: Uint8Array): Buffer {
  return createHmac("sha256", ledgerSecretKey).update(COMMIT_SECRET_LABEL).digest();
}

/** `ce:{view}.{seqno}:{hex HMAC-SHA256(commit secret, "{view}.{seqno}")}` */
export function commitEvidence(secret: Uint8Array, view: number, seqno: number): string {
  checkTxIdPart(view, "view");
  checkTxIdPart(seqno, "seqno");
  const txId = `${view}.${seqno}`;
  return `ce:${txId}:${macFor(secret).mac(Buffer.from(txId, "latin1")).toString("hex")}`;
}

// One transaction after another uses the same commit secret: keep its HMAC pads.
let lastSecretRef: Uint8Array | undefined;
let lastSecret: Buffer | undefined;
let lastMac: HmacSha256 | undefined;

function macFor(secret: Uint8Array): HmacSha256 {
  if (secret === lastSecretRef && lastMac !== undefined && lastSecret?.equals(secret) === true) {
    return lastMac;
  }
  lastSecretRef = secret;
  lastSecret = Buffer.from(secret);
  lastMac = new HmacSha256(secret);
  return lastMac;
}

function checkTxIdPart(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`${what} must be a non-negative integer, got ${n}`);
  }
}

/** SHA-256 of the commit evidence string: what the entry's public header stores. */
export function commitEvidenceDigest(evidence: string): Buffer {
  return hash("sha256", evidence, "buffer");
}
