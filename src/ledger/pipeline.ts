// The path of a write inside one node: a transaction commits in the KV, its write set is serialised
// and encrypted into a ledger entry, its Merkle leaf is appended, the entry goes to storage (and to
// whoever replicates it), and every `txCount` transactions or `delayMs` the primary emits a
// signature transaction. Clock and keys are injected, so the same inputs give the same bytes.

import { coseSign1Sign, type EcKeyPair, sha256, signDigest, toHex } from "../crypto/index.js";
import { ConflictError, HttpError, HttpErrors } from "../errors.js";
import { EntryType, encodeValue, SINGLETON_KEY, type Store, Tables, type Tx } from "../kv/index.js";
import {
  commitEvidence,
  commitEvidenceDigest,
  commitSecret,
  EMPTY_CLAIMS,
  encodePrimarySignature,
  leafDigest,
  type MerkleTree,
  newPrimarySignature,
} from "../merkle/index.js";
import { EntryFlags, encodeEntry } from "./entry.js";
import type { LedgerSecrets } from "./secrets.js";
import type { LedgerStorage } from "./storage.js";

export interface Clock {
  /** Milliseconds since the epoch (or any monotonic origin in simulation). */
  now(): number;
  /** Milliseconds from any fixed origin, finer than `now` (durations for metrics); else `now`. */
  monotonic?(): number;
}

export const systemClock: Clock = { now: () => Date.now(), monotonic: () => performance.now() };

export interface TxId {
  view: number;
  seqno: number;
}

export function formatTxId(id: TxId): string {
  return `${id.view}.${id.seqno}`;
}

export interface NodeSigner {
  nodeId: string;
  key: EcKeyPair;
  /** The node certificate written into each signature (endorsed by the service once trusted). */
  certPem: string;
}

export interface ServiceSigner {
  key: EcKeyPair;
  /** COSE `cwt` issuer and subject (CCF's `cose_signatures` config). */
  issuer?: string;
  subject?: string;
}

export interface PipelineOptions {
  store: Store;
  storage: LedgerStorage;
  tree: MerkleTree;
  secrets: LedgerSecrets;
  node: NodeSigner;
  /** Service identity for the COSE signature over the root; omitted, none is written. */
  service?: ServiceSigner;
  view: number;
  /**
   * A signature every `txCount` transactions, or `delayMs` after the first unsigned one; with
   * `whenIdle`, also at a tick that follows a tick's worth of time without new transactions.
   */
  signatures: { txCount: number; delayMs: number; whenIdle?: boolean };
  clock: Clock;
  /** Called for every appended entry, in seqno order (replication hooks here). */
  onAppend?: (seqno: number, view: number, entry: Buffer, signature: boolean) => void;
  /** Told of each signature transaction emitted and how long it took (metrics), in seconds. */
  onSignature?: (seqno: number, seconds: number) => void;
  /**
   * Whether the ledger chunk ends after the signature at `seqno` (CCF: a snapshot due there forces
   * one, so that a node starting from that snapshot has ledger files that begin right after it).
   */
  chunkAfterSignature?: (seqno: number) => boolean;
}

export interface CommitResult<T> {
  result: T;
  /** The transaction's id; for a read-only transaction, the id of the version it read. */
  txId: TxId;
  /** Whether it wrote (and so appended a ledger entry). */
  wrote: boolean;
}

/** CCF's frontend re-executes a conflicting handler up to this many times. */
export const MAX_ATTEMPTS = 30;

/** What the client sees when a handler kept conflicting: CCF's 409. */
function attemptsExceeded(lastError: unknown): HttpError {
  return new HttpError(
    409,
    "TransactionCommitAttemptsExceedLimit",
    `Transaction continued to conflict after ${MAX_ATTEMPTS} attempts. Retry later.`,
    { cause: lastError },
  );
}

