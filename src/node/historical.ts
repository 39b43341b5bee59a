// Historical state: committed transactions read back from the ledger, for receipts, CCF's
// `mode: "historical"` endpoints and `ccf.historical.getStateRange`. As CCF's state cache, the state
// of a transaction is a store holding only that transaction's writes, with its receipt. Each entry
// read is decrypted with the ledger secret of its seqno and checked before it is used: against this
// node's Merkle tree while the tree still holds its leaf, else (the tree is flushed behind commit)
// against the tree stored by the signature transaction that covers it (`public:ccf.internal.tree`,
// the leaves from the previous signature up to it), whose root must be the root that signature
// signs, the node's ECDSA signature over it verified with the certificate it carries. A signature
// transaction's own leaf is in the tree the next signature stores. Receipts are the same bytes
// either way. Entries near the commit point are read at once (beyond CCF, which always
// answers "retry later" first); older ones are read in the background, and the caller is told to
// come back (CCF's 202 + Retry-After). States live in a bounded cache; range handles keep theirs
// until they expire or are dropped.

import { type KeyObject, verify as cryptoVerify } from "node:crypto";
import { nodeIdFromPublicKey, publicKeyFromPem, sha256, verifyDigest } from "../crypto/index.js";
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
  foldProof,
  leafDigest,
  type MerkleProof,
  MerkleTree,
  type PrimarySignature,
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
  /** The leaf of the signature entry itself, as computed from the bytes read. */
  entryLeaf: Buffer;
  /**
   * Whether `entryLeaf` is checked (against this node's tree, or the next signature's stored
   * tree): until then only the root, the node's signature and the stored tree are trusted, not
   * the rest of the entry (its COSE signature).
   */
  leafChecked: boolean;
}

/**
 * A lookup that may need ledger entries: it yields the seqno of each entry it needs and is resumed
 * with its bytes. The same steps run synchronously (recent seqnos) and in the background.
 */
type Steps<T> = Generator<number, T, Buffer>;

