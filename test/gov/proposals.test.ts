// Tests for the proposal lifecycle: validate, resolve at once and on every ballot (all ballots
// re-run), apply, each final state, withdrawal, replay protection, member activation, audit trail.

import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { certificateId, createSelfSignedCertificate, EcKeyPair } from "../../src/crypto/index.js";
import { HttpError } from "../../src/errors.js";
import {
  ackStateDigest,
  ConstitutionRunner,
  type GovEffects,
  type ProposalInfo,
  Proposals,
  signGovMessage,
  updateStateDigest,
  verifyGovMessage,
} from "../../src/gov/index.js";
import {
  decodeValue,
  encodeValue,
  idKey,
  SINGLETON_KEY,
  Store,
  type Tx,
  Tables,
} from "../../src/kv/index.js";

/** A small constitution: majority of active members, a few test actions. */
const CONSTITUTION = `
const actions = {
  set_flag: (args) => ccf.kv["public:test.flags"].set(ccf.strToBuf(args.name), ccf.strToBuf(String(args.value))),
  explode: () => { throw new Error("boom in apply"); },
};
export function validate(input) {
  const p = JSON.parse(input);
  for (const a of p.actions) {
    if (!(a.name in actions) && a.name !== "bad_resolve" && a.name !== "veto") {
      return { valid: false, description: "unknown action " + a.name };
    }
  }
  return { valid: true, description: "OK" };
}
export function resolve(proposal, proposerId, votes, proposalId) {
  const p = JSON.parse(proposal);
  if (p.actions.some((a) => a.name === "bad_resolve")) return "Maybe";
  if (p.actions.some((a) => a.name === "veto") && votes.some((v) => !v.vote)) return "Rejected";
  let active = 0;
  ccf.kv["public:ccf.gov.members.info"].forEach((v) => {
    if (ccf.bufToJsonCompatible(v).status === "Active") active++;
  });
  const yes = votes.filter((v) => v.vote).length;
  return yes > Math.floor(active / 2) ? "Accepted" : "Open";
}
export function apply(proposal, proposalId) {
  for (const a of JSON.parse(proposal).actions) actions[a.name](a.args ?? {});
}
`;

const effects = new Proxy({} as GovEffects, {
  get: () => () => {
    throw new Error("no effects in this test");
  },
});

interface Member {
  key: EcKeyPair;
  cert: string;
  id: string;
}

async function member(name: string): Promise<Member> {
  const key = EcKeyPair.generate("secp384r1");
  const cert = await createSelfSignedCertificate(key, {
    subjectName: `CN=${name}`,
    validFrom: new Date(Date.now() - 60_000),
    validityDays: 30,
  });
  return { key, cert, id: certificateId(cert) };
}

let clock = 1_700_000_000;

function message(
  who: Member,
  msgType: string,
  content: unknown,
  extra: { proposalId?: string; createdAt?: number } = {},
): Buffer {
  clock += 1;
  return signGovMessage({
    signingKeyPem: who.key.privateKeyPem,
    signingCertPem: who.cert,
    msgType,
    createdAt: extra.createdAt ?? clock,
    content: Buffer.from(typeof content === "string" ? content : JSON.stringify(content)),
    ...(extra.proposalId === undefined ? {} : { proposalId: extra.proposalId }),
  });
}

const ROOT = Buffer.alloc(32, 7);

class Service {
  readonly store = new Store();
  readonly proposals = new Proposals(new ConstitutionRunner({ effects, log: () => undefined }));

  constructor(members: Array<[Member, "Active" | "Accepted"]>) {
    this.write((tx) => {
      tx.map(Tables.CONSTITUTION).set(
        SINGLETON_KEY,
        encodeValue(Tables.CONSTITUTION, CONSTITUTION),
      );
      for (const [m, status] of members) {
        tx.map(Tables.MEMBER_CERTS).set(idKey(m.id), encodeValue(Tables.MEMBER_CERTS, m.cert));
        tx.map(Tables.MEMBER_INFO).set(idKey(m.id), encodeValue(Tables.MEMBER_INFO, { status }));
      }
      tx.map(Tables.SIGNATURES).set(
        SINGLETON_KEY,
        encodeValue(Tables.SIGNATURES, { root: "ab".repeat(32) }),
      );
    });
  }

