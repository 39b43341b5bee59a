// CCF's recovery secret sharing (src/crypto/sharing.cpp in CCF 6): ten independent Shamir sharings
// over the integers mod 2^31 - 1, the wrapping key derived from the combined secret, and the
// tag ‖ IV ‖ ciphertext AES-GCM layout (CCF's GcmCipher) that recovery material is stored in.

import { hkdfSync } from "node:crypto";
import { CryptoError } from "../errors.js";
import { aesGcmDecrypt, aesGcmEncrypt } from "./aes-gcm.js";
import type { Rng } from "./rng.js";

export const SHARE_LENGTH = 44;
export const SHARE_LIMBS = 10;
export const SHARE_PRIME = 2147483647;

/** x = 0 holds the secret itself (a "full" share); partial shares have x = 1..n. */
export interface Share {
  x: number;
  /** SHARE_LIMBS values, one per sharing. */
  y: number[];
}

const P = BigInt(SHARE_PRIME);
const GCM_TAG = 16;
const GCM_IV = 12;
const WRAPPING_KEY_LENGTH = 32;

/** A coefficient uniform in [0, p-1]: a random u64 masked to 31 bits, redrawn while it equals p. */
function sampleCoefficient(rng: Rng): number {
  for (;;) {
    const v = Buffer.from(rng.bytes(8)).readUInt32LE(0) & SHARE_PRIME;
    if (v !== SHARE_PRIME) return v;
  }
}

/**
 * Draws a fresh secret and n shares of it, any t of which recover it. For each limb, t
 * coefficients are drawn (the first is the secret's limb) and share x gets Σ a_k·x^k mod p.
 */
export function sampleShares(rng: Rng, n: number, t: number): { secret: Share; shares: Share[] } {
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new CryptoError("InvalidShareCount", `cannot make ${n} shares: at least 1 is needed`);
  }
  if (!Number.isSafeInteger(t) || t < 1 || t > n) {
    throw new CryptoError("InvalidThreshold", `threshold ${t} must be between 1 and ${n}`);
  }
  if (n >= SHARE_PRIME) {
    throw new CryptoError("InvalidShareCount", `cannot make ${n} shares: x must stay below p`);
  }
  const secret: Share = { x: 0, y: [] };
  const shares: Share[] = Array.from({ length: n }, (_, i) => ({ x: i + 1, y: [] }));
  for (let limb = 0; limb < SHARE_LIMBS; limb++) {
    const poly: bigint[] = [];
    for (let d = 0; d < t; d++) poly.push(BigInt(sampleCoefficient(rng)));
    secret.y.push(Number(poly[0]));
    for (const share of shares) {
      const x = BigInt(share.x);
      let y = poly[0];
      let power = 1n;
      for (let d = 1; d < t; d++) {
        power = (power * x) % P;
        y = (y + poly[d] * power) % P;
      }
      share.y.push(Number(y));
    }
  }
  return { secret, shares };
}

/** x then y[0..9], each a u32 little-endian: 44 bytes, no prefix. */
export function serialiseShare(s: Share): Buffer {
  if (s.y.length !== SHARE_LIMBS) {
    throw new CryptoError("InvalidShare", `a share has ${SHARE_LIMBS} limbs, got ${s.y.length}`);
  }
  for (const v of [s.x, ...s.y]) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw new CryptoError("InvalidShare", `share values are u32, got ${v}`);
    }
  }
  const out = Buffer.alloc(SHARE_LENGTH);
  out.writeUInt32LE(s.x, 0);
  s.y.forEach((v, i) => out.writeUInt32LE(v, 4 + 4 * i));
  return out;
}

export function parseShare(bytes: Uint8Array): Share {
  if (bytes.length !== SHARE_LENGTH) {
    throw new CryptoError(
      "InvalidShare",
      `a recovery share is ${SHARE_LENGTH} bytes, got ${bytes.length}`,
    );
  }
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const y: number[] = [];
  for (let i = 0; i < SHARE_LIMBS; i++) y.push(buf.readUInt32LE(4 + 4 * i));
  return { x: buf.readUInt32LE(0), y };
}

