// The follower's side of the pipeline: apply an entry replicated from the primary to this node's
// store, Merkle tree and ledger storage, and roll all three back when consensus truncates the log.
// Deterministic: no clock, randomness or I/O beyond the injected storage.

import { sha256 } from "../crypto/index.js";
import { keyToString, SINGLETON_KEY, type Store, Tables, type WriteSet } from "../kv/index.js";
import { decodePrimarySignature, leafDigest, type MerkleTree } from "../merkle/index.js";
import { decodeEntry, decryptEntry, prepareDecryption } from "./entry.js";
import type { LedgerSecret, LedgerSecrets } from "./secrets.js";
import { LedgerError, type LedgerStorage } from "./storage.js";

export interface ReplicaOptions {
  store: Store;
  tree: MerkleTree;
  storage: LedgerStorage;
  secrets: LedgerSecrets;
  /** Told of each applied entry's write set (a rekey's secret for this node is in one). */
  onApplied?: (seqno: number, writeSet: WriteSet) => void;
}

export interface AppliedEntry {
  seqno: number;
  view: number;
  isSignature: boolean;
}

const SINGLETON = keyToString(SINGLETON_KEY);
const noop = (): void => undefined;

export class LedgerReplica {
  constructor(private readonly o: ReplicaOptions) {
    // Leaf 0 is a placeholder so that leaf i is seqno i, as the pipeline lays the tree out.
    if (o.tree.size === 0) o.tree.append(Buffer.alloc(32));
  }

  get lastSeqno(): number {
    return this.o.store.version;
  }

  /**
   * Readies the private domains of entries about to be applied in this order for decryption in one
   * batch; call the returned function once they are applied. Entries under more than one ledger
   * secret (a rekey among them) are left to decrypt one at a time.
   */
  prepare(entries: ReadonlyArray<{ seqno: number; bytes: Buffer }>): () => void {
    const first = entries[0];
    const last = entries[entries.length - 1];
    if (first === undefined || last === undefined || entries.length < 2) return noop;
    let secret: LedgerSecret;
    try {
      secret = this.o.secrets.forSeqno(first.seqno);
      if (this.o.secrets.forSeqno(last.seqno) !== secret) return noop;
    } catch {
      return noop;
    }
    return prepareDecryption(
      entries.map((e) => e.bytes),
      secret,
    );
  }

  /**
   * Applies the entry for `seqno`, which must follow the last one. A signature entry must sign the
   * root of this node's own tree: a mismatch means the logs diverged, and is refused.
   */
  apply(seqno: number, bytes: Buffer): AppliedEntry {
    if (seqno !== this.o.store.version + 1) {
      throw new LedgerError(
        "LedgerOutOfOrder",
        `replicated seqno ${seqno} after ${this.o.store.version}`,
      );
    }
    const entry = decodeEntry(bytes);
    if (entry.header.version !== seqno) {
      throw new LedgerError(
        "ReplicatedEntryMismatch",
        `entry for seqno ${seqno} says ${entry.header.version}`,
      );
    }
    const writeSet = decryptEntry(entry, this.o.secrets.forSeqno(seqno));
    const sigBytes = writeSet.get(Tables.SIGNATURES)?.get(SINGLETON);
    const isSignature = sigBytes !== undefined && sigBytes !== null;
    if (isSignature) {
      const sig = decodePrimarySignature(Buffer.from(sigBytes));
      const root = this.o.tree.root().toString("hex");
      if (sig.root !== root || sig.seqno !== seqno || sig.view !== entry.view) {
        throw new LedgerError(
          "ReplicatedSignatureMismatch",
          `signature at ${seqno} signs ${sig.view}.${sig.seqno} root ${sig.root}; this node has ${entry.view}.${seqno} root ${root}`,
        );
      }
    }
    this.o.store.apply(writeSet, seqno);
    this.o.tree.append(
      leafDigest(
        entry.header.entryType,
        sha256(bytes),
        entry.header.commitEvidenceDigest,
        entry.header.claimsDigest,
      ),
    );
    this.o.storage.append(seqno, bytes, { signature: isSignature });
    this.o.onApplied?.(seqno, writeSet);
    return { seqno, view: entry.view, isSignature };
  }

  /** Drops every entry after `seqno` from the store, the tree and the ledger. */
  rollback(seqno: number): void {
    this.o.store.rollback(seqno);
    this.o.tree.truncate(seqno + 1);
    this.o.storage.truncate(seqno);
    this.o.secrets.rollback(seqno);
  }

  /** Entries up to `seqno` are committed: their undo history can go. */
  committed(seqno: number): void {
    this.o.store.compact(seqno);
    this.o.storage.commit(seqno);
  }
}
