// One node in its own process serving the basic sample app over HTTPS to 32 keep-alive
// connections with a user certificate: writes (PUT /app/records/{k}) then reads (GET), as tx/s
// and latency percentiles, and the CPU each request cost the node, its frontends and the load
// generator (from /proc); then the same client against a hello-world `node:https` server (the
// machine's ceiling for any Node.js HTTPS service with this client); then the sandbox's own
// per-call cost. Each server gets an untimed warm-up (BENCH_WARMUP_SECONDS, 5) first. The load generator runs in this process, the server in another: each can use a
// core of its own, as with any server benchmark.

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BenchClient, type BenchRequest } from "./http-client.js";
import { ALLOCATOR_VARIABLE, describeAllocator, nodeAllocator } from "../src/node/allocator.js";
import { PACKAGE_ROOT } from "../src/node/version.js";
import { waitFor } from "../test/helpers/process.js";
import { benchWorkerThreads, startBenchNetwork } from "./network.js";
import { processTreeCpu, Resources, WARMUP_MS } from "./replication-load.js";

const CONNECTIONS = 32;
/** Two frontend processes (see benchWorkerThreads). */
const WORKER_THREADS = benchWorkerThreads(2);
const DURATION_MS = Number(process.env.BENCH_SECONDS ?? 5) * 1000;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

interface Figures {
  rate: number;
  p50: number;
  p99: number;
  failed: number;
  /** CPU per request (µs) over the window, when the server's pid is known and /proc is there. */
  cpu?: { node: number; frontends: number; loadGenerator: number };
  /**
   * The node's main thread over the window: µs it ran per request, and the share of the window
   * it was running and waiting for a core (from its schedstat; absent without it).
   */
  mainThread?: { perRequest: number; running: number; waiting: number };
}

interface CpuSample {
  at: number;
  node: number | undefined;
  tree: number | undefined;
  self: NodeJS.CpuUsage;
  /** The node's main thread: nanoseconds run and waited on a run queue so far. */
  main: { run: number; wait: number } | undefined;
}

/** The main thread's schedstat (run and run-queue wait, ns), or undefined without it. */
function mainThreadSchedstat(pid: number): { run: number; wait: number } | undefined {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8")
      .trim()
      .split(" ")
      .map(Number);
    return run === undefined || wait === undefined || Number.isNaN(run + wait)
      ? undefined
      : { run, wait };
  } catch {
    return undefined;
  }
}

/** CPU (µs) used so far by the node alone, by the node with its frontend processes, and here. */
function cpuNow(nodePid: number | undefined): CpuSample {
  return {
    at: performance.now(),
    node: nodePid === undefined ? undefined : processTreeCpu([nodePid], false),
    tree: nodePid === undefined ? undefined : processTreeCpu([nodePid]),
    self: process.cpuUsage(),
    main: nodePid === undefined ? undefined : mainThreadSchedstat(nodePid),
  };
}

/** The node's main thread between two samples (see Figures.mainThread). */
function mainThreadFigures(a: CpuSample, b: CpuSample, n: number): Figures["mainThread"] {
  if (a.main === undefined || b.main === undefined || n === 0) return undefined;
  const windowNs = (b.at - a.at) * 1e6;
  const run = b.main.run - a.main.run;
  return {
    perRequest: run / 1000 / n,
    running: run / windowNs,
    waiting: (b.main.wait - a.main.wait) / windowNs,
  };
}

/** The CPU `n` requests cost between two samples; undefined without the server's figures. */
function cpuPerRequest(a: CpuSample, b: CpuSample, n: number): Figures["cpu"] {
  if (a.node === undefined || a.tree === undefined || b.node === undefined || b.tree === undefined)
    return undefined;
  if (n === 0) return undefined;
  const node = b.node - a.node;
  const self = process.cpuUsage(a.self);
  return {
    node: node / n,
    frontends: (b.tree - a.tree - node) / n,
    loadGenerator: (self.user + self.system) / n,
  };
}

