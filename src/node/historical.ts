// Historical state: committed transactions read back from the ledger, for receipts, CCF's
// `mode: "historical"` endpoints and `ccf.historical.getStateRange`. As CCF's state cache, the state
// of a transaction is a store holding only that transaction's writes, with its receipt. Each entry
// read is decrypted with the ledger secret of its seqno and checked against this node's Merkle tree
// before it is used. Entries near the commit point are read at once (beyond CCF, which always
// answers "retry later" first); older ones are read in the background, and the caller is told to
// come back (CCF's 202 + Retry-After). States live in a bounded cache; range handles keep theirs
// until they expire or are dropped.

import { sha256 } from "../crypto/index.js";
import { CcfError, HttpError } from "../errors.js";
import { keyToString, SINGLETON_KEY, Store, Tables, type Tx, type WriteSet } from "../kv/index.js";
import {
  type DecodedEntry,
  decodeEntry,
  decryptEntry,
  type LedgerSecrets,
  type LedgerStorage,
} from "../ledger/index.js";
import {
  buildReceipt,
  commitEvidence,
  commitEvidenceDigest,
  commitSecret,
  decodePrimarySignature,
  EMPTY_CLAIMS,
  leafDigest,
  type MerkleProof,
  type MerkleTree,
  type Receipt,
} from "../merkle/index.js";

export interface HistoricalSource {
  storage(): LedgerStorage;
  tree: MerkleTree;
  secrets(): LedgerSecrets;
  /** The committed seqno. */
  commitSeqno(): number;
  /** The first signature transaction at or after `seqno`, if this node holds one. */
  signatureAtOrAfter(seqno: number): number | undefined;
  /** Milliseconds, for handle expiry. */
  now(): number;
  /** A background fetch failed (the caller keeps being told to retry). */
  onError?(err: unknown, seqno: number): void;
  /**
   * Certificates linking a node certificate of an earlier service identity to the current one
   * (CCF's service_endorsements after a recovery); undefined when none is needed or known.
   */
  serviceEndorsements?(nodeCertPem: string): string[] | undefined;
}

export interface HistoricalOptions {
  /** Seqnos this close to the commit point are read at once (default 10000). */
  recentWindow?: number;
  /** Most single states kept (default 2048); range handles hold theirs on top. */
  maxStates?: number;
  /** Most live range handles (default 256); the least recently used goes first. */
  maxHandles?: number;
}

/** The signing transaction of a receipt, as read from the ledger. */
interface SignatureInfo {
  seqno: number;
  sig: string;
  node: string;
  cert: string;
  root: string;
  /** The COSE Sign1 over the root by the service key, when the ledger has one. */
  cose: Buffer | undefined;
}

/** One committed transaction as historical queries see it. */
export class HistoricalState {
  private store: Store | undefined;

  constructor(
    readonly seqno: number,
    readonly view: number,
    readonly writeSet: WriteSet,
    readonly isSignature: boolean,
    /** CCF's JSON receipt (`GET /receipt`). */
    readonly receipt: Receipt,
    /** What `ccf.historicalState.receipt` shows (CCF's `ccf_receipt_to_js`). */
    readonly jsReceipt: Record<string, unknown>,
    /** For a COSE receipt: the signature's COSE Sign1, the proof and the leaf's parts. */
    readonly cose:
      | {
          signature: Buffer;
          proof: MerkleProof;
          writeSetDigest: Buffer;
          commitEvidence: string;
          claimsDigest: Buffer;
        }
      | undefined,
  ) {}

  get transactionId(): string {
    return `${this.view}.${this.seqno}`;
  }

  /** A read-only transaction over a store holding this transaction's writes. */
  tx(): Tx {
    if (this.store === undefined) {
      this.store = new Store();
      this.store.apply(this.writeSet, this.seqno);
    }
    return this.store.begin();
  }
}

/** What a lookup gives: the state, or word that it is being fetched (answer 202, retry). */
export type Lookup = HistoricalState | "fetching";

interface RangeHandle {
  start: number;
  end: number;
  expiresAt: number;
  states: HistoricalState[] | undefined;
}

const SINGLETON = keyToString(SINGLETON_KEY);

