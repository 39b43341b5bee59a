import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Tag } from "cbor-x";
import fc from "fast-check";
import {
  COSE_ALG,
  type CoseHeaders,
  cborDecode,
  cborEncode,
  coseSign1Decode,
  coseSign1Sign,
  coseSign1Verify,
  EcKeyPair,
  fromHex,
  nodeIdFromPublicKey,
  seededRng,
} from "../../src/crypto/index.js";
import { FormatError } from "../../src/errors.js";
import { fixture, ROOT_AT_16 } from "./fixtures.js";

// The COSE_Sign1 CCF wrote at seqno 16 (public:ccf.internal.cose_signatures), payload detached.
const CCF_COSE_SIGN1 =
  "0oRYjKUBOCIEWEBkZjc3ODc1ZGE1NDUyZDVkNGViY2EyZTkwYzY0NGZiZGU5ZmY5NmI5MmJjNjU1YTg5OWZkYzkxNzE2NDFmZmRiGQGLAg+jBhpoJGSXAXNzZXJ2aWNlLmV4YW1wbGUuY29tAnBsZWRnZXIuc2lnbmF0dXJlZmNjZi52MaFkdHhpZGQyLjE2oPZYYETvlfLkiGjzvFfO+PKcEvOMap3SyErD9pp8Z+7/NIulfOWByQYYkIjTFr14UVxVWA0jDC+l4F620/yyafUC5YqzQDsEOFITGrsnrCu1fy+AdocIEOxc7+XP5ZDTGD4nGg==";

const key = EcKeyPair.generate("secp384r1", seededRng(21));
const payload = Buffer.from("merkle root or anything else");
const headers = (): CoseHeaders =>
  new Map<number | string, unknown>([
    [4, Buffer.from("kid")],
    ["ccf.v1", new Map([["txid", "2.16"]])],
  ]);

function tamper(bytes: Uint8Array, index: number): Buffer {
  const out = Buffer.from(bytes);
  out[index] = (out[index] ?? 0) ^ 0x01;
  return out;
}

describe("COSE_Sign1 written by CCF", () => {
  const bytes = Buffer.from(CCF_COSE_SIGN1, "base64");
  const serviceCert = fixture("service_cert.pem");

  it("decodes with CCF's protected headers and a detached payload", () => {
    const msg = coseSign1Decode(bytes);
    const h = msg.protectedHeaders;
    assert.equal(h.get(1), COSE_ALG.ES384);
    assert.equal(
      Buffer.from(h.get(4) as Uint8Array).toString("ascii"),
      nodeIdFromPublicKey(serviceCert),
    );
    assert.equal(h.get(395), 2);
    const cwt = h.get(15) as Map<number, unknown>;
    assert.ok(cwt instanceof Map);
    assert.equal(cwt.get(1), "service.example.com");
    assert.equal(cwt.get(2), "ledger.signature");
    assert.equal(typeof cwt.get(6), "number");
    assert.deepEqual(h.get("ccf.v1"), new Map([["txid", "2.16"]]));
    assert.equal(msg.unprotectedHeaders.size, 0);
    assert.equal(msg.payload, null);
    assert.equal(msg.signature.length, 96);
  });

  it("verifies over the Merkle root under the service certificate's key", () => {
    assert.equal(coseSign1Verify(bytes, serviceCert, fromHex(ROOT_AT_16)), true);
    assert.equal(coseSign1Verify(coseSign1Decode(bytes), serviceCert, fromHex(ROOT_AT_16)), true);
  });

  it("fails with another root, no payload, or another key", () => {
    assert.equal(coseSign1Verify(bytes, serviceCert, tamper(fromHex(ROOT_AT_16), 0)), false);
    assert.equal(coseSign1Verify(bytes, serviceCert), false);
    assert.equal(coseSign1Verify(bytes, fixture("member0_cert.pem"), fromHex(ROOT_AT_16)), false);
  });
});

