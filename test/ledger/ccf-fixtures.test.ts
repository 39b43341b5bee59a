// The proof that our ledger format is CCF's: ledgers written by CCF 6 itself are parsed, every
// signature and Merkle root in them verified, and the facts their README lists reproduced.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { certificateId, toHex } from "../../src/crypto/index.js";
import { decodeValue, keyToString, SINGLETON_KEY, Tables } from "../../src/kv/index.js";
import { type LedgerEntry, type LedgerReport, readLedger } from "../../src/ledger/index.js";

const FIXTURES = join(import.meta.dirname, "../../../shared/fixtures/ccf-ledgers");
const SINGLETON = keyToString(SINGLETON_KEY);

function read(
  name: string,
  committedOnly = false,
): { report: LedgerReport; entries: LedgerEntry[] } {
  const entries: LedgerEntry[] = [];
  const report = readLedger(join(FIXTURES, name, "ledger"), {
    committedOnly,
    onEntry: (e) => entries.push(e),
  });
  return { report, entries };
}

function writesTo(entries: LedgerEntry[], table: string): number[] {
  return entries.filter((e) => (e.writeSet.get(table)?.size ?? 0) > 0).map((e) => e.seqno);
}

function valueAt(entries: LedgerEntry[], seqno: number, table: string, key = SINGLETON): unknown {
  const v = entries[seqno - 1]?.writeSet.get(table)?.get(key);
  return v === undefined || v === null ? undefined : decodeValue(table, v);
}

describe("ledger written by CCF: cose_flipflop_service", () => {
  const { report, entries } = read("cose_flipflop_service");

  it("holds 46 transactions in two committed chunks, all in view 2, format 1, entry type 4", () => {
    assert.deepEqual(report.files, ["ledger_1-14.committed", "ledger_15-46.committed"]);
    assert.equal(report.entries, 46);
    assert.equal(`${report.lastView}.${report.lastSeqno}`, "2.46");
    assert.ok(
      entries.every(
        (e) => e.view === 2 && e.entry.bytes[0] === 1 && e.entry.header.entryType === 4,
      ),
    );
    assert.deepEqual(
      entries.filter((e) => e.flags !== 0).map((e) => [e.seqno, e.flags]),
      [
        [14, 1],
        [46, 1],
      ],
    );
  });

  it("verifies 23 node signatures on every even seqno, and COSE signatures only at 16, 34, 38, 40, 44", () => {
    assert.equal(report.signatures, 23);
    assert.deepEqual(
      entries.filter((e) => e.signature !== undefined).map((e) => e.seqno),
      Array.from({ length: 23 }, (_, i) => 2 * (i + 1)),
    );
    assert.deepEqual(
      [...report.signers],
      [["fac07a156b829456395d32ca1334c2f0d90e85b3eedc3c162739c4825cc9d63f", 23]],
    );
    assert.equal(report.coseSignatures, 5);
    assert.deepEqual(writesTo(entries, Tables.COSE_SIGNATURES), [16, 34, 38, 40, 44]);
    assert.equal(report.lastSignedSeqno, 46);
    assert.equal(
      report.lastSignedRoot,
      "3276519e5f042834174904e6f41f6d0866e3779da509c55eb53f745e27a09ab0",
    );
    assert.equal(
      toHex(report.tree.rootAt(46)),
      "3276519e5f042834174904e6f41f6d0866e3779da509c55eb53f745e27a09ab0",
    );
  });

  it("rebuilds the service: Opening at 1, Open at 13, its certificate and configuration", () => {
    const atOne = valueAt(entries, 1, Tables.SERVICE) as Record<string, unknown>;
    assert.equal(atOne.status, "Opening");
    const at13 = valueAt(entries, 13, Tables.SERVICE) as Record<string, unknown>;
    assert.equal(at13.status, "Open");
    assert.equal(at13.previous_service_identity_version, 1);
    assert.equal(at13.recovery_count ?? 0, 0);
    assert.equal(at13.current_service_create_txid, "2.1");
    const serviceCert = readFileSync(
      join(FIXTURES, "cose_flipflop_service/common/service_cert.pem"),
      "utf8",
    );
    assert.equal(at13.cert, serviceCert);
    assert.equal(
      certificateId(at13.cert),
      "0f1ff037113e5b359725012e9484fceb4b093c432505c2a1b057cef5029a3a44",
    );
    assert.deepEqual(
      decodeValue(
        Tables.CONFIGURATION,
        report.store.get(Tables.CONFIGURATION, SINGLETON) as Uint8Array,
      ),
      {
        maximum_node_certificate_validity_days: 365,
        maximum_service_certificate_validity_days: 365,
        recovery_threshold: 1,
      },
    );
  });

  it("rebuilds members, users, the app and the recovery material", () => {
    const member0 = "46d2a7518877166654dfa07d9c4c5aaa0ba82a3f62648216f45fdd7de0e79b38";
    const user0 = "1a260cad24689b6241f59cab47f9b144c97b1f358c092361d37cb1173e7edb68";
    assert.deepEqual(valueAt(entries, 1, Tables.MEMBER_INFO, member0), { status: "Accepted" });
    assert.equal(
      (valueAt(entries, 5, Tables.MEMBER_INFO, member0) as { status: string }).status,
      "Active",
    );
    assert.ok(report.store.get(Tables.MEMBER_ENCRYPTION_KEYS, member0) !== undefined);
    assert.deepEqual(writesTo(entries, Tables.USER_CERTS), [13]);
    assert.ok(report.store.get(Tables.USER_CERTS, user0) !== undefined);
    assert.equal(report.store.get(Tables.MODULES, "/logging.js")?.length, 15228);
    assert.equal(report.store.begin().map(Tables.ENDPOINTS).size, 24);
    assert.equal(
      decodeValue(
        Tables.MODULES_QUICKJS_VERSION,
        report.store.get(Tables.MODULES_QUICKJS_VERSION, SINGLETON) as Uint8Array,
      ),
      "2024-01-13",
    );
    assert.deepEqual(writesTo(entries, Tables.RECOVERY_SHARES), [13]);
    assert.deepEqual(writesTo(entries, Tables.SNAPSHOT_EVIDENCE), [15]);
    assert.deepEqual(valueAt(entries, 13, Tables.HISTORICAL_ENCRYPTED_LEDGER_SECRET), {
      next_version: 1,
    });
  });

  it("finds private domains only in the 13 application writes (17, 19, ..., 41)", () => {
    const withPrivate = entries
      .filter((e) => e.entry.privateCiphertext.length > 0)
      .map((e) => e.seqno);
    assert.deepEqual(
      withPrivate,
      Array.from({ length: 13 }, (_, i) => 17 + 2 * i),
    );
  });
});

