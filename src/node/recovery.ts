// Disaster recovery, the ledger side: gathering the old ledger's chunks into the node's ledger
// directory, replaying its public domain (verified, as CCF's public recovery does), cutting it at
// its last signature, and, once members' shares gave the ledger secrets back, replaying the
// private domain. The node (node.ts) runs the recovery transactions around these steps.

import { createPublicKey } from "node:crypto";
import * as fs from "node:fs";
import { join } from "node:path";
import type { LogEntry } from "../consensus/index.js";
import {
  certificateDer,
  coseSign1Sign,
  type EcKeyPair,
  openGcmCipher,
  type Rng,
  rsaOaepUnwrap,
  rsaOaepWrap,
  sealGcmCipher,
} from "../crypto/index.js";
import { CcfError, FormatError } from "../errors.js";
import {
  type FileLedger,
  type LedgerSecret,
  type LedgerSecrets,
  LedgerVerificationError,
  listChunks,
  parseChunk,
  parseChunkName,
  decodeSnapshotEntry,
  decryptPrivateDomain,
  listCommittedSnapshots,
  readLedger,
  readSnapshotFile,
  splitEntry,
} from "../ledger/index.js";
import type { HistoricalSecretWrite } from "../ledger/secret-chain.js";
import {
  decodeValue,
  encodeValue,
  idKey,
  isPublicMap,
  keyToString,
  MapState,
  type ParsedSnapshot,
  parsePrivateDomain,
  SINGLETON_KEY,
  type Store,
  Tables,
  type Tx,
  type WriteSet,
} from "../kv/index.js";
import type { MerkleTree } from "../merkle/index.js";
import {
  historicalSecretWrite,
  issueRecoveryShares,
  recoverLedgerSecrets,
} from "./share-manager.js";
import {
  type LoadedSnapshot,
  loadSnapshot,
  installLoadedSnapshot,
  viewStartsOf,
} from "./snapshot-fetch.js";

const SINGLETON = keyToString(SINGLETON_KEY);

/**
 * Copies into `mainDir` the committed chunks of the read-only directories that the main directory
 * does not cover (CCF reads only `.committed` chunks from read-only directories). Returns how many
 * files were copied. The read-only directories are never written.
 */
export function gatherLedgerChunks(mainDir: string, readOnlyDirs: readonly string[]): number {
  fs.mkdirSync(mainDir, { recursive: true });
  const covered = (start: number, end: number) =>
    fs.readdirSync(mainDir).some((f) => {
      const n = parseChunkName(f);
      if (n === undefined || n.ignored || n.recovery) return false;
      return n.start <= end && (n.end ?? Number.MAX_SAFE_INTEGER) >= start;
    });
  let copied = 0;
  for (const dir of readOnlyDirs) {
    let chunks: ReturnType<typeof listChunks>;
    try {
      chunks = listChunks(dir, true);
    } catch (e) {
      // A read-only directory with no committed chunk (only an open one, or nothing) adds nothing;
      // a missing directory, a gap or an overlap is still an error.
      if (e instanceof LedgerVerificationError && e.code === "LedgerEmpty") continue;
      throw e;
    }
    for (const c of chunks) {
      const end = c.name.end ?? c.name.start;
      if (covered(c.name.start, end)) continue;
      fs.copyFileSync(c.path, join(mainDir, c.file));
      copied++;
    }
  }
  return copied;
}

/**
 * The latest committed snapshot in `dirs` whose receipt verifies against the previous service's
 * certificate (a recovery may start from it instead of seqno 1), if any.
 */
export function findRecoverySnapshot(
  dirs: readonly string[],
  previousServiceCert: string,
  log?: (msg: string, err: unknown) => void,
): LoadedSnapshot | undefined {
  const found: Array<{ seqno: number; path: string }> = [];
  for (const dir of dirs) {
    if (!fs.existsSync(dir)) continue;
    for (const s of listCommittedSnapshots(dir)) found.push(s);
  }
  found.sort((a, b) => b.seqno - a.seqno);
  for (const s of found) {
    try {
      return loadSnapshot(s.path, previousServiceCert);
    } catch (err) {
      log?.(`snapshot ${s.path} is not usable`, err);
    }
  }
  return undefined;
}

