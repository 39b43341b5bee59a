// COSE Sign1 governance messages: signing them as CCF's `ccf_cose_sign1` does, verifying them as
// CCF's member_cose_sign1 / active_member_cose_sign1 policies do, and the replay check CCF runs on
// proposal submissions (`cose_recent_proposals`).

import { Tag } from "cbor-x";
import {
  COSE_ALG,
  COSE_HEADER,
  type CoseHeaders,
  type CoseSign1,
  cborDecode,
  cborEncode,
  coseSign1Decode,
  coseSign1Sign,
  coseSign1Verify,
  EcKeyPair,
  certificateId,
  ecPublicKeyInfo,
  publicKeyFromPem,
  sha256,
} from "../crypto/index.js";
import { CcfError, CryptoError, FormatError, HttpError, HttpErrors } from "../errors.js";
import { decodeValue, Tables, type Tx } from "../kv/index.js";

/** Protected header labels of governance messages (CCF's cose_auth.cpp). */
export const GOV_HEADER = {
  msgType: "ccf.gov.msg.type",
  createdAt: "ccf.gov.msg.created_at",
  proposalId: "ccf.gov.msg.proposal_id",
} as const;

/** Message types that name the proposal they act on. */
export const GOV_MSG_TYPES_WITH_PROPOSAL_ID = ["ballot", "withdrawal"] as const;

/** Every `ccf.gov.msg.type` CCF's tool accepts. */
export const GOV_MSG_TYPES = [
  "proposal",
  "ack",
  "state_digest",
  "recovery_share",
  "encrypted_recovery_share",
  ...GOV_MSG_TYPES_WITH_PROPOSAL_ID,
] as const;

/** Types a member may send before it is Active (CCF uses member_cose_sign1, not the active one). */
const TYPES_FOR_ANY_MEMBER: ReadonlySet<string> = new Set(["ack", "state_digest"]);

/**
 * created_at is kept as a zero-padded 10-digit decimal string so that keys sort by time; CCF
 * refuses larger values (they would not fit, nor sort).
 */
export const MAX_CREATED_AT = 9_999_999_999;

/** CCF's default `recent_cose_proposals_window_size`. */
export const DEFAULT_RECENT_COSE_PROPOSALS_WINDOW_SIZE = 100;

/**
 * Governance-specific OData errors (CCF's odata_error.h: ProposalReplay, ProposalCreatedTooLongAgo,
 * InvalidCreatedAt, all sent with 400 by src/node/gov/handlers/proposals.h). Kept here until the
 * shared catalogue in errors.ts takes them.
 */
export const GovCoseErrors = {
  ProposalReplay: (message: string) => new HttpError(400, "ProposalReplay", message),
  ProposalCreatedTooLongAgo: (message: string) =>
    new HttpError(400, "ProposalCreatedTooLongAgo", message),
  InvalidCreatedAt: (message: string) => new HttpError(400, "InvalidCreatedAt", message),
} as const;

export type GovAuthPolicy = "member_cose_sign1" | "active_member_cose_sign1";

// ---------------------------------------------------------------------------------------------
// Signing

export interface SignGovMessageArgs {
  signingKeyPem: string;
  signingCertPem: string;
  msgType: string;
  /** Integer seconds since the epoch. */
  createdAt: number;
  proposalId?: string;
  content: Uint8Array;
  /** More protected headers (they may not replace alg, kid or the gov headers). */
  extraProtectedHeaders?: CoseHeaders;
}

/** CBOR writes JS numbers above 32 bits as floats, so larger integers go out as bigint. */
function cborInteger(n: number): number | bigint {
  return n > 0xffffffff ? BigInt(n) : n;
}

/**
 * RFC 8949 §4.2.1 order (what CCF's Python tool emits with deterministic headers): labels sorted
 * by their encoded bytes, so integers first, then text by length, then bytewise.
 */
function deterministicOrder(headers: CoseHeaders): CoseHeaders {
  const entries = [...headers.entries()].map(
    ([k, v]) => [k, v, cborEncode(k)] as [number | string, unknown, Buffer],
  );
  entries.sort((a, b) => Buffer.compare(a[2], b[2]));
  return new Map(entries.map(([k, v]) => [k, v]));
}

/**
 * A tagged COSE_Sign1 governance message as CCF's `ccf_cose_sign1` makes it: protected headers
 * alg (from the key's curve), kid (the member id, hex text, as a byte string),
 * ccf.gov.msg.type, ccf.gov.msg.created_at (integer seconds) and ccf.gov.msg.proposal_id when
 * given, in deterministic order; an empty unprotected bucket; the content as the payload.
 */
