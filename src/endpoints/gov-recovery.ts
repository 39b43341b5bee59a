// CCF's recovery-share endpoints (2024-07-01): any caller may fetch a member's encrypted share;
// an active member submits its decrypted share COSE-signed (`recovery_share`), and the submission
// that reaches the threshold starts the private recovery.

import { HttpError, HttpErrors } from "../errors.js";
import { verifyGovMessage } from "../gov/index.js";
import type { Tx } from "../kv/index.js";
import { checkApiVersion } from "./gov.js";
import { requireCose } from "./gov-members.js";
import type { Endpoint, EndpointRequest, EndpointResponse } from "./types.js";

export interface RecoveryShareDeps {
  /** A read-only transaction over the current state. */
  read(): Tx;
  /** Member `memberId`'s RSA-OAEP encrypted share in the latest recovery_shares, if any. */
  encryptedShare(tx: Tx, memberId: string): Buffer | undefined;
  /**
   * Runs the submission: `fn` verifies the message and records the share in the transaction,
   * whose writes are kept whatever it answers (a failed combination clears the shares).
   */
  submit(fn: (tx: Tx) => Promise<EndpointResponse>): Promise<EndpointResponse>;
  /** What the node does with a share (see node.ts); throws HttpError to refuse. */
  recordShare(tx: Tx, memberId: string, share: Buffer): EndpointResponse;
}

function memberIdParam(req: EndpointRequest): string {
  const v = req.params.memberId;
  if (v === undefined || !/^[0-9a-f]{64}$/.test(v)) {
    throw HttpErrors.InvalidResourceName(`Invalid memberId: ${v ?? "(missing)"}`);
  }
  return v;
}

export function govRecoveryEndpoints(deps: RecoveryShareDeps): Endpoint[] {
  return [
    {
      method: "GET",
      path: "/gov/recovery/encrypted-shares/{memberId}",
      handler: (req) => {
        const bad = checkApiVersion(req);
        if (bad !== undefined) return bad;
        const memberId = memberIdParam(req);
        const share = deps.encryptedShare(deps.read(), memberId);
        if (share === undefined) {
          throw new HttpError(
            404,
            "ResourceNotFound",
            `Recovery share not found for member ${memberId}.`,
          );
        }
        return {
          status: 200,
          headers: { "content-type": "application/json" },
          body: { memberId, encryptedShare: share.toString("base64") },
        };
      },
    },
    {
      method: "POST",
      path: "/gov/recovery/members/{memberId}:recover",
      forwarding: "always",
      handler: async (req) => {
        // active_member_cose_sign1: a body that is not COSE is a 401 (before the api-version
        // check, as CCF), as for the other member writes.
        requireCose(req, "recovery_share");
        const bad = checkApiVersion(req);
        if (bad !== undefined) return bad;
        const memberId = memberIdParam(req);
        return deps.submit((tx) => {
          const msg = verifyGovMessage(req.body, { tx, expectedType: "recovery_share" });
          if (msg.memberId !== memberId) {
            throw new HttpError(
              400,
              "InvalidAuthenticationInfo",
              `Member ID from path parameter (${memberId}) does not match member ID from body signature (${msg.memberId}).`,
            );
          }
          let share: Buffer;
          try {
            const body = JSON.parse(msg.content.toString("utf8")) as { share?: unknown };
            if (typeof body.share !== "string") throw new Error("no share");
            share = Buffer.from(body.share, "base64");
          } catch {
            throw HttpErrors.InvalidInput(
              'The recovery share must be JSON {"share": "<base64 of the decrypted share>"}',
            );
          }
          return Promise.resolve(deps.recordShare(tx, memberId, share));
        });
      },
    },
  ];
}
