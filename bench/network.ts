// The network the replication benchmark and the soak run: node 0 starts the service with user0 and
// an app (open at genesis), the others join while it is Opening; returns once every node is part of
// one configuration of `count` nodes. The nodes run the compiled build (bin/ccf-ts.js over dist/,
// what users run; `npm run bench` and `npm run soak` build first), not the sources through tsx,
// whose helpers cost a busy node 2-3 % (profiled).

import { mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pool } from "undici";
import { keygen } from "../src/cli/keygen.js";
import { joinCommand, singleNodeConfig } from "../test/helpers/node-config.js";
import { startNode, waitFor } from "../test/helpers/process.js";
import type { Resources } from "./replication-load.js";

/**
 * The nodes' `worker_threads` (BENCH_WORKER_THREADS, else `fallback`): frontend processes running
 * TLS and HTTP. CCF's default, and a node's, is 0. On this 2-core machine one frontend per node
 * gave the replication primary's main thread room (its CPU per write 440-510 -> 270-340 µs) for
 * 13 % more committed writes (median of three paired runs) and a lower commit latency; a single
 * node (bench app) does best with two.
 */
export function benchWorkerThreads(fallback: number): number {
  return Number(process.env.BENCH_WORKER_THREADS ?? fallback);
}

export interface BenchNetwork {
  /** The run's folder: node i's workspace is `n{i}` in it (node 0's holds the keys). */
  dir: string;
  /** Each node's output so far (its log file, `n{i}/node.log`). */
  outputs: Array<() => string>;
  /** Node 0 (the primary) first. */
  bases: string[];
  pids: number[];
  /** The service certificate and user0's certificate and key (PEM). */
  ca: string;
  cert: string;
  key: string;
}

export async function startBenchNetwork(
  res: Resources,
  o: {
    tmpPrefix: string;
    bundle: string;
    count: number;
    signatures: { tx_count: number; delay: string };
    timeoutMs: number;
    /** CCF's `worker_threads` for every node: that many frontend processes run TLS and HTTP. */
    workerThreads: number;
  },
): Promise<BenchNetwork> {
  const dir = res.dir(mkdtempSync(join(tmpdir(), o.tmpPrefix)));
  const dir0 = join(dir, "n0");
  mkdirSync(dir0);
  await keygen({ name: "member0", genEncKey: true, dir: dir0 });
  await keygen({ name: "user0", dir: dir0 });
  const config0 = singleNodeConfig(dir0, {
    start: {
      users: [{ certificate_file: join(dir0, "user0_cert.pem") }],
      js_app_bundle: o.bundle,
    },
    signatures: o.signatures,
  });
  config0.worker_threads = o.workerThreads;
  const first = await startNode(dir0, config0, true, true);
  res.child(first.node);
  const serviceCert = join(dir0, "service_cert.pem");
  const ca = readFileSync(serviceCert, "utf8");
  const started = [first];
  for (let i = 1; i < o.count; i++) {
    const d = join(dir, `n${i}`);
    mkdirSync(d);
    const config = singleNodeConfig(d, { signatures: o.signatures });
    config.worker_threads = o.workerThreads;
    config.command = joinCommand(serviceCert, first.base);
    const joiner = await startNode(d, config, true, true);
    res.child(joiner.node);
    started.push(joiner);
  }
  const getJson = async (base: string, path: string) => {
    const pool = new Pool(base, { connect: { ca } });
    try {
      const r = await pool.request({ method: "GET", path });
      return (await r.body.json()) as Record<string, unknown>;
    } finally {
      await pool.close();
    }
  };
  await waitFor(
    `${o.count} trusted nodes in one configuration on the primary`,
    async () => {
      const details = (await getJson(first.base, "/node/consensus")).details as {
        configs: Array<{ nodes: Record<string, unknown> }>;
      };
      return details.configs.length === 1 &&
        Object.keys(details.configs[0]?.nodes ?? {}).length === o.count
        ? true
        : undefined;
    },
    o.timeoutMs,
  );
  for (const n of started) {
    await waitFor(
      `${n.base} to be part of the network`,
      async () =>
        (await getJson(n.base, "/node/state")).state === "PartOfNetwork" ? true : undefined,
      o.timeoutMs,
    );
  }
  return {
    dir,
    outputs: started.map((n) => n.node.output),
    bases: started.map((n) => n.base),
    pids: started.map((n) => n.node.pid ?? 0),
    ca,
    cert: readFileSync(join(dir0, "user0_cert.pem"), "utf8"),
    key: readFileSync(join(dir0, "user0_privk.pem"), "utf8"),
  };
}
