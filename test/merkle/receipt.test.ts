// JSON receipts: building them in CCF's shape and verifying them, with signatures made by noble in
// the test.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { p384 } from "@noble/curves/p384.js";
import { FormatError } from "../../src/errors.js";
import {
  MerkleTree,
  type Receipt,
  type TxReceipt,
  buildReceipt,
  commitEvidence,
  commitEvidenceDigest,
  commitSecret,
  leafDigest,
  receiptRoot,
  verifyReceipt,
} from "../../src/merkle/index.js";
import { sha256 } from "./reference.js";

// The test stands in for the crypto module: "certificates" are names mapped to P-384 keys, and
// "issued by" is a table.
const keys = new Map<string, Uint8Array>();
function nodeCert(name: string): string {
  const priv = sha256(Buffer.from(name)).subarray(0, 32);
  const scalar = Buffer.concat([Buffer.alloc(16), priv]);
  keys.set(name, scalar);
  return name;
}
const verifyDigest = (cert: string, digest: Uint8Array, der: Uint8Array): boolean => {
  const priv = keys.get(cert);
  return (
    priv !== undefined &&
    p384.verify(der, digest, p384.getPublicKey(priv), { prehash: false, format: "der" })
  );
};
const signRoot = (cert: string, root: Uint8Array): string => {
  const priv = keys.get(cert);
  assert.ok(priv !== undefined);
  return Buffer.from(p384.sign(root, priv, { prehash: false }).toBytes("der")).toString("base64");
};

const NODE = nodeCert("node 1");
const secret = commitSecret(Buffer.alloc(32, 1));

interface Tx {
  writeSetDigest: Buffer;
  commitEvidence: string;
  claimsDigest?: Buffer;
}

/**
 * A ledger of `count` transactions in view 2 after leaf 0, and the signature at seqno count + 1.
 */
function ledger(count: number) {
  const tree = new MerkleTree();
  tree.append(Buffer.alloc(32));
  const txs: Tx[] = [];
  for (let seqno = 1; seqno <= count; seqno++) {
    const tx: Tx = {
      writeSetDigest: sha256(Buffer.from(`entry ${seqno}`)),
      commitEvidence: commitEvidence(secret, 2, seqno),
      claimsDigest: seqno % 3 === 0 ? sha256(Buffer.from(`claims ${seqno}`)) : undefined,
    };
    txs.push(tx);
    tree.append(
      leafDigest(4, tx.writeSetDigest, commitEvidenceDigest(tx.commitEvidence), tx.claimsDigest),
    );
  }
  const root = tree.root();
  const signature = { sig: signRoot(NODE, root), node: "ab".repeat(32), cert: NODE };
  return { tree, txs, root, signature };
}

