// The node's snapshotter with the real pipeline: snapshot points chosen by CCF's rule, the state
// captured at the point when the commit reaches it (not at the later state the store holds by then),
// the evidence written, the file committed with the evidence's receipt once a later signature
// commits, and the file fetched by a joiner over TLS, verified and installed.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  createServiceCertificate,
  EcKeyPair,
  nodeIdFromPublicKey,
  sha256,
} from "../../src/crypto/index.js";
import { seededIdentity, VALID_FROM } from "../helpers/service-identity.js";
import { snapshotEndpoints } from "../../src/endpoints/snapshot.js";
import { installSnapshot, keyToString, SINGLETON_KEY, Store, Tables } from "../../src/kv/index.js";
import {
  decodeEntry,
  LedgerSecrets,
  listCommittedSnapshots,
  MemoryLedger,
  SNAPSHOT_EVIDENCE_KEY,
  snapshotFileName,
  TxPipeline,
} from "../../src/ledger/index.js";
import {
  buildReceipt,
  decodePrimarySignature,
  MerkleTree,
  type Receipt,
} from "../../src/merkle/index.js";
import { fetchLatestSnapshot, loadSnapshot } from "../../src/node/snapshot-fetch.js";
import { type PreparedSnapshot, Snapshotter } from "../../src/node/snapshotter.js";
import { serviceEndorsed, startServer } from "../rpc/tls-fixture.js";

interface Harness {
  store: Store;
  tree: MerkleTree;
  secrets: LedgerSecrets;
  serviceCert: string;
  pipeline: TxPipeline;
  storage: MemoryLedger;
  snapshotter: Snapshotter;
  dir: string;
  /** Signature values by seqno, read when each was emitted. */
  signatures: Map<number, { sig: string; node: string; cert: string }>;
  commit: number;
}

async function harness(txCount: number): Promise<Harness> {
  const { rng, nodeKey, serviceKey, serviceCert, nodeCert } = await seededIdentity(11);
  const store = new Store();
  const storage = new MemoryLedger();
  const tree = new MerkleTree();
  const secrets = new LedgerSecrets([{ key: Buffer.from(rng.bytes(32)), version: 1 }]);
  const pipeline = new TxPipeline({
    store,
    storage,
    tree,
    secrets,
    node: { nodeId: nodeIdFromPublicKey(nodeKey.publicKey), key: nodeKey, certPem: nodeCert },
    service: { key: serviceKey },
    view: 2,
    signatures: { txCount: 1_000_000, delayMs: 1_000_000 },
    clock: { now: () => 1_700_000_000_000 },
  });
  const dir = fs.mkdtempSync(join(tmpdir(), "ccf-ts-snapshotter-"));
  const snapshotter = new Snapshotter({
    dir,
    txCount,
    store,
    tree,
    secrets: () => secrets,
    viewHistory: () => [{ view: 2, seqno: 1 }],
  });
  return {
    store,
    tree,
    secrets,
    serviceCert,
    pipeline,
    storage,
    snapshotter,
    dir,
    signatures: new Map(),
    commit: 0,
  };
}

function write(h: Harness, key: string, value: string): number {
  return h.pipeline.execute((tx) => {
    tx.map("public:records").set(Buffer.from(key), Buffer.from(value));
    tx.map("records").set(Buffer.from(`private-${key}`), Buffer.from(`secret-${value}`));
  }).txId.seqno;
}

/** Emits a signature and tells the snapshotter, as the node does for every signature. */
function sign(h: Harness): number {
  const seqno = h.pipeline.emitSignature().seqno;
  const s = decodePrimarySignature(
    h.store.get(Tables.SIGNATURES, keyToString(SINGLETON_KEY)) as Uint8Array,
  );
  h.signatures.set(seqno, { sig: s.sig, node: s.node, cert: s.cert ?? "" });
  h.snapshotter.recordCommittable(seqno);
  return seqno;
}

