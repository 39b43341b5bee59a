// AesGcmKey (node:crypto AES-ECB keystream plus GHASH in JavaScript), checked against node:crypto's
// aes-256-gcm and the published test vectors.
import assert from "node:assert/strict";
import { createCipheriv } from "node:crypto";
import { describe, it } from "node:test";
import fc from "fast-check";
import { fromHex, seededRng } from "../../src/crypto/index.js";
import { AesGcmKey } from "../../src/crypto/gcm.js";
import { CryptoError } from "../../src/errors.js";

function nodeEncrypt(key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array) {
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: 16 });
  if (aad !== undefined) cipher.setAAD(aad);
  const ciphertext = cipher.update(plaintext);
  cipher.final();
  return { ciphertext, tag: cipher.getAuthTag() };
}

function flipBit(bytes: Uint8Array, bit: number): Buffer {
  const out = Buffer.from(bytes);
  out[bit >>> 3] ^= 0x80 >>> (bit & 7);
  return out;
}

const DECRYPTION_FAILED = { name: "CryptoError", code: "DecryptionFailed" };

// AES-256 test cases 13-16 of McGrew and Viega's GCM specification (the vectors NIST SP 800-38D
// points to), and one from NIST CAVP's gcmEncryptExtIV256 (96-bit IV, 160-bit AAD).
const VECTORS = [
  {
    name: "GCM spec test case 13 (empty plaintext and AAD)",
    key: "00".repeat(32),
    iv: "00".repeat(12),
    plaintext: "",
    aad: "",
    ciphertext: "",
    tag: "530f8afbc74536b9a963b4f1c4cb738b",
  },
  {
    name: "GCM spec test case 14 (one zero block)",
    key: "00".repeat(32),
    iv: "00".repeat(12),
    plaintext: "00".repeat(16),
    aad: "",
    ciphertext: "cea7403d4d606b6e074ec5d3baf39d18",
    tag: "d0d1c8a799996bf0265b98b5d48ab919",
  },
  {
    name: "GCM spec test case 15 (four blocks, no AAD)",
    key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
    iv: "cafebabefacedbaddecaf888",
    plaintext:
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
    aad: "",
    ciphertext:
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
    tag: "b094dac5d93471bdec1a502270e3cc6c",
  },
  {
    name: "GCM spec test case 16 (partial last block, 20-byte AAD)",
    key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
    iv: "cafebabefacedbaddecaf888",
    plaintext:
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
    aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
    ciphertext:
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
    tag: "76fc6ece0f4e1768cddf8853bb2d551b",
  },
  {
    name: "NIST CAVP gcmEncryptExtIV256, 128-bit plaintext, 160-bit AAD",
    key: "83688deb4af8007f9b713b47cfa6c73e35ea7a3aa4ecdb414dded03bf7a0fd3a",
    iv: "0b459724904e010a46901cf3",
    plaintext: "33d893a2114ce06fc15d55e454cf90c3",
    aad: "794a14ccd178c8ebfd1379dc704c5e208f9d8424",
    ciphertext: "cc66bee423e3fcd4c0865715e9586696",
    tag: "0fb291bd3dba94a1dfd8b286cfb97ac5",
  },
];

