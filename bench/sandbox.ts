// The JS sandbox's hot paths: a fresh interpreter, a module's first call (its evaluation), a call
// into a warm interpreter with a small object each way, and a host-function round trip.

import { randomBytes } from "node:crypto";
import {
  CCF_DEFAULT_LIMITS,
  createInterpreter,
  createRewindableInterpreter,
  type Interpreter,
  type InterpreterOptions,
} from "../src/js/sandbox/index.js";

// Each figure is the median of several rounds, so a spell of load on a shared machine skews one
// round rather than the result.
const ROUNDS = 7;
const CALLS = Number(process.env.BENCH_CALLS ?? 20_000);
const FRESH = 200;
const HOST_CALLS_PER_CALL = 1000;

const handler = `
  export function handle(request) {
    return { statusCode: 200, headers: { "content-type": "application/json" }, body: { id: request.id, echo: request.params.name } };
  }
  export function hostLoop(n, key) {
    let found = 0;
    for (let i = 0; i < n; i++) if (kv.get(key) !== undefined) found++;
    return found;
  }
`;

/** A ~100 KB module, the size DESIGN.md's cost model uses for a bundle. */
function bundle(): string {
  const parts: string[] = [];
  for (let i = 0; parts.join("\n").length < 100_000; i++) {
    parts.push(
      `function helper${i}(input) { const out = { index: ${i}, items: [] }; for (const item of input.items ?? []) { if (item.weight > ${i % 17}) out.items.push({ ...item, seen: true }); } return out; }`,
    );
  }
  parts.push("export function handle(request) { return helper0(request); }");
  return parts.join("\n");
}

const modules: Record<string, string> = {
  "endpoints/app.js": handler,
  "endpoints/bundle.js": bundle(),
};

const options: InterpreterOptions = {
  limits: CCF_DEFAULT_LIMITS,
  modules: { load: (name) => modules[name] },
  log: () => undefined,
  randomBytes: (n) => new Uint8Array(randomBytes(n)),
};

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function microseconds(round: () => Promise<number> | number): Promise<number> {
  await round(); // warm-up
  const results: number[] = [];
  for (let i = 0; i < ROUNDS; i++) results.push(await round());
  return median(results);
}

async function freshInterpreter(): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < FRESH; i++) (await createInterpreter(options)).dispose();
  return ((performance.now() - start) * 1000) / FRESH;
}

async function firstCall(module: string, runs: number): Promise<number> {
  const interpreters: Interpreter[] = [];
  for (let i = 0; i < runs; i++) interpreters.push(await createInterpreter(options));
  const request = { id: 1, params: { name: "x" }, items: [] };
  const start = performance.now();
  for (const interp of interpreters) interp.callExport(module, "handle", [request]);
  const elapsed = ((performance.now() - start) * 1000) / runs;
  for (const interp of interpreters) interp.dispose();
  return elapsed;
}

/** A call into an interpreter rewound to the checkpoint taken after evaluating the 100 KB bundle. */
async function rewoundCall(): Promise<number> {
  const interp = await createRewindableInterpreter(options);
  interp.importModule("endpoints/bundle.js");
  interp.checkpoint();
  const request = { id: 1, params: { name: "x" }, items: [{ weight: 20 }] };
  const runs = 500;
  const start = performance.now();
  for (let i = 0; i < runs; i++) {
    interp.rewind();
    interp.callExport("endpoints/bundle.js", "handle", [request]);
  }
  const elapsed = ((performance.now() - start) * 1000) / runs;
  interp.dispose();
  return elapsed;
}

export async function run(): Promise<void> {
  const fresh = await microseconds(freshInterpreter);
  const first = await microseconds(() => firstCall("endpoints/app.js", 50));
  const firstBundle = await microseconds(() => firstCall("endpoints/bundle.js", 5));

  const rewound = await microseconds(rewoundCall);

  const warm = await createInterpreter(options);
  warm.define("kv", { get: () => new ArrayBuffer(32) });
  const request = { id: 42, params: { name: "alice" }, path: "/app/log", method: "GET" };
  const call = await microseconds(() => {
    const start = performance.now();
    for (let i = 0; i < CALLS; i++) warm.callExport("endpoints/app.js", "handle", [request]);
    return ((performance.now() - start) * 1000) / CALLS;
  });
  const key = new Uint8Array(16);
  const host = await microseconds(() => {
    const rounds = CALLS / 100;
    const start = performance.now();
    for (let i = 0; i < rounds; i++)
      warm.callExport("endpoints/app.js", "hostLoop", [HOST_CALLS_PER_CALL, key]);
    return ((performance.now() - start) * 1000) / (rounds * HOST_CALLS_PER_CALL);
  });
  warm.dispose();

  const us = (v: number) => (v < 10 ? v.toFixed(1) : Math.round(v).toString());
  console.log(`sandbox fresh interpreter: ${us(fresh)} us`);
  console.log(`sandbox first call (module evaluation): ${us(first)} us`);
  console.log(`sandbox first call (100 KB bundle): ${us(firstBundle)} us`);
  console.log(`sandbox rewind + call (100 KB bundle): ${us(rewound)} us`);
  console.log(`sandbox call: ${us(call)} us`);
  console.log(`sandbox host call: ${us(host)} us`);
}