/** The evidence's receipt, from the first signature after it that is committed. */
function receiptFor(h: Harness, evidenceSeqno: number): Receipt | undefined {
  const sigSeqno = [...h.signatures.keys()]
    .sort((a, b) => a - b)
    .find((s) => s > evidenceSeqno && s <= h.commit);
  if (sigSeqno === undefined) return undefined;
  const raw = h.storage.read(evidenceSeqno) as Buffer;
  return buildReceipt({
    proof: h.tree.path(evidenceSeqno, sigSeqno),
    signature: h.signatures.get(sigSeqno) as { sig: string; node: string; cert: string },
    leafComponents: {
      writeSetDigest: sha256(raw),
      commitEvidence: h.pipeline.commitEvidenceFor(2, evidenceSeqno),
      claimsDigest: decodeEntry(raw).header.claimsDigest ?? Buffer.alloc(32),
    },
  });
}

/**
 * The node's commit path: the snapshotter first (the state at the snapshot point is still in the
 * store's undo log), then the pipeline (compaction), then the evidence and pending file for a
 * captured snapshot, then pending snapshots whose evidence is now covered.
 */
async function commitTo(
  h: Harness,
  seqno: number,
): Promise<{ prepared?: PreparedSnapshot; committed: string[] }> {
  const preparing = h.snapshotter.commit(seqno, true);
  // Compaction right after the capture: the snapshot is serialised from the capture, not the store.
  h.pipeline.committed(seqno);
  h.commit = seqno;
  const prepared = await preparing;
  if (prepared !== undefined) {
    const evidence = h.pipeline.execute(
      (tx) => tx.map(Tables.SNAPSHOT_EVIDENCE).set(SNAPSHOT_EVIDENCE_KEY, prepared.evidenceValue),
      { claimsDigest: prepared.digest },
    );
    await h.snapshotter.writePending(prepared, evidence.txId.seqno);
  }
  const committed = await h.snapshotter.onCommit(seqno, (e) => receiptFor(h, e));
  return { ...(prepared === undefined ? {} : { prepared }), committed };
}

/** Live entries of every map: name → key → value (hex). */
function dump(store: Store): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const name of store.mapNames()) {
    const m = new Map<string, string>();
    for (const [k, e] of store.mapState(name)?.entries ?? []) {
      if (e.value !== null) m.set(k, Buffer.from(e.value).toString("hex"));
    }
    if (m.size > 0) out.set(name, m);
  }
  return out;
}

