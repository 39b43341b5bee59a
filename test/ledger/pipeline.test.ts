import assert from "node:assert/strict";
import { cpSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { coseSign1Decode, sha256, verifyDigest } from "../../src/crypto/index.js";
import { HttpError } from "../../src/errors.js";
import { decodeValue, keyToString, SINGLETON_KEY, Tables } from "../../src/kv/index.js";
import { LedgerVerificationError, MemoryLedger, readLedger } from "../../src/ledger/index.js";
import { buildReceipt, decodePrimarySignature, verifyReceipt } from "../../src/merkle/index.js";
import { startService, tempDir, writeRecords } from "./service-fixture.js";

const SINGLETON = keyToString(SINGLETON_KEY);

describe("transaction pipeline", () => {
  it("emits a signature every tx_count transactions and the ledger verifies offline", async () => {
    const svc = await startService({ txCount: 10 });
    writeRecords(svc, 35);
    await svc.pipeline.flush();
    // genesis + signature, then 35 writes with a signature after every 10
    assert.equal(svc.pipeline.lastSeqno, 2 + 35 + 3);
    assert.equal(svc.pipeline.lastSignedSeqno, 2 + 33);
    const report = readLedger(svc.dir, { secrets: svc.secrets });
    assert.equal(report.entries, 40);
    assert.equal(report.signatures, 4);
    assert.equal(report.coseSignatures, 4);
    assert.equal(report.unsignedTail, 5);
    assert.equal(report.lastSignedSeqno, 35);
    assert.equal(
      Buffer.from(report.store.get("records", "k34") as Uint8Array).toString(),
      "SECRET-PLAINTEXT-34",
    );
    await svc.storage.close();
  });

  it("gives every entry a buffer of its own, not a slice of node's shared pool", async () => {
    // Consensus keeps every entry in memory: a pooled slice kept a whole 8 KiB slab alive, and the
    // primary of the load soak (bench/soak.ts) grew by about 34 MB a minute at 100 writes/s.
    const storage = new MemoryLedger();
    const svc = await startService({ txCount: 10, storage });
    writeRecords(svc, 25);
    assert.ok(storage.lastSeqno > 25);
    for (let seqno = 1; seqno <= storage.lastSeqno; seqno++) {
      const entry = storage.read(seqno);
      assert.ok(entry !== undefined);
      assert.equal(entry.buffer.byteLength, entry.byteLength, `entry ${seqno} owns its buffer`);
    }
  });

  it("signs on the delay when transactions are waiting, and not otherwise", async () => {
    const svc = await startService({ txCount: 1000 });
    assert.equal(svc.pipeline.tick(), undefined);
    writeRecords(svc, 3);
    svc.clock.t += 999;
    assert.equal(svc.pipeline.tick(), undefined);
    svc.clock.t += 1;
    assert.deepEqual(svc.pipeline.tick(), { view: 2, seqno: 6 });
    svc.clock.t += 5000;
    assert.equal(svc.pipeline.tick(), undefined);
    await svc.storage.close();
  });

  it("with whenIdle, also signs at a tick that saw no new transaction since the last one", async () => {
    const svc = await startService({ txCount: 1000, whenIdle: true });
    writeRecords(svc, 3);
    assert.equal(svc.pipeline.tick(), undefined, "busy since the last tick: no signature yet");
    assert.deepEqual(svc.pipeline.tick(), { view: 2, seqno: 6 }, "idle for a tick: signs");
    assert.equal(svc.pipeline.tick(), undefined, "nothing unsigned: nothing to sign");
    writeRecords(svc, 1, 3);
    svc.pipeline.tick();
    writeRecords(svc, 1, 4);
    assert.equal(svc.pipeline.tick(), undefined, "steady load: no idle tick");
    await svc.storage.close();
  });

  it("writes CCF's signature transaction: node ECDSA over the root, COSE Sign1 with CCF's headers, the tree", async () => {
    const svc = await startService({ txCount: 5 });
    writeRecords(svc, 5);
    const seqno = svc.pipeline.lastSignedSeqno;
    const sig = decodePrimarySignature(svc.store.get(Tables.SIGNATURES, SINGLETON) as Uint8Array);
    assert.equal(sig.seqno, seqno);
    assert.equal(sig.node, svc.nodeId);
    assert.ok(
      verifyDigest(
        sig.cert as string,
        Buffer.from(sig.root, "hex"),
        Buffer.from(sig.sig, "base64"),
      ),
    );
    const cose = coseSign1Decode(
      Buffer.from(
        decodeValue(
          Tables.COSE_SIGNATURES,
          svc.store.get(Tables.COSE_SIGNATURES, SINGLETON) as Uint8Array,
        ) as string,
        "base64",
      ),
    );
    assert.equal(cose.payload, null, "the root is a detached payload");
    assert.equal(cose.protectedHeaders.get(1), -35);
    assert.equal(cose.protectedHeaders.get(395), 2);
    assert.equal(
      (cose.protectedHeaders.get("ccf.v1") as Map<string, unknown>).get("txid"),
      `2.${seqno}`,
    );
    const cwt = cose.protectedHeaders.get(15) as Map<number, unknown>;
    assert.equal(cwt.get(6), Math.floor(svc.clock.t / 1000));
    await svc.storage.close();
  });

  it("is deterministic: the same seed and inputs give byte-identical ledgers", async () => {
    const files: string[][] = [];
    for (let run = 0; run < 2; run++) {
      const svc = await startService({ seed: 42, txCount: 7, chunkSize: 2000 });
      writeRecords(svc, 30);
      svc.pipeline.emitSignature();
      await svc.pipeline.flush();
      files.push(
        readdirSync(svc.dir)
          .sort()
          .map((f) => readFileSync(join(svc.dir, f)).toString("hex")),
      );
      await svc.storage.close();
    }
    assert.equal(files[0]?.length, files[1]?.length);
    assert.deepEqual(files[0], files[1]);
  });

  it("never writes private map contents in clear, while public ones are readable", async () => {
    const svc = await startService({ chunkSize: 4000 });
    writeRecords(svc, 50);
    svc.pipeline.emitSignature();
    await svc.pipeline.flush();
    const bytes = Buffer.concat(readdirSync(svc.dir).map((f) => readFileSync(join(svc.dir, f))));
    assert.equal(bytes.indexOf("SECRET-PLAINTEXT"), -1);
    assert.ok(bytes.indexOf("public-value-49") >= 0);
    await svc.storage.close();
  });

  it("retries a conflicting handler and reports a committed TxID", async () => {
    const svc = await startService({ storage: new MemoryLedger() });
    let runs = 0;
    const res = svc.pipeline.execute((tx) => {
      runs++;
      tx.map("c").get(Buffer.from("n"));
      if (runs === 1) {
        // another transaction commits in between the read and this commit
        svc.pipeline.execute((t2) => t2.map("c").set(Buffer.from("n"), Buffer.from("other")));
      }
      tx.map("c").set(Buffer.from("n"), Buffer.from("mine"));
    });
    assert.equal(runs, 2);
    assert.equal(res.wrote, true);
    assert.equal(res.txId.seqno, svc.store.version);
    assert.throws(
      () =>
        svc.pipeline.execute((tx) => {
          tx.map("c").get(Buffer.from("n"));
          svc.pipeline.execute((t2) => t2.map("c").set(Buffer.from("n"), Buffer.from("again")));
          tx.map("c").set(Buffer.from("n"), Buffer.from("x"));
        }),
      (e: Error) =>
        e instanceof HttpError &&
        e.status === 409 &&
        e.code === "TransactionCommitAttemptsExceedLimit",
    );
  });

  it("settles a read at once, and commits the writes of handlers run together after them", async () => {
    const svc = await startService({ storage: new MemoryLedger() });
    svc.pipeline.execute((tx) => tx.map("m").set(Buffer.from("a"), Buffer.from("1")));
    const read = svc.pipeline.executeMaybeAsync((tx) =>
      Buffer.from(tx.map("m").get(Buffer.from("a")) as Uint8Array).toString(),
    );
    assert.ok(!(read instanceof Promise), "a handler that returns a value and wrote nothing");
    assert.equal(read.result, "1");
    assert.equal(read.wrote, false);

    // two writing handlers started back to back both run before either commits
    const before = svc.store.version;
    const ran: string[] = [];
    const writes = ["b", "c"].map((k) =>
      svc.pipeline.executeMaybeAsync((tx) => {
        ran.push(`${k} at ${svc.store.version}`);
        tx.map("m").set(Buffer.from(k), Buffer.from(k));
        return k;
      }),
    );
    assert.deepEqual(ran, [`b at ${before}`, `c at ${before}`]);
    assert.ok(writes.every((w) => w instanceof Promise));
    assert.equal(svc.store.version, before);
    const [b, c] = await Promise.all(writes);
    assert.deepEqual(
      [b?.result, b?.wrote, b?.txId.seqno, c?.result, c?.txId.seqno],
      ["b", true, before + 1, "c", before + 2],
    );

    const later = svc.pipeline.executeMaybeAsync(async (tx) => {
      await Promise.resolve();
      tx.map("m").set(Buffer.from("d"), Buffer.from("2"));
      return "later";
    });
    assert.ok(later instanceof Promise);
    const settled = await later;
    assert.equal(settled.result, "later");
    assert.equal(settled.txId.seqno, svc.store.version);

    // what the handler throws: thrown at once, or rejected once it has awaited; nothing written
    const unchanged = svc.store.version;
    assert.throws(
      () =>
        svc.pipeline.executeMaybeAsync((tx) => {
          tx.map("m").set(Buffer.from("e"), Buffer.from("3"));
          throw new Error("sync failure");
        }),
      /sync failure/,
    );
    await assert.rejects(
      Promise.resolve(
        svc.pipeline.executeMaybeAsync(async (tx) => {
          await Promise.resolve();
          tx.map("m").set(Buffer.from("e"), Buffer.from("3"));
          throw new Error("async failure");
        }),
      ),
      /async failure/,
    );
    assert.equal(svc.store.version, unchanged);
    assert.equal(svc.store.get("m", "e"), undefined);
  });

  it("re-runs a handler whose transaction conflicted while it awaited", async () => {
    const svc = await startService({ storage: new MemoryLedger() });
    let runs = 0;
    const res = await svc.pipeline.executeMaybeAsync(async (tx) => {
      runs++;
      tx.map("c").get(Buffer.from("n"));
      await Promise.resolve();
      if (runs === 1) {
        svc.pipeline.execute((t2) => t2.map("c").set(Buffer.from("n"), Buffer.from("other")));
      }
      tx.map("c").set(Buffer.from("n"), Buffer.from("mine"));
      return runs;
    });
    assert.equal(runs, 2);
    assert.equal(res.result, 2);
    assert.equal(Buffer.from(svc.store.get("c", "n") as Uint8Array).toString(), "mine");
  });

  it("applies writes only when the handler's result allows it", async () => {
    const svc = await startService({ storage: new MemoryLedger() });
    const before = svc.store.version;
    const res = svc.pipeline.execute(
      (tx) => {
        tx.map("m").set(Buffer.from("k"), Buffer.from("v"));
        return { status: 400 };
      },
      { apply: (r) => r.status < 300 },
    );
    assert.equal(res.wrote, false);
    assert.equal(svc.store.version, before);
    assert.equal(svc.store.get("m", "k"), undefined);
  });

  it("builds receipts that verify against the signature and carry the claims digest", async () => {
    const svc = await startService({ storage: new MemoryLedger(), txCount: 1000 });
    const claims = sha256(Buffer.from("my claim"));
    const { txId } = svc.pipeline.execute(
      (tx) => tx.map("m").set(Buffer.from("k"), Buffer.from("v")),
      { claimsDigest: claims },
    );
    writeRecords(svc, 3);
    const sigId = svc.pipeline.emitSignature();
    const sig = decodePrimarySignature(svc.store.get(Tables.SIGNATURES, SINGLETON) as Uint8Array);
    const entry = svc.storage.read(txId.seqno) as Buffer;
    const tree = svc.pipeline.tree;
    const receipt = buildReceipt({
      proof: tree.path(txId.seqno, sigId.seqno),
      signature: { sig: sig.sig, node: sig.node, cert: sig.cert as string },
      leafComponents: {
        writeSetDigest: sha256(entry),
        commitEvidence: svc.pipeline.commitEvidenceFor(txId.view, txId.seqno),
        claimsDigest: claims,
      },
    });
    assert.ok("leaf_components" in receipt);
    const verify = (cert: string, d: Uint8Array, s: Uint8Array) => verifyDigest(cert, d, s);
    assert.ok(verifyReceipt(receipt, verify));
    const forged = {
      ...receipt,
      leaf_components: { ...receipt.leaf_components, claims_digest: "00".repeat(32) },
    };
    assert.ok(!verifyReceipt(forged, verify));
  });
});

describe("offline verification of our own ledgers", () => {
  async function sealedLedger(): Promise<{
    dir: string;
    secrets: Awaited<ReturnType<typeof startService>>["secrets"];
  }> {
    const svc = await startService({ chunkSize: 3000, txCount: 6 });
    writeRecords(svc, 40);
    svc.pipeline.emitSignature();
    await svc.pipeline.flush();
    svc.pipeline.committed(svc.pipeline.lastSeqno);
    await svc.storage.close();
    return { dir: svc.dir, secrets: svc.secrets };
  }

  it("detects every single bit flip in a committed ledger, naming file and seqno", async () => {
    const { dir, secrets } = await sealedLedger();
    const files = readdirSync(dir).sort();
    assert.ok(files.length >= 3 && files.every((f) => f.endsWith(".committed")), files.join(","));
    readLedger(dir, { secrets });
    const sizes = files.map((f) => readFileSync(join(dir, f)).length);
    let n = 0;
    fc.assert(
      fc.property(fc.nat(files.length - 1), fc.nat(1 << 30), fc.nat(7), (fi, pos, bit) => {
        const file = files[fi];
        const size = sizes[fi];
        const at = pos % size;
        const copy = join(tempDir(), "ledger");
        cpSync(dir, copy, { recursive: true });
        const bytes = readFileSync(join(copy, file));
        // The flags byte of the newest entry is covered by no signature yet (as in CCF): skip it.
        const lastEntryFlags = fi === files.length - 1 && isLastEntryFlagsByte(bytes, at);
        fc.pre(!lastEntryFlags);
        bytes[at] = bytes[at] ^ (1 << bit);
        writeFileSync(join(copy, file), bytes);
        n++;
        assert.throws(
          () => readLedger(copy, { secrets }),
          (e) => {
            assert.ok(e instanceof LedgerVerificationError, String(e));
            assert.match(e.message, /^ledger_\d+-\d+\.committed/);
            return true;
          },
        );
      }),
      { numRuns: 150 },
    );
    assert.ok(n > 100);
  });

  it("detects truncation of a committed chunk", async () => {
    const { dir, secrets } = await sealedLedger();
    const file = readdirSync(dir).sort()[1];
    const bytes = readFileSync(join(dir, file));
    writeFileSync(join(dir, file), bytes.subarray(0, bytes.length - 10));
    assert.throws(() => readLedger(dir, { secrets }), LedgerVerificationError);
  });

  it("names the entry whose bytes no longer match the signed tree", async () => {
    const { dir } = await sealedLedger();
    const file = readdirSync(dir).find((f) => /^ledger_3-/.test(f)) as string;
    const bytes = readFileSync(join(dir, file));
    // flip a byte of seqno 4's claims digest (public header, not a signature transaction)
    const fourth = bytes.readUInt32LE(Number(bytes.readBigUInt64LE(0)) + 4);
    bytes[fourth + 60] = bytes[fourth + 60] ^ 0xff;
    writeFileSync(join(dir, file), bytes);
    assert.throws(() => readLedger(dir), /seqno 4: entry does not match the Merkle tree/);
  });
});

function isLastEntryFlagsByte(chunk: Buffer, at: number): boolean {
  const table = Number(chunk.readBigUInt64LE(0));
  const lastOffset = chunk.readUInt32LE(chunk.length - 4);
  return table > 0 && at === lastOffset + 1;
}
