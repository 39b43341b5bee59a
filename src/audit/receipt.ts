// Offline receipt verification, as an auditor runs it: CCF's JSON receipts (node signature over the
// root, node certificate endorsed by the service) and COSE receipts (the service's COSE signature
// over the root, carrying the inclusion proof in its unprotected header), with a precise reason
// for every refusal. Also builds COSE receipts from a signature transaction's COSE signature.

import { Tag } from "cbor-x";
import {
  COSE_ALG,
  COSE_HEADER,
  type CoseSign1,
  certificateInfo,
  cborDecode,
  cborEncode,
  coseSign1Decode,
  coseSign1Verify,
  nodeIdFromPublicKey,
  sha256,
  toHex,
  verifyCertificateIssued,
  verifyDigest,
} from "../crypto/index.js";
import {
  type MerkleProof,
  type Receipt,
  commitEvidenceDigest,
  foldProof,
  receiptRoot,
  verifyReceipt,
} from "../merkle/index.js";

/** COSE Receipts labels (draft-ietf-cose-merkle-tree-proofs) and CCF's profile of them. */
export const COSE_RECEIPT = {
  /** Protected header: the verifiable data structure. */
  vds: 395,
  /** Unprotected header: the verifiable data structure proofs. */
  vdp: 396,
  /** Key of the inclusion proofs in the `vdp` map. */
  inclusionProofs: -1,
  /** `vds` of CCF's ledger Merkle tree (SHA-256). */
  vdsCcfLedgerSha256: 2,
  /** Keys of a CCF inclusion proof: the leaf's components, and the path up to the root. */
  proofLeaf: 1,
  proofPath: 2,
} as const;

const COSE_SIGN1_TAG = 18;
const DIGEST_SIZE = 32;
const SUPPORTED_ALGS: ReadonlySet<unknown> = new Set(Object.values(COSE_ALG));

export interface CoseReceiptLeaf {
  writeSetDigest: Uint8Array;
  commitEvidence: string;
  claimsDigest: Uint8Array;
}

/**
 * CCF's COSE receipt of a transaction (`ccf::cose::edit::set_unprotected_header` over
 * `describe_cose_signature_v1` and `describe_merkle_proof_v1`): the signature transaction's COSE
 * signature, its protected header bytes and signature untouched, with the unprotected header
 * replaced by {396: {-1: [bstr(cbor({1: leaf, 2: path}))]}} and a nil (detached) payload.
 * `proof` is the JSON receipt's proof, from the leaf upwards; `{left: h}` becomes `[true, h]`.
 * FormatError if `coseSignature` is not a COSE_Sign1; RangeError for a digest that is
 * not 32 bytes.
 */
export function buildCoseReceipt(
  coseSignature: Uint8Array,
  proof: MerkleProof,
  leaf: CoseReceiptLeaf,
): Buffer {
  for (const [what, digest] of [
    ["write set digest", leaf.writeSetDigest],
    ["claims digest", leaf.claimsDigest],
  ] as const) {
    if (digest.length !== DIGEST_SIZE) {
      throw new RangeError(`${what} must be ${DIGEST_SIZE} bytes, got ${digest.length}`);
    }
  }
  const signature = coseSign1Decode(coseSignature);
  const path = proof.map((step, i) => {
    const [left, hex] = "left" in step ? [true, step.left] : [false, step.right];
    if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
      throw new RangeError(`proof step ${i} is not a 32-byte hex digest`);
    }
    return [left, Buffer.from(hex, "hex")];
  });
  const inclusionProof = cborEncode(
    new Map<number, unknown>([
      [
        COSE_RECEIPT.proofLeaf,
        [Buffer.from(leaf.writeSetDigest), leaf.commitEvidence, Buffer.from(leaf.claimsDigest)],
      ],
      [COSE_RECEIPT.proofPath, path],
    ]),
  );
  const unprotected = new Map<number, unknown>([
    [
      COSE_RECEIPT.vdp,
      new Map<number, unknown>([[COSE_RECEIPT.inclusionProofs, [inclusionProof]]]),
    ],
  ]);
  return cborEncode(
    new Tag([signature.protectedBytes, unprotected, null, signature.signature], COSE_SIGN1_TAG),
  );
}

export type ReceiptVerification =
  | { ok: true; kind: "json" | "cose"; root: string; seqno?: number }
  | { ok: false; reason: string };

/**
 * Verifies a receipt given as bytes or text: JSON if it starts with `{` (after whitespace),
 * otherwise a COSE receipt (CBOR bytes; a string that is not JSON is taken as base64 of them).
 * Returns the root the proof leads to and, when the receipt names it, the transaction's seqno.
 * Never throws for bad input: every refusal carries its reason.
 */
