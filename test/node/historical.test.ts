// Historical states read back from a real ledger: each transaction's own writes, decrypted, with a
// receipt that verifies; recent ones at once, old ones after a background read; ranges held by
// handle; a ledger that does not match the tree refused.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { verifyDigest } from "../../src/crypto/index.js";
import { CcfError } from "../../src/errors.js";
import { keyToString, SINGLETON_KEY, Tables } from "../../src/kv/index.js";
import { decodeEntry, type LedgerStorage } from "../../src/ledger/index.js";
import { verifyReceipt } from "../../src/merkle/index.js";
import { HistoricalState, HistoricalStates } from "../../src/node/historical.js";
import { waitFor } from "../helpers/process.js";
import { startService, type TestService, writeRecords } from "../ledger/service-fixture.js";

async function service(): Promise<{ svc: TestService; signatures: number[] }> {
  const svc = await startService({ txCount: 5 });
  writeRecords(svc, 20);
  svc.pipeline.emitSignature();
  await svc.pipeline.flush();
  const signatures: number[] = [];
  for (let s = 1; s <= svc.storage.lastSeqno; s++) {
    const ws = decodeEntry(svc.storage.read(s) as Buffer).writeSet;
    if (ws.get(Tables.SIGNATURES)?.has(keyToString(SINGLETON_KEY)) === true) signatures.push(s);
  }
  return { svc, signatures };
}

function states(
  svc: TestService,
  signatures: number[],
  options: { recentWindow?: number; storage?: LedgerStorage; now?: () => number } = {},
): HistoricalStates {
  return new HistoricalStates(
    {
      storage: () => options.storage ?? svc.storage,
      tree: svc.tree,
      secrets: () => svc.secrets,
      commitSeqno: () => svc.storage.lastSeqno,
      signatureAtOrAfter: (seqno) => signatures.find((s) => s >= seqno),
      now: options.now ?? (() => 0),
    },
    { recentWindow: options.recentWindow ?? 1000 },
  );
}

/** The seqno whose transaction wrote record `k{i}` (one write per transaction, signatures between). */
function seqnoOfRecord(svc: TestService, i: number): number {
  for (let s = 1; s <= svc.storage.lastSeqno; s++) {
    const ws = decodeEntry(svc.storage.read(s) as Buffer).writeSet;
    if (ws.get("public:records")?.has(`k${i}`) === true) return s;
  }
  throw new Error(`no transaction wrote k${i}`);
}

