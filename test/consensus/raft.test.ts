import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type AppendEntriesResponse,
  type LogEntry,
  Raft,
  type RequestVote,
  type RequestVoteResponse,
  TooManyPendingTransactionsError,
} from "../../src/consensus/index.js";
import {
  Cluster,
  ClusterWithLedgers,
  ELECTION_TIMEOUT,
  entry,
  options,
  without,
} from "./cluster.js";

const NODES = ["n0", "n1", "n2"];

/** n0 (the start node) replicates and commits a signature at 1. */
function clusterWithCommittedSignature(overrides = {}): Cluster {
  const c = new Cluster(NODES, overrides);
  c.propose("n0", [entry(1, 2, true)]);
  c.deliverAll();
  assert.equal(c.node("n0").commitIdx, 1);
  return c;
}

function voteRequest(
  term: number,
  lastCommittableIdx: number,
  termOfLastCommittableIdx: number,
  electionType: RequestVote["electionType"] = "RegularVote",
): RequestVote {
  return {
    type: "raft_request_vote",
    term,
    lastCommittableIdx,
    termOfLastCommittableIdx,
    electionType,
  };
}

function voteAnswer(c: Cluster, voter: string, from: string, request: RequestVote): boolean {
  const ready = c.step(voter, { kind: "receive", from, message: request });
  const response = ready.messages.find((m) => m.message.type === "raft_request_vote_response");
  assert.ok(response !== undefined);
  return (response.message as RequestVoteResponse).voteGranted;
}

describe("consensus: commit", () => {
  it("commits a signature once a majority holds it, and backups learn it on the next heartbeat", () => {
    const c = clusterWithCommittedSignature();
    assert.ok(c.readiesOf("n0").some((r) => r.commitIdx === 1));
    assert.equal(c.node("n1").commitIdx, 0);
    c.tick("n0", 2);
    c.deliverAll();
    assert.equal(c.node("n1").commitIdx, 1);
    assert.equal(c.node("n2").commitIdx, 1);
  });

  it("never commits a transaction that no signature covers", () => {
    const c = new Cluster(NODES);
    c.propose("n0", [entry(1, 2), entry(2, 2)]);
    c.deliverAll();
    c.tick("n0", 2);
    c.deliverAll();
    assert.equal(c.node("n0").commitIdx, 0);
    c.propose("n0", [entry(3, 2, true)]);
    c.deliverAll();
    assert.equal(c.node("n0").commitIdx, 3);
  });

  it("does not commit without a majority", () => {
    const c = new Cluster(NODES);
    c.propose("n0", [entry(1, 2, true)]);
    c.deliverAll((e) => e.to !== "n1" && e.to !== "n2");
    assert.equal(c.node("n0").commitIdx, 0);
  });
});

describe("consensus: elections", () => {
  it("a backup that stops hearing from the primary is elected with a majority and must sign first", () => {
    const c = clusterWithCommittedSignature();
    c.tick("n1", ELECTION_TIMEOUT + 1);
    assert.equal(c.node("n1").role, "Candidate");
    assert.equal(c.node("n1").term, 3);
    c.deliverAll(without("n0"));
    assert.equal(c.node("n1").role, "Primary");
    assert.ok(c.readiesOf("n1").some((r) => r.shouldSign && r.roleChange?.role === "Primary"));
    c.propose("n1", [entry(2, 3, true)]);
    c.deliverAll(without("n0"));
    assert.equal(c.node("n1").commitIdx, 2);
    assert.equal(c.node("n2").leader, "n1");
  });

  it("the old primary steps down when it hears of a later view", () => {
    const c = clusterWithCommittedSignature();
    c.tick("n1", ELECTION_TIMEOUT + 1);
    c.deliverAll();
    assert.equal(c.node("n0").role, "Backup");
    assert.equal(c.node("n0").term, 3);
  });

  it("a voter refuses a candidate whose last committable entry is older than its own", () => {
    const c = clusterWithCommittedSignature();
    assert.equal(voteAnswer(c, "n2", "n1", voteRequest(3, 0, 0)), false);
    assert.equal(voteAnswer(c, "n2", "n1", voteRequest(3, 1, 2)), true);
  });

  it("a later view of the last committable entry wins over a longer log", () => {
    const c = clusterWithCommittedSignature();
    c.propose("n0", [entry(2, 2), entry(3, 2, true)]);
    c.deliverAll();
    assert.equal(voteAnswer(c, "n2", "n1", voteRequest(4, 1, 3)), true);
  });

  it("unsigned entries do not count when comparing logs for a vote", () => {
    const c = clusterWithCommittedSignature();
    c.propose("n0", [entry(2, 2), entry(3, 2)]);
    c.deliverAll();
    assert.equal(c.node("n2").lastIdx, 3);
    assert.equal(voteAnswer(c, "n2", "n1", voteRequest(3, 1, 2)), true);
  });

  it("grants one vote per view", () => {
    const c = clusterWithCommittedSignature();
    assert.equal(voteAnswer(c, "n2", "n1", voteRequest(3, 1, 2)), true);
    assert.equal(voteAnswer(c, "n2", "n0", voteRequest(3, 1, 2)), false);
  });
});

