// The specialised interior-node SHA-256, checked against node:crypto.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { createHash, createHmac } from "node:crypto";
import {
  bytesFromWords,
  HmacSha256,
  hashPair,
  sha256,
  wordsFromBytes,
} from "../../src/crypto/index.js";

const nodeSha256 = (...parts: Uint8Array[]) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
};

describe("hashPair", () => {
  it("equals node:crypto's SHA-256 of the two digests concatenated", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (l, r) => {
          const words = new Int32Array(24);
          wordsFromBytes(l, words, 0);
          wordsFromBytes(r, words, 8);
          hashPair(words, 0, words, 8, words, 16);
          assert.deepEqual(bytesFromWords(words, 16), nodeSha256(l, r));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("hashes the all-zero and all-one pairs (carry and sign edge cases)", () => {
    for (const fill of [0x00, 0xff, 0x80, 0x7f]) {
      const d = Buffer.alloc(32, fill);
      const words = new Int32Array(16);
      wordsFromBytes(d, words, 0);
      wordsFromBytes(d, words, 8);
      hashPair(words, 0, words, 8, words, 0);
      assert.deepEqual(bytesFromWords(words, 0), nodeSha256(d, d));
    }
  });

  it("may write over either input", () => {
    const l = nodeSha256(Buffer.from("l"));
    const r = nodeSha256(Buffer.from("r"));
    const words = new Int32Array(16);
    wordsFromBytes(l, words, 0);
    wordsFromBytes(r, words, 8);
    hashPair(words, 0, words, 8, words, 8);
    assert.deepEqual(bytesFromWords(words, 8), nodeSha256(l, r));
  });
});

describe("sha256 and keyed HMAC", () => {
  it("sha256 of several parts equals the hash of their concatenation, small or large", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 4 }), (parts) => {
        assert.deepEqual(sha256(...parts), nodeSha256(Buffer.concat(parts)));
      }),
    );
  });

  it("HMAC with prepared pads equals node:crypto's HMAC for any key and message", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 100 }),
        fc.uint8Array({ maxLength: 200 }),
        (key, msg) => {
          const expected = createHmac("sha256", key).update(msg).digest();
          const mac = new HmacSha256(key);
          assert.deepEqual(mac.mac(msg), expected);
          assert.deepEqual(mac.mac(msg), expected, "a second MAC under the same key is unaffected");
        },
      ),
    );
  });
});

describe("HMAC from prepared pad states", () => {
  it("HMAC at every message length around the block boundaries", () => {
    const key = Buffer.from("a commit secret of thirty-two b!");
    const mac = new HmacSha256(key);
    for (let n = 0; n <= 260; n++) {
      const msg = Buffer.alloc(n, n & 0xff);
      assert.deepEqual(mac.mac(msg), createHmac("sha256", key).update(msg).digest(), `${n}`);
    }
  });
});
