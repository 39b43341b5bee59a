// Historical states and receipts for transactions whose leaves the node's Merkle tree has flushed:
// checked against the tree stored by the signature that covers them (its root signed by the node,
// the signature's own leaf in the next signature's tree), with receipts byte-identical to those
// the in-memory tree gives, and damage anywhere on that path refused, never served.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { verifyDigest } from "../../src/crypto/index.js";
import { CcfError } from "../../src/errors.js";
import { keyToString, SINGLETON_KEY, Tables } from "../../src/kv/index.js";
import { decodeEntry, type LedgerStorage } from "../../src/ledger/index.js";
import { MerkleTree, verifyReceipt } from "../../src/merkle/index.js";
import { HistoricalState, HistoricalStates } from "../../src/node/historical.js";
import { waitFor } from "../helpers/process.js";
import { startService, type TestService, writeRecords } from "../ledger/service-fixture.js";

const SINGLETON = keyToString(SINGLETON_KEY);

async function service(records = 40): Promise<{ svc: TestService; signatures: number[] }> {
  const svc = await startService({ txCount: 5 });
  writeRecords(svc, records);
  svc.pipeline.emitSignature();
  await svc.pipeline.flush();
  return { svc, signatures: signaturesOf(svc) };
}

function signaturesOf(svc: TestService): number[] {
  const out: number[] = [];
  for (let s = 1; s <= svc.storage.lastSeqno; s++) {
    const ws = decodeEntry(svc.storage.read(s) as Buffer).writeSet;
    if (ws.get(Tables.SIGNATURES)?.has(SINGLETON) === true) out.push(s);
  }
  return out;
}

function states(
  svc: TestService,
  signatures: number[],
  options: { recentWindow?: number; storage?: LedgerStorage; tree?: MerkleTree } = {},
): HistoricalStates {
  return new HistoricalStates(
    {
      storage: () => options.storage ?? svc.storage,
      tree: options.tree ?? svc.tree,
      secrets: () => svc.secrets,
      commitSeqno: () => svc.storage.lastSeqno,
      signatureAtOrAfter: (seqno) => signatures.find((s) => s >= seqno),
      now: () => 0,
    },
    { recentWindow: options.recentWindow ?? 1000 },
  );
}

function stateOf(h: HistoricalStates, seqno: number): HistoricalState {
  const s = h.get(seqno);
  assert.ok(s instanceof HistoricalState, `state of ${seqno}`);
  return s;
}

/** Everything a client can see of a state, as bytes to compare. */
function visible(s: HistoricalState): string {
  const writes: Record<string, Record<string, string | null>> = {};
  for (const [map, kv] of s.writeSet) {
    writes[map] = {};
    for (const [k, v] of kv) writes[map][k] = v === null ? null : Buffer.from(v).toString("hex");
  }
  return JSON.stringify({
    id: s.transactionId,
    sig: s.isSignature,
    receipt: s.receipt,
    js: s.jsReceipt,
    cose:
      s.cose === undefined
        ? null
        : {
            signature: s.cose.signature.toString("hex"),
            proof: s.cose.proof,
            writeSetDigest: s.cose.writeSetDigest.toString("hex"),
            commitEvidence: s.cose.commitEvidence,
            claimsDigest: s.cose.claimsDigest.toString("hex"),
          },
    writes,
  });
}

/** A storage whose entry at `seqno` has one byte changed, at `needle`'s place in it plus `at`. */
function damaged(
  svc: TestService,
  seqno: number,
  needle: Uint8Array | undefined,
  at = 0,
): LedgerStorage {
  const change = (bytes: Buffer | undefined): Buffer | undefined => {
    if (bytes === undefined) return bytes;
    const copy = Buffer.from(bytes);
    const where = needle === undefined ? copy.length - 1 : copy.indexOf(Buffer.from(needle)) + at;
    assert.ok(where >= 0 && where < copy.length, "the damaged part is in the entry");
    copy[where] ^= 0x04;
    return copy;
  };
  return Object.assign(Object.create(svc.storage) as LedgerStorage, {
    read: (s: number) => (s === seqno ? change(svc.storage.read(s)) : svc.storage.read(s)),
    readAsync: async (s: number) =>
      s === seqno ? change(await svc.storage.readAsync(s)) : svc.storage.readAsync(s),
  });
}

function publicValue(svc: TestService, seqno: number, table: string): Uint8Array {
  const v = decodeEntry(svc.storage.read(seqno) as Buffer)
    .writeSet.get(table)
    ?.get(SINGLETON);
  assert.ok(v !== undefined && v !== null, `${table} at ${seqno}`);
  return v;
}

function isMismatch(e: unknown): boolean {
  return e instanceof CcfError && e.code === "HistoricalEntryMismatch" && e.status === 500;
}

