// Runs a range of simulator seeds and reports failures in a form that replays them.

import assert from "node:assert/strict";
import { runSeed, type SimResult, type SimStats } from "./simulator.js";

/** The CI seed range: the two seeds test files split it so they run in parallel. */
export const CI_SEEDS = { from: 1, count: 500 };

export function runSeeds(from: number, count: number): { results: SimResult[]; totals: SimStats } {
  const results: SimResult[] = [];
  const totals: SimStats = {
    ticks: 0,
    nodesCreated: 0,
    crashes: 0,
    reconfigurations: 0,
    elections: 0,
    clientTxs: 0,
    committedClientTxs: 0,
    maxCommit: 0,
    delivered: 0,
  };
  for (let seed = from; seed < from + count; seed++) {
    const r = runSeed({ seed });
    results.push(r);
    for (const k of Object.keys(totals) as Array<keyof SimStats>) totals[k] += r.stats[k];
  }
  return { results, totals };
}

export function assertAllPassed(results: SimResult[]): void {
  const failed = results.filter((r) => !r.ok);
  assert.deepEqual(
    failed.map((r) => `seed ${r.seed}: ${r.failure} (replay: npm run sim -- --seed ${r.seed})`),
    [],
  );
}
