import "reflect-metadata";
import assert from "node:assert/strict";
import { X509Certificate as NodeX509 } from "node:crypto";
import { describe, it } from "node:test";
import * as x509 from "@peculiar/x509";
import {
  certificateDer,
  certificateInfo,
  createCertificateSigningRequest,
  createEndorsedCertificate,
  createSelfSignedCertificate,
  createServiceCertificate,
  EcKeyPair,
  endorseCertificateSigningRequest,
  parseCertificateSigningRequest,
  parseSubjectAltName,
  pemBundleSplit,
  seededRng,
  verifyCertificateIssued,
} from "../../src/crypto/index.js";
import { FormatError } from "../../src/errors.js";
import { fixture, NODE_CERT_PEM } from "./fixtures.js";

const validFrom = new Date("2025-05-14T09:38:29Z");

async function serviceAndNode(seed: number) {
  const rng = seededRng(seed);
  const serviceKey = EcKeyPair.generate("secp384r1", rng);
  const nodeKey = EcKeyPair.generate("secp384r1", rng);
  const serviceCert = await createServiceCertificate(serviceKey, {
    subjectName: "CN=CCF Test Service",
    validFrom,
    validityDays: 90,
    rng,
  });
  const nodeCert = await createEndorsedCertificate({
    subjectPublicKey: nodeKey.publicKeyPem,
    subjectName: "CN=CCF Node",
    sans: [
      parseSubjectAltName("iPAddress:127.0.0.1"),
      parseSubjectAltName("dNSName:node0.example.com"),
    ],
    issuerKey: serviceKey,
    issuerCertPem: serviceCert,
    validFrom,
    validityDays: 90,
    rng,
  });
  return { serviceKey, nodeKey, serviceCert, nodeCert };
}

describe("service certificate", () => {
  it("is a self-signed CA with CCF's constraints (critical, pathlen 1) and SKI = AKI", async () => {
    const { serviceCert } = await serviceAndNode(1);
    const info = certificateInfo(serviceCert);
    assert.equal(info.isCa, true);
    assert.equal(info.subject, "CN=CCF Test Service");
    assert.equal(info.issuer, "CN=CCF Test Service");
    assert.equal(verifyCertificateIssued(serviceCert, serviceCert), true);
    const cert = new x509.X509Certificate(serviceCert);
    const bc = cert.getExtension(x509.BasicConstraintsExtension);
    assert.equal(bc?.ca, true);
    assert.equal(bc?.pathLength, 1);
    assert.equal(bc?.critical, true);
    const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    assert.ok(ski);
    assert.equal(cert.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, ski);
  });

  it("has the same extension layout, algorithm and name encoding as CCF's service certificate", async () => {
    const ours = new x509.X509Certificate((await serviceAndNode(1)).serviceCert);
    const ccf = new x509.X509Certificate(fixture("service_cert.pem"));
    const layout = (c: x509.X509Certificate) => c.extensions.map((e) => [e.type, e.critical]);
    assert.deepEqual(layout(ours), layout(ccf));
    assert.deepEqual(ours.signatureAlgorithm, ccf.signatureAlgorithm);
    // Same name encoding too (CN as UTF8String), so issuer/subject bytes compare equal.
    assert.deepEqual(
      Buffer.from(ours.subjectName.toArrayBuffer()),
      Buffer.from(ccf.subjectName.toArrayBuffer()),
    );
  });

  it("runs from validFrom to validFrom + days - 1 s, as CCF counts", async () => {
    const info = certificateInfo((await serviceAndNode(1)).serviceCert);
    assert.equal(info.validFrom.toISOString(), "2025-05-14T09:38:29.000Z");
    assert.equal(info.validTo.toISOString(), "2025-08-12T09:38:28.000Z");
  });
});

