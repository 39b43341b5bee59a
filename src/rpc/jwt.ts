// The `jwt` authentication policy as CCF's JwtAuthnPolicy applies it (jwt_auth.cpp, http_jwt.h):
// a bearer token from the Authorization header, its key looked up by `kid` in
// public:ccf.gov.jwt.public_signing_keys_metadata_v2, then for each key stored under that kid
// (one per issuer) the signature, nbf, exp and the key's issuer constraint. The first key that
// passes gives the caller; otherwise the last reason is the failure message.
//
// Verification is synchronous (node:crypto) because authentication runs inside the request's
// transaction before the handler, and the caller of `authenticate` does not await it; jose's
// verifiers are all asynchronous (WebCrypto), so jose is used here only for base64url.

import { createPublicKey, type KeyObject, verify } from "node:crypto";
import { base64url } from "jose";
import { decodeValue, Tables, type Tx } from "../kv/index.js";

/** One entry of a kid's list in public_signing_keys_metadata_v2 (CCF's OpenIDJWKMetadata). */
export interface JwtKeyMetadata {
  /** SubjectPublicKeyInfo DER. */
  publicKey: Buffer;
  /** The issuer the key was set for (set_jwt_issuer's `issuer`). */
  issuer: string;
  /** The JWK's `issuer` field: the `iss` the token must carry (CCF's validate_issuer). */
  constraint: string | undefined;
}

export type JwtCaller = {
  policy: "jwt";
  jwt: { keyIssuer: string; header: Record<string, unknown>; payload: Record<string, unknown> };
};

export type JwtResult = { ok: true; caller: JwtCaller } | { ok: false; reason: string };

export interface VerifyJwtOptions {
  /** Seconds since the epoch; CCF uses the host's (untrusted) clock. */
  now?: () => number;
}

/** The only algorithms CCF's JwtHeader accepts (http_jwt.h JwtCryptoAlgorithm). */
const ALGORITHMS: ReadonlySet<string> = new Set(["RS256", "ES256"]);

const MICROSOFT_ENTRA_DOMAIN = "login.microsoftonline.com";
const MULTITENANCY_INDICATOR = "{tenantid}";

/** The host part of a URL, "" when it is not one (CCF's parse_url_full gives an empty host). */
export function urlHost(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return "";
  }
}

function urlPath(url: string): string {
  try {
    return new URL(url).pathname;
  } catch {
    return "";
  }
}

/**
 * CCF's validate_issuer: outside Entra the token's `iss` must equal the constraint and carry no
 * `tid`; for login.microsoftonline.com the constraint's `{tenantid}` is replaced by the token's
 * `tid`, `iss` must then equal it, and `tid` must be the first non-empty segment of iss's path.
 */
export function validateIssuer(iss: string, tid: string | undefined, constraint: string): boolean {
  if (urlHost(constraint) !== MICROSOFT_ENTRA_DOMAIN)
    return iss === constraint && tid === undefined;
  let expected = constraint;
  if (tid !== undefined && expected.includes(MULTITENANCY_INDICATOR)) {
    expected = expected.replace(MULTITENANCY_INDICATOR, tid);
  }
  if (iss !== expected) return false;
  const tenant = urlPath(iss)
    .split("/")
    .find((chunk) => chunk !== "");
  return tenant !== undefined && tid !== undefined && tid === tenant;
}

/** Reads a kid's keys; each JSON entry is {public_key: base64 DER, issuer, constraint?}. */
export function readJwtKeys(tx: Tx, kid: string): JwtKeyMetadata[] | undefined {
  const table = Tables.JWT_PUBLIC_SIGNING_KEYS_METADATA;
  const raw = tx.map(table).get(Buffer.from(kid, "utf8"));
  if (raw === undefined) return undefined;
  const value = decodeValue(table, raw);
  if (!Array.isArray(value)) return [];
  return value.flatMap((v: unknown): JwtKeyMetadata[] => {
    if (v === null || typeof v !== "object") return [];
    const m = v as Record<string, unknown>;
    if (typeof m.public_key !== "string" || typeof m.issuer !== "string") return [];
    return [
      {
        publicKey: Buffer.from(m.public_key, "base64"),
        issuer: m.issuer,
        constraint: typeof m.constraint === "string" ? m.constraint : undefined,
      },
    ];
  });
}

// Parsing keys is the costly step of a verification; CCF keeps an LRU of 10 verifiers by DER.
const KEY_CACHE_SIZE = 10;
const keyCache = new Map<string, KeyObject>();

function publicKeyFromDer(der: Buffer): KeyObject | undefined {
  const cacheKey = der.toString("base64");
  let key = keyCache.get(cacheKey);
  if (key !== undefined) {
    keyCache.delete(cacheKey);
    keyCache.set(cacheKey, key);
    return key;
  }
  try {
    key = createPublicKey({ key: der, format: "der", type: "spki" });
  } catch {
    return undefined;
  }
  if (keyCache.size >= KEY_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value as string);
  keyCache.set(cacheKey, key);
  return key;
}