export class HistoricalStates {
  private readonly recentWindow: number;
  private readonly maxStates: number;
  private readonly maxHandles: number;
  private readonly states = new Map<number, HistoricalState>();
  private readonly signatures = new Map<number, SignatureInfo>();
  private readonly fetching = new Map<number, Promise<void>>();
  private readonly handles = new Map<number, RangeHandle>();
  private readonly commitSecrets = new Map<number, Buffer>();
  /** Seqnos whose entry could not be read back (a damaged ledger does not heal): their error. */
  private readonly failed = new Map<number, CcfError>();

  constructor(
    private readonly src: HistoricalSource,
    options: HistoricalOptions = {},
  ) {
    this.recentWindow = options.recentWindow ?? 10_000;
    this.maxStates = options.maxStates ?? 2048;
    this.maxHandles = options.maxHandles ?? 256;
  }

  /**
   * The state of committed `seqno`: at once if cached or recent, else "fetching" (a background
   * read has started). Throws CcfError if the ledger does not match the tree.
   */
  get(seqno: number): Lookup {
    const cached = this.states.get(seqno);
    if (cached !== undefined) {
      this.states.delete(seqno);
      this.states.set(seqno, cached);
      return cached;
    }
    this.throwIfFailed(seqno);
    const state = this.tryBuild(seqno);
    if (state !== undefined) {
      this.remember(state);
      return state;
    }
    this.fetch([seqno], (s) => this.remember(s));
    return "fetching";
  }

  /**
   * `ccf.historical.getStateRange`: the states of [start, end], or undefined while they are being
   * fetched (the app answers 202). The handle keeps them until `expirySeconds` pass or it is
   * dropped; asking with another range replaces them.
   */
  range(
    handle: number,
    start: number,
    end: number,
    expirySeconds: number,
  ): HistoricalState[] | undefined {
    if (end < start) {
      throw new CcfError("InvalidRange", `end seqno ${end} is before start seqno ${start}`);
    }
    const now = this.src.now();
    this.expireHandles(now);
    let h = this.handles.get(handle);
    if (h === undefined || h.start !== start || h.end !== end) {
      h = { start, end, expiresAt: 0, states: undefined };
    }
    this.handles.delete(handle);
    this.handles.set(handle, h);
    h.expiresAt = now + expirySeconds * 1000;
    while (this.handles.size > this.maxHandles) {
      this.handles.delete(this.handles.keys().next().value as number);
    }
    if (h.states !== undefined) return h.states;
    if (end > this.src.commitSeqno()) return undefined;
    const states: Array<HistoricalState | undefined> = [];
    const missing: number[] = [];
    for (let s = start; s <= end; s++) this.throwIfFailed(s);
    for (let s = start; s <= end; s++) {
      const state = this.states.get(s) ?? this.tryBuild(s);
      states.push(state);
      if (state === undefined) missing.push(s);
    }
    if (missing.length === 0) {
      h.states = states as HistoricalState[];
      return h.states;
    }
    const target = h;
    this.fetch(missing, (state) => {
      if (this.handles.get(handle) !== target) return;
      states[state.seqno - start] = state;
      if (states.every((x) => x !== undefined)) target.states = states;
    });
    return undefined;
  }

  /** `ccf.historical.dropCachedStates`: whether the handle existed. */
  drop(handle: number): boolean {
    this.expireHandles(this.src.now());
    return this.handles.delete(handle);
  }

  /** Forgets the cached single states (their receipts change: a new service endorsement). */
  dropAll(): void {
    this.states.clear();
  }

  /** Number of states held (cache and handles), for metrics and tests. */
  get size(): number {
    let n = this.states.size;
    for (const h of this.handles.values()) n += h.states?.length ?? 0;
    return n;
  }

  private expireHandles(now: number): void {
    for (const [k, h] of this.handles) if (h.expiresAt <= now) this.handles.delete(k);
  }

  private remember(state: HistoricalState): void {
    this.states.set(state.seqno, state);
    while (this.states.size > this.maxStates) {
      this.states.delete(this.states.keys().next().value as number);
    }
  }

  private throwIfFailed(seqno: number): void {
    const err = this.failed.get(seqno);
    if (err !== undefined) throw err;
  }

  /** Builds the state from entries read synchronously, if the seqno is recent enough. */
  private tryBuild(seqno: number): HistoricalState | undefined {
    this.checkCommitted(seqno);
    if (this.src.commitSeqno() - seqno >= this.recentWindow) return undefined;
    const sigSeqno = this.signatureFor(seqno);
    let sig = this.signatures.get(sigSeqno);
    if (sig === undefined) {
      const bytes = this.readEntry(sigSeqno);
      if (bytes === undefined) return undefined;
      sig = this.readSignature(sigSeqno, bytes);
    }
    const bytes = this.readEntry(seqno);
    if (bytes === undefined) return undefined;
    return this.build(seqno, bytes, sig);
  }

