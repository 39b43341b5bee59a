// Snapshot files: written while the evidence awaits commit, committed with the evidence's receipt,
// listed newest first, read back, verified against the service certificate, and laid out byte for
// byte as CCF lays out a snapshot entry.
import assert from "node:assert/strict";
import { createDecipheriv } from "node:crypto";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { nodeIdFromPublicKey, sha256 } from "../../src/crypto/index.js";
import { seededIdentity } from "../helpers/service-identity.js";
import {
  installSnapshot,
  keyToString,
  SINGLETON_KEY,
  serialiseSnapshot,
  Store,
  Tables,
  viewHistoryUntil,
} from "../../src/kv/index.js";
import {
  commitSnapshotFile,
  decodeEntry,
  decodeSnapshotEntry,
  encodeSnapshotEntry,
  type LedgerSecret,
  LedgerSecrets,
  listCommittedSnapshots,
  MemoryLedger,
  readSnapshotFile,
  SNAPSHOT_EVIDENCE_KEY,
  snapshotDigest,
  snapshotEvidenceValue,
  snapshotFileName,
  TxPipeline,
  verifySnapshot,
  writeSnapshotFile,
} from "../../src/ledger/index.js";
import {
  buildReceipt,
  decodePrimarySignature,
  MerkleTree,
  type Receipt,
  type TxReceipt,
} from "../../src/merkle/index.js";

const SECRET_MARKER = "very-private-value-0123456789";

interface Service {
  store: Store;
  tree: MerkleTree;
  secret: LedgerSecret;
  serviceCert: string;
  otherServiceCert: string;
  pipeline: TxPipeline;
  storage: MemoryLedger;
  signer: { sig: string; node: string; cert: string };
}

async function service(): Promise<Service> {
  const id = await seededIdentity(7, { other: true });
  const { rng, nodeKey, serviceKey, serviceCert, nodeCert } = id;
  const otherServiceCert = (id.other as { cert: string }).cert;
  const store = new Store();
  const storage = new MemoryLedger();
  const tree = new MerkleTree();
  const secret = { key: Buffer.from(rng.bytes(32)), version: 1 };
  const pipeline = new TxPipeline({
    store,
    storage,
    tree,
    secrets: new LedgerSecrets([secret]),
    node: { nodeId: nodeIdFromPublicKey(nodeKey.publicKey), key: nodeKey, certPem: nodeCert },
    service: { key: serviceKey },
    view: 2,
    signatures: { txCount: 1000, delayMs: 1_000_000 },
    clock: { now: () => 1_700_000_000_000 },
  });
  return {
    store,
    tree,
    secret,
    serviceCert,
    otherServiceCert,
    pipeline,
    storage,
    signer: { sig: "", node: "", cert: "" },
  };
}

interface Snapshotted {
  seqno: number;
  evidenceSeqno: number;
  entryDigest: Buffer;
  receipt: TxReceipt;
  pending: string;
}

/** Writes transactions, snapshots at a signature, commits the evidence and builds its receipt. */
async function snapshotOnce(s: Service, dir: string, txs: number): Promise<Snapshotted> {
  for (let i = 0; i < txs; i++) {
    s.pipeline.execute((tx) => {
      tx.map("public:records").set(Buffer.from(`k${s.store.version}`), Buffer.from(`v${i}`));
      tx.map("records").set(Buffer.from(`p${i}`), Buffer.from(`${SECRET_MARKER}-${i}`));
    });
  }
  const seqno = s.pipeline.emitSignature().seqno;
  const domains = serialiseSnapshot(s.store, seqno, {
    viewHistory: viewHistoryUntil([{ view: 2, seqno: 1 }], seqno),
    hashAtSnapshot: s.tree.leaf(seqno),
  });
  const entry = encodeSnapshotEntry(domains, seqno, s.secret);
  const digest = snapshotDigest(entry);
  const evidence = s.pipeline.execute(
    (tx) =>
      tx
        .map(Tables.SNAPSHOT_EVIDENCE)
        .set(SNAPSHOT_EVIDENCE_KEY, snapshotEvidenceValue(digest, seqno)),
    { claimsDigest: digest },
  );
  const evidenceSeqno = evidence.txId.seqno;
  const pending = await writeSnapshotFile(dir, seqno, evidenceSeqno, entry);
  const sigSeqno = s.pipeline.emitSignature().seqno;
  const signature = decodePrimarySignature(
    s.store.get(Tables.SIGNATURES, keyToString(SINGLETON_KEY)) as Uint8Array,
  );
  const raw = s.storage.read(evidenceSeqno) as Buffer;
  const receipt = buildReceipt({
    proof: s.tree.path(evidenceSeqno, sigSeqno),
    signature: { sig: signature.sig, node: signature.node, cert: signature.cert ?? "" },
    leafComponents: {
      writeSetDigest: sha256(raw),
      commitEvidence: s.pipeline.commitEvidenceFor(2, evidenceSeqno),
      claimsDigest: decodeEntry(raw).header.claimsDigest ?? Buffer.alloc(32),
    },
  }) as TxReceipt;
  return { seqno, evidenceSeqno, entryDigest: digest, receipt, pending };
}

