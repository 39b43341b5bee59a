// The COSE-signed governance writes of CCF's member API (2024-07-01): proposals, ballots,
// withdrawals and state-digest acknowledgements. Each runs in one transaction, kept only when the
// handler answers 2xx.

import { HttpErrors } from "../errors.js";
import {
  ackStateDigest,
  govUnauthenticated,
  type Proposals,
  updateStateDigest,
  type VerifiedGovMessage,
  verifyGovMessage,
} from "../gov/index.js";
import { decodeValue, idKey, Tables, type Tx } from "../kv/index.js";
import { checkApiVersion } from "./gov.js";
import type { Endpoint, EndpointRequest, EndpointResponse } from "./types.js";

export interface GovWriteDeps {
  proposals: Proposals;
  /**
   * Runs `fn` in a transaction (again on a conflict) and keeps its writes when it answers 2xx;
   * an HttpError thrown by `fn` drops them and becomes the answer.
   */
  transact(fn: (tx: Tx) => Promise<EndpointResponse>): Promise<EndpointResponse>;
  /** The Merkle root over the first `seqno` transactions. */
  rootAt(seqno: number): Uint8Array;
  /** A member became Active (recovery shares are re-issued to include it). */
  onMemberActive?(tx: Tx, memberId: string): void;
}

function ok(body: unknown): EndpointResponse {
  return { status: 200, headers: { "content-type": "application/json" }, body };
}

/** CCF's COSE policies refuse (401) a request that is not COSE before looking at its body. */
export function requireCose(req: EndpointRequest, msgType: string): void {
  const type = req.headers["content-type"];
  if (type?.split(";")[0]?.trim().toLowerCase() === "application/cose") return;
  const policy =
    msgType === "ack" || msgType === "state_digest"
      ? "member_cose_sign1"
      : "active_member_cose_sign1";
  throw govUnauthenticated(
    policy,
    type === undefined
      ? "Missing content-type header"
      : "Content type is not set to application/cose",
  );
}

function memberIsActive(tx: Tx, memberId: string): boolean {
  const raw = tx.map(Tables.MEMBER_INFO).get(idKey(memberId));
  return (
    raw !== undefined &&
    (decodeValue(Tables.MEMBER_INFO, raw) as { status?: unknown }).status === "Active"
  );
}

/** CCF's hex ids are 64 lower-case hex characters. */
function param(req: EndpointRequest, name: string): string {
  const v = req.params[name];
  if (v === undefined || !/^[0-9a-f]{64}$/.test(v)) {
    throw HttpErrors.InvalidResourceName(`Invalid ${name}: ${v ?? "(missing)"}`);
  }
  return v;
}

export function govMemberWriteEndpoints(deps: GovWriteDeps): Endpoint[] {
  const signed = (
    path: string,
    msgType: string,
    body: (
      req: EndpointRequest,
      tx: Tx,
      msg: VerifiedGovMessage,
    ) => EndpointResponse | Promise<EndpointResponse>,
    proposalIdParam = false,
  ): Endpoint => ({
    method: "POST",
    path,
    handler: async (req) => {
      // An HttpError thrown from here on is the answer (the front end renders it). As CCF, the
      // authentication policy comes first: a request that is not COSE is a 401 before anything.
      requireCose(req, msgType);
      const bad = checkApiVersion(req);
      if (bad !== undefined) return bad;
      const proposalId = proposalIdParam ? param(req, "proposalId") : undefined;
      return deps.transact(async (tx) => {
        const msg = verifyGovMessage(req.body, {
          tx,
          expectedType: msgType,
          ...(proposalId === undefined ? {} : { proposalId }),
        });
        return await body(req, tx, msg);
      });
    },
  });

  return [
    signed("/gov/members/proposals:create", "proposal", async (_req, tx, msg) =>
      ok(await deps.proposals.create(tx, msg, deps.rootAt(tx.readVersion))),
    ),
    signed(
      "/gov/members/proposals/{proposalId}:withdraw",
      "withdrawal",
      (req, tx, msg) => {
        const summary = deps.proposals.withdraw(tx, msg, param(req, "proposalId"));
        return summary === undefined ? { status: 204 } : ok(summary);
      },
      true,
    ),
    signed(
      "/gov/members/proposals/{proposalId}/ballots/{memberId}:submit",
      "ballot",
      async (req, tx, msg) => {
        const memberId = param(req, "memberId");
        if (memberId !== msg.memberId) {
          throw HttpErrors.InvalidResourceName(
            `Authenticated member id does not match URL: ${msg.memberId} != ${memberId}`,
          );
        }
        return ok(await deps.proposals.submitBallot(tx, msg, param(req, "proposalId"), memberId));
      },
      true,
    ),
    signed("/gov/members/state-digests/{memberId}:update", "state_digest", (req, tx, msg) =>
      ok(updateStateDigest(tx, msg, param(req, "memberId"))),
    ),
    signed("/gov/members/state-digests/{memberId}:ack", "ack", (req, tx, msg) => {
      const memberId = param(req, "memberId");
      const wasActive = memberIsActive(tx, memberId);
      ackStateDigest(tx, msg, memberId);
      if (!wasActive) deps.onMemberActive?.(tx, memberId);
      return { status: 204 };
    }),
  ];
}
