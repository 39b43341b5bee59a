// Offline audit speed: writes a ledger of BENCH_TXS transactions (100-byte public values, a
// signature every BENCH_SIGNATURE_EVERY, default 1000) through the real pipeline and file ledger,
// then times the library's full verification (readLedger), without and with the ledger secret.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createSelfSignedCertificate,
  createServiceCertificate,
  EcKeyPair,
  nodeIdFromPublicKey,
  seededRng,
} from "../src/crypto/index.js";
import { encodeValue, idKey, SINGLETON_KEY, Store, Tables } from "../src/kv/index.js";
import {
  FileLedger,
  LedgerSecrets,
  readLedger,
  systemClock,
  TxPipeline,
} from "../src/ledger/index.js";
import { MerkleTree } from "../src/merkle/index.js";

const TOTAL = Number(process.env.BENCH_TXS ?? 100_000);
const SIGNATURE_EVERY = Number(process.env.BENCH_SIGNATURE_EVERY ?? 1000);
const RUNS = 3;
const AIM = 50_000;

async function writeLedger(dir: string): Promise<LedgerSecrets> {
  const rng = seededRng(7);
  const nodeKey = EcKeyPair.generate("secp384r1", rng);
  const serviceKey = EcKeyPair.generate("secp384r1", rng);
  const validFrom = new Date();
  const serviceCert = await createServiceCertificate(serviceKey, {
    validFrom,
    validityDays: 1,
    rng,
  });
  const nodeCert = await createSelfSignedCertificate(nodeKey, {
    subjectName: "CN=CCF Node",
    validFrom,
    validityDays: 1,
    rng,
  });
  const nodeId = nodeIdFromPublicKey(nodeKey.publicKey);
  const secrets = new LedgerSecrets([{ key: Buffer.from(rng.bytes(32)), version: 1 }]);
  const storage = FileLedger.open(dir, { chunkSize: 5 * 1024 * 1024 });
  const pipeline = new TxPipeline({
    store: new Store(),
    storage,
    tree: new MerkleTree(),
    secrets,
    node: { nodeId, key: nodeKey, certPem: nodeCert },
    service: { key: serviceKey },
    view: 2,
    signatures: { txCount: SIGNATURE_EVERY, delayMs: 1_000_000 },
    clock: systemClock,
  });
  pipeline.execute((tx) => {
    tx.map(Tables.SERVICE).set(
      SINGLETON_KEY,
      encodeValue(Tables.SERVICE, { cert: serviceCert, status: "Opening" }),
    );
    tx.map(Tables.NODES).set(idKey(nodeId), encodeValue(Tables.NODES, { status: "Trusted" }));
    tx.map(Tables.NODE_ENDORSED_CERTIFICATES).set(
      idKey(nodeId),
      encodeValue(Tables.NODE_ENDORSED_CERTIFICATES, nodeCert),
    );
  });
  const value = Buffer.alloc(100, 0x61);
  for (let i = 0; i < TOTAL; i++) {
    const key = Buffer.from(String(i % 10_000));
    pipeline.execute((tx) => tx.map("public:records").set(key, value));
    if (i % 5000 === 4999) await pipeline.flush();
  }
  pipeline.emitSignature();
  await pipeline.flush();
  pipeline.committed(pipeline.lastSignedSeqno);
  await storage.close();
  return secrets;
}

/**
 * Best of RUNS full verifications, by wall time and by this process's CPU time (the box is shared:
 * the best run is the least disturbed one).
 */
function timeVerify(dir: string, secrets?: LedgerSecrets): { wall: number; cpu: number } {
  const best = { wall: 0, cpu: 0 };
  for (let i = 0; i < RUNS; i++) {
    const start = process.hrtime.bigint();
    const cpuStart = process.cpuUsage();
    const report = readLedger(dir, secrets === undefined ? {} : { secrets });
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const cpu = process.cpuUsage(cpuStart);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    best.wall = Math.max(best.wall, Math.round(report.entries / seconds));
    best.cpu = Math.max(best.cpu, Math.round(report.entries / cpuSeconds));
  }
  return best;
}

export async function run(): Promise<void> {
  const dir = join(mkdtempSync(join(tmpdir(), "ccf-ts-bench-audit-")), "ledger");
  try {
    const secrets = await writeLedger(dir);
    const plain = timeVerify(dir);
    console.log(`audit: ${plain.wall} tx/s`);
    console.log(`audit (cpu time): ${plain.cpu} tx/s`);
    const withSecret = timeVerify(dir, secrets);
    console.log(`audit with ledger secret: ${withSecret.wall} tx/s`);
    console.log(`audit with ledger secret (cpu time): ${withSecret.cpu} tx/s`);
    console.log(`aim: ${AIM} tx/s`);
  } finally {
    rmSync(join(dir, ".."), { recursive: true, force: true });
  }
}
