// The fault harness's judgement of a history (analyseHistory), on histories built by hand: a clean
// one passes; a lost committed write, a committed read of a value that never committed, two writes
// at one TxID, and writes committed against real-time order are each caught; stale reads on
// backups are counted, not condemned; an unknown write that a read saw is allowed to have happened.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { analyseHistory, type HistoryRecord } from "./harness.js";

let clock = 0;
function put(
  key: string,
  value: string,
  txid: string | undefined,
  o: Partial<HistoryRecord> = {},
): HistoryRecord {
  const invokeWall = ++clock;
  return {
    client: 0,
    kind: "put",
    key,
    value,
    invokeWall,
    completeWall: ++clock,
    floor: 0,
    ...(txid === undefined ? {} : { txid }),
    outcome: txid === undefined ? "unknown" : "ok",
    node: "n0",
    ...o,
  };
}
function get(
  key: string,
  output: string,
  txid: string,
  o: Partial<HistoryRecord> = {},
): HistoryRecord {
  const invokeWall = ++clock;
  return {
    client: 1,
    kind: "get",
    key,
    output,
    invokeWall,
    completeWall: ++clock,
    floor: 0,
    txid,
    outcome: "ok",
    node: "n1",
    ...o,
  };
}

describe("chaos history analysis", () => {
  it("passes a clean history", () => {
    const r = analyseHistory([
      put("1", "a", "2.10"),
      get("1", "a", "2.10"),
      put("1", "b", "2.12"),
      get("1", "b", "2.13"),
      get("1", "b", "2.20", { client: -2 }),
    ]);
    assert.deepEqual(r.anomalies, []);
    assert.equal(r.checker.result, "linearizable");
  });

  it("catches a committed write that a later final read does not see", () => {
    const r = analyseHistory([
      put("1", "a", "2.10"),
      put("1", "b", "2.12"),
      get("1", "a", "3.30", { client: -2 }),
    ]);
    assert.ok(
      r.anomalies.some((a) => /write 2\.12 reported Committed is lost/.test(a)),
      r.anomalies.join("\n"),
    );
    assert.equal(r.checker.result, "not-linearizable");
  });

  it("catches a committed read of a value whose write did not commit", () => {
    const r = analyseHistory([
      put("1", "a", "2.10"),
      put("1", "dirty", "2.11", { outcome: "fail" }),
      get("1", "dirty", "3.15"),
    ]);
    assert.equal(r.checker.result, "not-linearizable");
    assert.ok(r.anomalies.some((a) => a.startsWith("checker: not-linearizable (keys 1)")));
  });

  it("catches two writes committed at one seqno (split brain)", () => {
    const r = analyseHistory([put("1", "a", "2.10"), put("2", "b", "3.10")]);
    assert.ok(r.anomalies.some((a) => /two writes committed at seqno 10/.test(a)));
  });

  it("catches a write answered before another was sent that commits after it", () => {
    const first = put("1", "a", "2.20");
    const second = put("2", "b", "2.15");
    assert.ok(first.completeWall !== undefined && first.completeWall < second.invokeWall);
    const r = analyseHistory([first, second]);
    assert.ok(r.anomalies.some((a) => /write 2\.15 was sent after 2\.20 was answered/.test(a)));
  });

  it("counts a stale read on a backup without calling it an anomaly", () => {
    const r = analyseHistory([put("1", "a", "2.10"), put("1", "b", "2.12"), get("1", "a", "2.11")]);
    assert.equal(r.staleBackupReads, 1);
    assert.deepEqual(r.anomalies, []);
  });

  it("lets an unknown write that a read saw take effect, and drops unknown writes nobody saw", () => {
    const r = analyseHistory([
      put("1", "a", "2.10"),
      put("1", "maybe", undefined, { floor: 10 }),
      put("1", "never-seen", undefined, { floor: 10 }),
      get("1", "maybe", "2.14"),
    ]);
    assert.deepEqual(r.anomalies, []);
    // The same read before the unknown write could have been sent is impossible.
    const early = analyseHistory([
      put("1", "a", "2.10"),
      put("1", "maybe", undefined, { floor: 20 }),
      get("1", "maybe", "2.14"),
    ]);
    assert.ok(
      early.anomalies.some((a) => /"maybe" was read at seqno 14, yet sent when 20/.test(a)),
    );
    // An unknown write that was read took effect no later than that read: a later committed write
    // read afterwards, then the unknown value again, is not linearizable.
    const flip = analyseHistory([
      put("1", "a", "2.10"),
      put("1", "maybe", undefined, { floor: 10 }),
      get("1", "maybe", "2.14"),
      put("1", "b", "2.16"),
      get("1", "b", "2.17"),
      get("1", "maybe", "2.18"),
    ]);
    assert.equal(flip.checker.result, "not-linearizable");
  });
});
