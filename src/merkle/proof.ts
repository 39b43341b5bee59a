// Merkle inclusion proofs in CCF's JSON receipt form, and the fold from a leaf up to the root.

import { FormatError } from "../errors.js";
import { digestFromHex, requireDigest, sha256 } from "./digest.js";

/** One step from the leaf upwards: the sibling's hex digest and the side it joins on. */
export type MerkleProofStep = { left: string } | { right: string };

/**
 * Steps ordered from the leaf upwards, as in CCF's receipts (`{"left": h}`: h is the left sibling).
 */
export type MerkleProof = MerkleProofStep[];

/**
 * The root reached from `leaf` through `proof`; FormatError if a step is not a single hex digest.
 */
export function foldProof(leaf: Uint8Array, proof: readonly MerkleProofStep[]): Buffer {
  requireDigest(leaf, "leaf");
  if (!Array.isArray(proof)) throw new FormatError("InvalidProof", "proof is not an array");
  let current: Buffer = Buffer.from(leaf);
  proof.forEach((step: unknown, i) => {
    if (typeof step !== "object" || step === null || Object.keys(step).length !== 1) {
      throw new FormatError("InvalidProof", `proof step ${i} must have exactly one of left, right`);
    }
    if ("left" in step) {
      current = sha256(digestFromHex(step.left, `proof step ${i}`), current);
    } else if ("right" in step) {
      current = sha256(current, digestFromHex(step.right, `proof step ${i}`));
    } else {
      throw new FormatError("InvalidProof", `proof step ${i} must have exactly one of left, right`);
    }
  });
  return current;
}
