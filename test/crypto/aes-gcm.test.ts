import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { aesGcmDecrypt, aesGcmEncrypt, fromHex, seededRng } from "../../src/crypto/index.js";
import { CryptoError } from "../../src/errors.js";

// The GCM specification's test case 16 (NIST SP 800-38D): AES-256, 60-byte plaintext, 20-byte AAD.
const TC16 = {
  key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
  iv: "cafebabefacedbaddecaf888",
  plaintext:
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
  aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
  ciphertext:
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
  tag: "76fc6ece0f4e1768cddf8853bb2d551b",
};

const rng = seededRng(11);
const key = rng.bytes(32);
const iv = rng.bytes(12);

describe("AES-256-GCM", () => {
  it("matches the GCM specification's test case 16", () => {
    const { ciphertext, tag } = aesGcmEncrypt(
      fromHex(TC16.key),
      fromHex(TC16.iv),
      fromHex(TC16.plaintext),
      fromHex(TC16.aad),
    );
    assert.equal(ciphertext.toString("hex"), TC16.ciphertext);
    assert.equal(tag.toString("hex"), TC16.tag);
    const plain = aesGcmDecrypt(
      fromHex(TC16.key),
      fromHex(TC16.iv),
      ciphertext,
      tag,
      fromHex(TC16.aad),
    );
    assert.equal(plain.toString("hex"), TC16.plaintext);
  });

  it("round-trips with and without additional data, and for an empty plaintext", () => {
    const plaintext = Buffer.from("private domain");
    const aad = Buffer.from("public domain");
    const a = aesGcmEncrypt(key, iv, plaintext, aad);
    assert.equal(a.tag.length, 16);
    assert.deepEqual(aesGcmDecrypt(key, iv, a.ciphertext, a.tag, aad), plaintext);
    const b = aesGcmEncrypt(key, iv, plaintext);
    assert.deepEqual(aesGcmDecrypt(key, iv, b.ciphertext, b.tag), plaintext);
    const empty = aesGcmEncrypt(key, iv, new Uint8Array(0), aad);
    assert.equal(empty.ciphertext.length, 0);
    assert.equal(aesGcmDecrypt(key, iv, empty.ciphertext, empty.tag, aad).length, 0);
  });

  it("rejects a wrong tag, wrong AAD, wrong key, wrong IV or altered ciphertext", () => {
    const plaintext = Buffer.from("secret");
    const aad = Buffer.from("aad");
    const { ciphertext, tag } = aesGcmEncrypt(key, iv, plaintext, aad);
    const otherKey = Buffer.from(key);
    otherKey[0] = (otherKey[0] ?? 0) ^ 1;
    const otherIv = Buffer.from(iv);
    otherIv[11] = (otherIv[11] ?? 0) ^ 1;
    const badTag = Buffer.from(tag);
    badTag[0] = (badTag[0] ?? 0) ^ 1;
    const badCt = Buffer.from(ciphertext);
    badCt[0] = (badCt[0] ?? 0) ^ 1;
    const attempts: [string, () => Buffer][] = [
      ["tag", () => aesGcmDecrypt(key, iv, ciphertext, badTag, aad)],
      ["aad", () => aesGcmDecrypt(key, iv, ciphertext, tag, Buffer.from("other"))],
      ["missing aad", () => aesGcmDecrypt(key, iv, ciphertext, tag)],
      ["key", () => aesGcmDecrypt(otherKey, iv, ciphertext, tag, aad)],
      ["iv", () => aesGcmDecrypt(key, otherIv, ciphertext, tag, aad)],
      ["ciphertext", () => aesGcmDecrypt(key, iv, badCt, tag, aad)],
      ["short tag", () => aesGcmDecrypt(key, iv, ciphertext, tag.subarray(0, 12), aad)],
    ];
    for (const [what, attempt] of attempts) {
      assert.throws(
        attempt,
        { name: "CryptoError", code: "DecryptionFailed" },
        `wrong ${what} accepted`,
      );
    }
  });

  it("refuses keys and IVs of the wrong size", () => {
    assert.throws(() => aesGcmEncrypt(new Uint8Array(16), iv, new Uint8Array(1)), CryptoError);
    assert.throws(() => aesGcmEncrypt(key, new Uint8Array(16), new Uint8Array(1)), CryptoError);
  });
});
