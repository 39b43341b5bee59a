// CCF's JWT signing-key effects on the governance tables (set_jwt_public_signing_keys and
// remove_jwt_public_signing_keys in CCF's node/gov code, reached from the constitution through
// ccf.setJwtPublicSigningKeys / ccf.removeJwtPublicSigningKeys and from the node's key refresh).
//
// Tables (keys are raw UTF-8 strings, values JSON as CCF's C++ side writes them):
// - public:ccf.gov.jwt.issuers: issuer -> {auto_refresh?, ca_cert_bundle_name?}
// - public:ccf.gov.jwt.public_signing_keys_metadata_v2: kid -> [{public_key, issuer, constraint?}]
//   with public_key the SubjectPublicKeyInfo DER in standard base64 (CCF's JSON for bytes);
//   a kid may hold one entry per issuer.
// - public:ccf.gov.tls.ca_cert_bundles: name -> PEM bundle (a JSON string).

import { createPublicKey, X509Certificate } from "node:crypto";
import { decodeValue, encodeValue, Tables, type Tx } from "../kv/index.js";
import { urlHost } from "../rpc/jwt.js";

/** CCF's JwtIssuerMetadata. */
export interface JwtIssuerMetadata {
  auto_refresh?: boolean;
  ca_cert_bundle_name?: string;
}

/** CCF's JsonWebKeyData: kty required, everything else optional. */
export interface JsonWebKeyData {
  kty: "EC" | "RSA" | "OKP";
  kid?: string;
  x5c?: string[];
  n?: string;
  e?: string;
  crv?: string;
  x?: string;
  y?: string;
  /** An issuer constraint: the `iss` tokens signed by this key must carry. */
  issuer?: string;
}

export interface JsonWebKeySet {
  keys: JsonWebKeyData[];
}

/** One entry of a kid's list, as stored. */
export interface StoredJwtKey {
  public_key: string;
  issuer: string;
  constraint?: string;
}

/**
 * Why a key set was not applied. `parse` errors are what CCF's JSON layer refuses (the JS
 * effect throws "Error setting JWT public signing keys: <message>"); `rejected` is
 * set_jwt_public_signing_keys returning false (the JS effect throws
 * "set_jwt_public_signing_keys() failed" and CCF only logs the reason).
 */
export class JwtKeysError extends Error {
  constructor(
    readonly kind: "parse" | "rejected",
    message: string,
  ) {
    super(message);
    this.name = "JwtKeysError";
  }