export function verifyReceiptBytes(
  input: Buffer | string,
  opts: { serviceCertPem?: string } = {},
): ReceiptVerification {
  try {
    if (typeof input === "string") {
      return input.trimStart().startsWith("{")
        ? verifyJson(input, opts.serviceCertPem)
        : verifyCose(base64Bytes(input), opts.serviceCertPem);
    }
    return startsWithBrace(input)
      ? verifyJson(input.toString("utf8"), opts.serviceCertPem)
      : verifyCose(input, opts.serviceCertPem);
  } catch (e) {
    if (e instanceof Refusal) return { ok: false, reason: e.message };
    // FormatError from the layers below names the fault; anything else thrown while reading
    // untrusted input is still a malformed receipt, not a crash.
    return { ok: false, reason: `malformed receipt: ${(e as Error).message}` };
  }
}

/** Ends verification with a reason (caught in verifyReceiptBytes, never escapes it). */
class Refusal extends Error {}

function malformed(what: string): Refusal {
  return new Refusal(`malformed receipt: ${what}`);
}

/** Whether the first byte that is not JSON whitespace is `{`. */
function startsWithBrace(bytes: Buffer): boolean {
  for (const b of bytes) {
    if (b === 0x7b) return true;
    if (b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) return false;
  }
  return false;
}

function base64Bytes(text: string): Buffer {
  const compact = text.replace(/\s+/g, "");
  if (compact.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) {
    throw malformed("neither JSON nor base64 of a COSE receipt");
  }
  return Buffer.from(compact, "base64");
}

function serviceCert(pem: string | undefined): { pem: string; publicKeyDer: Buffer } | undefined {
  if (pem === undefined) return undefined;
  try {
    return { pem, publicKeyDer: certificateInfo(pem).publicKeyDer };
  } catch {
    throw new Refusal("the service certificate is not a PEM certificate");
  }
}

/** The seqno named by a commit evidence string `ce:{view}.{seqno}:{hex}`, if it has that shape. */
function seqnoOf(commitEvidence: unknown): number | undefined {
  if (typeof commitEvidence !== "string") return undefined;
  const m = /^ce:\d+\.(\d+):[0-9a-f]+$/.exec(commitEvidence);
  return m === null ? undefined : Number(m[1]);
}

function verifyJson(text: string, serviceCertPem: string | undefined): ReceiptVerification {
  let receipt: unknown;
  try {
    receipt = JSON.parse(text);
  } catch (e) {
    throw malformed(`not JSON (${(e as Error).message})`);
  }
  if (typeof receipt !== "object" || receipt === null || Array.isArray(receipt)) {
    throw malformed("not a JSON object");
  }
  const r = receipt as Receipt;
  const service = serviceCert(serviceCertPem);
  const root = receiptRoot(r);
  let nodeKeyId: string;
  try {
    if (typeof r.cert !== "string") throw new Error();
    nodeKeyId = nodeIdFromPublicKey(certificateInfo(r.cert).publicKeyDer);
  } catch {
    throw malformed("cert is not a PEM certificate");
  }
  if (!verifyReceipt(r, verifyDigest)) throw new Refusal("signature does not verify");
  // node_id is not under the signature: hold it to the certificate's key, as CCF derives it.
  if (r.node_id !== nodeKeyId) {
    throw new Refusal("node_id does not match the key of the node certificate");
  }
  if (
    service !== undefined &&
    !verifyReceipt(r, verifyDigest, service.pem, verifyCertificateIssued)
  ) {
    throw new Refusal(
      r.service_endorsements === undefined || r.service_endorsements.length === 0
        ? "node certificate not endorsed by the service certificate"
        : "node certificate not endorsed by the service certificate through service_endorsements",
    );
  }
  const seqno =
    "leaf_components" in r
      ? seqnoOf((r.leaf_components as { commit_evidence?: unknown }).commit_evidence)
      : undefined;
  return {
    ok: true,
    kind: "json",
    root: root.toString("hex"),
    ...(seqno === undefined ? {} : { seqno }),
  };
}

interface InclusionProof {
  root: Buffer;
  seqno: number | undefined;
}

