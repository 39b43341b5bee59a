// JWT key auto-refresh against a local OpenID issuer over HTTPS: discovery, JWKS, the CA bundle
// as the only trust anchor, and the refresh metrics.

import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { exportJWK, type JWK } from "jose";
import {
  createEndorsedCertificate,
  createServiceCertificate,
  EcKeyPair,
} from "../../src/crypto/index.js";
import { applyRefreshedJwtKeys } from "../../src/gov/jwt-keys.js";
import { encodeValue, Store, Tables } from "../../src/kv/index.js";
import { JwtKeyRefresher } from "../../src/node/jwt-refresh.js";

async function caAndServerCert(): Promise<{ ca: string; key: string; cert: string }> {
  const caKey = EcKeyPair.generate("secp256r1");
  const ca = await createServiceCertificate(caKey, {
    subjectName: "CN=test issuer CA",
    validFrom: new Date(Date.now() - 60_000),
    validityDays: 1,
  });
  const serverKey = EcKeyPair.generate("secp256r1");
  const cert = await createEndorsedCertificate({
    subjectPublicKey: serverKey.publicKeyPem,
    subjectName: "CN=127.0.0.1",
    sans: [{ type: "ip", value: "127.0.0.1" }],
    issuerKey: caKey,
    issuerCertPem: ca,
    validFrom: new Date(Date.now() - 60_000),
    validityDays: 1,
  });
  return { ca, key: serverKey.privateKeyPem, cert };
}

interface Issuer {
  url: string;
  ca: string;
  server: Server;
  requests: string[];
}

/** An OpenID issuer: discovery at /.well-known/openid-configuration, keys at /keys. */
async function startIssuer(jwks: () => unknown, jwksStatus = () => 200): Promise<Issuer> {
  const { ca, key, cert } = await caAndServerCert();
  const requests: string[] = [];
  const server = createServer({ key, cert }, (req, res) => {
    requests.push(req.url ?? "");
    const { port } = server.address() as AddressInfo;
    if (req.url === "/.well-known/openid-configuration") {
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({
          issuer: `https://127.0.0.1:${port}`,
          jwks_uri: `https://127.0.0.1:${port}/keys`,
        }),
      );
    } else if (req.url === "/keys") {
      res.statusCode = jwksStatus();
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(jwks()));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `https://127.0.0.1:${port}`, ca, server, requests };
}

function addIssuer(
  store: Store,
  issuer: string,
  metadata: Record<string, unknown>,
  bundles: Record<string, string> = {},
): void {
  const tx = store.begin();
  tx.map(Tables.JWT_ISSUERS).set(Buffer.from(issuer), encodeValue(Tables.JWT_ISSUERS, metadata));
  for (const [name, pem] of Object.entries(bundles)) {
    tx.map(Tables.CA_CERT_BUNDLES).set(Buffer.from(name), encodeValue(Tables.CA_CERT_BUNDLES, pem));
  }
  store.commit(tx);
}

/** The node's side: each refreshed key set is applied in its own transaction and committed. */
function refresherFor(store: Store, applied: string[] = []): JwtKeyRefresher {
  return new JwtKeyRefresher({
    readTx: () => store.begin(),
    apply: (issuer, jwks) => {
      const tx = store.begin();
      applyRefreshedJwtKeys(tx, issuer, jwks);
      store.commit(tx);
      applied.push(issuer);
    },
  });
}

function storedKids(store: Store): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  store
    .begin()
    .map(Tables.JWT_PUBLIC_SIGNING_KEYS_METADATA)
    .forEach((v, k) => {
      out[Buffer.from(k).toString()] = JSON.parse(Buffer.from(v).toString());
    });
  return out;
}