describe("ledger written by CCF: double_sealed_service", () => {
  const all = read("double_sealed_service");
  const committed = read("double_sealed_service", true);

  it("holds 505 transactions in 32 committed chunks and 4 more in the open chunk", () => {
    assert.equal(committed.report.files.length, 32);
    assert.equal(committed.report.lastSeqno, 505);
    assert.equal(all.report.files.length, 33);
    assert.equal(all.report.files[32], "ledger_506");
    assert.equal(all.report.entries, 509);
    assert.equal(`${all.report.lastView}.${all.report.lastSeqno}`, "5.509");
    const boundaries = committed.report.files.map((f) =>
      f.replace("ledger_", "").replace(".committed", ""),
    );
    assert.equal(boundaries.slice(0, 6).join(" "), "1-2 3-16 17-19 20-21 22-43 44-64");
    assert.equal(boundaries.slice(-4).join(" "), "486-491 492-499 500-502 503-505");
  });

  it("records views 2, 4 and 5 and the chunk flags CCF wrote", () => {
    const view = (s: number) => all.entries[s - 1]?.view;
    assert.equal(view(1), 2);
    assert.equal(view(483), 2);
    assert.equal(view(484), 4);
    assert.equal(view(501), 4);
    assert.equal(view(502), 5);
    assert.equal(view(509), 5);
    assert.equal(all.entries.filter((e) => e.flags === 1).length, 28);
    assert.deepEqual(
      all.entries.filter((e) => e.flags === 2).map((e) => e.seqno),
      [484],
    );
    assert.ok(all.entries.every((e) => e.entry.header.entryType === 4));
  });

  it("verifies all 156 signatures, each with a COSE signature, across a recovery", () => {
    assert.equal(all.report.signatures, 156);
    assert.equal(all.report.coseSignatures, 156);
    assert.equal(committed.report.signatures, 154);
    assert.deepEqual(Object.fromEntries(all.report.signers), {
      "9e2c7da91d5f811847be2d46409fa93182765ceb90d595c6d2316bcdae00269f": 144,
      "51babd77417f4ae0f40ed490b498fa56947e1b71d8d6080c67e34861827c8ddc": 8,
      "0c5f618e5c72af86d683f46d3bc09d358d475bb52d820a9e97cdb5b7b2d0e886": 4,
    });
    assert.equal(committed.report.lastSignedSeqno, 505);
    assert.equal(
      committed.report.lastSignedRoot,
      "ea713fc4386f2ffe4612a6c77704cf4f351592ee32de54181baf5df135776cba",
    );
    assert.equal(all.report.lastSignedSeqno, 509);
    assert.equal(
      all.report.lastSignedRoot,
      "96af428b2350bd04753f9208b2a298b3cbebf374aaeb41645997231610033c17",
    );
  });

  it("follows the service through Opening, Open, Recovering, WaitingForRecoveryShares and Open", () => {
    const changes = writesTo(all.entries, Tables.SERVICE).map((s) => [
      s,
      (valueAt(all.entries, s, Tables.SERVICE) as { status: string }).status,
    ]);
    const transitions = changes.filter((c, i) => i === 0 || c[1] !== changes[i - 1]?.[1]);
    assert.deepEqual(transitions, [
      [1, "Opening"],
      [18, "Open"],
      [484, "Recovering"],
      [494, "WaitingForRecoveryShares"],
      [498, "Open"],
    ]);
    const recovering = valueAt(all.entries, 484, Tables.SERVICE) as Record<string, unknown>;
    assert.equal(recovering.recovery_count, 1);
    assert.equal(recovering.previous_service_identity_version, 18);
    assert.equal(recovering.current_service_create_txid, "4.484");
    assert.equal(
      certificateId(recovering.cert as string),
      "fcc6f0015452dd5b56f12d934076944331ef8d2ed46b5fd3c51ee5ebafc64dbc",
    );
    assert.equal(
      (valueAt(all.entries, 498, Tables.SERVICE) as Record<string, unknown>)
        .previous_service_identity_version,
      494,
    );
  });

  it("rebuilds members, nodes and the application's public records", () => {
    const store = all.report.store;
    const members = [
      "aab37a60064d6da395c45d44560e08fbab0c4312a00e4683dbd310046de45745",
      "33218b3a8c1448fc26a9658e09ec73852fb94fb39c787cf39b769c512bb77ddd",
      "9278a2547f6658e660623bab3636390cb37383d7a95b398d42776882dcd91700",
    ];
    for (const m of members) {
      assert.equal(
        (
          decodeValue(Tables.MEMBER_INFO, store.get(Tables.MEMBER_INFO, m) as Uint8Array) as {
            status: string;
          }
        ).status,
        "Active",
      );
    }
    const statuses: Record<string, string> = {};
    store
      .begin()
      .map(Tables.NODES)
      .forEach((v, k) => {
        statuses[Buffer.from(k).toString().slice(0, 8)] = (
          decodeValue(Tables.NODES, v) as { status: string }
        ).status;
      });
    assert.deepEqual(statuses, {
      "0c5f618e": "Trusted",
      "3d940bf5": "Retired",
      "51babd77": "Trusted",
      "572a50f3": "Trusted",
      "9e2c7da9": "Retired",
      f2314549: "Retired",
    });
    const records = writesTo(all.entries, "public:records");
    assert.equal(records.length, 300);
    assert.equal(records[0], 24);
    assert.equal(records[299], 478);
    assert.equal(
      Buffer.from(store.get("public:records", "42") as Uint8Array).toString(),
      '"Uninteresting recoverable transactions"',
    );
    assert.deepEqual(writesTo(all.entries, "public:records-check_can_progress"), [508]);
    assert.ok(all.entries.every((e) => e.entry.privateCiphertext.length === 0));
    assert.equal(
      valueAt(all.entries, 484, Tables.PREVIOUS_SERVICE_LAST_SIGNED_ROOT),
      "91bd92e850ee6e56fc33386402c313a08475498e7e2cbdcec2e3a2f1cc9d612b",
    );
  });
});
