// CCF's variant of Raft as a pure state machine: the host feeds events (ticks, received messages,
// its own proposals) to `step` and gets back a Ready batch (messages to send, entries to append,
// where to roll back to, the new commit index). No clock, randomness or I/O lives here, so the same
// code runs under a node and under the deterministic simulator.
//
// Where CCF departs from textbook Raft (reference/ccf-inventory.md §2): only signature entries are
// committable; votes compare the last committable entry; a new primary drops its unsigned suffix and
// signs first; several configurations can be active at once and commit needs a quorum of each.

import { invariant, NotPrimaryError, TooManyPendingTransactionsError } from "./errors.js";
import { RaftLog } from "./log.js";
import type {
  AppendEntries,
  AppendEntriesResponse,
  Configuration,
  Event,
  LogEntry,
  Message,
  NodeId,
  OutboundMessage,
  Proposal,
  RaftOptions,
  Ready,
  RequestVote,
  RequestVoteResponse,
  Role,
} from "./types.js";
import type { ViewStart } from "./tx-status.js";

function emptyReady(): Ready {
  return {
    messages: [],
    rollbackTo: undefined,
    appends: [],
    commitIdx: undefined,
    roleChange: undefined,
    shouldSign: false,
    retired: false,
  };
}

function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

interface Progress {
  /** Next index to send (advanced optimistically when a batch goes out: pipelining). */
  next: number;
  /** Highest index known to match. */
  match: number;
  /** Tick of the last response in this view (CheckQuorum). */
  lastAck: number;
}

export class Raft {
  private readonly o: RaftOptions;
  private termValue: number;
  private votedFor: NodeId | undefined;
  private roleValue: Role = "Backup";
  private leaderValue: NodeId | undefined;
  /** Entries base+1..lastIdx; those up to base are committed and not part of it. */
  private readonly log: RaftLog;
  private commit = 0;
  /** Every configuration the log (and bootstrap) knows of, ascending by idx. */
  private configs: Configuration[] = [];
  private retiredValue = false;
  /**
   * Nodes a committed configuration left out, with the tick until which the primary keeps sending
   * them AppendEntries (ten election timeouts), so that they learn the commit and retire:
   * otherwise they would never hear of it, being no longer peers. (A response cannot tell that
   * the node saw the new commit index: it may answer an AppendEntries sent before it.)
   */
  private readonly lingering = new Map<NodeId, number>();
  private now = 0;
  private electionElapsed = 0;
  private electionTimeout: number;
  private heartbeatElapsed = 0;
  private readonly votes = new Set<NodeId>();
  private readonly progress = new Map<NodeId, Progress>();
  private ready: Ready = emptyReady();

  constructor(options: RaftOptions) {
    invariant(options.heartbeatTicks > 0, () => "heartbeatTicks must be positive");
    invariant(options.maxEntriesPerMessage > 0, () => "maxEntriesPerMessage must be positive");
    this.o = options;
    this.electionTimeout = options.chooseElectionTimeout();
    const start = options.start;
    // A log that does not begin at 1: committed up to start.idx (a snapshot), or already holding
    // committed entries (a recovered ledger).
    this.log = new RaftLog({
      base: start?.idx ?? 0,
      baseTerm: start?.term ?? 0,
      baseViews: start?.views,
      readData: options.readEntryData,
    });
    if (start !== undefined) {
      for (const e of start.entries ?? []) {
        invariant(e.idx === this.lastIdx + 1, () => `start entry ${e.idx} after ${this.lastIdx}`);
        this.log.append(e);
      }
      this.commit = start.commitIdx ?? start.idx;
      invariant(
        this.commit >= this.log.base && this.commit <= this.lastIdx,
        () => `start commit ${this.commit} outside ${this.log.base}..${this.lastIdx}`,
      );
      if (start.configuration !== undefined) {
        this.configs.push({ idx: this.log.base, nodes: [...start.configuration] });
      }
    }
    const bootstrap = options.bootstrap;
    if (bootstrap === undefined) {
      this.termValue = start === undefined ? 0 : (this.termAt(this.lastIdx) as number);
    } else {
      invariant(
        bootstrap.configuration.includes(bootstrap.primary),
        () => "the bootstrap primary must be in the bootstrap configuration",
      );
      // CCF's first view is 2; every bootstrap node counts as having voted for the start node.
      this.termValue = bootstrap.term ?? 2;
      this.votedFor = bootstrap.primary;
      this.configs.push({ idx: this.lastIdx, nodes: [...bootstrap.configuration] });
      this.leaderValue = bootstrap.primary;
      if (bootstrap.primary === options.id) {
        this.roleValue = "Primary";
        this.resetProgress();
      }
    }
  }