describe("JwtKeyRefresher", () => {
  let jwk: JWK;
  let der: string;
  let keysStatus = 200;
  let issuer: Issuer;
  let stranger: Issuer;
  before(async () => {
    const k = generateKeyPairSync("rsa", { modulusLength: 2048 });
    jwk = { ...(await exportJWK(k.publicKey)), kid: "refreshed" };
    der = k.publicKey.export({ type: "spki", format: "der" }).toString("base64");
    issuer = await startIssuer(
      () => ({ keys: [jwk] }),
      () => keysStatus,
    );
    stranger = await startIssuer(() => ({ keys: [jwk] }));
  });
  after(() => {
    issuer.server.close();
    stranger.server.close();
  });

  it("fetches discovery then the JWKS with the issuer's CA bundle, and applies the keys", async () => {
    const store = new Store();
    addIssuer(
      store,
      issuer.url,
      { auto_refresh: true, ca_cert_bundle_name: "idp" },
      { idp: issuer.ca },
    );
    const applied: string[] = [];
    const refresher = refresherFor(store, applied);
    issuer.requests.length = 0;
    await refresher.refreshOnce();
    assert.deepEqual(issuer.requests, ["/.well-known/openid-configuration", "/keys"]);
    assert.deepEqual(applied, [issuer.url]);
    assert.deepEqual(storedKids(store), { refreshed: [{ public_key: der, issuer: issuer.url }] });
    assert.deepEqual(refresher.metrics(), { attempts: 1, successes: 1, failures: 0 });
  });

  it("counts an issuer whose certificate the bundle does not trust as a failure", async () => {
    const store = new Store();
    // The stranger's server certificate comes from another CA than the bundle's.
    addIssuer(
      store,
      stranger.url,
      { auto_refresh: true, ca_cert_bundle_name: "idp" },
      { idp: issuer.ca },
    );
    const applied: string[] = [];
    const refresher = refresherFor(store, applied);
    stranger.requests.length = 0;
    await refresher.refreshOnce();
    assert.deepEqual(stranger.requests, []);
    assert.deepEqual(applied, []);
    assert.deepEqual(storedKids(store), {});
    assert.deepEqual(refresher.metrics(), { attempts: 1, successes: 0, failures: 1 });
  });

  it("skips issuers without auto_refresh and fails those without a bundle", async () => {
    const store = new Store();
    addIssuer(
      store,
      issuer.url,
      { auto_refresh: false, ca_cert_bundle_name: "idp" },
      { idp: issuer.ca },
    );
    addIssuer(store, "https://127.0.0.1:1", { auto_refresh: true, ca_cert_bundle_name: "missing" });
    const logs: string[] = [];
    const refresher = new JwtKeyRefresher({
      readTx: () => store.begin(),
      apply: () => assert.fail("nothing to apply"),
      log: (level, m) => logs.push(`${level} ${m}`),
    });
    await refresher.refreshOnce();
    assert.deepEqual(refresher.metrics(), { attempts: 1, successes: 0, failures: 1 });
    assert.ok(
      logs.includes(
        "fail JWT key auto-refresh: CA cert bundle with name 'missing' for issuer 'https://127.0.0.1:1' not found",
      ),
    );
  });

  it("counts an error status from the JWKS endpoint, and a key set the node refuses", async () => {
    const store = new Store();
    addIssuer(
      store,
      issuer.url,
      { auto_refresh: true, ca_cert_bundle_name: "idp" },
      { idp: issuer.ca },
    );
    const refresher = refresherFor(store);
    keysStatus = 503;
    try {
      await refresher.refreshOnce();
    } finally {
      keysStatus = 200;
    }
    assert.deepEqual(refresher.metrics(), { attempts: 1, successes: 0, failures: 1 });
    const refusing = new JwtKeyRefresher({
      readTx: () => store.begin(),
      apply: () => {
        throw new Error("not primary any more");
      },
    });
    await refusing.refreshOnce();
    assert.deepEqual(refusing.metrics(), { attempts: 1, successes: 0, failures: 1 });
  });

  it("does nothing on a backup", async () => {
    const store = new Store();
    addIssuer(
      store,
      issuer.url,
      { auto_refresh: true, ca_cert_bundle_name: "idp" },
      { idp: issuer.ca },
    );
    const refresher = new JwtKeyRefresher({
      readTx: () => store.begin(),
      apply: () => assert.fail("backups do not refresh"),
      isPrimary: () => false,
    });
    await refresher.refreshOnce();
    assert.deepEqual(refresher.metrics(), { attempts: 0, successes: 0, failures: 0 });
  });
});