describe("consensus: rollback", () => {
  it("a new primary rolls back its unsigned suffix", () => {
    const c = clusterWithCommittedSignature();
    c.propose("n0", [entry(2, 2), entry(3, 2)]);
    c.deliverAll();
    c.tick("n1", ELECTION_TIMEOUT + 1);
    c.deliverAll(without("n0"));
    const elected = c.readiesOf("n1").find((r) => r.roleChange?.role === "Primary");
    assert.equal(elected?.rollbackTo, 1);
    assert.equal(elected?.shouldSign, true);
    assert.equal(c.node("n1").lastIdx, 1);
  });

  it("a backup rolls back uncommitted entries that conflict with the new primary's", () => {
    const c = clusterWithCommittedSignature();
    c.propose("n0", [entry(2, 2), entry(3, 2)]);
    c.deliverAll();
    c.tick("n1", ELECTION_TIMEOUT + 1);
    c.deliverAll(without("n0"));
    c.propose("n1", [entry(2, 3, true)]);
    c.deliverAll(without("n0"));
    const conflict = c.readiesOf("n2").find((r) => r.rollbackTo !== undefined);
    assert.equal(conflict?.rollbackTo, 1);
    assert.deepEqual(
      conflict?.appends.map((e) => `${e.term}.${e.idx}`),
      ["3.2"],
    );
    assert.equal(c.node("n2").termAt(2), 3);
    assert.equal(c.node("n2").lastIdx, 2);
  });
});

