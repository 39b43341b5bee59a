// The ledger's history tree, as CCF builds it with merklecpp: leaf i is the digest of the
// transaction at seqno i, an interior node is SHA-256(left ‖ right), and at each level an odd last
// node is promoted unchanged. Equivalently, the root folds the perfect subtrees ("peaks") given by
// the binary digits of the size, right to left: root = H(peak_high, H(…, H(peak_2, peak_1))).
//
// Level k holds the digests of the complete subtrees of 2^k leaves, so an append costs one hash
// amortised and a root or a proof costs O(log n) hashes. Flushing forgets leaves at the left while
// keeping, at each level, the left siblings that later roots and proofs still need; this is exactly
// the state merklecpp serialises, which is what `public:ccf.internal.tree` holds.

import { FormatError } from "../errors.js";
import { DIGEST_SIZE, requireDigest } from "./digest.js";
import { HashLevel, WORDS_PER_DIGEST } from "./hash-level.js";
import type { MerkleProof } from "./proof.js";
import { bytesFromWords, hashPair, wordsFromBytes } from "../crypto/index.js";

// merklecpp's serialisation header: u64 BE number of leaves that follow, u64 BE index of the first.
const HEADER_SIZE = 16;

/** The right edge of the tree as it stood at `size` leaves. */
interface RightEdge {
  size: number;
  /** partial[k]: digest of the incomplete last node at level k (its n mod 2^k leaves), if any. */
  partial: (Int32Array | undefined)[];
  root: Int32Array;
}

export class MerkleTree {
  private levels: HashLevel[] = [new HashLevel(0)];
  private flushedCount = 0;
  private edge: RightEdge | undefined;

  /** Number of leaves appended, including flushed ones: the next leaf's index. */
  get size(): number {
    return this.levels[0].count;
  }

  /** Number of leaves flushed (forgotten at the left): the smallest index with a leaf and a proof.
   * merklecpp's min_index. */
  get minIndex(): number {
    return this.flushedCount;
  }

  append(leaf: Uint8Array): void {
    requireDigest(leaf, "leaf");
    let level = this.levels[0];
    // push() may move the level to a new buffer, so take the offset before reading `words`.
    const at = level.push();
    wordsFromBytes(leaf, level.words, at);
    for (let k = 1; level.count % 2 === 0; k++) {
      const parent = this.levels[k] ?? this.addLevel();
      const parentAt = parent.push();
      const left = level.offset(level.count - 2);
      hashPair(level.words, left, level.words, left + WORDS_PER_DIGEST, parent.words, parentAt);
      level = parent;
    }
    this.edge = undefined;
  }

  /** The leaf at `index`, which must be held: minIndex <= index < size. */
  leaf(index: number): Buffer {
    this.checkHeld(index, this.size);
    const leaves = this.levels[0];
    return bytesFromWords(leaves.words, leaves.offset(index));
  }

  /** Root over all leaves. */
  root(): Buffer {
    return bytesFromWords(this.edgeAt(this.size).root, 0);
  }

  /** Root over leaves [0, size): what the tree's root was when it had `size` leaves. */
  rootAt(size: number): Buffer {
    return bytesFromWords(this.edgeAt(size).root, 0);
  }

  /** Proof that leaf `index` is in the root over leaves [0, size), by default the current root. */
  path(index: number, size = this.size): MerkleProof {
    const edge = this.edgeAt(size);
    this.checkHeld(index, size);
    const proof: MerkleProof = [];
    // width: nodes at level k, counting an incomplete last one.
    for (
      let k = 0, span = 1, width = size;
      width > 1;
      k++, span *= 2, width = Math.ceil(width / 2)
    ) {
      const level = this.levels[k];
      const node = Math.floor(index / span);
      if (node % 2 === 1) {
        proof.push({ left: hexAt(level.words, level.offset(node - 1)) });
      } else if (node + 1 < width) {
        const complete = node + 1 < Math.floor(size / span);
        const sibling = complete
          ? hexAt(level.words, level.offset(node + 1))
          : hexAt(partialAt(edge, k), 0);
        proof.push({ right: sibling });
      }
    }
    return proof;
  }

