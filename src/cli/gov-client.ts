// A member's governance client: signs each request (COSE Sign1, as `ccf-ts cose-sign`) and sends
// it to a node's gov API. Used by `ccf-ts gov` and by the sandbox's bootstrap.

import { Agent, request } from "undici";
import { certificateId, rsaOaepUnwrap } from "../crypto/index.js";
import { CcfError } from "../errors.js";
import { type ProposalSummary, signGovMessage } from "../gov/index.js";

export const GOV_API_VERSION = "2024-07-01";

export interface GovSigner {
  certPem: string;
  keyPem: string;
}

export interface GovResponse {
  status: number;
  body: unknown;
  text: string;
  txId: string | undefined;
}

/** A governance request the service refused: its status and CCF's error body. */
export class GovRequestError extends CcfError {
  constructor(
    readonly response: GovResponse,
    what: string,
  ) {
    const err = (response.body as { error?: { code?: string; message?: string } } | undefined)
      ?.error;
    super(
      err?.code ?? "GovRequestFailed",
      `${what}: ${response.status} ${err?.message ?? response.text}`,
    );
  }
}

export interface RecoveryShareAnswer {
  message: string;
  submittedCount: number;
  recoveryThreshold: number;
  fullKeySubmitted: boolean;
}

export class GovClient {
  readonly memberId: string;
  private readonly agent: Agent;
  /** created_at of the last message: strictly increasing, so no two messages collide. */
  private lastCreatedAt = 0;

  constructor(
    private readonly url: string,
    caPem: string,
    private readonly signer: GovSigner,
    private readonly now: () => number = Date.now,
  ) {
    this.memberId = certificateId(signer.certPem);
    this.agent = new Agent({ connect: { ca: caPem } });
  }

  close(): Promise<void> {
    return this.agent.close();
  }

  /** The signed message `ccf-ts cose-sign` would make for these arguments. */
  sign(msgType: string, content: Uint8Array | string, proposalId?: string): Buffer {
    const createdAt = Math.max(Math.floor(this.now() / 1000), this.lastCreatedAt);
    this.lastCreatedAt = createdAt;
    return signGovMessage({
      signingKeyPem: this.signer.keyPem,
      signingCertPem: this.signer.certPem,
      msgType,
      createdAt,
      content: typeof content === "string" ? Buffer.from(content) : content,
      ...(proposalId === undefined ? {} : { proposalId }),
    });
  }

  async get(path: string): Promise<GovResponse> {
    return this.send("GET", path);
  }

  async post(path: string, body: Buffer): Promise<GovResponse> {
    return this.send("POST", path, body);
  }

  async propose(proposal: unknown): Promise<ProposalSummary> {
    const content = typeof proposal === "string" ? proposal : JSON.stringify(proposal);
    const res = await this.post("/gov/members/proposals:create", this.sign("proposal", content));
    return this.expect(res, "proposal", 200) as ProposalSummary;
  }

  async vote(proposalId: string, ballot: string): Promise<ProposalSummary> {
    const res = await this.post(
      `/gov/members/proposals/${proposalId}/ballots/${this.memberId}:submit`,
      this.sign("ballot", JSON.stringify({ ballot }), proposalId),
    );
    return this.expect(res, "ballot", 200) as ProposalSummary;
  }

  async withdraw(proposalId: string): Promise<ProposalSummary | undefined> {
    const res = await this.post(
      `/gov/members/proposals/${proposalId}:withdraw`,
      this.sign("withdrawal", "", proposalId),
    );
    if (res.status === 204) return undefined;
    return this.expect(res, "withdrawal", 200) as ProposalSummary;
  }

  /** Accepted → Active: fetch the state digest to acknowledge, then sign the acknowledgement. */
  async activate(): Promise<void> {
    const base = `/gov/members/state-digests/${this.memberId}`;
    const digest = this.expect(
      await this.post(`${base}:update`, this.sign("state_digest", "")),
      "state digest update",
      200,
    );
    this.expect(
      await this.post(`${base}:ack`, this.sign("ack", JSON.stringify(digest))),
      "state digest ack",
      204,
    );
  }

  /**
   * CCF's share submission: fetch this member's encrypted share, decrypt it with the member's
   * RSA key (OAEP, SHA-256) and send it back COSE-signed as {"share": base64}.
   */
  async submitShare(encryptionKeyPem: string): Promise<RecoveryShareAnswer> {
    const fetched = this.expect(
      await this.get(`/gov/recovery/encrypted-shares/${this.memberId}`),
      "encrypted share",
      200,
    ) as { encryptedShare?: unknown };
    if (typeof fetched.encryptedShare !== "string") {
      throw new CcfError("InvalidResponse", "the service sent no encryptedShare");
    }
    const share = rsaOaepUnwrap(encryptionKeyPem, Buffer.from(fetched.encryptedShare, "base64"));
    const res = await this.post(
      `/gov/recovery/members/${this.memberId}:recover`,
      this.sign("recovery_share", JSON.stringify({ share: share.toString("base64") })),
    );
    return this.expect(res, "recovery share", 200) as RecoveryShareAnswer;
  }

  private expect(res: GovResponse, what: string, status: number): unknown {
    if (res.status !== status) throw new GovRequestError(res, what);
    return res.body;
  }

  private async send(method: "GET" | "POST", path: string, body?: Buffer): Promise<GovResponse> {
    const sep = path.includes("?") ? "&" : "?";
    const res = await request(`${this.url}${path}${sep}api-version=${GOV_API_VERSION}`, {
      dispatcher: this.agent,
      method,
      ...(body === undefined ? {} : { body, headers: { "content-type": "application/cose" } }),
    });
    const text = await res.body.text();
    let parsed: unknown = text;
    if (String(res.headers["content-type"] ?? "").startsWith("application/json")) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    const txId = res.headers["x-ms-ccf-transaction-id"];
    return {
      status: res.statusCode,
      body: parsed,
      text,
      txId: typeof txId === "string" ? txId : undefined,
    };
  }
}
