import assert from "node:assert/strict";
import { it } from "node:test";
import { assertAllPassed, CI_SEEDS, runSeeds } from "./seeds.js";

it("the first half of the CI seeds keeps every invariant and recovers after faults heal", () => {
  const { results, totals } = runSeeds(CI_SEEDS.from, CI_SEEDS.count / 2);
  assertAllPassed(results);
  // The schedules really exercised the faults they claim to.
  assert.ok(totals.crashes > 0, "crashes");
  assert.ok(totals.reconfigurations > 0, "reconfigurations");
  assert.ok(totals.elections > 0, "elections");
  assert.ok(totals.committedClientTxs > 0, "commits");
});
