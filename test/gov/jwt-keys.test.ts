// CCF's JWT key effects (ccf.setJwtPublicSigningKeys / removeJwtPublicSigningKeys and the node's
// key refresh) on public:ccf.gov.jwt.public_signing_keys_metadata_v2, and the JWKS checks.

import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { before, describe, it } from "node:test";
import { exportJWK, type JWK } from "jose";
import { createSelfSignedCertificate, EcKeyPair } from "../../src/crypto/index.js";
import {
  applyRefreshedJwtKeys,
  checkIssuerConstraint,
  JwtKeysError,
  parseJsonWebKeySet,
  readJwtIssuers,
  removeJwtPublicSigningKeys,
  setJwtPublicSigningKeys,
} from "../../src/gov/jwt-keys.js";
import { encodeValue, Store, Tables, type Tx } from "../../src/kv/index.js";

const A = "https://a.example";
const B = "https://b.example";
const TABLE = Tables.JWT_PUBLIC_SIGNING_KEYS_METADATA;

function rows(tx: Tx): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  tx.map(TABLE).forEach((v, k) => {
    out[Buffer.from(k).toString("utf8")] = JSON.parse(Buffer.from(v).toString("utf8"));
  });
  return out;
}

function rawRow(tx: Tx, kid: string): string | undefined {
  const v = tx.map(TABLE).get(Buffer.from(kid));
  return v === undefined ? undefined : Buffer.from(v).toString("utf8");
}

function rejected(fn: () => void, message: string | RegExp, kind: "parse" | "rejected"): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof JwtKeysError);
    assert.equal(e.kind, kind);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