/** Most leaves held by the cache of stored trees (each ~64 bytes). */
const STORED_TREE_LEAVES = 1 << 16;

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
  /** Trees stored by signature transactions (by seqno), least recently used first. */
  private readonly trees = new Map<number, MerkleTree>();
  private treeLeaves = 0;
  /** Public keys (and node ids) of the certificates in signature transactions. */
  private readonly keys = new Map<string, { key: KeyObject; id: string }>();
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
    const steps = this.stateSteps(seqno);
    let step = steps.next();
    while (step.done !== true) {
      const bytes = this.readEntry(step.value);
      if (bytes === undefined) return undefined;
      step = steps.next(bytes);
    }
    return step.value;
  }

  /** Runs `steps` with entries read in the background. */
  private async runAsync<T>(steps: Steps<T>): Promise<T> {
    let step = steps.next();
    while (step.done !== true) {
      const seqno = step.value;
      const bytes = await this.readEntryAsync(seqno);
      if (bytes === undefined) throw missingEntry(seqno);
      step = steps.next(bytes);
    }
    return step.value;
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
          const state = await this.runAsync(this.stateSteps(seqno));
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

  /** The state of committed `seqno`: its signature, its entry, each checked, and its receipt. */
  private *stateSteps(seqno: number): Steps<HistoricalState> {
    const sig = yield* this.signatureSteps(this.signatureFor(seqno));
    if (!sig.leafChecked) yield* this.checkSignatureLeaf(sig);
    const bytes = yield seqno;
    const decoded = decodeEntryAt(seqno, bytes);
    const { leaf, proof } = yield* this.leafAndProof(seqno, sig);
    if (!decoded.leaf.equals(leaf)) throw entryMismatch(seqno);
    return this.build(seqno, decoded, sig, proof);
  }

  /**
   * The signature transaction at `seqno`, read and checked: its root is this node's root there
   * (while the tree holds it), else the node's ECDSA signature over the root verifies with the
   * certificate the entry carries and the tree the entry stores has that root. Cached.
   */
  private *signatureSteps(seqno: number): Steps<SignatureInfo> {
    const cached = this.signatures.get(seqno);
    if (cached !== undefined) return cached;
    const bytes = yield seqno;
    const decoded = decodeEntryAt(seqno, bytes);
    const tree = this.src.tree;
    // While this node's tree holds the signature's leaf and root, they are all there is to check.
    const held = seqno >= tree.minIndex;
    if (held && !decoded.leaf.equals(tree.leaf(seqno))) throw entryMismatch(seqno);
    const ws = decoded.entry.writeSet;
    const raw = ws.get(Tables.SIGNATURES)?.get(SINGLETON);
    if (raw === undefined || raw === null) {
      throw new HttpError(500, "HistoricalEntryMismatch", `seqno ${seqno} is not a signature`);
    }
    let sig: PrimarySignature;
    let cose: Buffer | undefined;
    try {
      sig = decodePrimarySignature(raw);
      const coseRaw = ws.get(Tables.COSE_SIGNATURES)?.get(SINGLETON);
      cose =
        coseRaw === undefined || coseRaw === null
          ? undefined
          : Buffer.from(JSON.parse(Buffer.from(coseRaw).toString("utf8")) as string, "base64");
    } catch (e) {
      throw mismatch(`the signature at seqno ${seqno} cannot be read: ${errorText(e)}`);
    }
    if (sig.seqno !== seqno) {
      throw mismatch(`the signature at seqno ${seqno} claims seqno ${sig.seqno}`);
    }
    if (held) {
      if (sig.root !== tree.rootAt(seqno).toString("hex")) {
        throw mismatch(`the signature at seqno ${seqno} does not sign this node's Merkle root`);
      }
    } else {
      const stored = storedTreeOf(seqno, ws);
      if (stored.root().toString("hex") !== sig.root) {
        throw mismatch(`the tree stored at seqno ${seqno} does not have the root it signs`);
      }
      this.verifyNodeSignature(seqno, sig, stored);
      this.rememberTree(seqno, stored);
    }
    const info: SignatureInfo = {
      seqno,
      sig: sig.sig,
      node: sig.node,
      cert: sig.cert ?? "",
      root: sig.root,
      cose,
      entryLeaf: decoded.leaf,
      leafChecked: held,
    };
    this.signatures.set(seqno, info);
    while (this.signatures.size > 256) {
      this.signatures.delete(this.signatures.keys().next().value as number);
    }
    return info;
  }

  /**
   * Checks the leaf of a signature entry the tree no longer holds against the tree stored by the
   * next signature (which holds the leaves from at most this one on).
   */
  private *checkSignatureLeaf(sig: SignatureInfo): Steps<void> {
    const next = this.src.signatureAtOrAfter(sig.seqno + 1);
    if (next === undefined || next > this.src.commitSeqno()) {
      throw mismatch(`no committed signature after seqno ${sig.seqno} holds its leaf`);
    }
    const stored = yield* this.storedTreeSteps(next);
    if (sig.seqno < stored.minIndex) {
      throw mismatch(`the tree stored at seqno ${next} does not hold seqno ${sig.seqno}`);
    }
    if (!sig.entryLeaf.equals(stored.leaf(sig.seqno))) throw entryMismatch(sig.seqno);
    sig.leafChecked = true;
  }

  /**
   * The leaf of `seqno` and its proof to the root `sig` signs: from this node's tree while it
   * holds the leaf, else from the tree stored by the signature (the same digests either way).
   */
  private *leafAndProof(
    seqno: number,
    sig: SignatureInfo,
  ): Steps<{ leaf: Buffer; proof: MerkleProof }> {
    if (seqno === sig.seqno) return { leaf: sig.entryLeaf, proof: [] };
    const tree = this.src.tree;
    if (seqno >= tree.minIndex) {
      return { leaf: tree.leaf(seqno), proof: tree.path(seqno, sig.seqno) };
    }
    const stored = yield* this.storedTreeSteps(sig.seqno);
    if (seqno < stored.minIndex) {
      throw mismatch(`the tree stored at seqno ${sig.seqno} does not hold seqno ${seqno}`);
    }
    return { leaf: stored.leaf(seqno), proof: stored.path(seqno) };
  }

  /** The tree the signature at `seqno` stores, checked against its (checked) root. Cached. */
  private *storedTreeSteps(seqno: number): Steps<MerkleTree> {
    const sig = yield* this.signatureSteps(seqno);
    const cached = this.trees.get(seqno);
    if (cached !== undefined) {
      this.trees.delete(seqno);
      this.trees.set(seqno, cached);
      return cached;
    }
    const { entry } = decodeEntryAt(seqno, yield seqno);
    const stored = storedTreeOf(seqno, entry.writeSet);
    if (stored.root().toString("hex") !== sig.root) {
      throw mismatch(`the tree stored at seqno ${seqno} does not have the root it signs`);
    }
    this.rememberTree(seqno, stored);
    return stored;
  }

  private rememberTree(seqno: number, tree: MerkleTree): void {
    const known = this.trees.get(seqno);
    if (known !== undefined) {
      this.trees.delete(seqno);
      this.treeLeaves -= known.size - known.minIndex;
    }
    this.trees.set(seqno, tree);
    this.treeLeaves += tree.size - tree.minIndex;
    while (this.treeLeaves > STORED_TREE_LEAVES && this.trees.size > 1) {
      const [oldest, t] = this.trees.entries().next().value as [number, MerkleTree];
      this.trees.delete(oldest);
      this.treeLeaves -= t.size - t.minIndex;
    }
  }

  /**
   * The node's ECDSA signature over the root, with the key of the certificate the signature
   * carries (which must be the signing node's). As the ledger reader, the root's 64-byte preimage
   * (its two children, from the stored tree) is checked natively; the prehashed check otherwise.
   */
  private verifyNodeSignature(seqno: number, sig: PrimarySignature, stored: MerkleTree): void {
    if (sig.cert === undefined) {
      throw mismatch(`the signature at seqno ${seqno} carries no node certificate`);
    }
    let key: { key: KeyObject; id: string };
    try {
      key = this.keyOf(sig.cert);
    } catch (e) {
      throw mismatch(`the certificate in the signature at seqno ${seqno}: ${errorText(e)}`);
    }
    if (key.id !== sig.node) {
      throw mismatch(
        `the certificate in the signature at seqno ${seqno} is not node ${sig.node}'s`,
      );
    }
    const root = Buffer.from(sig.root, "hex");
    const der = Buffer.from(sig.sig, "base64");
    const preimage = rootPreimage(stored, root);
    let ok: boolean;
    try {
      ok =
        preimage === undefined
          ? verifyDigest(key.key, root, der)
          : cryptoVerify("sha256", preimage, key.key, der);
    } catch {
      ok = false;
    }
    if (!ok) {
      throw mismatch(
        `node ${sig.node}'s signature over the root at seqno ${seqno} does not verify`,
      );
    }
  }

  private keyOf(pem: string): { key: KeyObject; id: string } {
    let k = this.keys.get(pem);
    if (k === undefined) {
      const key = publicKeyFromPem(pem);
      k = { key, id: nodeIdFromPublicKey(key) };
      this.keys.set(pem, k);
      while (this.keys.size > 64) this.keys.delete(this.keys.keys().next().value as string);
    }
    return k;
  }

  private build(
    seqno: number,
    decoded: { entry: DecodedEntry; writeSetDigest: Buffer },
    sig: SignatureInfo,
    proof: MerkleProof,
  ): HistoricalState {
    const { entry, writeSetDigest } = decoded;
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

/** Decodes the entry read for `seqno`, with its write set digest (SHA-256 of the raw entry) and leaf. */
function decodeEntryAt(
  seqno: number,
  bytes: Buffer,
): { entry: DecodedEntry; writeSetDigest: Buffer; leaf: Buffer } {
  let entry: DecodedEntry;
  try {
    entry = decodeEntry(bytes);
  } catch (e) {
    // A damaged or cut ledger file: named as such, never passed on as data.
    throw unreadable(seqno, e);
  }
  if (entry.header.version !== seqno) throw entryMismatch(seqno);
  const writeSetDigest = sha256(bytes);
  const leaf = leafDigest(
    entry.header.entryType,
    writeSetDigest,
    entry.header.commitEvidenceDigest,
    entry.header.claimsDigest,
  );
  return { entry, writeSetDigest, leaf };
}

/** The tree a signature transaction stores (`public:ccf.internal.tree`): the leaves up to it. */
function storedTreeOf(seqno: number, ws: WriteSet): MerkleTree {
  const raw = ws.get(Tables.SERIALISED_MERKLE_TREE)?.get(SINGLETON);
  if (raw === undefined || raw === null) {
    throw mismatch(`the signature at seqno ${seqno} stores no Merkle tree`);
  }
  let tree: MerkleTree;
  try {
    tree = MerkleTree.deserialise(raw);
  } catch (e) {
    throw mismatch(`the tree stored at seqno ${seqno} cannot be read: ${errorText(e)}`);
  }
  if (tree.size !== seqno) {
    throw mismatch(`the tree stored at seqno ${seqno} ends at ${tree.size}`);
  }
  return tree;
}

/**
 * The 64 bytes whose SHA-256 is `root` (its two children), from a tree holding a leaf: the proof of
 * that leaf climbs to the root, and its last step is one child; folding the rest gives the other.
 */
function rootPreimage(tree: MerkleTree, root: Buffer): Buffer | undefined {
  const first = tree.minIndex;
  if (tree.size < 2 || first >= tree.size) return undefined;
  const steps = tree.path(first);
  const last = steps[steps.length - 1];
  if (last === undefined) return undefined;
  const child = foldProof(tree.leaf(first), steps.slice(0, -1));
  const preimage =
    "right" in last
      ? Buffer.concat([child, Buffer.from(last.right, "hex")])
      : Buffer.concat([Buffer.from(last.left, "hex"), child]);
  return sha256(preimage).equals(root) ? preimage : undefined;
}

function mismatch(message: string): HttpError {
  return new HttpError(500, "HistoricalEntryMismatch", message);
}

function entryMismatch(seqno: number): HttpError {
  return mismatch(`the ledger entry at seqno ${seqno} does not match this node's Merkle tree`);
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
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
