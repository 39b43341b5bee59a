import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isAllowedStatusTransition, type LocalView, txStatus } from "../../src/consensus/index.js";

// Views 2 (seqnos 1-4) and 4 (seqnos 5-9); committed up to 6.
const local: LocalView = {
  viewHistory: [
    { view: 2, seqno: 1 },
    { view: 4, seqno: 5 },
  ],
  lastSeqno: 9,
  commitSeqno: 6,
};

describe("transaction status (CCF's evaluate_tx_status)", () => {
  it("is Committed when the commit covers it in the same view", () => {
    assert.equal(txStatus(local, { view: 2, seqno: 3 }), "Committed");
    assert.equal(txStatus(local, { view: 4, seqno: 6 }), "Committed");
  });

  it("is Invalid when the commit covers that seqno in another view", () => {
    assert.equal(txStatus(local, { view: 3, seqno: 5 }), "Invalid");
  });

  it("is Invalid when a later view has committed, even past the commit index", () => {
    assert.equal(txStatus(local, { view: 3, seqno: 8 }), "Invalid");
  });

  it("is Pending when held in the same view but not committed", () => {
    assert.equal(txStatus(local, { view: 4, seqno: 8 }), "Pending");
  });

  it("is Unknown when this node does not hold it and no later view has committed", () => {
    assert.equal(txStatus(local, { view: 4, seqno: 12 }), "Unknown");
    assert.equal(txStatus(local, { view: 5, seqno: 8 }), "Unknown");
  });

  it("allows only CCF's transitions", () => {
    assert.ok(isAllowedStatusTransition("Unknown", "Pending"));
    assert.ok(isAllowedStatusTransition("Pending", "Committed"));
    assert.ok(isAllowedStatusTransition("Pending", "Invalid"));
    assert.ok(isAllowedStatusTransition("Pending", "Unknown"));
    assert.ok(!isAllowedStatusTransition("Committed", "Pending"));
    assert.ok(!isAllowedStatusTransition("Committed", "Invalid"));
    assert.ok(!isAllowedStatusTransition("Invalid", "Committed"));
  });
});
