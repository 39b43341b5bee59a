// Leaf digests by entry type, and commit secrets and commit evidence as CCF derives them.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, it } from "node:test";
import { FormatError } from "../../src/errors.js";
import {
  EMPTY_CLAIMS,
  EntryType,
  commitEvidence,
  commitEvidenceDigest,
  commitSecret,
  leafDigest,
} from "../../src/merkle/index.js";
import { sha256 } from "./reference.js";

const ledgerSecret = Buffer.alloc(32, 7);
const wsd = sha256(Buffer.from("write set"));
const ced = sha256(Buffer.from("evidence"));
const claims = sha256(Buffer.from("claims"));

describe("commit evidence", () => {
  it("derives the commit secret with CCF's 8-byte label 'Commit S'", () => {
    assert.deepEqual(
      commitSecret(ledgerSecret),
      createHmac("sha256", ledgerSecret).update("Commit S").digest(),
    );
    assert.notDeepEqual(
      commitSecret(ledgerSecret),
      createHmac("sha256", ledgerSecret).update("Commit Secret Label").digest(),
    );
  });

  it("formats as ce:{view}.{seqno}:{hex HMAC of the TxID}", () => {
    const secret = commitSecret(ledgerSecret);
    const evidence = commitEvidence(secret, 2, 5);
    assert.match(evidence, /^ce:2\.5:[0-9a-f]{64}$/);
    assert.equal(evidence, `ce:2.5:${createHmac("sha256", secret).update("2.5").digest("hex")}`);
    assert.notEqual(commitEvidence(secret, 2, 6), evidence);
    assert.deepEqual(commitEvidenceDigest(evidence), sha256(Buffer.from(evidence)));
  });

  it("refuses a view or seqno that is not a non-negative integer", () => {
    assert.throws(() => commitEvidence(ledgerSecret, -1, 5), RangeError);
    assert.throws(() => commitEvidence(ledgerSecret, 2, 1.5), RangeError);
  });
});

describe("leafDigest", () => {
  it("is the write set digest itself for type 0 entries", () => {
    assert.deepEqual(leafDigest(EntryType.WriteSet, wsd), wsd);
  });

  it("binds the claims for type 2 entries, as CCF's entry_leaf does", () => {
    assert.deepEqual(
      leafDigest(EntryType.WriteSetWithClaims, wsd, undefined, claims),
      sha256(wsd, claims),
    );
  });

  it("binds the commit evidence for type 3 entries", () => {
    assert.deepEqual(leafDigest(EntryType.WriteSetWithCommitEvidence, wsd, ced), sha256(wsd, ced));
  });

  it("binds commit evidence and claims, zero claims when unset, for type 4 entries", () => {
    assert.deepEqual(leafDigest(4, wsd, ced, claims), sha256(wsd, ced, claims));
    assert.deepEqual(leafDigest(4, wsd, ced), sha256(wsd, ced, Buffer.alloc(32)));
    assert.deepEqual(leafDigest(4, wsd, ced, EMPTY_CLAIMS), leafDigest(4, wsd, ced));
  });

  it("refuses snapshots, unknown types and missing components with FormatError", () => {
    assert.throws(() => leafDigest(EntryType.Snapshot, wsd), FormatError);
    assert.throws(() => leafDigest(9, wsd), FormatError);
    assert.throws(() => leafDigest(4, wsd), FormatError);
    assert.throws(() => leafDigest(3, wsd, undefined, claims), FormatError);
    assert.throws(() => leafDigest(2, wsd), FormatError);
    assert.throws(() => leafDigest(0, wsd.subarray(1)), RangeError);
  });
});