export interface PublicRecovery {
  /** The snapshot the replay started from (0: none, the ledger from seqno 1). */
  base: { seqno: number; view: number; views: Array<{ view: number; seqno: number }> };
  snapshotPath?: string;
  /** L: the last signature kept; everything after it is dropped. */
  lastSignedSeqno: number;
  /** The view of the entry at L (V_old). */
  lastSignedView: number;
  /** Hex Merkle root signed at L. */
  lastSignedRoot: string;
  /** Entries base+1..L for consensus (committed; replicated to nodes that join later). */
  entries: LogEntry[];
  /** Every write to historical_encrypted_ledger_secret up to L, in order. */
  history: HistoricalSecretWrite[];
  /** Version (seqno) of the last write to service.info up to L. */
  serviceInfoVersion: number;
}

export interface PublicReplayOptions {
  store: Store;
  tree: MerkleTree;
  /** The previous service's certificate: the ledger must end with this identity. */
  serviceCert?: string;
  onProgress?: (seqno: number) => void;
  /** Start from this snapshot (verified): only the ledger after it is replayed. */
  snapshot?: LoadedSnapshot;
}

/**
 * Replays the public domain of the ledger in `dir` into the node's (empty) store and tree,
 * verifying every signature and root, and cuts store, tree and ledger files at the last signature.
 */
export function replayPublicLedger(
  dir: string,
  storage: FileLedger,
  o: PublicReplayOptions,
): PublicRecovery {
  const entries: LogEntry[] = [];
  const history: HistoricalSecretWrite[] = [];
  const snap = o.snapshot;
  const from = snap?.seqno ?? 0;
  let base: PublicRecovery["base"] = { seqno: 0, view: 0, views: [] };
  if (snap !== undefined) {
    installLoadedSnapshot(snap, o.store, o.tree);
    const views = viewStartsOf(snap.parsed.viewHistory, snap.seqno);
    base = { seqno: snap.seqno, view: views.at(-1)?.view ?? 2, views };
    // The snapshot holds the latest write to the secret chain: the secrets in force at and after
    // the snapshot are reachable from it and the writes after it.
    const h = o.store.mapState(Tables.HISTORICAL_ENCRYPTED_LEDGER_SECRET)?.entries.get(SINGLETON);
    if (h !== undefined && h.value !== null) {
      history.push(historicalSecretWrite(h.version, h.value));
    }
  }
  const report = readLedger(dir, {
    into: { store: o.store, tree: o.tree },
    from,
    keepUnsignedTail: true,
    repairTornTail: true,
    ...(o.serviceCert === undefined ? {} : { serviceCert: o.serviceCert }),
    onEntry: (le) => {
      entries.push({
        idx: le.seqno,
        term: le.view,
        isSignature: le.signature !== undefined,
        data: le.entry.bytes,
      });
      const h = le.writeSet.get(Tables.HISTORICAL_ENCRYPTED_LEDGER_SECRET)?.get(SINGLETON);
      if (h !== undefined && h !== null) history.push(historicalSecretWrite(le.seqno, h));
      if (le.seqno % 10000 === 0) o.onProgress?.(le.seqno);
    },
  });
  const last = report.lastSignedSeqno;
  if (last === 0 || report.lastSignedRoot === undefined) {
    throw new CcfError("RecoveryFailed", `the ledger in ${dir} holds no signature transaction`);
  }
  o.store.rollback(last);
  o.tree.truncate(last + 1);
  entries.length = last - from;
  storage.truncate(last);
  storage.commit(last);
  storage.completeOpenChunk();
  storage.commit(last);
  const keptHistory = history.filter((h) => h.seqno <= last);
  const serviceInfoVersion = o.store.mapState(Tables.SERVICE)?.entries.get(SINGLETON)?.version ?? 0;
  return {
    base,
    ...(o.snapshot === undefined ? {} : { snapshotPath: o.snapshot.path }),
    lastSignedSeqno: last,
    lastSignedView: entries.at(-1)?.term ?? base.view,
    lastSignedRoot: report.lastSignedRoot,
    entries,
    history: keptHistory,
    serviceInfoVersion,
  };
}

/**
 * The private maps of entries 1..upTo, decrypted with the recovered secrets: each entry's GCM tag
 * (over its public domain too) must verify, so a wrong secret fails here, before anything changes.
 * Chunk files are read whole, in order, and only private domains are parsed.
 */
