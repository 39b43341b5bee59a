// One node in this process serving the basic sample app over HTTPS to 32 keep-alive connections
// with a user certificate: writes (PUT /app/records/{k}) then reads (GET), as tx/s and latency
// percentiles; then the sandbox's own per-call cost.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pool } from "undici";
import { keygen } from "../src/cli/keygen.js";
import { parseNodeConfig } from "../src/node/config.js";
import { createLogger } from "../src/node/log.js";
import { Node } from "../src/node/node.js";
import { PACKAGE_ROOT } from "../src/node/version.js";
import { singleNodeConfig } from "../test/helpers/node-config.js";

const CONNECTIONS = 32;
const DURATION_MS = Number(process.env.BENCH_SECONDS ?? 5) * 1000;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function load(
  pool: Pool,
  request: (i: number) => { method: "GET" | "PUT"; path: string; body?: string },
): Promise<{ rate: number; p50: number; p99: number; failed: number }> {
  const latencies: number[] = [];
  let failed = 0;
  let next = 0;
  const deadline = Date.now() + DURATION_MS;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (Date.now() < deadline) {
        const r = request(next++);
        const t0 = process.hrtime.bigint();
        const res = await pool.request({ method: r.method, path: r.path, body: r.body });
        const body = Buffer.from(await res.body.arrayBuffer());
        if (res.statusCode >= 300) {
          if (failed === 0)
            console.error(`first failure: ${res.statusCode} ${body.toString().slice(0, 300)}`);
          failed++;
        }
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  latencies.sort((a, b) => a - b);
  return {
    rate: Math.round(latencies.length / seconds),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    failed,
  };
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-bench-app-"));
  await keygen({ name: "member0", genEncKey: true, dir });
  await keygen({ name: "user0", dir });
  const config = parseNodeConfig(
    singleNodeConfig(dir, {
      start: {
        users: [{ certificate_file: join(dir, "user0_cert.pem") }],
        js_app_bundle: join(PACKAGE_ROOT, "samples/apps/basic/dist/bundle.json"),
        open_service: true,
      },
      signatures: { tx_count: 5000, delay: "100ms" },
    }),
    dir,
  );
  const node = await Node.start(config, createLogger("fatal"));
  const address = node.rpcAddresses().primary_rpc_interface;
  const pool = new Pool(`https://${address}`, {
    connections: CONNECTIONS,
    connect: {
      ca: readFileSync(join(dir, "service_cert.pem"), "utf8"),
      cert: readFileSync(join(dir, "user0_cert.pem"), "utf8"),
      key: readFileSync(join(dir, "user0_privk.pem"), "utf8"),
    },
  });
  const value = "a twenty char value!";
  let written = 0;
  const writes = await load(pool, (i) => {
    written = Math.max(written, Math.min(i + 1, 1000));
    return { method: "PUT", path: `/app/records/k${i % 1000}`, body: value };
  });
  // only keys whose write has completed are read back
  const readable = Math.max(1, Math.min(written, 1000) - CONNECTIONS);
  const reads = await load(pool, (i) => ({ method: "GET", path: `/app/records/k${i % readable}` }));
  await pool.close();
  await node.stop();
  rmSync(dir, { recursive: true, force: true });
  console.log(`writes: ${writes.rate} tx/s`);
  console.log(`writes p50: ${writes.p50.toFixed(2)} ms`);
  console.log(`writes p99: ${writes.p99.toFixed(2)} ms`);
  console.log(`reads: ${reads.rate} tx/s`);
  console.log(`reads p50: ${reads.p50.toFixed(2)} ms`);
  console.log(`reads p99: ${reads.p99.toFixed(2)} ms`);
  console.log(`failed requests: ${writes.failed + reads.failed}`);
  const sandbox = await import("./sandbox.js");
  await sandbox.run();
}
