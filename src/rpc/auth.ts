// Authentication policies of application endpoints, as CCF's JS apps name them in app.json:
// `user_cert`, `member_cert`, `any_cert`, `jwt`, `user_cose_sign1`, `no_auth` and `{"all_of": [...]}`.
// Tried in order; the first that succeeds gives `request.caller`; when all fail the handler never
// runs and the client gets 401 with one detail per policy.

import { X509Certificate } from "node:crypto";
import { certificateId } from "../crypto/index.js";
import type { EndpointRequest } from "../endpoints/index.js";
import { HttpError } from "../errors.js";
import { decodeValue, idKey, Tables, type Tx } from "../kv/index.js";

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
  const rawInfo = tx.map(info).get(idKey(id));
  const data =
    rawInfo === undefined
      ? null
      : ((decodeValue(info, rawInfo) as Record<string, unknown>)[dataField] ?? null);
  return { id, data, cert: decodeValue(certs, stored) };
}

function runPolicy(name: PolicyName, req: EndpointRequest, tx: Tx): Caller {
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
    case "jwt":
      throw new PolicyFailure("JWT authentication is not available in this version of ccf-ts");
    case "user_cose_sign1":
      throw new PolicyFailure(
        "COSE Sign1 user authentication is not available in this version of ccf-ts",
      );
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
): Caller | null {
  if (policies.length === 0) return null;
  const details: Array<{ auth_policy: string; code: string; message: string }> = [];
  for (const policy of policies) {
    try {
      if (typeof policy === "string") return runPolicy(policy, req, tx);
      const caller: Caller = { policy: [...policy.all_of] };
      for (const name of policy.all_of) {
        caller[name] = runPolicy(name, req, tx);
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

function policiesChallenge(policies: readonly AuthPolicy[]): string {
  const names = new Set(policies.flatMap((p) => (typeof p === "string" ? [p] : p.all_of)));
  return names.has("jwt")
    ? 'Bearer realm="JWT bearer token access", error="invalid_token"'
    : "ClientCertificate";
}