describe("endorsed node certificate", () => {
  it("verifies against the service certificate and carries the SANs", async () => {
    const { serviceCert, nodeCert, nodeKey } = await serviceAndNode(2);
    assert.equal(verifyCertificateIssued(nodeCert, serviceCert), true);
    assert.equal(verifyCertificateIssued(serviceCert, nodeCert), false);
    const info = certificateInfo(nodeCert);
    assert.equal(info.isCa, false);
    assert.equal(info.subject, "CN=CCF Node");
    assert.equal(info.issuer, "CN=CCF Test Service");
    assert.deepEqual(info.sans, [
      { type: "ip", value: "127.0.0.1" },
      { type: "dns", value: "node0.example.com" },
    ]);
    assert.deepEqual(info.publicKeyDer, nodeKey.publicKeyDer);
  });

  it("names the service's SKI as its AKI and is signed with ECDSA SHA-384", async () => {
    const { serviceCert, nodeCert } = await serviceAndNode(2);
    const service = new x509.X509Certificate(serviceCert);
    const node = new x509.X509Certificate(nodeCert);
    assert.equal(
      node.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId,
      service.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId,
    );
    assert.equal(node.getExtension(x509.BasicConstraintsExtension)?.ca, false);
    assert.equal(new NodeX509(nodeCert).toLegacyObject().asn1Curve, "secp384r1");
    assert.deepEqual(node.signatureAlgorithm, { name: "ECDSA", hash: { name: "SHA-384" } });
  });

  it("has the same extension layout as the node certificate CCF wrote", async () => {
    const ours = new x509.X509Certificate((await serviceAndNode(2)).nodeCert);
    const ccf = new x509.X509Certificate(NODE_CERT_PEM);
    const layout = (c: x509.X509Certificate) => c.extensions.map((e) => [e.type, e.critical]);
    assert.deepEqual(layout(ours), layout(ccf));
  });

  it("is signed with ECDSA SHA-256 by a P-256 issuer", async () => {
    const issuer = EcKeyPair.generate("secp256r1", seededRng(5));
    const issuerCertPem = await createServiceCertificate(issuer, {
      validFrom,
      validityDays: 1,
      rng: seededRng(6),
    });
    const cert = await createEndorsedCertificate({
      subjectPublicKey: EcKeyPair.generate("secp384r1", seededRng(7)).publicKey,
      subjectName: "CN=n",
      issuerKey: issuer,
      issuerCertPem,
      validFrom,
      validityDays: 1,
    });
    assert.deepEqual(new x509.X509Certificate(cert).signatureAlgorithm, {
      name: "ECDSA",
      hash: { name: "SHA-256" },
    });
    assert.equal(verifyCertificateIssued(cert, issuerCertPem), true);
  });

  it("refuses an issuer key that does not match the issuer certificate", async () => {
    const { serviceCert, nodeKey } = await serviceAndNode(3);
    await assert.rejects(
      createEndorsedCertificate({
        subjectPublicKey: nodeKey.publicKey,
        subjectName: "CN=n",
        issuerKey: nodeKey,
        issuerCertPem: serviceCert,
        validFrom,
        validityDays: 1,
      }),
      { code: "KeyMismatch" },
    );
  });

  it("accepts CCF's own node certificate as issued by CCF's service certificate", () => {
    assert.equal(verifyCertificateIssued(NODE_CERT_PEM, fixture("service_cert.pem")), true);
    assert.equal(verifyCertificateIssued(NODE_CERT_PEM, fixture("member0_cert.pem")), false);
  });
});

describe("self-signed node certificate", () => {
  it("is not a CA, carries SANs and verifies under its own key", async () => {
    const key = EcKeyPair.generate("secp384r1", seededRng(9));
    const pem = await createSelfSignedCertificate(key, {
      subjectName: "CN=CCF Node",
      validFrom,
      validityDays: 365,
      sans: [parseSubjectAltName("IP:::1"), parseSubjectAltName("DNS:localhost")],
      rng: seededRng(10),
    });
    const info = certificateInfo(pem);
    assert.equal(info.isCa, false);
    assert.deepEqual(info.sans, [
      { type: "ip", value: "0:0:0:0:0:0:0:1" },
      { type: "dns", value: "localhost" },
    ]);
    assert.equal(verifyCertificateIssued(pem, pem), true);
    assert.ok(new x509.X509Certificate(pem).getExtension(x509.SubjectKeyIdentifierExtension));
  });
});

