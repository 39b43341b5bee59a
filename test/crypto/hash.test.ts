import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  fromHex,
  hmacSha256,
  seededRng,
  sha256,
  sha384,
  systemRng,
  toHex,
} from "../../src/crypto/index.js";
import { FormatError } from "../../src/errors.js";

describe("hashes", () => {
  it("match the FIPS 180-2 digests of 'abc'", () => {
    assert.equal(
      toHex(sha256(Buffer.from("abc"))),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    assert.equal(
      toHex(sha384(Buffer.from("abc"))),
      "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
    );
  });

  it("hash several parts as their concatenation", () => {
    assert.deepEqual(sha256(Buffer.from("a"), Buffer.from("bc")), sha256(Buffer.from("abc")));
  });

  it("match RFC 4231 test case 2 for HMAC-SHA-256", () => {
    const mac = hmacSha256(Buffer.from("Jefe"), Buffer.from("what do ya want for nothing?"));
    assert.equal(toHex(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  });
});

describe("hex", () => {
  it("round-trips bytes, including a subarray of a larger buffer", () => {
    const big = Buffer.from("00ff10abcd", "hex");
    assert.equal(toHex(big.subarray(1, 4)), "ff10ab");
    assert.deepEqual(fromHex("00FF10abcd"), big);
  });

  it("refuses odd-length and non-hex strings", () => {
    assert.throws(() => fromHex("abc"), FormatError);
    assert.throws(() => fromHex("zz"), FormatError);
    assert.throws(() => fromHex("0g"), FormatError);
  });
});

describe("rng", () => {
  it("gives the same stream for the same seed, however it is split", () => {
    const a = seededRng(42);
    const b = seededRng(42);
    const whole = b.bytes(80);
    const parts = Buffer.concat([a.bytes(5), a.bytes(40), a.bytes(0), a.bytes(35)]);
    assert.deepEqual(parts, Buffer.from(whole));
  });

  it("gives different streams for different seeds", () => {
    assert.notDeepEqual(seededRng(1).bytes(32), seededRng(2).bytes(32));
    assert.notDeepEqual(seededRng(new Uint8Array([1])).bytes(32), seededRng(1).bytes(32));
  });

  it("system rng returns the requested number of bytes", () => {
    assert.equal(systemRng.bytes(17).length, 17);
  });
});
