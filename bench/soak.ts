// `npm run soak -- [--minutes N] [--rate R] [--nodes N]`: a network of `ccf-ts node` processes
// (node 0 starts the service with user0 and the logging sample; the others join while it is
// Opening, as test/e2e/multinode.test.ts does) under a steady open-loop load of R requests per
// second, half writes (POST /app/log/private over a fixed set of keys, so that the state itself
// does not grow) and half reads, spread over every node (backups forward the writes). Every node
// process's resident memory (VmRSS) and open descriptors (/proc/<pid>/fd), its frontend processes'
// included (BENCH_WORKER_THREADS=N; default 0), are sampled every 10 s.
// At the end: the samples, and per node the growth between the first and last thirds of the run
// with a verdict. Exit status 1 when growth is found or requests failed, 2 on bad arguments.

import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as delay } from "node:timers/promises";
import { parseArgs } from "node:util";
import { Pool } from "undici";
import { PACKAGE_ROOT } from "../src/node/version.js";
import { waitFor } from "../test/helpers/process.js";
import { benchWorkerThreads, startBenchNetwork } from "./network.js";
import { Resources } from "./replication-load.js";

const LOGGING_APP = join(PACKAGE_ROOT, "samples/apps/logging/dist/bundle.json");
const SIGNATURES = { tx_count: 5000, delay: "100ms" };
/** Keys the writes cycle over: the KV holds at most this many records. */
const KEYS = 1000;
const CONNECTIONS_PER_NODE = 8;
/** Past this many unanswered requests, due requests are skipped (and counted) instead of queued. */
const MAX_IN_FLIGHT = 512;
const SAMPLE_SECONDS = 10;
/** The verdict's rule. */
const FD_TOLERANCE = 10;
const RSS_SLOPE_LIMIT_MB_PER_MIN = 2;
/** ...and only when the last third's mean is this much above the first third's (GC sawtooth). */
const RSS_GROWTH_LIMIT_MB = 10;

interface Options {
  minutes: number;
  rate: number;
  nodes: number;
  /** Where to write each node's output at the end (kept nowhere by default). */
  logs: string | undefined;
}

function usage(problem: string): never {
  process.stderr.write(
    `soak: ${problem}\nusage: npm run soak -- [--minutes N (default 10)] [--rate R req/s (default 200)] [--nodes N (default 3)] [--logs DIR]\n`,
  );
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  let values: Record<string, string | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        minutes: { type: "string" },
        rate: { type: "string" },
        nodes: { type: "string" },
        logs: { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    usage((e as Error).message);
  }
  const number = (name: string, fallback: number): number => {
    const raw = values[name];
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(n) || n <= 0) {
      usage(`--${name} must be a positive number, got ${JSON.stringify(raw)}`);
    }
    return n;
  };
  const nodes = number("nodes", 3);
  if (!Number.isInteger(nodes) || nodes > 7) {
    usage(`--nodes must be an integer from 1 to 7, got ${values.nodes}`);
  }
  if (values.logs !== undefined && !existsSync(values.logs)) {
    usage(`--logs ${values.logs}: no such folder`);
  }
  return { minutes: number("minutes", 10), rate: number("rate", 200), nodes, logs: values.logs };
}

// --- the network ---

// --- measurements ---

interface Sample {
  /** Minutes since the load started. */
  t: number;
  rssMb: number[];
  fds: number[];
  /** Requests answered with 2xx / failed since the previous sample. */
  ok: number;
  failed: number;
  skipped: number;
}

/** A node's processes: itself and its frontend processes (worker_threads). */
function nodeProcesses(pid: number): number[] {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
  return [pid, ...(children === "" ? [] : children.split(/\s+/).map(Number))];
}

/** Resident memory of a node and its frontend processes, MB. */
function rssMb(pid: number): number {
  let kb = 0;
  for (const p of nodeProcesses(pid)) {
    const status = readFileSync(`/proc/${p}/status`, "utf8");
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    if (m === null) throw new Error(`no VmRSS in /proc/${p}/status`);
    kb += Number(m[1]);
  }
  return kb / 1024;
}

/** Open descriptors of a node and its frontend processes. */
function openFds(pid: number): number {
  let n = 0;
  for (const p of nodeProcesses(pid)) n += readdirSync(`/proc/${p}/fd`).length;
  return n;
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

function mean(ys: number[]): number {
  return ys.length === 0 ? 0 : ys.reduce((a, b) => a + b, 0) / ys.length;
}

function median(ys: number[]): number {
  const s = [...ys].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.floor(s.length / 2)];
}

interface Verdict {
  rssFirst: number;
  rssLast: number;
  rssRatio: number;
  rssSlope: number;
  fdFirst: number;
  fdLast: number;
  fdSlope: number;
  bounded: boolean;
}

/**
 * Thirds by time. fds: the last third's median within FD_TOLERANCE of the first third's. RSS: the
 * least-squares slope over the last two thirds below RSS_SLOPE_LIMIT_MB_PER_MIN, or the last
 * third's mean less than RSS_GROWTH_LIMIT_MB above the first third's (the first third is warm-up:
 * JIT, interpreters, caches, the KV filling up to its KEYS records).
 */