  /** The message of the InternalError CCF's ccf.setJwtPublicSigningKeys throws into JS. */
  get jsMessage(): string {
    return this.kind === "parse"
      ? `Error setting JWT public signing keys: ${this.message}`
      : "set_jwt_public_signing_keys() failed";
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function parseError(message: string): JwtKeysError {
  return new JwtKeysError("parse", message);
}

/** Checks a JSON value as CCF's JwtIssuerMetadata (unknown fields are ignored, as in CCF). */
export function parseJwtIssuerMetadata(value: unknown): JwtIssuerMetadata {
  if (!isObject(value)) throw parseError("issuer metadata is not an object");
  const out: JwtIssuerMetadata = {};
  const { auto_refresh, ca_cert_bundle_name } = value;
  if (auto_refresh !== undefined && auto_refresh !== null) {
    if (typeof auto_refresh !== "boolean") throw parseError("auto_refresh: expected a boolean");
    out.auto_refresh = auto_refresh;
  }
  if (ca_cert_bundle_name !== undefined && ca_cert_bundle_name !== null) {
    if (typeof ca_cert_bundle_name !== "string") {
      throw parseError("ca_cert_bundle_name: expected a string");
    }
    out.ca_cert_bundle_name = ca_cert_bundle_name;
  }
  return out;
}

const KTYS: ReadonlySet<string> = new Set(["EC", "RSA", "OKP"]);
const STRING_FIELDS = ["kid", "n", "e", "crv", "x", "y", "issuer"] as const;

/** Checks a JSON value as CCF's JsonWebKeySet (`keys` required, each key's `kty` required). */
export function parseJsonWebKeySet(value: unknown): JsonWebKeySet {
  if (!isObject(value)) throw parseError("JWKS is not an object");
  if (!Array.isArray(value.keys)) throw parseError("Missing required field 'keys'");
  const keys = value.keys.map((k: unknown, i: number): JsonWebKeyData => {
    if (!isObject(k)) throw parseError(`keys[${i}]: expected an object`);
    if (k.kty === undefined) throw parseError(`keys[${i}]: Missing required field 'kty'`);
    if (typeof k.kty !== "string" || !KTYS.has(k.kty)) {
      throw parseError(`keys[${i}].kty: value ${JSON.stringify(k.kty)} is not one of EC, RSA, OKP`);
    }
    const jwk: JsonWebKeyData = { kty: k.kty as JsonWebKeyData["kty"] };
    for (const field of STRING_FIELDS) {
      const v = k[field];
      if (v === undefined || v === null) continue;
      if (typeof v !== "string") throw parseError(`keys[${i}].${field}: expected a string`);
      jwk[field] = v;
    }
    if (k.x5c !== undefined && k.x5c !== null) {
      if (!Array.isArray(k.x5c) || !k.x5c.every((c) => typeof c === "string")) {
        throw parseError(`keys[${i}].x5c: expected an array of strings`);
      }
      jwk.x5c = k.x5c;
    }
    return jwk;
  });
  return { keys };
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function spkiDer(jwk: Record<string, string>): Buffer {
  return createPublicKey({ key: jwk, format: "jwk" }).export({ type: "spki", format: "der" });
}

/** CCF's try_parse_jwk: RSA n/e first, then EC crv/x/y, then the first x5c certificate. */
function publicKeyOf(jwk: JsonWebKeyData, kid: string): Buffer {
  if (jwk.n !== undefined && jwk.n !== "" && jwk.e !== undefined && jwk.e !== "") {
    try {
      return spkiDer({ kty: "RSA", n: jwk.n, e: jwk.e });
    } catch (e) {
      throw new JwtKeysError(
        "rejected",
        `Failed to construct RSA public key: ${(e as Error).message}`,
      );
    }
  }
  if (jwk.x !== undefined && jwk.x !== "" && jwk.y !== undefined && jwk.y !== "" && jwk.crv) {
    try {
      return spkiDer({ kty: "EC", crv: jwk.crv, x: jwk.x, y: jwk.y });
    } catch (e) {
      throw new JwtKeysError(
        "rejected",
        `Failed to construct EC public key: ${(e as Error).message}`,
      );
    }
  }
  const first = jwk.x5c?.[0];
  if (first !== undefined) {
    if (!BASE64.test(first)) {
      throw new JwtKeysError(
        "rejected",
        `Could not parse x5c of key id ${kid}: invalid base64 string`,
      );
    }
    try {
      const cert = new X509Certificate(Buffer.from(first, "base64"));
      return cert.publicKey.export({ type: "spki", format: "der" });
    } catch (e) {
      throw new JwtKeysError(
        "rejected",
        `JWKS kid ${kid} has an invalid X.509 certificate: ${(e as Error).message}`,
      );
    }
  }
  throw new JwtKeysError("rejected", `JWKS kid ${kid} has neither RSA/EC public key or x5c`);
}

/**
 * CCF's check_issuer_constraint: a key's constraint must name the issuer's host or a parent
 * domain of it (limited.facebook.com may carry keys constrained to facebook.com), so that one
 * issuer cannot publish keys that validate another's tokens.
 */
export function checkIssuerConstraint(issuer: string, constraint: string): boolean {
  const issuerDomain = urlHost(issuer);
  const constraintDomain = urlHost(constraint);
  if (constraintDomain === "") return false;
  return issuerDomain === constraintDomain || issuerDomain.endsWith(`.${constraintDomain}`);
}

function readKids(tx: Tx): Array<[string, StoredJwtKey[]]> {
  const table = Tables.JWT_PUBLIC_SIGNING_KEYS_METADATA;
  const out: Array<[string, StoredJwtKey[]]> = [];
  tx.map(table).forEach((value, key) => {
    const list = decodeValue(table, value);
    out.push([
      Buffer.from(key).toString("utf8"),
      Array.isArray(list) ? (list as StoredJwtKey[]) : [],
    ]);
  });
  return out;
}

function writeKid(tx: Tx, kid: string, list: StoredJwtKey[]): void {
  const table = Tables.JWT_PUBLIC_SIGNING_KEYS_METADATA;
  const key = Buffer.from(kid, "utf8");
  if (list.length === 0) tx.map(table).delete(key);
  else tx.map(table).set(key, encodeValue(table, list));
}

function sameKey(a: StoredJwtKey, b: StoredJwtKey): boolean {
  return a.public_key === b.public_key && a.issuer === b.issuer && a.constraint === b.constraint;
}

/**
 * Replaces `issuer`'s keys with those of `jwks`, as CCF does: every key must have a kid and a
 * usable public key (n/e, crv/x/y or x5c) and its `issuer` constraint must fit the issuer's
 * domain, or nothing is written. Kids the issuer no longer lists lose its entry; entries of other
 * issuers under the same kid are kept; unchanged entries are not rewritten.
 * `metadata` is parsed as CCF does but, as in CCF 6, does not change the effect.
 * Throws JwtKeysError (see its `jsMessage` for what the JS effect throws).
 */
export function setJwtPublicSigningKeys(
  tx: Tx,
  issuer: string,
  metadata: unknown,
  jwks: unknown,
): void {
  parseJwtIssuerMetadata(metadata);
  const set = parseJsonWebKeySet(jwks);
  if (set.keys.length === 0) throw new JwtKeysError("rejected", "JWKS has no keys");
  const newKeys = new Map<string, StoredJwtKey>();
  for (const jwk of set.keys) {
    if (jwk.kid === undefined)
      throw new JwtKeysError("rejected", "Missing kid for JWT signing key");
    const kid = jwk.kid;
    const der = publicKeyOf(jwk, kid);
    if (jwk.issuer !== undefined && !checkIssuerConstraint(issuer, jwk.issuer)) {
      throw new JwtKeysError(
        "rejected",
        `JWKS kid ${kid} with issuer constraint ${jwk.issuer} fails validation against issuer ${issuer}`,
      );
    }
    // CCF collects into a map with emplace: the first key listed under a kid wins.
    if (newKeys.has(kid)) continue;
    const entry: StoredJwtKey = { public_key: der.toString("base64"), issuer };
    if (jwk.issuer !== undefined) entry.constraint = jwk.issuer;
    newKeys.set(kid, entry);
  }

  const existing = new Map(readKids(tx));
  const kidsOfIssuer = new Set(
    [...existing].filter(([, list]) => list.some((m) => m.issuer === issuer)).map(([k]) => k),
  );
  for (const [kid, entry] of newKeys) {
    const list = existing.get(kid);
    if (list === undefined) {
      writeKid(tx, kid, [entry]);
      continue;
    }
    if (list.some((m) => sameKey(m, entry))) continue;
    const i = list.findIndex((m) => m.issuer === issuer);
    const updated = [...list];
    if (i === -1) updated.push(entry);
    else updated[i] = entry;
    writeKid(tx, kid, updated);
  }
  for (const kid of kidsOfIssuer) {
    if (newKeys.has(kid)) continue;
    writeKid(
      tx,
      kid,
      (existing.get(kid) ?? []).filter((m) => m.issuer !== issuer),
    );
  }
}

/** Removes `issuer`'s entry from every kid, dropping kids left with none (CCF's effect). */
export function removeJwtPublicSigningKeys(tx: Tx, issuer: string): void {
  for (const [kid, list] of readKids(tx)) {
    if (!list.some((m) => m.issuer === issuer)) continue;
    writeKid(
      tx,
      kid,
      list.filter((m) => m.issuer !== issuer),
    );
  }
}

/** An issuer's metadata from public:ccf.gov.jwt.issuers, or undefined. */
export function readJwtIssuer(tx: Tx, issuer: string): JwtIssuerMetadata | undefined {
  const raw = tx.map(Tables.JWT_ISSUERS).get(Buffer.from(issuer, "utf8"));
  if (raw === undefined) return undefined;
  return parseJwtIssuerMetadata(decodeValue(Tables.JWT_ISSUERS, raw));
}

/** Every issuer in public:ccf.gov.jwt.issuers with its metadata (unparseable rows skipped). */
export function readJwtIssuers(tx: Tx): Array<[string, JwtIssuerMetadata]> {
  const out: Array<[string, JwtIssuerMetadata]> = [];
  tx.map(Tables.JWT_ISSUERS).forEach((value, key) => {
    try {
      out.push([
        Buffer.from(key).toString("utf8"),
        parseJwtIssuerMetadata(decodeValue(Tables.JWT_ISSUERS, value)),
      ]);
    } catch {
      // A row CCF could not read either; the refresher skips it.
    }
  });
  return out;
}

/** A CA bundle (PEM text) from public:ccf.gov.tls.ca_cert_bundles, or undefined. */
export function readCaCertBundle(tx: Tx, name: string): string | undefined {
  const raw = tx.map(Tables.CA_CERT_BUNDLES).get(Buffer.from(name, "utf8"));
  if (raw === undefined) return undefined;
  const v = decodeValue(Tables.CA_CERT_BUNDLES, raw);
  return typeof v === "string" ? v : undefined;
}

/**
 * The body of CCF's node-internal POST /node/jwt_keys/refresh: the issuer must exist and have
 * auto_refresh, then its keys are replaced. Throws Error with CCF's messages (sent there as
 * 500 InternalError): "<issuer> is not a valid issuer.", "<issuer> does not have auto_refresh
 * enabled.", "Error while storing signing keys for issuer <issuer>.".
 */
export function applyRefreshedJwtKeys(tx: Tx, issuer: string, jwks: unknown): void {
  const metadata = readJwtIssuer(tx, issuer);
  if (metadata === undefined) throw new Error(`${issuer} is not a valid issuer.`);
  if (metadata.auto_refresh !== true) {
    throw new Error(`${issuer} does not have auto_refresh enabled.`);
  }
  try {
    setJwtPublicSigningKeys(tx, issuer, metadata, jwks);
  } catch (e) {
    throw new Error(`Error while storing signing keys for issuer ${issuer}.`, { cause: e });
  }
}
