// The proposal lifecycle over the governance tables, as CCF's proposals.h and acks.h run it:
// create (validate, store, resolve at once), ballots (every ballot re-run, then resolve),
// withdrawal, and member activation through state digests. Every function works in the request's
// transaction; a thrown HttpError means the transaction must be dropped.

import { sha256 } from "../crypto/index.js";
import { HttpError, HttpErrors } from "../errors.js";
import { decodeValue, encodeValue, idKey, SINGLETON_KEY, Tables, type Tx } from "../kv/index.js";
import { ConstitutionRunner, GovCallFailed, type GovFailure } from "./constitution.js";
import { checkProposalReplay, type VerifiedGovMessage } from "./cose.js";

export type ProposalState = "Open" | "Accepted" | "Withdrawn" | "Rejected" | "Failed" | "Dropped";

/** CCF's `ccf::jsgov::ProposalInfo` as stored in `public:ccf.gov.proposals_info`. */
export interface ProposalInfo {
  proposer_id: string;
  state: ProposalState;
  ballots: Record<string, string>;
  final_votes?: Record<string, boolean>;
  vote_failures?: Record<string, GovFailure>;
  failure?: GovFailure;
}

/** CCF's API shape of a proposal (2024-07-01). */
export interface ProposalSummary {
  proposalId: string;
  proposerId: string;
  proposalState: ProposalState;
  ballotCount: number;
  finalVotes?: Record<string, boolean>;
  voteFailures?: Record<string, GovFailure>;
  failure?: GovFailure;
}

export function proposalSummary(proposalId: string, info: ProposalInfo): ProposalSummary {
  const out: ProposalSummary = {
    proposalId,
    proposerId: info.proposer_id,
    proposalState: info.state,
    ballotCount: Object.keys(info.ballots).length,
  };
  if (info.final_votes !== undefined) out.finalVotes = info.final_votes;
  if (info.vote_failures !== undefined) out.voteFailures = info.vote_failures;
  if (info.failure !== undefined) out.failure = info.failure;
  return out;
}

export const GovErrors = {
  ProposalNotFound: (id: string) =>
    new HttpError(404, "ProposalNotFound", `Could not find proposal ${id}.`),
  ProposalNotOpen: (message: string) => new HttpError(400, "ProposalNotOpen", message),
  ProposalFailedToValidate: (message: string) =>
    new HttpError(400, "ProposalFailedToValidate", message),
  VoteAlreadyExists: (message: string) => new HttpError(400, "VoteAlreadyExists", message),
  StateDigestMismatch: (message: string) => new HttpError(400, "StateDigestMismatch", message),
} as const;

function readInfo(tx: Tx, proposalId: string): ProposalInfo | undefined {
  const raw = tx.map(Tables.PROPOSALS_INFO).get(idKey(proposalId));
  return raw === undefined ? undefined : (decodeValue(Tables.PROPOSALS_INFO, raw) as ProposalInfo);
}

function writeInfo(tx: Tx, proposalId: string, info: ProposalInfo): void {
  tx.map(Tables.PROPOSALS_INFO).set(idKey(proposalId), encodeValue(Tables.PROPOSALS_INFO, info));
}

function constitutionOf(tx: Tx, what: string): string {
  const raw = tx.map(Tables.CONSTITUTION).get(SINGLETON_KEY);
  if (raw === undefined) {
    throw HttpErrors.InternalError(`No constitution is set - ${what} cannot be evaluated`);
  }
  return decodeValue(Tables.CONSTITUTION, raw) as string;
}

/** A required string field of the signed JSON body, or CCF's 400. */
function signedStringField(msg: VerifiedGovMessage, field: string): string {
  let body: unknown;
  try {
    body = JSON.parse(msg.content.toString("utf8"));
  } catch {
    body = undefined;
  }
  const value =
    body !== null && typeof body === "object" && !Array.isArray(body)
      ? (body as Record<string, unknown>)[field]
      : undefined;
  if (typeof value !== "string") {
    throw HttpErrors.InvalidInput(
      `Signed request body is not a JSON object containing required string field "${field}"`,
    );
  }
  return value;
}

function recordCoseHistory(tx: Tx, msg: VerifiedGovMessage): void {
  tx.map(Tables.COSE_HISTORY).set(
    idKey(msg.memberId),
    encodeValue(Tables.COSE_HISTORY, msg.envelope.toString("base64")),
  );
}

