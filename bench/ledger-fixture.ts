// The ledger the audit and recovery benchmarks read: `total` transactions of 100-byte values
// (keys cycling over 10000), written through the tests' one-node service (real pipeline and file
// ledger), a signature every `signatureEvery` transactions only; with `privateEvery` N, every
// Nth write goes to a private map.

import type { LedgerSecrets } from "../src/ledger/index.js";
import { startService } from "../test/ledger/service-fixture.js";

export async function writeBenchLedger(
  dir: string,
  o: { seed: number; total: number; signatureEvery: number; privateEvery?: number },
): Promise<LedgerSecrets> {
  const { pipeline, storage, secrets } = await startService({
    seed: o.seed,
    dir,
    txCount: o.signatureEvery,
  });
  const value = Buffer.alloc(100, 0x61);
  for (let i = 0; i < o.total; i++) {
    const key = Buffer.from(String(i % 10_000));
    const map =
      o.privateEvery !== undefined && i % o.privateEvery === 0 ? "records" : "public:records";
    pipeline.execute((tx) => tx.map(map).set(key, value));
    if (i % 5000 === 4999) await pipeline.flush();
  }
  pipeline.emitSignature();
  await pipeline.flush();
  pipeline.committed(pipeline.lastSignedSeqno);
  await storage.close();
  return secrets;
}
