// The primary signature entry of public:ccf.internal.signatures: exact encoding, decoding, refusal
// of bad input.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { FormatError } from "../../src/errors.js";
import {
  type PrimarySignature,
  decodePrimarySignature,
  encodePrimarySignature,
  newPrimarySignature,
} from "../../src/merkle/index.js";

const CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const ROOT = "e05d50857029a0ae4f86b9563239b5b1f2097b76108e692034b16358221cea97";
const NODE = "fac07a156b829456395d32ca1334c2f0d90e85b3eedc3c162739c4825cc9d63f";

const example: PrimarySignature = {
  view: 2,
  sig: "MGUCMA==",
  seqno: 16,
  root: ROOT,
  node: NODE,
  hashed_nonce: "0".repeat(64),
  commit_view: 0,
  commit_seqno: 0,
  cert: CERT,
};

describe("PrimarySignature", () => {
  it("encodes as CCF does: compact JSON, keys in alphabetical order", () => {
    assert.equal(
      encodePrimarySignature(example).toString("utf8"),
      `{"cert":"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n","commit_seqno":0,"commit_view":0,` +
        `"hashed_nonce":"${"0".repeat(64)}","node":"${NODE}","root":"${ROOT}","seqno":16,"sig":"MGUCMA==","view":2}`,
    );
  });

  it("builds a primary's signature with CCF's fixed deprecated fields", () => {
    const sig = newPrimarySignature({
      cert: CERT,
      node: NODE,
      view: 2,
      seqno: 16,
      root: Buffer.from(ROOT, "hex"),
      sig: Buffer.from("MGUCMA==", "base64"),
    });
    assert.deepEqual(encodePrimarySignature(sig), encodePrimarySignature(example));
  });

  it("decodes what it encodes, in canonical key order whatever the input order", () => {
    fc.assert(
      fc.property(
        fc.record({
          cert: fc.option(fc.string(), { nil: undefined }),
          commit_seqno: fc.nat(),
          commit_view: fc.nat(),
          hashed_nonce: fc
            .uint8Array({ minLength: 32, maxLength: 32 })
            .map((b) => Buffer.from(b).toString("hex")),
          node: fc.string(),
          root: fc
            .uint8Array({ minLength: 32, maxLength: 32 })
            .map((b) => Buffer.from(b).toString("hex")),
          seqno: fc.maxSafeNat(),
          sig: fc.uint8Array({ maxLength: 104 }).map((b) => Buffer.from(b).toString("base64")),
          view: fc.nat(),
        }),
        (value) => {
          const sig: PrimarySignature = { ...value };
          if (sig.cert === undefined) delete sig.cert;
          const bytes = encodePrimarySignature(sig);
          assert.deepEqual(decodePrimarySignature(bytes), sig);
          const shuffled = Buffer.from(
            JSON.stringify(Object.fromEntries(Object.entries(sig).reverse())),
          );
          assert.deepEqual(encodePrimarySignature(decodePrimarySignature(shuffled)), bytes);
        },
      ),
    );
  });

  it("refuses malformed entries with FormatError", () => {
    const variants: unknown[] = [
      [],
      null,
      { ...example, root: "zz" },
      { ...example, hashed_nonce: undefined },
      { ...example, seqno: -1 },
      { ...example, view: 1.5 },
      { ...example, sig: "not base64!" },
      { ...example, node: 7 },
      { ...example, cert: 7 },
    ];
    for (const v of variants) {
      assert.throws(
        () => decodePrimarySignature(Buffer.from(JSON.stringify(v))),
        FormatError,
        JSON.stringify(v),
      );
    }
    assert.throws(() => decodePrimarySignature(Buffer.from("{")), FormatError);
    assert.throws(() => decodePrimarySignature(Buffer.from([0xff, 0xfe])), FormatError);
    assert.throws(() => encodePrimarySignature({ ...example, root: "00" }), RangeError);
  });
});