export function signGovMessage(args: SignGovMessageArgs): Buffer {
  if (!Number.isSafeInteger(args.createdAt) || args.createdAt < 0) {
    throw new FormatError(
      "InvalidCreatedAt",
      `created_at must be a non-negative whole number of seconds, got ${args.createdAt}`,
    );
  }
  const key = EcKeyPair.fromPem(args.signingKeyPem);
  // A key that does not match the certificate would produce messages no service accepts.
  const certPoint = ecPublicKeyInfo(publicKeyFromPem(args.signingCertPem)).point;
  if (!Buffer.from(certPoint).equals(Buffer.from(key.publicPoint))) {
    throw new CryptoError("KeyMismatch", "the signing key does not match the signing certificate");
  }
  const kid = Buffer.from(certificateId(args.signingCertPem), "utf8");
  const headers: CoseHeaders = new Map<number | string, unknown>([
    [COSE_HEADER.alg, key.curve === "secp384r1" ? COSE_ALG.ES384 : COSE_ALG.ES256],
    [COSE_HEADER.kid, kid],
    [GOV_HEADER.msgType, args.msgType],
    [GOV_HEADER.createdAt, cborInteger(args.createdAt)],
  ]);
  if (args.proposalId !== undefined) headers.set(GOV_HEADER.proposalId, args.proposalId);
  for (const [label, value] of args.extraProtectedHeaders ?? []) {
    if (headers.has(label)) {
      throw new FormatError(
        "InvalidHeader",
        `protected header ${String(label)} is set by the governance message itself`,
      );
    }
    headers.set(label, value);
  }
  return coseSign1Sign({
    key,
    protectedHeaders: deterministicOrder(headers),
    payload: args.content,
  });
}

// ---------------------------------------------------------------------------------------------
// Verification

export interface VerifyGovMessageOptions {
  /** Reads members.certs and members.info. */
  tx: Tx;
  /** The ccf.gov.msg.type the endpoint takes; unchecked when absent. */
  expectedType?: string;
  /** The proposal id named in the URL (ballots, withdrawals): the signed header must equal it. */
  proposalId?: string;
  /**
   * Whether the signer must be Active (CCF's active_member_cose_sign1). Default: true, except
   * for `ack` and `state_digest`, which CCF accepts from members that are only Accepted.
   */
  requireActive?: boolean;
}

export interface VerifiedGovMessage {
  /** Hex member id (the kid). */
  memberId: string;
  memberCert: string;
  msgType: string | undefined;
  /** Integer seconds since the epoch, as signed. */
  createdAt: number;
  proposalId: string | undefined;
  content: Buffer;
  protectedHeaders: CoseHeaders;
  /** The raw signature: CCF's request digest (replay key, proposal id) is its SHA-256. */
  signature: Buffer;
  /** The whole message, as CCF records it in cose_history. */
  envelope: Buffer;
}

/**
 * CCF does not answer a malformed message with 401: its header parser throws out of the auth
 * policy. We answer 400 InvalidInput with CCF's parser messages (CCF 6 itself returns
 * 500 InternalError here, which is a CCF defect rather than a contract; see microsoft/CCF#7631).
 */
function malformed(message: string, cause?: unknown): HttpError {
  return new HttpError(400, "InvalidInput", message, { cause });
}

export function unauthenticated(policy: GovAuthPolicy, reason: string): HttpError {
  return new HttpError(401, "InvalidAuthenticationInfo", "Invalid authentication credentials.", {
    details: [{ auth_policy: policy, code: "InvalidAuthenticationInfo", message: reason }],
    headers: { "www-authenticate": 'COSE-SIGN1 realm="Signed request access"' },
  });
}

interface GovHeaders {
  alg: number;
  kid: Buffer;
  msgType: string | undefined;
  createdAt: number;
  proposalId: string | undefined;
}

function isInteger(v: unknown): v is number | bigint {
  return typeof v === "bigint" || (typeof v === "number" && Number.isInteger(v));
}

/**
 * CCF's header parser asks for each known label with a type; a label present with another type is
 * a parse error, an absent one is only an error for alg, kid and created_at.
 */
