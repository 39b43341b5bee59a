// One contract, two implementations: the in-memory ledger the simulator uses must behave as the
// file ledger nodes use, for everything consensus relies on (append, read, truncate, durability).

import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { FileLedger, type LedgerStorage, MemoryLedger } from "../../src/ledger/index.js";
import { tempDir } from "./service-fixture.js";

/** A correctly framed entry (version 1, u48 size) whose body names its seqno. */
function entry(seqno: number): Buffer {
  const b = Buffer.alloc(8 + 40, seqno % 251);
  b[0] = 1;
  b[1] = 0;
  b.writeUIntLE(40, 2, 6);
  return b;
}

const implementations: Array<[string, () => LedgerStorage]> = [
  ["MemoryLedger", () => new MemoryLedger()],
  ["FileLedger", () => FileLedger.open(join(tempDir(), "ledger"), { chunkSize: 200 })],
];

for (const [name, make] of implementations) {
  describe(`ledger storage contract: ${name}`, () => {
    it("reads back what it appended, in order, and refuses gaps", async () => {
      const s = make();
      for (let i = 1; i <= 10; i++) s.append(i, entry(i), { signature: i % 3 === 0 });
      assert.equal(s.lastSeqno, 10);
      for (let i = 1; i <= 10; i++) assert.deepEqual(s.read(i), entry(i));
      assert.equal(s.read(11), undefined);
      assert.equal(s.read(0), undefined);
      assert.throws(() => s.append(12, entry(12), { signature: false }), /after 10/);
      await s.close();
    });

    it("is durable up to what was appended before a flush", async () => {
      const s = make();
      for (let i = 1; i <= 5; i++) s.append(i, entry(i), { signature: i === 5 });
      await s.flush();
      assert.equal(s.durableSeqno, 5);
      await s.close();
    });

    it("truncates an uncommitted suffix, then continues after it", async () => {
      const s = make();
      for (let i = 1; i <= 9; i++) s.append(i, entry(i), { signature: i % 3 === 0 });
      await s.flush();
      s.commit(3);
      s.truncate(4);
      assert.equal(s.lastSeqno, 4);
      assert.equal(s.read(5), undefined);
      assert.ok(s.durableSeqno <= 4);
      s.append(5, entry(105), { signature: false });
      assert.deepEqual(s.read(5), entry(105));
      assert.throws(() => s.truncate(2), /committed/);
      await s.close();
    });
  });
}