describe("consensus: AppendEntries", () => {
  it("a backup missing entries answers with its last index, and the primary resumes there", () => {
    const c = new Cluster(NODES);
    c.propose("n0", [entry(1, 2), entry(2, 2), entry(3, 2)]);
    c.deliverAll();
    c.propose("n0", [entry(4, 2), entry(5, 2)]);
    c.queue = c.queue.filter((e) => e.to !== "n1"); // lost
    c.propose("n0", [entry(6, 2, true)]);
    const [probe] = c.queued("raft_append_entries").filter((e) => e.to === "n1");
    assert.equal(probe.message.prevIdx, 5);
    c.queue = [probe];
    c.deliverAll((e) => e.message.type !== "raft_append_entries" || e.message.prevIdx !== 3);
    const failure = c
      .readiesOf("n1")
      .flatMap((r) => r.messages)
      .find((m) => m.message.type === "raft_append_entries_response" && !m.message.success);
    assert.equal((failure?.message as AppendEntriesResponse).lastLogIdx, 3);
    // The primary's retry starts right after the backup's last index, in one batch.
    const c2 = new Cluster(NODES);
    c2.propose("n0", [entry(1, 2), entry(2, 2), entry(3, 2)]);
    c2.deliverAll();
    c2.propose("n0", [entry(4, 2), entry(5, 2)]);
    c2.queue = c2.queue.filter((e) => e.to !== "n1");
    c2.propose("n0", [entry(6, 2, true)]);
    c2.queue = c2.queue.filter((e) => e.to === "n1");
    c2.step("n1", { kind: "receive", from: "n0", message: c2.queue[0].message });
    c2.queue = c2.queue.slice(1);
    const response = c2.queue.find((e) => e.from === "n1");
    assert.ok(response !== undefined);
    c2.queue = [];
    c2.step("n0", { kind: "receive", from: "n1", message: response.message });
    const [retry] = c2.queued("raft_append_entries");
    assert.equal(retry.message.prevIdx, 3);
    assert.deepEqual(
      retry.message.entries.map((e) => e.idx),
      [4, 5, 6],
    );
  });

  it("on a view mismatch the backup points before the entries of the conflicting view", () => {
    const backup = new Raft(options("n2"));
    const from = "n1";
    const ae = (
      prevIdx: number,
      prevTerm: number,
      entries: ReturnType<typeof entry>[],
      term: number,
    ) => ({
      type: "raft_append_entries" as const,
      term,
      idx: prevIdx + entries.length,
      prevIdx,
      prevTerm,
      leaderCommitIdx: 0,
      termOfIdx: entries.length > 0 ? entries[entries.length - 1].term : prevTerm,
      containsNewView: false,
      entries,
    });
    backup.step({
      kind: "receive",
      from,
      message: ae(0, 0, [entry(1, 2, true), entry(2, 3), entry(3, 3), entry(4, 3)], 3),
    });
    const ready = backup.step({ kind: "receive", from, message: ae(4, 4, [], 5) });
    const response = ready.messages[0].message as AppendEntriesResponse;
    assert.equal(response.success, false);
    assert.equal(response.lastLogIdx, 3);
    const ready2 = backup.step({ kind: "receive", from, message: ae(4, 2, [], 5) });
    assert.equal((ready2.messages[0].message as AppendEntriesResponse).lastLogIdx, 1);
  });

  it("each AppendEntries carries entries of a single view, at most the batch limit", () => {
    const c = new Cluster(NODES, { maxEntriesPerMessage: 2 });
    c.propose("n0", [entry(1, 2), entry(2, 2), entry(3, 2, true)]);
    c.deliverAll();
    c.tick("n1");
    const sent = c
      .readiesOf("n0")
      .flatMap((r) => r.messages)
      .filter((m) => m.to === "n1" && m.message.type === "raft_append_entries")
      .map((m) =>
        m.message.type === "raft_append_entries" ? m.message.entries.map((e) => e.idx) : [],
      );
    assert.deepEqual(sent, [[1, 2], [3]]);
    c.tick("n1", ELECTION_TIMEOUT);
    c.deliverAll();
    assert.equal(c.node("n1").role, "Primary");
    c.propose("n1", [entry(4, 3), entry(5, 3, true)]);
    const mixed = c.queued("raft_append_entries").filter((e) => e.to === "n2");
    for (const m of mixed) assert.ok(new Set(m.message.entries.map((e) => e.term)).size <= 1);
  });
});

describe("consensus: CheckQuorum and PreVote", () => {
  it("a primary that hears from no quorum within the election timeout steps down", () => {
    const c = clusterWithCommittedSignature();
    for (let i = 0; i < ELECTION_TIMEOUT + 1; i++) {
      c.tick("n0");
      c.queue = [];
    }
    assert.equal(c.node("n0").role, "Backup");
    assert.equal(c.node("n0").term, 2);
  });

  it("a primary that keeps hearing from a quorum stays primary", () => {
    const c = clusterWithCommittedSignature();
    for (let i = 0; i < 3 * ELECTION_TIMEOUT; i++) {
      c.tick("n0");
      c.deliverAll(without("n2"));
    }
    assert.equal(c.node("n0").role, "Primary");
  });

  it("a partitioned node's PreVote does not raise its view", () => {
    const c = clusterWithCommittedSignature({ preVote: true });
    c.tick("n2", ELECTION_TIMEOUT + 2);
    assert.equal(c.node("n2").role, "PreVoteCandidate");
    assert.equal(c.node("n2").term, 2);
    const [prevote] = c.queued("raft_request_vote");
    assert.equal(prevote.message.electionType, "PreVote");
    assert.equal(prevote.message.term, 3);
  });

  it("answering a PreVote changes neither view nor vote, and a majority of them starts the election", () => {
    const c = clusterWithCommittedSignature({ preVote: true });
    c.queue = [];
    c.tick("n2", ELECTION_TIMEOUT + 2);
    c.queue = c.queue.filter((e) => e.to === "n1");
    c.deliverAll(
      (e) => e.message.type !== "raft_request_vote" || e.message.electionType === "PreVote",
    );
    assert.equal(c.node("n1").term, 2);
    assert.equal(c.node("n2").role, "Candidate");
    assert.equal(c.node("n2").term, 3);
  });

  it("a node with a stale log gets no PreVotes and does not disturb the primary", () => {
    const c = clusterWithCommittedSignature({ preVote: true });
    c.propose("n0", [entry(2, 2, true)]);
    c.deliverAll(without("n2"));
    c.tick("n2", ELECTION_TIMEOUT + 2);
    c.deliverAll();
    assert.equal(c.node("n2").term, 2);
    assert.equal(c.node("n0").role, "Primary");
    assert.equal(c.node("n0").term, 2);
  });
});