/** When one proposal leaves Open, CCF prunes every other proposal that is no longer Open. */
function removeOtherClosedProposals(tx: Tx, proposalId: string): void {
  const infos = tx.map(Tables.PROPOSALS_INFO);
  const closed: Buffer[] = [];
  infos.forEach((value, key) => {
    const id = Buffer.from(key).toString("utf8");
    if (id === proposalId) return;
    const info = decodeValue(Tables.PROPOSALS_INFO, value) as ProposalInfo;
    if (info.state !== "Open") closed.push(Buffer.from(key));
  });
  const proposals = tx.map(Tables.PROPOSALS);
  for (const key of closed) {
    proposals.delete(key);
    infos.delete(key);
  }
}

function failureMessage(f: GovFailure): string {
  // CCF formats the Failure struct with fmt: its JSON.
  return JSON.stringify({ reason: f.reason, trace: f.trace ?? null });
}

function recentWindowSize(tx: Tx): number | undefined {
  const raw = tx.map(Tables.CONFIGURATION).get(SINGLETON_KEY);
  if (raw === undefined) return undefined;
  const v = (decodeValue(Tables.CONFIGURATION, raw) as Record<string, unknown>)
    .recent_cose_proposals_window_size;
  return typeof v === "number" && v > 0 ? v : undefined;
}

export class Proposals {
  constructor(private readonly runner: ConstitutionRunner) {}

  /**
   * POST /gov/members/proposals:create. `rootAtRead` is the Merkle root at the transaction's read
   * version: the proposal id binds the proposal to the state it was made against.
   */
  async create(tx: Tx, msg: VerifiedGovMessage, rootAtRead: Uint8Array): Promise<ProposalSummary> {
    const requestDigest = sha256(msg.signature);
    const proposalId = sha256(Buffer.concat([rootAtRead, requestDigest])).toString("hex");
    const constitution = constitutionOf(tx, "proposals");
    const proposal = msg.content.toString("utf8");

    let result: unknown;
    try {
      result = await this.runner.validate(tx, constitution, proposal);
    } catch (e) {
      if (e instanceof GovCallFailed) {
        throw HttpErrors.InternalError(
          `Failed to execute validation: ${e.failure.reason} ${e.failure.trace ?? ""}`,
        );
      }
      throw e;
    }
    if (result === null || typeof result !== "object" || Array.isArray(result)) {
      throw HttpErrors.InternalError("Validation failed to return an object");
    }
    const r = result as Record<string, unknown>;
    const description = typeof r.description === "string" ? r.description : "";
    if (r.valid !== true) {
      throw GovErrors.ProposalFailedToValidate(`Proposal failed to validate: ${description}`);
    }

    const proposals = tx.map(Tables.PROPOSALS);
    // A read of the id: identical proposals racing at one read version conflict, as in CCF.
    if (proposals.has(idKey(proposalId))) throw HttpErrors.InternalError("Proposal ID collision.");
    proposals.set(idKey(proposalId), encodeValue(Tables.PROPOSALS, proposal));
    const info: ProposalInfo = { proposer_id: msg.memberId, state: "Open", ballots: {} };
    writeInfo(tx, proposalId, info);
    recordCoseHistory(tx, msg);

    const recent = tx.map(Tables.COSE_RECENT_PROPOSALS);
    const entries: Array<{ key: string; proposalId: string }> = [];
    recent.forEach((value, key) => {
      entries.push({
        key: Buffer.from(key).toString("utf8"),
        proposalId: decodeValue(Tables.COSE_RECENT_PROPOSALS, value) as string,
      });
    });
    const window = recentWindowSize(tx);
    const check = checkProposalReplay({
      recent: entries,
      createdAt: msg.createdAt,
      signature: msg.signature,
      ...(window === undefined ? {} : { windowSize: window }),
    });
    recent.set(Buffer.from(check.key), encodeValue(Tables.COSE_RECENT_PROPOSALS, proposalId));
    for (const key of check.evict) recent.delete(Buffer.from(key));

    await this.resolve(tx, proposalId, proposal, info, constitution);
    if (info.state === "Failed" && info.failure !== undefined) {
      throw HttpErrors.InternalError(failureMessage(info.failure));
    }
    return proposalSummary(proposalId, info);
  }