function parseGovHeaders(decoded: CoseSign1): GovHeaders {
  const h = decoded.protectedHeaders;
  const typeError = (label: string) =>
    malformed(`Failed to decode protected header: ${label} has an unexpected type`);
  const alg = h.get(COSE_HEADER.alg);
  const kid = h.get(COSE_HEADER.kid);
  const msgType = h.get(GOV_HEADER.msgType);
  const proposalId = h.get(GOV_HEADER.proposalId);
  const createdAt = h.get(GOV_HEADER.createdAt);
  if (alg !== undefined && !isInteger(alg)) throw typeError("alg");
  if (kid !== undefined && !(kid instanceof Uint8Array)) throw typeError("kid");
  if (msgType !== undefined && typeof msgType !== "string") throw typeError(GOV_HEADER.msgType);
  if (proposalId !== undefined && typeof proposalId !== "string")
    throw typeError(GOV_HEADER.proposalId);
  if (createdAt !== undefined && !isInteger(createdAt)) throw typeError(GOV_HEADER.createdAt);
  if (alg === undefined) throw malformed("Missing algorithm in protected header");
  if (kid === undefined) throw malformed("Missing kid in protected header");
  if (createdAt === undefined) throw malformed("Missing created_at in protected header");
  if (createdAt < 0) throw malformed("Header parameter created_at must be positive");
  if (typeof createdAt === "bigint" && createdAt > BigInt(Number.MAX_SAFE_INTEGER)) {
    // More than a JS number holds exactly; CCF refuses such values too (InvalidCreatedAt).
    throw malformed("Failed to decode protected header: created_at is out of range");
  }
  return {
    alg: Number(alg),
    kid: Buffer.from(kid),
    msgType,
    createdAt: Number(createdAt),
    proposalId,
  };
}

/**
 * Decodes a tagged COSE_Sign1 as CCF's request policies do; malformed input is a 400 HttpError
 * with CCF's parser message. Shared with the user_cose_sign1 app policy.
 */
export function decodeTaggedSign1(bytes: Uint8Array): CoseSign1 {
  let item: unknown;
  try {
    item = cborDecode(bytes);
  } catch (e) {
    throw malformed("Failed to parse COSE_Sign1 outer array", e);
  }
  if (!(item instanceof Tag) && !Array.isArray(item)) {
    throw malformed("Failed to parse COSE_Sign1 outer array");
  }
  if (!(item instanceof Tag) || item.tag !== 18) throw malformed("COSE_Sign1 is not tagged");
  try {
    return coseSign1Decode(bytes);
  } catch (e) {
    if (e instanceof CcfError) throw malformed(`Failed to decode COSE_Sign1: ${e.message}`, e);
    throw e;
  }
}

export const ECDSA_ALGS: ReadonlySet<number> = new Set([
  COSE_ALG.ES256,
  COSE_ALG.ES384,
  COSE_ALG.ES512,
]);
const ALG_FOR_CURVE: Record<string, number> = {
  secp256r1: COSE_ALG.ES256,
  secp384r1: COSE_ALG.ES384,
};

/** CCF's COSE verifier refuses an alg that does not fit the key, as well as a bad signature. */
export function signatureVerifies(decoded: CoseSign1, alg: number, certPem: string): boolean {
  if (decoded.payload === null) return false;
  let curve: string;
  try {
    curve = ecPublicKeyInfo(publicKeyFromPem(certPem)).curve;
  } catch {
    return false;
  }
  if (ALG_FOR_CURVE[curve] !== alg) return false;
  return coseSign1Verify(decoded, certPem);
}

/**
 * Authenticates a governance message as CCF's member COSE policies and gov handlers do:
 * - malformed COSE or headers (untagged, alg/kid/created_at missing or mistyped): 400 InvalidInput;
 * - non-ECDSA alg, unknown kid, bad signature, wrong or missing msg type, signer not Active
 *   (when required): 401 InvalidAuthenticationInfo with CCF's reason in `details`;
 * - a signed proposal id that differs from `proposalId`: 400 InvalidResourceName.
 * created_at is not compared with any clock: CCF's only freshness check is the replay window
 * (checkProposalReplay), and services such as the CCF fixtures must accept old messages.
 */