function verdict(samples: Sample[], node: number, minutes: number): Verdict {
  const firstThird = samples.filter((s) => s.t <= minutes / 3);
  const lastThird = samples.filter((s) => s.t >= (2 * minutes) / 3);
  const lastTwoThirds = samples.filter((s) => s.t >= minutes / 3);
  const rss = (ss: Sample[]) => ss.map((s) => s.rssMb[node]);
  const fds = (ss: Sample[]) => ss.map((s) => s.fds[node]);
  const ts = (ss: Sample[]) => ss.map((s) => s.t);
  const rssFirst = mean(rss(firstThird));
  const rssLast = mean(rss(lastThird));
  const rssSlope = slope(ts(lastTwoThirds), rss(lastTwoThirds));
  const fdFirst = median(fds(firstThird));
  const fdLast = median(fds(lastThird));
  const fdSlope = slope(ts(lastTwoThirds), fds(lastTwoThirds));
  return {
    rssFirst,
    rssLast,
    rssRatio: rssFirst === 0 ? 0 : rssLast / rssFirst,
    rssSlope,
    fdFirst,
    fdLast,
    fdSlope,
    bounded:
      Math.abs(fdLast - fdFirst) <= FD_TOLERANCE &&
      (rssSlope < RSS_SLOPE_LIMIT_MB_PER_MIN || rssLast - rssFirst < RSS_GROWTH_LIMIT_MB),
  };
}

// --- the load ---

interface Counters {
  ok: number;
  failed: number;
  skipped: number;
  inFlight: number;
  firstFailures: string[];
}

function note(c: Counters, what: string): void {
  c.failed++;
  if (c.firstFailures.length < 5) c.firstFailures.push(what);
}

async function send(pool: Pool, c: Counters, i: number): Promise<void> {
  const id = Math.floor(i / 2) % KEYS;
  const write = i % 2 === 0;
  c.inFlight++;
  try {
    const r = await pool.request(
      write
        ? {
            method: "POST",
            path: "/app/log/private",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ id, msg: `soak ${i}` }),
          }
        : { method: "GET", path: `/app/log/private?id=${id}` },
    );
    const text = await r.body.text();
    // A read of a key not written yet is a correct 404 (only in the first KEYS writes).
    if ((r.statusCode >= 200 && r.statusCode < 300) || (!write && r.statusCode === 404)) c.ok++;
    else note(c, `${write ? "POST" : "GET"} ${id}: ${r.statusCode} ${text.slice(0, 200)}`);
  } catch (e) {
    note(c, `${write ? "POST" : "GET"} ${id}: ${String(e)}`);
  } finally {
    c.inFlight--;
  }
}

