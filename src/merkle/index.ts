// Public surface of the Merkle layer: the history tree, inclusion proofs, leaf digests and commit
// evidence, signature transaction contents, and JSON receipts.

export { MerkleTree } from "./tree.js";
export { type MerkleProof, type MerkleProofStep, foldProof } from "./proof.js";
export {
  EMPTY_CLAIMS,
  EntryType,
  commitEvidence,
  commitEvidenceDigest,
  commitSecret,
  leafDigest,
} from "./leaf.js";
export {
  type PrimarySignature,
  decodePrimarySignature,
  encodePrimarySignature,
  newPrimarySignature,
} from "./signature.js";
export {
  type CheckIssued,
  type LeafComponents,
  type LeafReceipt,
  type Receipt,
  type ReceiptArgs,
  type TxReceipt,
  type VerifyDigest,
  buildReceipt,
  receiptRoot,
  verifyReceipt,
} from "./receipt.js";
