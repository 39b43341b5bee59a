import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, webcrypto } from "node:crypto";
import { describe, it } from "node:test";
import { generateRsaKeyPair, rsaOaepUnwrap, rsaOaepWrap } from "../../src/crypto/index.js";
import { CryptoError } from "../../src/errors.js";
import { fixture } from "./fixtures.js";

describe("RSA-OAEP", () => {
  const pair = generateRsaKeyPair(2048);

  it("generates SPKI and PKCS#8 PEM, as CCF's keygenerator writes", () => {
    assert.match(pair.publicKeyPem, /^-----BEGIN PUBLIC KEY-----/);
    assert.match(pair.privateKeyPem, /^-----BEGIN PRIVATE KEY-----/);
    assert.equal(createPublicKey(pair.publicKeyPem).asymmetricKeyDetails?.modulusLength, 2048);
  });

  it("round-trips a 32-byte secret", () => {
    const secret = Buffer.alloc(32, 0xab);
    const wrapped = rsaOaepWrap(pair.publicKeyPem, secret);
    assert.equal(wrapped.length, 256);
    assert.deepEqual(rsaOaepUnwrap(pair.privateKeyPem, wrapped), secret);
  });

  it("round-trips with the fixture member's encryption key pair", () => {
    const secret = Buffer.from("ledger secret share");
    const wrapped = rsaOaepWrap(fixture("member0_enc_pubk.pem"), secret);
    assert.deepEqual(rsaOaepUnwrap(fixture("member0_enc_privk.pem"), wrapped), secret);
  });

  it("uses SHA-256 for both OAEP and MGF1, as WebCrypto's RSA-OAEP/SHA-256 does", async () => {
    const secret = Buffer.from("interop");
    const wrapped = rsaOaepWrap(pair.publicKeyPem, secret);
    const der = createPrivateKey(pair.privateKeyPem).export({ type: "pkcs8", format: "der" });
    const key = await webcrypto.subtle.importKey(
      "pkcs8",
      der,
      { name: "RSA-OAEP", hash: "SHA-256" },
      false,
      ["decrypt"],
    );
    const plain = await webcrypto.subtle.decrypt({ name: "RSA-OAEP" }, key, wrapped);
    assert.deepEqual(Buffer.from(plain), secret);
  });

  it("throws CryptoError when unwrapping with the wrong key or corrupted data", () => {
    const wrapped = rsaOaepWrap(pair.publicKeyPem, Buffer.from("x"));
    assert.throws(() => rsaOaepUnwrap(fixture("member0_enc_privk.pem"), wrapped), {
      name: "CryptoError",
      code: "DecryptionFailed",
    });
    const corrupted = Buffer.from(wrapped);
    corrupted[10] = (corrupted[10] ?? 0) ^ 1;
    assert.throws(() => rsaOaepUnwrap(pair.privateKeyPem, corrupted), CryptoError);
    assert.throws(() => rsaOaepWrap("not a key", Buffer.from("x")), CryptoError);
  });
});