/** Requests at `rate` per second for `ms`, round-robin over `pools`, sampling on the way. */
async function drive(
  pools: Pool[],
  rate: number,
  ms: number,
  sampleMs: number,
  sample: (elapsedMs: number) => void,
  c: Counters,
): Promise<void> {
  const start = performance.now();
  let issued = 0;
  let nextSample = 0;
  const pending = new Set<Promise<void>>();
  for (;;) {
    const elapsed = performance.now() - start;
    if (elapsed >= nextSample) {
      sample(elapsed);
      nextSample += sampleMs;
    }
    if (elapsed >= ms) break;
    const due = Math.floor((elapsed / 1000) * rate);
    while (issued < due) {
      const i = issued++;
      if (c.inFlight >= MAX_IN_FLIGHT) {
        c.skipped++;
        continue;
      }
      const p = send(pools[i % pools.length], c, i);
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    await delay(Math.min(20, Math.max(1, nextSample - elapsed)));
  }
  await Promise.all(pending);
}

function fmt(n: number, digits = 1): string {
  return n.toFixed(digits);
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  if (process.platform !== "linux") usage("needs Linux (/proc) to sample the nodes");
  const durationMs = opts.minutes * 60_000;
  // At least nine samples (three per third), even on a quick run.
  const sampleMs = Math.min(SAMPLE_SECONDS * 1000, durationMs / 9);
  const res = new Resources();
  const onSignal = () => {
    res.releaseNow();
    process.exit(130);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    console.log(
      `soak: ${opts.nodes} node(s), ${opts.rate} req/s (half writes over ${KEYS} keys, half reads), ` +
        `${opts.minutes} min, a sample every ${fmt(sampleMs / 1000)} s`,
    );
    const net = await startBenchNetwork(res, {
      tmpPrefix: "ccf-ts-soak-",
      bundle: LOGGING_APP,
      count: opts.nodes,
      signatures: SIGNATURES,
      timeoutMs: 120_000,
      // By default CCF's default configuration, which the soak figures in README describe;
      // BENCH_WORKER_THREADS=N soaks frontend processes too (their memory counts with the node's).
      workerThreads: benchWorkerThreads(0),
    });
    console.log(`soak: network up (pids ${net.pids.join(", ")})`);
    const pools = net.bases.map(
      (base) =>
        new Pool(base, {
          connections: CONNECTIONS_PER_NODE,
          connect: { ca: net.ca, cert: net.cert, key: net.key },
        }),
    );
    // Warm-up, not measured: every connection opened and the app's interpreters built on each node.
    for (const [n, pool] of pools.entries()) {
      await waitFor(`node ${n} to serve the app`, async () => {
        const answers = await Promise.all(
          Array.from({ length: CONNECTIONS_PER_NODE }, async (_, k) => {
            const r = await pool.request({
              method: "POST",
              path: "/app/log/private",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ id: k, msg: "warm-up" }),
            });
            await r.body.dump();
            return r.statusCode;
          }),
        );
        return answers.every((s) => s === 200) ? true : undefined;
      });
    }
    const c: Counters = { ok: 0, failed: 0, skipped: 0, inFlight: 0, firstFailures: [] };
    const samples: Sample[] = [];
    let last = { ok: 0, failed: 0, skipped: 0 };
    const header = `${"min".padStart(6)} ${net.pids.map((_, n) => `n${n} RSS MB  fds`.padStart(16)).join(" ")} ${"ok".padStart(6)} ${"failed".padStart(6)} ${"skipped".padStart(7)}`;
    console.log(header);
    const line = (s: Sample) =>
      `${fmt(s.t, 2).padStart(6)} ${s.rssMb.map((r, n) => `${fmt(r).padStart(10)} ${String(s.fds[n]).padStart(5)}`).join(" ")} ${String(s.ok).padStart(6)} ${String(s.failed).padStart(6)} ${String(s.skipped).padStart(7)}`;
    try {
      await drive(
        pools,
        opts.rate,
        durationMs,
        sampleMs,
        (elapsedMs) => {
          const s: Sample = {
            t: elapsedMs / 60_000,
            rssMb: net.pids.map(rssMb),
            fds: net.pids.map(openFds),
            ok: c.ok - last.ok,
            failed: c.failed - last.failed,
            skipped: c.skipped - last.skipped,
          };
          last = { ok: c.ok, failed: c.failed, skipped: c.skipped };
          samples.push(s);
          console.log(line(s));
        },
        c,
      );
      // The service still commits: a last write, committed on every node.
      const txId = await waitFor("a final write", async () => {
        const r = await pools[0].request({
          method: "POST",
          path: "/app/log/private",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ id: 0, msg: "final" }),
        });
        await r.body.dump();
        return r.statusCode === 200 ? String(r.headers["x-ms-ccf-transaction-id"]) : undefined;
      });
      for (const [n, pool] of pools.entries()) {
        await waitFor(`${txId} committed on node ${n}`, async () => {
          const r = await pool.request({ method: "GET", path: `/app/tx?transaction_id=${txId}` });
          return ((await r.body.json()) as { status?: string }).status === "Committed"
            ? true
            : undefined;
        });
      }
      console.log(`soak: final write ${txId} committed on every node`);
    } finally {
      await Promise.all(pools.map((p) => p.close()));
    }

    console.log(
      `\nrequests: ${c.ok} ok, ${c.failed} failed, ${c.skipped} skipped (more than ${MAX_IN_FLIGHT} in flight)` +
        ` of ${c.ok + c.failed + c.skipped} due; achieved ${fmt((c.ok + c.failed) / (durationMs / 1000))} req/s`,
    );
    for (const f of c.firstFailures) console.log(`  failure: ${f}`);
    console.log(
      `rule: no unbounded growth = open fds (median) of the last third within ±${FD_TOLERANCE} of the first third's,\n` +
        `      and the least-squares RSS slope over the last two thirds below ${RSS_SLOPE_LIMIT_MB_PER_MIN} MB/min\n` +
        `      (or the last third's mean RSS less than ${RSS_GROWTH_LIMIT_MB} MB above the first third's)`,
    );
    let bounded = true;
    for (let n = 0; n < net.pids.length; n++) {
      const v = verdict(samples, n, opts.minutes);
      bounded &&= v.bounded;
      console.log(
        `node ${n}: RSS ${fmt(v.rssFirst)} -> ${fmt(v.rssLast)} MB (ratio ${fmt(v.rssRatio, 3)}, ` +
          `slope ${fmt(v.rssSlope, 2)} MB/min); fds ${v.fdFirst} -> ${v.fdLast} (slope ${fmt(v.fdSlope, 2)}/min); ` +
          `no unbounded growth: ${v.bounded ? "yes" : "no"}`,
      );
    }
    if (opts.logs !== undefined) {
      for (const [n, output] of net.outputs.entries()) {
        writeFileSync(join(opts.logs, `n${n}.log`), output());
      }
      console.log(`node logs: ${opts.logs}/n*.log`);
    }
    const healthy = c.failed === 0;
    console.log(
      `verdict: ${bounded ? "no unbounded growth" : "GROWTH FOUND"}${healthy ? "" : `; ${c.failed} requests failed`}`,
    );
    return bounded && healthy ? 0 : 1;
  } finally {
    await res.release();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

process.exitCode = await main();
