// Receipt verification as an auditor runs it: JSON and COSE receipts of a ledger written by the real
// pipeline verify, and a change to anything verification covers is refused with its reason.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { Tag } from "cbor-x";
import {
  COSE_RECEIPT,
  buildCoseReceipt,
  type ReceiptVerification,
  verifyReceiptBytes,
} from "../../src/audit/index.js";
import { cborDecode, cborEncode, coseSign1Decode } from "../../src/crypto/index.js";
import { decodeValue, keyToString, SINGLETON_KEY, Tables } from "../../src/kv/index.js";
import { readLedger } from "../../src/ledger/index.js";
import type { LeafReceipt, MerkleProof, TxReceipt } from "../../src/merkle/index.js";
import { type ReceiptLedger, receiptLedger } from "./receipt-fixture.js";

const CCF_SERVICE = join(
  import.meta.dirname,
  "../../../shared/fixtures/ccf-ledgers/cose_flipflop_service",
);

function flipHex(hex: string, at = 0): string {
  const c = hex[at] === "0" ? "1" : "0";
  return hex.slice(0, at) + c + hex.slice(at + 1);
}

function refused(result: ReceiptVerification, reason: RegExp): void {
  assert.equal(result.ok, false, `expected a refusal matching ${reason}`);
  if (!result.ok) assert.match(result.reason, reason);
}

/** Re-assembles a COSE receipt from its four parts, tagged as CCF writes it. */
function coseFrom(parts: {
  protectedBytes: Uint8Array;
  unprotected: Map<number | string, unknown>;
  payload: Uint8Array | null;
  signature: Uint8Array;
}): Buffer {
  return cborEncode(
    new Tag([parts.protectedBytes, parts.unprotected, parts.payload, parts.signature], 18),
  );
}

function parts(receipt: Buffer) {
  const d = coseSign1Decode(receipt);
  return {
    protectedBytes: d.protectedBytes,
    protectedHeaders: d.protectedHeaders,
    unprotected: d.unprotectedHeaders,
    payload: d.payload,
    signature: d.signature,
  };
}

