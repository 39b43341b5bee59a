// Authentication policies of application endpoints, as CCF's JS apps name them in app.json:
// `user_cert`, `member_cert`, `any_cert`, `jwt`, `user_cose_sign1`, `no_auth` and `{"all_of": [...]}`.
// Tried in order; the first that succeeds gives `request.caller`; when all fail the handler never
// runs and the client gets 401 with one detail per policy.

import { X509Certificate } from "node:crypto";
import { COSE_HEADER, type CoseSign1, certificateId } from "../crypto/index.js";
import type { EndpointRequest } from "../endpoints/index.js";
import { HttpError } from "../errors.js";
import { decodeTaggedSign1, ECDSA_ALGS, signatureVerifies } from "../gov/index.js";
import { decodeStoredValue, decodeValue, idKey, Tables, type Tx } from "../kv/index.js";
import { type VerifyJwtOptions, verifyJwtBearer } from "./jwt.js";

export type PolicyName =
  | "user_cert"
  | "member_cert"
  | "any_cert"
  | "jwt"
  | "user_cose_sign1"
  | "no_auth";
export type AuthPolicy = PolicyName | { all_of: PolicyName[] };

const NAMES: readonly PolicyName[] = [
  "user_cert",
  "member_cert",
  "any_cert",
  "jwt",
  "user_cose_sign1",
  "no_auth",
];

/** Checks an app.json `authn_policies` value; throws Error("Unknown auth policy: ...") as CCF does. */
export function parsePolicies(value: unknown, where: string): AuthPolicy[] {
  if (!Array.isArray(value)) throw new Error(`${where}: authn_policies must be an array`);
  return value.map((p: unknown): AuthPolicy => {
    if (typeof p === "string") {
      if (!(NAMES as readonly string[]).includes(p))
        throw new Error(`${where}: Unknown auth policy: ${p}`);
      return p as PolicyName;
    }
    if (p !== null && typeof p === "object" && Array.isArray((p as { all_of?: unknown }).all_of)) {
      const all = (p as { all_of: unknown[] }).all_of.map((q) => {
        if (typeof q !== "string" || !(NAMES as readonly string[]).includes(q)) {
          throw new Error(`${where}: Unknown auth policy: ${JSON.stringify(q)}`);
        }
        return q as PolicyName;
      });
      return { all_of: all };
    }
    throw new Error(`${where}: Unknown auth policy: ${JSON.stringify(p)}`);
  });
}

export type Caller = Record<string, unknown>;

class PolicyFailure extends Error {}

interface ParsedClientCert {
  id: string;
  notBefore: number;
  notAfter: number;
}

/** Bounded: a client presents the same certificate on every request of every connection. */
const CLIENT_CERT_CACHE_SIZE = 1024;
const clientCerts = new Map<string, ParsedClientCert>();

/** A client certificate's id and validity, parsed once (parsing was ~12% of a request's cost). */
function parsedClientCert(pem: string, der: Buffer): ParsedClientCert {
  let parsed = clientCerts.get(pem);
  if (parsed === undefined) {
    const x509 = new X509Certificate(der);
    parsed = {
      id: certificateId(pem),
      notBefore: Date.parse(x509.validFrom),
      notAfter: Date.parse(x509.validTo),
    };
    if (clientCerts.size >= CLIENT_CERT_CACHE_SIZE) {
      clientCerts.delete(clientCerts.keys().next().value as string);
    }
    clientCerts.set(pem, parsed);
  }
  return parsed;
}

function certIdentity(
  req: EndpointRequest,
  tx: Tx,
  certs: string,
  info: string,
  dataField: string,
  who: string,
): Caller {
  const client = req.clientCert;
  if (client === undefined) throw new PolicyFailure("No client certificate");
  const { id, notBefore, notAfter } = parsedClientCert(client.pem, client.der);
  const stored = tx.map(certs).get(idKey(id));
  if (stored === undefined) throw new PolicyFailure(`Could not find matching ${who} certificate`);
  const now = Date.now();
  if (notBefore > now || notAfter < now) {
    throw new PolicyFailure(
      `${who[0]?.toUpperCase()}${who.slice(1)} certificate is not valid at the current time`,
    );
  }
  return { id, data: entityData(tx, info, dataField, id), cert: decodeStoredValue(certs, stored) };
}

/** `<entity>_data` from a users.info / members.info row; null when absent (CCF's JSON null). */
function entityData(tx: Tx, info: string, dataField: string, id: string): unknown {
  const rawInfo = tx.map(info).get(idKey(id));
  return rawInfo === undefined
    ? null
    : ((decodeStoredValue(info, rawInfo) as Record<string, unknown>)[dataField] ?? null);
}

/** Protected header labels of user COSE Sign1 requests (CCF's UserCOSESign1AuthnPolicy). */
export const USER_COSE_HEADER = {
  msgType: "ccf.msg.type",
  createdAt: "ccf.msg.created_at",
} as const;

function malformedCose(message: string): HttpError {
  return new HttpError(400, "InvalidInput", message);
}

function isInteger(v: unknown): v is number | bigint {
  return typeof v === "bigint" || (typeof v === "number" && Number.isInteger(v));
}

/**
 * CCF's extract_protected_header_and_signature for user messages: alg and kid are required,
 * ccf.msg.type and ccf.msg.created_at optional but typed (created_at non-negative). Malformed
 * headers, like a malformed envelope, throw out of the policy; as for governance messages
 * (src/gov/cose.ts) they are answered with 400 InvalidInput rather than CCF's 500.
 */
