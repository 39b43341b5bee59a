import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";
import {
  EcKeyPair,
  ecPublicKeyInfo,
  publicKeyFromPem,
  seededRng,
  sha256,
  signDigest,
  verifyDigest,
} from "../../src/crypto/index.js";
import { CryptoError } from "../../src/errors.js";
import { fixture } from "./fixtures.js";

describe("EcKeyPair", () => {
  it("loads CCF's SEC1 member key preceded by an EC PARAMETERS block", () => {
    const pem = fixture("member0_privk.pem");
    assert.match(pem, /BEGIN EC PARAMETERS/);
    const key = EcKeyPair.fromPem(pem);
    assert.equal(key.curve, "secp384r1");
    assert.equal(key.scalar.length, 48);
    const certKey = publicKeyFromPem(fixture("member0_cert.pem"));
    assert.deepEqual(key.publicKeyDer, certKey.export({ type: "spki", format: "der" }));
  });

  it("round-trips through its own PKCS#8 PEM", () => {
    const key = EcKeyPair.generate();
    assert.match(key.privateKeyPem, /^-----BEGIN PRIVATE KEY-----/);
    assert.match(key.publicKeyPem, /^-----BEGIN PUBLIC KEY-----/);
    const again = EcKeyPair.fromPem(key.privateKeyPem);
    assert.deepEqual(again.scalar, key.scalar);
    assert.deepEqual(again.publicKeyDer, key.publicKeyDer);
  });

  it("generates the same key from the same seed, and different keys from different seeds", () => {
    const a = EcKeyPair.generate("secp384r1", seededRng(42));
    const b = EcKeyPair.generate("secp384r1", seededRng(42));
    const c = EcKeyPair.generate("secp384r1", seededRng(43));
    assert.deepEqual(a.scalar, b.scalar);
    assert.equal(a.publicKeyPem, b.publicKeyPem);
    assert.notDeepEqual(a.scalar, c.scalar);
  });

  it("supports P-256 keys, from generation to PEM and back", () => {
    const key = EcKeyPair.generate("secp256r1", seededRng(1));
    assert.equal(key.curve, "secp256r1");
    assert.equal(key.scalar.length, 32);
    assert.equal(key.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
    const again = EcKeyPair.fromPem(key.privateKeyPem);
    assert.equal(again.curve, "secp256r1");
    const digest = sha256(Buffer.from("p256"));
    assert.equal(verifyDigest(again.publicKey, digest, signDigest(key, digest)), true);
  });

  it("refuses malformed PEM and non-EC or unsupported-curve keys with a CryptoError", () => {
    assert.throws(() => EcKeyPair.fromPem("garbage"), CryptoError);
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
    const rsaPem = rsa.privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    assert.throws(() => EcKeyPair.fromPem(rsaPem), { code: "UnsupportedKey" });
    const p521 = generateKeyPairSync("ec", { namedCurve: "secp521r1" });
    const p521Pem = p521.privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    assert.throws(() => EcKeyPair.fromPem(p521Pem), { code: "UnsupportedKey" });
  });

  it("refuses an out-of-range scalar", () => {
    assert.throws(() => EcKeyPair.fromScalar("secp384r1", new Uint8Array(48)), CryptoError);
    assert.throws(
      () => EcKeyPair.fromScalar("secp384r1", new Uint8Array(48).fill(0xff)),
      CryptoError,
    );
  });
});

describe("publicKeyFromPem", () => {
  it("accepts an SPKI PEM and a certificate PEM for the same key", () => {
    const certKey = publicKeyFromPem(fixture("member0_cert.pem"));
    const spkiPem = certKey.export({ type: "spki", format: "pem" }) as string;
    assert.deepEqual(
      publicKeyFromPem(spkiPem).export({ type: "spki", format: "der" }),
      certKey.export({ type: "spki", format: "der" }),
    );
  });

  it("throws CryptoError on garbage", () => {
    assert.throws(
      () => publicKeyFromPem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
      CryptoError,
    );
    assert.throws(() => publicKeyFromPem("nothing"), CryptoError);
  });

  it("exposes the raw point and curve of an EC public key", () => {
    const key = EcKeyPair.generate("secp384r1", seededRng(3));
    const info = ecPublicKeyInfo(createPublicKey(key.publicKeyPem));
    assert.equal(info.curve, "secp384r1");
    assert.deepEqual(info.point, key.publicPoint);
  });
});
