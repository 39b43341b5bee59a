// The vocabulary of consensus: entries as consensus sees them, the events a host feeds in, the
// messages nodes exchange (CCF's names from raft_types.h), and the Ready batch a step hands back.

export type NodeId = string;

/** CCF's leadership states; a retired node keeps its last role name out of every configuration. */
export type Role = "Backup" | "PreVoteCandidate" | "Candidate" | "Primary";

/**
 * One log entry. Consensus reads only `idx`, `term`, `isSignature` and `configuration`; `data` (the
 * framed ledger entry) is carried to other nodes but never looked into.
 */
export interface LogEntry {
  /** The seqno: contiguous from 1. */
  idx: number;
  /** The view the entry was written in (CCF's view; the first is 2). */
  term: number;
  /** Only signature entries are committable. */
  isSignature: boolean;
  /** Set on a reconfiguration entry: the node ids of the configuration it starts. */
  configuration?: readonly NodeId[];
  data: Uint8Array;
}

/** What a primary's host appends and then hands to consensus (idx and term are checked). */
export type Proposal = LogEntry;

export type ElectionType = "RegularVote" | "PreVote";

export interface AppendEntries {
  type: "raft_append_entries";
  term: number;
  /** Index of the last entry carried (prevIdx when the message is a heartbeat). */
  idx: number;
  prevIdx: number;
  prevTerm: number;
  leaderCommitIdx: number;
  /** Term of `idx`. */
  termOfIdx: number;
  /** Whether the batch carries the first entry of the sender's view. */
  containsNewView: boolean;
  /** Entries prevIdx+1..idx, all of one term. */
  entries: readonly LogEntry[];
}

export interface AppendEntriesResponse {
  type: "raft_append_entries_response";
  term: number;
  /** On success the last index now known to match; on failure where the primary should retry from. */
  lastLogIdx: number;
  success: boolean;
}

export interface RequestVote {
  type: "raft_request_vote";
  term: number;
  lastCommittableIdx: number;
  termOfLastCommittableIdx: number;
  electionType: ElectionType;
}

export interface RequestVoteResponse {
  type: "raft_request_vote_response";
  term: number;
  voteGranted: boolean;
  electionType: ElectionType;
}

/** A retiring primary asks its most up-to-date successor to start an election at once. */
export interface ProposeRequestVote {
  type: "raft_propose_request_vote";
  term: number;
}

export type Message =
  | AppendEntries
  | AppendEntriesResponse
  | RequestVote
  | RequestVoteResponse
  | ProposeRequestVote;

export interface OutboundMessage {
  to: NodeId;
  message: Message;
}

export type Event =
  /** One unit of logical time has passed. All timeouts are counted in ticks. */
  | { kind: "tick" }
  | { kind: "receive"; from: NodeId; message: Message }
  /** The primary's host appended these entries (a transaction, a signature) and asks to replicate. */
  | { kind: "propose"; entries: readonly Proposal[] };

export interface RoleChange {
  role: Role;
  term: number;
  /** The primary this node now follows (itself when primary), if known. */
  leader: NodeId | undefined;
}

/**
 * The result of one step. The host applies it in this order: roll back its ledger and state to
 * `rollbackTo`, append `appends`, make them durable, then send `messages` and apply `commitIdx`.
 * When `shouldSign` is set the host must append a signature entry in the new view and propose it
 * before any other transaction (CCF's SignatureDisposition::SHOULD_SIGN).
 */
export interface Ready {
  messages: OutboundMessage[];
  rollbackTo: number | undefined;
  /** Entries received from the primary for the host to apply (never the host's own proposals). */
  appends: LogEntry[];
  /** The new commit index (always a signature), when it advanced. */
  commitIdx: number | undefined;
  roleChange: RoleChange | undefined;
  shouldSign: boolean;
  /** The node left every configuration once its retirement committed: it takes no further part. */
  retired: boolean;
}

export interface RaftOptions {
  id: NodeId;
  /**
   * Nodes of the service at start. A node listed here starts in view 2 with this configuration;
   * the one named `primary` starts as primary (CCF's start node). A node created with no bootstrap
   * is a joiner: it knows nothing until the primary replicates the log to it.
   */
  bootstrap?: { configuration: readonly NodeId[]; primary: NodeId; term?: number };
  /**
   * A log that does not start empty: entries up to `idx` (view `term`) are committed and not held
   * (a node that starts from a snapshot), `entries` follow it (a recovered ledger's entries),
   * committed up to `commitIdx` (default `idx`). `configuration` is the one in force at `idx`;
   * `views` lists where each view started up to `idx`. With `bootstrap`, the bootstrap
   * configuration applies from the last entry and `bootstrap.term` is the first view (default 2).
   */
  start?: {
    idx: number;
    term: number;
    entries?: readonly LogEntry[];
    commitIdx?: number;
    configuration?: readonly NodeId[];
    views?: ReadonlyArray<{ view: number; seqno: number }>;
  };
  heartbeatTicks: number;
  /** The election timeout; CheckQuorum uses it too. */
  electionTimeoutTicks: number;
  /**
   * Picks the next randomised election timeout, in ticks (CCF: uniform in [0.5, 1] of the
   * timeout). Injected so the machine stays deterministic.
   */
  chooseElectionTimeout: () => number;
  /** Backpressure: proposals (other than signatures) are refused past this many uncommitted. */
  maxUncommittedTxCount: number;
  /** Largest number of entries in one AppendEntries. */
  maxEntriesPerMessage: number;
  /** Start elections with a PreVote round (CCF answers PreVotes but does not start them). */
  preVote: boolean;
  /**
   * Reads a committed entry's bytes back from the ledger. With it, `releaseEntryData` may drop the
   * bytes of old committed entries from memory (a peer far behind is then sent them from here).
   */
  readEntryData?: (idx: number) => Uint8Array | undefined;
  /** Deliberately broken variants, for proving that the simulator's invariants catch them. */
  testOnlyFaults?: TestOnlyFaults;
}

export interface TestOnlyFaults {
  /** Commit at the quorum's match index whether or not it is a signature. */
  commitWithoutSignature?: boolean;
  /** Grant votes without comparing the candidate's last committable entry. */
  voteIgnoringLastCommittable?: boolean;
}

export interface Configuration {
  /** Index of the entry that started it (0 for the bootstrap configuration). */
  idx: number;
  nodes: readonly NodeId[];
}