describe("snapshot files", () => {
  let s: Service;
  let dir: string;
  let first: Snapshotted;
  let second: Snapshotted;

  before(async () => {
    s = await service();
    dir = fs.mkdtempSync(join(tmpdir(), "ccf-ts-snapshots-"));
    first = await snapshotOnce(s, dir, 3);
    second = await snapshotOnce(s, dir, 4);
  });

  it("waits as snapshot_<seqno>_<evidence> holding only the entry, then commits with the receipt", async () => {
    assert.equal(first.pending, join(dir, snapshotFileName(first.seqno, first.evidenceSeqno)));
    const pending = readSnapshotFile(first.pending);
    assert.equal(pending.receiptBytes.length, 0);
    assert.equal(pending.seqno, first.seqno);
    assert.deepEqual(listCommittedSnapshots(dir), []);

    const committed = await commitSnapshotFile(
      dir,
      first.seqno,
      first.evidenceSeqno,
      first.receipt,
    );
    assert.equal(committed, `${first.pending}.committed`);
    assert.equal(fs.existsSync(first.pending), false);
    await commitSnapshotFile(dir, second.seqno, second.evidenceSeqno, second.receipt);

    const list = listCommittedSnapshots(dir);
    assert.deepEqual(
      list.map((x) => [x.seqno, x.evidenceSeqno]),
      [
        [second.seqno, second.evidenceSeqno],
        [first.seqno, first.evidenceSeqno],
      ],
    );
    const read = readSnapshotFile(list[1].path);
    assert.deepEqual(read.receipt, first.receipt);
    assert.deepEqual(sha256(read.entry), first.entryDigest);
    assert.deepEqual(verifySnapshot(read.entry, read.receipt, s.serviceCert), {
      evidenceSeqno: first.evidenceSeqno,
    });
    assert.deepEqual(verifySnapshot(read.entry, read.receiptBytes, s.serviceCert), {
      evidenceSeqno: first.evidenceSeqno,
    });
  });

  it("installs into a store that reads as the service did at the snapshot", () => {
    const latest = readSnapshotFile(listCommittedSnapshots(dir)[0].path);
    const parsed = decodeSnapshotEntry(latest.entry, s.secret);
    assert.equal(parsed.version, second.seqno);
    assert.deepEqual(parsed.hashAtSnapshot, s.tree.leaf(second.seqno));
    assert.deepEqual(parsed.viewHistory, [1, 1]);
    const installed = new Store();
    installSnapshot(installed, parsed);
    // The first snapshot's evidence is in the second snapshot (the store has the second's since).
    assert.deepEqual(
      installed.get(Tables.SNAPSHOT_EVIDENCE, keyToString(SINGLETON_KEY)),
      snapshotEvidenceValue(first.entryDigest, first.seqno),
    );
    for (const map of ["public:records", "records"]) {
      const state = installed.mapState(map);
      for (const [k, e] of state?.entries ?? []) {
        assert.deepEqual(e.value, s.store.get(map, k), `${map} differs`);
      }
    }
    assert.equal(installed.mapState("records")?.size, 4); // p0..p3, rewritten by each round
    // The public part is readable without the secret.
    const publicOnly = decodeSnapshotEntry(latest.entry);
    assert.equal(publicOnly.maps.has("records"), false);
    assert.equal(publicOnly.maps.get("public:records")?.entries.length, 7);
  });

  it("never writes a private value in the clear", () => {
    for (const f of fs.readdirSync(dir)) {
      const bytes = fs.readFileSync(join(dir, f));
      assert.equal(bytes.includes(Buffer.from(SECRET_MARKER)), false, f);
      assert.equal(bytes.includes(Buffer.from("public:records")), true, f);
    }
  });

  it("detects a flipped bit anywhere in the entry", () => {
    const { entry, receipt } = readSnapshotFile(listCommittedSnapshots(dir)[1].path);
    for (const at of [3, 20, 60, entry.length - 1]) {
      const bad = Buffer.from(entry);
      bad[at] ^= 0x01;
      assert.throws(() => verifySnapshot(bad, receipt, s.serviceCert), {
        code: "InvalidSnapshotReceipt",
        message: /does not match the receipt's claims digest/,
      });
    }
    const bad = Buffer.from(entry);
    bad[entry.length - 1] ^= 0x80;
    assert.throws(() => decodeSnapshotEntry(bad, s.secret), { name: "CryptoError" });
  });

  it("refuses a wrong receipt", () => {
    const { entry } = readSnapshotFile(listCommittedSnapshots(dir)[1].path);
    // The other snapshot's receipt: its claims digest is another entry's.
    assert.throws(() => verifySnapshot(entry, second.receipt, s.serviceCert), /claims digest/);
    // Another service's certificate.
    assert.throws(
      () => verifySnapshot(entry, first.receipt, s.otherServiceCert),
      /does not verify against the service certificate/,
    );
    // A proof step changed: the signature no longer covers the root.
    const tampered: Receipt = {
      ...first.receipt,
      proof: first.receipt.proof.map((p, i) =>
        i === 0 && "left" in p ? { left: `${p.left[0] === "0" ? "1" : "0"}${p.left.slice(1)}` } : p,
      ),
    };
    if (JSON.stringify(tampered) !== JSON.stringify(first.receipt)) {
      assert.throws(() => verifySnapshot(entry, tampered, s.serviceCert), /does not verify/);
    }
    assert.throws(() => verifySnapshot(entry, undefined, s.serviceCert), /no receipt/);
    assert.throws(
      () => verifySnapshot(entry, Buffer.from([0xd2, 0x84]), s.serviceCert),
      /COSE snapshot receipts/,
    );
  });

  it("refuses to commit a file twice", async () => {
    const other = fs.mkdtempSync(join(tmpdir(), "ccf-ts-snapshots-"));
    const store = new Store();
    const tx = store.begin();
    tx.map("public:a").set(Buffer.from("k"), Buffer.from("v"));
    store.apply(tx.writeSet(), 1);
    const entry = encodeSnapshotEntry(
      serialiseSnapshot(store, 1, { viewHistory: [] }),
      1,
      s.secret,
    );
    await writeSnapshotFile(other, 1, 2, entry);
    await assert.rejects(writeSnapshotFile(other, 1, 2, entry), { code: "EEXIST" });
    const path = join(other, snapshotFileName(1, 2));
    fs.appendFileSync(path, "{}");
    await assert.rejects(commitSnapshotFile(other, 1, 2, first.receipt), {
      code: "InvalidSnapshot",
    });
  });
});