describe("consensus: backpressure", () => {
  it("refuses transactions once max_uncommitted_tx_count are pending, but not signatures", () => {
    const c = new Cluster(NODES, { maxUncommittedTxCount: 3 });
    c.propose("n0", [entry(1, 2), entry(2, 2)]);
    assert.equal(c.node("n0").canAcceptTransaction(), true);
    c.propose("n0", [entry(3, 2)]);
    assert.equal(c.node("n0").canAcceptTransaction(), false);
    assert.throws(() => c.node("n0").checkCanAcceptTransaction(), TooManyPendingTransactionsError);
    c.propose("n0", [entry(4, 2, true)]);
    c.deliverAll();
    assert.equal(c.node("n0").commitIdx, 4);
    assert.equal(c.node("n0").canAcceptTransaction(), true);
  });

  it("a backup never accepts transactions", () => {
    const c = new Cluster(NODES);
    assert.equal(c.node("n1").canAcceptTransaction(), false);
  });
});

describe("consensus: reconfiguration", () => {
  it("a signature after a reconfiguration commits only with a quorum of both configurations", () => {
    const c = clusterWithCommittedSignature();
    c.add(new Raft(options("n3")));
    c.add(new Raft(options("n4")));
    c.propose("n0", [entry(2, 2, false, ["n0", "n3", "n4"]), entry(3, 2, true)]);
    assert.equal(c.node("n0").activeConfigurations().length, 2);
    c.deliverAll((e) => e.to !== "n3" && e.to !== "n4" && e.from !== "n3");
    assert.equal(c.node("n0").commitIdx, 1, "old quorum alone is not enough");
    c.tick("n0", 2);
    c.deliverAll((e) => e.to !== "n4" && e.to !== "n1" && e.to !== "n2");
    assert.equal(c.node("n0").commitIdx, 3, "quorums of old (n0,n1,n2) and new (n0,n3)");
    assert.deepEqual(
      c
        .node("n0")
        .activeConfigurations()
        .map((k) => k.nodes),
      [["n0", "n3", "n4"]],
    );
    assert.equal(c.node("n3").lastIdx, 3, "the joiner caught up from the start of the log");
  });

  it("a retiring primary accepts no new transactions and hands over once its retirement commits", () => {
    const c = clusterWithCommittedSignature();
    c.propose("n0", [entry(2, 2, false, ["n1", "n2"])]);
    assert.equal(c.node("n0").canAcceptTransaction(), false);
    c.propose("n0", [entry(3, 2, true)]);
    c.deliverAll((e) => e.message.type !== "raft_propose_request_vote");
    assert.equal(c.node("n0").commitIdx, 3);
    assert.equal(c.node("n0").retired, true);
    assert.ok(c.readiesOf("n0").some((r) => r.retired));
    const handover = c
      .readiesOf("n0")
      .flatMap((r) => r.messages)
      .filter((m) => m.message.type === "raft_propose_request_vote");
    assert.equal(handover.length, 1);
    c.queue = [{ from: "n0", to: handover[0].to, message: handover[0].message }];
    c.deliverAll();
    assert.equal(c.node(handover[0].to).role, "Primary");
    assert.equal(c.node(handover[0].to).term, 3);
    c.tick("n0", 5 * ELECTION_TIMEOUT);
    assert.equal(c.node("n0").role, "Backup", "a retired node never stands for election");
  });
});

