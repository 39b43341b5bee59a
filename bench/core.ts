// The in-process write path on one core: KV commit, serialise, encrypt, hash, Merkle append,
// ledger append with group-committed fdatasync, and a signature every 5000 transactions.
//
// One untimed warm-up round (JIT), then BENCH_ROUNDS timed rounds, each on a fresh pipeline and
// ledger; the figure is their median (the box is shared: one round can land on a busy moment).

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import {
  createSelfSignedCertificate,
  EcKeyPair,
  nodeIdFromPublicKey,
  systemRng,
} from "../src/crypto/index.js";
import { Store } from "../src/kv/index.js";
import { FileLedger, LedgerSecrets, systemClock, TxPipeline } from "../src/ledger/index.js";
import { MerkleTree } from "../src/merkle/index.js";

const TOTAL = Number(process.env.BENCH_TXS ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const WARMUP = 20_000;
const FLUSH_EVERY = 500;
const AIM = 40_000;

/** Runs `count` transactions through a fresh pipeline; returns tx/s. */
async function round(count: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-bench-"));
  const nodeKey = EcKeyPair.generate();
  const serviceKey = EcKeyPair.generate();
  const cert = await createSelfSignedCertificate(nodeKey, {
    subjectName: "CN=CCF Node",
    validFrom: new Date(),
    validityDays: 1,
  });
  const storage = FileLedger.open(join(dir, "ledger"), { chunkSize: 5 * 1024 * 1024 });
  const pipeline = new TxPipeline({
    store: new Store(),
    storage,
    tree: new MerkleTree(),
    secrets: new LedgerSecrets([{ key: Buffer.from(systemRng.bytes(32)), version: 1 }]),
    node: { nodeId: nodeIdFromPublicKey(nodeKey.publicKey), key: nodeKey, certPem: cert },
    service: { key: serviceKey },
    view: 2,
    signatures: { txCount: 5000, delayMs: 1000 },
    clock: systemClock,
  });
  const msg = Buffer.from("a twenty char message");
  const start = process.hrtime.bigint();
  let pending: Promise<void> = Promise.resolve();
  for (let i = 0; i < count; i++) {
    const key = Buffer.from(String(i % 10_000));
    pipeline.execute((tx) => tx.map("records").set(key, msg));
    if (i % FLUSH_EVERY === FLUSH_EVERY - 1) {
      pending = pipeline.flush();
      await yieldToLoop();
    }
    if (pipeline.lastSignedSeqno > 0 && i % 5000 === 4999)
      pipeline.committed(pipeline.lastSignedSeqno);
  }
  await pending;
  await pipeline.flush();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
  return Math.round(count / seconds);
}

export async function run(): Promise<void> {
  await round(WARMUP);
  const rates: number[] = [];
  for (let r = 0; r < ROUNDS; r++) rates.push(await round(TOTAL));
  const sorted = [...rates].sort((a, b) => a - b);
  console.log(`rounds (${TOTAL} tx each): ${rates.join(", ")} tx/s`);
  console.log(`core pipeline: ${sorted[Math.floor(sorted.length / 2)]} tx/s`);
  console.log(`aim: ${AIM} tx/s`);
}