export class TxPipeline {
  private view: number;
  private sinceSignature = 0;
  private closed = false;
  /** Transactions committed since the last tick: none means the primary is idle. */
  private appendsSinceTick = 0;
  private lastSignatureAt: number;
  private lastSignatureSeqno = 0;
  private readonly commitSecretCache = new Map<number, Buffer>();
  private chunkAfterNextSignature = false;

  constructor(private readonly o: PipelineOptions) {
    this.view = o.view;
    this.lastSignatureAt = o.clock.now();
    if (o.tree.size === 0) o.tree.append(Buffer.alloc(32));
  }

  get tree(): MerkleTree {
    return this.o.tree;
  }

  get currentView(): number {
    return this.view;
  }

  get lastSeqno(): number {
    return this.o.store.version;
  }

  get lastSignedSeqno(): number {
    return this.lastSignatureSeqno;
  }

  /** Transactions appended since the last signature. */
  get unsigned(): number {
    return this.sinceSignature;
  }

  setView(view: number): void {
    this.view = view;
  }

  /**
   * This writer's view is over (the node is no longer primary): a transaction still running in it
   * cannot commit, since what it would append now belongs to another primary's log.
   */
  close(): void {
    this.closed = true;
  }

  private checkOpen(): void {
    if (this.closed) {
      throw HttpErrors.NodeCannotHandleRequest(
        `This node stopped being the primary of view ${this.view} while the transaction ran`,
      );
    }
  }

  /** The node certificate written into signatures from now on (governance renewed it). */
  setNodeCertificate(certPem: string): void {
    this.o.node = { ...this.o.node, certPem };
  }

