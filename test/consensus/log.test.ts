import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConsensusInvariantError, type LogEntry } from "../../src/consensus/index.js";
import { RaftLog } from "../../src/consensus/log.js";
import { entry } from "./cluster.js";

/** A ledger for read-back: the bytes of every entry appended, by idx. */
function ledgerOf(entries: readonly LogEntry[]): Map<number, Uint8Array> {
  return new Map(entries.map((e) => [e.idx, e.data]));
}

function logOf(entries: readonly LogEntry[], ledger = ledgerOf(entries)): RaftLog {
  const log = new RaftLog({ base: 0, baseTerm: 0, readData: (idx) => ledger.get(idx) });
  for (const e of entries) log.append(e);
  return log;
}

function views(log: RaftLog): string[] {
  return log.viewHistory().map((v) => `${v.view}.${v.seqno}`);
}

/** Views 2 (1-3), 3 (4-5) and 5 (6-9); signatures at 3, 5, 7 and 9; a configuration at 6. */
const LOG = [
  entry(1, 2),
  entry(2, 2),
  entry(3, 2, true),
  entry(4, 3),
  entry(5, 3, true),
  entry(6, 5, false, ["n0", "n1", "n2"]),
  entry(7, 5, true),
  entry(8, 5),
  entry(9, 5, true),
];

describe("consensus log: terms and views", () => {
  it("answers the term of every index across several views", () => {
    const log = logOf(LOG);
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => log.term(i)),
      [0, 2, 2, 2, 3, 3, 5, 5, 5, 5],
    );
    assert.deepEqual(views(log), ["2.1", "3.4", "5.6"]);
    assert.equal(log.lastIdx, 9);
  });

  it("merges the views up to a snapshot with those of the entries after it", () => {
    const log = new RaftLog({
      base: 10,
      baseTerm: 3,
      baseViews: [
        { view: 2, seqno: 1 },
        { view: 3, seqno: 6 },
      ],
    });
    assert.equal(log.term(10), 3);
    assert.equal(log.term(11), undefined);
    log.append(entry(11, 3));
    log.append(entry(12, 4, true));
    assert.deepEqual(views(log), ["2.1", "3.6", "4.12"]);
    assert.deepEqual(
      [10, 11, 12].map((i) => log.term(i)),
      [3, 3, 4],
    );
    assert.equal(log.term(9), undefined, "entries before the snapshot are not known");
  });
});

describe("consensus log: signatures", () => {
  it("finds signatures by binary search", () => {
    const log = logOf(LOG);
    assert.deepEqual(
      LOG.map((e) => log.isSignature(e.idx)),
      LOG.map((e) => e.isSignature),
    );
    assert.equal(log.signatureAtOrAfter(1), 3);
    assert.equal(log.signatureAtOrAfter(3), 3);
    assert.equal(log.signatureAtOrAfter(4), 5);
    assert.equal(log.signatureAtOrAfter(8), 9);
    assert.equal(log.signatureAtOrAfter(10), undefined);
    assert.equal(log.lastSignatureIn(1, 9), 9);
    assert.equal(log.lastSignatureIn(1, 8), 7);
    assert.equal(log.lastSignatureIn(4, 6), 5);
    assert.equal(log.lastSignatureIn(6, 6), undefined);
    assert.equal(log.lastSignatureIn(1, 2), undefined);
  });
});

describe("consensus log: truncation", () => {
  it("drops terms, signatures and configurations past a point in the middle of a view", () => {
    const log = logOf(LOG);
    log.truncate(6);
    assert.equal(log.lastIdx, 6);
    assert.equal(log.term(7), undefined);
    assert.equal(log.entry(7), undefined);
    assert.equal(log.signatureAtOrAfter(6), undefined);
    assert.deepEqual(views(log), ["2.1", "3.4", "5.6"]);
    assert.deepEqual(log.configurationAt(6), ["n0", "n1", "n2"]);
    // The same seqnos in a later view.
    log.append(entry(7, 6));
    log.append(entry(8, 6, true));
    assert.deepEqual(views(log), ["2.1", "3.4", "5.6", "6.7"]);
    assert.deepEqual(
      [6, 7, 8].map((i) => log.term(i)),
      [5, 6, 6],
    );
    assert.equal(log.signatureAtOrAfter(6), 8);
    assert.equal(log.isSignature(7), false);
  });

  it("drops a whole view and the configuration it started", () => {
    const log = logOf(LOG);
    log.truncate(4);
    assert.deepEqual(views(log), ["2.1", "3.4"]);
    assert.equal(log.configurationAt(6), undefined);
    assert.equal(log.lastSignatureIn(1, 9), 3);
    log.append(entry(5, 4, false, ["n0"]));
    assert.deepEqual(log.entry(5)?.configuration, ["n0"]);
    assert.deepEqual(views(log), ["2.1", "3.4", "4.5"]);
  });
});

