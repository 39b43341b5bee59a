// `ccf-ts receipt verify`: exit 0 and the root for a receipt that verifies, exit 1 and the reason
// for one that does not or for a file that cannot be read.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import type { TxReceipt } from "../../src/merkle/index.js";
import { type ReceiptLedger, receiptLedger } from "../audit/receipt-fixture.js";
import { tempDir } from "../ledger/service-fixture.js";
import { ccfTsArgs, runCcfTs } from "../helpers/process.js";

describe("ccf-ts receipt verify", () => {
  let ledger: ReceiptLedger;
  let dir: string;
  let serviceCert: string;
  before(async () => {
    ledger = await receiptLedger();
    dir = tempDir("ccf-ts-receipt-");
    serviceCert = join(dir, "service_cert.pem");
    writeFileSync(serviceCert, ledger.serviceCert);
  });

  const file = (name: string, contents: string | Buffer): string => {
    const path = join(dir, name);
    writeFileSync(path, contents);
    return path;
  };

  it("verifies a JSON receipt and a COSE receipt against the service certificate", () => {
    const json = file("receipt.json", JSON.stringify(ledger.jsonReceipt(2)));
    const r = runCcfTs(["receipt", "verify", json, "--service-cert", serviceCert]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `receipt verified (json), root ${ledger.root}\n`);
    const cose = file("receipt.cose", ledger.coseReceipt(2));
    const c = runCcfTs(["receipt", "verify", cose, "--service-cert", serviceCert]);
    assert.equal(c.status, 0, c.stderr);
    assert.equal(c.stdout, `receipt verified (cose), root ${ledger.root}\n`);
  });

  it("reads the receipt from stdin with -", () => {
    const r = spawnSync(process.execPath, ccfTsArgs("receipt", "verify", "-"), {
      input: JSON.stringify(ledger.jsonReceipt(1)),
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^receipt verified \(json\), root [0-9a-f]{64}\n$/);
  });

  it("exits 1 with the reason for a tampered receipt or a missing service certificate", () => {
    const receipt = ledger.jsonReceipt(2) as TxReceipt;
    const tampered = file(
      "tampered.json",
      JSON.stringify({
        ...receipt,
        leaf_components: { ...receipt.leaf_components, write_set_digest: "00".repeat(32) },
      }),
    );
    const r = runCcfTs(["receipt", "verify", tampered]);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr, "ccf-ts: receipt not verified: signature does not verify\n");
    const cose = file("receipt2.cose", ledger.coseReceipt(2));
    const c = runCcfTs(["receipt", "verify", cose]);
    assert.equal(c.status, 1);
    assert.equal(
      c.stderr,
      "ccf-ts: receipt not verified: a COSE receipt needs the service certificate\n",
    );
  });

  it("exits 1 naming a receipt or certificate file that cannot be read", () => {
    const missing = join(dir, "no-such-receipt.json");
    const r = runCcfTs(["receipt", "verify", missing]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`receipt ${missing}: cannot read \\(ENOENT\\)`));
    const json = file("ok.json", JSON.stringify(ledger.jsonReceipt(2)));
    const c = runCcfTs(["receipt", "verify", json, "--service-cert", join(dir, "none.pem")]);
    assert.equal(c.status, 1);
    assert.match(c.stderr, /--service-cert .*none\.pem: cannot read \(ENOENT\)/);
  });
});