describe("consensus: a log that does not start at 1", () => {
  it("a recovered node starts as primary in a later view over the old, committed entries", () => {
    const old = [entry(1, 2), entry(2, 2, true), entry(3, 3), entry(4, 3, true)];
    const n0 = new Raft(
      options("n0", {
        start: { idx: 0, term: 0, entries: old, commitIdx: 4 },
        bootstrap: { configuration: ["n0"], primary: "n0", term: 5 },
      }),
    );
    assert.equal(n0.role, "Primary");
    assert.equal(n0.term, 5);
    assert.equal(n0.lastIdx, 4);
    assert.equal(n0.commitIdx, 4);
    assert.deepEqual(
      n0.viewHistory().map((v) => `${v.view}.${v.seqno}`),
      ["2.1", "3.3"],
    );
    n0.step({ kind: "propose", entries: [entry(5, 5), entry(6, 5, true)] });
    assert.equal(n0.commitIdx, 6);
  });

  it("a node that starts from a snapshot is sent only the entries after it", () => {
    const c = new Cluster(["n0", "n1"]);
    const log = [entry(1, 2), entry(2, 2, true), entry(3, 2), entry(4, 2, true)];
    c.propose("n0", log);
    c.deliverAll();
    assert.equal(c.node("n0").commitIdx, 4);
    // n2 joins from a snapshot at 4: it holds nothing before it and knows the configuration.
    const n2 = new Raft(
      options("n2", {
        start: { idx: 4, term: 2, configuration: ["n0", "n1"], views: [{ view: 2, seqno: 1 }] },
      }),
    );
    c.add(n2);
    assert.equal(n2.lastIdx, 4);
    assert.equal(n2.commitIdx, 4);
    c.propose("n0", [entry(5, 2, false, ["n0", "n1", "n2"]), entry(6, 2, true)]);
    c.deliverAll();
    c.tick("n0", 2);
    c.deliverAll();
    assert.equal(n2.lastIdx, 6);
    assert.equal(n2.commitIdx, 6);
    assert.equal(n2.entryAt(3), undefined);
    assert.equal(n2.entryAt(5)?.configuration?.length, 3);
    const carried = c
      .readiesOf("n0")
      .flatMap((r) => r.messages)
      .filter((m) => m.to === "n2" && m.message.type === "raft_append_entries")
      .flatMap((m) => (m.message.type === "raft_append_entries" ? m.message.entries : []));
    assert.ok(carried.length > 0);
    assert.ok(
      carried.every((e) => e.idx > 4),
      "nothing before the snapshot was sent",
    );
    assert.deepEqual(
      n2.viewHistory().map((v) => `${v.view}.${v.seqno}`),
      ["2.1"],
    );
  });
});

