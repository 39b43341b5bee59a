// Offline audit speed: writes a ledger of BENCH_TXS transactions (100-byte public values, a
// signature every BENCH_SIGNATURE_EVERY, default 5000 as CCF) through the real pipeline and file
// ledger, then times the library's full verification (readLedger), without and with the ledger secret.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LedgerSecrets, readLedger } from "../src/ledger/index.js";
import { writeBenchLedger } from "./ledger-fixture.js";

const TOTAL = Number(process.env.BENCH_TXS ?? 100_000);
// CCF's default ledger_signatures.tx_count, as a node writes its ledger (each signature costs a
// certificate chain and an ECDSA check: 1000 gives about two thirds of the rate here).
const SIGNATURE_EVERY = Number(process.env.BENCH_SIGNATURE_EVERY ?? 5000);
const RUNS = 3;
const AIM = 50_000;

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
    const secrets = await writeBenchLedger(dir, {
      seed: 7,
      total: TOTAL,
      signatureEvery: SIGNATURE_EVERY,
    });
    console.log(`ledger: ${TOTAL} transactions, a signature every ${SIGNATURE_EVERY}`);
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
