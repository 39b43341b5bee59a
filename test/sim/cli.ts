// Replays simulator seeds: `npm run sim -- --seed 17` (with its trace), or `--seeds 2000` to sweep
// seeds 1..N (`--from F` to start elsewhere). Exits non-zero if any seed fails.

import { runSeed } from "./simulator.js";

function flag(name: string): number | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(v)) throw new Error(`--${name} needs an integer`);
  return v;
}

const seed = flag("seed");
if (seed !== undefined) {
  const result = runSeed({ seed, trace: (line) => console.log(line) });
  console.log(JSON.stringify(result, null, 2));
  process.exit(result.ok ? 0 : 1);
}
const count = flag("seeds") ?? 500;
const from = flag("from") ?? 1;
const started = performance.now();
let failures = 0;
for (let s = from; s < from + count; s++) {
  const result = runSeed({ seed: s });
  if (!result.ok) {
    failures++;
    console.log(`seed ${s} FAILED: ${result.failure} (replay: npm run sim -- --seed ${s})`);
  }
}
const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(`${count} seeds from ${from}: ${failures} failed, ${seconds} s`);
process.exit(failures === 0 ? 0 : 1);
