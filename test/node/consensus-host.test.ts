// Three nodes' consensus hosts in one process (real Raft, pipeline, replica and in-memory ledgers,
// messages through the wire codec): entries replicate and commit at signatures; when the primary
// is cut off, the others elect a primary that signs first and commits new writes, and nothing
// committed before is lost; only signatures wait for the disk, and a commit is always a signature
// on a majority of disks.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type NodeId, Raft } from "../../src/consensus/index.js";
import { EcKeyPair, seededRng } from "../../src/crypto/index.js";
import { Store } from "../../src/kv/index.js";
import { LedgerReplica, LedgerSecrets, MemoryLedger, TxPipeline } from "../../src/ledger/index.js";
import { MerkleTree } from "../../src/merkle/index.js";
import { ConsensusHost } from "../../src/node/consensus-host.js";

interface TestNode {
  id: NodeId;
  host: ConsensusHost;
  store: Store;
  storage: MemoryLedger;
  tree: MerkleTree;
  commits: number[];
  alive: boolean;
}

class Cluster {
  readonly nodes = new Map<NodeId, TestNode>();
  private queue: Array<{ from: NodeId; to: NodeId; payload: Uint8Array }> = [];
  private readonly secrets: LedgerSecrets;
  private now = 0;
  /** Called at every commit a node learns of, before it is recorded. */
  onCommit: ((node: TestNode, seqno: number) => void) | undefined;

  constructor(ids: NodeId[]) {
    const rng = seededRng(1);
    this.secrets = new LedgerSecrets([{ key: Buffer.from(rng.bytes(32)), version: 1 }]);
    let choice = 0;
    for (const id of ids) {
      const store = new Store();
      const tree = new MerkleTree();
      const storage = new MemoryLedger();
      const key = EcKeyPair.generate("secp384r1", rng);
      const raft = new Raft({
        id,
        bootstrap: { configuration: ids, primary: ids[0] },
        heartbeatTicks: 2,
        electionTimeoutTicks: 20,
        chooseElectionTimeout: () => 10 + (choice++ % 10),
        maxUncommittedTxCount: 1000,
        maxEntriesPerMessage: 50,
        preVote: false,
      });
      const node: TestNode = {
        id,
        store,
        storage,
        tree,
        commits: [],
        alive: true,
        host: new ConsensusHost({
          raft,
          tree,
          treeLeavesKept: 2,
          replica: new LedgerReplica({ store, tree, storage, secrets: this.secrets }),
          storage,
          transport: { send: (to, payload) => this.queue.push({ from: id, to, payload }) },
          openPipeline: (view, onAppend) =>
            new TxPipeline({
              store,
              storage,
              tree,
              secrets: this.secrets,
              node: { nodeId: id, key, certPem: `test certificate of ${id}` },
              view,
              signatures: { txCount: 1000, delayMs: 1_000_000 },
              clock: { now: () => this.now },
              onAppend,
            }),
          onCommit: (seqno) => {
            this.onCommit?.(node, seqno);
            node.commits.push(seqno);
          },
          onFatal: (e) => {
            throw e;
          },
        }),
      };
      this.nodes.set(id, node);
    }
  }

  node(id: NodeId): TestNode {
    return this.nodes.get(id) as TestNode;
  }

  /** Delivers messages between live nodes until none are left (bounded). */
  async settle(): Promise<void> {
    for (let round = 0; round < 200; round++) {
      for (const n of this.nodes.values()) await n.host.settled();
      // Proposals wait for a flush; let those promise chains run.
      await new Promise((r) => setImmediate(r));
      for (const n of this.nodes.values()) await n.host.settled();
      const batch = this.queue;
      this.queue = [];
      if (batch.length === 0) return;
      for (const m of batch) {
        const to = this.nodes.get(m.to);
        if (to?.alive === true && this.node(m.from).alive) to.host.receive(m.from, m.payload);
      }
    }
    throw new Error("the cluster did not settle");
  }

  async ticks(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      this.now += 10;
      for (const node of this.nodes.values()) if (node.alive) node.host.tick();
      await this.settle();
    }
  }

  write(id: NodeId, key: string): void {
    const pipeline = this.node(id).host.pipeline;
    assert.ok(pipeline !== undefined, `${id} is not primary`);
    pipeline.execute((tx) => tx.map("public:records").set(Buffer.from(key), Buffer.from(id)));
  }

  sign(id: NodeId): number {
    const pipeline = this.node(id).host.pipeline;
    assert.ok(pipeline !== undefined, `${id} is not primary`);
    return pipeline.emitSignature().seqno;
  }

  primary(): TestNode | undefined {
    return [...this.nodes.values()].find((n) => n.alive && n.host.raft.role === "Primary");
  }
}