describe("reproducibility", () => {
  it("gives the identical PEM for the same keys, names, dates and seed", async () => {
    const a = await serviceAndNode(4);
    const b = await serviceAndNode(4);
    assert.equal(a.serviceCert, b.serviceCert);
    assert.equal(a.nodeCert, b.nodeCert);
  });

  it("draws a different serial from a different seed", async () => {
    const key = EcKeyPair.generate("secp384r1", seededRng(4));
    const make = (seed: number) =>
      createServiceCertificate(key, { validFrom, validityDays: 1, rng: seededRng(seed) });
    const [a, b] = await Promise.all([make(1), make(2)]);
    assert.notEqual(new NodeX509(a).serialNumber, new NodeX509(b).serialNumber);
  });
});

describe("subject alternative names", () => {
  it("parses CCF's and OpenSSL's spellings", () => {
    assert.deepEqual(parseSubjectAltName("iPAddress:127.0.0.1"), {
      type: "ip",
      value: "127.0.0.1",
    });
    assert.deepEqual(parseSubjectAltName("dNSName:foo.com"), { type: "dns", value: "foo.com" });
    assert.deepEqual(parseSubjectAltName("IP:10.0.0.1"), { type: "ip", value: "10.0.0.1" });
    assert.deepEqual(parseSubjectAltName("DNS:*.foo.com"), { type: "dns", value: "*.foo.com" });
  });

  it("rejects a bad string with a FormatError naming it", () => {
    for (const bad of ["iPAddress:not-an-ip", "email:a@b.c", "127.0.0.1", "dNSName:", "DNS:a b"]) {
      assert.throws(
        () => parseSubjectAltName(bad),
        (e: unknown) => e instanceof FormatError && e.message.includes(`"${bad}"`),
      );
    }
  });
});

describe("subject names", () => {
  it("keeps several attributes in the order given, CN as UTF8String and C as PrintableString", async () => {
    const key = EcKeyPair.generate("secp384r1", seededRng(12));
    const pem = await createSelfSignedCertificate(key, {
      subjectName: "CN=CCF Node, O=Contoso, C=GB",
      validFrom,
      validityDays: 1,
      rng: seededRng(13),
    });
    assert.equal(certificateInfo(pem).subject, "CN=CCF Node\nO=Contoso\nC=GB");
    const rdns = new x509.X509Certificate(pem).subjectName.toJSON();
    assert.deepEqual(rdns, [{ CN: ["CCF Node"] }, { O: ["Contoso"] }, { C: ["GB"] }]);
  });

  it("rejects a malformed subject name with a FormatError", async () => {
    const key = EcKeyPair.generate("secp384r1", seededRng(14));
    for (const subjectName of ["CCF Node", "CN=", "CN=a,,O=b", "NOTATYPE=x"]) {
      await assert.rejects(
        createSelfSignedCertificate(key, { subjectName, validFrom, validityDays: 1 }),
        FormatError,
      );
    }
  });
});

