import assert from "node:assert/strict";
import { readdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { FileLedger, parseChunk, readLedger } from "../../src/ledger/index.js";
import { startService, tempDir, writeRecords } from "./service-fixture.js";

/** A correctly framed entry (version 1, u48 size) whose body names its seqno. */
function entry(seqno: number, bodySize = 100): Buffer {
  const b = Buffer.alloc(8 + bodySize, seqno % 251);
  b[0] = 1;
  b[1] = 0;
  b.writeUIntLE(bodySize, 2, 6);
  return b;
}

function fill(ledger: FileLedger, from: number, to: number, sigEvery: number): void {
  for (let s = from; s <= to; s++) ledger.append(s, entry(s), { signature: s % sigEvery === 0 });
}

describe("file ledger", () => {
  it("ends a chunk at the first signature past chunk_size, with CCF's positions table", async () => {
    const dir = join(tempDir(), "ledger");
    const ledger = FileLedger.open(dir, { chunkSize: 500 });
    fill(ledger, 1, 20, 5);
    await ledger.flush();
    // 108-byte entries: a chunk passes 500 bytes after 5 entries, and 5 is a signature
    assert.deepEqual(
      readdirSync(dir).sort(),
      ["ledger_1-5", "ledger_11-15", "ledger_16-20", "ledger_6-10"].sort(),
    );
    const chunk = readFileSync(join(dir, "ledger_6-10"));
    const layout = parseChunk(chunk);
    assert.ok(layout.complete);
    assert.deepEqual(
      layout.entries.map((e) => e.offset),
      [8, 116, 224, 332, 440],
    );
    assert.equal(Number(chunk.readBigUInt64LE(0)), 548);
    assert.deepEqual(ledger.read(7), entry(7));
    await ledger.close();
  });

  it("marks chunks committed only once they are committed and durable", async () => {
    const dir = join(tempDir(), "ledger");
    const ledger = FileLedger.open(dir, { chunkSize: 500 });
    fill(ledger, 1, 12, 5);
    ledger.commit(7);
    assert.deepEqual(readdirSync(dir).sort(), ["ledger_1-5.committed", "ledger_11", "ledger_6-10"]);
    ledger.commit(12);
    assert.deepEqual(readdirSync(dir).sort(), [
      "ledger_1-5.committed",
      "ledger_11",
      "ledger_6-10.committed",
    ]);
    await ledger.close();
  });

  it("group-commits: one flush makes every earlier append durable, and reads see unflushed entries", async () => {
    const dir = join(tempDir(), "ledger");
    const ledger = FileLedger.open(dir, { chunkSize: 1 << 20 });
    fill(ledger, 1, 50, 1000);
    assert.equal(ledger.durableSeqno, 0);
    assert.deepEqual(ledger.read(50), entry(50));
    const flushes = [ledger.flush(), ledger.flush()];
    fill(ledger, 51, 60, 1000);
    await Promise.all(flushes);
    assert.ok(ledger.durableSeqno >= 50);
    await ledger.flush();
    assert.equal(ledger.durableSeqno, 60);
    assert.equal(readFileSync(join(dir, "ledger_1")).length, 8 + 60 * 108);
    await ledger.close();
  });

  it("truncates an uncommitted suffix across chunk boundaries and appends after it", async () => {
    const dir = join(tempDir(), "ledger");
    const ledger = FileLedger.open(dir, { chunkSize: 500 });
    fill(ledger, 1, 18, 5);
    ledger.commit(5);
    ledger.truncate(8);
    assert.equal(ledger.lastSeqno, 8);
    assert.deepEqual(readdirSync(dir).sort(), ["ledger_1-5.committed", "ledger_6"]);
    assert.equal(ledger.read(9), undefined);
    fill(ledger, 9, 10, 5);
    await ledger.flush();
    assert.deepEqual(readdirSync(dir).sort(), ["ledger_1-5.committed", "ledger_6-10"]);
    assert.deepEqual(ledger.read(9), entry(9));
    assert.throws(() => ledger.truncate(3), /committed/);
    await ledger.close();
  });

  it("refuses out-of-order appends", async () => {
    const ledger = FileLedger.open(join(tempDir(), "ledger"), { chunkSize: 500 });
    ledger.append(1, entry(1), { signature: false });
    assert.throws(
      () => ledger.append(3, entry(3), { signature: false }),
      /appending seqno 3 after 1/,
    );
    await ledger.close();
  });

  it("reopens a directory and continues after its last entry", async () => {
    const dir = join(tempDir(), "ledger");
    const first = FileLedger.open(dir, { chunkSize: 500 });
    fill(first, 1, 13, 5);
    await first.close();
    const again = FileLedger.open(dir, { chunkSize: 500 });
    assert.equal(again.lastSeqno, 13);
    fill(again, 14, 15, 5);
    await again.flush();
    assert.deepEqual(readdirSync(dir).sort(), ["ledger_1-5", "ledger_11-15", "ledger_6-10"]);
    assert.deepEqual(again.read(12), entry(12));
    await again.close();
  });

  it("keeps nothing but chunk files in the ledger directory", async () => {
    const svc = await startService({ chunkSize: 3000 });
    writeRecords(svc, 30);
    await svc.pipeline.flush();
    svc.pipeline.committed(svc.pipeline.lastSignedSeqno);
    await svc.storage.close();
    assert.ok(readdirSync(svc.dir).every((f) => /^ledger_\d+(-\d+(\.committed)?)?$/.test(f)));
  });
});

describe("ledger reader on a crashed node", () => {
  it("reports a torn last entry in the open chunk, and truncates it when asked", async () => {
    const svc = await startService({ txCount: 1000 });
    writeRecords(svc, 5);
    await svc.pipeline.flush();
    await svc.storage.close();
    const open = readdirSync(svc.dir).find((f) => !f.includes("-")) as string;
    const path = join(svc.dir, open);
    const size = readFileSync(path).length;
    truncateSync(path, size - 7);
    const seen = readLedger(svc.dir, { secrets: svc.secrets });
    assert.equal(seen.tornTail?.file, open);
    assert.equal(seen.tornTail?.repaired, false);
    assert.equal(seen.lastSeqno, 6, "the torn seventh entry is not counted");
    const repaired = readLedger(svc.dir, { secrets: svc.secrets, repairTornTail: true });
    assert.equal(repaired.tornTail?.repaired, true);
    const after = readLedger(svc.dir, { secrets: svc.secrets });
    assert.equal(after.tornTail, undefined);
    assert.equal(after.lastSeqno, 6);
    const ledger = FileLedger.open(svc.dir, { chunkSize: 1 << 20 });
    assert.equal(ledger.lastSeqno, 6);
    await ledger.close();
  });

  it("reports a corrupted committed entry with its file and seqno", async () => {
    const svc = await startService({ chunkSize: 2000, txCount: 4 });
    writeRecords(svc, 12);
    svc.pipeline.emitSignature();
    await svc.pipeline.flush();
    svc.pipeline.committed(svc.pipeline.lastSeqno);
    await svc.storage.close();
    const file = readdirSync(svc.dir).find((f) => f.startsWith("ledger_3-")) as string;
    const bytes = readFileSync(join(svc.dir, file));
    const secondEntry = bytes.readUInt32LE(Number(bytes.readBigUInt64LE(0)) + 4);
    bytes[secondEntry + 40] = bytes[secondEntry + 40] ^ 1; // inside the public domain length
    writeFileSync(join(svc.dir, file), bytes);
    assert.throws(
      () => readLedger(svc.dir),
      (e: Error) => e.message.startsWith(`${file}: seqno 4: public domain length`),
    );
  });
});