describe("consensus host", () => {
  it("replicates entries to every node and commits at a signature", async () => {
    const c = new Cluster(["a", "b", "c"]);
    c.node("a").host.startAsBootstrapPrimary();
    c.write("a", "k1");
    c.write("a", "k2");
    const sig = c.sign("a");
    await c.settle();
    await c.ticks(3);
    for (const n of c.nodes.values()) {
      assert.equal(n.store.version, sig, `${n.id} has every entry`);
      assert.equal(n.host.commitSeqno, sig, `${n.id} committed the signature`);
      assert.equal(n.storage.lastSeqno, sig);
      assert.ok(n.store.get("public:records", "k2") !== undefined);
    }
  });

  it("only signatures wait for the disk: other entries are proposed and acknowledged unflushed, and a commit is a signature on a majority of disks", async () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.node("a");
    a.host.startAsBootstrapPrimary();
    const sig0 = c.sign("a");
    await c.ticks(3);
    assert.equal(c.node("b").host.commitSeqno, sig0);
    // Every commit any node learns of must already be durable on a majority.
    c.onCommit = (n, seqno) => {
      const durable = [...c.nodes.values()].filter((m) => m.storage.durableSeqno >= seqno);
      assert.ok(
        durable.length >= 2,
        `${seqno} committed on ${n.id} while durable on ${durable.length} disks`,
      );
    };
    c.write("a", "k1");
    c.write("a", "k2");
    await c.settle();
    const last = a.storage.lastSeqno;
    assert.equal(last, sig0 + 2);
    // Replicated and acknowledged without any flush: no signature among them.
    assert.deepEqual([...a.host.raft.matchIndexes().values()], [last, last]);
    for (const n of c.nodes.values()) {
      assert.equal(n.storage.lastSeqno, last, `${n.id} holds both entries`);
      assert.equal(n.storage.durableSeqno, sig0, `${n.id} did not flush for them`);
      assert.equal(n.host.commitSeqno, sig0);
    }
    const sig = c.sign("a");
    await c.settle();
    await c.ticks(3);
    for (const n of c.nodes.values()) {
      assert.equal(n.host.commitSeqno, sig, `${n.id} committed the signature`);
      assert.ok(n.storage.durableSeqno >= sig, `${n.id} flushed up to the signature`);
      assert.ok(n.commits.includes(sig));
    }
  });

  it("elects a new primary when the primary is cut off; it signs first, commits new writes and loses nothing committed", async () => {
    const c = new Cluster(["a", "b", "c"]);
    c.node("a").host.startAsBootstrapPrimary();
    c.write("a", "before");
    const committedSig = c.sign("a");
    await c.ticks(3);
    assert.equal(c.node("b").host.commitSeqno, committedSig);
    // An uncommitted write on the old primary, then it is cut off.
    c.write("a", "lost");
    c.node("a").alive = false;
    await c.ticks(60);
    const next = c.primary();
    assert.ok(next !== undefined && next.id !== "a", "a new primary among the survivors");
    assert.ok(next.host.raft.term > 2, "in a later view");
    c.write(next.id, "after");
    const sig = c.sign(next.id);
    await c.ticks(3);
    for (const id of ["b", "c"]) {
      const n = c.node(id);
      assert.equal(n.host.commitSeqno, sig);
      assert.ok(n.store.get("public:records", "before") !== undefined, "committed data kept");
      assert.ok(n.store.get("public:records", "after") !== undefined);
      assert.equal(n.store.get("public:records", "lost"), undefined);
    }
  });

  it("flushes every node's tree behind commit, and a new primary signs over the flushed tree", async () => {
    const c = new Cluster(["a", "b", "c"]);
    c.node("a").host.startAsBootstrapPrimary();
    for (let i = 0; i < 10; i++) c.write("a", `k${i}`);
    const sig = c.sign("a");
    await c.ticks(3);
    for (const n of c.nodes.values()) {
      assert.equal(n.host.commitSeqno, sig);
      assert.equal(n.tree.minIndex, sig - 2, `${n.id} keeps 2 leaves behind commit`);
      assert.equal(n.tree.size, sig + 1);
    }
    c.node("a").alive = false;
    await c.ticks(60);
    const next = c.primary();
    assert.ok(next !== undefined && next.id !== "a");
    c.write(next.id, "after");
    const sig2 = c.sign(next.id);
    await c.ticks(3);
    for (const id of ["b", "c"]) {
      const n = c.node(id);
      assert.equal(n.host.commitSeqno, sig2, `${id} committed the new primary's signature`);
      assert.equal(n.tree.minIndex, sig2 - 2);
    }
  });
});