export function replayPrivateLedger(
  storage: FileLedger,
  upTo: number,
  secrets: LedgerSecrets,
  onProgress?: (seqno: number) => void,
  /** The snapshot the public replay started from: its private maps come first. */
  snapshot?: { seqno: number; path: string },
): Map<string, MapState> {
  const maps = new Map<string, MapState>();
  let seqno = snapshot?.seqno ?? 0;
  const from = seqno;
  if (snapshot !== undefined) {
    let parsed: ParsedSnapshot;
    try {
      parsed = decodeSnapshotEntry(
        readSnapshotFile(snapshot.path).entry,
        secrets.forSeqno(snapshot.seqno),
      );
    } catch (e) {
      throw new CcfError(
        "RecoveryFailed",
        `the snapshot at ${snapshot.seqno} does not decrypt with the recovered ledger secrets`,
        500,
        { cause: e },
      );
    }
    for (const m of parsed.maps.values()) {
      if (isPublicMap(m.name)) continue;
      const state = new MapState();
      for (const e of m.entries) if (e.value !== null) state.set(e.key, e.value, e.version);
      state.version = m.version;
      maps.set(m.name, state);
    }
  }
  const apply = (bytes: Buffer): void => {
    seqno++;
    let ws: WriteSet;
    try {
      const raw = splitEntry(bytes);
      // The tag covers the public domain too: every entry is checked, private writes or not.
      ws = parsePrivateDomain(decryptPrivateDomain(raw, secrets.forSeqno(seqno)));
    } catch (e) {
      throw new CcfError(
        "RecoveryFailed",
        `ledger entry ${seqno} does not decrypt with the recovered ledger secrets`,
        500,
        { cause: e },
      );
    }
    for (const [name, writes] of ws) {
      if (isPublicMap(name) || writes.size === 0) continue;
      let state = maps.get(name);
      if (state === undefined) {
        state = new MapState();
        maps.set(name, state);
      }
      for (const [key, value] of writes) state.set(key, value, seqno);
    }
    if (seqno % 10000 === 0) onProgress?.(seqno);
  };
  for (const chunk of listChunks(storage.dir, false, from)) {
    if (seqno >= upTo) break;
    if (chunk.name.start > seqno + 1) {
      throw new CcfError("RecoveryFailed", `ledger entry ${seqno + 1} is missing`);
    }
    const buf = fs.readFileSync(chunk.path);
    let inChunk = chunk.name.start - 1;
    for (const { offset, size } of parseChunk(buf).entries) {
      if (++inChunk <= from) continue;
      if (seqno >= upTo) break;
      apply(buf.subarray(offset, offset + size));
    }
  }
  if (seqno < upTo) throw new CcfError("RecoveryFailed", `ledger entry ${seqno + 1} is missing`);
  // Removals before the end of the old ledger are history: only live entries remain.
  for (const state of maps.values()) {
    for (const [key, e] of [...state.entries]) {
      if (e.value === null) state.restore(key, undefined);
    }
    state.tombstonesDroppedAt = upTo;
  }
  return maps;
}

// ---- the recovery transactions -------------------------------------------------------------------

function put(tx: Tx, table: string, key: Uint8Array, value: unknown): void {
  tx.map(table).set(key, encodeValue(table, value));
}

function serviceInfo(tx: Tx): { info: Record<string, unknown>; version: number } {
  const services = tx.map(Tables.SERVICE);
  const raw = services.get(SINGLETON_KEY);
  if (raw === undefined) throw new CcfError("RecoveryFailed", "the ledger holds no service");
  return {
    info: decodeValue(Tables.SERVICE, raw) as Record<string, unknown>,
    version: services.getVersionOfPreviousWrite(SINGLETON_KEY) ?? 0,
  };
}

/**
 * A COSE_Sign1 by the service key over a service public key (SPKI DER), CCF's endorsement of a
 * service identity: its own at opening (a self-endorsement), the previous one after a recovery.
 */
