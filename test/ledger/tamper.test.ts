// Tampering with a ledger on disk, ours and CCF's: every edit must be refused, naming the file and
// the first seqno at fault; a copy of a running node's ledger must verify up to its last signature.

import assert from "node:assert/strict";
import { appendFileSync, readFileSync, rmSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import {
  LedgerVerificationError,
  parseChunk,
  type ReadLedgerOptions,
  readLedger,
} from "../../src/ledger/index.js";
import {
  type AuditLedger,
  CCF_FIXTURES,
  chunkHolding,
  copyLedger,
  editEntry,
  ledgerFacts,
  rewriteChunk,
  writeAuditLedger,
} from "./tamper-fixture.js";

function refuses(
  dir: string,
  expected: { seqno: number | undefined; reason: RegExp; file?: string; code?: string },
  options: ReadLedgerOptions = {},
): void {
  assert.throws(
    () => readLedger(dir, options),
    (e) => {
      assert.ok(e instanceof LedgerVerificationError, String(e));
      assert.equal(e.seqno, expected.seqno, e.message);
      assert.match(e.message, expected.reason);
      if (expected.file !== undefined) assert.equal(e.file, expected.file, e.message);
      if (expected.code !== undefined) assert.equal(e.code, expected.code, e.message);
      return true;
    },
  );
}

/** A complete chunk that is neither the first nor the last. */
function middleChunk(dir: string): ReturnType<typeof chunkHolding> {
  const { files } = ledgerFacts(dir);
  assert.ok(files.length >= 4, files.join(" "));
  const start = Number(/^ledger_(\d+)/.exec(files[1])?.[1]);
  const chunk = chunkHolding(dir, start);
  assert.ok(chunk.complete && chunk.entries.length >= 3, chunk.file);
  return chunk;
}

describe("tampering with a ledger we wrote", () => {
  let ledger: AuditLedger;
  let facts: ReturnType<typeof ledgerFacts>;
  /** A transaction with public and private records, not a signature. */
  let record: number;

  before(async () => {
    ledger = await writeAuditLedger();
    facts = ledgerFacts(ledger.dir);
    record = facts.withPrivate[12];
  });

  it("verifies untampered: signatures, the member's governance message, the service opened", () => {
    const report = readLedger(ledger.dir, {
      secrets: ledger.secrets,
      serviceCert: readFileSync(ledger.serviceCertFile, "utf8"),
    });
    assert.equal(report.entries, 4 + 40 + facts.signatures.length - 1);
    assert.ok(report.files.length >= 4, report.files.join(" "));
    assert.equal(report.governanceMessages, 1);
    assert.equal(report.serviceStatus, "Open");
    assert.equal(report.unsignedTail, 0);
    assert.ok(!facts.signatures.includes(record));
  });

  it("refuses a flipped byte in a public domain, naming its seqno", () => {
    const dir = copyLedger(ledger.dir);
    const file = editEntry(dir, record, (e) => {
      e[e.indexOf("public-value-")] ^= 0x01;
    });
    refuses(dir, { seqno: record, file, reason: /entry does not match the Merkle tree/ });
  });

  it("refuses a flipped byte in a private domain: by its GCM tag with the secret, else the tree", () => {
    const dir = copyLedger(ledger.dir);
    const file = editEntry(dir, record, (e) => {
      e[e.length - 3] ^= 0x80;
    });
    refuses(
      dir,
      { seqno: record, file, code: "LedgerDecryptionFailed", reason: /./ },
      { secrets: ledger.secrets },
    );
    refuses(dir, { seqno: record, file, reason: /entry does not match the Merkle tree/ });
  });

  it("refuses a flipped byte in a node signature", () => {
    const dir = copyLedger(ledger.dir);
    const sig = facts.signatures[3];
    const file = editEntry(dir, sig, (e) => {
      const at = e.indexOf('"sig":"') + 7 + 20;
      e[at] = e[at] === 0x41 ? 0x42 : 0x41;
    });
    refuses(dir, { seqno: sig, file, reason: /signature over the root does not verify/ });
  });

  it("refuses a closed chunk cut short, naming the entry it cuts", () => {
    const dir = copyLedger(ledger.dir);
    const chunk = middleChunk(dir);
    const layout = parseChunk(readFileSync(chunk.path));
    const cut = layout.entries[2];
    truncateSync(chunk.path, cut.offset + Math.floor(cut.size / 2));
    refuses(dir, {
      seqno: chunk.start + 2,
      file: chunk.file,
      code: "LedgerTruncated",
      reason: /chunk is truncated.*this entry is cut short/,
    });
  });

  it("refuses a ledger whose middle chunk is missing", () => {
    const dir = copyLedger(ledger.dir);
    const { files } = ledgerFacts(dir);
    const missing = chunkHolding(dir, Number(/^ledger_(\d+)/.exec(files[1])?.[1]));
    rmSync(missing.path);
    refuses(dir, {
      seqno: missing.start,
      file: files[2],
      code: "LedgerGap",
      reason: new RegExp(
        `missing seqnos ${missing.start} to ${missing.start + missing.entries.length - 1}`,
      ),
    });
  });

  it("refuses a removed entry, even with the chunk's positions table rewritten to match", () => {
    const dir = copyLedger(ledger.dir);
    const chunk = middleChunk(dir);
    chunk.entries.splice(1, 1);
    rewriteChunk(chunk);
    refuses(dir, {
      seqno: chunk.start + 1,
      file: chunk.file,
      reason: new RegExp(`entry out of order: holds seqno ${chunk.start + 2}$`),
    });
  });

  it("refuses two swapped entries", () => {
    const dir = copyLedger(ledger.dir);
    const chunk = middleChunk(dir);
    const [a, b] = [chunk.entries[0], chunk.entries[1]];
    chunk.entries[0] = b;
    chunk.entries[1] = a;
    rewriteChunk(chunk);
    refuses(dir, {
      seqno: chunk.start,
      file: chunk.file,
      reason: new RegExp(`entry out of order: holds seqno ${chunk.start + 1}$`),
    });
  });

  it("refuses an entry whose view goes back", () => {
    const dir = copyLedger(ledger.dir);
    editEntry(dir, record, (e) => {
      e.writeUInt32LE(1, 8 + 16 + 8);
    });
    refuses(dir, { seqno: record, reason: /view 1 is lower than view 2 before it/ });
  });

  it("refuses a ledger of another service when given the service certificate", () => {
    refuses(
      ledger.dir,
      { seqno: 4, code: "LedgerWrongService", reason: /a ledger of another service/ },
      { serviceCert: ledger.otherServiceCert },
    );
  });
});

describe("ledgers written wrongly but signed properly", () => {
  it("refuses a signature by a node that is not in nodes.info", async () => {
    const forged = await writeAuditLedger({ forgedSigner: true });
    const { signatures } = ledgerFacts(forged.dir);
    const last = signatures[signatures.length - 1];
    refuses(forged.dir, {
      seqno: last,
      code: "LedgerUntrustedSigner",
      reason: /signed by untrusted node [0-9a-f]{64} \(not in nodes\.info\)/,
    });
  });

  it("accepts signatures by a retiring node, refuses them once its retirement is committed", async () => {
    const retiring = await writeAuditLedger({ retire: "retiring" });
    readLedger(retiring.dir);
    const retired = await writeAuditLedger({ retire: "committed" });
    const report = readLedger(retired.dir, { verify: false });
    refuses(retired.dir, {
      seqno: report.lastSeqno,
      code: "LedgerUntrustedSigner",
      reason: /signed by untrusted node [0-9a-f]{64} \(Retired, its retirement committed\)/,
    });
  });

  it("refuses a service status transition CCF does not allow", async () => {
    const bad = await writeAuditLedger({ badTransition: true });
    const report = readLedger(bad.dir, { verify: false });
    refuses(bad.dir, {
      seqno: report.lastSeqno - 1,
      code: "LedgerBadServiceTransition",
      reason: /service status cannot move from Open to WaitingForRecoveryShares/,
    });
  });

  it("refuses a governance message whose member signature does not verify", async () => {
    const bad = await writeAuditLedger({ badGovernanceMessage: true });
    refuses(bad.dir, {
      seqno: 3,
      code: "LedgerBadGovernanceMessage",
      reason: /governance message of member [0-9a-f]{64}: its signature does not verify/,
    });
  });
});

describe("a copy of a running node's ledger", () => {
  it("verifies up to its last signature and reports the unsigned tail and the torn entry", async () => {
    const running = await writeAuditLedger({ running: true, unsignedTail: 3 });
    const dir = copyLedger(running.dir);
    await running.storage.close();
    const { files, signatures } = ledgerFacts(dir);
    const open = files[files.length - 1];
    assert.match(open, /^ledger_\d+$/);
    const lastEntry = chunkHolding(dir, signatures[signatures.length - 1]).entries[0];
    appendFileSync(join(dir, open), lastEntry.subarray(0, 50));
    const report = readLedger(dir, { secrets: running.secrets });
    assert.equal(report.unsignedTail, 3);
    assert.equal(report.lastSignedSeqno, signatures[signatures.length - 1]);
    assert.equal(report.lastSeqno, report.lastSignedSeqno + 3);
    assert.deepEqual(
      { file: report.tornTail?.file, bytes: report.tornTail?.bytes },
      { file: open, bytes: 50 },
    );
  });
});

describe("tampering with ledgers CCF wrote", () => {
  const flipflop = join(CCF_FIXTURES, "cose_flipflop_service/ledger");

  it("verifies the members' governance messages in both fixtures", () => {
    assert.equal(readLedger(flipflop).governanceMessages, 6);
    assert.equal(
      readLedger(join(CCF_FIXTURES, "double_sealed_service/ledger")).governanceMessages,
      9,
    );
  });

  it("refuses swapped entries, naming the seqno", () => {
    const dir = copyLedger(flipflop);
    const chunk = chunkHolding(dir, 20);
    [chunk.entries[5], chunk.entries[6]] = [chunk.entries[6], chunk.entries[5]];
    rewriteChunk(chunk);
    refuses(dir, {
      seqno: 20,
      file: "ledger_15-46.committed",
      reason: /entry out of order: holds seqno 21$/,
    });
  });

  it("refuses a flipped claims digest in an application transaction", () => {
    const dir = copyLedger(flipflop);
    editEntry(dir, 17, (e) => {
      e[44 + 9 + 5] ^= 0x01;
    });
    refuses(dir, {
      seqno: 17,
      file: "ledger_15-46.committed",
      reason: /entry does not match the Merkle tree signed at seqno 18/,
    });
  });

  it("refuses a truncated chunk and a missing chunk", () => {
    const cut = copyLedger(flipflop);
    const path = join(cut, "ledger_15-46.committed");
    const bytes = readFileSync(path);
    const at = Math.floor(bytes.length / 2);
    const cutEntry = parseChunk(bytes).entries.findIndex((e) => e.offset + e.size > at);
    truncateSync(path, at);
    refuses(cut, {
      seqno: 15 + cutEntry,
      file: "ledger_15-46.committed",
      code: "LedgerTruncated",
      reason: /chunk is truncated/,
    });
    const holed = copyLedger(join(CCF_FIXTURES, "double_sealed_service/ledger"));
    rmSync(join(holed, "ledger_3-16.committed"));
    refuses(holed, {
      seqno: 3,
      file: "ledger_17-19.committed",
      code: "LedgerGap",
      reason: /missing seqnos 3 to 16/,
    });
  });
});