  // ---- queries ---------------------------------------------------------------------------------

  get id(): NodeId {
    return this.o.id;
  }

  get term(): number {
    return this.termValue;
  }

  get role(): Role {
    return this.roleValue;
  }

  get leader(): NodeId | undefined {
    return this.leaderValue;
  }

  get commitIdx(): number {
    return this.commit;
  }

  get lastIdx(): number {
    return this.log.lastIdx;
  }

  /** The log's first index minus one: entries up to it are not held (a snapshot, or recovery). */
  get firstIdx(): number {
    return this.log.base + 1;
  }

  /**
   * Entry slots the log holds in memory (held entries, and released ones awaiting compaction):
   * bounded by the uncommitted and recently committed entries once old ones are released.
   */
  get heldEntries(): number {
    return this.log.heldEntries;
  }

  /**
   * Drops from memory the committed entries up to `upTo` (the ledger holds them; they are read
   * back if a peer needs them): only their term, signature flag and configuration are kept, in
   * structures that do not grow per entry. Messages already built keep their entries' bytes.
   */
  releaseEntryData(upTo: number): void {
    if (this.o.readEntryData === undefined) return;
    this.log.release(Math.min(upTo, this.commit));
  }

  get retired(): boolean {
    return this.retiredValue;
  }

  /** Term of the entry at idx (0 for idx 0), or undefined when the log does not reach it. */
  termAt(idx: number): number | undefined {
    return this.log.term(idx);
  }

  /**
   * The entry at idx (base < idx <= lastIdx), or undefined. A released entry is rebuilt, its bytes
   * read back from the ledger: prefer `termAt` and `signatureAtOrAfter` when the bytes are not needed.
   */
  entryAt(idx: number): LogEntry | undefined {
    return this.log.entry(idx);
  }

  /** The first signature at or after idx in this node's log (none at or below base is known). */
  signatureAtOrAfter(idx: number): number | undefined {
    return this.log.signatureAtOrAfter(idx);
  }

  /** The highest signature in the log (0 if none): the furthest this node could ever commit. */
  get lastCommittableIdx(): number {
    return this.log.lastSignatureIn(this.commit + 1, this.lastIdx) ?? this.commit;
  }

  /** The configurations in force: the last committed one and every one after it. */
  activeConfigurations(): Configuration[] {
    let first = 0;
    for (let i = 0; i < this.configs.length; i++) {
      if (this.configs[i].idx <= this.commit) first = i;
    }
    return this.configs.slice(first);
  }

  /** Where each view starts in this node's log (what CCF's view history lists). */
  viewHistory(): ViewStart[] {
    return this.log.viewHistory();
  }

  /**
   * On a primary: the highest index known to match for each other node it replicates to (what
   * replication lag is measured from). Empty on any other role.
   */
  matchIndexes(): Map<NodeId, number> {
    const out = new Map<NodeId, number>();
    if (this.roleValue !== "Primary") return out;
    for (const [id, p] of this.progress) if (id !== this.o.id) out.set(id, p.match);
    return out;
  }

  /** Whether a primary may take a new (non-signature) transaction now. */
  canAcceptTransaction(): boolean {
    return this.refusal() === undefined;
  }

  /** Throws the error a client should see when a transaction cannot be accepted now. */
  checkCanAcceptTransaction(): void {
    const e = this.refusal();
    if (e !== undefined) throw e;
  }

  private refusal(): Error | undefined {
    if (this.roleValue !== "Primary" || this.retiredValue) {
      return new NotPrimaryError(`node ${this.o.id} is not primary`);
    }
    if (!this.isMemberOf(this.latestConfiguration())) {
      return new NotPrimaryError(`node ${this.o.id} is retiring and accepts no new transactions`);
    }
    const uncommitted = this.lastIdx - this.commit;
    if (uncommitted >= this.o.maxUncommittedTxCount) {
      return new TooManyPendingTransactionsError(uncommitted, this.o.maxUncommittedTxCount);
    }
    return undefined;
  }