describe("receipt verification", () => {
  let ledger: ReceiptLedger;
  before(async () => {
    ledger = await receiptLedger();
  });

  describe("JSON receipts", () => {
    const verify = (r: unknown, serviceCertPem?: string) =>
      verifyReceiptBytes(JSON.stringify(r), serviceCertPem === undefined ? {} : { serviceCertPem });
    const txReceipt = () => ledger.jsonReceipt(ledger.claimsSeqno) as TxReceipt;

    it("verifies every transaction's receipt, against the service certificate too", () => {
      for (let seqno = 1; seqno < ledger.sigSeqno; seqno++) {
        const r = verify(ledger.jsonReceipt(seqno), ledger.serviceCert);
        assert.deepEqual(r, { ok: true, kind: "json", root: ledger.root, seqno });
      }
    });

    it("verifies a signature transaction's receipt (its leaf is the signed root)", () => {
      const r = ledger.jsonReceipt(ledger.sigSeqno) as LeafReceipt;
      assert.equal(r.leaf, ledger.root);
      assert.deepEqual(verify(r, ledger.serviceCert), {
        ok: true,
        kind: "json",
        root: ledger.root,
      });
      refused(verify({ ...r, leaf: flipHex(r.leaf) }), /^signature does not verify$/);
    });

    it("accepts bytes with leading whitespace and the claims digest the transaction set", () => {
      const r = txReceipt();
      assert.notEqual(r.leaf_components.claims_digest, "00".repeat(32));
      const bytes = Buffer.from(`\n  ${JSON.stringify(r)}`);
      assert.equal(verifyReceiptBytes(bytes, {}).ok, true);
    });

    it("refuses a change to any proof hash, or to a step's direction", () => {
      const r = txReceipt();
      assert.ok(r.proof.length >= 2);
      r.proof.forEach((step, i) => {
        const proof: MerkleProof = r.proof.map((s) => ({ ...s }));
        proof[i] =
          "left" in step ? { left: flipHex(step.left, 5) } : { right: flipHex(step.right, 5) };
        refused(verify({ ...r, proof }), /^signature does not verify$/);
        const swapped: MerkleProof = r.proof.map((s) => ({ ...s }));
        swapped[i] = "left" in step ? { right: step.left } : { left: step.right };
        refused(verify({ ...r, proof: swapped }), /^signature does not verify$/);
      });
      refused(verify({ ...r, proof: r.proof.slice(1) }), /^signature does not verify$/);
    });

    it("refuses a change to each leaf component", () => {
      const r = txReceipt();
      const lc = r.leaf_components;
      for (const changed of [
        { ...lc, write_set_digest: flipHex(lc.write_set_digest) },
        {
          ...lc,
          commit_evidence: lc.commit_evidence.replace(/.$/, (c) => (c === "0" ? "1" : "0")),
        },
        { ...lc, claims_digest: flipHex(lc.claims_digest as string, 63) },
        { write_set_digest: lc.write_set_digest, commit_evidence: lc.commit_evidence },
      ]) {
        refused(verify({ ...r, leaf_components: changed }), /^signature does not verify$/);
      }
    });

    it("refuses a changed signature, another node's certificate, or a node_id not of the cert", () => {
      const r = txReceipt();
      const sig = Buffer.from(r.signature, "base64");
      sig[sig.length - 1] ^= 1;
      refused(verify({ ...r, signature: sig.toString("base64") }), /^signature does not verify$/);
      refused(verify({ ...r, cert: ledger.otherNodeCert }), /^signature does not verify$/);
      refused(verify({ ...r, node_id: flipHex(r.node_id) }), /^node_id does not match/);
    });

    it("refuses a node certificate the given service certificate did not endorse", () => {
      const r = txReceipt();
      assert.equal(verify(r).ok, true, "without a service certificate only the signature counts");
      refused(
        verify(r, ledger.otherServiceCert),
        /^node certificate not endorsed by the service certificate$/,
      );
    });

    it("follows service_endorsements from an earlier service identity", () => {
      const r = { ...txReceipt(), service_endorsements: [ledger.recoveryEndorsement] };
      assert.equal(verify(r, ledger.otherServiceCert).ok, true);
      refused(verify(r, ledger.serviceCert), /not endorsed by the service certificate through/);
    });

    it("names what is malformed", () => {
      const r = txReceipt();
      refused(verifyReceiptBytes("{not json", {}), /^malformed receipt: not JSON/);
      refused(verify([r]), /^malformed receipt/);
      refused(
        verify({ ...r, proof: [{ left: "zz" }] }),
        /^malformed receipt: proof step 0 is not a 32-byte hex digest$/,
      );
      refused(verify({ ...r, cert: "not a cert" }), /^malformed receipt: cert is not a PEM/);
      refused(verify({ ...r, signature: "%%%" }), /^malformed receipt: signature is not base64$/);
      refused(
        verify({ ...r, leaf_components: undefined }),
        /^malformed receipt: receipt has neither leaf_components nor leaf$/,
      );
      refused(verify(r, "not a cert"), /^the service certificate is not a PEM certificate$/);
    });
  });

  describe("COSE receipts", () => {
    const verify = (bytes: Buffer | string, serviceCertPem: string | null = ledger.serviceCert) =>
      verifyReceiptBytes(bytes, serviceCertPem === null ? {} : { serviceCertPem });

    it("is the signature's COSE_Sign1 with CCF's inclusion proof in unprotected header 396", () => {
      const seqno = ledger.claimsSeqno;
      const receipt = ledger.coseReceipt(seqno);
      const json = ledger.jsonReceipt(seqno) as TxReceipt;
      assert.equal(receipt[0], 0xd2, "tagged COSE_Sign1 (18)");
      const sig = coseSign1Decode(ledger.coseSignature);
      const got = coseSign1Decode(receipt);
      assert.ok(got.protectedBytes.equals(sig.protectedBytes), "protected header bytes as signed");
      assert.ok(got.signature.equals(sig.signature));
      assert.equal(got.payload, null);
      assert.deepEqual([...got.unprotectedHeaders.keys()], [396]);
      const vdp = got.unprotectedHeaders.get(396) as Map<number, unknown>;
      assert.deepEqual([...vdp.keys()], [-1]);
      const proofs = vdp.get(-1) as Uint8Array[];
      assert.equal(proofs.length, 1);
      const proof = cborDecode(proofs[0]) as Map<number, unknown>;
      assert.deepEqual([...proof.keys()], [1, 2]);
      const [wsd, ce, cd] = proof.get(1) as [Uint8Array, string, Uint8Array];
      assert.equal(Buffer.from(wsd).toString("hex"), json.leaf_components.write_set_digest);
      assert.equal(ce, json.leaf_components.commit_evidence);
      assert.equal(Buffer.from(cd).toString("hex"), json.leaf_components.claims_digest);
      const path = proof.get(2) as [boolean, Uint8Array][];
      assert.deepEqual(
        path.map(([left, h]) =>
          left
            ? { left: Buffer.from(h).toString("hex") }
            : { right: Buffer.from(h).toString("hex") },
        ),
        json.proof,
        "true = the sibling is on the left, as JSON's {left}",
      );
    });

    it("verifies every transaction's receipt, tagged or not, as bytes or base64", () => {
      for (let seqno = 1; seqno < ledger.sigSeqno; seqno++) {
        assert.deepEqual(verify(ledger.coseReceipt(seqno)), {
          ok: true,
          kind: "cose",
          root: ledger.root,
          seqno,
        });
      }
      const receipt = ledger.coseReceipt(2);
      assert.equal(verify(receipt.subarray(1)).ok, true, "untagged");
      assert.equal(verify(receipt.toString("base64")).ok, true, "base64 text");
    });

    it("accepts the headers and kid of a COSE signature CCF wrote", () => {
      // The leaf is made up (commit evidence needs the ledger secret), so the signature cannot
      // verify; every check before it (alg, vds, kid against CCF's service key) must pass.
      let ccfSignature: Buffer | undefined;
      readLedger(join(CCF_SERVICE, "ledger"), {
        onEntry: (le) => {
          const raw = le.writeSet.get(Tables.COSE_SIGNATURES)?.get(keyToString(SINGLETON_KEY));
          if (raw !== undefined && raw !== null && ccfSignature === undefined) {
            const b64 = decodeValue(Tables.COSE_SIGNATURES, raw) as string;
            ccfSignature = Buffer.from(b64, "base64");
          }
        },
      });
      assert.ok(ccfSignature !== undefined);
      const receipt = buildCoseReceipt(ccfSignature, [{ left: "ab".repeat(32) }], {
        writeSetDigest: Buffer.alloc(32, 1),
        commitEvidence: `ce:2.15:${"cd".repeat(32)}`,
        claimsDigest: Buffer.alloc(32),
      });
      const serviceCertPem = readFileSync(join(CCF_SERVICE, "common/service_cert.pem"), "utf8");
      refused(verifyReceiptBytes(receipt, { serviceCertPem }), /^signature does not verify$/);
      refused(verify(receipt), /^kid does not match/);
    });

    it("needs the service certificate, and refuses another service's", () => {
      const receipt = ledger.coseReceipt(1);
      refused(verify(receipt, null), /^a COSE receipt needs the service certificate$/);
      refused(verify(receipt, ledger.otherServiceCert), /^kid does not match the service/);
    });

    it("refuses a change to any path hash, a step's direction, or a leaf component", () => {
      const seqno = ledger.claimsSeqno;
      const json = ledger.jsonReceipt(seqno) as TxReceipt;
      const lc = json.leaf_components;
      const leaf = {
        writeSetDigest: Buffer.from(lc.write_set_digest, "hex"),
        commitEvidence: lc.commit_evidence,
        claimsDigest: Buffer.from(lc.claims_digest as string, "hex"),
      };
      const build = (proof: MerkleProof, l = leaf) =>
        buildCoseReceipt(ledger.coseSignature, proof, l);
      assert.equal(verify(build(json.proof)).ok, true);
      json.proof.forEach((step, i) => {
        const changed: MerkleProof = json.proof.map((s) => ({ ...s }));
        changed[i] =
          "left" in step ? { left: flipHex(step.left, 9) } : { right: flipHex(step.right, 9) };
        refused(verify(build(changed)), /^signature does not verify$/);
        const swapped: MerkleProof = json.proof.map((s) => ({ ...s }));
        swapped[i] = "left" in step ? { right: step.left } : { left: step.right };
        refused(verify(build(swapped)), /^signature does not verify$/);
      });
      const flipped = (b: Buffer) => {
        const c = Buffer.from(b);
        c[7] ^= 0x10;
        return c;
      };
      for (const l of [
        { ...leaf, writeSetDigest: flipped(leaf.writeSetDigest) },
        { ...leaf, commitEvidence: `${leaf.commitEvidence.slice(0, -1)}x` },
        { ...leaf, claimsDigest: flipped(leaf.claimsDigest) },
      ]) {
        refused(verify(build(json.proof, l)), /^signature does not verify$/);
      }
    });

    it("refuses changed signature bytes or protected header", () => {
      const p = parts(ledger.coseReceipt(1));
      const signature = Buffer.from(p.signature);
      signature[0] ^= 1;
      refused(verify(coseFrom({ ...p, signature })), /^signature does not verify$/);
      const bumped = (label: number | string, value: unknown) =>
        coseFrom({
          ...p,
          protectedBytes: cborEncode(new Map([...p.protectedHeaders, [label, value]])),
        });
      refused(verify(bumped("ccf.v1", new Map([["txid", "2.1"]]))), /^signature does not verify$/);
      refused(verify(bumped(15, new Map([[6, 1]]))), /^signature does not verify$/);
      refused(verify(bumped(1, -7)), /^signature does not verify$/);
      refused(
        verify(bumped(395, 1)),
        /^malformed receipt: protected header vds \(395\) is 1, not 2/,
      );
      refused(verify(bumped(1, -257)), /^malformed receipt: protected header alg -257/);
      refused(verify(bumped(4, Buffer.alloc(64))), /^kid does not match/);
      const raw = Buffer.from(p.protectedBytes);
      raw[raw.length - 1] ^= 1;
      refused(verify(coseFrom({ ...p, protectedBytes: raw })), /^signature does not verify$/);
    });

    it("names what is malformed", () => {
      const receipt = ledger.coseReceipt(1);
      const p = parts(receipt);
      refused(
        verify(receipt.subarray(0, receipt.length - 5)),
        /^malformed receipt: invalid COSE_Sign1/,
      );
      refused(verify(Buffer.from([0x01, 0x02])), /^malformed receipt/);
      refused(verify("???"), /^malformed receipt: neither JSON nor base64/);
      refused(
        verify(coseFrom({ ...p, payload: Buffer.from(ledger.root, "hex") })),
        /payload is not detached/,
      );
      refused(verify(coseFrom({ ...p, unprotected: new Map() })), /vdp \(396\) is not a map/);
      const withProofs = (proofs: unknown) =>
        coseFrom({ ...p, unprotected: new Map([[COSE_RECEIPT.vdp, new Map([[-1, proofs]])]]) });
      refused(verify(withProofs([])), /no inclusion proofs/);
      refused(verify(withProofs(["text"])), /inclusion proof 0 is not a byte string/);
      refused(verify(withProofs([Buffer.from([0xff])])), /inclusion proof 0 is not CBOR/);
      refused(
        verify(
          withProofs([
            cborEncode(
              new Map([
                [1, [Buffer.alloc(31), "ce", Buffer.alloc(32)]],
                [2, []],
              ]),
            ),
          ]),
        ),
        /inclusion proof 0: write set digest is not a 32-byte string/,
      );
      refused(
        verify(
          withProofs([
            cborEncode(
              new Map([
                [1, [Buffer.alloc(32), "ce", Buffer.alloc(32)]],
                [2, [[1, Buffer.alloc(32)]]],
              ]),
            ),
          ]),
        ),
        /path step 0 is not \[left: bool, hash\]/,
      );
    });
  });
});
