// COSE_Sign1 (RFC 9052) signing, decoding and verification, and the COSE-safe CBOR codec it is built on.
import type { KeyObject } from "node:crypto";
import { Encoder, type Options, Tag } from "cbor-x";
import { CryptoError, FormatError } from "../errors.js";
import { type HashName, signData, verifyData } from "./ecdsa.js";
import type { EcKeyPair } from "./keys.js";

export type CoseHeaders = Map<number | string, unknown>;

export interface CoseSign1 {
  /** The protected header bucket exactly as received: signatures cover these bytes. */
  protectedBytes: Buffer;
  protectedHeaders: CoseHeaders;
  unprotectedHeaders: CoseHeaders;
  /** null when the payload is detached. */
  payload: Buffer | null;
  /** IEEE P1363 (r ‖ s). */
  signature: Buffer;
}

/** COSE header labels used here (RFC 9052 section 3.1). */
export const COSE_HEADER = { alg: 1, kid: 4 } as const;
export const COSE_ALG = { ES256: -7, ES384: -35, ES512: -36 } as const;
const COSE_SIGN1_TAG = 18;

const ALG_HASH = new Map<unknown, HashName>([
  [COSE_ALG.ES256, "sha256"],
  [COSE_ALG.ES384, "sha384"],
  [COSE_ALG.ES512, "sha512"],
]);

// cbor-x's defaults tag byte strings (64) and Maps (259) and turn integer map keys into strings,
// none of which COSE tolerates; records are a cbor-x extension; variable map sizes give the
// shortest (canonical) map header for plain objects.
// (useTag259ForMaps is a real cbor-x option missing from its typings.)
const options: Options & { useTag259ForMaps: boolean } = {
  tagUint8Array: false,
  useTag259ForMaps: false,
  mapsAsObjects: false,
  useRecords: false,
  variableMapSize: true,
};
const cbor = new Encoder(options);

/**
 * CBOR encoding with Maps as CBOR maps (integer keys kept) and byte strings untagged. Integers
 * beyond 32 bits must be given as bigint: cbor-x writes large JS numbers as floats.
 */
export function cborEncode(value: unknown): Buffer {
  return cbor.encode(value);
}

/** Decodes one CBOR item (maps as Maps, 64-bit integers as bigint); FormatError if malformed. */
export function cborDecode(bytes: Uint8Array): unknown {
  try {
    return cbor.decode(bytes) as unknown;
  } catch (e) {
    throw new FormatError("InvalidCbor", `malformed CBOR: ${(e as Error).message}`, { cause: e });
  }
}

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function coseError(message: string, cause?: unknown): FormatError {
  return new FormatError("InvalidCoseSign1", `invalid COSE_Sign1: ${message}`, { cause });
}

function checkHeaders(value: unknown, bucket: string): CoseHeaders {
  if (!(value instanceof Map)) throw coseError(`${bucket} headers are not a map`);
  for (const label of value.keys()) {
    if (!(typeof label === "string" || (typeof label === "number" && Number.isInteger(label)))) {
      throw coseError(`${bucket} header label ${String(label)} is neither an integer nor a string`);
    }
  }
  return value as CoseHeaders;
}

function sigStructure(protectedBytes: Uint8Array, payload: Uint8Array): Buffer {
  return cborEncode(["Signature1", protectedBytes, new Uint8Array(0), payload]);
}

function algForCurve(key: EcKeyPair): number {
  return key.curve === "secp384r1" ? COSE_ALG.ES384 : COSE_ALG.ES256;
}

/**
 * Signs a tagged COSE_Sign1. `alg` is added (first) to the protected headers if absent, chosen
 * from the key's curve. The signature is deterministic, so equal inputs give equal bytes.
 */