describe("certificate helpers", () => {
  it("splits a PEM bundle and gets each certificate's DER", () => {
    const service = fixture("service_cert.pem");
    const parts = pemBundleSplit(`${service}\n${NODE_CERT_PEM}junk`);
    assert.equal(parts.length, 2);
    assert.deepEqual(certificateDer(parts[0] ?? ""), certificateDer(service));
    assert.deepEqual(certificateDer(parts[1] ?? ""), certificateDer(NODE_CERT_PEM));
    assert.deepEqual(pemBundleSplit("nothing here"), []);
  });

  it("throws FormatError on a malformed certificate", () => {
    assert.throws(
      () => certificateDer("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
      FormatError,
    );
    assert.throws(() => certificateInfo("garbage"), FormatError);
    assert.equal(verifyCertificateIssued("garbage", NODE_CERT_PEM), false);
  });
});

describe("certificate signing request", () => {
  it("carries the node's key, subject and SANs, and its self-signature verifies", async () => {
    const key = EcKeyPair.generate("secp384r1");
    const pem = await createCertificateSigningRequest(key, {
      subjectName: "CN=CCF Node",
      sans: [parseSubjectAltName("iPAddress:127.0.0.1"), parseSubjectAltName("dNSName:node.test")],
    });
    const csr = await parseCertificateSigningRequest(pem);
    assert.equal(csr.subjectName, "CN=CCF Node");
    assert.deepEqual(csr.sans, [
      { type: "ip", value: "127.0.0.1" },
      { type: "dns", value: "node.test" },
    ]);
    assert.equal(csr.publicKeyPem.trim(), key.publicKeyPem.trim());
  });

  it("refuses a request whose signature does not match, or that is not a CSR", async () => {
    const key = EcKeyPair.generate("secp256r1");
    const pem = await createCertificateSigningRequest(key, { subjectName: "CN=x" });
    const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64");
    der[der.length - 5] = (der[der.length - 5] ?? 0) ^ 0xff;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
    await assert.rejects(parseCertificateSigningRequest(tampered), FormatError);
    await assert.rejects(parseCertificateSigningRequest("not a csr"), FormatError);
  });
});

describe("endorsing a certificate signing request (governance's generateEndorsedCertificate)", () => {
  it("issues, synchronously, a certificate for the CSR's key, subject and SANs, signed by the service", async () => {
    const serviceKey = EcKeyPair.generate("secp384r1");
    const serviceCert = await createServiceCertificate(serviceKey, {
      subjectName: "CN=CCF Service",
      validFrom: new Date("2024-01-01T00:00:00Z"),
      validityDays: 365,
    });
    const nodeKey = EcKeyPair.generate("secp384r1");
    const csr = await createCertificateSigningRequest(nodeKey, {
      subjectName: "CN=CCF Node",
      sans: [parseSubjectAltName("iPAddress:127.0.0.1")],
    });
    const pem = endorseCertificateSigningRequest({
      csrPem: csr,
      issuerKey: serviceKey,
      issuerCertPem: serviceCert,
      validFrom: "20240102030405Z",
      validityDays: 10,
    });
    const cert = new NodeX509(pem);
    assert.ok(verifyCertificateIssued(pem, serviceCert));
    assert.equal(cert.subject, "CN=CCF Node");
    assert.equal(cert.subjectAltName, "IP Address:127.0.0.1");
    assert.equal(new Date(cert.validFrom).toISOString(), "2024-01-02T03:04:05.000Z");
    assert.equal(new Date(cert.validTo).toISOString(), "2024-01-12T03:04:04.000Z");
    assert.ok(
      Buffer.from(cert.publicKey.export({ type: "spki", format: "der" })).equals(
        nodeKey.publicKeyDer,
      ),
    );
    assert.equal(cert.ca, false);
  });

  it("refuses a CSR whose signature does not verify, and a bad time", async () => {
    const serviceKey = EcKeyPair.generate("secp256r1");
    const serviceCert = await createServiceCertificate(serviceKey, {
      subjectName: "CN=CCF Service",
      validFrom: new Date(),
      validityDays: 1,
    });
    const csr = await createCertificateSigningRequest(EcKeyPair.generate("secp256r1"), {
      subjectName: "CN=n",
    });
    const der = Buffer.from(csr.replace(/-----[^-]+-----|\s/g, ""), "base64");
    der[der.length - 5] = (der[der.length - 5] ?? 0) ^ 0xff;
    const bad = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
    const endorse = (csrPem: string, validFrom: string) =>
      endorseCertificateSigningRequest({
        csrPem,
        issuerKey: serviceKey,
        issuerCertPem: serviceCert,
        validFrom,
        validityDays: 1,
      });
    assert.throws(() => endorse(bad, "20240101000000Z"), FormatError);
    assert.throws(() => endorse(csr, "yesterday"), FormatError);
  });
});
