import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConsensusInvariantError, type TestOnlyFaults } from "../../src/consensus/index.js";
import { CI_SEEDS } from "./seeds.js";
import { runSeed, SimInvariantError, type SimResult } from "./simulator.js";

/** The first CI seed on which the broken variant fails, or undefined. */
function firstFailure(faults: TestOnlyFaults): SimResult | undefined {
  for (let seed = CI_SEEDS.from; seed < CI_SEEDS.from + CI_SEEDS.count; seed++) {
    const r = runSeed({ seed, faults });
    if (!r.ok) return r;
  }
  return undefined;
}

function isInvariantFailure(r: SimResult): boolean {
  return (
    r.failure?.includes(SimInvariantError.name) === true ||
    r.failure?.includes(ConsensusInvariantError.name) === true
  );
}

describe("the simulator catches deliberately broken consensus", () => {
  it("committing before a signature", () => {
    const r = firstFailure({ commitWithoutSignature: true });
    assert.ok(r !== undefined, "no CI seed caught it");
    assert.ok(isInvariantFailure(r), r.failure);
  });

  it("voting without comparing the last committable entry", () => {
    const r = firstFailure({ voteIgnoringLastCommittable: true });
    assert.ok(r !== undefined, "no CI seed caught it");
    assert.ok(isInvariantFailure(r), r.failure);
  });
});