  private async readEntryAsync(seqno: number): Promise<Buffer | undefined> {
    try {
      return await this.src.storage().readAsync(seqno);
    } catch (e) {
      throw unreadable(seqno, e);
    }
  }

  /** An entry's bytes from the ledger; a damaged or cut chunk file is named as such. */
  private readEntry(seqno: number): Buffer | undefined {
    try {
      return this.src.storage().read(seqno);
    } catch (e) {
      throw unreadable(seqno, e);
    }
  }

  /** Reads the entries of `seqnos` (and their signatures) one after another in the background. */
  private fetch(seqnos: number[], done: (state: HistoricalState) => void): void {
    const todo = seqnos.filter((s) => !this.fetching.has(s));
    if (todo.length === 0) return;
    const job = (async () => {
      for (const seqno of todo) {
        try {
          const sigSeqno = this.signatureFor(seqno);
          let sig = this.signatures.get(sigSeqno);
          if (sig === undefined) {
            const sigBytes = await this.readEntryAsync(sigSeqno);
            if (sigBytes === undefined) throw missingEntry(sigSeqno);
            sig = this.readSignature(sigSeqno, sigBytes);
          }
          const bytes = await this.readEntryAsync(seqno);
          if (bytes === undefined) throw missingEntry(seqno);
          const state = this.build(seqno, bytes, sig);
          this.remember(state);
          done(state);
        } catch (err) {
          this.src.onError?.(err, seqno);
          if (err instanceof CcfError && err.code === "HistoricalEntryMismatch") {
            this.failed.set(seqno, err);
            while (this.failed.size > 1024) {
              this.failed.delete(this.failed.keys().next().value as number);
            }
          }
        }
      }
    })();
    for (const s of todo) this.fetching.set(s, job);
    void job.finally(() => {
      for (const s of todo) if (this.fetching.get(s) === job) this.fetching.delete(s);
    });
  }

  private checkCommitted(seqno: number): void {
    if (!Number.isSafeInteger(seqno) || seqno < 1 || seqno > this.src.commitSeqno()) {
      throw new CcfError("TransactionPendingOrUnknown", `seqno ${seqno} is not committed`, 404);
    }
  }

  private signatureFor(seqno: number): number {
    const sigSeqno = this.src.signatureAtOrAfter(seqno);
    if (sigSeqno === undefined || sigSeqno > this.src.commitSeqno()) {
      throw new CcfError(
        "TransactionPendingOrUnknown",
        `no committed signature covers seqno ${seqno}`,
        404,
      );
    }
    return sigSeqno;
  }

  private readSignature(seqno: number, bytes: Buffer): SignatureInfo {
    const { entry } = this.decodeChecked(seqno, bytes);
    const ws = entry.writeSet;
    const raw = ws.get(Tables.SIGNATURES)?.get(SINGLETON);
    if (raw === undefined || raw === null) {
      throw new HttpError(500, "HistoricalEntryMismatch", `seqno ${seqno} is not a signature`);
    }
    const sig = decodePrimarySignature(raw);
    const expectedRoot = this.src.tree.rootAt(seqno).toString("hex");
    if (sig.seqno !== seqno || sig.root !== expectedRoot) {
      throw new HttpError(
        500,
        "HistoricalEntryMismatch",
        `the signature at seqno ${seqno} does not sign this node's Merkle root`,
      );
    }
    const coseRaw = ws.get(Tables.COSE_SIGNATURES)?.get(SINGLETON);
    const cose =
      coseRaw === undefined || coseRaw === null
        ? undefined
        : Buffer.from(JSON.parse(Buffer.from(coseRaw).toString("utf8")) as string, "base64");
    const info: SignatureInfo = {
      seqno,
      sig: sig.sig,
      node: sig.node,
      cert: sig.cert ?? "",
      root: sig.root,
      cose,
    };
    this.signatures.set(seqno, info);
    while (this.signatures.size > 256) {
      this.signatures.delete(this.signatures.keys().next().value as number);
    }
    return info;
  }

