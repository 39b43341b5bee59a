// Committed writes per second of three ccf-ts nodes against three etcd members on this machine:
// the same workload (64 keep-alive connections, fresh keys, 100-byte values) for BENCH_SECONDS
// after a warm-up, alternating ccf-ts and etcd runs (BENCH_RUNS each, a fresh cluster per run),
// medians of each. ccf-ts clients do not wait for commit (it is observed by polling the commit
// TxID); etcd answers a put once committed.

import { runCcf, SIGNATURE_DELAY, WORKER_THREADS } from "./replication-ccf.js";
import { ensureEtcd, runEtcd } from "./replication-etcd.js";
import {
  CONNECTIONS,
  DURATION_MS,
  type LoadResult,
  Resources,
  VALUE_BYTES,
  WARMUP_MS,
} from "./replication-load.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 3);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

function describe(name: string, r: LoadResult): string {
  const cpu =
    r.cpu === undefined
      ? ""
      : `; CPU per write ${Math.round(r.cpu.servers)} us in the servers, ` +
        `${Math.round(r.cpu.loadGenerator)} us in the load generator`;
  return (
    `${name}: ${r.rate} tx/s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms` +
    ` (failed ${r.failed}, uncommitted ${r.uncommitted})${cpu}`
  );
}

/** The median CPU per write of the runs that measured it, as a figure line (none without /proc). */
function cpuLine(name: string, results: LoadResult[]): string | undefined {
  const measured = results.flatMap((r) => (r.cpu === undefined ? [] : [r.cpu]));
  if (measured.length === 0) return undefined;
  const servers = median(measured.map((c) => c.servers));
  const load = median(measured.map((c) => c.loadGenerator));
  return `${name} CPU per write: ${Math.round(servers)} us (servers; load generator ${Math.round(load)} us)`;
}

export async function run(): Promise<void> {
  const etcdVersion = ensureEtcd();
  let current: Resources | undefined;
  const onSignal = () => {
    current?.releaseNow();
    process.exit(130);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const onExit = () => current?.releaseNow();
  process.once("exit", onExit);

  const sides = [
    { name: "ccf-ts", run: runCcf, results: [] as LoadResult[] },
    { name: "etcd", run: runEtcd, results: [] as LoadResult[] },
  ];
  console.log(
    `${RUNS} alternating runs each, ${WARMUP_MS / 1000} s warm-up + ${DURATION_MS / 1000} s, ` +
      `${CONNECTIONS} connections, ${VALUE_BYTES}-byte values under fresh keys`,
  );
  console.log(
    `ccf-ts: 3 nodes (processes), basic app PUT /app/records/{key} over HTTPS with a user ` +
      `certificate, signatures every ${SIGNATURE_DELAY}, worker_threads ${WORKER_THREADS} (frontend ` +
      `processes for TLS and HTTP; BENCH_WORKER_THREADS=0 for CCF's default); commit seen by polling /node/commit every 10 ms`,
  );
  console.log(
    `etcd ${etcdVersion}: 3 members, default fsync, via etcd's JSON gateway (POST /v3/kv/put, plain HTTP)`,
  );
  try {
    for (let i = 0; i < RUNS; i++) {
      for (const side of sides) {
        current = new Resources();
        try {
          const r = await side.run(current, `r${i}`);
          side.results.push(r);
          console.log(`  run ${i + 1} ${describe(side.name, r)}`);
        } finally {
          await current.release();
          current = undefined;
        }
      }
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("exit", onExit);
  }
  const [ccf, etcd] = sides.map((s) => ({
    rate: median(s.results.map((r) => r.rate)),
    p50: median(s.results.map((r) => r.p50)),
    p99: median(s.results.map((r) => r.p99)),
  }));
  if (ccf === undefined || etcd === undefined) return;
  console.log(`ccf-ts committed writes: ${Math.round(ccf.rate)} tx/s`);
  console.log(`ccf-ts p50 commit latency: ${ccf.p50.toFixed(1)} ms`);
  console.log(`ccf-ts p99 commit latency: ${ccf.p99.toFixed(1)} ms`);
  console.log(`etcd writes (via etcd's JSON gateway): ${Math.round(etcd.rate)} tx/s`);
  console.log(`etcd p50 commit latency: ${etcd.p50.toFixed(1)} ms`);
  console.log(`etcd p99 commit latency: ${etcd.p99.toFixed(1)} ms`);
  for (const side of sides) {
    const line = cpuLine(side.name, side.results);
    if (line !== undefined) console.log(line);
  }
  console.log(`ratio vs etcd: ${(ccf.rate / etcd.rate).toFixed(2)}`);
  // Each pair ran back to back, so its ratio is the least affected by the box's speed changing.
  const pairs = sides[0].results.map((r, i) => r.rate / (sides[1].results[i]?.rate ?? Number.NaN));
  console.log(`ratio per pair of runs: ${pairs.map((x) => x.toFixed(2)).join(", ")}`);
  console.log("aim: ratio vs etcd 1.0");
}