export function endorseServiceKey(
  serviceKey: EcKeyPair,
  endorsedKeyDer: Uint8Array,
  epoch: { from: string; to?: string; root?: Uint8Array },
  iat: number,
): Buffer {
  const ccf = new Map<string, unknown>([["epoch.start.txid", epoch.from]]);
  if (epoch.to !== undefined) ccf.set("epoch.end.txid", epoch.to);
  if (epoch.root !== undefined) ccf.set("merkle.root", Buffer.from(epoch.root));
  return coseSign1Sign({
    key: serviceKey,
    protectedHeaders: new Map<string | number, unknown>([
      [15, new Map([[6, iat]])],
      ["ccf.v1", ccf],
    ]),
    payload: endorsedKeyDer,
  });
}

export interface RecoveryGenesisArgs {
  serviceCert: string;
  previousServiceCert: string;
  replay: PublicRecovery;
  /** The recovered service's first view (V_old + 2). */
  view: number;
  node: {
    id: string;
    info: Record<string, unknown>;
    endorsedCert: string;
    hostData: string;
    measurement: string;
  };
}

/**
 * CCF's recovery genesis (at L+1): the new identity in state Recovering, the previous identity and
 * its last signed root, the old nodes retired and this node trusted.
 */
export function writeRecoveryGenesis(tx: Tx, a: RecoveryGenesisArgs): void {
  const { info, version } = serviceInfo(tx);
  const recovered: Record<string, unknown> = {
    cert: a.serviceCert,
    current_service_create_txid: `${a.view}.${a.replay.lastSignedSeqno + 1}`,
    previous_service_identity_version: version,
    recovery_count: (typeof info.recovery_count === "number" ? info.recovery_count : 0) + 1,
    status: "Recovering",
  };
  if (info.service_data !== undefined) recovered.service_data = info.service_data;
  put(tx, Tables.SERVICE, SINGLETON_KEY, recovered);
  put(tx, Tables.PREVIOUS_SERVICE_IDENTITY, SINGLETON_KEY, a.previousServiceCert);
  put(tx, Tables.PREVIOUS_SERVICE_LAST_SIGNED_ROOT, SINGLETON_KEY, a.replay.lastSignedRoot);
  const nodes = tx.map(Tables.NODES);
  const retire: Array<[Uint8Array, Record<string, unknown>]> = [];
  nodes.forEach((value, key) => {
    const n = decodeValue(Tables.NODES, value) as Record<string, unknown>;
    if (n.status !== "Retired") retire.push([key, { ...n, status: "Retired" }]);
  });
  for (const [key, n] of retire) put(tx, Tables.NODES, key, n);
  put(tx, Tables.NODES, idKey(a.node.id), a.node.info);
  put(tx, Tables.NODE_ENDORSED_CERTIFICATES, idKey(a.node.id), a.node.endorsedCert);
  put(tx, Tables.VIRTUAL_MEASUREMENTS, Buffer.from(a.node.measurement), "AllowedToJoin");
  put(tx, Tables.VIRTUAL_HOST_DATA, Buffer.from(a.node.hostData), "");
}

/** `transition_service_to_open` on a Recovering service: WaitingForRecoveryShares. */
export function beginWaitingForShares(tx: Tx, previousIdentity: string): void {
  const stored = tx.map(Tables.PREVIOUS_SERVICE_IDENTITY).get(SINGLETON_KEY);
  const previous =
    stored === undefined
      ? undefined
      : (decodeValue(Tables.PREVIOUS_SERVICE_IDENTITY, stored) as string);
  if (previous === undefined || !sameCertificate(previous, previousIdentity)) {
    throw new Error("Previous service identity does not match");
  }
  const { info, version } = serviceInfo(tx);
  info.status = "WaitingForRecoveryShares";
  info.previous_service_identity_version = version;
  put(tx, Tables.SERVICE, SINGLETON_KEY, info);
  clearSubmittedShares(tx);
  put(tx, Tables.LAST_RECOVERY_TYPE, SINGLETON_KEY, "RECOVERY_SHARES");
}

export function sameCertificate(a: string, b: string): boolean {
  try {
    return certificateDer(a).equals(certificateDer(b));
  } catch {
    return false;
  }
}

export function clearSubmittedShares(tx: Tx): void {
  const m = tx.map(Tables.ENCRYPTED_SUBMITTED_SHARES);
  const keys: Uint8Array[] = [];
  m.forEach((_v, k) => keys.push(k));
  for (const k of keys) m.delete(k);
}