  /**
   * Decodes the entry read for `seqno`, which must be the one whose leaf this node's tree holds;
   * with its write set digest (SHA-256 of the raw entry).
   */
  private decodeChecked(
    seqno: number,
    bytes: Buffer,
  ): { entry: DecodedEntry; writeSetDigest: Buffer } {
    let entry: DecodedEntry;
    try {
      entry = decodeEntry(bytes);
    } catch (e) {
      // A damaged or cut ledger file: named as such, never passed on as data.
      throw unreadable(seqno, e);
    }
    const writeSetDigest = sha256(bytes);
    const leaf = leafDigest(
      entry.header.entryType,
      writeSetDigest,
      entry.header.commitEvidenceDigest,
      entry.header.claimsDigest,
    );
    if (entry.header.version !== seqno || !leaf.equals(this.src.tree.leaf(seqno))) {
      throw new HttpError(
        500,
        "HistoricalEntryMismatch",
        `the ledger entry at seqno ${seqno} does not match this node's Merkle tree`,
      );
    }
    return { entry, writeSetDigest };
  }

  private build(seqno: number, bytes: Buffer, sig: SignatureInfo): HistoricalState {
    const { entry, writeSetDigest } = this.decodeChecked(seqno, bytes);
    const secret = this.src.secrets().forSeqno(seqno);
    const writeSet = decryptEntry(entry, secret);
    const endorsements = this.src.serviceEndorsements?.(sig.cert);
    const signature = { sig: sig.sig, node: sig.node, cert: sig.cert };
    const extra = endorsements === undefined ? {} : { serviceEndorsements: endorsements };
    const common = {
      signature: sig.sig,
      cert: sig.cert,
      node_id: sig.node,
      ...(endorsements === undefined ? {} : { service_endorsements: endorsements }),
    };
    if (seqno === sig.seqno) {
      return new HistoricalState(
        seqno,
        entry.view,
        writeSet,
        true,
        buildReceipt({ proof: [], signature, root: sig.root, ...extra }),
        { ...common, is_signature_transaction: true, root_hex: sig.root },
        undefined,
      );
    }
    let cs = this.commitSecrets.get(secret.version);
    if (cs === undefined) {
      cs = commitSecret(secret.key);
      this.commitSecrets.set(secret.version, cs);
    }
    const evidence = commitEvidence(cs, entry.view, seqno);
    const ced = entry.header.commitEvidenceDigest;
    if (ced !== undefined && !commitEvidenceDigest(evidence).equals(ced)) {
      throw new HttpError(
        500,
        "HistoricalEntryMismatch",
        `the commit evidence of seqno ${seqno} does not match its ledger entry`,
      );
    }
    const claims = entry.header.claimsDigest;
    const proof = this.src.tree.path(seqno, sig.seqno);
    const leafComponents: Record<string, string> = {
      write_set_digest: writeSetDigest.toString("hex"),
      commit_evidence: evidence,
    };
    // CCF reads the claims digest of every entry that has one (zeros when the app set none).
    if (claims !== undefined) {
      leafComponents.claims_digest = Buffer.from(claims).toString("hex");
    }
    return new HistoricalState(
      seqno,
      entry.view,
      writeSet,
      false,
      buildReceipt({
        proof,
        signature,
        ...extra,
        leafComponents: {
          writeSetDigest,
          commitEvidence: evidence,
          ...(claims === undefined ? {} : { claimsDigest: claims }),
        },
      }),
      {
        ...common,
        is_signature_transaction: false,
        leaf_components: leafComponents,
        proof: proof.map((step) => ({ ...step })),
      },
      sig.cose === undefined
        ? undefined
        : {
            signature: sig.cose,
            proof,
            writeSetDigest,
            commitEvidence: evidence,
            claimsDigest: Buffer.from(claims ?? EMPTY_CLAIMS),
          },
    );
  }
}

function missingEntry(seqno: number): CcfError {
  return new CcfError("HistoricalEntryMissing", `the ledger has no entry at seqno ${seqno}`, 500);
}

/** The error for a ledger entry that cannot be read back (a damaged or truncated chunk file). */
function unreadable(seqno: number, e: unknown): HttpError {
  if (e instanceof HttpError && e.code === "HistoricalEntryMismatch") return e;
  return new HttpError(
    500,
    "HistoricalEntryMismatch",
    `the ledger entry at seqno ${seqno} cannot be read: ${e instanceof Error ? e.message : String(e)}`,
  );
}