  /**
   * Runs `fn` in a transaction and commits it, re-running on conflict up to MAX_ATTEMPTS times.
   * `apply` decides from the result whether the writes are kept (CCF: only on 2xx).
   */
  execute<T>(
    fn: (tx: Tx) => T,
    options: { claimsDigest?: Uint8Array; apply?: (result: T) => boolean } = {},
  ): CommitResult<T> {
    let conflict: ConflictError | undefined;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const tx = this.o.store.begin();
      const result = fn(tx);
      const done = this.settle(tx, result, options.apply, () => options.claimsDigest);
      if (!(done instanceof ConflictError)) return done;
      conflict = done;
    }
    throw attemptsExceeded(conflict);
  }

  /**
   * As `execute`, for handlers that may await. Other transactions can commit meanwhile; the
   * optimistic check at commit catches any conflict and the handler runs again. The claims digest
   * may come from the result (an app sets it while running).
   */
  async executeAsync<T>(
    fn: (tx: Tx) => T | Promise<T>,
    options: {
      claimsDigest?: (result: T) => Uint8Array | undefined;
      apply?: (result: T) => boolean;
    } = {},
  ): Promise<CommitResult<T>> {
    return this.executeMaybeAsync(fn, options);
  }

  /**
   * As `executeAsync`, but settled at once, without a promise, when `fn` returns a value rather
   * than a promise and wrote nothing (a read's promises were ~3 % of a busy node's main thread).
   * A transaction that wrote is committed a microtask later: the handlers of the requests that
   * arrived together (one read of a frontend's pipe) then run back to back, and their commits
   * (serialise, encrypt, hash, append) after them, as they did when every handler awaited.
   * Committing each right after its handler interleaved the sandbox's and the commit's working
   * sets and cost a replicating primary ~6 % of its writes. What `fn` throws is thrown, or
   * rejected once it has awaited.
   */
  executeMaybeAsync<T>(
    fn: (tx: Tx) => T | Promise<T>,
    options: {
      claimsDigest?: (result: T) => Uint8Array | undefined;
      apply?: (result: T) => boolean;
    } = {},
  ): CommitResult<T> | Promise<CommitResult<T>> {
    return this.attempts(fn, options, 0, undefined);
  }

  /** `executeMaybeAsync` from attempt number `attempt` on. */
  private attempts<T>(
    fn: (tx: Tx) => T | Promise<T>,
    options: {
      claimsDigest?: (result: T) => Uint8Array | undefined;
      apply?: (result: T) => boolean;
    },
    attempt: number,
    lastConflict: ConflictError | undefined,
  ): CommitResult<T> | Promise<CommitResult<T>> {
    let conflict = lastConflict;
    for (; attempt < MAX_ATTEMPTS; attempt++) {
      const tx = this.o.store.begin();
      let result: T | Promise<T>;
      try {
        result = fn(tx);
      } catch (e) {
        if (!(e instanceof ConflictError)) throw e;
        conflict = e;
        continue;
      }
      const next = attempt + 1;
      const settleOrRetry = (value: T): CommitResult<T> | Promise<CommitResult<T>> => {
        const done = this.settle(tx, value, options.apply, () => options.claimsDigest?.(value));
        return done instanceof ConflictError ? this.attempts(fn, options, next, done) : done;
      };
      if (result instanceof Promise) {
        return result.then(settleOrRetry, (e: unknown) => {
          // Another transaction committed while this one awaited, and it read what changed.
          if (!(e instanceof ConflictError)) throw e;
          return this.attempts(fn, options, next, e);
        });
      }
      const value = result;
      if (tx.hasWrites()) return Promise.resolve().then(() => settleOrRetry(value));
      const done = this.settle(tx, value, options.apply, () => options.claimsDigest?.(value));
      if (!(done instanceof ConflictError)) return done;
      conflict = done;
    }
    throw attemptsExceeded(conflict);
  }

  /** Keeps or drops one attempt's writes; a conflict is returned for the caller to retry. */
  private settle<T>(
    tx: Tx,
    result: T,
    apply: ((result: T) => boolean) | undefined,
    claimsDigest: () => Uint8Array | undefined,
  ): CommitResult<T> | ConflictError {
    if (apply !== undefined && !apply(result)) {
      return { result, txId: { view: this.view, seqno: tx.readVersion }, wrote: false };
    }
    try {
      const txId = this.commit(tx, claimsDigest());
      return {
        result,
        txId: txId ?? { view: this.view, seqno: tx.readVersion },
        wrote: txId !== undefined,
      };
    } catch (e) {
      if (e instanceof ConflictError) return e;
      throw e;
    }
  }

  /** Commits a transaction; returns its TxID, or undefined when it wrote nothing. */
  commit(tx: Tx, claimsDigest?: Uint8Array): TxId | undefined {
    if (!tx.hasWrites()) {
      tx.checkStillValid();
      return undefined;
    }
    this.checkOpen();
    const { version } = this.o.store.commit(tx);
    this.appendEntry(tx, version, claimsDigest, false);
    this.sinceSignature++;
    this.appendsSinceTick++;
    if (this.sinceSignature >= this.o.signatures.txCount) this.emitSignature();
    return { view: this.view, seqno: version };
  }

  /** Emits a signature if transactions are unsigned and the delay has passed. */
  tick(): TxId | undefined {
    if (this.closed) return undefined;
    const idle = this.o.signatures.whenIdle === true && this.appendsSinceTick === 0;
    this.appendsSinceTick = 0;
    if (
      this.sinceSignature > 0 &&
      (idle || this.o.clock.now() - this.lastSignatureAt >= this.o.signatures.delayMs)
    ) {
      return this.emitSignature();
    }
    return undefined;
  }

  /** Ends the ledger chunk at the next signature (CCF's trigger_ledger_chunk). */
  forceChunkAtNextSignature(): void {
    this.chunkAfterNextSignature = true;
  }

  /**
   * Writes a signature transaction: the node's ECDSA signature over the Merkle root of every
   * transaction before it, the service's COSE Sign1 over the same root, and the serialised tree.
   */
  emitSignature(): TxId {
    this.checkOpen();
    const clock = this.o.clock;
    const started = this.o.onSignature === undefined ? 0 : (clock.monotonic?.() ?? clock.now());
    const tree = this.o.tree;
    const seqno = this.o.store.version + 1;
    const root = tree.root();
    const node = this.o.node;
    const tx = this.o.store.begin();
    const signature = encodePrimarySignature(
      newPrimarySignature({
        cert: node.certPem,
        node: node.nodeId,
        view: this.view,
        seqno,
        root,
        sig: signDigest(node.key, root),
      }),
    );
    tx.map(Tables.SIGNATURES).set(SINGLETON_KEY, signature);
    const service = this.o.service;
    if (service !== undefined) {
      const cose = coseSign1Sign({
        key: service.key,
        protectedHeaders: new Map<number | string, unknown>([
          [4, Buffer.from(toHex(sha256(service.key.publicKeyDer)))],
          [395, 2],
          [
            15,
            new Map<number, unknown>([
              [1, service.issuer ?? "service.example.com"],
              [2, service.subject ?? "ledger.signature"],
              [6, Math.floor(this.o.clock.now() / 1000)],
            ]),
          ],
          ["ccf.v1", new Map<string, unknown>([["txid", `${this.view}.${seqno}`]])],
        ]),
        payload: root,
        detached: true,
      });
      tx.map(Tables.COSE_SIGNATURES).set(
        SINGLETON_KEY,
        encodeValue(Tables.COSE_SIGNATURES, cose.toString("base64")),
      );
    }
    tx.map(Tables.SERIALISED_MERKLE_TREE).set(
      SINGLETON_KEY,
      // A tree that starts at a snapshot holds nothing before it.
      tree.serialise(Math.max(this.lastSignatureSeqno, tree.minIndex)),
    );
    const { version } = this.o.store.commit(tx);
    const force = this.chunkAfterNextSignature || this.o.chunkAfterSignature?.(version) === true;
    this.chunkAfterNextSignature = false;
    this.appendEntry(tx, version, undefined, true, force);
    this.sinceSignature = 0;
    this.lastSignatureAt = this.o.clock.now();
    this.lastSignatureSeqno = version;
    this.o.onSignature?.(version, ((clock.monotonic?.() ?? clock.now()) - started) / 1000);
    return { view: this.view, seqno: version };
  }

  /** Resolves once every appended entry is durable. */
  flush(): Promise<void> {
    return this.o.storage.flush();
  }

  /** Marks everything up to `seqno` committed: history can be compacted, chunks sealed. */
  committed(seqno: number): void {
    this.o.store.compact(seqno);
    this.o.storage.commit(seqno);
  }

  /** The commit evidence string of a transaction (needed for its receipt). */
  commitEvidenceFor(view: number, seqno: number): string {
    const secret = this.o.secrets.forSeqno(seqno);
    let cs = this.commitSecretCache.get(secret.version);
    if (cs === undefined) {
      cs = commitSecret(secret.key);
      this.commitSecretCache.set(secret.version, cs);
    }
    return commitEvidence(cs, view, seqno);
  }

  private appendEntry(
    tx: Tx,
    seqno: number,
    claimsDigest: Uint8Array | undefined,
    signature: boolean,
    forceChunkAfter = false,
  ): void {
    const ced = commitEvidenceDigest(this.commitEvidenceFor(this.view, seqno));
    const claims = claimsDigest ?? EMPTY_CLAIMS;
    const entry = encodeEntry({
      writeSet: tx.writeSet(),
      header: {
        entryType: EntryType.WriteSetWithCommitEvidenceAndClaims,
        version: seqno,
        claimsDigest: claims,
        commitEvidenceDigest: ced,
        maxConflictVersion: 0,
      },
      view: this.view,
      secret: this.o.secrets.forSeqno(seqno),
      flags: forceChunkAfter ? EntryFlags.ForceLedgerChunkAfter : 0,
    });
    this.o.tree.append(
      leafDigest(EntryType.WriteSetWithCommitEvidenceAndClaims, sha256(entry), ced, claims),
    );
    this.o.storage.append(seqno, entry, { signature, forceChunkAfter });
    this.o.onAppend?.(seqno, this.view, entry, signature);
  }
}
