// Consensus: CCF's Raft variant as a pure state machine, and CCF's transaction status rules.

export {
  ConsensusInvariantError,
  NotPrimaryError,
  TooManyPendingTransactionsError,
} from "./errors.js";
export { MemoryHub, type MemoryHubOptions, MemoryTransport } from "./memory-transport.js";
export { Raft } from "./raft.js";
export {
  ACCEPT_BYTE,
  encodeFrame,
  encodeFrameHeader,
  FRAME_HEADER_BYTES,
  FRAME_MAGIC,
  FrameDecoder,
  FrameError,
  type Lane,
  LANES,
  type NodeIdentity,
  parseAddress,
  TlsTransport,
  type TlsTransportOptions,
  type TransportLog,
} from "./tls-transport.js";
export {
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_QUEUED_MESSAGES,
  type PeerStats,
  resolveBounds,
  SendQueue,
  type Transport,
  type TransportBounds,
  TransportConfigError,
  type TransportStats,
} from "./transport.js";
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
export { decodeMessage, encodeMessage } from "./codec.js";
export { NodeTransport, type NodeTransportOptions } from "./node-transport.js";
export { WorkerTransport } from "./worker-transport.js";