describe("consensus log: release and read-back", () => {
  it("rebuilds a released entry from its term, flag, configuration and the ledger's bytes", () => {
    const ledger = ledgerOf(LOG);
    const reads: number[] = [];
    const log = new RaftLog({
      base: 0,
      baseTerm: 0,
      readData: (idx) => {
        reads.push(idx);
        return ledger.get(idx);
      },
    });
    for (const e of LOG) log.append(e);
    assert.equal(log.heldEntries, 9);
    log.release(7);
    assert.equal(log.releasedIdx, 7);
    assert.equal(log.heldEntries, 9, "released slots stay until there are enough to compact");
    assert.equal(reads.length, 0);
    for (const e of LOG) {
      const back = log.entry(e.idx);
      assert.deepEqual(back, e);
    }
    assert.deepEqual(reads, [1, 2, 3, 4, 5, 6, 7], "only released entries are read back");
    assert.equal(log.entry(8), LOG[7], "a held entry is the object appended");
    assert.equal(log.entry(6)?.configuration?.length, 3);
    assert.equal(Object.hasOwn(log.entry(5) as LogEntry, "configuration"), false);
    // Releasing less than before changes nothing.
    log.release(3);
    assert.equal(log.releasedIdx, 7);
  });

  it("compacts released slots away so that memory does not grow with the log", () => {
    const log = new RaftLog({ base: 0, baseTerm: 0, readData: () => new Uint8Array(1) });
    let maxSlots = 0;
    for (let idx = 1; idx <= 50_000; idx++) {
      log.append(entry(idx, 2 + Math.floor(idx / 10_000), idx % 10 === 0));
      if (idx % 10 === 0 && idx > 100) log.release(idx - 100);
      maxSlots = Math.max(maxSlots, log.heldEntries);
    }
    assert.ok(maxSlots <= 1024 + 2 * 110, `at most ${maxSlots} slots`);
    assert.equal(log.term(25_000), 4);
    assert.equal(log.signatureAtOrAfter(12_345), 12_350);
    assert.equal(log.entry(9_999)?.term, 2);
  });

  it("refuses to release entries when nothing can read them back", () => {
    const log = new RaftLog({ base: 0, baseTerm: 0 });
    for (const e of LOG) log.append(e);
    assert.throws(() => log.release(3), ConsensusInvariantError);
    assert.equal(log.entry(3), LOG[2]);
  });

  it("fails loudly when a released entry's bytes are missing from the ledger", () => {
    const ledger = ledgerOf(LOG);
    const log = logOf(LOG, ledger);
    log.release(5);
    ledger.delete(4);
    assert.throws(() => log.entry(4), /entry 4 was released and cannot be read back/);
    assert.equal(log.term(4), 3, "the term needs no read");
  });

  it("cannot truncate released (committed) entries", () => {
    const log = logOf(LOG);
    log.release(5);
    assert.throws(() => log.truncate(4), ConsensusInvariantError);
    assert.equal(log.lastIdx, 9);
    log.truncate(5);
    assert.equal(log.lastIdx, 5);
    assert.equal(log.heldEntries, 5, "only the released slots remain, until compaction");
    log.append(entry(6, 7, true));
    assert.equal(log.entry(6)?.term, 7);
    assert.equal(log.entry(5)?.isSignature, true);
  });
});

describe("consensus log: bounds", () => {
  it("knows no entry outside base+1..lastIdx", () => {
    const log = logOf(LOG);
    for (const idx of [-1, 0, 10, 1.5, Number.NaN]) {
      assert.equal(log.entry(idx), undefined, `entry ${idx}`);
    }
    assert.equal(log.term(10), undefined);
    assert.equal(log.term(-1), undefined);
  });

  it("refuses an append that does not follow the last entry or goes back a view", () => {
    const log = logOf(LOG);
    assert.throws(() => log.append(entry(11, 5)), /entry 11 appended after 9/);
    assert.throws(() => log.append(entry(9, 5)), /entry 9 appended after 9/);
    assert.throws(() => log.append(entry(10, 4)), /entry 10 in view 4 after view 5/);
    assert.equal(log.lastIdx, 9);
    assert.equal(log.term(10), undefined);
  });

  it("refuses to truncate or release past the end", () => {
    const log = logOf(LOG);
    assert.throws(() => log.truncate(10), /truncation to 10 outside 0\.\.9/);
    assert.throws(() => log.release(10), /release up to 10 past the log's end 9/);
    assert.equal(log.lastIdx, 9);
    assert.equal(log.releasedIdx, 0);
  });

  it("refuses a base that is not an index", () => {
    assert.throws(() => new RaftLog({ base: -1, baseTerm: 0 }), ConsensusInvariantError);
  });
});
