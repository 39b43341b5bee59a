// CCF's JSON transaction receipts (v1, `describe_receipt_v1`): the node's signature over a Merkle
// root plus the proof that a transaction's leaf is under it, and their verification. Signature and
// certificate checks are passed in, so this layer stays free of the crypto module.

import { FormatError } from "../errors.js";
import { digestFromHex, isBase64, requireDigest, sha256 } from "./digest.js";
import { EMPTY_CLAIMS, commitEvidenceDigest } from "./leaf.js";
import { type MerkleProof, foldProof } from "./proof.js";

export interface LeafComponents {
  /**
   * Hex SHA-256 of the application claims; CCF omits it only when the entry has no claims digest.
   */
  claims_digest?: string;
  /** `ce:{view}.{seqno}:{hex}` */
  commit_evidence: string;
  /** Hex SHA-256 of the raw ledger entry. */
  write_set_digest: string;
}

interface ReceiptCommon {
  /** The signing node's certificate (PEM), endorsed by the service. */
  cert: string;
  node_id: string;
  proof: MerkleProof;
  /** Service certificates (PEM) linking `cert` to the current service identity after recoveries. */
  service_endorsements?: string[];
  /** Base64 DER ECDSA over the root taken as a SHA-256 digest. */
  signature: string;
}

/** Receipt of an ordinary transaction: its leaf is recomputed from the components. */
export interface TxReceipt extends ReceiptCommon {
  leaf_components: LeafComponents;
}

/** Receipt carrying its leaf: a signature transaction (the signed root, empty proof), or an entry
 * from before commit evidence existed (its write set digest). */
export interface LeafReceipt extends ReceiptCommon {
  leaf: string;
}

export type Receipt = TxReceipt | LeafReceipt;

export interface ReceiptArgs {
  proof: MerkleProof;
  /** From the signature transaction: its base64 `sig`, signer `node` and `cert`. */
  signature: { sig: string; node: string; cert: string };
  /** For an ordinary transaction. */
  leafComponents?: {
    writeSetDigest: Uint8Array;
    commitEvidence: string;
    claimsDigest?: Uint8Array;
  };
  /** Hex leaf, for a signature transaction (its signed root) or a pre-commit-evidence entry. */
  root?: string;
  serviceEndorsements?: string[];
}

/** The receipt, with keys in the order CCF's JSON has them (alphabetical). */
export function buildReceipt(args: ReceiptArgs): Receipt {
  if ((args.leafComponents === undefined) === (args.root === undefined)) {
    throw new RangeError("a receipt needs exactly one of leafComponents and root");
  }
  const endorsements =
    args.serviceEndorsements === undefined
      ? {}
      : { service_endorsements: [...args.serviceEndorsements] };
  const proof = args.proof.map((step) => ({ ...step }));
  if (args.leafComponents !== undefined) {
    const { writeSetDigest, commitEvidence, claimsDigest } = args.leafComponents;
    requireDigest(writeSetDigest, "write set digest");
    if (claimsDigest !== undefined) requireDigest(claimsDigest, "claims digest");
    return {
      cert: args.signature.cert,
      leaf_components: {
        claims_digest: Buffer.from(claimsDigest ?? EMPTY_CLAIMS).toString("hex"),
        commit_evidence: commitEvidence,
        write_set_digest: Buffer.from(writeSetDigest).toString("hex"),
      },
      node_id: args.signature.node,
      proof,
      ...endorsements,
      signature: args.signature.sig,
    };
  }
  return {
    cert: args.signature.cert,
    leaf: digestFromHex(args.root, "root").toString("hex"),
    node_id: args.signature.node,
    proof,
    ...endorsements,
    signature: args.signature.sig,
  };
}

/** The root the receipt's signature should be over; FormatError if the receipt is malformed. */
export function receiptRoot(receipt: Receipt): Buffer {
  if (typeof receipt !== "object" || receipt === null)
    throw new FormatError("InvalidReceipt", "receipt is not an object");
  return foldProof(receiptLeaf(receipt), receipt.proof);
}

function receiptLeaf(receipt: Receipt): Buffer {
  if ("leaf_components" in receipt) {
    const components: unknown = receipt.leaf_components;
    if (typeof components !== "object" || components === null) {
      throw new FormatError("InvalidReceipt", "leaf_components is not an object");
    }
    const { write_set_digest, commit_evidence, claims_digest } = components as Partial<
      Record<keyof LeafComponents, unknown>
    >;
    const wsd = digestFromHex(write_set_digest, "write_set_digest");
    if (typeof commit_evidence !== "string")
      throw new FormatError("InvalidReceipt", "commit_evidence is not a string");
    const ced = commitEvidenceDigest(commit_evidence);
    // As CCF's ProofReceipt: the claims digest joins the leaf only when the receipt carries one.
    return claims_digest === undefined
      ? sha256(wsd, ced)
      : sha256(wsd, ced, digestFromHex(claims_digest, "claims_digest"));
  }
  if ("leaf" in receipt) return digestFromHex(receipt.leaf, "leaf");
  throw new FormatError("InvalidReceipt", "receipt has neither leaf_components nor leaf");
}

/**
 * Checks an ECDSA signature over a 32-byte digest (no further hashing) with the key in a PEM cert.
 */
export type VerifyDigest = (
  certPem: string,
  digest: Uint8Array,
  derSignature: Uint8Array,
) => boolean;

/** Whether `certPem` carries a valid signature by the key of `issuerPem`. */
export type CheckIssued = (certPem: string, issuerPem: string) => boolean;

/**
 * Whether the receipt's signature is valid over the root its proof leads to, and, given the service
 * certificate, whether the node certificate chains to it through `service_endorsements` (each one
 * endorsing the previous, the last endorsed by the service). FormatError if the receipt is
 * malformed.
 */
export function verifyReceipt(
  receipt: Receipt,
  verifyDigest: VerifyDigest,
  serviceCertPem?: string,
  checkIssued?: CheckIssued,
): boolean {
  const root = receiptRoot(receipt);
  if (!isBase64(receipt.signature)) {
    throw new FormatError("InvalidReceipt", "signature is not base64");
  }
  if (typeof receipt.cert !== "string")
    throw new FormatError("InvalidReceipt", "cert is not a string");
  if (!verifyDigest(receipt.cert, root, Buffer.from(receipt.signature, "base64"))) return false;
  if (serviceCertPem === undefined) return true;
  if (checkIssued === undefined)
    throw new RangeError("checking against a service certificate needs checkIssued");
  const endorsements: unknown = receipt.service_endorsements ?? [];
  if (!Array.isArray(endorsements) || !endorsements.every((e) => typeof e === "string")) {
    throw new FormatError("InvalidReceipt", "service_endorsements is not a list of PEM strings");
  }
  let endorsee = receipt.cert;
  for (const endorser of endorsements) {
    if (!checkIssued(endorsee, endorser)) return false;
    endorsee = endorser;
  }
  return checkIssued(endorsee, serviceCertPem);
}
