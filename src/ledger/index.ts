// The ledger: CCF-compatible entries and chunk files, ledger secrets, storage with group-committed
// fsync, the offline reader/verifier, and the in-process transaction pipeline.

export {
  type ChunkLayout,
  type ChunkName,
  chunkFileName,
  parseChunk,
  parseChunkName,
} from "./chunk.js";
export {
  type DecodedEntry,
  decodeEntry,
  decryptEntry,
  decryptPrivateDomain,
  type EncodeEntryArgs,
  EntryFlags,
  type EntryParts,
  encodeEntry,
  encodeEntryParts,
  entryIv,
  type RawEntry,
  splitEntry,
} from "./entry.js";
export { FileLedger, type FileLedgerOptions } from "./file-ledger.js";
export {
  type Clock,
  type CommitResult,
  formatTxId,
  MAX_ATTEMPTS,
  type NodeSigner,
  type PipelineOptions,
  type ServiceSigner,
  systemClock,
  type TxId,
  TxPipeline,
} from "./pipeline.js";
export {
  type LedgerEntry,
  type LedgerReport,
  LedgerVerificationError,
  listChunks,
  type ReadLedgerOptions,
  readChunkEntries,
  readLedger,
} from "./reader.js";
export { type LedgerSecret, LedgerSecrets } from "./secrets.js";
export {
  encryptPreviousSecret,
  type HistoricalSecretWrite,
  walkSecretChain,
} from "./secret-chain.js";
export { type AppendOptions, LedgerError, type LedgerStorage, MemoryLedger } from "./storage.js";
export { type AppliedEntry, LedgerReplica, type ReplicaOptions } from "./replica.js";
export {
  type CommittedSnapshot,
  commitSnapshotFile,
  decodeSnapshotEntry,
  encodeSnapshotEntry,
  listCommittedSnapshots,
  parseSnapshotFileName,
  readSnapshotFile,
  SNAPSHOT_EVIDENCE_KEY,
  type SnapshotFile,
  type SnapshotFileName,
  snapshotDigest,
  snapshotEvidenceValue,
  snapshotFileName,
  verifySnapshot,
  writeSnapshotFile,
} from "./snapshot-file.js";
