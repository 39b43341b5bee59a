import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  certificateDer,
  certificateId,
  EcKeyPair,
  nodeIdFromPublicKey,
  publicKeyFromPem,
  seededRng,
  sha256,
  toHex,
} from "../../src/crypto/index.js";
import { fixture, NODE_CERT_PEM } from "./fixtures.js";

describe("CCF identifiers", () => {
  it("gives the member and user ids CCF assigned in the fixture service", () => {
    assert.equal(
      certificateId(fixture("member0_cert.pem")),
      "46d2a7518877166654dfa07d9c4c5aaa0ba82a3f62648216f45fdd7de0e79b38",
    );
    assert.equal(
      certificateId(fixture("user0_cert.pem")),
      "1a260cad24689b6241f59cab47f9b144c97b1f358c092361d37cb1173e7edb68",
    );
    assert.equal(
      toHex(sha256(certificateDer(fixture("service_cert.pem")))),
      "0f1ff037113e5b359725012e9484fceb4b093c432505c2a1b057cef5029a3a44",
    );
  });

  it("gives the node id of CCF's node from its certificate, public key or SPKI DER", () => {
    const expected = "fac07a156b829456395d32ca1334c2f0d90e85b3eedc3c162739c4825cc9d63f";
    const key = publicKeyFromPem(NODE_CERT_PEM);
    assert.equal(nodeIdFromPublicKey(NODE_CERT_PEM), expected);
    assert.equal(nodeIdFromPublicKey(key), expected);
    assert.equal(
      nodeIdFromPublicKey(key.export({ type: "spki", format: "pem" }) as string),
      expected,
    );
    assert.equal(nodeIdFromPublicKey(key.export({ type: "spki", format: "der" })), expected);
  });

  it("gives the same node id for a key pair's private and public KeyObjects", () => {
    const key = EcKeyPair.generate("secp384r1", seededRng(8));
    assert.equal(nodeIdFromPublicKey(key.privateKey), nodeIdFromPublicKey(key.publicKeyDer));
  });
});