  // ---- the step function -----------------------------------------------------------------------

  step(event: Event): Ready {
    this.ready = emptyReady();
    switch (event.kind) {
      case "tick":
        this.tick();
        break;
      case "receive":
        this.receive(event.from, event.message);
        break;
      case "propose":
        this.propose(event.entries);
        break;
    }
    this.checkInvariants();
    const ready = this.ready;
    this.ready = emptyReady();
    return ready;
  }

  private tick(): void {
    this.now++;
    if (this.retiredValue) return;
    if (this.roleValue === "Primary") {
      this.heartbeatElapsed++;
      if (this.heartbeatElapsed >= this.o.heartbeatTicks) {
        this.heartbeatElapsed = 0;
        for (const [n, until] of this.lingering) if (until <= this.now) this.lingering.delete(n);
        for (const peer of [...this.peers(), ...this.lingering.keys()]) {
          const p = this.progressOf(peer);
          // Anything unacknowledged is resent from the last match: covers lost batches.
          if (p.match < this.lastIdx) p.next = p.match + 1;
          this.sendAppendEntries(peer);
        }
      }
      if (!this.hasQuorumOfAcks()) this.becomeBackup(this.termValue, undefined);
      return;
    }
    if (!this.isMemberOfActive()) return;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      if (this.o.preVote) this.startPreVote();
      else this.startElection();
    }
  }

  private receive(from: NodeId, m: Message): void {
    if (m.type === "raft_request_vote" && m.electionType === "PreVote") {
      this.handlePreVote(from, m);
      return;
    }
    if (m.type === "raft_request_vote_response" && m.electionType === "PreVote") {
      this.handlePreVoteResponse(from, m);
      return;
    }
    if (m.term > this.termValue) {
      // Only a primary's message restarts the election timer: a node whose log is ahead must not
      // be held back by every candidate it refuses, or a stale candidate can stall the service.
      const fromPrimary = m.type === "raft_append_entries";
      this.becomeBackup(m.term, fromPrimary ? from : undefined, fromPrimary);
    }
    if (m.term < this.termValue) {
      // Stale sender: tell it the current term so it steps down.
      if (m.type === "raft_append_entries") {
        this.send(from, {
          type: "raft_append_entries_response",
          term: this.termValue,
          lastLogIdx: this.lastIdx,
          success: false,
        });
      } else if (m.type === "raft_request_vote") {
        this.send(from, {
          type: "raft_request_vote_response",
          term: this.termValue,
          voteGranted: false,
          electionType: "RegularVote",
        });
      }
      return;
    }
    switch (m.type) {
      case "raft_append_entries":
        this.handleAppendEntries(from, m);
        break;
      case "raft_append_entries_response":
        this.handleAppendEntriesResponse(from, m);
        break;
      case "raft_request_vote":
        this.handleRequestVote(from, m);
        break;
      case "raft_request_vote_response":
        this.handleRequestVoteResponse(from, m);
        break;
      case "raft_propose_request_vote":
        if (!this.retiredValue && this.roleValue === "Backup" && this.isMemberOfActive()) {
          this.startElection();
        }
        break;
    }
  }

  private propose(entries: readonly Proposal[]): void {
    invariant(
      this.roleValue === "Primary" && !this.retiredValue,
      () => `node ${this.o.id} got a proposal while ${this.roleValue}`,
    );
    for (const e of entries) {
      invariant(
        e.idx === this.lastIdx + 1,
        () => `proposal at ${e.idx} does not follow ${this.lastIdx}`,
      );
      invariant(
        e.term === this.termValue,
        () => `proposal in view ${e.term} by a primary of view ${this.termValue}`,
      );
      this.appendEntry(e);
    }
    for (const peer of this.peers()) this.sendAppendEntries(peer);
    this.advancePrimaryCommit();
  }

  // ---- replication -----------------------------------------------------------------------------

  private handleAppendEntries(from: NodeId, m: AppendEntries): void {
    invariant(
      this.roleValue !== "Primary",
      () => `two primaries in view ${m.term}: ${this.o.id} and ${from}`,
    );
    if (this.roleValue !== "Backup" || this.leaderValue !== from) this.becomeBackup(m.term, from);
    this.electionElapsed = 0;
    invariant(
      m.idx === m.prevIdx + m.entries.length,
      () => `append entries ${m.prevIdx}..${m.idx} carries ${m.entries.length} entries`,
    );
    if (m.prevIdx > this.lastIdx) {
      this.respondAppend(from, this.lastIdx, false);
      return;
    }
    if (this.termAt(m.prevIdx) !== m.prevTerm) {
      // CCF's fast back-off: point the primary at the last entry that could still match.
      let i = m.prevIdx - 1;
      while (i > this.commit && (this.termAt(i) as number) > m.prevTerm) i--;
      this.respondAppend(from, Math.max(i, this.commit), false);
      return;
    }
    for (const e of m.entries) {
      // Committed entries match the primary's (and those up to base are not held).
      if (e.idx <= this.commit) continue;
      if (e.idx <= this.lastIdx) {
        if (this.termAt(e.idx) === e.term) continue;
        this.rollback(e.idx - 1);
      }
      this.appendEntry(e);
      this.ready.appends.push(e);
    }
    const matched = m.idx;
    const upTo = Math.min(m.leaderCommitIdx, matched);
    if (upTo > this.commit) {
      if (this.o.testOnlyFaults?.commitWithoutSignature === true) {
        this.advanceCommit(upTo);
      } else {
        const signature = this.log.lastSignatureIn(this.commit + 1, upTo);
        if (signature !== undefined) this.advanceCommit(signature);
      }
    }
    this.respondAppend(from, matched, true);
  }

  private respondAppend(to: NodeId, lastLogIdx: number, success: boolean): void {
    this.send(to, {
      type: "raft_append_entries_response",
      term: this.termValue,
      lastLogIdx,
      success,
    });
  }

  private handleAppendEntriesResponse(from: NodeId, m: AppendEntriesResponse): void {
    if (this.roleValue !== "Primary" || this.retiredValue) return;
    const p = this.progress.get(from);
    if (p === undefined) return;
    p.lastAck = this.now;
    if (m.success) {
      if (m.lastLogIdx > this.lastIdx) return; // from before a rollback of ours
      if (this.lingering.has(from)) {
        // Out of every configuration: its progress counts for no quorum.
        p.match = Math.max(p.match, m.lastLogIdx);
        return;
      }
      p.match = Math.max(p.match, m.lastLogIdx);
      p.next = Math.max(p.next, p.match + 1);
      this.advancePrimaryCommit();
      if (this.roleValue === "Primary" && !this.retiredValue && p.next <= this.lastIdx) {
        this.sendAppendEntries(from);
      }
    } else {
      p.next = Math.min(Math.max(m.lastLogIdx + 1, p.match + 1), this.lastIdx + 1);
      this.sendAppendEntries(from);
    }
  }

  /** Sends the next batch (entries of one term) from the peer's next index, or a heartbeat. */
  /**
   * Empty AppendEntries to every peer from the last index it is known to hold, changing nothing
   * here (no timers, no pipelining): what a primary's host sends, in between, to keep backups from
   * starting an election while its own event loop is held up (a long application handler).
   */
  heartbeats(): OutboundMessage[] {
    if (this.roleValue !== "Primary" || this.retiredValue) return [];
    const out: OutboundMessage[] = [];
    for (const peer of this.peers()) {
      const prevIdx = Math.min(this.progressOf(peer).match, this.lastIdx);
      const prevTerm = this.termAt(prevIdx) ?? 0;
      out.push({
        to: peer,
        message: {
          type: "raft_append_entries",
          term: this.termValue,
          idx: prevIdx,
          prevIdx,
          prevTerm,
          leaderCommitIdx: Math.min(this.commit, prevIdx),
          termOfIdx: prevTerm,
          containsNewView: false,
          entries: [],
        },
      });
    }
    return out;
  }

  private sendAppendEntries(peer: NodeId): void {
    const p = this.progressOf(peer);
    // Entries up to base are not held: a peer that needs them can only catch up from a snapshot.
    if (p.next <= this.log.base) p.next = this.log.base + 1;
    const start = p.next;
    const prevIdx = start - 1;
    const prevTerm = this.termAt(prevIdx);
    invariant(prevTerm !== undefined, () => `next index ${start} for ${peer} is past the log`);
    const entries: LogEntry[] = [];
    if (start <= this.lastIdx) {
      const batchTerm = this.termAt(start);
      const limit = Math.min(this.lastIdx, start + this.o.maxEntriesPerMessage - 1);
      for (let i = start; i <= limit && this.termAt(i) === batchTerm; i++) {
        entries.push(this.log.entry(i) as LogEntry);
      }
      p.next = start + entries.length;
    }
    const idx = prevIdx + entries.length;
    this.send(peer, {
      type: "raft_append_entries",
      term: this.termValue,
      idx,
      prevIdx,
      prevTerm,
      leaderCommitIdx: this.commit,
      termOfIdx: this.termAt(idx) as number,
      containsNewView: entries.some(
        (e) => e.term === this.termValue && this.termAt(e.idx - 1) !== this.termValue,
      ),
      entries,
    });
  }

  private advancePrimaryCommit(): void {
    if (this.roleValue !== "Primary" || this.retiredValue) return;
    let quorumMatch = Number.POSITIVE_INFINITY;
    for (const config of this.activeConfigurations()) {
      const matches = config.nodes
        .map((n) => (n === this.o.id ? this.lastIdx : (this.progress.get(n)?.match ?? 0)))
        .sort((a, b) => b - a);
      quorumMatch = Math.min(quorumMatch, matches[majority(config.nodes.length) - 1]);
    }
    if (!Number.isFinite(quorumMatch) || quorumMatch <= this.commit) return;
    if (this.o.testOnlyFaults?.commitWithoutSignature === true) {
      if (this.termAt(quorumMatch) === this.termValue) this.advanceCommit(quorumMatch);
      return;
    }
    const signature = this.log.lastSignatureIn(this.commit + 1, quorumMatch);
    // As in Raft, only an entry of the current view is committed by counting replicas.
    if (signature !== undefined && this.termAt(signature) === this.termValue) {
      this.advanceCommit(signature);
    }
  }

  private advanceCommit(idx: number): void {
    invariant(idx > this.commit && idx <= this.lastIdx, () => `bad commit ${idx}`);
    invariant(
      this.log.isSignature(idx) || this.o.testOnlyFaults?.commitWithoutSignature === true,
      () => `commit at ${idx}, which is not a signature`,
    );
    const before = this.roleValue === "Primary" ? this.peers() : [];
    this.commit = idx;
    this.ready.commitIdx = idx;
    if (before.length > 0) {
      const after = new Set(this.peers());
      const until = this.now + 10 * this.o.electionTimeoutTicks;
      for (const n of before) if (!after.has(n)) this.lingering.set(n, until);
    }
    if (!this.retiredValue && !this.isMemberOfActive() && this.wasMember()) this.retire();
  }

  /** Leaves the service once a configuration without this node has committed. */
  private retire(): void {
    if (this.roleValue === "Primary") {
      // Tell everyone the new commit index, then hand over to the most up-to-date successor
      // rather than letting the service wait for an election timeout (CCF's ProposeRequestVote).
      for (const peer of this.peers()) this.sendAppendEntries(peer);
      let successor: NodeId | undefined;
      let best = -1;
      for (const n of this.latestConfiguration().nodes) {
        const match = this.progress.get(n)?.match ?? 0;
        if (n !== this.o.id && match > best) {
          best = match;
          successor = n;
        }
      }
      if (successor !== undefined) {
        this.send(successor, { type: "raft_propose_request_vote", term: this.termValue });
      }
      this.setRole("Backup", undefined);
    }
    this.retiredValue = true;
    this.ready.retired = true;
  }

  // ---- elections -------------------------------------------------------------------------------

  private startPreVote(): void {
    this.setRole("PreVoteCandidate", undefined);
    this.resetElectionTimer();
    this.votes.clear();
    this.votes.add(this.o.id);
    if (this.hasVoteQuorum()) {
      this.startElection();
      return;
    }
    for (const peer of this.peers())
      this.send(peer, this.voteRequest(this.termValue + 1, "PreVote"));
  }

  private startElection(): void {
    this.termValue++;
    this.votedFor = this.o.id;
    this.setRole("Candidate", undefined);
    this.resetElectionTimer();
    this.votes.clear();
    this.votes.add(this.o.id);
    if (this.hasVoteQuorum()) {
      this.becomePrimary();
      return;
    }
    for (const peer of this.peers())
      this.send(peer, this.voteRequest(this.termValue, "RegularVote"));
  }

  private voteRequest(term: number, electionType: RequestVote["electionType"]): RequestVote {
    const lastCommittableIdx = this.lastCommittableIdx;
    return {
      type: "raft_request_vote",
      term,
      lastCommittableIdx,
      termOfLastCommittableIdx: this.termAt(lastCommittableIdx) as number,
      electionType,
    };
  }

  /** CCF's vote rule: the candidate's last committable entry must be at least as recent as ours. */
  private candidateIsUpToDate(m: RequestVote): boolean {
    if (this.o.testOnlyFaults?.voteIgnoringLastCommittable === true) return true;
    const mine = this.lastCommittableIdx;
    const myTerm = this.termAt(mine) as number;
    return (
      m.termOfLastCommittableIdx > myTerm ||
      (m.termOfLastCommittableIdx === myTerm && m.lastCommittableIdx >= mine)
    );
  }

  private handleRequestVote(from: NodeId, m: RequestVote): void {
    const grant =
      this.roleValue !== "Primary" &&
      (this.votedFor === undefined || this.votedFor === from) &&
      this.candidateIsUpToDate(m);
    if (grant) {
      this.votedFor = from;
      this.electionElapsed = 0;
    }
    this.send(from, {
      type: "raft_request_vote_response",
      term: this.termValue,
      voteGranted: grant,
      electionType: "RegularVote",
    });
  }

  private handleRequestVoteResponse(from: NodeId, m: RequestVoteResponse): void {
    if (this.roleValue !== "Candidate" || !m.voteGranted) return;
    this.votes.add(from);
    if (this.hasVoteQuorum()) this.becomePrimary();
  }

  /** PreVotes change no state: grant if the candidate's next view is ahead and its log is not behind. */
  private handlePreVote(from: NodeId, m: RequestVote): void {
    const grant = m.term > this.termValue && this.candidateIsUpToDate(m);
    this.send(from, {
      type: "raft_request_vote_response",
      term: grant ? m.term : this.termValue,
      voteGranted: grant,
      electionType: "PreVote",
    });
  }

  private handlePreVoteResponse(from: NodeId, m: RequestVoteResponse): void {
    if (!m.voteGranted) {
      if (m.term > this.termValue) this.becomeBackup(m.term, undefined);
      return;
    }
    if (this.roleValue !== "PreVoteCandidate" || m.term !== this.termValue + 1) return;
    this.votes.add(from);
    if (this.hasVoteQuorum()) this.startElection();
  }

  private hasVoteQuorum(): boolean {
    const configs = this.activeConfigurations();
    if (configs.length === 0) return false;
    return configs.every(
      (c) => c.nodes.filter((n) => this.votes.has(n)).length >= majority(c.nodes.length),
    );
  }

  private becomePrimary(): void {
    this.setRole("Primary", this.o.id);
    // The unsigned suffix can never commit in this view: drop it, and sign first.
    const keep = this.lastCommittableIdx;
    if (keep < this.lastIdx) this.rollback(keep);
    this.resetProgress();
    this.heartbeatElapsed = 0;
    this.ready.shouldSign = true;
    for (const peer of this.peers()) this.sendAppendEntries(peer);
  }

  private becomeBackup(term: number, leader: NodeId | undefined, resetTimer = true): void {
    if (term > this.termValue) {
      this.termValue = term;
      this.votedFor = undefined;
    }
    this.setRole("Backup", leader);
    if (resetTimer) this.resetElectionTimer();
  }

  private setRole(role: Role, leader: NodeId | undefined): void {
    if (this.roleValue === "Primary" && role !== "Primary") {
      // What the host appended as primary but had not yet proposed is not in the log: it must go
      // (another primary's entries will take those seqnos).
      this.ready.rollbackTo = Math.min(this.ready.rollbackTo ?? this.lastIdx, this.lastIdx);
    }
    if (role !== "Primary") this.progress.clear();
    this.roleValue = role;
    this.leaderValue = leader;
    this.ready.roleChange = { role, term: this.termValue, leader };
  }

  private resetElectionTimer(): void {
    this.electionElapsed = 0;
    this.electionTimeout = this.o.chooseElectionTimeout();
  }

  private resetProgress(): void {
    this.progress.clear();
    for (const peer of this.peers()) this.progressOf(peer);
  }

  private progressOf(peer: NodeId): Progress {
    let p = this.progress.get(peer);
    if (p === undefined) {
      p = { next: this.lastIdx + 1, match: 0, lastAck: this.now };
      this.progress.set(peer, p);
    }
    return p;
  }

  /** CheckQuorum: a primary that has not heard from a quorum of every configuration steps down. */
  private hasQuorumOfAcks(): boolean {
    const since = this.now - this.o.electionTimeoutTicks;
    return this.activeConfigurations().every((c) => {
      const acked = c.nodes.filter(
        (n) => n === this.o.id || this.progressOf(n).lastAck > since,
      ).length;
      return acked >= majority(c.nodes.length);
    });
  }

  // ---- the log and configurations --------------------------------------------------------------

  private appendEntry(e: LogEntry): void {
    invariant(e.idx === this.lastIdx + 1, () => `entry ${e.idx} after ${this.lastIdx}`);
    const prevTerm = this.termAt(e.idx - 1) as number;
    invariant(
      e.term >= prevTerm && e.term <= this.termValue,
      () => `entry ${e.idx} in view ${e.term} after view ${prevTerm} (current ${this.termValue})`,
    );
    this.log.append(e);
    if (e.configuration !== undefined) {
      this.configs.push({ idx: e.idx, nodes: [...e.configuration] });
      if (this.roleValue === "Primary") for (const peer of this.peers()) this.progressOf(peer);
    }
  }

  private rollback(idx: number): void {
    invariant(
      idx >= this.commit,
      () => `node ${this.o.id} asked to roll back to ${idx} below its commit ${this.commit}`,
    );
    this.log.truncate(idx);
    this.configs = this.configs.filter((c) => c.idx <= idx);
    this.ready.rollbackTo = Math.min(this.ready.rollbackTo ?? idx, idx);
    // Appends reported earlier in this step beyond the rollback point are void.
    this.ready.appends = this.ready.appends.filter((e) => e.idx <= idx);
  }

  private latestConfiguration(): Configuration {
    const c = this.configs[this.configs.length - 1];
    return c ?? { idx: 0, nodes: [] };
  }

  private isMemberOf(c: Configuration): boolean {
    return c.nodes.includes(this.o.id);
  }

  private isMemberOfActive(): boolean {
    return this.activeConfigurations().some((c) => this.isMemberOf(c));
  }

  private wasMember(): boolean {
    return this.configs.some((c) => c.idx <= this.commit && this.isMemberOf(c));
  }

  /** Every node of every active configuration but this one. */
  private peers(): NodeId[] {
    const out = new Set<NodeId>();
    for (const c of this.activeConfigurations()) for (const n of c.nodes) out.add(n);
    out.delete(this.o.id);
    return [...out].sort();
  }

  private send(to: NodeId, message: Message): void {
    this.ready.messages.push({ to, message });
  }

  private checkInvariants(): void {
    invariant(this.commit <= this.lastIdx, () => `commit ${this.commit} past the log`);
    invariant(
      this.commit === this.log.base ||
        this.log.isSignature(this.commit) ||
        this.o.testOnlyFaults?.commitWithoutSignature === true,
      () => `commit ${this.commit} is not a signature`,
    );
    invariant(
      (this.roleValue === "Primary") === (this.leaderValue === this.o.id),
      () => `${this.o.id} is ${this.roleValue} but its leader is ${this.leaderValue}`,
    );
    const lastTerm = this.lastIdx > this.log.base ? (this.termAt(this.lastIdx) as number) : 0;
    invariant(
      lastTerm <= this.termValue,
      () => `last entry in view ${lastTerm} beyond the current view ${this.termValue}`,
    );
  }
}
