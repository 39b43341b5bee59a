// Certificate renewal on a node: the renewed service certificate (same key, subject and
// extensions, new validity), and which committed renewals a node takes up.

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { describe, it } from "node:test";
import {
  createEndorsedCertificate,
  createServiceCertificate,
  EcKeyPair,
} from "../../src/crypto/index.js";
import { renewServiceCertificate } from "../../src/crypto/x509.js";
import { encodeValue, SINGLETON_KEY, Store, Tables } from "../../src/kv/index.js";
import { renewedCertificates } from "../../src/node/certificates.js";

const DAY_MS = 86_400_000;
const NODE_ID = "a".repeat(64);

async function service() {
  const key = EcKeyPair.generate("secp384r1");
  const cert = await createServiceCertificate(key, {
    subjectName: "CN=My Service",
    validFrom: new Date("2024-01-01T00:00:00Z"),
    validityDays: 30,
  });
  return { key, cert };
}

async function endorsed(
  issuer: { key: EcKeyPair; cert: string },
  subject: EcKeyPair,
  validFrom: Date,
): Promise<string> {
  return createEndorsedCertificate({
    subjectPublicKey: subject.publicKey,
    subjectName: "CN=CCF Node",
    issuerKey: issuer.key,
    issuerCertPem: issuer.cert,
    validFrom,
    validityDays: 10,
  });
}

/** Commits one transaction writing the node's endorsed certificate and the service's. */
function write(store: Store, certs: { node?: string; service?: string }): number {
  const tx = store.begin();
  if (certs.node !== undefined) {
    tx.map(Tables.NODE_ENDORSED_CERTIFICATES).set(
      Buffer.from(NODE_ID),
      encodeValue(Tables.NODE_ENDORSED_CERTIFICATES, certs.node),
    );
  }
  if (certs.service !== undefined) {
    tx.map(Tables.SERVICE).set(
      SINGLETON_KEY,
      encodeValue(Tables.SERVICE, { cert: certs.service, status: "Open" }),
    );
  }
  return store.commit(tx).version;
}

describe("renewServiceCertificate", () => {
  it("keeps the key, subject and CA extensions, with the requested validity", async () => {
    const svc = await service();
    const renewed = new X509Certificate(
      renewServiceCertificate({
        key: svc.key,
        certPem: svc.cert,
        validFrom: "20250301120000Z",
        validityDays: 7,
      }),
    );
    const old = new X509Certificate(svc.cert);
    assert.equal(renewed.subject, "CN=My Service");
    assert.equal(renewed.issuer, renewed.subject);
    assert.ok(renewed.ca);
    assert.ok(renewed.publicKey.equals(old.publicKey));
    assert.ok(renewed.verify(svc.key.publicKey));
    assert.notEqual(renewed.serialNumber, old.serialNumber);
    const from = Date.UTC(2025, 2, 1, 12);
    assert.equal(new Date(renewed.validFrom).getTime(), from);
    assert.equal(new Date(renewed.validTo).getTime(), from + 7 * DAY_MS - 1000);
  });

  it("still certifies what the old certificate endorsed", async () => {
    const svc = await service();
    const nodeCert = new X509Certificate(
      await endorsed(svc, EcKeyPair.generate("secp384r1"), new Date()),
    );
    const renewed = new X509Certificate(
      renewServiceCertificate({
        key: svc.key,
        certPem: svc.cert,
        validFrom: new Date().toISOString(),
        validityDays: 1,
      }),
    );
    assert.ok(nodeCert.checkIssued(renewed) && nodeCert.verify(renewed.publicKey));
  });

  it("refuses a key that is not the certificate's, and a validity that is not positive", async () => {
    const svc = await service();
    const other = EcKeyPair.generate("secp384r1");
    const args = { certPem: svc.cert, validFrom: "20250101000000Z" };
    assert.throws(
      () => renewServiceCertificate({ ...args, key: other, validityDays: 1 }),
      /service key does not match/,
    );
    assert.throws(
      () => renewServiceCertificate({ ...args, key: svc.key, validityDays: 0 }),
      /positive number of days/,
    );
  });
});

describe("renewedCertificates", () => {
  it("reports a committed renewal of either certificate, and nothing when they are current", async () => {
    const svc = await service();
    const nodeKey = EcKeyPair.generate("secp384r1");
    const self = { nodeId: NODE_ID, publicKeyDer: nodeKey.publicKeyDer };
    const nodeCert = await endorsed(svc, nodeKey, new Date("2024-01-01T00:00:00Z"));
    const store = new Store();
    const genesis = write(store, { node: nodeCert, service: svc.cert });
    const current = { node: nodeCert, service: svc.cert };
    assert.deepEqual(renewedCertificates(store, genesis, self, current), {});

    const newNode = await endorsed(svc, nodeKey, new Date("2024-02-01T00:00:00Z"));
    const newService = renewServiceCertificate({
      key: svc.key,
      certPem: svc.cert,
      validFrom: "20240201000000Z",
      validityDays: 30,
    });
    const renewal = write(store, { node: newNode, service: newService });
    assert.deepEqual(renewedCertificates(store, renewal, self, current), {
      node: newNode,
      service: newService,
    });
    assert.deepEqual(
      renewedCertificates(store, renewal, self, { node: newNode, service: newService }),
      {},
    );
  });

  it("waits until the renewal is committed", async () => {
    const svc = await service();
    const nodeKey = EcKeyPair.generate("secp384r1");
    const self = { nodeId: NODE_ID, publicKeyDer: nodeKey.publicKeyDer };
    const nodeCert = await endorsed(svc, nodeKey, new Date("2024-01-01T00:00:00Z"));
    const store = new Store();
    const genesis = write(store, { node: nodeCert, service: svc.cert });
    const newNode = await endorsed(svc, nodeKey, new Date("2024-02-01T00:00:00Z"));
    const renewal = write(store, { node: newNode });
    const current = { node: nodeCert, service: svc.cert };
    assert.deepEqual(renewedCertificates(store, genesis, self, current), {});
    assert.deepEqual(renewedCertificates(store, renewal, self, current), { node: newNode });
  });

  it("ignores a node certificate for another key", async () => {
    const svc = await service();
    const nodeKey = EcKeyPair.generate("secp384r1");
    const self = { nodeId: NODE_ID, publicKeyDer: nodeKey.publicKeyDer };
    const nodeCert = await endorsed(svc, nodeKey, new Date("2024-01-01T00:00:00Z"));
    const store = new Store();
    const foreign = await endorsed(svc, EcKeyPair.generate("secp384r1"), new Date());
    const seqno = write(store, { node: foreign, service: svc.cert });
    assert.deepEqual(
      renewedCertificates(store, seqno, self, { node: nodeCert, service: svc.cert }),
      {},
    );
  });
});
