// One level of the Merkle tree: a window of consecutive 32-byte node digests addressed by absolute
// node index, growing at the right (appends), cut at the right (rollback) and forgotten at the left
// (flush). Digests sit as eight 32-bit words each in one typed array, so a million-leaf tree is a
// few flat buffers rather than millions of small objects.

export const WORDS_PER_DIGEST = 8;

const MIN_CAPACITY = 16;

export class HashLevel {
  /** Node `index` lives at words[(index - origin) * 8]. */
  words: Int32Array;
  private origin: number;
  /** Absolute index of the first node still held. */
  first: number;
  /** Absolute index one past the last node. */
  count: number;

  constructor(first: number) {
    this.words = new Int32Array(MIN_CAPACITY * WORDS_PER_DIGEST);
    this.origin = first;
    this.first = first;
    this.count = first;
  }

  /** Word offset of node `index`; the caller guarantees first <= index < count. */
  offset(index: number): number {
    return (index - this.origin) * WORDS_PER_DIGEST;
  }

  /** Appends one node and returns its word offset, for the caller to fill. */
  push(): number {
    if ((this.count - this.origin + 1) * WORDS_PER_DIGEST > this.words.length) {
      const needed = this.count - this.first + 1;
      if (needed * 2 * WORDS_PER_DIGEST <= this.words.length) {
        this.compact();
      } else {
        this.reallocate(Math.max(MIN_CAPACITY, 2 * needed));
      }
    }
    this.count += 1;
    return this.offset(this.count - 1);
  }

  /** Forgets the nodes before `index`. */
  dropBefore(index: number): void {
    if (index <= this.first) return;
    this.first = Math.min(index, this.count);
    this.shrinkIfSparse();
  }

  /** Drops the nodes at `count` and beyond. */
  truncate(count: number): void {
    if (count >= this.count) return;
    this.count = Math.max(count, this.first);
    this.shrinkIfSparse();
  }

  // Keeps memory proportional to the nodes held even when the window only ever shrinks. Doubling on
  // growth and halving on sparsity keep the copying amortised O(1) per node.
  private shrinkIfSparse(): void {
    const held = this.count - this.first;
    const capacity = this.words.length / WORDS_PER_DIGEST;
    if (capacity > MIN_CAPACITY && held * 4 < capacity) {
      this.reallocate(Math.max(MIN_CAPACITY, 2 * held));
    }
  }

  private compact(): void {
    this.words.copyWithin(0, this.offset(this.first), this.offset(this.count));
    this.origin = this.first;
  }

  private reallocate(capacity: number): void {
    const words = new Int32Array(capacity * WORDS_PER_DIGEST);
    words.set(this.words.subarray(this.offset(this.first), this.offset(this.count)));
    this.words = words;
    this.origin = this.first;
  }
}