function userCoseHeaders(decoded: CoseSign1): { alg: number; kid: Buffer } {
  const h = decoded.protectedHeaders;
  const alg = h.get(COSE_HEADER.alg);
  const kid = h.get(COSE_HEADER.kid);
  const msgType = h.get(USER_COSE_HEADER.msgType);
  const createdAt = h.get(USER_COSE_HEADER.createdAt);
  const typeError = (label: string) =>
    malformedCose(`Failed to decode protected header: ${label} has an unexpected type`);
  if (alg !== undefined && !isInteger(alg)) throw typeError("alg");
  if (kid !== undefined && !(kid instanceof Uint8Array)) throw typeError("kid");
  if (msgType !== undefined && typeof msgType !== "string") {
    throw typeError(USER_COSE_HEADER.msgType);
  }
  if (createdAt !== undefined && !isInteger(createdAt)) {
    throw typeError(USER_COSE_HEADER.createdAt);
  }
  if (alg === undefined) throw malformedCose("Missing algorithm in protected header");
  if (kid === undefined) throw malformedCose("Missing kid in protected header");
  if (createdAt !== undefined && createdAt < 0) {
    throw malformedCose("Header parameter created_at must be positive");
  }
  return { alg: Number(alg), kid: Buffer.from(kid) };
}

/**
 * CCF's user_cose_sign1: a body of content type application/cose holding a tagged COSE_Sign1
 * whose kid is a user id and whose ECDSA signature verifies with that user's certificate. The
 * request body is left as it is (CCF's handlers see the envelope); the payload is `cose.content`.
 */
function userCoseIdentity(req: EndpointRequest, tx: Tx): Caller {
  const contentType = req.headers["content-type"];
  if (contentType === undefined) throw new PolicyFailure("Missing content-type header");
  if (contentType !== "application/cose") {
    throw new PolicyFailure("Content type is not set to application/cose");
  }
  const decoded = decodeTaggedSign1(req.body);
  const { alg, kid } = userCoseHeaders(decoded);
  if (!ECDSA_ALGS.has(alg)) throw new PolicyFailure(`Unsupported algorithm: ${alg}`);
  const stored = tx.map(Tables.USER_CERTS).get(kid);
  if (stored === undefined) throw new PolicyFailure("Signer is not a known user");
  const cert = decodeValue(Tables.USER_CERTS, stored) as string;
  if (!signatureVerifies(decoded, alg, cert)) {
    throw new PolicyFailure("Failed to validate COSE Sign1");
  }
  const id = kid.toString("utf8");
  const payload = decoded.payload ?? Buffer.alloc(0);
  // A copy: the caller crosses into the sandbox, where it is a fresh ArrayBuffer anyway.
  const content = payload.buffer.slice(payload.byteOffset, payload.byteOffset + payload.length);
  // Property order as CCF's request.cpp sets them.
  return {
    cose: { content },
    policy: "user_cose_sign1",
    id,
    data: entityData(tx, Tables.USER_INFO, "user_data", id),
    cert,
  };
}

/** Test hook and clock for the jwt policy (CCF reads the host's time). */
export interface AuthOptions {
  jwt?: VerifyJwtOptions;
}

function runPolicy(name: PolicyName, req: EndpointRequest, tx: Tx, opts: AuthOptions): Caller {
  switch (name) {
    case "no_auth":
      return { policy: "no_auth" };
    case "any_cert":
      if (req.clientCert === undefined) throw new PolicyFailure("No client certificate");
      return { policy: "any_cert", cert: req.clientCert.pem };
    case "user_cert":
      return {
        policy: "user_cert",
        ...certIdentity(req, tx, Tables.USER_CERTS, Tables.USER_INFO, "user_data", "user"),
      };
    case "member_cert":
      return {
        policy: "member_cert",
        ...certIdentity(req, tx, Tables.MEMBER_CERTS, Tables.MEMBER_INFO, "member_data", "member"),
      };
    case "jwt": {
      const result = verifyJwtBearer(req.headers, tx, opts.jwt);
      if (!result.ok) throw new PolicyFailure(result.reason);
      return result.caller;
    }
    case "user_cose_sign1":
      return userCoseIdentity(req, tx);
  }
}

/**
 * The caller of a request under an endpoint's policies (null for an empty list), or a 401
 * HttpError listing why each policy failed. Table reads go through the request's transaction.
 */
export function authenticate(
  policies: readonly AuthPolicy[],
  req: EndpointRequest,
  tx: Tx,
  opts: AuthOptions = {},
): Caller | null {
  if (policies.length === 0) return null;
  const details: Array<{ auth_policy: string; code: string; message: string }> = [];
  for (const policy of policies) {
    try {
      if (typeof policy === "string") return runPolicy(policy, req, tx, opts);
      const caller: Caller = { policy: [...policy.all_of] };
      for (const name of policy.all_of) {
        caller[name] = runPolicy(name, req, tx, opts);
      }
      return caller;
    } catch (e) {
      if (!(e instanceof PolicyFailure)) throw e;
      details.push({
        auth_policy: typeof policy === "string" ? policy : `all_of[${policy.all_of.join(",")}]`,
        code: "InvalidAuthenticationInfo",
        message: e.message,
      });
    }
  }
  throw new HttpError(401, "InvalidAuthenticationInfo", "Invalid authentication credentials.", {
    details,
    headers: { "www-authenticate": policiesChallenge(policies) },
  });
}

/**
 * The scheme a client should use: a bearer token when any policy takes one, a COSE Sign1 body
 * when a policy takes that (CCF's user_cose_sign1 challenge), else a client certificate.
 */
function policiesChallenge(policies: readonly AuthPolicy[]): string {
  const names = new Set(policies.flatMap((p) => (typeof p === "string" ? [p] : p.all_of)));
  if (names.has("jwt")) return 'Bearer realm="JWT bearer token access", error="invalid_token"';
  if (names.has("user_cose_sign1")) return 'COSE-SIGN1 realm="Signed request access"';
  return "ClientCertificate";
}