async function load(
  client: BenchClient,
  request: (i: number) => BenchRequest,
  durationMs = DURATION_MS,
  nodePid?: number,
): Promise<Figures> {
  const latencies: number[] = [];
  const cpu0 = cpuNow(nodePid);
  let failed = 0;
  let next = 0;
  const start = performance.now();
  const deadline = start + durationMs;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      for (;;) {
        const t0 = performance.now();
        if (t0 >= deadline) break;
        const res = await client.send(request(next++));
        if (res.status >= 300) {
          if (failed === 0)
            console.error(`first failure: ${res.status} ${res.body.toString().slice(0, 300)}`);
          failed++;
        }
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const cpu1 = cpuNow(nodePid);
  const cpu = cpuPerRequest(cpu0, cpu1, latencies.length);
  const mainThread = mainThreadFigures(cpu0, cpu1, latencies.length);
  latencies.sort((a, b) => a - b);
  return {
    rate: Math.round(latencies.length / seconds),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    failed,
    ...(cpu === undefined ? {} : { cpu }),
    ...(mainThread === undefined ? {} : { mainThread }),
  };
}

function print(name: string, f: Figures): void {
  console.log(`${name}: ${f.rate} tx/s`);
  console.log(`${name} p50: ${f.p50.toFixed(2)} ms`);
  console.log(`${name} p99: ${f.p99.toFixed(2)} ms`);
  if (f.cpu !== undefined) {
    const { node, frontends, loadGenerator } = f.cpu;
    console.log(
      `${name} CPU per request: ${(node + frontends).toFixed(1)} us (node ${node.toFixed(1)}, ` +
        `frontends ${frontends.toFixed(1)}; load generator ${loadGenerator.toFixed(1)})`,
    );
  }
  if (f.mainThread !== undefined) {
    const { perRequest, running, waiting } = f.mainThread;
    console.log(
      `${name} node main thread: ${perRequest.toFixed(1)} us per request, running ` +
        `${(running * 100).toFixed(0)} % of the time, waiting for a core ${(waiting * 100).toFixed(0)} %`,
    );
  }
}

/** The hello-world `node:https` server of https-baseline.ts, in a child process. */
async function baseline(res: Resources, keyFile: string, certFile: string): Promise<Figures> {
  const script = join(import.meta.dirname, "https-baseline.ts");
  const child = res.child(
    spawn(process.execPath, ["--import", "tsx", script, keyFile, certFile], {
      cwd: PACKAGE_ROOT,
      stdio: ["ignore", "pipe", "inherit"],
      // The same allocator as the nodes it is the ceiling for.
      env: nodeAllocator().env,
    }),
  );
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const port = await waitFor(
    "the baseline server's port",
    () => /port (\d+)/.exec(out)?.[1],
    30_000,
  );
  const client = new BenchClient(`https://127.0.0.1:${port}`, {
    connections: CONNECTIONS,
    insecure: true,
    cert: readFileSync(certFile, "utf8"),
    key: readFileSync(keyFile, "utf8"),
  });
  try {
    await load(client, () => ({ method: "GET", path: "/" }), WARMUP_MS);
    return await load(client, () => ({ method: "GET", path: "/" }));
  } finally {
    await client.close();
  }
}

export async function run(): Promise<void> {
  const res = new Resources();
  try {
    const net = await startBenchNetwork(res, {
      tmpPrefix: "ccf-ts-bench-app-",
      bundle: join(PACKAGE_ROOT, "samples/apps/basic/dist/bundle.json"),
      count: 1,
      signatures: { tx_count: 5000, delay: "100ms" },
      timeoutMs: 60_000,
      workerThreads: WORKER_THREADS,
    });
    const client = new BenchClient(net.bases[0] ?? "", {
      connections: CONNECTIONS,
      ca: net.ca,
      cert: net.cert,
      key: net.key,
    });
    const value = "a twenty char value!";
    // Untimed: the node's steady state is measured, not V8 optimising its request path.
    await load(
      client,
      (i) => ({ method: "PUT", path: `/app/records/w${i % 1000}`, body: value }),
      WARMUP_MS,
    );
    let written = 0;
    const nodePid = net.pids[0];
    const writes = await load(
      client,
      (i) => {
        written = Math.max(written, Math.min(i + 1, 1000));
        return { method: "PUT", path: `/app/records/k${i % 1000}`, body: value };
      },
      DURATION_MS,
      nodePid,
    );
    // only keys whose write has completed are read back
    const readable = Math.max(1, Math.min(written, 1000) - CONNECTIONS);
    const reads = await load(
      client,
      (i) => ({ method: "GET", path: `/app/records/k${i % readable}` }),
      DURATION_MS,
      nodePid,
    );
    await client.close();
    console.log(
      `worker_threads ${WORKER_THREADS} (frontend processes for TLS and HTTP; BENCH_WORKER_THREADS=0 for CCF's default)`,
    );
    console.log(
      `memory allocator: ${describeAllocator(nodeAllocator())} (${ALLOCATOR_VARIABLE}=system for Node's own)`,
    );
    print("writes", writes);
    print("reads", reads);
    console.log(`failed requests: ${writes.failed + reads.failed}`);
    console.log("aim: writes 10000 tx/s, reads 20000 tx/s");
    const dir0 = join(net.dir, "n0");
    const base = await baseline(res, join(dir0, "user0_privk.pem"), join(dir0, "user0_cert.pem"));
    console.log(`node:https hello world (ceiling for this client and machine): ${base.rate} tx/s`);
  } finally {
    await res.release();
  }
  const sandbox = await import("./sandbox.js");
  await sandbox.run();
}