export interface ShareSubmission {
  submittedCount: number;
  recoveryThreshold: number;
  fullKeySubmitted: boolean;
}

/**
 * Records a member's raw share (encrypted under the recovering service's own ledger secret, as
 * CCF stores it) and says whether recovery can start.
 */
export function recordSubmittedShare(
  tx: Tx,
  memberId: string,
  share: Uint8Array,
  latest: LedgerSecret,
  rng: Rng,
): ShareSubmission {
  const sealed = sealGcmCipher(latest.key, share, rng.bytes(12));
  put(tx, Tables.ENCRYPTED_SUBMITTED_SHARES, idKey(memberId), sealed.toString("base64"));
  let submittedCount = 0;
  tx.map(Tables.ENCRYPTED_SUBMITTED_SHARES).forEach(() => {
    submittedCount++;
  });
  const rawConfig = tx.map(Tables.CONFIGURATION).get(SINGLETON_KEY);
  const config =
    rawConfig === undefined
      ? {}
      : (decodeValue(Tables.CONFIGURATION, rawConfig) as Record<string, unknown>);
  const recoveryThreshold =
    typeof config.recovery_threshold === "number" ? config.recovery_threshold : 1;
  const fullKeySubmitted = share.length === 44 && Buffer.from(share).readUInt32LE(0) === 0;
  return { submittedCount, recoveryThreshold, fullKeySubmitted };
}

/** The submitted raw shares, in map (member id) order. */
export function submittedShares(tx: Tx, latest: LedgerSecret): Buffer[] {
  const out: Buffer[] = [];
  tx.map(Tables.ENCRYPTED_SUBMITTED_SHARES).forEach((value) => {
    const sealed = Buffer.from(
      decodeValue(Tables.ENCRYPTED_SUBMITTED_SHARES, value) as string,
      "base64",
    );
    out.push(openGcmCipher(latest.key, sealed));
  });
  return out;
}

/** The ledger secrets the submitted shares give back (every secret of the old ledger). */
export function secretsFromSubmittedShares(
  tx: Tx,
  latest: LedgerSecret,
  threshold: number,
  history: HistoricalSecretWrite[],
): LedgerSecret[] {
  const raw = tx.map(Tables.RECOVERY_SHARES).get(SINGLETON_KEY);
  if (raw === undefined) {
    throw new CcfError("RecoveryFailed", "the recovered ledger holds no recovery shares");
  }
  return recoverLedgerSecrets({
    submitted: submittedShares(tx, latest),
    threshold,
    recoveryShares: decodeValue(Tables.RECOVERY_SHARES, raw),
    history,
  });
}

/**
 * CCF's broadcast of ledger secrets to trusted nodes (encrypted_ledger_secrets): each secret
 * RSA-OAEP wrapped to each node's encryption key. `version` null marks a rekey's new secret.
 */
export function broadcastLedgerSecrets(
  tx: Tx,
  secrets: ReadonlyArray<{ secret: LedgerSecret; version: number | null; previousStored?: number }>,
): void {
  const out: Record<string, unknown[]> = {};
  tx.map(Tables.NODES).forEach((value, key) => {
    const n = decodeValue(Tables.NODES, value) as {
      status?: unknown;
      encryption_pub_key?: unknown;
    };
    if (n.status !== "Trusted" || typeof n.encryption_pub_key !== "string") return;
    const pem = n.encryption_pub_key;
    out[Buffer.from(key).toString("latin1")] = secrets.map((s) => {
      const e: Record<string, unknown> = {
        encrypted_secret: rsaOaepWrap(pem, s.secret.key).toString("base64"),
        version: s.version,
      };
      if (s.previousStored !== undefined) e.previous_secret_stored_version = s.previousStored;
      return e;
    });
  });
  put(tx, Tables.ENCRYPTED_LEDGER_SECRETS, SINGLETON_KEY, out);
}