describe("consensus: a log whose committed entries are released from memory", () => {
  /** Every entry of `node`'s log equals the expected one, released entries read back included. */
  function assertLogEquals(node: Raft, expected: readonly LogEntry[]): void {
    assert.equal(node.lastIdx, expected.length);
    for (const e of expected) {
      const got = node.entryAt(e.idx);
      assert.ok(got !== undefined, `${node.id} holds ${e.idx}`);
      assert.equal(node.termAt(e.idx), e.term, `${node.id}: term of ${e.idx}`);
      assert.equal(got.term, e.term, `${node.id}: term of entry ${e.idx}`);
      assert.equal(got.isSignature, e.isSignature, `${node.id}: signature flag of ${e.idx}`);
      assert.deepEqual(got.configuration, e.configuration, `${node.id}: configuration of ${e.idx}`);
      assert.ok(Buffer.from(got.data).equals(Buffer.from(e.data)), `${node.id}: bytes of ${e.idx}`);
    }
  }

  it("a partitioned backup and a new joiner catch up over 20k entries in four views, read back from the ledger", () => {
    const BATCH = 50;
    const BATCHES_PER_VIEW = 100;
    // Everything committed is released at once: every entry sent to a late node is read back.
    const c = new ClusterWithLedgers(NODES, 0, {
      maxEntriesPerMessage: 100,
      maxUncommittedTxCount: 1000,
    });
    const log: LogEntry[] = [];
    const slotBound = 1024 + 2 * (2 * BATCH);
    let maxSlots = 0;
    const propose = (primary: string, entries: LogEntry[]): void => {
      log.push(...entries);
      c.propose(primary, entries);
      c.deliverAll(without("n2"));
      for (const n of c.nodes.values()) maxSlots = Math.max(maxSlots, n.heldEntries);
    };
    let primary = "n0";
    for (let view = 0; view < 4; view++) {
      if (view > 0) {
        // The other of n0 and n1 times out and takes over; n2 hears nothing.
        primary = primary === "n0" ? "n1" : "n0";
        c.tick(primary, ELECTION_TIMEOUT + 2);
        c.deliverAll(without("n2"));
        assert.equal(c.node(primary).role, "Primary");
        propose(primary, [entry(log.length + 1, c.node(primary).term, true)]);
      }
      const term = c.node(primary).term;
      for (let b = 0; b < BATCHES_PER_VIEW; b++) {
        const batch: LogEntry[] = [];
        for (let i = 1; i <= BATCH; i++) {
          const idx = log.length + i;
          // A reconfiguration (to the same nodes) now and then, so that some released entries
          // carry a configuration.
          const configuration = b % 40 === 7 && i === 1 ? ["n0", "n1", "n2"] : undefined;
          batch.push(entry(idx, term, i === BATCH, configuration));
        }
        propose(primary, batch);
        assert.equal(c.node(primary).commitIdx, log.length, "each batch commits");
      }
    }
    const p = c.node(primary);
    assert.ok(p.lastIdx >= 20_000);
    assert.equal(c.node("n2").lastIdx, 0, "n2 saw nothing");
    assert.ok(maxSlots <= slotBound, `at most ${maxSlots} entry slots held on any node`);

    // n3 joins, and n2's partition heals.
    const n3 = c.addJoiner("n3", { maxEntriesPerMessage: 100 });
    const readsBefore = c.reads.get(primary) ?? 0;
    propose(primary, [
      entry(log.length + 1, p.term, false, ["n0", "n1", "n2", "n3"]),
      entry(log.length + 2, p.term, true),
    ]);
    for (
      let round = 0;
      round < 100 && (n3.commitIdx < p.lastIdx || c.node("n2").commitIdx < p.lastIdx);
      round++
    ) {
      c.tick(primary, 2);
      c.deliverAll();
      for (const n of c.nodes.values()) maxSlots = Math.max(maxSlots, n.heldEntries);
    }
    assert.equal(p.commitIdx, log.length);
    assert.ok(
      (c.reads.get(primary) ?? 0) - readsBefore >= 2 * (log.length - 2),
      "the primary read the late nodes' entries back from its ledger",
    );
    assert.ok(maxSlots <= slotBound, `at most ${maxSlots} entry slots held on any node`);
    for (const id of ["n0", "n1", "n2", "n3"]) {
      const n = c.node(id);
      assert.equal(n.commitIdx, log.length, `${id} committed everything`);
      assert.ok(n.heldEntries <= slotBound, `${id} holds ${n.heldEntries} entry slots`);
      assertLogEquals(n, log);
      assert.deepEqual(n.viewHistory(), p.viewHistory());
    }
    assert.deepEqual(
      p.viewHistory().map((v) => v.view),
      [2, 3, 4, 5],
    );
    for (const idx of [1, 49, 50, 51, 5_001, 12_345]) {
      const expected = log.find((e) => e.idx >= idx && e.isSignature)?.idx;
      assert.equal(n3.signatureAtOrAfter(idx), expected, `first signature at or after ${idx}`);
    }
    assert.equal(n3.signatureAtOrAfter(log.length + 1), undefined);
  });

  it("holds every entry when it cannot read entries back", () => {
    const c = new Cluster(NODES, { maxEntriesPerMessage: 100 });
    const log: LogEntry[] = [];
    for (let b = 0; b < 20; b++) {
      const batch = Array.from({ length: 50 }, (_, i) => entry(log.length + i + 1, 2, i === 49));
      log.push(...batch);
      c.propose("n0", batch);
      c.deliverAll();
      for (const n of c.nodes.values()) n.releaseEntryData(n.commitIdx);
    }
    const n0 = c.node("n0");
    assert.equal(n0.commitIdx, 1000);
    assert.equal(n0.heldEntries, 1000);
    assert.equal(n0.entryAt(1), log[0], "the entry object proposed is still held");
  });

  it("finds signatures after a snapshot's base only", () => {
    const n0 = new Raft(
      options("n0", {
        start: {
          idx: 4,
          term: 2,
          entries: [entry(5, 2), entry(6, 2, true), entry(7, 3), entry(8, 3, true)],
          commitIdx: 8,
        },
        bootstrap: { configuration: ["n0"], primary: "n0", term: 4 },
      }),
    );
    assert.equal(n0.signatureAtOrAfter(1), 6);
    assert.equal(n0.signatureAtOrAfter(7), 8);
    assert.equal(n0.signatureAtOrAfter(9), undefined);
    assert.equal(n0.lastCommittableIdx, 8);
  });
});