export function coseSign1Sign(opts: {
  key: EcKeyPair;
  protectedHeaders: CoseHeaders;
  unprotectedHeaders?: CoseHeaders;
  payload: Uint8Array;
  detached?: boolean;
}): Buffer {
  const headers: CoseHeaders = opts.protectedHeaders.has(COSE_HEADER.alg)
    ? opts.protectedHeaders
    : new Map([[COSE_HEADER.alg, algForCurve(opts.key)], ...opts.protectedHeaders]);
  const alg = headers.get(COSE_HEADER.alg);
  const hash = ALG_HASH.get(alg);
  if (hash === undefined) {
    throw new CryptoError("UnsupportedAlgorithm", `unsupported COSE alg ${String(alg)}`);
  }
  if (alg !== algForCurve(opts.key)) {
    throw new CryptoError(
      "KeyMismatch",
      `COSE alg ${String(alg)} does not match a ${opts.key.curve} key`,
    );
  }
  const protectedBytes = cborEncode(headers);
  const signature = signData(opts.key, sigStructure(protectedBytes, opts.payload), hash);
  const message = [
    protectedBytes,
    opts.unprotectedHeaders ?? new Map(),
    opts.detached === true ? null : opts.payload,
    signature,
  ];
  return cborEncode(new Tag(message, COSE_SIGN1_TAG));
}

/** Decodes a COSE_Sign1, tagged or not. Throws FormatError, naming the problem, on anything else. */
export function coseSign1Decode(bytes: Uint8Array): CoseSign1 {
  let item: unknown;
  try {
    item = cbor.decode(bytes);
  } catch (e) {
    throw coseError(`not CBOR (${(e as Error).message})`, e);
  }
  if (item instanceof Tag) {
    if (item.tag !== COSE_SIGN1_TAG) throw coseError(`unexpected tag ${item.tag}`);
    item = item.value;
  }
  if (!Array.isArray(item) || item.length !== 4) throw coseError("not an array of 4 items");
  const [protectedBytes, unprotected, payload, signature] = item as unknown[];
  if (!(protectedBytes instanceof Uint8Array))
    throw coseError("protected headers are not a byte string");
  let protectedHeaders: CoseHeaders;
  if (protectedBytes.length === 0) {
    protectedHeaders = new Map();
  } else {
    let decoded: unknown;
    try {
      decoded = cbor.decode(protectedBytes);
    } catch (e) {
      throw coseError(`protected headers are not CBOR (${(e as Error).message})`, e);
    }
    protectedHeaders = checkHeaders(decoded, "protected");
  }
  if (!(payload === null || payload instanceof Uint8Array)) {
    throw coseError("payload is neither a byte string nor nil");
  }
  if (!(signature instanceof Uint8Array)) throw coseError("signature is not a byte string");
  return {
    protectedBytes: asBuffer(protectedBytes),
    protectedHeaders,
    unprotectedHeaders: checkHeaders(unprotected, "unprotected"),
    payload: payload === null ? null : asBuffer(payload),
    signature: asBuffer(signature),
  };
}

/**
 * Verifies a COSE_Sign1 (bytes or decoded) under `publicKey` (KeyObject, PEM key or certificate),
 * with the algorithm named in its protected headers (ES256, ES384 or ES512). A detached payload
 * is passed separately. False for anything that does not verify, malformed input included.
 */
export function coseSign1Verify(
  msg: Uint8Array | CoseSign1,
  publicKey: KeyObject | string,
  detachedPayload?: Uint8Array,
): boolean {
  let decoded: CoseSign1;
  try {
    decoded = msg instanceof Uint8Array ? coseSign1Decode(msg) : msg;
  } catch {
    return false;
  }
  const hash = ALG_HASH.get(decoded.protectedHeaders.get(COSE_HEADER.alg));
  if (hash === undefined) return false;
  let payload: Uint8Array;
  if (decoded.payload === null) {
    if (detachedPayload === undefined) return false;
    payload = detachedPayload;
  } else {
    if (detachedPayload !== undefined && !decoded.payload.equals(detachedPayload)) return false;
    payload = decoded.payload;
  }
  return verifyData(
    publicKey,
    sigStructure(decoded.protectedBytes, payload),
    decoded.signature,
    hash,
  );
}