  /** POST /gov/members/proposals/{proposalId}/ballots/{memberId}:submit. */
  async submitBallot(
    tx: Tx,
    msg: VerifiedGovMessage,
    proposalId: string,
    memberId: string,
  ): Promise<ProposalSummary> {
    const info = readInfo(tx, proposalId);
    if (info === undefined) throw GovErrors.ProposalNotFound(proposalId);
    if (info.state !== "Open") {
      throw GovErrors.ProposalNotOpen(
        `Proposal ${proposalId} is currently in state ${info.state} - only Open proposals can receive votes`,
      );
    }
    const raw = tx.map(Tables.PROPOSALS).get(idKey(proposalId));
    if (raw === undefined) throw GovErrors.ProposalNotFound(proposalId);
    const proposal = decodeValue(Tables.PROPOSALS, raw) as string;

    const ballot = signedStringField(msg, "ballot");
    const constitution = constitutionOf(tx, "ballots");
    const previous = info.ballots[memberId];
    if (previous !== undefined) {
      if (previous === ballot) return proposalSummary(proposalId, info);
      throw GovErrors.VoteAlreadyExists(
        `Different ballot already submitted by ${memberId} for ${proposalId}.`,
      );
    }
    info.ballots[memberId] = ballot;
    recordCoseHistory(tx, msg);
    await this.resolve(tx, proposalId, proposal, info, constitution);
    // `resolve` updated the state in place.
    if ((info.state as ProposalState) === "Failed" && info.failure !== undefined) {
      throw HttpErrors.InternalError(failureMessage(info.failure));
    }
    return proposalSummary(proposalId, info);
  }

  /** POST /gov/members/proposals/{proposalId}:withdraw; undefined means 204 (unknown proposal). */
  withdraw(tx: Tx, msg: VerifiedGovMessage, proposalId: string): ProposalSummary | undefined {
    const info = readInfo(tx, proposalId);
    if (info === undefined) return undefined;
    if (msg.memberId !== info.proposer_id) {
      throw HttpErrors.AuthorizationFailed(
        `Proposal ${proposalId} can only be withdrawn by proposer ${info.proposer_id}, not caller ${msg.memberId}.`,
      );
    }
    if (info.state !== "Open" && info.state !== "Withdrawn") {
      throw GovErrors.ProposalNotOpen(
        `Proposal ${proposalId} is currently in state ${info.state} and cannot be withdrawn.`,
      );
    }
    if (info.state === "Open") {
      info.state = "Withdrawn";
      writeInfo(tx, proposalId, info);
      removeOtherClosedProposals(tx, proposalId);
      recordCoseHistory(tx, msg);
    }
    return proposalSummary(proposalId, info);
  }

  /**
   * Re-runs every ballot, then resolve; on leaving Open, prunes other closed proposals, records
   * the final votes and, if Accepted, runs apply. `info` is updated in place and written back.
   */
  private async resolve(
    tx: Tx,
    proposalId: string,
    proposal: string,
    info: ProposalInfo,
    constitution: string,
  ): Promise<void> {
    const votes: Record<string, boolean> = {};
    const voteFailures: Record<string, GovFailure> = {};
    for (const [memberId, ballot] of Object.entries(info.ballots).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0,
    )) {
      try {
        votes[memberId] = await this.runner.vote(
          tx,
          `${Tables.PROPOSALS_INFO}[${proposalId}].ballots[${memberId}]`,
          ballot,
          proposal,
          info.proposer_id,
        );
      } catch (e) {
        if (!(e instanceof GovCallFailed)) throw e;
        voteFailures[memberId] = e.failure;
      }
    }

    let outcome: unknown;
    try {
      outcome = await this.runner.resolve(
        tx,
        constitution,
        proposal,
        info.proposer_id,
        Object.entries(votes).map(([member_id, vote]) => ({ member_id, vote })),
        proposalId,
      );
      if (outcome === "Open" || outcome === "Accepted" || outcome === "Rejected") {
        info.state = outcome;
      } else {
        info.state = "Failed";
        info.failure = {
          reason: `resolve() returned invalid status value: "${typeof outcome === "string" ? outcome : ""}"`,
          trace: null,
        };
      }
    } catch (e) {
      if (!(e instanceof GovCallFailed)) throw e;
      info.state = "Failed";
      info.failure = { reason: `Failed to resolve(): ${e.failure.reason}`, trace: e.failure.trace };
    }
    writeInfo(tx, proposalId, info);
    if (info.state === "Open") return;

