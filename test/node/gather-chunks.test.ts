// gatherLedgerChunks: what a recovering node copies from `ledger.read_only_directories`.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { listChunks } from "../../src/ledger/index.js";
import { gatherLedgerChunks } from "../../src/node/recovery.js";

describe("gatherLedgerChunks", () => {
  const root = mkdtempSync(join(tmpdir(), "ccf-ts-gather-"));
  after(() => rmSync(root, { recursive: true, force: true }));

  it("copies committed chunks and skips a read-only directory holding only an open chunk", () => {
    const main = join(root, "main");
    const ro1 = join(root, "ro1");
    const ro2 = join(root, "ro2");
    mkdirSync(ro1);
    mkdirSync(ro2);
    writeFileSync(join(ro1, "ledger_1-4.committed"), "x");
    writeFileSync(join(ro1, "ledger_5"), "x");
    writeFileSync(join(ro2, "ledger_5"), "x");
    assert.equal(gatherLedgerChunks(main, [ro1, ro2]), 1);
    assert.deepEqual(readdirSync(main), ["ledger_1-4.committed"]);
  });

  it("still refuses a read-only directory that does not exist", () => {
    assert.throws(
      () => gatherLedgerChunks(join(root, "main2"), [join(root, "missing")]),
      /LedgerNotFound|cannot read the ledger directory/,
    );
  });

  it("names the uncommitted chunks when only those are there", () => {
    const dir = join(root, "open-only");
    mkdirSync(dir);
    writeFileSync(join(dir, "ledger_7"), "x");
    assert.throws(
      () => listChunks(dir, true),
      /no committed ledger chunk files \(only uncommitted ones, which are not read here: ledger_7\)/,
    );
    rmSync(join(dir, "ledger_7"));
    assert.throws(() => listChunks(dir, true), /: no ledger chunk files$/);
  });
});
