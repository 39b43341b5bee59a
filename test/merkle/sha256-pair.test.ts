// The specialised interior-node SHA-256, checked against node:crypto.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { bytesFromWords, hashPair, wordsFromBytes } from "../../src/merkle/sha256-pair.js";
import { sha256 } from "./reference.js";

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
          assert.deepEqual(bytesFromWords(words, 16), sha256(l, r));
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
      assert.deepEqual(bytesFromWords(words, 0), sha256(d, d));
    }
  });

  it("may write over either input", () => {
    const l = sha256(Buffer.from("l"));
    const r = sha256(Buffer.from("r"));
    const words = new Int32Array(16);
    wordsFromBytes(l, words, 0);
    wordsFromBytes(r, words, 8);
    hashPair(words, 0, words, 8, words, 8);
    assert.deepEqual(bytesFromWords(words, 8), sha256(l, r));
  });
});