describe("snapshotter", () => {
  let h: Harness;
  let snapshotSeqno: number;
  let stateAtSnapshot: Map<string, Map<string, string>>;
  let committedPath: string;
  let laterSeqno: number;

  before(async () => {
    h = await harness(6);
    for (let i = 0; i < 6; i++) write(h, `k${i}`, `v${i}`);
    h.pipeline.execute((tx) => tx.map("records").delete(Buffer.from("private-k0")));
    snapshotSeqno = sign(h); // 8: 8 - 0 >= 6, a snapshot point
    stateAtSnapshot = dump(h.store);
    // Written after the snapshot point, before the commit reaches it.
    laterSeqno = write(h, "k1", "overwritten");
    write(h, "later", "x");
    const s2 = sign(h);
    const first = await commitTo(h, s2);
    assert.equal(first.prepared?.seqno, snapshotSeqno);
    assert.deepEqual(first.committed, []); // the evidence comes after the commit point
    const pending = h.snapshotter.pendingSnapshots;
    assert.equal(pending.length, 1);
    assert.equal(
      pending[0].path,
      join(h.dir, snapshotFileName(snapshotSeqno, pending[0].evidenceSeqno)),
    );
    const s3 = sign(h);
    const second = await commitTo(h, s3);
    assert.equal(second.prepared, undefined);
    assert.equal(second.committed.length, 1);
    committedPath = second.committed[0];
  });

  after(() => fs.rmSync(h.dir, { recursive: true, force: true }));

  it("chooses snapshot points by CCF's rule", async () => {
    const s = (await harness(10)).snapshotter;
    assert.equal(s.shouldSnapshotAt(9), false);
    assert.equal(s.recordCommittable(9), false);
    assert.equal(s.shouldSnapshotAt(10), true);
    assert.equal(s.recordCommittable(10), true);
    assert.equal(s.recordCommittable(15), false);
    // trigger_snapshot: the next signature, whatever the interval; it does not move the interval.
    s.requestSnapshot();
    assert.equal(s.shouldSnapshotAt(16), true);
    assert.equal(s.recordCommittable(16), false); // forced, not due: no ledger chunk
    assert.equal(s.shouldSnapshotAt(17), false);
    assert.equal(s.recordCommittable(20), true); // 20 - 10 (the last unforced point)
    assert.throws(() => s.recordCommittable(19), RangeError);
  });

  it("forgets rolled-back points at once, so the replacing signatures can be recorded (chaos seed 11)", async () => {
    // An old primary cut off recorded a point at 30, then lost its suffix to the new primary,
    // whose signature at 23 is applied right after the rollback, before any async work has run.
    const s = (await harness(10)).snapshotter;
    assert.equal(s.recordCommittable(10), true);
    assert.equal(s.recordCommittable(20), true);
    assert.equal(s.recordCommittable(30), true);
    s.rollbackPoints(21);
    assert.equal(s.recordCommittable(23), false); // 23 - 20: not due
    assert.equal(s.recordCommittable(30), true);
    // Without the rollback, an earlier signature than the last point is refused (a bug upstream).
    assert.throws(() => s.recordCommittable(25), /before the last snapshot point 30/);
  });

  it("commits the file with the evidence's receipt once a later signature commits", () => {
    const [only] = listCommittedSnapshots(h.dir);
    assert.equal(only.path, committedPath);
    assert.equal(only.seqno, snapshotSeqno);
    assert.equal(h.snapshotter.pendingSnapshots.length, 0);
    assert.equal(fs.existsSync(committedPath.replace(/\.committed$/, "")), false);
  });

  it("verifies against the service certificate and installs to the state at its seqno", () => {
    const loaded = loadSnapshot(committedPath, h.serviceCert, h.secrets);
    assert.equal(loaded.seqno, snapshotSeqno);
    assert.equal(loaded.evidenceSeqno, listCommittedSnapshots(h.dir)[0].evidenceSeqno);
    assert.deepEqual(loaded.parsed.hashAtSnapshot, h.tree.leaf(snapshotSeqno));
    assert.deepEqual(loaded.parsed.viewHistory, [1, 1]);
    const installed = new Store();
    installSnapshot(installed, loaded.parsed);
    assert.equal(installed.version, snapshotSeqno);
    assert.deepEqual(dump(installed), stateAtSnapshot);
    // Private maps are there; what came after the snapshot point is not.
    const rec = (k: string) => installed.get("records", keyToString(Buffer.from(k)));
    assert.deepEqual(rec("private-k1"), Buffer.from("secret-v1"));
    assert.equal(rec("private-k0"), undefined);
    assert.equal(installed.get("public:records", keyToString(Buffer.from("later"))), undefined);
    assert.ok(laterSeqno > snapshotSeqno);
    assert.deepEqual(
      h.store.get("records", keyToString(Buffer.from("private-k1"))),
      Buffer.from("secret-overwritten"),
    );
  });

  it("refuses a snapshot under another service's certificate, or with its receipt cut", async () => {
    const otherService = await createServiceCertificate(EcKeyPair.generate("secp384r1"), {
      validFrom: VALID_FROM,
      validityDays: 1,
    });
    assert.throws(() => loadSnapshot(committedPath, otherService), {
      code: "InvalidSnapshotReceipt",
      message: /does not verify/,
    });
    const cut = join(h.dir, "cut");
    const bytes = fs.readFileSync(committedPath);
    fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 10));
    assert.throws(() => loadSnapshot(cut, h.serviceCert), { code: "InvalidSnapshot" });
    fs.rmSync(cut);
  });

  it("is fetched by a joiner over TLS (in ranges, following the redirect) and loads", async () => {
    const { service, node } = await serviceEndorsed();
    // The node's TLS identity is endorsed by `service`; the snapshot's receipt by h's service.
    let port = 0;
    const server = await startServer(
      node,
      snapshotEndpoints({ snapshotDir: h.dir, selfAddress: () => `127.0.0.1:${port}` }),
    );
    port = server.port;
    const dest = fs.mkdtempSync(join(tmpdir(), "ccf-ts-snapshot-fetch-"));
    try {
      const size = fs.statSync(committedPath).size;
      const path = await fetchLatestSnapshot({
        target: `127.0.0.1:${port}`,
        serviceCertPem: service.cert,
        destDir: dest,
        maxSize: 1 << 30,
        rangeSize: Math.ceil(size / 3),
      });
      assert.equal(path, join(dest, committedPath.slice(committedPath.lastIndexOf("/") + 1)));
      assert.deepEqual(fs.readFileSync(path), fs.readFileSync(committedPath));
      assert.deepEqual(fs.readdirSync(dest), [
        committedPath.slice(committedPath.lastIndexOf("/") + 1),
      ]);
      const loaded = loadSnapshot(path, h.serviceCert, h.secrets);
      assert.equal(loaded.seqno, snapshotSeqno);

      await assert.rejects(
        fetchLatestSnapshot({
          target: `127.0.0.1:${port}`,
          serviceCertPem: service.cert,
          destDir: dest,
          maxSize: size - 1,
        }),
        { code: "SnapshotFetchFailed", message: /over the limit/ },
      );
      const empty = fs.mkdtempSync(join(tmpdir(), "ccf-ts-snapshot-none-"));
      server.router.setEndpoints("app", snapshotEndpoints({ snapshotDir: empty }));
      assert.equal(
        await fetchLatestSnapshot({
          target: `127.0.0.1:${port}`,
          serviceCertPem: service.cert,
          destDir: dest,
          maxSize: 1 << 30,
        }),
        undefined,
      );
      fs.rmSync(empty, { recursive: true });
    } finally {
      await server.stop();
      fs.rmSync(dest, { recursive: true, force: true });
    }
  });

  it("drops pending snapshots whose evidence is rolled back, and their files", async () => {
    const g = await harness(3);
    for (let i = 0; i < 3; i++) write(g, `a${i}`, "x");
    const s1 = sign(g);
    const { prepared } = await commitTo(g, s1);
    assert.equal(prepared?.seqno, s1);
    const [p] = g.snapshotter.pendingSnapshots;
    assert.ok(fs.existsSync(p.path));
    await g.snapshotter.rollback(p.evidenceSeqno - 1);
    assert.equal(g.snapshotter.pendingSnapshots.length, 0);
    assert.equal(fs.existsSync(p.path), false);
    fs.rmSync(g.dir, { recursive: true, force: true });
  });

  it("snapshots at a forced point, and never twice at the same one", async () => {
    const g = await harness(1000);
    write(g, "a", "1");
    g.snapshotter.requestSnapshot();
    const s1 = sign(g);
    const first = await commitTo(g, s1);
    assert.equal(first.prepared?.seqno, s1);
    write(g, "b", "2");
    const s2 = sign(g);
    const second = await commitTo(g, s2);
    assert.equal(second.prepared, undefined);
    assert.equal(second.committed.length, 1);
    assert.equal(listCommittedSnapshots(g.dir)[0].seqno, s1);
    // A backup records points but never generates.
    g.snapshotter.requestSnapshot();
    const s3 = sign(g);
    assert.equal(g.snapshotter.commit(s3, false), undefined);
    fs.rmSync(g.dir, { recursive: true, force: true });
  });

  it("cannot capture a state the store has compacted away", async () => {
    const g = await harness(2);
    write(g, "a", "1");
    const s1 = sign(g);
    write(g, "b", "2");
    const s2 = sign(g);
    g.pipeline.committed(s2); // wrong order: compaction before the snapshotter
    assert.throws(() => g.snapshotter.prepare(s1), { name: "ConflictError" });
    const logged: string[] = [];
    const s = new Snapshotter({
      dir: g.dir,
      txCount: 2,
      store: g.store,
      tree: g.tree,
      secrets: () => g.secrets,
      viewHistory: () => [{ view: 2, seqno: 1 }],
      log: (m) => logged.push(m),
    });
    s.recordCommittable(s1);
    assert.equal(s.commit(s2, true), undefined);
    assert.match(logged[0] ?? "", /could not capture the snapshot at/);
    fs.rmSync(g.dir, { recursive: true, force: true });
  });
});
