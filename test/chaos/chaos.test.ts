// The fault harness's short run in CI: a 3-node network on real processes with clients writing and
// reading through every node, while each kind of fault is injected once: SIGKILL of a node and its
// replacement (join, trust, retire), SIGSTOP/SIGCONT, a minority cut off, slow links, and a ledger
// file damaged on one node. Nothing committed may be lost, the history must be linearizable (on
// the TxID line), the damaged node must refuse the damaged entry and `ledger verify` must name the
// file. `npm run chaos` runs the same harness for longer (see README, "Reliability").

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FAULT_KINDS, formatSummary, runChaos } from "./harness.js";

describe("chaos: faults on a real 3-node network", () => {
  it("loses no committed write and keeps the history linearizable under every kind of fault", async () => {
    const lines: string[] = [];
    const summary = await runChaos({
      seed: 7,
      nodes: 3,
      clients: 6,
      keys: 8,
      durationMs: 15_000,
      faults: FAULT_KINDS,
      log: (line) => lines.push(line),
    });
    const report = `${formatSummary(summary)}\n${lines.join("\n")}`;
    console.log(report);
    assert.equal(summary.anomalies, 0, report);
    assert.equal(summary.stalls, 0, report);
    assert.equal(summary.checker.result, "linearizable", report);
    for (const kind of FAULT_KINDS)
      assert.ok((summary.faultsByKind[kind] ?? 0) >= 1, `no ${kind} fault:\n${report}`);
    assert.ok(
      lines.some((l) => /refused the damaged entry: 500 .*HistoricalEntryMismatch/.test(l)),
      report,
    );
    assert.ok(
      summary.committed > 100,
      `only ${summary.committed} operations committed:\n${report}`,
    );
  });
});