describe("receipts", () => {
  const { tree, txs, root, signature } = ledger(12);
  const receiptFor = (seqno: number): TxReceipt =>
    buildReceipt({
      proof: tree.path(seqno),
      signature,
      leafComponents: txs[seqno - 1],
    }) as TxReceipt;

  it("verify for every transaction under the signed root, also after a JSON round trip", () => {
    for (let seqno = 1; seqno <= txs.length; seqno++) {
      const receipt = receiptFor(seqno);
      assert.deepEqual(receiptRoot(receipt), root);
      assert.ok(verifyReceipt(receipt, verifyDigest));
      assert.ok(verifyReceipt(JSON.parse(JSON.stringify(receipt)) as Receipt, verifyDigest));
    }
  });

  it("have CCF's keys in CCF's (alphabetical) order", () => {
    const receipt = buildReceipt({
      proof: tree.path(3),
      signature,
      leafComponents: txs[2],
      serviceEndorsements: ["s"],
    });
    assert.deepEqual(Object.keys(receipt), [
      "cert",
      "leaf_components",
      "node_id",
      "proof",
      "service_endorsements",
      "signature",
    ]);
    assert.deepEqual(Object.keys((receipt as TxReceipt).leaf_components), [
      "claims_digest",
      "commit_evidence",
      "write_set_digest",
    ]);
    assert.equal(
      (receipt as TxReceipt).leaf_components.claims_digest,
      txs[2].claimsDigest?.toString("hex"),
    );
    assert.equal(receiptFor(1).leaf_components.claims_digest, "00".repeat(32));
  });

  it("fail when a leaf component, the proof or the signature is wrong", () => {
    const good = receiptFor(5);
    const otherEvidence = commitEvidence(secret, 2, 6);
    const bad: Receipt[] = [
      {
        ...good,
        leaf_components: {
          ...good.leaf_components,
          write_set_digest: sha256(Buffer.from("x")).toString("hex"),
        },
      },
      { ...good, leaf_components: { ...good.leaf_components, commit_evidence: otherEvidence } },
      {
        ...good,
        leaf_components: {
          ...good.leaf_components,
          claims_digest: sha256(Buffer.from("x")).toString("hex"),
        },
      },
      { ...good, proof: good.proof.slice(1) },
      { ...good, signature: signRoot(NODE, sha256(Buffer.from("other root"))) },
      { ...good, cert: nodeCert("node 2") },
    ];
    for (const receipt of bad) assert.equal(verifyReceipt(receipt, verifyDigest), false);
  });

  it("of a signature transaction carry the signed root as leaf and an empty proof", () => {
    const receipt = buildReceipt({ proof: [], signature, root: root.toString("hex") });
    assert.deepEqual(Object.keys(receipt), ["cert", "leaf", "node_id", "proof", "signature"]);
    assert.ok(verifyReceipt(receipt, verifyDigest));
    assert.equal(verifyReceipt({ ...receipt, leaf: "00".repeat(32) }, verifyDigest), false);
  });

  it("without a claims digest (older CCF) hash only the write set and commit evidence digests", () => {
    const writeSetDigest = sha256(Buffer.from("old entry"));
    const evidence = commitEvidence(secret, 1, 1);
    const old = new MerkleTree();
    old.append(Buffer.alloc(32));
    old.append(leafDigest(3, writeSetDigest, commitEvidenceDigest(evidence)));
    const receipt: Receipt = {
      cert: NODE,
      leaf_components: {
        commit_evidence: evidence,
        write_set_digest: writeSetDigest.toString("hex"),
      },
      node_id: "cd".repeat(32),
      proof: old.path(1),
      signature: signRoot(NODE, old.root()),
    };
    assert.ok(verifyReceipt(receipt, verifyDigest));
  });

  it("check the node certificate's endorsement chain up to the service certificate", () => {
    const issued = new Set(["node 1<-previous service", "previous service<-service"]);
    const checkIssued = (cert: string, issuer: string) => issued.has(`${cert}<-${issuer}`);
    const receipt = receiptFor(4);
    assert.equal(verifyReceipt(receipt, verifyDigest, "service", checkIssued), false);
    const endorsed = { ...receipt, service_endorsements: ["previous service"] };
    assert.ok(verifyReceipt(endorsed, verifyDigest, "service", checkIssued));
    assert.equal(verifyReceipt(endorsed, verifyDigest, "another service", checkIssued), false);
    assert.ok(
      verifyReceipt(
        { ...receipt, service_endorsements: [] },
        verifyDigest,
        "previous service",
        checkIssued,
      ),
    );
    assert.throws(() => verifyReceipt(receipt, verifyDigest, "service"), RangeError);
  });

  it("that are malformed are refused with FormatError", () => {
    const good = receiptFor(2);
    const malformed: unknown[] = [
      { ...good, leaf_components: { ...good.leaf_components, write_set_digest: "xyz" } },
      { ...good, leaf_components: { ...good.leaf_components, commit_evidence: 5 } },
      { ...good, leaf_components: null },
      { ...good, proof: [{ left: "00" }] },
      { ...good, proof: [{ left: "00".repeat(32), right: "00".repeat(32) }] },
      { ...good, proof: [{ up: "00".repeat(32) }] },
      { ...good, proof: "none" },
      { ...good, signature: "!!" },
      { cert: NODE, node_id: "", proof: [], signature: good.signature },
    ];
    for (const receipt of malformed) {
      assert.throws(
        () => verifyReceipt(receipt as Receipt, verifyDigest),
        FormatError,
        JSON.stringify(receipt),
      );
    }
  });
});