  write(fn: (tx: Tx) => void): void {
    const tx = this.store.begin();
    fn(tx);
    this.store.commit(tx);
  }

  /** Runs one governance request like the node does: kept only if it does not throw. */
  async request<T>(
    type: string,
    bytes: Buffer,
    fn: (tx: Tx, msg: ReturnType<typeof verifyGovMessage>) => Promise<T> | T,
    proposalId?: string,
  ): Promise<T> {
    const tx = this.store.begin();
    const msg = verifyGovMessage(bytes, {
      tx,
      expectedType: type,
      ...(proposalId === undefined ? {} : { proposalId }),
    });
    const out = await fn(tx, msg);
    this.store.commit(tx);
    return out;
  }

  propose(who: Member, actions: unknown[]) {
    return this.request("proposal", message(who, "proposal", { actions }), (tx, msg) =>
      this.proposals.create(tx, msg, ROOT),
    );
  }

  vote(who: Member, proposalId: string, ballot: string) {
    return this.request(
      "ballot",
      message(who, "ballot", { ballot }, { proposalId }),
      (tx, msg) => this.proposals.submitBallot(tx, msg, proposalId, who.id),
      proposalId,
    );
  }

  info(proposalId: string): ProposalInfo | undefined {
    const raw = this.store.get(Tables.PROPOSALS_INFO, idKey(proposalId).toString("latin1"));
    return raw === undefined
      ? undefined
      : (decodeValue(Tables.PROPOSALS_INFO, raw) as ProposalInfo);
  }

  flag(name: string): string | undefined {
    const raw = this.store.get("public:test.flags", Buffer.from(name).toString("latin1"));
    return raw === undefined ? undefined : Buffer.from(raw).toString();
  }
}

const YES = "export function vote(proposal, proposerId) { return true; }";
const NO = "export function vote(proposal, proposerId) { return false; }";

async function rejects(p: Promise<unknown>, status: number, code: string, message?: RegExp) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof HttpError, String(e));
    assert.equal(e.status, status);
    assert.equal(e.code, code);
    if (message !== undefined) assert.match(e.message, message);
    return true;
  });
}