  /** Drops the leaves at index >= size (a consensus rollback). Flushed leaves cannot be dropped. */
  truncate(size: number): void {
    checkCount(size, "size");
    if (size >= this.size) return;
    if (size < this.flushedCount) {
      throw new RangeError(
        `cannot truncate to ${size}: leaves before ${this.flushedCount} are flushed`,
      );
    }
    for (let k = 0, span = 1; k < this.levels.length; k++, span *= 2) {
      this.levels[k].truncate(Math.floor(size / span));
    }
    this.edge = undefined;
  }

  /** Forgets the leaves before `upTo`; roots, and proofs of leaves >= upTo, stay available. */
  flush(upTo: number): void {
    checkCount(upTo, "flush point");
    if (upTo > this.size) {
      throw new RangeError(`cannot flush to ${upTo}: the tree has ${this.size} leaves`);
    }
    if (upTo <= this.flushedCount) return;
    this.flushedCount = upTo;
    for (let k = 0, span = 1; k < this.levels.length; k++, span *= 2) {
      // Keep the left sibling of the first unflushed node: the proofs of later leaves use it.
      const node = Math.floor(upTo / span);
      this.levels[k].dropBefore(node - (node % 2));
    }
  }

  /**
   * merklecpp's serialisation of the tree holding leaves [from, to): u64 BE (to - from), u64 BE
   * from, the leaves, then for each set bit k of `from`, lowest first, the digest of the complete
   * subtree of 2^k leaves just left of `from` (the left siblings on the path to leaf `from`).
   * Deserialising gives a tree whose root is rootAt(to). At a signature transaction at seqno N, CCF
   * writes the tree from the point it has flushed to (the last signature known committed) up to N,
   * i.e. serialise(that, N).
   */
  serialise(from = this.flushedCount, to = this.size): Buffer {
    checkCount(from, "from");
    checkCount(to, "to");
    if (from < this.flushedCount || from > to || to > this.size) {
      throw new RangeError(
        `cannot serialise [${from}, ${to}) of a tree holding [${this.flushedCount}, ${this.size})`,
      );
    }
    const out = Buffer.alloc(HEADER_SIZE + DIGEST_SIZE * (to - from + popcount(from)));
    out.writeBigUInt64BE(BigInt(to - from), 0);
    out.writeBigUInt64BE(BigInt(from), 8);
    let pos = HEADER_SIZE;
    const leaves = this.levels[0];
    for (let i = from; i < to; i++) {
      pos = writeDigest(out, pos, leaves.words, leaves.offset(i));
    }
    for (let k = 0, span = 1; span <= from; k++, span *= 2) {
      const node = Math.floor(from / span);
      if (node % 2 === 1) {
        const level = this.levels[k];
        pos = writeDigest(out, pos, level.words, level.offset(node - 1));
      }
    }
    return out;
  }

  /** Takes over another tree's state (a node starting from a snapshot loads its tree in place). */
  adopt(other: MerkleTree): void {
    this.levels = other.levels;
    this.flushedCount = other.flushedCount;
    this.edge = undefined;
  }

  /** The tree from merklecpp's serialisation (see serialise); FormatError if malformed. */
  static deserialise(bytes: Uint8Array): MerkleTree {
    if (bytes.length < HEADER_SIZE) {
      throw new FormatError(
        "InvalidMerkleTree",
        `serialised tree is ${bytes.length} bytes, shorter than its header`,
      );
    }
    const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    const count = view.readBigUInt64BE(0);
    const from = view.readBigUInt64BE(8);
    if (count + from > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new FormatError(
        "InvalidMerkleTree",
        `serialised tree claims ${count} leaves from ${from}`,
      );
    }
    const leafCount = Number(count);
    const first = Number(from);
    const subtrees = popcount(first);
    const expected = HEADER_SIZE + DIGEST_SIZE * (leafCount + subtrees);
    if (bytes.length !== expected) {
      throw new FormatError(
        "InvalidMerkleTree",
        `serialised tree of ${leafCount} leaves from ${first} must be ${expected} bytes, got ${bytes.length}`,
      );
    }
    const tree = new MerkleTree();
    tree.startAfterFlushed(first, view.subarray(HEADER_SIZE + DIGEST_SIZE * leafCount));
    for (let pos = HEADER_SIZE; pos < HEADER_SIZE + DIGEST_SIZE * leafCount; pos += DIGEST_SIZE) {
      tree.append(view.subarray(pos, pos + DIGEST_SIZE));
    }
    return tree;
  }

