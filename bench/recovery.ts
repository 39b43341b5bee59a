// Disaster-recovery replay speed: writes a ledger of BENCH_TXS transactions (100-byte values, half
// to a private map, a signature every 5000 as CCF) through the real pipeline and file ledger, then
// times what a recovering node does with it: the public replay (every signature and root
// verified, state rebuilt, cut at the last signature) and, with the recovered secrets, the private
// replay (every entry decrypted, its GCM tag checked). Prints `recovery replay: N tx/s`.

import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store } from "../src/kv/index.js";
import { FileLedger } from "../src/ledger/index.js";
import { MerkleTree } from "../src/merkle/index.js";
import { replayPrivateLedger, replayPublicLedger } from "../src/node/recovery.js";
import { writeBenchLedger } from "./ledger-fixture.js";

const TOTAL = Number(process.env.BENCH_TXS ?? 100_000);
const SIGNATURE_EVERY = 5000;
const RUNS = 3;
const AIM = 30_000;

export async function run(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), "ccf-ts-bench-recovery-"));
  const source = join(root, "ledger");
  try {
    const secrets = await writeBenchLedger(source, {
      seed: 11,
      total: TOTAL,
      signatureEvery: SIGNATURE_EVERY,
      privateEvery: 2,
    });
    console.log(
      `ledger: ${TOTAL} transactions (half private), a signature every ${SIGNATURE_EVERY}`,
    );
    let best = { total: 0, pub: 0, priv: 0 };
    for (let run = 0; run < RUNS; run++) {
      const dir = join(root, `run${run}`);
      cpSync(source, dir, { recursive: true });
      const storage = FileLedger.open(dir, { chunkSize: 5_000_000 });
      const t0 = process.hrtime.bigint();
      const replay = replayPublicLedger(dir, storage, {
        store: new Store(),
        tree: new MerkleTree(),
      });
      const t1 = process.hrtime.bigint();
      const maps = replayPrivateLedger(storage, replay.lastSignedSeqno, secrets);
      const t2 = process.hrtime.bigint();
      if (maps.get("records")?.size !== 5000) throw new Error("private records not recovered");
      const n = replay.lastSignedSeqno;
      const rate = (ns: bigint) => Math.round(n / (Number(ns) / 1e9));
      const total = rate(t2 - t0);
      if (total > best.total) best = { total, pub: rate(t1 - t0), priv: rate(t2 - t1) };
      await storage.close();
      rmSync(dir, { recursive: true, force: true });
    }
    console.log(`public replay: ${best.pub} tx/s`);
    console.log(`private replay: ${best.priv} tx/s`);
    console.log(`recovery replay: ${best.total} tx/s`);
    console.log(`aim: ${AIM} tx/s`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