function modPow(base: bigint, exponent: bigint): bigint {
  let result = 1n;
  let b = base % P;
  let e = exponent;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % P;
    b = (b * b) % P;
    e >>= 1n;
  }
  return result;
}

/**
 * Lagrange interpolation at 0 over the first `threshold` shares, in the order given (the rest are
 * ignored, as in CCF). Inputs are reduced mod p, not range-checked; nothing is authenticated, so
 * wrong shares give a wrong secret that only shows when it fails to unwrap something.
 */
export function combineShares(shares: Share[], threshold: number): Share {
  if (!Number.isSafeInteger(threshold) || threshold < 1) {
    throw new CryptoError("InvalidThreshold", `threshold ${threshold} must be at least 1`);
  }
  if (shares.length < threshold) {
    throw new CryptoError(
      "InsufficientShares",
      `insufficient input shares: ${shares.length} given, threshold is ${threshold}`,
    );
  }
  const used = shares.slice(0, threshold);
  for (const s of used) {
    if (s.y.length !== SHARE_LIMBS) {
      throw new CryptoError("InvalidShare", `a share has ${SHARE_LIMBS} limbs, got ${s.y.length}`);
    }
  }
  const xs = used.map((s) => BigInt(s.x) % P);
  const weights = xs.map((xi, i) => {
    let numerator = 1n;
    let denominator = 1n;
    xs.forEach((xj, j) => {
      if (j === i) return;
      numerator = (numerator * xj) % P;
      denominator = (denominator * ((xj - xi + P) % P)) % P;
    });
    if (denominator === 0n) throw new CryptoError("DuplicateShare", "duplicate input share");
    return (numerator * modPow(denominator, P - 2n)) % P;
  });
  const y: number[] = [];
  for (let limb = 0; limb < SHARE_LIMBS; limb++) {
    let sum = 0n;
    used.forEach((s, i) => {
      sum = (sum + weights[i] * (BigInt(s.y[limb]) % P)) % P;
    });
    y.push(Number(sum));
  }
  return { x: 0, y };
}

/**
 * The AES-256 key that wraps the latest ledger secret: HKDF-SHA256 with the 40 serialised y bytes
 * as both IKM and info and an empty salt (CCF declares a label but never passes it).
 */
export function wrappingKey(secret: Share): Buffer {
  if (secret.x !== 0) {
    throw new CryptoError(
      "InvalidShare",
      `only the full secret (x = 0) derives a wrapping key, got x = ${secret.x}`,
    );
  }
  const y = serialiseShare(secret).subarray(4);
  return Buffer.from(hkdfSync("sha256", y, Buffer.alloc(0), y, WRAPPING_KEY_LENGTH));
}

/** AES-256-GCM with no AAD, laid out as CCF's GcmCipher: tag (16) ‖ IV (12) ‖ ciphertext. */
export function sealGcmCipher(key: Uint8Array, plaintext: Uint8Array, iv: Uint8Array): Buffer {
  const { ciphertext, tag } = aesGcmEncrypt(key, iv, plaintext);
  return Buffer.concat([tag, iv, ciphertext]);
}

/** Throws CryptoError("DecryptionFailed") on a wrong key or altered bytes. */
export function openGcmCipher(key: Uint8Array, data: Uint8Array): Buffer {
  if (data.length < GCM_TAG + GCM_IV) {
    throw new CryptoError(
      "DecryptionFailed",
      `a GcmCipher is at least ${GCM_TAG + GCM_IV} bytes, got ${data.length}`,
    );
  }
  const tag = data.subarray(0, GCM_TAG);
  const iv = data.subarray(GCM_TAG, GCM_TAG + GCM_IV);
  return aesGcmDecrypt(key, iv, data.subarray(GCM_TAG + GCM_IV), tag);
}
