// Byte-level compatibility with CCF: the serialised trees, signature entries, roots and signatures
// in ledgers CCF 6 wrote.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { describe, it } from "node:test";
import { p384 } from "@noble/curves/p384.js";
import {
  MerkleTree,
  buildReceipt,
  decodePrimarySignature,
  encodePrimarySignature,
  foldProof,
  leafDigest,
  verifyReceipt,
} from "../../src/merkle/index.js";
import { readFixtureLedger } from "./ccf-ledger.js";
import { sha256 } from "./reference.js";

const ZERO = "00".repeat(32);

// `public:ccf.internal.tree` as CCF wrote it at four signature transactions, with the root each
// signed.
const TREES = [
  {
    seqno: 2,
    bytes: `0000000000000002 0000000000000000 ${ZERO} df26060795a046d1fca076d54908fd0123962c9842d62f88b5ec591ba0732803`,
    root: "560e72c2db78020d6322854e59dbc69ed34f718e93ba377031d32e0247c3f65e",
  },
  {
    seqno: 4,
    bytes:
      "0000000000000002 0000000000000002 af8d7ba088f268a35164a2c73779be962775c4d2973662988e4d5c476a39676a " +
      "be5aea8daa92739bc05228eaf98397cc47cdc2751afec1bfe9012b976a6ca48f 560e72c2db78020d6322854e59dbc69ed34f718e93ba377031d32e0247c3f65e",
    root: "e09825de7dca55ce1585c31610e20973f024163ee297c965deb2198eb6a3bedc",
  },
  {
    seqno: 16,
    bytes:
      "0000000000000002 000000000000000e 42d2afbe8f87eaa91f35d2795bb70cf07f80f09b2ed5fd2a9027a210efe4a030 " +
      "f1e48ff93543c7e82ff008585a6b10e3c76601f08783c868c20538350d7084f3 81152903a79ef942f2ca018f815d60b1517434da4555cff31f6c61691c310e60 " +
      "b726053b166eb365b2d7efb9a8cc53beae5f510b6469f5a1aaf1834f40f0ce57 5db0ec23915fcb0201cccad120cf436dd5c1ba51bdae744b2ae113e2c19de60d",
    root: "e05d50857029a0ae4f86b9563239b5b1f2097b76108e692034b16358221cea97",
  },
  {
    seqno: 18,
    bytes:
      "0000000000000002 0000000000000010 bc3ec22b000db0f5d56fd5eaa9ca35df4d390c7020cf0437d6b1b2ddc772affa " +
      "520d2e9a61bac7ea344c60b5c31563cd2f6ce3474e8680d44029e8cad13a9aaa e05d50857029a0ae4f86b9563239b5b1f2097b76108e692034b16358221cea97",
    root: "4ace52837fc96e657d7ed45d17a688de8d330a9e09158ab687a1a893a08e688e",
  },
].map((t) => ({ ...t, bytes: Buffer.from(t.bytes.replaceAll(" ", ""), "hex") }));

const publicKeys = new Map<string, Uint8Array>();

function pubKeyOf(certPem: string): Uint8Array {
  const known = publicKeys.get(certPem);
  if (known !== undefined) return known;
  const jwk = new X509Certificate(certPem).publicKey.export({ format: "jwk" });
  assert.equal(jwk.crv, "P-384");
  const key = Buffer.concat([
    Buffer.from([4]),
    Buffer.from(jwk.x ?? "", "base64url"),
    Buffer.from(jwk.y ?? "", "base64url"),
  ]);
  publicKeys.set(certPem, key);
  return key;
}

const verifyDigest = (certPem: string, digest: Uint8Array, der: Uint8Array): boolean =>
  p384.verify(der, digest, pubKeyOf(certPem), { prehash: false, format: "der" });