    removeOtherClosedProposals(tx, proposalId);
    info.final_votes = votes;
    info.vote_failures = voteFailures;
    writeInfo(tx, proposalId, info);
    if (info.state !== "Accepted") return;
    try {
      await this.runner.apply(tx, constitution, proposal, proposalId);
    } catch (e) {
      if (!(e instanceof GovCallFailed)) throw e;
      info.state = "Failed";
      info.failure = { reason: `Failed to apply(): ${e.failure.reason}`, trace: e.failure.trace };
      writeInfo(tx, proposalId, info);
    }
  }
}

/** The latest signed Merkle root, hex: what a member acknowledges (CCF's state digest). */
function latestSignedRoot(tx: Tx): string | undefined {
  const raw = tx.map(Tables.SIGNATURES).get(SINGLETON_KEY);
  if (raw === undefined) return undefined;
  const root = (decodeValue(Tables.SIGNATURES, raw) as Record<string, unknown>).root;
  return typeof root === "string" ? root : undefined;
}

interface MemberAck {
  state_digest: string;
  cose_sign1_req?: string;
  signed_req?: unknown;
}

/** POST /gov/members/state-digests/{memberId}:update. */
export function updateStateDigest(
  tx: Tx,
  msg: VerifiedGovMessage,
  memberId: string,
): { memberId: string; stateDigest: string } {
  if (msg.memberId !== memberId) {
    throw new HttpError(
      400,
      "InvalidAuthenticationInfo",
      `Member ID from path parameter (${memberId}) does not match member ID from body signature (${msg.memberId}).`,
    );
  }
  const acks = tx.map(Tables.MEMBER_ACKS);
  const raw = acks.get(idKey(memberId));
  const ack: MemberAck =
    raw === undefined ? { state_digest: "" } : (decodeValue(Tables.MEMBER_ACKS, raw) as MemberAck);
  const root = latestSignedRoot(tx);
  if (root === undefined) {
    throw HttpErrors.InternalError("Service has no signatures to ack yet - try again soon.");
  }
  ack.state_digest = root;
  acks.set(idKey(memberId), encodeValue(Tables.MEMBER_ACKS, ack));
  return { memberId, stateDigest: root };
}

/** POST /gov/members/state-digests/{memberId}:ack: the member becomes Active. */
export function ackStateDigest(tx: Tx, msg: VerifiedGovMessage, memberId: string): void {
  if (msg.memberId !== memberId) {
    throw new HttpError(
      400,
      "InvalidAuthenticationInfo",
      `Member ID from path parameter (${memberId}) does not match member ID from body signature (${msg.memberId}).`,
    );
  }
  const acks = tx.map(Tables.MEMBER_ACKS);
  const raw = acks.get(idKey(memberId));
  if (raw === undefined) {
    throw HttpErrors.AuthorizationFailed(`No ACK record exists for member ${memberId}.`);
  }
  const ack = decodeValue(Tables.MEMBER_ACKS, raw) as MemberAck;
  const digest = signedStringField(msg, "stateDigest");
  if (digest !== ack.state_digest) {
    throw GovErrors.StateDigestMismatch(
      `Submitted state digest is not valid.\nExpected\n ${ack.state_digest}\nReceived\n ${digest}`,
    );
  }
  delete ack.signed_req;
  ack.cose_sign1_req = msg.envelope.toString("base64");
  acks.set(idKey(memberId), encodeValue(Tables.MEMBER_ACKS, ack));
  const infos = tx.map(Tables.MEMBER_INFO);
  const rawInfo = infos.get(idKey(memberId));
  if (rawInfo === undefined) {
    throw HttpErrors.InternalError(`Error activating member: member ${memberId} does not exist`);
  }
  const info = decodeValue(Tables.MEMBER_INFO, rawInfo) as Record<string, unknown>;
  if (info.status !== "Active") {
    info.status = "Active";
    infos.set(idKey(memberId), encodeValue(Tables.MEMBER_INFO, info));
  }
}