describe("proposals", () => {
  let a: Member;
  let b: Member;
  let c: Member;
  before(async () => {
    [a, b, c] = await Promise.all([member("a"), member("b"), member("c")]);
  });

  it("is Open after create, Accepted and applied once a majority of active members vote yes", async () => {
    const s = new Service([
      [a, "Active"],
      [b, "Active"],
      [c, "Active"],
    ]);
    const created = await s.propose(a, [{ name: "set_flag", args: { name: "x", value: 1 } }]);
    assert.equal(created.proposalState, "Open");
    assert.equal(created.proposerId, a.id);
    assert.equal(created.ballotCount, 0);
    assert.match(created.proposalId, /^[0-9a-f]{64}$/);

    const first = await s.vote(a, created.proposalId, YES);
    assert.equal(first.proposalState, "Open");
    assert.equal(s.flag("x"), undefined);
    const second = await s.vote(b, created.proposalId, YES);
    assert.equal(second.proposalState, "Accepted");
    assert.deepEqual(second.finalVotes, { [a.id]: true, [b.id]: true });
    assert.deepEqual(second.voteFailures, {});
    assert.equal(s.flag("x"), "1");
    const info = s.info(created.proposalId);
    assert.equal(info?.state, "Accepted");
    assert.deepEqual(Object.keys(info?.ballots ?? {}).sort(), [a.id, b.id].sort());
  });

  it("re-runs every ballot on each vote, against the state of that moment", async () => {
    const s = new Service([
      [a, "Active"],
      [b, "Active"],
      [c, "Accepted"],
    ]);
    // Yes once member c is Active (governance ballots read only governance tables).
    const gated = `export function vote(p, id) {
      const v = ccf.kv["public:ccf.gov.members.info"].get(ccf.strToBuf("${c.id}"));
      return ccf.bufToJsonCompatible(v).status === "Active";
    }`;
    const { proposalId } = await s.propose(a, [
      { name: "set_flag", args: { name: "g", value: 2 } },
    ]);
    assert.equal((await s.vote(a, proposalId, gated)).proposalState, "Open");
    s.write((tx) =>
      tx
        .map(Tables.MEMBER_INFO)
        .set(idKey(c.id), encodeValue(Tables.MEMBER_INFO, { status: "Active" })),
    );
    // b's vote re-runs a's ballot too, which now says yes.
    const after = await s.vote(b, proposalId, gated);
    assert.equal(after.proposalState, "Accepted");
    assert.deepEqual(after.finalVotes, { [a.id]: true, [b.id]: true });
  });

  it("is Rejected when resolve says so, and nothing is applied", async () => {
    const s = new Service([
      [a, "Active"],
      [b, "Active"],
    ]);
    const { proposalId } = await s.propose(a, [
      { name: "veto" },
      { name: "set_flag", args: { name: "v", value: 1 } },
    ]);
    const r = await s.vote(b, proposalId, NO);
    assert.equal(r.proposalState, "Rejected");
    assert.deepEqual(r.finalVotes, { [b.id]: false });
    assert.equal(s.flag("v"), undefined);
  });

  it("records a ballot that throws as a vote failure", async () => {
    const s = new Service([
      [a, "Active"],
      [b, "Active"],
    ]);
    const { proposalId } = await s.propose(a, [{ name: "veto" }]);
    const bad = "export function vote() { throw new Error('ballot broke'); }";
    const r = await s.vote(a, proposalId, bad);
    assert.equal(r.proposalState, "Open");
    const rejected = await s.vote(b, proposalId, NO);
    assert.equal(rejected.proposalState, "Rejected");
    assert.match(rejected.voteFailures?.[a.id]?.reason ?? "", /ballot broke/);
  });

  it("refuses a proposal the constitution does not validate (400 ProposalFailedToValidate)", async () => {
    const s = new Service([[a, "Active"]]);
    await rejects(
      s.propose(a, [{ name: "nope" }]),
      400,
      "ProposalFailedToValidate",
      /Proposal failed to validate: unknown action nope/,
    );
  });

  it("a failing apply fails the request and stores nothing; an invalid resolve value too", async () => {
    const s = new Service([[a, "Active"]]);
    // One active member: one yes accepts, so a's own vote applies at once.
    const { proposalId } = await s.propose(a, [{ name: "explode" }]);
    await rejects(
      s.vote(a, proposalId, YES),
      500,
      "InternalError",
      /Failed to apply\(\): .*boom in apply/,
    );
    assert.equal(s.info(proposalId)?.state, "Open", "the failed vote's transaction was dropped");
    await rejects(
      s.propose(a, [{ name: "bad_resolve" }]),
      500,
      "InternalError",
      /invalid status value: \\"Maybe\\"/,
    );
  });

  it("only the proposer withdraws, only while Open; withdrawal is idempotent", async () => {
    const s = new Service([
      [a, "Active"],
      [b, "Active"],
      [c, "Active"],
    ]);
    const { proposalId } = await s.propose(a, [
      { name: "set_flag", args: { name: "w", value: 1 } },
    ]);
    const withdraw = (who: Member) =>
      s.request(
        "withdrawal",
        message(who, "withdrawal", "", { proposalId }),
        (tx, msg) => s.proposals.withdraw(tx, msg, proposalId),
        proposalId,
      );
    await rejects(withdraw(b), 403, "AuthorizationFailed");
    assert.equal((await withdraw(a))?.proposalState, "Withdrawn");
    assert.equal((await withdraw(a))?.proposalState, "Withdrawn");
    await rejects(s.vote(b, proposalId, YES), 400, "ProposalNotOpen");
    const unknown = "0".repeat(64);
    assert.equal(
      await s.request(
        "withdrawal",
        message(a, "withdrawal", "", { proposalId: unknown }),
        (tx, msg) => s.proposals.withdraw(tx, msg, unknown),
        unknown,
      ),
      undefined,
    );
  });

  it("a second, different ballot from the same member is refused; the same one is idempotent", async () => {
    const s = new Service([
      [a, "Active"],
      [b, "Active"],
      [c, "Active"],
    ]);
    const { proposalId } = await s.propose(a, [{ name: "veto" }]);
    await s.vote(a, proposalId, YES);
    assert.equal((await s.vote(a, proposalId, YES)).ballotCount, 1);
    await rejects(s.vote(a, proposalId, NO), 400, "VoteAlreadyExists");
  });

  it("refuses a replayed proposal and one created before the window's median", async () => {
    const s = new Service([
      [a, "Active"],
      [b, "Active"],
      [c, "Active"],
    ]);
    const bytes = message(a, "proposal", { actions: [{ name: "veto" }] });
    const create = (m: Buffer) =>
      s.request("proposal", m, (tx, msg) =>
        // The root at the read version: it moves with every committed transaction.
        s.proposals.create(tx, msg, Buffer.alloc(32, tx.readVersion)),
      );
    await create(bytes);
    await rejects(create(bytes), 400, "ProposalReplay");
    await create(message(a, "proposal", { actions: [{ name: "veto" }] }));
    await create(message(a, "proposal", { actions: [{ name: "veto" }] }));
    await rejects(
      create(message(a, "proposal", { actions: [{ name: "veto" }] }, { createdAt: 1_000 })),
      400,
      "ProposalCreatedTooLongAgo",
    );
  });

  it("keeps every accepted signed request in cose_history, per member", async () => {
    const s = new Service([
      [a, "Active"],
      [b, "Active"],
      [c, "Active"],
    ]);
    const bytes = message(a, "proposal", { actions: [{ name: "veto" }] });
    await s.request("proposal", bytes, (tx, msg) => s.proposals.create(tx, msg, ROOT));
    const raw = s.store.get(Tables.COSE_HISTORY, idKey(a.id).toString("latin1"));
    assert.ok(raw !== undefined);
    assert.equal(decodeValue(Tables.COSE_HISTORY, raw), bytes.toString("base64"));
  });

  it("an Accepted member becomes Active by acking the state digest; a wrong digest is refused", async () => {
    const s = new Service([
      [a, "Active"],
      [b, "Accepted"],
    ]);
    await rejects(s.propose(b, [{ name: "veto" }]), 401, "InvalidAuthenticationInfo");
    const digest = await s.request("state_digest", message(b, "state_digest", ""), (tx, msg) =>
      updateStateDigest(tx, msg, b.id),
    );
    assert.deepEqual(digest, { memberId: b.id, stateDigest: "ab".repeat(32) });
    await rejects(
      s.request("ack", message(b, "ack", { stateDigest: "cd".repeat(32) }), (tx, msg) =>
        ackStateDigest(tx, msg, b.id),
      ),
      400,
      "StateDigestMismatch",
    );
    await s.request("ack", message(b, "ack", digest), (tx, msg) => ackStateDigest(tx, msg, b.id));
    const info = s.store.get(Tables.MEMBER_INFO, idKey(b.id).toString("latin1"));
    assert.deepEqual(decodeValue(Tables.MEMBER_INFO, info as Uint8Array), { status: "Active" });
    assert.equal((await s.propose(b, [{ name: "veto" }])).proposalState, "Open");
  });
});