describe("COSE_Sign1 signing", () => {
  it("round-trips an attached payload, adding alg ES384 first for a P-384 key", () => {
    const bytes = coseSign1Sign({ key, protectedHeaders: headers(), payload });
    assert.equal(bytes[0], 0xd2, "tagged COSE_Sign1 (tag 18)");
    const msg = coseSign1Decode(bytes);
    assert.deepEqual([...msg.protectedHeaders.keys()], [1, 4, "ccf.v1"]);
    assert.equal(msg.protectedHeaders.get(1), COSE_ALG.ES384);
    assert.deepEqual(msg.payload, payload);
    assert.equal(coseSign1Verify(bytes, key.publicKey), true);
    assert.equal(coseSign1Verify(bytes, key.publicKeyPem, payload), true);
    assert.equal(coseSign1Verify(bytes, key.publicKey, Buffer.from("other")), false);
  });

  it("round-trips a detached payload, leaving nil in the payload slot", () => {
    const bytes = coseSign1Sign({ key, protectedHeaders: headers(), payload, detached: true });
    assert.equal(coseSign1Decode(bytes).payload, null);
    assert.equal(coseSign1Verify(bytes, key.publicKey, payload), true);
    assert.equal(coseSign1Verify(bytes, key.publicKey), false);
  });

  it("uses ES256 for a P-256 key and refuses an alg that does not fit the key", () => {
    const p256 = EcKeyPair.generate("secp256r1", seededRng(22));
    const bytes = coseSign1Sign({ key: p256, protectedHeaders: new Map(), payload });
    assert.equal(coseSign1Decode(bytes).protectedHeaders.get(1), COSE_ALG.ES256);
    assert.equal(coseSign1Verify(bytes, p256.publicKey), true);
    assert.throws(
      () => coseSign1Sign({ key: p256, protectedHeaders: new Map([[1, COSE_ALG.ES384]]), payload }),
      {
        code: "KeyMismatch",
      },
    );
  });

  it("is deterministic and carries unprotected headers unsigned", () => {
    const unprotectedHeaders = new Map<number | string, unknown>([[33, "x"]]);
    const a = coseSign1Sign({ key, protectedHeaders: headers(), unprotectedHeaders, payload });
    const b = coseSign1Sign({ key, protectedHeaders: headers(), unprotectedHeaders, payload });
    assert.deepEqual(a, b);
    assert.equal(coseSign1Decode(a).unprotectedHeaders.get(33), "x");
  });

  it("fails verification when the payload, a protected header or the signature is tampered", () => {
    const msg = coseSign1Decode(coseSign1Sign({ key, protectedHeaders: headers(), payload }));
    const withPayload = { ...msg, payload: tamper(payload, 3) };
    const reHeaders = new Map(msg.protectedHeaders);
    reHeaders.set("ccf.v1", new Map([["txid", "2.17"]]));
    const withHeaders = {
      ...msg,
      protectedBytes: cborEncode(reHeaders),
      protectedHeaders: reHeaders,
    };
    const withSignature = { ...msg, signature: tamper(msg.signature, 50) };
    assert.equal(coseSign1Verify(msg, key.publicKey), true);
    assert.equal(coseSign1Verify(withPayload, key.publicKey), false);
    assert.equal(coseSign1Verify(withHeaders, key.publicKey), false);
    assert.equal(coseSign1Verify(withSignature, key.publicKey), false);
  });

  it("accepts an untagged COSE_Sign1", () => {
    const msg = coseSign1Decode(coseSign1Sign({ key, protectedHeaders: headers(), payload }));
    const untagged = cborEncode([
      msg.protectedBytes,
      msg.unprotectedHeaders,
      msg.payload,
      msg.signature,
    ]);
    assert.notEqual(untagged[0], 0xd2);
    assert.equal(coseSign1Verify(untagged, key.publicKey), true);
  });
});

describe("COSE_Sign1 decoding", () => {
  const good = coseSign1Decode(coseSign1Sign({ key, protectedHeaders: headers(), payload }));

  it("names what is wrong with a malformed message", () => {
    const cases: [unknown, RegExp][] = [
      [new Tag([], 98), /unexpected tag 98/],
      [new Map(), /not an array of 4/],
      [[good.protectedBytes, good.unprotectedHeaders, good.payload], /not an array of 4/],
      [
        ["x", good.unprotectedHeaders, good.payload, good.signature],
        /protected headers are not a byte string/,
      ],
      [
        [cborEncode([1]), good.unprotectedHeaders, good.payload, good.signature],
        /protected headers are not a map/,
      ],
      [
        [good.protectedBytes, [], good.payload, good.signature],
        /unprotected headers are not a map/,
      ],
      [
        [good.protectedBytes, new Map([[1.5, 0]]), good.payload, good.signature],
        /neither an integer nor a string/,
      ],
      [[good.protectedBytes, good.unprotectedHeaders, "text", good.signature], /payload/],
      [
        [good.protectedBytes, good.unprotectedHeaders, good.payload, null],
        /signature is not a byte string/,
      ],
    ];
    for (const [value, message] of cases) {
      assert.throws(
        () => coseSign1Decode(cborEncode(value)),
        (e: unknown) => e instanceof FormatError && message.test(e.message),
      );
    }
    assert.throws(() => coseSign1Decode(Buffer.from([0xd2])), FormatError);
    assert.throws(
      () => coseSign1Decode(Buffer.concat([cborEncode(1), Buffer.from([0])])),
      FormatError,
    );
  });

  it("never throws anything but FormatError on random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        try {
          coseSign1Decode(bytes);
        } catch (e) {
          if (!(e instanceof FormatError)) throw e;
        }
        assert.equal(typeof coseSign1Verify(bytes, key.publicKey, payload), "boolean");
      }),
      { numRuns: 2000 },
    );
  });

  it("never throws anything but FormatError on mutations of a valid message", () => {
    const valid = coseSign1Sign({ key, protectedHeaders: headers(), payload });
    fc.assert(
      fc.property(
        fc.nat(valid.length - 1),
        fc.integer({ min: 1, max: 255 }),
        fc.nat(valid.length),
        (at, xor, cut) => {
          const bytes = Buffer.from(valid).subarray(0, Math.max(cut, at + 1));
          bytes[at] = (bytes[at] ?? 0) ^ xor;
          try {
            coseSign1Decode(bytes);
          } catch (e) {
            if (!(e instanceof FormatError)) throw e;
          }
          assert.equal(coseSign1Verify(bytes, key.publicKey), false);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe("CBOR codec", () => {
  it("keeps integer map keys, untagged byte strings and Maps as COSE needs", () => {
    const value = new Map<number | string, unknown>([
      [1, -35],
      [4, new Uint8Array([1, 2])],
      ["s", new Map([[2, "x"]])],
    ]);
    const bytes = cborEncode(value);
    // a3 {1: -35 (38 22), 4: h'0102' (42 01 02), "s": {2: "x"}}: no tag 64 or 259, keys stay integers.
    assert.equal(bytes.toString("hex"), "a3013822044201026173a1026178");
    assert.deepEqual(
      cborDecode(bytes),
      new Map<number | string, unknown>([
        [1, -35],
        [4, Buffer.from([1, 2])],
        ["s", new Map([[2, "x"]])],
      ]),
    );
  });

  it("throws FormatError on malformed CBOR", () => {
    assert.throws(() => cborDecode(Buffer.from([0x82, 0x01])), FormatError);
    assert.throws(() => cborDecode(new Uint8Array(0)), FormatError);
  });
});