describe("historical states of flushed seqnos", () => {
  it("gives the same states and receipts, byte for byte, before and after the tree is flushed", async () => {
    const { svc, signatures } = await service();
    const last = svc.storage.lastSeqno;
    const before = states(svc, signatures);
    const expected = new Map<number, string>();
    for (let s = 1; s <= last; s++) expected.set(s, visible(stateOf(before, s)));

    const flushTo = signatures[signatures.length - 2];
    svc.tree.flush(flushTo);
    assert.equal(svc.tree.minIndex, flushTo);
    assert.throws(() => svc.tree.leaf(1), RangeError, "leaves before the flush point are gone");

    const after = states(svc, signatures);
    for (let s = 1; s <= last; s++) {
      const state = stateOf(after, s);
      assert.equal(visible(state), expected.get(s), `seqno ${s}`);
      assert.ok(verifyReceipt(state.receipt, verifyDigest), `receipt of ${s} verifies`);
    }
    // The private writes are decrypted as before.
    const tx = stateOf(after, 3).tx();
    assert.equal(
      Buffer.from(tx.map("records").get(Buffer.from("k0")) as Uint8Array).toString(),
      "SECRET-PLAINTEXT-0",
    );
    await svc.storage.close();
  });

  it("reads flushed seqnos in the background as well, and ranges over them", async () => {
    const { svc, signatures } = await service();
    const before = states(svc, signatures);
    const seqno = 9;
    assert.ok(!signatures.includes(seqno));
    const expected = visible(stateOf(before, seqno));
    svc.tree.flush(signatures[signatures.length - 1]);
    const h = states(svc, signatures, { recentWindow: 0 });
    assert.equal(h.get(seqno), "fetching");
    const state = await waitFor("the flushed state", () => {
      const s = h.get(seqno);
      return s === "fetching" ? undefined : s;
    });
    assert.equal(visible(state), expected);
    const range = await waitFor("a range of flushed seqnos", () => h.range(1, 2, 20, 60));
    assert.deepEqual(
      range.map((s) => s.seqno),
      Array.from({ length: 19 }, (_, i) => i + 2),
    );
    for (const s of range) assert.ok(verifyReceipt(s.receipt, verifyDigest));
    await svc.storage.close();
  });

  it("keeps writing after a flush: the next signatures store the tree from the flush point", async () => {
    const { svc, signatures } = await service(12);
    svc.tree.flush(signatures[signatures.length - 1]);
    writeRecords(svc, 12, 100);
    svc.pipeline.emitSignature();
    await svc.pipeline.flush();
    const all = signaturesOf(svc);
    const newest = all[all.length - 1];
    const stored = MerkleTree.deserialise(publicValue(svc, newest, Tables.SERIALISED_MERKLE_TREE));
    assert.equal(stored.size, newest);
    assert.ok(stored.minIndex >= svc.tree.minIndex);
    svc.tree.flush(newest);
    const h = states(svc, all);
    for (let s = 1; s <= svc.storage.lastSeqno; s++) {
      assert.ok(verifyReceipt(stateOf(h, s).receipt, verifyDigest), `receipt of ${s}`);
    }
    await svc.storage.close();
  });

  it("refuses damage to a flushed entry, to its signature or the tree it stores (500)", async () => {
    const { svc, signatures } = await service();
    const target = 9;
    const sig = signatures.find((s) => s > target) as number;
    const next = signatures.find((s) => s > sig) as number;
    svc.tree.flush(signatures[signatures.length - 1]);
    const sigValue = JSON.parse(
      Buffer.from(publicValue(svc, sig, Tables.SIGNATURES)).toString(),
    ) as { sig: string; root: string; cert: string };
    const storedTree = publicValue(svc, sig, Tables.SERIALISED_MERKLE_TREE);
    const cose = publicValue(svc, sig, Tables.COSE_SIGNATURES);
    const nextTree = publicValue(svc, next, Tables.SERIALISED_MERKLE_TREE);
    const cases: Array<[string, LedgerStorage, number[]]> = [
      ["the entry itself", damaged(svc, target, undefined), [target]],
      [
        "the signature's ECDSA signature",
        damaged(svc, sig, Buffer.from(sigValue.sig), 10),
        [target, sig],
      ],
      ["the signed root", damaged(svc, sig, Buffer.from(sigValue.root), 5), [target, sig]],
      [
        "the signer's certificate",
        damaged(svc, sig, Buffer.from(sigValue.cert.slice(40, 60))),
        [target, sig],
      ],
      ["a leaf of the stored tree", damaged(svc, sig, storedTree, 16 + 32 * 2 + 3), [target, sig]],
      ["the stored tree's header", damaged(svc, sig, storedTree, 7), [target, sig]],
      ["the COSE signature", damaged(svc, sig, cose, 40), [target, sig]],
      ["the next signature's stored tree", damaged(svc, next, nextTree, 16 + 3), [target, sig]],
    ];
    for (const [what, storage, seqnos] of cases) {
      for (const seqno of seqnos) {
        assert.throws(
          () => states(svc, signatures, { storage }).get(seqno),
          isMismatch,
          `${what}: seqno ${seqno}`,
        );
        const old = states(svc, signatures, { storage, recentWindow: 0 });
        assert.equal(old.get(seqno), "fetching");
        const err = await waitFor(`${what}: background read of ${seqno} refused`, () => {
          try {
            old.get(seqno);
            return undefined;
          } catch (e) {
            return e;
          }
        });
        assert.ok(isMismatch(err), `${what}: ${String(err)}`);
      }
    }
    // Undamaged, the same seqnos are served.
    assert.ok(stateOf(states(svc, signatures), target) instanceof HistoricalState);
    await svc.storage.close();
  });

  it("refuses a signature entry from another ledger, consistent in itself", async () => {
    const { svc, signatures } = await service();
    const other = await startService({ txCount: 5, seed: 2 });
    const sig = signatures[3];
    svc.tree.flush(signatures[signatures.length - 1]);
    // The signature entry of another service at the same seqno: its own tree, root and signer,
    // all consistent, but not this ledger's: the next signature's tree does not hold its leaf.
    writeRecords(other, 40);
    other.pipeline.emitSignature();
    await other.pipeline.flush();
    assert.deepEqual(signaturesOf(other), signatures);
    const swapped: LedgerStorage = Object.assign(Object.create(svc.storage) as LedgerStorage, {
      read: (s: number) => (s === sig ? other.storage.read(s) : svc.storage.read(s)),
    });
    assert.throws(() => states(svc, signatures, { storage: swapped }).get(sig), isMismatch);
    assert.throws(() => states(svc, signatures, { storage: swapped }).get(sig - 1), isMismatch);
    await svc.storage.close();
    await other.storage.close();
  });
});
