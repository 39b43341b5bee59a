// The ccf-ts half of the replication benchmark: three `ccf-ts node` processes (node 0 starts the
// service with user0 and the basic app; nodes 1 and 2 join while it is Opening, so they are
// trusted at once, as test/e2e/multinode.test.ts does), then 64 keep-alive HTTPS connections
// writing fresh keys to the primary. A client does not wait for commit: commit is observed by
// polling the primary's `/node/commit`, and a write is committed once its TxID is at or below
// the commit TxID in the same view.

import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as delay } from "node:timers/promises";
import { BenchClient } from "./http-client.js";
import { PACKAGE_ROOT } from "../src/node/version.js";
import { waitFor } from "../test/helpers/process.js";
import { benchWorkerThreads, startBenchNetwork } from "./network.js";
import {
  CONNECTIONS,
  CommitWindow,
  DRAIN_MS,
  type LoadResult,
  type Resources,
  valueFor,
} from "./replication-load.js";

const COMMIT_POLL_MS = 10;
/** CCF's default is 1 s; the single-node app benchmark signs every 100 ms, and so does this one. */
/** One frontend process per node (see benchWorkerThreads). */
export const WORKER_THREADS = benchWorkerThreads(1);
export const SIGNATURE_DELAY = process.env.BENCH_SIGNATURE_DELAY ?? "100ms";
const SIGNATURES = { tx_count: 5000, delay: SIGNATURE_DELAY };

interface TxId {
  view: number;
  seqno: number;
}

function parseTxId(s: unknown): TxId | undefined {
  const m = typeof s === "string" ? /^(\d+)\.(\d+)$/.exec(s) : null;
  return m ? { view: Number(m[1]), seqno: Number(m[2]) } : undefined;
}

export async function runCcf(res: Resources, tag: string): Promise<LoadResult> {
  const net = await startBenchNetwork(res, {
    tmpPrefix: "ccf-ts-bench-repl-",
    bundle: join(PACKAGE_ROOT, "samples/apps/basic/dist/bundle.json"),
    count: 3,
    signatures: SIGNATURES,
    timeoutMs: 60_000,
    workerThreads: WORKER_THREADS,
  });
  const { ca, cert, key } = net;
  const base = net.bases[0];
  const writes = new BenchClient(base, { connections: CONNECTIONS, ca, cert, key });
  const poller = new BenchClient(base, { ca });
  try {
    await waitFor("the basic app to accept a write", async () => {
      const r = await writes.send({ method: "PUT", path: `/app/records/${tag}-ready`, body: "x" });
      return r.status === 204 ? true : undefined;
    });
    const window = new CommitWindow(performance.now(), () => res.pids());
    const pending: Array<TxId & { sentAt: number }> = [];
    let next = 0;
    let writing = true;
    let firstFailure = true;

    const writer = async () => {
      while (performance.now() < window.end) {
        const i = next++;
        const sentAt = performance.now();
        try {
          const r = await writes.send({
            method: "PUT",
            path: `/app/records/${tag}-${i}`,
            body: valueFor(i),
          });
          const txId = parseTxId(r.headers["x-ms-ccf-transaction-id"]);
          if (r.status !== 204 || txId === undefined) {
            if (firstFailure)
              console.error(
                `ccf-ts: first failed write: ${r.status} ${r.body.toString().slice(0, 300)}`,
              );
            firstFailure = false;
            window.failed++;
            continue;
          }
          window.accept(sentAt);
          pending.push({ ...txId, sentAt });
        } catch (e) {
          if (firstFailure) console.error(`ccf-ts: first failed write: ${String(e)}`);
          firstFailure = false;
          window.failed++;
        }
      }
    };

    const poll = async () => {
      let drainUntil = Number.POSITIVE_INFINITY;
      for (;;) {
        const r = await poller.send({ method: "GET", path: "/node/commit" });
        const commit = parseTxId(
          (JSON.parse(r.body.toString()) as { transaction_id?: string }).transaction_id,
        );
        const now = performance.now();
        if (commit !== undefined) {
          let kept = 0;
          for (const w of pending) {
            // A write of an earlier view than the commit may have been rolled back: left pending,
            // it ends up counted as uncommitted, never as committed.
            if (w.view === commit.view && w.seqno <= commit.seqno) window.commit(w.sentAt, now);
            else pending[kept++] = w;
          }
          pending.length = kept;
        }
        if (!writing) {
          drainUntil = Math.min(drainUntil, now + DRAIN_MS);
          if (!pending.some((w) => window.measured(w.sentAt)) || now > drainUntil) return;
        }
        await delay(COMMIT_POLL_MS);
      }
    };

    const polling = poll();
    await Promise.all(Array.from({ length: CONNECTIONS }, writer));
    writing = false;
    await polling;
    return window.result();
  } finally {
    await writes.close();
    await poller.close();
  }
}
