// The Merkle tree's properties against a naive reference: roots, proofs, past roots, truncation,
// flushing, serialisation.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { FormatError } from "../../src/errors.js";
import { MerkleTree, type MerkleProof, foldProof } from "../../src/merkle/index.js";
import { leavesFor, naiveRoot } from "./reference.js";

function build(leaves: readonly Buffer[]): MerkleTree {
  const tree = new MerkleTree();
  for (const leaf of leaves) tree.append(leaf);
  return tree;
}

function assertSameTree(actual: MerkleTree, expected: MerkleTree, from = actual.minIndex): void {
  assert.equal(actual.size, expected.size);
  assert.deepEqual(actual.root(), expected.root());
  for (let i = from; i < actual.size; i++) {
    assert.deepEqual(actual.leaf(i), expected.leaf(i));
    assert.deepEqual(actual.path(i), expected.path(i));
  }
}

const sizeAndSeed = fc.record({ size: fc.integer({ min: 1, max: 300 }), seed: fc.integer() });

describe("MerkleTree", () => {
  it("has the root of the level-by-level construction and proves every leaf against it", () => {
    fc.assert(
      fc.property(sizeAndSeed, ({ size, seed }) => {
        const leaves = leavesFor(seed, size);
        const tree = build(leaves);
        const root = tree.root();
        assert.deepEqual(root, naiveRoot(leaves));
        for (let i = 0; i < size; i++) {
          assert.deepEqual(tree.leaf(i), leaves[i]);
          assert.deepEqual(foldProof(leaves[i], tree.path(i)), root);
        }
      }),
      { numRuns: 60 },
    );
  });

  it("rejects a proof with one sibling changed or one side swapped", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 300 }).chain((size) =>
          fc.record({
            size: fc.constant(size),
            seed: fc.integer(),
            index: fc.nat(size - 1),
            step: fc.nat(),
            bit: fc.nat(255),
          }),
        ),
        ({ size, seed, index, step, bit }) => {
          const leaves = leavesFor(seed, size);
          const tree = build(leaves);
          const proof = tree.path(index);
          const at = step % proof.length;
          const [side, hex] = Object.entries(proof[at])[0];
          const flipped = Buffer.from(hex, "hex");
          flipped[bit >> 3] ^= 1 << (bit & 7);
          const changed: MerkleProof = proof.map((s, i) =>
            i !== at
              ? s
              : side === "left"
                ? { left: flipped.toString("hex") }
                : { right: flipped.toString("hex") },
          );
          const swapped: MerkleProof = proof.map((s, i) =>
            i !== at ? s : side === "left" ? { right: hex } : { left: hex },
          );
          assert.notDeepEqual(foldProof(leaves[index], changed), tree.root());
          assert.notDeepEqual(foldProof(leaves[index], swapped), tree.root());
        },
      ),
      { numRuns: 200 },
    );
  });

  it("gives past roots and proofs against them, as the tree stood at each smaller size", () => {
    fc.assert(
      fc.property(sizeAndSeed, fc.nat(), ({ size, seed }, pick) => {
        const leaves = leavesFor(seed, size);
        const tree = build(leaves);
        const past = 1 + (pick % size);
        const pastRoot = tree.rootAt(past);
        assert.deepEqual(pastRoot, naiveRoot(leaves.slice(0, past)));
        for (let i = 0; i < past; i++)
          assert.deepEqual(foldProof(leaves[i], tree.path(i, past)), pastRoot);
      }),
      { numRuns: 60 },
    );
  });

  it("after truncating and appending again, equals the tree built directly", () => {
    fc.assert(
      fc.property(
        sizeAndSeed,
        fc.nat(),
        fc.nat(),
        fc.integer({ min: 0, max: 200 }),
        ({ size, seed }, f, t, more) => {
          const leaves = leavesFor(seed, size);
          const tree = build(leaves);
          const flushTo = f % (size + 1);
          const truncateTo = flushTo + (t % (size - flushTo + 1));
          tree.flush(flushTo);
          tree.truncate(truncateTo);
          assert.equal(tree.size, truncateTo);
          const replacement = leavesFor(seed + 1, more);
          for (const leaf of replacement) tree.append(leaf);
          const direct = build([...leaves.slice(0, truncateTo), ...replacement]);
          if (tree.size > 0) assertSameTree(tree, direct);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("keeps the root and the proofs of unflushed leaves after flushing, and grows as before", () => {
    fc.assert(
      fc.property(
        sizeAndSeed,
        fc.nat(),
        fc.integer({ min: 0, max: 100 }),
        ({ size, seed }, f, more) => {
          const leaves = leavesFor(seed, size);
          const tree = build(leaves);
          const reference = build(leaves);
          const flushTo = f % (size + 1);
          tree.flush(flushTo);
          assert.equal(tree.minIndex, flushTo);
          assertSameTree(tree, reference, flushTo);
          if (flushTo > 0) assert.throws(() => tree.leaf(flushTo - 1), RangeError);
          if (flushTo > 0) assert.throws(() => tree.path(flushTo - 1), RangeError);
          for (const leaf of leavesFor(seed + 1, more)) {
            tree.append(leaf);
            reference.append(leaf);
          }
          assertSameTree(tree, reference, flushTo);
          for (let past = Math.max(1, flushTo); past <= size; past++)
            assert.deepEqual(tree.rootAt(past), reference.rootAt(past));
        },
      ),
      { numRuns: 100 },
    );
  });

  it("round-trips through merklecpp's serialisation from any flush point", () => {
    fc.assert(
      fc.property(sizeAndSeed, fc.nat(), fc.nat(), fc.nat(), ({ size, seed }, f, a, b) => {
        const leaves = leavesFor(seed, size);
        const tree = build(leaves);
        const flushTo = f % size;
        tree.flush(flushTo);
        const from = flushTo + (a % (size - flushTo));
        const to = from + 1 + (b % (size - from));
        const bytes = tree.serialise(from, to);
        const copy = MerkleTree.deserialise(bytes);
        assert.equal(copy.minIndex, from);
        assert.equal(copy.size, to);
        assert.deepEqual(copy.root(), naiveRoot(leaves.slice(0, to)));
        assert.deepEqual(copy.serialise(), bytes);
        for (let i = from; i < to; i++) assert.deepEqual(copy.path(i), tree.path(i, to));
        for (const leaf of leavesFor(seed + 1, 20)) copy.append(leaf);
        assert.deepEqual(
          copy.root(),
          naiveRoot([...leaves.slice(0, to), ...leavesFor(seed + 1, 20)]),
        );
      }),
      { numRuns: 100 },
    );
  });

  it("serialises a tree whose leaves are all flushed, and reads it back", () => {
    const leaves = leavesFor(7, 13);
    const tree = build(leaves);
    tree.flush(13);
    const copy = MerkleTree.deserialise(tree.serialise());
    assert.equal(copy.size, 13);
    assert.deepEqual(copy.root(), naiveRoot(leaves));
    assert.deepEqual(MerkleTree.deserialise(new MerkleTree().serialise()).size, 0);
  });

  it("refuses malformed serialisations with a FormatError and nothing else", () => {
    const valid = build(leavesFor(3, 11));
    valid.flush(5);
    const bytes = valid.serialise();
    for (const bad of [
      bytes.subarray(0, bytes.length - 1),
      Buffer.concat([bytes, Buffer.alloc(1)]),
      bytes.subarray(0, 15),
    ]) {
      assert.throws(() => MerkleTree.deserialise(bad), FormatError);
    }
    const huge = Buffer.alloc(16, 0xff);
    assert.throws(() => MerkleTree.deserialise(huge), FormatError);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (random) => {
        try {
          MerkleTree.deserialise(random);
        } catch (e) {
          assert.ok(e instanceof FormatError, String(e));
        }
      }),
      { numRuns: 500 },
    );
  });

  it("refuses out-of-range requests with RangeError", () => {
    const tree = new MerkleTree();
    assert.throws(() => tree.root(), RangeError);
    assert.throws(() => tree.append(Buffer.alloc(31)), RangeError);
    for (const leaf of leavesFor(1, 10)) tree.append(leaf);
    tree.flush(4);
    assert.throws(() => tree.path(10), RangeError);
    assert.throws(() => tree.path(2, 8), RangeError);
    assert.throws(() => tree.rootAt(11), RangeError);
    assert.throws(() => tree.rootAt(3), RangeError);
    assert.throws(() => tree.truncate(3), RangeError);
    assert.throws(() => tree.flush(11), RangeError);
    assert.throws(() => tree.serialise(3), RangeError);
    assert.throws(() => tree.leaf(1.5), RangeError);
  });

  it("appends a million leaves with a root every 5,000 in about a second", () => {
    const leaves = leavesFor(0, 1024);
    const tree = new MerkleTree();
    const start = performance.now();
    for (let i = 0; i < 1_000_000; i++) {
      tree.append(leaves[i & 1023]);
      if (i % 5000 === 4999) tree.root();
    }
    const elapsed = performance.now() - start;
    // A root that rehashed the tree would take minutes here; the bound leaves room for slow CI.
    assert.ok(elapsed < 6000, `took ${elapsed.toFixed(0)} ms`);
    assert.equal(tree.path(0).length, 20);
  });
});
