// SHA-256 digests as the Merkle layer exchanges them: one-shot hashing of a few byte strings, and
// strict checks of the text forms CCF's JSON (receipts, signatures) carries them in: hex digests
// and base64 signatures.

import { FormatError } from "../errors.js";

export const DIGEST_SIZE = 32;

export { sha256 } from "../crypto/index.js";

const HEX_DIGEST = /^[0-9a-fA-F]{64}$/;

export function isHexDigest(value: unknown): value is string {
  return typeof value === "string" && HEX_DIGEST.test(value);
}

/** The 32 bytes of a hex digest; FormatError naming `what` when it is not 64 hex characters. */
export function digestFromHex(value: unknown, what: string): Buffer {
  if (!isHexDigest(value)) {
    throw new FormatError("InvalidDigest", `${what} is not a 32-byte hex digest`);
  }
  return Buffer.from(value, "hex");
}

export function requireDigest(bytes: Uint8Array, what: string): void {
  if (bytes.length !== DIGEST_SIZE) {
    throw new RangeError(`${what} must be ${DIGEST_SIZE} bytes, got ${bytes.length}`);
  }
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Padded standard base64 (Buffer.from(…, "base64") silently skips anything else). */
export function isBase64(value: unknown): value is string {
  return typeof value === "string" && BASE64.test(value);
}
