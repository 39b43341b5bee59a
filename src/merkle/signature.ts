// The value a signature transaction writes to `public:ccf.internal.signatures` (singleton, key = 8
// zero bytes): the primary's ECDSA signature over the Merkle root, as CCF's nlohmann JSON encodes
// `ccf::PrimarySignature` — compact, keys in alphabetical order (nlohmann objects are std::maps).

import { FormatError } from "../errors.js";
import { DIGEST_SIZE, isBase64, isHexDigest, requireDigest } from "./digest.js";

export interface PrimarySignature {
  /** The signing node's service-endorsed certificate (PEM); absent in ledgers from before CCF 2. */
  cert?: string;
  /** Deprecated in CCF: always 0. */
  commit_seqno: number;
  /** Deprecated in CCF: always 0. */
  commit_view: number;
  /** Hex; a BFT leftover, 64 zeros in CFT. */
  hashed_nonce: string;
  /** Hex node id of the signer. */
  node: string;
  /** Hex root over leaves [0, seqno). */
  root: string;
  /** Seqno of the signature transaction itself. */
  seqno: number;
  /** Base64 DER ECDSA signature over `root` taken as a SHA-256 digest. */
  sig: string;
  view: number;
}

const ZERO_NONCE = "0".repeat(2 * DIGEST_SIZE);

/**
 * The signature a primary writes at `view.seqno`, with CCF's fixed values for the deprecated
 * fields.
 */
export function newPrimarySignature(args: {
  cert: string;
  node: string;
  view: number;
  seqno: number;
  root: Uint8Array;
  sig: Uint8Array;
}): PrimarySignature {
  requireDigest(args.root, "root");
  return {
    cert: args.cert,
    commit_seqno: 0,
    commit_view: 0,
    hashed_nonce: ZERO_NONCE,
    node: args.node,
    root: Buffer.from(args.root).toString("hex"),
    seqno: args.seqno,
    sig: Buffer.from(args.sig).toString("base64"),
    view: args.view,
  };
}

/** The exact bytes CCF writes; RangeError if a field is out of its domain. */
export function encodePrimarySignature(sig: PrimarySignature): Buffer {
  const problem = validate(sig);
  if (problem !== undefined) throw new RangeError(`invalid primary signature: ${problem}`);
  return Buffer.from(JSON.stringify(canonical(sig)), "utf8");
}

/** Parses the signatures table value; FormatError if it is not a well-formed primary signature. */
export function decodePrimarySignature(bytes: Uint8Array): PrimarySignature {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new FormatError("InvalidSignatureEntry", "signature entry is not UTF-8 JSON", { cause });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new FormatError("InvalidSignatureEntry", "signature entry is not a JSON object");
  }
  const candidate = value as Record<string, unknown>;
  const problem = validate(candidate);
  if (problem !== undefined)
    throw new FormatError("InvalidSignatureEntry", `signature entry: ${problem}`);
  return canonical(candidate as unknown as PrimarySignature);
}

// Rebuilt field by field so that key order is CCF's whatever order the input had.
function canonical(sig: PrimarySignature): PrimarySignature {
  return {
    ...(sig.cert === undefined ? {} : { cert: sig.cert }),
    commit_seqno: sig.commit_seqno,
    commit_view: sig.commit_view,
    hashed_nonce: sig.hashed_nonce,
    node: sig.node,
    root: sig.root,
    seqno: sig.seqno,
    sig: sig.sig,
    view: sig.view,
  };
}

function validate(sig: Partial<Record<keyof PrimarySignature, unknown>>): string | undefined {
  if (sig.cert !== undefined && typeof sig.cert !== "string") return "cert is not a string";
  for (const key of ["commit_seqno", "commit_view", "seqno", "view"] as const) {
    const n = sig[key];
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0)
      return `${key} is not a non-negative integer`;
  }
  if (!isHexDigest(sig.hashed_nonce)) return "hashed_nonce is not a hex digest";
  if (!isHexDigest(sig.root)) return "root is not a hex digest";
  if (typeof sig.node !== "string") return "node is not a string";
  if (!isBase64(sig.sig)) return "sig is not base64";
  return undefined;
}
