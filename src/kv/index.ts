// The key-value store: maps, transactions, write sets, CCF's serialisation and built-in tables.

export { compareKeys, type KeyString, keyFromString, keyToString } from "./keys.js";
export { type Entry, MapState, Store, type CommitOptions } from "./store.js";
export { MapsWatch } from "./watch.js";
export { Tx, TxMap } from "./tx.js";
export {
  isPublicMap,
  type MapWrites,
  PUBLIC_PREFIX,
  sortedMapNames,
  type WriteSet,
  writeSetIsEmpty,
} from "./write-set.js";
export {
  EntryType,
  hasClaims,
  hasCommitEvidence,
  parsePrivateDomain,
  parsePublicDomain,
  type PublicHeader,
  serialiseDomain,
} from "./serialise.js";
export {
  decodeStoredValue,
  decodeValue,
  encodeJson,
  encodeValue,
  idKey,
  SINGLETON_KEY,
  Tables,
  type ValueCodec,
  valueCodec,
} from "./builtin.js";
export {
  captureSnapshot,
  ccfKeyHash,
  installSnapshot,
  type ParsedSnapshot,
  parseSnapshot,
  type SnapshotCapture,
  SnapshotLayout,
  SnapshotSerialiser,
  serialiseSnapshot,
  type SnapshotDomains,
  type SnapshotEntry,
  type SnapshotHeader,
  type SnapshotMap,
  type SnapshotOptions,
  viewHistoryUntil,
} from "./snapshot.js";
export { sipHash24Low32 } from "./siphash.js";
