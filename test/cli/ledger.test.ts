import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { parseChunk } from "../../src/ledger/index.js";
import {
  type AuditLedger,
  CCF_FIXTURES,
  chunkHolding,
  copyLedger,
  editEntry,
  ledgerFacts,
  rewriteChunk,
  writeAuditLedger,
} from "../ledger/tamper-fixture.js";

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

  it("verifies with `ledger verify`, against the service certificate too", () => {
    const r = ccfTs(
      "ledger",
      "verify",
      "--service-cert",
      join(CCF_FIXTURES, "double_sealed_service/common/service_cert.pem"),
      join(CCF_FIXTURES, "double_sealed_service/ledger"),
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^transactions: 509$/m);
    assert.match(r.stdout, /^governance messages: 9$/m);
    assert.match(r.stdout, /^service status: Open$/m);
    assert.match(r.stdout, /^verified$/m);
  });

  it("refuses a ledger of another service, naming where its identity is recorded", () => {
    const r = ccfTs(
      "ledger",
      "verify",
      "--service-cert",
      join(CCF_FIXTURES, "cose_flipflop_service/common/service_cert.pem"),
      join(CCF_FIXTURES, "double_sealed_service/ledger"),
    );
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /^ccf-ts: ledger_492-499\.committed: seqno 498: the service identity recorded here .* a ledger of another service\n$/,
    );
  });

  it("prints a ledger's transactions as JSON lines, filtered by table", () => {
    const all = ccfTs("ledger", "read", FIXTURE);
    assert.equal(all.status, 0, all.stderr);
    const lines = all.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 46);
    assert.deepEqual(
      lines.map((l) => l.seqno),
      Array.from({ length: 46 }, (_, i) => i + 1),
    );
    const first = lines[0] as { view: number; txid: string; tables: Record<string, unknown> };
    assert.equal(first.txid, "2.1");
    assert.deepEqual(
      (first.tables["public:ccf.gov.service.info"] as Record<string, { status: string }>)[
        "0000000000000000"
      ]?.status,
      "Opening",
    );
    const service = ccfTs(
      "ledger",
      "read",
      "--tables",
      "^public:ccf\\.gov\\.service\\.info$",
      FIXTURE,
    );
    assert.equal(service.status, 0, service.stderr);
    const changes = service.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as { seqno: number; tables: Record<string, unknown> });
    assert.deepEqual(
      changes.map((c) => [c.seqno, Object.keys(c.tables)]),
      [
        [1, ["public:ccf.gov.service.info"]],
        [13, ["public:ccf.gov.service.info"]],
      ],
    );
    const pruned = lines[12] as { seqno: number; tables: Record<string, Record<string, unknown>> };
    assert.equal(pruned.seqno, 13);
    assert.equal(
      pruned.tables["public:ccf.gov.proposals"]?.[
        "e3cbb44b5731a72439fab8d1dbfa7eadd72183048daf1134dbb700a08de9be31"
      ],
      null,
      "a removal is null",
    );
    const users = ccfTs("ledger", "read", "--tables", "users\\.certs", FIXTURE);
    const user = JSON.parse(users.stdout) as {
      seqno: number;
      tables: Record<string, Record<string, string>>;
    };
    assert.equal(user.seqno, 13);
    assert.match(
      user.tables["public:ccf.gov.users.certs"]?.[
        "1a260cad24689b6241f59cab47f9b144c97b1f358c092361d37cb1173e7edb68"
      ] ?? "",
      /^-----BEGIN CERTIFICATE-----/,
    );
  });

  it("prints application tables' keys and values as hex", async () => {
    const ledger = await writeAuditLedger();
    const r = ccfTs("ledger", "read", "--tables", "^public:records$", ledger.dir);
    assert.equal(r.status, 0, r.stderr);
    const first = JSON.parse(r.stdout.split("\n")[0]) as {
      tables: Record<string, Record<string, string | null>>;
    };
    assert.deepEqual(first.tables, {
      "public:records": {
        [Buffer.from("k0").toString("hex")]: Buffer.from("public-value-0").toString("hex"),
      },
    });
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

describe("ccf-ts ledger verify on tampered ledgers", () => {
  let ledger: AuditLedger;
  let facts: ReturnType<typeof ledgerFacts>;
  let record: number;

  before(async () => {
    ledger = await writeAuditLedger();
    facts = ledgerFacts(ledger.dir);
    record = facts.withPrivate[12];
  });

  function refused(args: string[], file: string, seqno: number, reason: RegExp): void {
    const r = ccfTs("ledger", "verify", ...args);
    assert.equal(r.status, 1, r.stdout);
    assert.equal(r.stdout, "");
    const m = /^ccf-ts: (\S+): seqno (\d+): (.*)\n$/.exec(r.stderr);
    assert.ok(m !== null, r.stderr);
    assert.deepEqual([m[1], Number(m[2])], [file, seqno], r.stderr);
    assert.match(m[3], reason);
  }

  function middleChunk(dir: string) {
    return chunkHolding(dir, Number(/^ledger_(\d+)/.exec(facts.files[1])?.[1]));
  }

  it("verifies the untampered ledger, with its secret and service certificate", () => {
    const r = ccfTs(
      "ledger",
      "verify",
      "--secret",
      ledger.secretHex,
      "--service-cert",
      ledger.serviceCertFile,
      ledger.dir,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^governance messages: 1$/m);
    assert.match(r.stdout, /^verified$/m);
  });

  it("a flipped byte in a public domain", () => {
    const dir = copyLedger(ledger.dir);
    const file = editEntry(dir, record, (e) => {
      e[e.indexOf("public-value-")] ^= 0x01;
    });
    refused([dir], file, record, /entry does not match the Merkle tree/);
  });

  it("a flipped byte in a private domain, with --secret", () => {
    const dir = copyLedger(ledger.dir);
    const file = editEntry(dir, record, (e) => {
      e[e.length - 3] ^= 0x80;
    });
    refused(["--secret", ledger.secretHex, dir], file, record, /./);
  });

  it("a flipped byte in a signature", () => {
    const dir = copyLedger(ledger.dir);
    const sig = facts.signatures[3];
    const file = editEntry(dir, sig, (e) => {
      const at = e.indexOf('"sig":"') + 27;
      e[at] = e[at] === 0x41 ? 0x42 : 0x41;
    });
    refused([dir], file, sig, /signature over the root does not verify/);
  });

  it("a truncated closed chunk", () => {
    const dir = copyLedger(ledger.dir);
    const chunk = middleChunk(dir);
    const cut = parseChunk(readFileSync(chunk.path)).entries[1] as { offset: number };
    truncateSync(chunk.path, cut.offset + 20);
    refused([dir], chunk.file, chunk.start + 1, /chunk is truncated/);
  });

  it("a missing middle chunk", () => {
    const dir = copyLedger(ledger.dir);
    const chunk = middleChunk(dir);
    rmSync(chunk.path);
    refused([dir], facts.files[2], chunk.start, /missing seqnos/);
  });

  it("a removed entry and two swapped entries", () => {
    const removed = copyLedger(ledger.dir);
    const chunk = middleChunk(removed);
    chunk.entries.splice(1, 1);
    rewriteChunk(chunk);
    refused([removed], chunk.file, chunk.start + 1, /entry out of order: holds seqno/);
    const swapped = copyLedger(ledger.dir);
    const other = middleChunk(swapped);
    other.entries.reverse();
    rewriteChunk(other);
    refused([swapped], other.file, other.start, /entry out of order: holds seqno/);
  });

  it("a signature by a node the service never trusted", async () => {
    const forged = await writeAuditLedger({ forgedSigner: true });
    const { signatures, files } = ledgerFacts(forged.dir);
    const last = signatures[signatures.length - 1];
    refused(
      [forged.dir],
      files[files.length - 1],
      last,
      /^signed by untrusted node [0-9a-f]{64} \(not in nodes\.info\)$/,
    );
  });

  it("accepts a running node's copy: open chunk, unsigned tail, torn last entry", async () => {
    const running = await writeAuditLedger({ running: true, unsignedTail: 2 });
    const dir = copyLedger(running.dir);
    await running.storage.close();
    const { files, signatures } = ledgerFacts(dir);
    const open = files[files.length - 1];
    appendFileSync(join(dir, open), Buffer.from([1, 0, 200, 0, 0, 0, 0, 0, 9, 9, 9]));
    const r = ccfTs("ledger", "verify", dir);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^unsigned tail: 2$/m);
    assert.match(r.stdout, new RegExp(`^torn entry: ${open} at byte \\d+ \\(11 bytes\\)$`, "m"));
    assert.match(
      r.stdout,
      new RegExp(`^verified up to seqno ${signatures[signatures.length - 1]}$`, "m"),
    );
  });
});