describe("setJwtPublicSigningKeys", () => {
  let rsa: JWK;
  let rsaDer: string;
  let ec: JWK;
  let ecDer: string;
  let certX5c: string;
  let certDer: string;
  before(async () => {
    const r = generateKeyPairSync("rsa", { modulusLength: 2048 });
    rsa = await exportJWK(r.publicKey);
    rsaDer = r.publicKey.export({ type: "spki", format: "der" }).toString("base64");
    const e = generateKeyPairSync("ec", { namedCurve: "P-384" });
    ec = await exportJWK(e.publicKey);
    ecDer = e.publicKey.export({ type: "spki", format: "der" }).toString("base64");
    const k = EcKeyPair.generate("secp256r1");
    const pem = await createSelfSignedCertificate(k, {
      subjectName: "CN=x5c",
      validFrom: new Date(),
      validityDays: 1,
    });
    certX5c = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
    certDer = k.publicKeyDer.toString("base64");
  });

  it("stores each kid as a list of {public_key (SPKI DER, base64), issuer, constraint?}", () => {
    const tx = new Store().begin();
    setJwtPublicSigningKeys(
      tx,
      A,
      { auto_refresh: false },
      {
        keys: [
          { ...rsa, kid: "r" },
          { ...ec, kid: "e", issuer: `${A}/v2` },
          { kty: "EC", kid: "c", x5c: [certX5c] },
        ],
      },
    );
    assert.deepEqual(rows(tx), {
      r: [{ public_key: rsaDer, issuer: A }],
      e: [{ public_key: ecDer, issuer: A, constraint: `${A}/v2` }],
      c: [{ public_key: certDer, issuer: A }],
    });
    // C++-written JSON: keys in byte order, compact.
    assert.equal(
      rawRow(tx, "e"),
      `[{"constraint":"${A}/v2","issuer":"${A}","public_key":"${ecDer}"}]`,
    );
  });

  it("replaces an issuer's keys, keeping other issuers' entries under shared kids", () => {
    const tx = new Store().begin();
    setJwtPublicSigningKeys(
      tx,
      A,
      {},
      {
        keys: [
          { ...rsa, kid: "k1" },
          { ...rsa, kid: "k2" },
        ],
      },
    );
    setJwtPublicSigningKeys(tx, B, {}, { keys: [{ ...ec, kid: "k1" }] });
    assert.deepEqual(rows(tx).k1, [
      { public_key: rsaDer, issuer: A },
      { public_key: ecDer, issuer: B },
    ]);
    setJwtPublicSigningKeys(
      tx,
      A,
      {},
      {
        keys: [
          { ...ec, kid: "k1" },
          { ...ec, kid: "k3" },
        ],
      },
    );
    assert.deepEqual(rows(tx), {
      k1: [
        { public_key: ecDer, issuer: A },
        { public_key: ecDer, issuer: B },
      ],
      k3: [{ public_key: ecDer, issuer: A }],
    });
  });

  it("does not rewrite an unchanged entry", () => {
    const store = new Store();
    const tx = store.begin();
    setJwtPublicSigningKeys(tx, A, {}, { keys: [{ ...rsa, kid: "k1" }] });
    store.commit(tx);
    const again = store.begin();
    setJwtPublicSigningKeys(again, A, {}, { keys: [{ ...rsa, kid: "k1" }] });
    assert.equal(again.hasWrites(), false);
  });

  it("removeJwtPublicSigningKeys drops the issuer's entries and emptied kids", () => {
    const tx = new Store().begin();
    setJwtPublicSigningKeys(
      tx,
      A,
      {},
      {
        keys: [
          { ...rsa, kid: "k1" },
          { ...rsa, kid: "k2" },
        ],
      },
    );
    setJwtPublicSigningKeys(tx, B, {}, { keys: [{ ...ec, kid: "k1" }] });
    removeJwtPublicSigningKeys(tx, A);
    assert.deepEqual(rows(tx), { k1: [{ public_key: ecDer, issuer: B }] });
  });

  it("refuses a JWKS CCF refuses, writing nothing", () => {
    const tx = new Store().begin();
    const set =
      (jwks: unknown, issuer = A) =>
      () =>
        setJwtPublicSigningKeys(tx, issuer, {}, jwks);
    rejected(set({ keys: [] }), "JWKS has no keys", "rejected");
    rejected(set({ keys: [{ ...rsa }] }), "Missing kid for JWT signing key", "rejected");
    rejected(
      set({ keys: [{ kty: "RSA", kid: "k" }] }),
      "JWKS kid k has neither RSA/EC public key or x5c",
      "rejected",
    );
    rejected(
      set({ keys: [{ kty: "RSA", kid: "k", x5c: ["not base64!"] }] }),
      /^Could not parse x5c of key id k: /,
      "rejected",
    );
    rejected(
      set({ keys: [{ kty: "RSA", kid: "k", x5c: ["AAAA"] }] }),
      /^JWKS kid k has an invalid X.509 certificate: /,
      "rejected",
    );
    rejected(
      set({ keys: [{ kty: "EC", kid: "k", crv: "P-256", x: "AAAA", y: "AAAA" }] }),
      /^Failed to construct EC public key: /,
      "rejected",
    );
    rejected(
      set({ keys: [{ ...rsa, kid: "k", issuer: "https://evil.example" }] }),
      `JWKS kid k with issuer constraint https://evil.example fails validation against issuer ${A}`,
      "rejected",
    );
    rejected(set({}), "Missing required field 'keys'", "parse");
    rejected(set({ keys: [{ kid: "k" }] }), "keys[0]: Missing required field 'kty'", "parse");
    rejected(
      () => setJwtPublicSigningKeys(tx, A, { auto_refresh: "yes" }, { keys: [rsa] }),
      "auto_refresh: expected a boolean",
      "parse",
    );
    // A good key before a bad one is not stored either.
    rejected(
      set({
        keys: [
          { ...rsa, kid: "good" },
          { kty: "RSA", kid: "bad" },
        ],
      }),
      "JWKS kid bad has neither RSA/EC public key or x5c",
      "rejected",
    );
    assert.deepEqual(rows(tx), {});
  });

  it("gives the JS effect's messages", () => {
    assert.equal(
      new JwtKeysError("rejected", "JWKS has no keys").jsMessage,
      "set_jwt_public_signing_keys() failed",
    );
    assert.equal(
      new JwtKeysError("parse", "Missing required field 'keys'").jsMessage,
      "Error setting JWT public signing keys: Missing required field 'keys'",
    );
  });

  it("accepts constraints on the issuer's domain or a parent domain only", () => {
    assert.equal(checkIssuerConstraint("https://login.x.com", "https://login.x.com/t/v2"), true);
    assert.equal(checkIssuerConstraint("https://limited.x.com", "https://x.com"), true);
    assert.equal(checkIssuerConstraint("https://x.com", "https://limited.x.com"), false);
    assert.equal(checkIssuerConstraint("https://notx.com", "https://x.com"), false);
    assert.equal(checkIssuerConstraint("https://x.com", "x.com"), false);
  });

  it("parses a JWKS: first key of a duplicated kid wins, unknown fields are ignored", () => {
    const tx = new Store().begin();
    setJwtPublicSigningKeys(
      tx,
      A,
      { extra: 1 },
      {
        keys: [
          { ...rsa, kid: "d", use: "sig" },
          { ...ec, kid: "d" },
        ],
      },
    );
    assert.deepEqual(rows(tx), { d: [{ public_key: rsaDer, issuer: A }] });
    assert.deepEqual(parseJsonWebKeySet({ keys: [{ kty: "OKP", kid: "z", x5c: [] }] }), {
      keys: [{ kty: "OKP", kid: "z", x5c: [] }],
    });
  });
});

describe("applyRefreshedJwtKeys", () => {
  it("requires a known issuer with auto_refresh, with CCF's messages", async () => {
    const r = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const jwks = { keys: [{ ...(await exportJWK(r.publicKey)), kid: "k" }] };
    const tx = new Store().begin();
    assert.throws(() => applyRefreshedJwtKeys(tx, A, jwks), {
      message: `${A} is not a valid issuer.`,
    });
    tx.map(Tables.JWT_ISSUERS).set(Buffer.from(A), encodeValue(Tables.JWT_ISSUERS, {}));
    assert.throws(() => applyRefreshedJwtKeys(tx, A, jwks), {
      message: `${A} does not have auto_refresh enabled.`,
    });
    tx.map(Tables.JWT_ISSUERS).set(
      Buffer.from(A),
      encodeValue(Tables.JWT_ISSUERS, { auto_refresh: true, ca_cert_bundle_name: "ca" }),
    );
    assert.throws(() => applyRefreshedJwtKeys(tx, A, { keys: [] }), {
      message: `Error while storing signing keys for issuer ${A}.`,
    });
    applyRefreshedJwtKeys(tx, A, jwks);
    assert.equal(tx.map(TABLE).has(Buffer.from("k")), true);
    assert.deepEqual(readJwtIssuers(tx), [[A, { auto_refresh: true, ca_cert_bundle_name: "ca" }]]);
  });
});