describe("AesGcmKey", () => {
  for (const v of VECTORS) {
    it(`reproduces the ${v.name}`, () => {
      const key = new AesGcmKey(fromHex(v.key));
      const { ciphertext, tag } = key.encrypt(fromHex(v.iv), fromHex(v.plaintext), fromHex(v.aad));
      assert.equal(ciphertext.toString("hex"), v.ciphertext);
      assert.equal(tag.toString("hex"), v.tag);
      const plain = key.decrypt(fromHex(v.iv), ciphertext, tag, fromHex(v.aad));
      assert.equal(plain.toString("hex"), v.plaintext);
    });
  }

  it("matches node:crypto's aes-256-gcm byte for byte and round-trips, for any sizes to 300 bytes", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.option(fc.uint8Array({ maxLength: 300 }), { nil: undefined }),
        (keyBytes, iv, plaintext, aad) => {
          const expected = nodeEncrypt(keyBytes, iv, plaintext, aad);
          const key = new AesGcmKey(keyBytes);
          const actual = key.encrypt(iv, plaintext, aad);
          assert.deepEqual(actual.ciphertext, expected.ciphertext);
          assert.deepEqual(actual.tag, expected.tag);
          assert.deepEqual(
            key.decrypt(iv, actual.ciphertext, actual.tag, aad),
            Buffer.from(plaintext),
          );
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("keeps matching node:crypto over many messages under one key, encryptions and decryptions interleaved", () => {
    const rng = seededRng(7);
    const keyBytes = rng.bytes(32);
    const key = new AesGcmKey(keyBytes);
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 300 }),
        (iv, plaintext, aad) => {
          const expected = nodeEncrypt(keyBytes, iv, plaintext, aad);
          assert.deepEqual(
            key.decrypt(iv, expected.ciphertext, expected.tag, aad),
            Buffer.from(plaintext),
          );
          const actual = key.encrypt(iv, plaintext, aad);
          assert.deepEqual(actual.ciphertext, expected.ciphertext);
          assert.deepEqual(actual.tag, expected.tag);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("decrypts a prepared batch, whatever order the decryptions come in, as without preparing", () => {
    // prepare computes the batch's keystreams at once; decrypt takes them while it follows the
    // list, and anything else (another order, a different size, a skipped message, a forgery)
    // falls back to computing its own. Every outcome must be what node's cipher says.
    const rng = seededRng(11);
    const keyBytes = rng.bytes(32);
    const key = new AesGcmKey(keyBytes);
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            seed: fc.integer({ min: 0, max: 2 ** 30 }),
            size: fc.integer({ min: 0, max: 600 }),
            aadSize: fc.integer({ min: 0, max: 200 }),
          }),
          { minLength: 0, maxLength: 12 },
        ),
        fc.array(fc.integer({ min: 0, max: 11 }), { maxLength: 14 }),
        fc.integer({ min: -1, max: 11 }),
        (specs, order, forged) => {
          const messages = specs.map((m) => {
            const r = seededRng(m.seed);
            const iv = r.bytes(12);
            const plaintext = r.bytes(m.size);
            const aad = r.bytes(m.aadSize);
            return { iv, plaintext, aad, ...nodeEncrypt(keyBytes, iv, plaintext, aad) };
          });
          key.prepare(
            messages.map((m) => ({
              iv: m.iv,
              textLength: m.plaintext.length,
              aadLength: m.aad.length,
            })),
          );
          // The prepared order first (as replication uses it), then arbitrary picks.
          const picks = [...messages.keys(), ...order.filter((i) => i < messages.length)];
          for (const [n, i] of picks.entries()) {
            const m = messages[i];
            if (n === forged) {
              const tag = flipBit(m.tag, 5);
              assert.throws(() => key.decrypt(m.iv, m.ciphertext, tag, m.aad), DECRYPTION_FAILED);
              continue;
            }
            assert.deepEqual(
              key.decrypt(m.iv, m.ciphertext, m.tag, m.aad),
              Buffer.from(m.plaintext),
            );
          }
          key.dropAhead();
        },
      ),
      { numRuns: 500 },
    );
  });

  it("uses a prepared batch out of order only by computing afresh", () => {
    const rng = seededRng(12);
    const keyBytes = rng.bytes(32);
    const key = new AesGcmKey(keyBytes);
    const messages = [0, 1, 2].map(() => {
      const iv = rng.bytes(12);
      const plaintext = rng.bytes(40);
      const aad = rng.bytes(100);
      return { iv, plaintext, aad, ...nodeEncrypt(keyBytes, iv, plaintext, aad) };
    });
    key.prepare(messages.map((m) => ({ iv: m.iv, textLength: 40, aadLength: 100 })));
    // The second message first: it does not follow the list, so the list is dropped.
    const [m0, m1, m2] = messages as [
      (typeof messages)[0],
      (typeof messages)[0],
      (typeof messages)[0],
    ];
    assert.deepEqual(key.decrypt(m1.iv, m1.ciphertext, m1.tag, m1.aad), Buffer.from(m1.plaintext));
    assert.deepEqual(key.decrypt(m0.iv, m0.ciphertext, m0.tag, m0.aad), Buffer.from(m0.plaintext));
    assert.deepEqual(key.decrypt(m2.iv, m2.ciphertext, m2.tag, m2.aad), Buffer.from(m2.plaintext));
  });

  it("matches node:crypto for long messages (node's own cipher) and around the switch to it", () => {
    const rng = seededRng(8);
    const keyBytes = rng.bytes(32);
    const key = new AesGcmKey(keyBytes);
    const around = [];
    for (let size = 480; size <= 530; size++) around.push(size);
    for (const size of [...around, 1007, 1008, 1009, 1024, 5000, 70_000]) {
      const iv = rng.bytes(12);
      const plaintext = rng.bytes(size);
      const aad = rng.bytes(size <= 530 ? size % 40 : size % 301);
      const expected = nodeEncrypt(keyBytes, iv, plaintext, aad);
      const actual = key.encrypt(iv, plaintext, aad);
      assert.deepEqual(actual.ciphertext, expected.ciphertext, `ciphertext of ${size} bytes`);
      assert.deepEqual(actual.tag, expected.tag, `tag of ${size} bytes`);
      assert.deepEqual(key.decrypt(iv, actual.ciphertext, actual.tag, aad), Buffer.from(plaintext));
    }
  });

  it("refuses an entry with any single bit of its ciphertext, tag, AAD or IV flipped", () => {
    const rng = seededRng(9);
    const key = new AesGcmKey(rng.bytes(32));
    const iv = rng.bytes(12);
    const aad = rng.bytes(160);
    const { ciphertext, tag } = key.encrypt(iv, rng.bytes(70), aad);
    for (let bit = 0; bit < ciphertext.length * 8; bit++) {
      assert.throws(() => key.decrypt(iv, flipBit(ciphertext, bit), tag, aad), DECRYPTION_FAILED);
    }
    for (let bit = 0; bit < tag.length * 8; bit++) {
      assert.throws(() => key.decrypt(iv, ciphertext, flipBit(tag, bit), aad), DECRYPTION_FAILED);
    }
    for (let bit = 0; bit < aad.length * 8; bit++) {
      assert.throws(() => key.decrypt(iv, ciphertext, tag, flipBit(aad, bit)), DECRYPTION_FAILED);
    }
    for (let bit = 0; bit < iv.length * 8; bit++) {
      assert.throws(() => key.decrypt(flipBit(iv, bit), ciphertext, tag, aad), DECRYPTION_FAILED);
    }
  });

  it("refuses a random message with a random bit of its ciphertext, tag, AAD or IV flipped", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.constantFrom("ciphertext", "tag", "aad", "iv"),
        fc.nat(),
        (keyBytes, iv, plaintext, aad, field, position) => {
          const key = new AesGcmKey(keyBytes);
          const sealed = key.encrypt(iv, plaintext, aad);
          const parts: Record<typeof field, Uint8Array> = {
            ciphertext: sealed.ciphertext,
            tag: sealed.tag,
            aad,
            iv,
          };
          fc.pre(parts[field].length > 0);
          parts[field] = flipBit(parts[field], position % (parts[field].length * 8));
          assert.throws(
            () => key.decrypt(parts.iv, parts.ciphertext, parts.tag, parts.aad),
            DECRYPTION_FAILED,
          );
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("refuses a ciphertext under a different key, a missing AAD or a short tag", () => {
    const rng = seededRng(10);
    const keyBytes = rng.bytes(32);
    const iv = rng.bytes(12);
    const aad = rng.bytes(20);
    const key = new AesGcmKey(keyBytes);
    const { ciphertext, tag } = key.encrypt(iv, rng.bytes(40), aad);
    const otherKey = new AesGcmKey(flipBit(keyBytes, 255));
    assert.throws(() => otherKey.decrypt(iv, ciphertext, tag, aad), DECRYPTION_FAILED);
    assert.throws(() => key.decrypt(iv, ciphertext, tag), DECRYPTION_FAILED);
    assert.throws(() => key.decrypt(iv, ciphertext, tag.subarray(0, 12), aad), DECRYPTION_FAILED);
  });

  it("treats a missing AAD as an empty one, as GCM defines", () => {
    const rng = seededRng(12);
    const key = new AesGcmKey(rng.bytes(32));
    const iv = rng.bytes(12);
    const plaintext = rng.bytes(33);
    const withEmpty = key.encrypt(iv, plaintext, new Uint8Array(0));
    assert.deepEqual(key.encrypt(iv, plaintext), withEmpty);
    assert.deepEqual(key.decrypt(iv, withEmpty.ciphertext, withEmpty.tag), Buffer.from(plaintext));
  });

  it("leaves no keystream or tag mask in the memory behind the ciphertext", () => {
    const rng = seededRng(13);
    const key = new AesGcmKey(rng.bytes(32));
    const { ciphertext } = key.encrypt(rng.bytes(12), rng.bytes(70), rng.bytes(160));
    const behind = new Uint8Array(ciphertext.buffer, ciphertext.byteOffset + ciphertext.length);
    assert.ok(behind.every((b) => b === 0));
  });

  it("refuses keys and IVs of the wrong size", () => {
    assert.throws(() => new AesGcmKey(new Uint8Array(16)), {
      name: "CryptoError",
      code: "InvalidKey",
    });
    assert.throws(() => new AesGcmKey(new Uint8Array(33)), CryptoError);
    const key = new AesGcmKey(new Uint8Array(32));
    assert.throws(() => key.encrypt(new Uint8Array(16), new Uint8Array(1)), {
      name: "CryptoError",
      code: "InvalidIv",
    });
    assert.throws(() => key.decrypt(new Uint8Array(8), new Uint8Array(1), new Uint8Array(16)), {
      name: "CryptoError",
      code: "InvalidIv",
    });
  });
});
