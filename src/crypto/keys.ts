// EC key pairs for node, service and member identities (P-384 by default, as CCF), and public key loading.
import { createPrivateKey, createPublicKey, type KeyObject, X509Certificate } from "node:crypto";
import { getMinHashLength, mapHashToField } from "@noble/curves/abstract/modular.js";
import { p256, p384 } from "@noble/curves/nist.js";
import { CryptoError } from "../errors.js";
import { type Rng, systemRng } from "./rng.js";

export type EcCurve = "secp384r1" | "secp256r1";

const NOBLE = { secp384r1: p384, secp256r1: p256 } as const;
const JWK_CURVE: Record<EcCurve, string> = { secp384r1: "P-384", secp256r1: "P-256" };
const CURVE_FROM_JWK: Record<string, EcCurve> = { "P-384": "secp384r1", "P-256": "secp256r1" };

/** Size in bytes of a scalar or coordinate on `curve`. */
export function curveByteLength(curve: EcCurve): number {
  return curve === "secp384r1" ? 48 : 32;
}

function leftPad(b: Uint8Array, size: number): Uint8Array {
  if (b.length === size) return b;
  if (b.length > size)
    throw new CryptoError("InvalidKey", "EC key component longer than the curve");
  const out = new Uint8Array(size);
  out.set(b, size - b.length);
  return out;
}

export class EcKeyPair {
  readonly curve: EcCurve;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The private scalar, big-endian, padded to the curve size. */
  readonly scalar: Uint8Array;
  /** The public key as an uncompressed SEC1 point (04 ‖ x ‖ y). */
  readonly publicPoint: Uint8Array;
  #privateKeyPem?: string;
  #publicKeyPem?: string;
  #publicKeyDer?: Buffer;

  private constructor(curve: EcCurve, scalar: Uint8Array) {
    const size = curveByteLength(curve);
    if (scalar.length !== size || !NOBLE[curve].utils.isValidSecretKey(scalar)) {
      throw new CryptoError("InvalidKey", `not a valid ${curve} private scalar`);
    }
    this.curve = curve;
    this.scalar = Uint8Array.from(scalar);
    this.publicPoint = NOBLE[curve].getPublicKey(this.scalar, false);
    const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64url");
    const jwk = {
      kty: "EC",
      crv: JWK_CURVE[curve],
      d: b64(this.scalar),
      x: b64(this.publicPoint.subarray(1, 1 + size)),
      y: b64(this.publicPoint.subarray(1 + size)),
    };
    this.privateKey = createPrivateKey({ key: jwk, format: "jwk" });
    this.publicKey = createPublicKey(this.privateKey);
  }

  /**
   * A fresh key whose scalar is derived from rng bytes (reduced mod n without bias, as noble's
   * randomSecretKey does), so a seeded rng gives the same key on every run.
   */
  static generate(curve: EcCurve = "secp384r1", rng: Rng = systemRng): EcKeyPair {
    const order = NOBLE[curve].Point.Fn.ORDER;
    const seed = rng.bytes(getMinHashLength(order));
    return new EcKeyPair(curve, mapHashToField(seed, order));
  }

  static fromScalar(curve: EcCurve, scalar: Uint8Array): EcKeyPair {
    return new EcKeyPair(curve, scalar);
  }

  /**
   * Loads a PKCS#8 or SEC1 ("EC PRIVATE KEY") PEM; a leading "EC PARAMETERS" block, as CCF's
   * keygenerator writes, is skipped by OpenSSL's PEM reader.
   */
  static fromPem(privateKeyPem: string): EcKeyPair {
    let key: KeyObject;
    try {
      key = createPrivateKey(privateKeyPem);
    } catch (e) {
      throw new CryptoError("InvalidKey", "cannot parse EC private key PEM", { cause: e });
    }
    if (key.asymmetricKeyType !== "ec") {
      throw new CryptoError("UnsupportedKey", `expected an EC key, got ${key.asymmetricKeyType}`);
    }
    const jwk = key.export({ format: "jwk" });
    const curve = jwk.crv === undefined ? undefined : CURVE_FROM_JWK[jwk.crv];
    if (curve === undefined || jwk.d === undefined) {
      throw new CryptoError("UnsupportedKey", `unsupported EC curve ${jwk.crv}`);
    }
    return new EcKeyPair(curve, leftPad(Buffer.from(jwk.d, "base64url"), curveByteLength(curve)));
  }

  /** PKCS#8 PEM. */
  get privateKeyPem(): string {
    this.#privateKeyPem ??= this.privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    return this.#privateKeyPem;
  }

  /** SubjectPublicKeyInfo PEM. */
  get publicKeyPem(): string {
    this.#publicKeyPem ??= this.publicKey.export({ type: "spki", format: "pem" }) as string;
    return this.#publicKeyPem;
  }

  /** SubjectPublicKeyInfo DER: what CCF hashes for a node id. */
  get publicKeyDer(): Buffer {
    this.#publicKeyDer ??= this.publicKey.export({ type: "spki", format: "der" });
    return this.#publicKeyDer;
  }
}

/** The public key of an SPKI PEM, or of the certificate in a certificate PEM. */
export function publicKeyFromPem(pemOrCert: string): KeyObject {
  try {
    if (pemOrCert.includes("-----BEGIN CERTIFICATE-----")) {
      return new X509Certificate(pemOrCert).publicKey;
    }
    return createPublicKey(pemOrCert);
  } catch (e) {
    throw new CryptoError("InvalidKey", "cannot parse public key or certificate PEM", { cause: e });
  }
}

export interface EcPublicKeyInfo {
  curve: EcCurve;
  /** Uncompressed SEC1 point. */
  point: Uint8Array;
}

// Verifiers see the same few KeyObjects (service and node identities) over and over.
const ecInfoCache = new WeakMap<KeyObject, EcPublicKeyInfo>();

/** Curve and raw point of an EC public (or private) key; CryptoError for other key types. */
export function ecPublicKeyInfo(key: KeyObject): EcPublicKeyInfo {
  const cached = ecInfoCache.get(key);
  if (cached !== undefined) return cached;
  if (key.asymmetricKeyType !== "ec") {
    throw new CryptoError("UnsupportedKey", `expected an EC key, got ${key.asymmetricKeyType}`);
  }
  const jwk = key.export({ format: "jwk" });
  const curve = jwk.crv === undefined ? undefined : CURVE_FROM_JWK[jwk.crv];
  if (curve === undefined || jwk.x === undefined || jwk.y === undefined) {
    throw new CryptoError("UnsupportedKey", `unsupported EC curve ${jwk.crv}`);
  }
  const size = curveByteLength(curve);
  const point = new Uint8Array(1 + 2 * size);
  point[0] = 0x04;
  point.set(leftPad(Buffer.from(jwk.x, "base64url"), size), 1);
  point.set(leftPad(Buffer.from(jwk.y, "base64url"), size), 1 + size);
  const info = { curve, point };
  ecInfoCache.set(key, info);
  return info;
}
