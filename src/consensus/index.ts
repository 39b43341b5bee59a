// Consensus: CCF's Raft variant as a pure state machine, and CCF's transaction status rules.

export {
  ConsensusInvariantError,
  NotPrimaryError,
  TooManyPendingTransactionsError,
} from "./errors.js";
export { Raft } from "./raft.js";
export {
  isAllowedStatusTransition,
  type LocalView,
  type TxStatus,
  txStatus,
  type ViewStart,
  viewAt,
} from "./tx-status.js";
export type {
  AppendEntries,
  AppendEntriesResponse,
  Configuration,
  ElectionType,
  Event,
  LogEntry,
  Message,
  NodeId,
  OutboundMessage,
  ProposeRequestVote,
  Proposal,
  RaftOptions,
  Ready,
  RequestVote,
  RequestVoteResponse,
  Role,
  RoleChange,
  TestOnlyFaults,
} from "./types.js";
