// ECDSA signing and verification: over prehashed digests (CCF's Merkle-root signatures, DER) and
// over data (hash then sign, IEEE P1363), with RFC 6979 deterministic nonces so output is reproducible.
import { createHash, createHmac, type KeyObject, verify as nodeVerify } from "node:crypto";
import { type ECDSA, ecdsa } from "@noble/curves/abstract/weierstrass.js";
import { p256, p384 } from "@noble/curves/nist.js";
import type { CHash } from "@noble/curves/utils.js";
import { CryptoError } from "../errors.js";
import { type EcCurve, type EcKeyPair, ecPublicKeyInfo, publicKeyFromPem } from "./keys.js";

export type HashName = "sha256" | "sha384" | "sha512";

const HASH_SIZES: Record<HashName, { outputLen: number; blockLen: number }> = {
  sha256: { outputLen: 32, blockLen: 64 },
  sha384: { outputLen: 48, blockLen: 128 },
  sha512: { outputLen: 64, blockLen: 128 },
};

const POINTS = { secp384r1: p384.Point, secp256r1: p256.Point } as const;

/**
 * noble wants a hash object, but with prehash off it only needs one for RFC 6979's HMAC-DRBG,
 * which we hand it from node:crypto; so the streaming interface is never reached.
 */
function nodeHash(name: HashName): CHash {
  const oneShot = (msg: Uint8Array | string): Uint8Array => createHash(name).update(msg).digest();
  return Object.assign(oneShot, {
    ...HASH_SIZES[name],
    create: (): never => {
      throw new Error("streaming hash not supported: ECDSA here runs with prehash off");
    },
  });
}

const instances = new Map<string, ECDSA>();

/**
 * RFC 6979 runs its HMAC-DRBG with the hash that produced the digest, so the instance is chosen by
 * (curve, hash): P-384 keys signing SHA-256 roots use HMAC-SHA-256, as RFC 6979 A.2.6 does.
 */
function ecdsaFor(curve: EcCurve, hash: HashName): ECDSA {
  const id = `${curve}/${hash}`;
  let instance = instances.get(id);
  if (instance === undefined) {
    instance = ecdsa(POINTS[curve], nodeHash(hash), {
      lowS: false,
      hmac: (key, ...msgs) => {
        const h = createHmac(hash, key);
        for (const m of msgs) h.update(m);
        return h.digest();
      },
    });
    instances.set(id, instance);
  }
  return instance;
}

function hashForDigestLength(length: number): HashName {
  switch (length) {
    case 32:
      return "sha256";
    case 48:
      return "sha384";
    case 64:
      return "sha512";
    default:
      throw new CryptoError("InvalidDigest", `digest of ${length} bytes: expected 32, 48 or 64`);
  }
}

/** DER-encoded ECDSA signature over `digest` as-is (no further hashing), as CCF signs Merkle roots. */
export function signDigest(key: EcKeyPair, digest: Uint8Array): Buffer {
  const sig = ecdsaFor(key.curve, hashForDigestLength(digest.length)).sign(digest, key.scalar, {
    prehash: false,
    lowS: false,
  });
  return Buffer.from(sig.toBytes("der"));
}

function toKeyObject(publicKey: KeyObject | string): KeyObject {
  return typeof publicKey === "string" ? publicKeyFromPem(publicKey) : publicKey;
}

/**
 * Checks a DER ECDSA signature over a prehashed digest. High-S signatures are accepted, since
 * OpenSSL (and so CCF) does not normalise S. False on any malformed key, digest or signature.
 */
export function verifyDigest(
  publicKey: KeyObject | string,
  digest: Uint8Array,
  derSignature: Uint8Array,
): boolean {
  try {
    const { curve, point } = ecPublicKeyInfo(toKeyObject(publicKey));
    return ecdsaFor(curve, hashForDigestLength(digest.length)).verify(derSignature, digest, point, {
      prehash: false,
      lowS: false,
      format: "der",
    });
  } catch {
    return false;
  }
}

/**
 * Ordinary ECDSA (hash `data`, then sign) with an IEEE P1363 (r ‖ s) signature, as COSE wants.
 * Deterministic, unlike node:crypto's sign, so certificates and COSE messages are reproducible.
 */
export function signData(key: EcKeyPair, data: Uint8Array, hash: HashName = "sha384"): Buffer {
  const digest = createHash(hash).update(data).digest();
  const sig = ecdsaFor(key.curve, hash).sign(digest, key.scalar, { prehash: false, lowS: false });
  return Buffer.from(sig.toBytes("compact"));
}

/** Checks an IEEE P1363 signature over `data`; false on any malformed input. */
export function verifyData(
  publicKey: KeyObject | string,
  data: Uint8Array,
  signature: Uint8Array,
  hash: HashName = "sha384",
): boolean {
  try {
    return nodeVerify(
      hash,
      data,
      { key: toKeyObject(publicKey), dsaEncoding: "ieee-p1363" },
      signature,
    );
  } catch {
    return false;
  }
}