  // Sets the tree to `flushed` leaves, all flushed: each level k holds only the complete subtree
  // just left of the flush point when bit k of `flushed` is set (digests given lowest level first),
  // which is the state flush(flushed) leaves behind.
  private startAfterFlushed(flushed: number, subtrees: Uint8Array): void {
    const levels: HashLevel[] = [];
    let pos = 0;
    for (let span = 1; span <= flushed; span *= 2) {
      const node = Math.floor(flushed / span);
      const level = new HashLevel(node - (node % 2));
      if (node % 2 === 1) {
        const at = level.push();
        wordsFromBytes(subtrees.subarray(pos, pos + DIGEST_SIZE), level.words, at);
        pos += DIGEST_SIZE;
      }
      levels.push(level);
    }
    this.levels = levels.length > 0 ? levels : [new HashLevel(0)];
    this.flushedCount = flushed;
    this.edge = undefined;
  }

  // A level appears when the size first reaches its span, so it starts empty.
  private addLevel(): HashLevel {
    const level = new HashLevel(0);
    this.levels.push(level);
    return level;
  }

  private checkHeld(index: number, size: number): void {
    checkCount(index, "leaf index");
    if (index < this.flushedCount || index >= size) {
      throw new RangeError(
        `leaf ${index} is not among the held leaves [${this.flushedCount}, ${size})`,
      );
    }
  }

  // Folds the peaks of `size` from the lowest, recording the partial node of each level on the way.
  // The current size's edge is cached until the next append or truncate; flushing keeps it valid.
  private edgeAt(size: number): RightEdge {
    if (this.edge !== undefined && this.edge.size === size) return this.edge;
    checkCount(size, "size");
    if (size === 0 || size < this.flushedCount || size > this.size) {
      throw new RangeError(
        `no root at size ${size}: the tree holds roots for [${Math.max(1, this.flushedCount)}, ${this.size}]`,
      );
    }
    const partial: (Int32Array | undefined)[] = [];
    let acc: Int32Array | undefined;
    for (let k = 0, span = 1; span <= size; k++, span *= 2) {
      partial.push(acc);
      const node = Math.floor(size / span);
      if (node % 2 === 1) {
        const level = this.levels[k];
        const at = level.offset(node - 1);
        const next = new Int32Array(WORDS_PER_DIGEST);
        if (acc === undefined) next.set(level.words.subarray(at, at + WORDS_PER_DIGEST));
        else hashPair(level.words, at, acc, 0, next, 0);
        acc = next;
      }
    }
    if (acc === undefined) throw new Error("unreachable: a non-empty tree has a peak");
    const edge = { size, partial, root: acc };
    if (size === this.size) this.edge = edge;
    return edge;
  }
}

function partialAt(edge: RightEdge, k: number): Int32Array {
  const node = edge.partial[k];
  if (node === undefined)
    throw new Error(`unreachable: level ${k} has no partial node at size ${edge.size}`);
  return node;
}

function hexAt(words: Int32Array, at: number): string {
  return bytesFromWords(words, at).toString("hex");
}

function writeDigest(out: Buffer, pos: number, words: Int32Array, at: number): number {
  for (let i = 0; i < WORDS_PER_DIGEST; i++) out.writeInt32BE(words[at + i], pos + 4 * i);
  return pos + DIGEST_SIZE;
}

function popcount(n: number): number {
  let bits = 0;
  for (let x = n; x > 0; x = Math.floor(x / 2)) bits += x % 2;
  return bits;
}

function checkCount(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError(`${what} must be a non-negative integer, got ${n}`);
}
