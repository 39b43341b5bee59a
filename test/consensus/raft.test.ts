import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type AppendEntriesResponse,
  Raft,
  type RequestVote,
  type RequestVoteResponse,
  TooManyPendingTransactionsError,
} from "../../src/consensus/index.js";
import { Cluster, ELECTION_TIMEOUT, entry, options, without } from "./cluster.js";

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