describe("snapshot entry layout", () => {
  it("is CCF's: header, snapshot IV, public domain with hash and view history, padded entries", async () => {
    const store = new Store();
    const tx = store.begin();
    tx.map("public:a").set(Buffer.from("k"), Buffer.from("v"));
    tx.map("b").set(Buffer.from("x"), Buffer.from("yz"));
    store.apply(tx.writeSet(), 1);
    const secret = { key: Buffer.alloc(32, 7), version: 1 };
    const hash = Buffer.alloc(32, 0xab);
    const entry = encodeSnapshotEntry(
      serialiseSnapshot(store, 1, { viewHistory: [1], hashAtSnapshot: hash }),
      1,
      secret,
    );
    const dir = fs.mkdtempSync(join(tmpdir(), "ccf-ts-snapshots-"));
    const bytes = fs.readFileSync(await writeSnapshotFile(dir, 1, 2, entry));

    const u64 = (n: number) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt(n));
      return b;
    };
    const z = (n: number) => Buffer.alloc(n);
    const expectedPublic = Buffer.concat([
      Buffer.from([1]), // entry type Snapshot
      u64(1), // version
      u64(0), // max conflict version
      u64(32),
      hash, // hash at snapshot
      u64(8),
      u64(1), // view history: view 1 starts at 1
      u64(8),
      Buffer.from("public:a"),
      u64(1), // map version
      u64(16 + 24), // entries' size
      u64(1),
      Buffer.from("k"),
      z(7), // key, padded to 8
      u64(9),
      u64(1),
      Buffer.from("v"),
      z(7), // versioned value: size (version + value), version, value, padded to 8
    ]);
    const expectedPrivate = Buffer.concat([
      u64(1),
      Buffer.from("b"),
      u64(1),
      u64(16 + 24),
      u64(1),
      Buffer.from("x"),
      z(7),
      u64(10),
      u64(1),
      Buffer.from("yz"),
      z(6),
    ]);
    const size = 16 + 12 + 8 + expectedPublic.length + expectedPrivate.length;
    assert.equal(bytes.length, 8 + size);
    assert.equal(bytes[0], 1); // entry format version
    assert.equal(bytes[1], 0); // flags
    assert.equal(bytes.readUIntLE(2, 6), size);
    const tag = bytes.subarray(8, 24);
    const iv = bytes.subarray(24, 36);
    // IV: seqno u64, then view 0 with the top bit (snapshot) set.
    assert.deepEqual(iv, Buffer.concat([u64(1), Buffer.from([0, 0, 0, 0x80])]));
    assert.deepEqual(bytes.subarray(36, 44), u64(expectedPublic.length));
    assert.deepEqual(bytes.subarray(44, 44 + expectedPublic.length), expectedPublic);
    const decipher = createDecipheriv("aes-256-gcm", secret.key, iv);
    decipher.setAAD(expectedPublic);
    decipher.setAuthTag(tag);
    const plain = Buffer.concat([
      decipher.update(bytes.subarray(44 + expectedPublic.length)),
      decipher.final(),
    ]);
    assert.deepEqual(plain, expectedPrivate);
    assert.deepEqual(snapshotDigest(entry), sha256(bytes));
  });

  it("writes the evidence value as CCF's SnapshotHash JSON", () => {
    const hash = Buffer.alloc(32, 0x0f);
    assert.equal(
      snapshotEvidenceValue(hash, 42).toString(),
      `{"hash":"${"0f".repeat(32)}","version":42}`,
    );
  });
});
