// `npm run chaos [-- options]`: the fault harness on real processes (test/chaos/harness.ts).
// Prints the run's progress, then `faults injected: N`, `operations: N`, `anomalies: N`; exits 1
// when there are anomalies or the network stalled.

import { parseArgs } from "node:util";
import { FAULT_KINDS, type FaultKind, formatSummary, runChaos } from "./harness.js";

const USAGE = `usage: npm run chaos -- [--seed N] [--minutes M] [--nodes 3|5] [--clients N] [--keys N]
                        [--faults kill,pause,partition,delay,corrupt] [--keep] [--quiet]
  The short default run (about 3 minutes of faults on 3 nodes) stays under 10 minutes; longer
  runs: --minutes 30, more nodes: --nodes 5.`;

function fail(message: string): never {
  console.error(`chaos: ${message}\n${USAGE}`);
  process.exit(2);
}

function int(name: string, raw: string | undefined, fallback: number, min: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) fail(`--${name} must be a number >= ${min}, not "${raw}"`);
  return n;
}

let values: Record<string, string | boolean | undefined>;
try {
  ({ values } = parseArgs({
    options: {
      seed: { type: "string" },
      minutes: { type: "string" },
      nodes: { type: "string" },
      clients: { type: "string" },
      keys: { type: "string" },
      faults: { type: "string" },
      keep: { type: "boolean" },
      quiet: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  }));
} catch (e) {
  fail(e instanceof Error ? e.message : String(e));
}
if (values.help === true) {
  console.log(USAGE);
  process.exit(0);
}
const faults = (
  typeof values.faults === "string" ? values.faults.split(",") : [...FAULT_KINDS]
).map((f) => f.trim());
for (const f of faults) {
  if (!(FAULT_KINDS as readonly string[]).includes(f))
    fail(`unknown fault "${f}" (known: ${FAULT_KINDS.join(", ")})`);
}
const str = (v: string | boolean | undefined) => (typeof v === "string" ? v : undefined);
const summary = await runChaos({
  seed: int("seed", str(values.seed), Date.now() % 100000, 0),
  nodes: int("nodes", str(values.nodes), 3, 3),
  clients: int("clients", str(values.clients), 8, 1),
  keys: int("keys", str(values.keys), 10, 1),
  durationMs: int("minutes", str(values.minutes), 3, 0) * 60_000,
  faults: faults as FaultKind[],
  keepDir: values.keep === true,
  log: values.quiet === true ? undefined : (line) => console.log(line),
});
console.log(formatSummary(summary));
if (summary.anomalies > 0) console.log(`working directory kept: ${summary.dir}`);
process.exit(summary.anomalies > 0 || summary.stalls > 0 ? 1 : 0);