export function verifyGovMessage(
  bytes: Uint8Array,
  opts: VerifyGovMessageOptions,
): VerifiedGovMessage {
  const requireActive =
    opts.requireActive ??
    (opts.expectedType === undefined || !TYPES_FOR_ANY_MEMBER.has(opts.expectedType));
  const policy: GovAuthPolicy = requireActive ? "active_member_cose_sign1" : "member_cose_sign1";

  const decoded = decodeTaggedSign1(bytes);
  const headers = parseGovHeaders(decoded);

  if (!ECDSA_ALGS.has(headers.alg)) {
    throw unauthenticated(policy, `Unsupported algorithm: ${headers.alg}`);
  }
  const memberId = headers.kid.toString("utf8");
  const storedCert = opts.tx.map(Tables.MEMBER_CERTS).get(headers.kid);
  if (storedCert === undefined) throw unauthenticated(policy, "Signer is not a known member");
  const memberCert = decodeValue(Tables.MEMBER_CERTS, storedCert) as string;
  if (!signatureVerifies(decoded, headers.alg, memberCert)) {
    throw unauthenticated(policy, "Failed to validate COSE Sign1");
  }
  if (opts.expectedType !== undefined) {
    if (headers.msgType === undefined) {
      throw unauthenticated(
        policy,
        `Missing ccf.gov.msg.type, expected ccf.gov.msg.type to be ${opts.expectedType}`,
      );
    }
    if (headers.msgType !== opts.expectedType) {
      throw unauthenticated(
        policy,
        `Found ccf.gov.msg.type set to ${headers.msgType}, expected ccf.gov.msg.type to be ${opts.expectedType}`,
      );
    }
  }
  if (requireActive && memberStatus(opts.tx, headers.kid) !== "Active") {
    throw unauthenticated(policy, "Signer is not an ACTIVE member");
  }
  if (opts.proposalId !== undefined && headers.proposalId !== opts.proposalId) {
    throw HttpErrors.InvalidResourceName("Authenticated proposal id does not match URL");
  }
  return {
    memberId,
    memberCert,
    msgType: headers.msgType,
    createdAt: headers.createdAt,
    proposalId: headers.proposalId,
    content: decoded.payload ?? Buffer.alloc(0),
    protectedHeaders: decoded.protectedHeaders,
    signature: decoded.signature,
    envelope: Buffer.from(bytes),
  };
}

function memberStatus(tx: Tx, kid: Buffer): string | undefined {
  const raw = tx.map(Tables.MEMBER_INFO).get(kid);
  if (raw === undefined) return undefined;
  const info = decodeValue(Tables.MEMBER_INFO, raw);
  if (info === null || typeof info !== "object") return undefined;
  const status = (info as { status?: unknown }).status;
  return typeof status === "string" ? status : undefined;
}

// ---------------------------------------------------------------------------------------------
// Replay protection for proposals

/** One row of `public:ccf.gov.cose_recent_proposals`. */
export interface RecentProposal {
  /** `"{created_at:010}:{hex sha256(signature)}"`. */
  key: string;
  proposalId: string;
}

/** The cose_recent_proposals key of a message: its created_at, padded, and its request digest. */
export function recentProposalKey(createdAt: number, signature: Uint8Array): string {
  return `${String(createdAt).padStart(10, "0")}:${sha256(signature).toString("hex")}`;
}

export interface ProposalReplayCheck {
  /** Write `key → proposalId` into cose_recent_proposals. */
  key: string;
  /** Then remove these keys, so the table keeps only the window. */
  evict: string[];
}

/**
 * CCF's check of a new proposal against the recent ones (validate_proposal_submission_time):
 * - created_at above MAX_CREATED_AT: 400 InvalidCreatedAt;
 * - the same key already recorded (same time, same signature): 400 ProposalReplay;
 * - created_at before the median of the recorded keys: 400 ProposalCreatedTooLongAgo.
 * Otherwise returns the key to record and the oldest keys to drop (beyond `windowSize`, default
 * 100 — the service config's `recent_cose_proposals_window_size`). Keys compare as strings, as in
 * CCF: the padding makes that a time order.
 */
export function checkProposalReplay(args: {
  recent: Iterable<RecentProposal>;
  createdAt: number;
  signature: Uint8Array;
  windowSize?: number;
}): ProposalReplayCheck {
  if (args.createdAt > MAX_CREATED_AT) {
    throw GovCoseErrors.InvalidCreatedAt("Header parameter created_at value is too large");
  }
  const key = recentProposalKey(args.createdAt, args.signature);
  const recent = [...args.recent];
  const colliding = recent.find((r) => r.key === key);
  if (colliding !== undefined) {
    throw GovCoseErrors.ProposalReplay(
      `Proposal submission replay, already exists as proposal ${colliding.proposalId}`,
    );
  }
  const keys = recent.map((r) => r.key).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (keys.length > 0) {
    const median = keys[Math.floor(keys.length / 2)] ?? "";
    const minCreatedAt = median.split(":", 1)[0] ?? "";
    const createdAt = key.split(":", 1)[0] ?? "";
    if (createdAt < minCreatedAt) {
      throw GovCoseErrors.ProposalCreatedTooLongAgo(
        `Proposal created too long ago, created_at must be greater than ${minCreatedAt}`,
      );
    }
  }
  const windowSize = Math.max(1, args.windowSize ?? DEFAULT_RECENT_COSE_PROPOSALS_WINDOW_SIZE);
  // The new key takes one place in the window; the oldest existing keys make room.
  const excess = keys.length - (windowSize - 1);
  return { key, evict: excess > 0 ? keys.slice(0, excess) : [] };
}
