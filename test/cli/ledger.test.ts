import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";

const BIN = join(import.meta.dirname, "../../bin/ccf-ts.js");
const FIXTURE = join(
  import.meta.dirname,
  "../../../shared/fixtures/ccf-ledgers/cose_flipflop_service/ledger",
);

function ccfTs(...args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
}

describe("ccf-ts command", () => {
  it("prints its version and help", () => {
    const v = ccfTs("--version");
    assert.equal(v.status, 0);
    assert.match(v.stdout, /^\d+\.\d+\.\d+\n$/);
    assert.match(ccfTs("--help").stdout, /ledger/);
  });

  it("verifies a ledger written by CCF", () => {
    const r = ccfTs("ledger", FIXTURE);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^transactions: 46$/m);
    assert.match(
      r.stdout,
      /^last signed root: 3276519e5f042834174904e6f41f6d0866e3779da509c55eb53f745e27a09ab0$/m,
    );
    assert.match(r.stdout, /^verified$/m);
  });

  it("names the problem with a missing or empty ledger directory", () => {
    const missing = ccfTs("ledger", "/nonexistent-ledger-dir");
    assert.equal(missing.status, 1);
    assert.match(
      missing.stderr,
      /nonexistent-ledger-dir: cannot read the ledger directory \(ENOENT\)/,
    );
    const empty = ccfTs("ledger", mkdtempSync(join(tmpdir(), "ccf-ts-empty-")));
    assert.equal(empty.status, 1);
    assert.match(empty.stderr, /no ledger chunk files/);
  });
});