function verifyCose(bytes: Buffer, serviceCertPem: string | undefined): ReceiptVerification {
  let cose: CoseSign1;
  try {
    cose = coseSign1Decode(bytes);
  } catch (e) {
    throw malformed((e as Error).message);
  }
  const alg = cose.protectedHeaders.get(COSE_HEADER.alg);
  if (!SUPPORTED_ALGS.has(alg)) {
    throw malformed(`protected header alg ${String(alg)} is not ES256, ES384 or ES512`);
  }
  const vds = cose.protectedHeaders.get(COSE_RECEIPT.vds);
  if (vds !== COSE_RECEIPT.vdsCcfLedgerSha256) {
    throw malformed(
      `protected header vds (395) is ${String(vds)}, not ${COSE_RECEIPT.vdsCcfLedgerSha256} (CCF ledger tree)`,
    );
  }
  if (cose.payload !== null) throw malformed("the payload is not detached (nil)");
  const proofs = inclusionProofs(cose);
  const [first, ...others] = proofs;
  if (first === undefined) throw malformed("no inclusion proof");
  if (others.some((p) => !p.root.equals(first.root))) {
    throw malformed("inclusion proofs lead to different roots");
  }
  const service = serviceCert(serviceCertPem);
  if (service === undefined) throw new Refusal("a COSE receipt needs the service certificate");
  const kid = cose.protectedHeaders.get(COSE_HEADER.kid);
  if (kid !== undefined) {
    // CCF's kid: the hex SHA-256 of the service key's SubjectPublicKeyInfo DER, as a byte string.
    const expected = Buffer.from(toHex(sha256(service.publicKeyDer)), "latin1");
    if (!(kid instanceof Uint8Array) || !expected.equals(kid)) {
      throw new Refusal("kid does not match the service certificate's key");
    }
  }
  if (!coseSign1Verify(cose, service.pem, first.root)) {
    throw new Refusal("signature does not verify");
  }
  return {
    ok: true,
    kind: "cose",
    root: first.root.toString("hex"),
    ...(first.seqno === undefined ? {} : { seqno: first.seqno }),
  };
}

function inclusionProofs(cose: CoseSign1): InclusionProof[] {
  const vdp = cose.unprotectedHeaders.get(COSE_RECEIPT.vdp);
  if (!(vdp instanceof Map)) throw malformed("unprotected header vdp (396) is not a map");
  const proofs: unknown = vdp.get(COSE_RECEIPT.inclusionProofs);
  if (!Array.isArray(proofs) || proofs.length === 0) {
    throw malformed("vdp has no inclusion proofs (-1) array");
  }
  return proofs.map((p: unknown, i) => {
    if (!(p instanceof Uint8Array)) throw malformed(`inclusion proof ${i} is not a byte string`);
    return inclusionProof(p, i);
  });
}

function digest(value: unknown, what: string): Buffer {
  if (!(value instanceof Uint8Array) || value.length !== DIGEST_SIZE) {
    throw malformed(`${what} is not a ${DIGEST_SIZE}-byte string`);
  }
  return Buffer.from(value);
}

function inclusionProof(bytes: Uint8Array, index: number): InclusionProof {
  const where = `inclusion proof ${index}`;
  let decoded: unknown;
  try {
    decoded = cborDecode(bytes);
  } catch {
    throw malformed(`${where} is not CBOR`);
  }
  if (!(decoded instanceof Map)) throw malformed(`${where} is not a map`);
  const leaf: unknown = decoded.get(COSE_RECEIPT.proofLeaf);
  if (!Array.isArray(leaf) || leaf.length !== 3) {
    throw malformed(`${where}: leaf (1) is not [write set digest, commit evidence, claims digest]`);
  }
  const [wsd, ce, cd] = leaf as unknown[];
  const writeSetDigest = digest(wsd, `${where}: write set digest`);
  if (typeof ce !== "string" || ce.length === 0) {
    throw malformed(`${where}: commit evidence is not a text string`);
  }
  const claimsDigest = digest(cd, `${where}: claims digest`);
  const path: unknown = decoded.get(COSE_RECEIPT.proofPath);
  if (!Array.isArray(path)) throw malformed(`${where}: path (2) is not an array`);
  const steps: MerkleProof = path.map((step: unknown, i) => {
    if (!Array.isArray(step) || step.length !== 2 || typeof step[0] !== "boolean") {
      throw malformed(`${where}: path step ${i} is not [left: bool, hash]`);
    }
    const hash = digest(step[1], `${where}: path step ${i} hash`).toString("hex");
    return step[0] ? { left: hash } : { right: hash };
  });
  const leafDigest = sha256(writeSetDigest, commitEvidenceDigest(ce), claimsDigest);
  return { root: foldProof(leafDigest, steps), seqno: seqnoOf(ce) };
}