describe("CCF's serialised trees", () => {
  for (const { seqno, bytes, root } of TREES) {
    it(`reads the tree written at seqno ${seqno} back to the root signed there, and writes the same bytes`, () => {
      const tree = MerkleTree.deserialise(bytes);
      assert.equal(tree.size, seqno);
      assert.equal(tree.root().toString("hex"), root);
      assert.deepEqual(tree.serialise(), bytes);
    });
  }

  it("builds the seqno 2 and 4 trees from their leaves and serialises them from CCF's flush points", () => {
    const tree = new MerkleTree();
    for (const i of [0, 1]) tree.append(TREES[0].bytes.subarray(16 + 32 * i, 48 + 32 * i));
    assert.deepEqual(tree.serialise(0, 2), TREES[0].bytes);
    for (const i of [0, 1]) tree.append(TREES[1].bytes.subarray(16 + 32 * i, 48 + 32 * i));
    assert.equal(tree.root().toString("hex"), TREES[1].root);
    assert.deepEqual(tree.serialise(2, 4), TREES[1].bytes);
  });

  it("extends the seqno 16 tree with the leaves held at 18 into the seqno 18 tree", () => {
    const tree = MerkleTree.deserialise(TREES[2].bytes);
    for (const i of [0, 1]) tree.append(TREES[3].bytes.subarray(16 + 32 * i, 48 + 32 * i));
    assert.equal(tree.root().toString("hex"), TREES[3].root);
    assert.deepEqual(tree.serialise(16, 18), TREES[3].bytes);
  });
});

describe("ledgers written by CCF 6", () => {
  for (const service of ["cose_flipflop_service", "double_sealed_service"]) {
    it(`${service}: recomputes every signed root, signature entry and serialised tree byte for byte`, () => {
      const tree = new MerkleTree();
      tree.append(Buffer.alloc(32));
      let signatures = 0;
      let lastSignature = 0;
      for (const entry of readFixtureLedger(service)) {
        assert.equal(entry.seqno, tree.size);
        const sigBytes = entry.writes
          .get("public:ccf.internal.signatures")
          ?.get("0000000000000000");
        if (sigBytes !== undefined) {
          const sig = decodePrimarySignature(sigBytes);
          assert.deepEqual(encodePrimarySignature(sig), sigBytes);
          assert.equal(sig.seqno, entry.seqno);
          assert.equal(sig.view, entry.view);
          assert.equal(sig.root, tree.root().toString("hex"));
          assert.ok(sig.cert !== undefined);

          const treeBytes = entry.writes.get("public:ccf.internal.tree")?.get("0000000000000000");
          assert.ok(treeBytes !== undefined);
          const signedTree = MerkleTree.deserialise(treeBytes);
          assert.equal(signedTree.root().toString("hex"), sig.root);
          // CCF serialises from the point it flushed to: the last signature known committed.
          assert.ok(signedTree.minIndex <= lastSignature);
          assert.deepEqual(tree.serialise(signedTree.minIndex, entry.seqno), treeBytes);

          // Every transaction since the previous signature is proved under this root.
          for (let s = Math.max(1, lastSignature); s < entry.seqno; s++) {
            assert.equal(foldProof(tree.leaf(s), tree.path(s)).toString("hex"), sig.root);
          }
          // P-384 verification is slow in pure JS: check all of the small service, a sample of the
          // other.
          if (service === "cose_flipflop_service" || signatures % 8 === 0) {
            const receipt = buildReceipt({
              proof: [],
              signature: { sig: sig.sig, node: sig.node, cert: sig.cert },
              root: sig.root,
            });
            assert.ok(verifyReceipt(receipt, verifyDigest));
          }
          signatures += 1;
          lastSignature = entry.seqno;
        }
        tree.append(
          leafDigest(
            entry.entryType,
            sha256(entry.raw),
            entry.commitEvidenceDigest,
            entry.claimsDigest,
          ),
        );
      }
      assert.equal(signatures, service === "cose_flipflop_service" ? 23 : 154);
    });
  }
});
