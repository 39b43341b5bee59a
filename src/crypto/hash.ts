// Hashes, HMAC and hex encoding: the digests CCF uses for ids, Merkle leaves and signatures.
import { createHash, createHmac, hash } from "node:crypto";
import { FormatError } from "../errors.js";

function digest(algorithm: string, parts: Uint8Array[]): Buffer {
  const h = createHash(algorithm);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Below this size, joining the parts and hashing once beats a streaming hash object. */
const ONE_SHOT_MAX = 4096;

/**
 * SHA-256 of the concatenation of `parts`. Short inputs go through node's one-shot `hash()`, which
 * costs about half of a createHash/update/digest round trip: this is on the write path several
 * times per transaction.
 */
export function sha256(...parts: Uint8Array[]): Buffer {
  if (parts.length === 1) return hash("sha256", parts[0], "buffer");
  let total = 0;
  for (const p of parts) total += p.length;
  if (total > ONE_SHOT_MAX) return digest("sha256", parts);
  return hash("sha256", Buffer.concat(parts, total), "buffer");
}

/** SHA-384 of the concatenation of `parts`. */
export function sha384(...parts: Uint8Array[]): Buffer {
  return digest("sha384", parts);
}

export function hmacSha256(key: Uint8Array, data: Uint8Array): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

const HEX = /^[0-9a-fA-F]*$/;

/** Strict hex decoding: Buffer.from(s, "hex") silently stops at the first bad character. */
export function fromHex(s: string): Buffer {
  if (s.length % 2 !== 0) {
    throw new FormatError("InvalidHex", `hex string has odd length ${s.length}`);
  }
  if (!HEX.test(s)) {
    throw new FormatError("InvalidHex", "hex string contains a non-hex character");
  }
  return Buffer.from(s, "hex");
}