interface ParsedToken {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  alg: string;
  kid: string;
  exp: number;
  iss: string;
  nbf: number | undefined;
  tid: string | undefined;
  signature: Buffer;
  signedContent: Buffer;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** CCF reads exp and nbf as size_t: a non-negative integer. */
function isSize(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0;
}

const B64URL = /^[A-Za-z0-9_-]*$/;

function decodePart(part: string): Buffer | undefined {
  if (!B64URL.test(part)) return undefined;
  try {
    return Buffer.from(base64url.decode(part));
  } catch {
    return undefined;
  }
}

type Parsed = { ok: true; token: ParsedToken } | { ok: false; reason: string };

/** CCF's JwtVerifier::extract_token, with its messages. */
function extractToken(headers: Record<string, string>): Parsed {
  const auth = headers.authorization;
  if (auth === undefined) return { ok: false, reason: "Missing authorization header" };
  const space = auth.indexOf(" ");
  if (space === -1) return { ok: false, reason: "Authorization header only contains one field" };
  if (auth.slice(0, space) !== "Bearer") {
    return { ok: false, reason: "Authorization header does not have Bearer scheme" };
  }
  const token = auth.slice(space + 1);
  const parts = token.split(".");
  if (parts.length !== 3) {
    return { ok: false, reason: "Malformed JWT: must contain exactly 3 parts" };
  }
  const [h64, p64, s64] = parts as [string, string, string];
  const headerRaw = decodePart(h64);
  const payloadRaw = decodePart(p64);
  const signature = decodePart(s64);
  // CCF's base64url decoder throws out of the policy here (a 500); a 401 is the useful answer.
  if (headerRaw === undefined || payloadRaw === undefined || signature === undefined) {
    return { ok: false, reason: "Malformed JWT: a part is not valid base64url" };
  }
  let header: unknown;
  let payload: unknown;
  try {
    header = JSON.parse(headerRaw.toString("utf8"));
    payload = JSON.parse(payloadRaw.toString("utf8"));
  } catch (e) {
    return {
      ok: false,
      reason: `JWT header or payload is not valid JSON: ${(e as Error).message}`,
    };
  }
  if (!isObject(header) || !isObject(payload)) {
    return { ok: false, reason: "JWT header or payload is not an object" };
  }
  const headerError =
    header.alg === undefined
      ? "Missing required field 'alg'"
      : typeof header.alg !== "string" || !ALGORITHMS.has(header.alg)
        ? `alg: value ${JSON.stringify(header.alg)} is not one of RS256, ES256`
        : header.kid === undefined
          ? "Missing required field 'kid'"
          : typeof header.kid !== "string"
            ? "kid: expected a string"
            : undefined;
  if (headerError !== undefined) {
    return { ok: false, reason: `JWT header does not follow schema: ${headerError}` };
  }
  const payloadError =
    payload.exp === undefined
      ? "Missing required field 'exp'"
      : !isSize(payload.exp)
        ? "exp: expected a non-negative integer"
        : payload.iss === undefined
          ? "Missing required field 'iss'"
          : typeof payload.iss !== "string"
            ? "iss: expected a string"
            : payload.nbf !== undefined && !isSize(payload.nbf)
              ? "nbf: expected a non-negative integer"
              : payload.tid !== undefined && typeof payload.tid !== "string"
                ? "tid: expected a string"
                : undefined;
  if (payloadError !== undefined) {
    return { ok: false, reason: `JWT payload is missing required field: ${payloadError}` };
  }
  return {
    ok: true,
    token: {
      header,
      payload,
      alg: header.alg as string,
      kid: header.kid as string,
      exp: payload.exp as number,
      iss: payload.iss as string,
      nbf: payload.nbf as number | undefined,
      tid: payload.tid as string | undefined,
      signature,
      signedContent: Buffer.from(`${h64}.${p64}`, "ascii"),
    },
  };
}

function signatureVerifies(token: ParsedToken, key: KeyObject): boolean {
  try {
    if (token.alg === "ES256") {
      if (key.asymmetricKeyType !== "ec") return false;
      return verify(
        "sha256",
        token.signedContent,
        { key, dsaEncoding: "ieee-p1363" },
        token.signature,
      );
    }
    if (key.asymmetricKeyType !== "rsa") return false;
    return verify("sha256", token.signedContent, key, token.signature);
  } catch {
    return false;
  }
}

/**
 * Authenticates the request's bearer token against the keys in `tx`. Failure reasons are CCF's
 * (e.g. "JWT signing key not found for kid k", "Signature verification failed", "Current time
 * T is after token's Expiration Time (exp) claim E").
 */
export function verifyJwtBearer(
  headers: Record<string, string>,
  tx: Tx,
  opts: VerifyJwtOptions = {},
): JwtResult {
  const parsed = extractToken(headers);
  if (!parsed.ok) return parsed;
  const token = parsed.token;
  const keys = readJwtKeys(tx, token.kid);
  if (keys === undefined || keys.length === 0) {
    return { ok: false, reason: `JWT signing key not found for kid ${token.kid}` };
  }
  const now = Math.floor(opts.now?.() ?? Date.now() / 1000);
  let reason = "Invalid JWT token";
  for (const metadata of keys) {
    const key = publicKeyFromDer(metadata.publicKey);
    if (key === undefined || !signatureVerifies(token, key)) {
      reason = "Signature verification failed";
      continue;
    }
    if (token.nbf !== undefined && now < token.nbf) {
      reason = `Current time ${now} is before token's Not Before (nbf) claim ${token.nbf}`;
    } else if (now > token.exp) {
      reason = `Current time ${now} is after token's Expiration Time (exp) claim ${token.exp}`;
    } else if (
      metadata.constraint !== undefined &&
      !validateIssuer(token.iss, token.tid, metadata.constraint)
    ) {
      reason = `Kid ${token.kid} failed issuer constraint validation ${metadata.constraint}`;
    } else {
      return {
        ok: true,
        caller: {
          policy: "jwt",
          jwt: { keyIssuer: metadata.issuer, header: token.header, payload: token.payload },
        },
      };
    }
  }
  return { ok: false, reason };
}
