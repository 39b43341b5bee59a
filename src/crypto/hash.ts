// Hashes, HMAC and hex encoding: the digests CCF uses for ids, Merkle leaves and signatures.
import { createHash, createHmac } from "node:crypto";
import { FormatError } from "../errors.js";

function digest(algorithm: string, parts: Uint8Array[]): Buffer {
  const h = createHash(algorithm);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** SHA-256 of the concatenation of `parts` (without building the concatenation). */
export function sha256(...parts: Uint8Array[]): Buffer {
  return digest("sha256", parts);
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
