// The `jwt` authentication policy: bearer tokens checked against the keys governance stored, with
// CCF's reasons for refusing them.

import assert from "node:assert/strict";
import { createPrivateKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { before, describe, it } from "node:test";
import { exportJWK, type JWK, type JWTPayload, SignJWT } from "jose";
import {
  createEndorsedCertificate,
  createSelfSignedCertificate,
  EcKeyPair,
} from "../../src/crypto/index.js";
import type { EndpointRequest } from "../../src/endpoints/types.js";
import { HttpError } from "../../src/errors.js";
import { setJwtPublicSigningKeys } from "../../src/gov/jwt-keys.js";
import { encodeValue, Store, Tables } from "../../src/kv/index.js";
import { type AuthPolicy, authenticate, type Caller } from "../../src/rpc/auth.js";
import { validateIssuer } from "../../src/rpc/jwt.js";

const NOW = 1_700_000_000;
const ISSUER = "https://issuer.example";
const clock = { jwt: { now: () => NOW } };

function request(headers: Record<string, string>): EndpointRequest {
  return {
    method: "GET",
    path: "/app/x",
    query: "",
    params: {},
    headers,
    body: Buffer.alloc(0),
    clientCert: undefined,
    httpVersion: "1.1",
    hostname: "",
  };
}

function bearer(token: string): EndpointRequest {
  return request({ authorization: `Bearer ${token}` });
}

async function sign(
  key: KeyObject,
  header: { alg: string; kid?: string; [k: string]: unknown },
  payload: JWTPayload,
): Promise<string> {
  return new SignJWT(payload).setProtectedHeader(header).sign(key);
}

interface Keys {
  rsa: { priv: KeyObject; jwk: JWK };
  ec: { priv: KeyObject; jwk: JWK };
  other: KeyObject;
  rsaCert: { priv: KeyObject; x5c: string };
  ecCert: { priv: KeyObject; x5c: string };
}

function derBase64(pem: string): string {
  return pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
}

async function makeKeys(): Promise<Keys> {
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const other = generateKeyPairSync("rsa", { modulusLength: 2048 });
  // An RSA key in a certificate endorsed by an EC CA, and a self-signed P-256 certificate.
  const ca = EcKeyPair.generate("secp256r1");
  const caCert = await createSelfSignedCertificate(ca, {
    subjectName: "CN=jwt ca",
    validFrom: new Date(),
    validityDays: 30,
    ca: true,
  });
  const rsaForCert = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const rsaCertPem = await createEndorsedCertificate({
    subjectPublicKey: rsaForCert.publicKey,
    subjectName: "CN=rsa signer",
    issuerKey: ca,
    issuerCertPem: caCert,
    validFrom: new Date(),
    validityDays: 30,
  });
  const ecForCert = EcKeyPair.generate("secp256r1");
  const ecCertPem = await createSelfSignedCertificate(ecForCert, {
    subjectName: "CN=ec signer",
    validFrom: new Date(),
    validityDays: 30,
  });
  return {
    rsa: { priv: rsa.privateKey, jwk: await exportJWK(rsa.publicKey) },
    ec: { priv: ec.privateKey, jwk: await exportJWK(ec.publicKey) },
    other: other.privateKey,
    rsaCert: { priv: rsaForCert.privateKey, x5c: derBase64(rsaCertPem) },
    ecCert: { priv: createPrivateKey(ecForCert.privateKeyPem), x5c: derBase64(ecCertPem) },
  };
}

/** A store with ISSUER's keys (kids rsa1, ec1, rsax5c, ecx5c, constrained) set by governance. */
function storeWith(keys: Keys): Store {
  const store = new Store();
  const tx = store.begin();
  tx.map(Tables.JWT_ISSUERS).set(
    Buffer.from(ISSUER),
    encodeValue(Tables.JWT_ISSUERS, { auto_refresh: false }),
  );
  setJwtPublicSigningKeys(
    tx,
    ISSUER,
    {},
    {
      keys: [
        { ...keys.rsa.jwk, kid: "rsa1" },
        { ...keys.ec.jwk, kid: "ec1" },
        { kty: "RSA", kid: "rsax5c", x5c: [keys.rsaCert.x5c] },
        { kty: "EC", kid: "ecx5c", x5c: [keys.ecCert.x5c] },
        { ...keys.rsa.jwk, kid: "constrained", issuer: `${ISSUER}/tenant` },
      ],
    },
  );
  store.commit(tx);
  return store;
}

function auth(store: Store, req: EndpointRequest, policies: AuthPolicy[] = ["jwt"]): Caller | null {
  return authenticate(policies, req, store.begin(), clock);
}

function refusal(store: Store, req: EndpointRequest): string {
  try {
    auth(store, req);
  } catch (e) {
    assert.ok(e instanceof HttpError);
    assert.equal(e.status, 401);
    assert.equal(e.code, "InvalidAuthenticationInfo");
    assert.equal(
      e.headers?.["www-authenticate"],
      'Bearer realm="JWT bearer token access", error="invalid_token"',
    );
    assert.equal(e.details?.length, 1);
    assert.equal(e.details?.[0]?.auth_policy, "jwt");
    return e.details?.[0]?.message ?? "";
  }
  assert.fail("the token was accepted");
}

const claims = (extra: JWTPayload = {}): JWTPayload => ({
  iss: ISSUER,
  sub: "alice",
  exp: NOW + 60,
  nbf: NOW - 60,
  ...extra,
});

describe("jwt policy", () => {
  let keys: Keys;
  let store: Store;
  before(async () => {
    keys = await makeKeys();
    store = storeWith(keys);
  });

  it("accepts an RS256 token and gives CCF's caller shape", async () => {
    const token = await sign(keys.rsa.priv, { alg: "RS256", kid: "rsa1", typ: "JWT" }, claims());
    assert.deepEqual(auth(store, bearer(token)), {
      policy: "jwt",
      jwt: {
        keyIssuer: ISSUER,
        header: { alg: "RS256", kid: "rsa1", typ: "JWT" },
        payload: { iss: ISSUER, sub: "alice", exp: NOW + 60, nbf: NOW - 60 },
      },
    });
  });

  it("accepts an ES256 token signed by a crv/x/y key", async () => {
    const token = await sign(keys.ec.priv, { alg: "ES256", kid: "ec1" }, claims());
    const caller = auth(store, bearer(token)) as { jwt: { keyIssuer: string } };
    assert.equal(caller.jwt.keyIssuer, ISSUER);
  });

  it("accepts tokens signed by x5c keys, RSA and EC", async () => {
    const rsa = await sign(keys.rsaCert.priv, { alg: "RS256", kid: "rsax5c" }, claims());
    assert.equal((auth(store, bearer(rsa)) as { policy: string }).policy, "jwt");
    const ec = await sign(keys.ecCert.priv, { alg: "ES256", kid: "ecx5c" }, claims());
    assert.equal((auth(store, bearer(ec)) as { policy: string }).policy, "jwt");
  });

  it("accepts a token without nbf (only exp is required)", async () => {
    const token = await sign(
      keys.rsa.priv,
      { alg: "RS256", kid: "rsa1" },
      { iss: ISSUER, exp: NOW + 1 },
    );
    assert.ok(auth(store, bearer(token)));
  });

  it("refuses a token whose iss does not match the key's issuer constraint", async () => {
    const token = await sign(keys.rsa.priv, { alg: "RS256", kid: "constrained" }, claims());
    assert.equal(
      refusal(store, bearer(token)),
      `Kid constrained failed issuer constraint validation ${ISSUER}/tenant`,
    );
    const good = await sign(
      keys.rsa.priv,
      { alg: "RS256", kid: "constrained" },
      claims({ iss: `${ISSUER}/tenant` }),
    );
    assert.ok(auth(store, bearer(good)));
  });

  it("refuses an unknown kid", async () => {
    const token = await sign(keys.rsa.priv, { alg: "RS256", kid: "nope" }, claims());
    assert.equal(refusal(store, bearer(token)), "JWT signing key not found for kid nope");
  });

  it("refuses an expired token", async () => {
    const token = await sign(
      keys.rsa.priv,
      { alg: "RS256", kid: "rsa1" },
      claims({ exp: NOW - 1 }),
    );
    assert.equal(
      refusal(store, bearer(token)),
      `Current time ${NOW} is after token's Expiration Time (exp) claim ${NOW - 1}`,
    );
  });

  it("refuses a token without exp", async () => {
    const token = await sign(keys.rsa.priv, { alg: "RS256", kid: "rsa1" }, { iss: ISSUER });
    assert.equal(
      refusal(store, bearer(token)),
      "JWT payload is missing required field: Missing required field 'exp'",
    );
  });

  it("refuses a token whose nbf is in the future", async () => {
    const token = await sign(
      keys.rsa.priv,
      { alg: "RS256", kid: "rsa1" },
      claims({ nbf: NOW + 10 }),
    );
    assert.equal(
      refusal(store, bearer(token)),
      `Current time ${NOW} is before token's Not Before (nbf) claim ${NOW + 10}`,
    );
  });

  it("refuses a bad signature", async () => {
    const token = await sign(keys.other, { alg: "RS256", kid: "rsa1" }, claims());
    assert.equal(refusal(store, bearer(token)), "Signature verification failed");
    const good = await sign(keys.rsa.priv, { alg: "RS256", kid: "rsa1" }, claims());
    const [h, p] = good.split(".");
    const tampered = `${h}.${p}!.${good.split(".")[2]}`;
    assert.equal(refusal(store, bearer(tampered)), "Malformed JWT: a part is not valid base64url");
    const swapped = `${h}.${Buffer.from(JSON.stringify(claims({ sub: "mallory" }))).toString("base64url")}.${good.split(".")[2]}`;
    assert.equal(refusal(store, bearer(swapped)), "Signature verification failed");
  });

  it("refuses an ES256 token against an RSA key of the same kid", async () => {
    const token = await sign(keys.ec.priv, { alg: "ES256", kid: "rsa1" }, claims());
    assert.equal(refusal(store, bearer(token)), "Signature verification failed");
  });

  it("explains malformed authorization headers as CCF does", async () => {
    assert.equal(refusal(store, request({})), "Missing authorization header");
    assert.equal(
      refusal(store, request({ authorization: "Bearer" })),
      "Authorization header only contains one field",
    );
    assert.equal(
      refusal(store, request({ authorization: "Basic abc" })),
      "Authorization header does not have Bearer scheme",
    );
    assert.equal(refusal(store, bearer("a.b")), "Malformed JWT: must contain exactly 3 parts");
    const hs = await new SignJWT(claims())
      .setProtectedHeader({ alg: "HS256", kid: "rsa1" })
      .sign(new Uint8Array(32));
    assert.match(refusal(store, bearer(hs)), /^JWT header does not follow schema: /);
    const noKid = await sign(keys.rsa.priv, { alg: "RS256" }, claims());
    assert.equal(
      refusal(store, bearer(noKid)),
      "JWT header does not follow schema: Missing required field 'kid'",
    );
  });

  it("tries every issuer's key under a kid and reports the one that verifies", async () => {
    const s = storeWith(keys);
    const tx = s.begin();
    setJwtPublicSigningKeys(
      tx,
      "https://second.example",
      {},
      {
        keys: [{ ...keys.ec.jwk, kid: "rsa1" }],
      },
    );
    s.commit(tx);
    const token = await sign(keys.ec.priv, { alg: "ES256", kid: "rsa1" }, claims());
    const caller = auth(s, bearer(token)) as { jwt: { keyIssuer: string } };
    assert.equal(caller.jwt.keyIssuer, "https://second.example");
  });

  it("combines with other policies: all_of and fallbacks", async () => {
    const token = await sign(keys.rsa.priv, { alg: "RS256", kid: "rsa1" }, claims());
    const caller = auth(store, bearer(token), [{ all_of: ["no_auth", "jwt"] }]) as Record<
      string,
      unknown
    >;
    assert.deepEqual(caller.policy, ["no_auth", "jwt"]);
    assert.equal((caller.jwt as { policy: string }).policy, "jwt");
    assert.deepEqual(auth(store, request({}), ["jwt", "no_auth"]), { policy: "no_auth" });
  });
});

describe("validateIssuer", () => {
  const entra = "https://login.microsoftonline.com/{tenantid}/v2.0";
  it("requires equality and no tid outside Entra", () => {
    assert.equal(validateIssuer(ISSUER, undefined, ISSUER), true);
    assert.equal(validateIssuer(ISSUER, "t", ISSUER), false);
    assert.equal(validateIssuer(`${ISSUER}/x`, undefined, ISSUER), false);
  });
  it("substitutes {tenantid} and checks tid against iss's path for Entra", () => {
    const iss = "https://login.microsoftonline.com/abc/v2.0";
    assert.equal(validateIssuer(iss, "abc", entra), true);
    assert.equal(validateIssuer(iss, "xyz", entra), false);
    assert.equal(validateIssuer(iss, undefined, entra), false);
    assert.equal(validateIssuer(iss, "abc", iss), true);
    assert.equal(validateIssuer(iss, "xyz", iss), false);
  });
});