/** The secrets sent to `nodeId` in an encrypted_ledger_secrets value, unwrapped. */
export function ledgerSecretsFor(
  value: Uint8Array,
  nodeId: string,
  privateKeyPem: string,
): Array<{ key: Buffer; version: number | null }> {
  const all = decodeValue(Tables.ENCRYPTED_LEDGER_SECRETS, value) as Record<string, unknown>;
  const mine = all[nodeId];
  if (!Array.isArray(mine)) return [];
  return mine.map((e: { encrypted_secret?: unknown; version?: unknown }) => {
    if (typeof e.encrypted_secret !== "string") {
      throw new FormatError("InvalidValue", "encrypted_ledger_secrets entry has no secret");
    }
    return {
      key: rsaOaepUnwrap(privateKeyPem, Buffer.from(e.encrypted_secret, "base64")),
      version: typeof e.version === "number" ? e.version : null,
    };
  });
}

export interface EndOfRecoveryArgs {
  latest: LedgerSecret;
  /** The old service's newest secret, which the new one now encrypts in the chain. */
  previous: LedgerSecret;
  /** Seqno of the last historical_encrypted_ledger_secret write of the old ledger. */
  previousStoredVersion?: number;
  replay: PublicRecovery;
  serviceKey: EcKeyPair;
  previousServiceCert: string;
  rng: Rng;
  iat: number;
}

/**
 * CCF's end-of-recovery transaction: shares cleared, new recovery shares issued for the recovered
 * service's secret (the old newest secret chained under it), the previous identity endorsed by
 * the new one, and the service Open.
 */
export function writeEndOfRecovery(tx: Tx, a: EndOfRecoveryArgs): void {
  clearSubmittedShares(tx);
  const history: { previous: LedgerSecret; nextVersion: number; previousStoredVersion?: number } = {
    previous: a.previous,
    nextVersion: a.replay.lastSignedSeqno + 1,
  };
  if (a.previousStoredVersion !== undefined) {
    history.previousStoredVersion = a.previousStoredVersion;
  }
  issueRecoveryShares(tx, a.rng, { latest: a.latest, history });
  const endorsements = tx.map(Tables.PREVIOUS_SERVICE_IDENTITY_ENDORSEMENT);
  const rawPrevious = endorsements.get(SINGLETON_KEY);
  const prev =
    rawPrevious === undefined
      ? undefined
      : (decodeValue(Tables.PREVIOUS_SERVICE_IDENTITY_ENDORSEMENT, rawPrevious) as Record<
          string,
          unknown
        >);
  const { info, version } = serviceInfo(tx);
  const from =
    typeof prev?.endorsement_epoch_begin === "string" ? prev.endorsement_epoch_begin : "2.1";
  const to = `${a.replay.lastSignedView}.${a.replay.lastSignedSeqno}`;
  const previousKeyDer = publicKeyDerOfCert(a.previousServiceCert);
  const endorsement: Record<string, unknown> = {
    endorsement: endorseServiceKey(
      a.serviceKey,
      previousKeyDer,
      { from, to, root: Buffer.from(a.replay.lastSignedRoot, "hex") },
      a.iat,
    ).toString("base64"),
    endorsement_epoch_begin: from,
    endorsement_epoch_end: to,
    endorsing_key: a.serviceKey.publicKeyDer.toString("base64"),
  };
  const previousVersion = endorsements.getVersionOfPreviousWrite(SINGLETON_KEY);
  if (previousVersion !== undefined) endorsement.previous_version = previousVersion;
  put(tx, Tables.PREVIOUS_SERVICE_IDENTITY_ENDORSEMENT, SINGLETON_KEY, endorsement);
  info.status = "Open";
  info.previous_service_identity_version = version;
  put(tx, Tables.SERVICE, SINGLETON_KEY, info);
}

/** A self-endorsement of the service identity, written when a new service opens. */
export function writeSelfEndorsement(
  tx: Tx,
  serviceKey: EcKeyPair,
  createTxId: string,
  iat: number,
): void {
  put(tx, Tables.PREVIOUS_SERVICE_IDENTITY_ENDORSEMENT, SINGLETON_KEY, {
    endorsement: endorseServiceKey(
      serviceKey,
      serviceKey.publicKeyDer,
      { from: createTxId },
      iat,
    ).toString("base64"),
    endorsement_epoch_begin: createTxId,
    endorsing_key: serviceKey.publicKeyDer.toString("base64"),
  });
}

function publicKeyDerOfCert(pem: string): Buffer {
  return createPublicKey(pem).export({ type: "spki", format: "der" });
}