describe("historical states", () => {
  it("holds only the transaction's own writes, decrypted, with a receipt that verifies", async () => {
    const { svc, signatures } = await service();
    const h = states(svc, signatures);
    const seqno = seqnoOfRecord(svc, 7);
    const state = h.get(seqno);
    assert.ok(state instanceof HistoricalState);
    assert.equal(state.transactionId, `2.${seqno}`);
    const tx = state.tx();
    assert.equal(
      Buffer.from(tx.map("records").get(Buffer.from("k7")) as Uint8Array).toString(),
      "SECRET-PLAINTEXT-7",
    );
    assert.equal(tx.map("records").get(Buffer.from("k6")), undefined);
    assert.equal(tx.map("records").size, 1);
    assert.equal(state.isSignature, false);
    assert.ok(verifyReceipt(state.receipt, verifyDigest));
    // CCF's JS receipt: the entry's claims digest (zeros: the app set none), the proof, the flag.
    const js = state.jsReceipt as {
      is_signature_transaction: boolean;
      leaf_components: Record<string, string>;
      proof: unknown[];
    };
    assert.equal(js.is_signature_transaction, false);
    assert.deepEqual(Object.keys(js.leaf_components).sort(), [
      "claims_digest",
      "commit_evidence",
      "write_set_digest",
    ]);
    assert.equal(js.leaf_components.claims_digest, "0".repeat(64));
    assert.match(js.leaf_components.commit_evidence, new RegExp(`^ce:2\\.${seqno}:[0-9a-f]{64}$`));
    assert.ok(js.proof.length > 0);
    await svc.storage.close();
  });

  it("gives a signature transaction's receipt as CCF does: its root, no proof", async () => {
    const { svc, signatures } = await service();
    const h = states(svc, signatures);
    const sig = signatures[2];
    const state = h.get(sig);
    assert.ok(state instanceof HistoricalState);
    assert.equal(state.isSignature, true);
    const js = state.jsReceipt;
    assert.equal(js.is_signature_transaction, true);
    assert.equal(typeof js.root_hex, "string");
    assert.equal(js.leaf_components, undefined);
    assert.equal((state.receipt as { leaf: string }).leaf, js.root_hex);
    assert.ok(verifyReceipt(state.receipt, verifyDigest));
    await svc.storage.close();
  });

  it("reads old entries in the background: first 'fetching', then the state", async () => {
    const { svc, signatures } = await service();
    let asyncReads = 0;
    const storage: LedgerStorage = Object.assign(Object.create(svc.storage) as LedgerStorage, {
      readAsync: (seqno: number) => {
        asyncReads++;
        return svc.storage.readAsync(seqno);
      },
    });
    const h = states(svc, signatures, { recentWindow: 0, storage });
    const seqno = seqnoOfRecord(svc, 3);
    assert.equal(h.get(seqno), "fetching");
    assert.equal(h.get(seqno), "fetching", "asking again does not start a second read");
    const state = await waitFor("the fetched state", () => {
      const s = h.get(seqno);
      return s === "fetching" ? undefined : s;
    });
    assert.equal(state.seqno, seqno);
    assert.equal(asyncReads, 2, "the entry and its signature, each read once");
    await svc.storage.close();
  });

  it("keeps a range under its handle until dropped or expired", async () => {
    const { svc, signatures } = await service();
    let now = 0;
    const h = states(svc, signatures, { recentWindow: 0, now: () => now });
    assert.equal(h.range(7, 3, 12, 60), undefined);
    const range = await waitFor("the range", () => h.range(7, 3, 12, 60));
    assert.deepEqual(
      range.map((s) => s.seqno),
      [3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    );
    assert.equal(h.range(7, 3, 12, 60), range, "held: the same states at once");
    assert.equal(h.drop(7), true);
    assert.equal(h.drop(7), false);
    // Expired: fetched again.
    await waitFor("the range again", () => h.range(8, 3, 4, 1));
    now += 2000;
    assert.equal(h.drop(8), false, "expired handles are gone");
    assert.throws(() => h.range(9, 5, 4, 1), /end seqno 4 is before start seqno 5/);
    await svc.storage.close();
  });

  it("refuses an entry that does not match the tree, and seqnos not committed", async () => {
    const { svc, signatures } = await service();
    const seqno = seqnoOfRecord(svc, 2);
    const storage: LedgerStorage = Object.assign(Object.create(svc.storage) as LedgerStorage, {
      read: (s: number) => {
        const bytes = svc.storage.read(s);
        if (s !== seqno || bytes === undefined) return bytes;
        const copy = Buffer.from(bytes);
        copy[copy.length - 1] ^= 1;
        return copy;
      },
    });
    const h = states(svc, signatures, { storage });
    assert.throws(
      () => h.get(seqno),
      (e) => e instanceof CcfError && e.code === "HistoricalEntryMismatch",
    );
    assert.throws(
      () => h.get(svc.storage.lastSeqno + 1),
      (e) => e instanceof CcfError && e.code === "TransactionPendingOrUnknown",
    );
    await svc.storage.close();
  });

  it("names a damaged or cut ledger file as such, at once or after a background read fails", async () => {
    const { svc, signatures } = await service();
    const seqno = seqnoOfRecord(svc, 3);
    const failing = (s: number): never => {
      throw new Error(`ledger_1-40: chunk is truncated inside seqno ${s}`);
    };
    // A chunk that no longer parses (the reader throws): recent seqnos are read at once.
    const cut: LedgerStorage = Object.assign(Object.create(svc.storage) as LedgerStorage, {
      read: (s: number) => (s === seqno ? failing(s) : svc.storage.read(s)),
      readAsync: async (s: number) => (s === seqno ? failing(s) : svc.storage.readAsync(s)),
    });
    assert.throws(
      () => states(svc, signatures, { storage: cut }).get(seqno),
      (e) =>
        e instanceof CcfError &&
        e.code === "HistoricalEntryMismatch" &&
        e.status === 500 &&
        e.message.includes(`seqno ${seqno} cannot be read`) &&
        e.message.includes("truncated"),
    );
    // An entry whose header is garbage does not decode: the same error, not an internal one.
    const garbled: LedgerStorage = Object.assign(Object.create(svc.storage) as LedgerStorage, {
      read: (s: number) => (s === seqno ? Buffer.alloc(12, 0xff) : svc.storage.read(s)),
    });
    assert.throws(
      () => states(svc, signatures, { storage: garbled }).get(seqno),
      (e) => e instanceof CcfError && e.code === "HistoricalEntryMismatch",
    );
    // Old seqnos are read in the background: "fetching" first, then the error every time after.
    const old = states(svc, signatures, { storage: cut, recentWindow: 0 });
    assert.equal(old.get(seqno), "fetching");
    const err = await waitFor("the background read to fail", () => {
      try {
        old.get(seqno);
        return undefined;
      } catch (e) {
        return e;
      }
    });
    assert.ok(err instanceof CcfError && err.code === "HistoricalEntryMismatch", String(err));
    assert.throws(() => old.get(seqno), /cannot be read/);
    assert.throws(() => old.range(1, seqno - 1, seqno, 10), /cannot be read/);
    // Other seqnos are unaffected.
    const other = seqnoOfRecord(svc, 5);
    await waitFor("another seqno", () => {
      const s = old.get(other);
      return s === "fetching" ? undefined : s;
    });
    await svc.storage.close();
  });
});
