// Tests for ccf-ts's default constitution (samples/constitutions/default, veto and sandbox
// resolves), run in-process through the real ConstitutionRunner and proposal lifecycle: each
// action's effect on the governance tables with CCF's exact encodings, each validation failure,
// the resolve variants and the dropping of other open proposals.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { before, describe, it } from "node:test";
import { certificateId, createSelfSignedCertificate, EcKeyPair } from "../../src/crypto/index.js";
import { HttpError } from "../../src/errors.js";
import {
  ConstitutionRunner,
  DEFAULT_CONSTITUTION_DIR,
  type GovEffects,
  type ProposalInfo,
  type ProposalSummary,
  Proposals,
  readConstitution,
  signGovMessage,
  verifyGovMessage,
} from "../../src/gov/index.js";
import {
  decodeValue,
  encodeValue,
  idKey,
  SINGLETON_KEY,
  Store,
  Tables,
  type Tx,
} from "../../src/kv/index.js";

interface Member {
  key: EcKeyPair;
  cert: string;
  id: string;
}

async function newMember(name: string): Promise<Member> {
  const key = EcKeyPair.generate("secp384r1");
  const cert = await createSelfSignedCertificate(key, {
    subjectName: `CN=${name}`,
    validFrom: new Date(Date.now() - 60_000),
    validityDays: 30,
  });
  return { key, cert, id: certificateId(cert) };
}

type Call = [string, ...unknown[]];

/** Effects that record what apply asked the node to do; `failing` names ones that throw. */
class RecordingEffects implements GovEffects {
  readonly calls: Call[] = [];
  failing = new Set<string>();

  private record(name: string, ...args: unknown[]): void {
    if (this.failing.has(name)) throw new Error(`${name} is not supported by this node`);
    this.calls.push([name, ...args]);
  }

  triggerLedgerRekey(_tx: Tx): void {
    this.record("triggerLedgerRekey");
  }
  triggerRecoverySharesRefresh(_tx: Tx): void {
    this.record("triggerRecoverySharesRefresh");
  }
  transitionServiceToOpen(_tx: Tx, previous: string | undefined, next: string): void {
    this.record("transitionServiceToOpen", previous, next);
  }
  triggerLedgerChunk(_tx: Tx): void {
    this.record("triggerLedgerChunk");
  }
  triggerSnapshot(_tx: Tx): void {
    this.record("triggerSnapshot");
  }
  generateEndorsedCertificate(_tx: Tx, csr: string, validFrom: string, days: number): string {
    this.record("generateEndorsedCertificate", csr, validFrom, days);
    return `endorsed(${csr})`;
  }
  generateNetworkCertificate(_tx: Tx, validFrom: string, days: number): string {
    this.record("generateNetworkCertificate", validFrom, days);
    return "renewed service cert";
  }
  getLatestLedgerSecretSeqno(_tx: Tx): number {
    this.record("getLatestLedgerSecretSeqno");
    return 42;
  }
  setJwtPublicSigningKeys(_tx: Tx, issuer: string, metadata: unknown, jwks: unknown): void {
    this.record("setJwtPublicSigningKeys", issuer, metadata, jwks);
  }
  removeJwtPublicSigningKeys(_tx: Tx, issuer: string): void {
    this.record("removeJwtPublicSigningKeys", issuer);
  }
  refreshAppBytecodeCache(_tx: Tx): void {
    this.record("refreshAppBytecodeCache");
  }

  named(name: string): Call[] {
    return this.calls.filter((c) => c[0] === name);
  }
}

let clock = 1_700_000_000;
const ROOT = "ab".repeat(32);
const YES = "export function vote(proposal, proposerId) { return true; }";
const NO = "export function vote(proposal, proposerId) { return false; }";

type Action = { name: string; args?: unknown };

/** A service whose constitution is ccf-ts's default one (or a variant), with members as given. */
class Gov {
  readonly store = new Store();
  readonly effects = new RecordingEffects();
  readonly proposals = new Proposals(
    new ConstitutionRunner({ effects: this.effects, log: () => undefined }),
  );
  /** Distinct roots, so identical proposals get distinct ids. */
  private root = 0;

  constructor(
    readonly members: Array<[Member, "Active" | "Accepted"]>,
    opts: { variant?: "veto" | "sandbox"; signature?: boolean } = {},
  ) {
    const constitution = readConstitution(DEFAULT_CONSTITUTION_DIR, opts.variant);
    this.write((tx) => {
      put(tx, Tables.CONSTITUTION, SINGLETON_KEY, constitution);
      for (const [m, status] of members) {
        put(tx, Tables.MEMBER_CERTS, idKey(m.id), m.cert);
        put(tx, Tables.MEMBER_INFO, idKey(m.id), { status });
      }
      if (opts.signature !== false) {
        put(tx, Tables.SIGNATURES, SINGLETON_KEY, { root: ROOT });
      }
      put(tx, Tables.SERVICE, SINGLETON_KEY, { cert: "service cert", status: "Open" });
      put(tx, Tables.CONFIGURATION, SINGLETON_KEY, { recovery_threshold: 1 });
    });
  }

  get proposer(): Member {
    const first = this.members[0];
    assert.ok(first !== undefined);
    return first[0];
  }

  write(fn: (tx: Tx) => void): void {
    const tx = this.store.begin();
    fn(tx);
    this.store.commit(tx);
  }

  private async request<T>(
    type: string,
    who: Member,
    content: unknown,
    fn: (tx: Tx, msg: ReturnType<typeof verifyGovMessage>) => Promise<T>,
    proposalId?: string,
  ): Promise<T> {
    clock += 1;
    const bytes = signGovMessage({
      signingKeyPem: who.key.privateKeyPem,
      signingCertPem: who.cert,
      msgType: type,
      createdAt: clock,
      content: Buffer.from(JSON.stringify(content)),
      ...(proposalId === undefined ? {} : { proposalId }),
    });
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

  propose(actions: Action[], who: Member = this.proposer): Promise<ProposalSummary> {
    this.root += 1;
    const root = Buffer.alloc(32, this.root);
    return this.request("proposal", who, { actions }, (tx, msg) =>
      this.proposals.create(tx, msg, root),
    );
  }

  vote(proposalId: string, ballot: string, who: Member = this.proposer): Promise<ProposalSummary> {
    return this.request(
      "ballot",
      who,
      { ballot },
      (tx, msg) => this.proposals.submitBallot(tx, msg, proposalId, who.id),
      proposalId,
    );
  }

  /** Proposes and votes yes as the (single) active member: the proposal is accepted and applied. */
  async pass(...actions: Action[]): Promise<ProposalSummary> {
    const created = await this.propose(actions);
    const done =
      created.proposalState === "Open" ? await this.vote(created.proposalId, YES) : created;
    assert.equal(done.proposalState, "Accepted");
    return done;
  }

  /** The proposal validates, but apply throws: the ballot fails with 500 and nothing is kept. */
  async failsToApply(action: Action, reason: RegExp): Promise<void> {
    const created = await this.propose([action]);
    await assert.rejects(this.vote(created.proposalId, YES), (e: unknown) => {
      assert.ok(e instanceof HttpError, String(e));
      assert.equal(e.status, 500);
      assert.match(e.message, /Failed to apply\(\)/);
      assert.match(e.message, reason);
      return true;
    });
  }

  /** Submitting the proposal fails validation with a description matching `reason`. */
  async refused(action: Action, reason: RegExp): Promise<void> {
    await assert.rejects(this.propose([action]), (e: unknown) => {
      assert.ok(e instanceof HttpError, String(e));
      assert.equal(e.status, 400);
      assert.equal(e.code, "ProposalFailedToValidate");
      assert.match(e.message, reason);
      return true;
    });
  }

  raw(table: string, key: string | Buffer): Buffer | undefined {
    const k = typeof key === "string" ? Buffer.from(key) : key;
    const v = this.store.get(table, k.toString("latin1"));
    return v === undefined ? undefined : Buffer.from(v);
  }

  /** The value's bytes as text (PEM, module source, or the JSON CCF writes). */
  text(table: string, key: string | Buffer): string | undefined {
    return this.raw(table, key)?.toString("utf8");
  }

  keys(table: string): string[] {
    const out: string[] = [];
    const tx = this.store.begin();
    tx.map(table).forEach((_v, k) => {
      out.push(Buffer.from(k).toString("utf8"));
    });
    return out.sort();
  }

  info(proposalId: string): ProposalInfo | undefined {
    const raw = this.raw(Tables.PROPOSALS_INFO, proposalId);
    return raw === undefined
      ? undefined
      : (decodeValue(Tables.PROPOSALS_INFO, raw) as ProposalInfo);
  }
}

function put(tx: Tx, table: string, key: Buffer, value: unknown): void {
  tx.map(table).set(key, encodeValue(table, value));
}

function x5c(pem: string): string {
  return pem
    .replace(/-----(BEGIN|END) CERTIFICATE-----/g, "")
    .replace(/\s+/g, "")
    .trim();
}

const NODE_A = "a".repeat(64);
const NODE_B = "b".repeat(64);
const NODE_C = "c".repeat(64);

describe("default constitution", () => {
  let alice: Member;
  let bob: Member;
  let carol: Member;
  let dave: Member;
  let single: () => Gov;

  before(async () => {
    [alice, bob, carol, dave] = await Promise.all(
      ["alice", "bob", "carol", "dave"].map((n) => newMember(n)),
    );
    single = () => new Gov([[alice, "Active"]]);
  });

  describe("files", () => {
    it("concatenates actions, virtual actions, validate, resolve and apply in CCF's order", () => {
      const src = readConstitution(DEFAULT_CONSTITUTION_DIR);
      const at = (s: string) => src.indexOf(s);
      assert.ok(at("const actions = new Map()") >= 0);
      assert.ok(at("const actions = new Map()") < at('"add_virtual_measurement"'));
      assert.ok(at('"add_virtual_measurement"') < at("export function validate"));
      assert.ok(at("export function validate") < at("export function resolve"));
      assert.ok(at("export function resolve") < at("export function apply"));
    });

    it("swaps in the veto or sandbox resolve and nothing else", () => {
      const base = readConstitution(DEFAULT_CONSTITUTION_DIR);
      for (const variant of ["veto", "sandbox"] as const) {
        const v = readConstitution(DEFAULT_CONSTITUTION_DIR, variant);
        assert.notEqual(v, base);
        assert.equal((v.match(/export function resolve/g) ?? []).length, 1);
        assert.ok(v.includes("export function validate") && v.includes("export function apply"));
      }
      assert.match(readConstitution(DEFAULT_CONSTITUTION_DIR, "veto"), /"Rejected"/);
    });
  });

  describe("validate", () => {
    it("refuses an unknown action with 'no such action'", async () => {
      await single().refused({ name: "make_coffee" }, /make_coffee: no such action/);
    });

    it("reports every failing action of a proposal, with its position", async () => {
      const g = single();
      await assert.rejects(
        g.propose([
          { name: "trigger_snapshot" },
          { name: "remove_user", args: { user_id: "xyz" } },
          { name: "nope" },
        ]),
        (e: unknown) => {
          assert.ok(e instanceof HttpError);
          assert.match(e.message, /remove_user at position 1 failed validation: Error: user_id/);
          assert.match(e.message, /nope: no such action/);
          return true;
        },
      );
    });

    it("refuses an action that needs arguments when none are given", async () => {
      await single().refused({ name: "set_user" }, /set_user at position 0 failed validation/);
    });
  });

  describe("resolve", () => {
    it("default: Accepted once yes votes exceed half the Active members; no votes never reject", async () => {
      const g = new Gov([
        [alice, "Active"],
        [bob, "Active"],
        [carol, "Active"],
        [dave, "Accepted"],
      ]);
      const { proposalId, proposalState } = await g.propose([{ name: "trigger_snapshot" }]);
      assert.equal(proposalState, "Open");
      assert.equal((await g.vote(proposalId, NO, bob)).proposalState, "Open");
      assert.equal((await g.vote(proposalId, YES, alice)).proposalState, "Open");
      // Two of three Active members (dave, only Accepted, does not count).
      const done = await g.vote(proposalId, YES, carol);
      assert.equal(done.proposalState, "Accepted");
      assert.deepEqual(g.effects.named("triggerSnapshot"), [["triggerSnapshot"]]);
    });

    it("veto: a single vote against rejects, and nothing is applied", async () => {
      const g = new Gov(
        [
          [alice, "Active"],
          [bob, "Active"],
          [carol, "Active"],
        ],
        { variant: "veto" },
      );
      const { proposalId } = await g.propose([{ name: "trigger_snapshot" }]);
      assert.equal((await g.vote(proposalId, YES, alice)).proposalState, "Open");
      assert.equal((await g.vote(proposalId, NO, bob)).proposalState, "Rejected");
      assert.deepEqual(g.effects.calls, []);
    });

    it("veto: a majority with no vote against accepts", async () => {
      const g = new Gov(
        [
          [alice, "Active"],
          [bob, "Active"],
          [carol, "Active"],
        ],
        { variant: "veto" },
      );
      const { proposalId } = await g.propose([{ name: "trigger_ledger_chunk" }]);
      await g.vote(proposalId, YES, alice);
      assert.equal((await g.vote(proposalId, YES, carol)).proposalState, "Accepted");
      assert.deepEqual(g.effects.named("triggerLedgerChunk"), [["triggerLedgerChunk"]]);
    });

    it("sandbox: every proposal is Accepted and applied when submitted", async () => {
      const g = new Gov(
        [
          [alice, "Active"],
          [bob, "Active"],
          [carol, "Active"],
        ],
        { variant: "sandbox" },
      );
      const created = await g.propose([{ name: "set_user", args: { cert: bob.cert } }]);
      assert.equal(created.proposalState, "Accepted");
      assert.equal(g.text(Tables.USER_CERTS, bob.id), bob.cert);
    });
  });

  describe("set_constitution", () => {
    it("stores the new constitution as a JSON string and drops every other Open proposal", async () => {
      const g = single();
      const other = await g.propose([{ name: "trigger_snapshot" }]);
      const another = await g.propose([{ name: "trigger_ledger_chunk" }]);
      const replacement = readConstitution(DEFAULT_CONSTITUTION_DIR, "sandbox");
      const done = await g.pass({ name: "set_constitution", args: { constitution: replacement } });
      assert.equal(
        g.text(Tables.CONSTITUTION, SINGLETON_KEY),
        JSON.stringify(replacement),
        "a JSON string literal",
      );
      assert.equal(g.info(other.proposalId)?.state, "Dropped");
      assert.equal(g.info(another.proposalId)?.state, "Dropped");
      assert.equal(g.info(done.proposalId)?.state, "Accepted");
      // The new (sandbox) constitution is in force at once.
      assert.equal((await g.propose([{ name: "trigger_snapshot" }])).proposalState, "Accepted");
    });

    it("refuses a constitution that is not a string or lacks the required exports", async () => {
      const g = single();
      await g.refused({ name: "set_constitution", args: { constitution: 3 } }, /constitution/);
      await g.refused(
        {
          name: "set_constitution",
          args: { constitution: "export function validate(input) { return {}; }" },
        },
        /set_constitution at position 0 failed validation: TypeError/,
      );
    });
  });

  describe("members", () => {
    it("set_member writes the cert, key, info and an ack seeded with the signed root", async () => {
      const g = single();
      await g.pass({
        name: "set_member",
        args: {
          cert: bob.cert,
          encryption_pub_key: "enc key pem",
          member_data: { role: "ops" },
          recovery_role: "Owner",
        },
      });
      assert.equal(g.text(Tables.MEMBER_CERTS, bob.id), bob.cert);
      assert.equal(g.text(Tables.MEMBER_ENCRYPTION_KEYS, bob.id), "enc key pem");
      assert.equal(
        g.text(Tables.MEMBER_INFO, bob.id),
        '{"member_data":{"role":"ops"},"recovery_role":"Owner","status":"Accepted"}',
      );
      assert.equal(g.text(Tables.MEMBER_ACKS, bob.id), `{"state_digest":"${ROOT}"}`);
    });

    it("set_member without an encryption key removes any previous one", async () => {
      const g = single();
      g.write((tx) => put(tx, Tables.MEMBER_ENCRYPTION_KEYS, idKey(bob.id), "old key"));
      await g.pass({ name: "set_member", args: { cert: bob.cert } });
      assert.equal(g.raw(Tables.MEMBER_ENCRYPTION_KEYS, bob.id), undefined);
      assert.equal(g.text(Tables.MEMBER_INFO, bob.id), '{"status":"Accepted"}');
    });

    it("set_member fails to apply when there is no signature to acknowledge yet", async () => {
      const g = new Gov([[alice, "Active"]], { signature: false });
      await g.failsToApply({ name: "set_member", args: { cert: bob.cert } }, /no signature/);
    });

    it("set_member refuses a bad cert, non-object member_data, an unknown role, a role without key", async () => {
      const g = single();
      await g.refused({ name: "set_member", args: { cert: "not a cert" } }, /cert: not a PEM/);
      await g.refused(
        { name: "set_member", args: { cert: bob.cert, member_data: "x" } },
        /member_data: expected object, found string/,
      );
      await g.refused(
        {
          name: "set_member",
          args: { cert: bob.cert, encryption_pub_key: "k", recovery_role: "Boss" },
        },
        /recovery_role: "Boss" is not one of NonParticipant, Participant, Owner/,
      );
      await g.refused(
        { name: "set_member", args: { cert: bob.cert, recovery_role: "Participant" } },
        /recovery_role needs an encryption_pub_key/,
      );
    });

    it("remove_member deletes every row of the member and is idempotent", async () => {
      const g = single();
      await g.pass({ name: "set_member", args: { cert: bob.cert, member_data: {} } });
      g.write((tx) => put(tx, Tables.HISTORY, idKey(bob.id), { x: 1 }));
      await g.pass({ name: "remove_member", args: { member_id: bob.id } });
      for (const t of [
        Tables.MEMBER_INFO,
        Tables.MEMBER_CERTS,
        Tables.MEMBER_ACKS,
        Tables.MEMBER_ENCRYPTION_KEYS,
        Tables.HISTORY,
      ]) {
        assert.equal(g.raw(t, bob.id), undefined, t);
      }
      await g.pass({ name: "remove_member", args: { member_id: bob.id } });
      assert.deepEqual(g.effects.named("triggerLedgerRekey"), []);
    });

    it("remove_member of an active recovery member rekeys, unless it would break the threshold", async () => {
      const g = single();
      g.write((tx) => {
        for (const m of [bob, carol]) {
          put(tx, Tables.MEMBER_CERTS, idKey(m.id), m.cert);
          put(tx, Tables.MEMBER_INFO, idKey(m.id), { status: "Active" });
          put(tx, Tables.MEMBER_ENCRYPTION_KEYS, idKey(m.id), "key");
        }
        put(tx, Tables.CONFIGURATION, SINGLETON_KEY, { recovery_threshold: 1 });
      });
      // alice's ballot alone is no longer a majority of three Active members: use bob's too.
      const { proposalId } = await g.propose([
        { name: "remove_member", args: { member_id: carol.id } },
      ]);
      await g.vote(proposalId, YES, alice);
      assert.equal((await g.vote(proposalId, YES, bob)).proposalState, "Accepted");
      assert.deepEqual(g.effects.named("triggerLedgerRekey"), [["triggerLedgerRekey"]]);

      const last = await g.propose([{ name: "remove_member", args: { member_id: bob.id } }]);
      await g.vote(last.proposalId, YES, alice);
      await assert.rejects(g.vote(last.proposalId, YES, bob), /below the recovery threshold 1/);
    });

    it("set_member_data replaces member_data and keeps the rest", async () => {
      const g = single();
      await g.pass({
        name: "set_member_data",
        args: { member_id: alice.id, member_data: { a: 1 } },
      });
      assert.equal(
        g.text(Tables.MEMBER_INFO, alice.id),
        '{"status":"Active","member_data":{"a":1}}',
      );
      await g.failsToApply(
        { name: "set_member_data", args: { member_id: NODE_A, member_data: {} } },
        /there is no member/,
      );
    });

    it("refuses member ids that are not 64 hex digits, and missing member_data", async () => {
      const g = single();
      await g.refused(
        { name: "remove_member", args: { member_id: "abc" } },
        /member_id: an id has 64 characters/,
      );
      await g.refused(
        { name: "remove_member", args: { member_id: "g".repeat(64) } },
        /member_id: an id is hexadecimal/,
      );
      await g.refused(
        { name: "remove_member", args: { member_id: 7 } },
        /member_id: expected string, found number/,
      );
      await g.refused(
        { name: "set_member_data", args: { member_id: alice.id } },
        /member_data: expected object, found undefined/,
      );
    });
  });

  describe("users", () => {
    it("set_user writes the cert and {user_data}; without data, users.info is removed", async () => {
      const g = single();
      await g.pass({ name: "set_user", args: { cert: bob.cert, user_data: { isAdmin: true } } });
      assert.equal(g.text(Tables.USER_CERTS, bob.id), bob.cert);
      assert.equal(g.text(Tables.USER_INFO, bob.id), '{"user_data":{"isAdmin":true}}');
      await g.pass({ name: "set_user", args: { cert: bob.cert } });
      assert.equal(g.raw(Tables.USER_INFO, bob.id), undefined);
    });

    it("set_user_data sets or clears the data; remove_user deletes both rows", async () => {
      const g = single();
      await g.pass({ name: "set_user", args: { cert: bob.cert } });
      await g.pass({ name: "set_user_data", args: { user_id: bob.id, user_data: { n: 1 } } });
      assert.equal(g.text(Tables.USER_INFO, bob.id), '{"user_data":{"n":1}}');
      await g.pass({ name: "set_user_data", args: { user_id: bob.id, user_data: null } });
      assert.equal(g.raw(Tables.USER_INFO, bob.id), undefined);
      await g.pass({ name: "set_user_data", args: { user_id: bob.id, user_data: { n: 2 } } });
      await g.pass({ name: "remove_user", args: { user_id: bob.id } });
      assert.equal(g.raw(Tables.USER_CERTS, bob.id), undefined);
      assert.equal(g.raw(Tables.USER_INFO, bob.id), undefined);
    });

    it("refuses a bad user cert, bad user ids and non-object user_data", async () => {
      const g = single();
      await g.refused(
        { name: "set_user", args: { cert: 12 } },
        /set_user at position 0 failed validation/,
      );
      await g.refused({ name: "remove_user", args: {} }, /user_id: expected string/);
      await g.refused(
        { name: "set_user_data", args: { user_id: "z".repeat(64) } },
        /user_id: an id is hexadecimal/,
      );
      await g.refused(
        { name: "set_user_data", args: { user_id: bob.id, user_data: "x" } },
        /user_data: expected object, found string/,
      );
    });
  });

  describe("recovery and service configuration", () => {
    it("set_recovery_threshold writes service.config and refreshes shares only when it changes", async () => {
      const g = single();
      g.write((tx) => {
        put(tx, Tables.MEMBER_ENCRYPTION_KEYS, idKey(alice.id), "k");
        put(tx, Tables.SERVICE, SINGLETON_KEY, { status: "Opening" });
      });
      await g.pass({ name: "set_recovery_threshold", args: { recovery_threshold: 3 } });
      assert.equal(g.text(Tables.CONFIGURATION, SINGLETON_KEY), '{"recovery_threshold":3}');
      assert.equal(g.effects.named("triggerRecoverySharesRefresh").length, 1);
      await g.pass({ name: "set_recovery_threshold", args: { recovery_threshold: 3 } });
      assert.equal(g.effects.named("triggerRecoverySharesRefresh").length, 1);
    });

    it("set_recovery_threshold fails above the active recovery members of an Open service, and while waiting for shares", async () => {
      const g = single();
      g.write((tx) => put(tx, Tables.MEMBER_ENCRYPTION_KEYS, idKey(alice.id), "k"));
      await g.failsToApply(
        { name: "set_recovery_threshold", args: { recovery_threshold: 2 } },
        /exceeds the 1 active recovery member/,
      );
      g.write((tx) =>
        put(tx, Tables.SERVICE, SINGLETON_KEY, { status: "WaitingForRecoveryShares" }),
      );
      await g.failsToApply(
        { name: "set_recovery_threshold", args: { recovery_threshold: 2 } },
        /while the service is WaitingForRecoveryShares/,
      );
    });

    it("set_recovery_threshold refuses values outside 1..254 and non-integers", async () => {
      const g = single();
      for (const [v, why] of [
        [0, /below the minimum 1/],
        [255, /above the maximum 254/],
        [1.5, /expected integer/],
        ["2", /expected integer/],
      ] as const) {
        await g.refused({ name: "set_recovery_threshold", args: { recovery_threshold: v } }, why);
      }
    });

    it("set_service_configuration updates only the three changeable fields", async () => {
      const g = single();
      await g.pass({
        name: "set_service_configuration",
        args: { reconfiguration_type: "TwoTransaction", recent_cose_proposals_window_size: 50 },
      });
      assert.equal(
        g.text(Tables.CONFIGURATION, SINGLETON_KEY),
        '{"recovery_threshold":1,"reconfiguration_type":"TwoTransaction","recent_cose_proposals_window_size":50}',
      );
      assert.deepEqual(g.effects.named("triggerRecoverySharesRefresh"), []);
      await g.failsToApply(
        { name: "set_service_configuration", args: { reconfiguration_type: "OneTransaction" } },
        /cannot change from TwoTransaction to OneTransaction/,
      );
    });

    it("set_service_configuration refuses other fields and out-of-range values", async () => {
      const g = single();
      await g.refused(
        { name: "set_service_configuration", args: { maximum_node_certificate_validity_days: 5 } },
        /maximum_node_certificate_validity_days cannot be changed/,
      );
      await g.refused(
        { name: "set_service_configuration", args: { recent_cose_proposals_window_size: 10001 } },
        /above the maximum 10000/,
      );
      await g.refused(
        { name: "set_service_configuration", args: { reconfiguration_type: 1 } },
        /reconfiguration_type: expected string/,
      );
    });

    it("trigger_recovery_shares_refresh and trigger_ledger_rekey call the node, and take no arguments", async () => {
      const g = single();
      await g.pass({ name: "trigger_recovery_shares_refresh" }, { name: "trigger_ledger_rekey" });
      assert.deepEqual(g.effects.calls, [["triggerRecoverySharesRefresh"], ["triggerLedgerRekey"]]);
      await g.refused({ name: "trigger_ledger_rekey", args: {} }, /takes no arguments/);
      await g.refused(
        { name: "trigger_recovery_shares_refresh", args: { x: 1 } },
        /takes no arguments/,
      );
    });

    it("an effect the node cannot perform fails the proposal with the node's message", async () => {
      const g = single();
      g.effects.failing.add("triggerLedgerRekey");
      await g.failsToApply({ name: "trigger_ledger_rekey" }, /not supported by this node/);
    });
  });

  describe("transition_service_to_open", () => {
    it("passes the next identity (and no previous one) to the node as PEM", async () => {
      const g = single();
      await g.pass({
        name: "transition_service_to_open",
        args: { next_service_identity: bob.cert },
      });
      assert.deepEqual(g.effects.calls, [["transitionServiceToOpen", undefined, bob.cert]]);
    });

    it("passes both identities after a recovery, and requires the previous one then", async () => {
      const g = single();
      g.write((tx) => put(tx, Tables.SERVICE, SINGLETON_KEY, { status: "Recovering" }));
      await g.failsToApply(
        { name: "transition_service_to_open", args: { next_service_identity: bob.cert } },
        /needs both previous_service_identity and next_service_identity/,
      );
      await g.pass({
        name: "transition_service_to_open",
        args: { next_service_identity: bob.cert, previous_service_identity: carol.cert },
      });
      assert.deepEqual(g.effects.calls, [["transitionServiceToOpen", carol.cert, bob.cert]]);
    });

    it("refuses identities that are not certificates", async () => {
      const g = single();
      await g.refused(
        { name: "transition_service_to_open", args: {} },
        /next_service_identity: expected string/,
      );
      await g.refused(
        { name: "transition_service_to_open", args: { next_service_identity: "pem?" } },
        /next_service_identity: not a PEM/,
      );
      await g.refused(
        {
          name: "transition_service_to_open",
          args: { next_service_identity: bob.cert, previous_service_identity: "pem?" },
        },
        /previous_service_identity: not a PEM/,
      );
    });
  });

  describe("JavaScript application", () => {
    const endpoint = (extra: Record<string, unknown> = {}) => ({
      js_module: "app.js",
      js_function: "get",
      forwarding_required: "sometimes",
      authn_policies: ["user_cert", { all_of: ["jwt", "user_cert"] }],
      mode: "readonly",
      openapi: {},
      ...extra,
    });
    const bundle = (
      endpoints: Record<string, unknown>,
      modules = [{ name: "app.js", module: "export function get() {}" }],
    ) => ({
      metadata: { endpoints },
      modules,
    });

    it("set_js_app replaces modules and endpoints, flushes interpreters, refreshes bytecode", async () => {
      const g = single();
      g.write((tx) => {
        put(tx, Tables.MODULES, Buffer.from("/old.js"), "old");
        put(tx, Tables.ENDPOINTS, Buffer.from("GET /old"), { js_module: "/old.js" });
      });
      await g.pass({
        name: "set_js_app",
        args: {
          bundle: bundle(
            { "/items/{id}": { get: endpoint(), post: endpoint({ mode: "readwrite" }) } },
            [
              { name: "app.js", module: "export function get() {}" },
              { name: "lib/util.js", module: "export const x = 1;" },
            ],
          ),
        },
      });
      assert.deepEqual(g.keys(Tables.MODULES), ["/app.js", "/lib/util.js"]);
      assert.equal(g.text(Tables.MODULES, "/app.js"), "export function get() {}");
      assert.deepEqual(g.keys(Tables.ENDPOINTS), ["GET /items/{id}", "POST /items/{id}"]);
      assert.equal(
        g.text(Tables.ENDPOINTS, "GET /items/{id}"),
        '{"js_module":"/app.js","js_function":"get","forwarding_required":"sometimes",' +
          '"authn_policies":["user_cert",{"all_of":["jwt","user_cert"]}],"mode":"readonly","openapi":{}}',
      );
      assert.equal(g.text(Tables.INTERPRETER_FLUSH, SINGLETON_KEY), "true");
      assert.deepEqual(g.effects.calls, [["refreshAppBytecodeCache"]]);
    });

    it("set_js_app with disable_bytecode_cache clears the bytecode tables instead", async () => {
      const g = single();
      g.write((tx) => {
        put(tx, Tables.MODULES_QUICKJS_BYTECODE, Buffer.from("/app.js"), Buffer.from([1, 2]));
        put(tx, Tables.MODULES_QUICKJS_VERSION, SINGLETON_KEY, "v1");
      });
      await g.pass({
        name: "set_js_app",
        args: { bundle: bundle({ "/a": { get: endpoint() } }), disable_bytecode_cache: true },
      });
      assert.deepEqual(g.keys(Tables.MODULES_QUICKJS_BYTECODE), []);
      assert.deepEqual(g.keys(Tables.MODULES_QUICKJS_VERSION), []);
      assert.deepEqual(g.effects.calls, []);
    });

    it("set_js_app refuses malformed bundles", async () => {
      const g = single();
      const cases: Array<[unknown, RegExp]> = [
        [undefined, /bundle: expected object, found undefined/],
        [{ metadata: { endpoints: {} }, modules: {} }, /bundle.modules: expected array/],
        [
          { metadata: { endpoints: {} }, modules: [{ name: "a.js" }] },
          /bundle.modules\[0\].module: expected string/,
        ],
        [{ modules: [] }, /bundle.metadata: expected object/],
        [
          bundle({ "/a": { get: endpoint({ mode: "sometimes" }) } }),
          /\.mode: "sometimes" is not one of/,
        ],
        [
          bundle({ "/a": { get: endpoint({ forwarding_required: undefined }) } }),
          /\.forwarding_required: undefined is not one of/,
        ],
        [
          bundle({ "/a": { get: endpoint({ redirection_strategy: "sideways" }) } }),
          /\.redirection_strategy/,
        ],
        [bundle({ "/a": { get: endpoint({ js_function: 1 }) } }), /\.js_function: expected string/],
        [bundle({ "/a": { get: endpoint({ openapi_hidden: "no" }) } }), /\.openapi_hidden/],
        [
          bundle({ "/a": { get: endpoint({ authn_policies: "jwt" }) } }),
          /\.authn_policies: expected array/,
        ],
        [
          bundle({ "/a": { get: endpoint({ authn_policies: [{ all_of: "jwt" }] }) } }),
          /authn_policies\[0\]\.all_of: expected array/,
        ],
        [
          bundle({ "/a": { get: endpoint({ authn_policies: [3] }) } }),
          /authn_policies\[0\]: expected a policy name or an object/,
        ],
        [
          bundle({ "/a": { get: endpoint({ js_module: "missing.js" }) } }),
          /has no module missing.js/,
        ],
      ];
      for (const [b, why] of cases) {
        await g.refused({ name: "set_js_app", args: { bundle: b } }, why);
      }
      await g.refused(
        { name: "set_js_app", args: { bundle: bundle({}), disable_bytecode_cache: "yes" } },
        /disable_bytecode_cache: expected boolean/,
      );
    });

    it("remove_js_app clears modules, bytecode, version, interpreter flush and endpoints", async () => {
      const g = single();
      await g.pass({ name: "set_js_app", args: { bundle: bundle({ "/a": { get: endpoint() } }) } });
      g.write((tx) => put(tx, Tables.MODULES_QUICKJS_VERSION, SINGLETON_KEY, "v1"));
      await g.pass({ name: "remove_js_app" });
      for (const t of [
        Tables.MODULES,
        Tables.MODULES_QUICKJS_BYTECODE,
        Tables.MODULES_QUICKJS_VERSION,
        Tables.INTERPRETER_FLUSH,
        Tables.ENDPOINTS,
      ]) {
        assert.deepEqual(g.keys(t), [], t);
      }
    });

    it("set_js_runtime_options stores its arguments; refresh_js_app_bytecode_cache calls the node", async () => {
      const g = single();
      const opts = {
        max_heap_bytes: 1024,
        max_stack_bytes: 512,
        max_execution_time_ms: 1000,
        log_exception_details: true,
        max_cached_interpreters: 3,
      };
      await g.pass({ name: "set_js_runtime_options", args: opts });
      assert.equal(g.text(Tables.JS_RUNTIME_OPTIONS, SINGLETON_KEY), JSON.stringify(opts));
      await g.pass({ name: "refresh_js_app_bytecode_cache" });
      assert.deepEqual(g.effects.calls, [["refreshAppBytecodeCache"]]);
      await g.refused(
        { name: "set_js_runtime_options", args: { ...opts, max_heap_bytes: "1k" } },
        /max_heap_bytes: expected integer/,
      );
      await g.refused(
        { name: "set_js_runtime_options", args: { ...opts, return_exception_details: 1 } },
        /return_exception_details: expected boolean/,
      );
    });
  });

  describe("CA bundles and JWT issuers", () => {
    let jwks: { keys: Array<Record<string, unknown>> };
    before(() => {
      jwks = { keys: [{ kid: "k1", kty: "EC", x5c: [x5c(bob.cert)] }] };
    });

    it("set_ca_cert_bundle stores the PEM as a JSON string; remove_ca_cert_bundle deletes it", async () => {
      const g = single();
      await g.pass({ name: "set_ca_cert_bundle", args: { name: "idp", cert_bundle: bob.cert } });
      assert.equal(g.text(Tables.CA_CERT_BUNDLES, "idp"), JSON.stringify(bob.cert));
      await g.pass({ name: "remove_ca_cert_bundle", args: { name: "idp" } });
      assert.equal(g.raw(Tables.CA_CERT_BUNDLES, "idp"), undefined);
      await g.refused(
        { name: "set_ca_cert_bundle", args: { name: "idp", cert_bundle: "nope" } },
        /cert_bundle: not a PEM/,
      );
      await g.refused(
        { name: "remove_ca_cert_bundle", args: { name: 1 } },
        /name: expected string/,
      );
    });

    it("set_jwt_issuer stores the metadata without the keys and hands the keys to the node", async () => {
      const g = single();
      g.write((tx) => put(tx, Tables.CA_CERT_BUNDLES, Buffer.from("idp"), bob.cert));
      await g.pass({
        name: "set_jwt_issuer",
        args: {
          issuer: "https://login.example.com",
          jwks,
          auto_refresh: true,
          ca_cert_bundle_name: "idp",
        },
      });
      const metadata = {
        issuer: "https://login.example.com",
        auto_refresh: true,
        ca_cert_bundle_name: "idp",
      };
      assert.equal(
        g.text(Tables.JWT_ISSUERS, "https://login.example.com"),
        JSON.stringify(metadata),
      );
      assert.deepEqual(g.effects.calls, [
        ["setJwtPublicSigningKeys", "https://login.example.com", metadata, jwks],
      ]);
    });

    it("set_jwt_issuer without keys only stores the issuer", async () => {
      const g = single();
      await g.pass({ name: "set_jwt_issuer", args: { issuer: "my-issuer" } });
      assert.equal(g.text(Tables.JWT_ISSUERS, "my-issuer"), '{"issuer":"my-issuer"}');
      assert.deepEqual(g.effects.calls, []);
    });

    it("set_jwt_issuer with auto_refresh needs an existing CA bundle and an https URL", async () => {
      const g = single();
      await g.refused(
        { name: "set_jwt_issuer", args: { issuer: "https://a.example", auto_refresh: true } },
        /auto_refresh needs ca_cert_bundle_name/,
      );
      const auto = { auto_refresh: true, ca_cert_bundle_name: "idp" };
      await g.refused(
        { name: "set_jwt_issuer", args: { issuer: "http://a.example", ...auto } },
        /must be an https:\/\/ URL/,
      );
      await g.refused(
        { name: "set_jwt_issuer", args: { issuer: "https://a.example?x=1", ...auto } },
        /no query or fragment/,
      );
      await g.failsToApply(
        { name: "set_jwt_issuer", args: { issuer: "https://a.example", ...auto } },
        /no CA cert bundle named 'idp'/,
      );
    });

    it("set_jwt_issuer refuses malformed JWKS and field types", async () => {
      const g = single();
      const cases: Array<[unknown, RegExp]> = [
        [{ keys: "k" }, /jwks.keys: expected array/],
        [{ keys: [{ kty: "RSA", n: "n", e: "e" }] }, /jwks.keys\[0\].kid: expected string/],
        [{ keys: [{ kid: "k", kty: "RSA" }] }, /needs x5c, or n and e \(RSA\), or x, y and crv/],
        [
          { keys: [{ kid: "k", kty: "EC", x: "x", y: "y" }] },
          /jwks.keys\[0\].crv: expected string/,
        ],
        [{ keys: [{ kid: "k", kty: "EC", x5c: ["bm90IGEgY2VydA=="] }] }, /x5c\[0\]: not a PEM/],
        [{ keys: [{ kid: "k", kty: "EC", x5c: [] }] }, /needs x5c|x5c: needs at least 1/],
      ];
      for (const [bad, why] of cases) {
        await g.refused({ name: "set_jwt_issuer", args: { issuer: "i", jwks: bad } }, why);
      }
      await g.refused(
        { name: "set_jwt_issuer", args: { issuer: "i", auto_refresh: "yes" } },
        /auto_refresh: expected boolean/,
      );
      await g.refused({ name: "set_jwt_issuer", args: { issuer: 5 } }, /issuer: expected string/);
    });

    it("set_jwt_public_signing_keys passes the stored metadata; unknown issuers fail", async () => {
      const g = single();
      g.write((tx) => put(tx, Tables.JWT_ISSUERS, Buffer.from("iss"), { issuer: "iss" }));
      await g.pass({ name: "set_jwt_public_signing_keys", args: { issuer: "iss", jwks } });
      assert.deepEqual(g.effects.calls, [
        ["setJwtPublicSigningKeys", "iss", { issuer: "iss" }, jwks],
      ]);
      await g.failsToApply(
        { name: "set_jwt_public_signing_keys", args: { issuer: "other", jwks } },
        /no JWT issuer other/,
      );
      await g.refused(
        { name: "set_jwt_public_signing_keys", args: { issuer: "iss" } },
        /jwks: expected object, found undefined/,
      );
    });

    it("remove_jwt_issuer deletes the issuer and its keys, and ignores unknown issuers", async () => {
      const g = single();
      g.write((tx) => put(tx, Tables.JWT_ISSUERS, Buffer.from("iss"), { issuer: "iss" }));
      await g.pass({ name: "remove_jwt_issuer", args: { issuer: "iss" } });
      assert.equal(g.raw(Tables.JWT_ISSUERS, "iss"), undefined);
      await g.pass({ name: "remove_jwt_issuer", args: { issuer: "iss" } });
      assert.deepEqual(g.effects.calls, [["removeJwtPublicSigningKeys", "iss"]]);
    });
  });

  describe("join policy", () => {
    const CODE_IDS = "public:ccf.gov.nodes.code_ids";
    const MEASUREMENTS = "public:ccf.gov.nodes.snp.measurements";
    const HOST_DATA = "public:ccf.gov.nodes.snp.host_data";
    const UVM = "public:ccf.gov.nodes.snp.uvm_endorsements";
    const TCB = "public:ccf.gov.nodes.snp.tcb_versions";

    it("every action that widens who may join drops the other open proposals", async () => {
      const policy = "allow all";
      const digest = createHash("sha256").update(policy).digest("hex");
      const widening: Action[] = [
        { name: "add_node_code", args: { code_id: "c1" } },
        { name: "add_snp_measurement", args: { measurement: "m1" } },
        { name: "add_snp_uvm_endorsement", args: { did: "did:x", feed: "f", svn: "1" } },
        { name: "add_snp_host_data", args: { host_data: digest, security_policy: policy } },
        {
          name: "set_snp_minimum_tcb_version",
          args: {
            cpuid: "00a00f11",
            tcb_version: { boot_loader: 1, tee: 0, snp: 2, microcode: 3 },
          },
        },
        { name: "add_virtual_measurement", args: { measurement: "vm" } },
        { name: "add_virtual_host_data", args: { host_data: "vh" } },
      ];
      for (const action of widening) {
        const g = single();
        const open = await g.propose([{ name: "trigger_snapshot" }]);
        await g.pass(action);
        assert.equal(g.info(open.proposalId)?.state, "Dropped", action.name);
      }
    });

    it('code ids and SNP measurements are stored as "AllowedToJoin" and removed', async () => {
      const g = single();
      await g.pass(
        { name: "add_node_code", args: { code_id: "c1" } },
        { name: "add_snp_measurement", args: { measurement: "m1" } },
      );
      assert.equal(g.text(CODE_IDS, "c1"), '"AllowedToJoin"');
      assert.equal(g.text(MEASUREMENTS, "m1"), '"AllowedToJoin"');
      await g.pass(
        { name: "remove_node_code", args: { code_id: "c1" } },
        { name: "remove_snp_measurement", args: { measurement: "m1" } },
      );
      assert.equal(g.raw(CODE_IDS, "c1"), undefined);
      assert.equal(g.raw(MEASUREMENTS, "m1"), undefined);
      await g.refused({ name: "add_node_code", args: { code_id: 1 } }, /code_id: expected string/);
      await g.refused({ name: "remove_snp_measurement", args: {} }, /measurement: expected string/);
    });

    it("UVM endorsements map each feed of a DID to its svn; the DID goes with its last feed", async () => {
      const g = single();
      await g.pass(
        { name: "add_snp_uvm_endorsement", args: { did: "did:x", feed: "f1", svn: "1" } },
        { name: "add_snp_uvm_endorsement", args: { did: "did:x", feed: "f2", svn: "2" } },
      );
      assert.equal(g.text(UVM, "did:x"), '{"f1":{"svn":"1"},"f2":{"svn":"2"}}');
      await g.pass({ name: "remove_snp_uvm_endorsement", args: { did: "did:x", feed: "f1" } });
      assert.equal(g.text(UVM, "did:x"), '{"f2":{"svn":"2"}}');
      await g.pass({ name: "remove_snp_uvm_endorsement", args: { did: "did:x", feed: "f2" } });
      assert.equal(g.raw(UVM, "did:x"), undefined);
      await g.refused(
        { name: "add_snp_uvm_endorsement", args: { did: "did:x", feed: "f", svn: 1 } },
        /svn: expected string/,
      );
    });

    it("SNP host data must be the SHA-256 of its security policy, unless the policy is empty", async () => {
      const g = single();
      const policy = "package policy";
      const digest = createHash("sha256").update(policy).digest("hex");
      await g.pass({
        name: "add_snp_host_data",
        args: { host_data: digest, security_policy: policy },
      });
      assert.equal(g.text(HOST_DATA, digest), JSON.stringify(policy));
      await g.pass({ name: "add_snp_host_data", args: { host_data: "beef", security_policy: "" } });
      assert.equal(g.text(HOST_DATA, "beef"), '""');
      await g.pass({ name: "remove_snp_host_data", args: { host_data: "beef" } });
      assert.equal(g.raw(HOST_DATA, "beef"), undefined);
      await g.refused(
        {
          name: "add_snp_host_data",
          args: { host_data: "00".repeat(32), security_policy: policy },
        },
        /host_data is not the SHA-256 digest of security_policy/,
      );
      await g.refused(
        { name: "add_snp_host_data", args: { host_data: "abc", security_policy: policy } },
        /odd number of digits/,
      );
      await g.refused(
        { name: "add_snp_host_data", args: { host_data: "zz", security_policy: policy } },
        /non-hex digit/,
      );
      await g.refused(
        { name: "add_snp_host_data", args: { host_data: digest } },
        /security_policy/,
      );
    });

    it("minimum TCB versions are keyed by lowercase CPUID; removing an absent one fails", async () => {
      const g = single();
      const tcb = { boot_loader: 1, tee: 0, snp: 2, microcode: 3 };
      await g.pass({
        name: "set_snp_minimum_tcb_version",
        args: { cpuid: "00a00f11", tcb_version: tcb },
      });
      assert.equal(g.text(TCB, "00a00f11"), JSON.stringify(tcb));
      await g.pass({ name: "remove_snp_minimum_tcb_version", args: { cpuid: "00a00f11" } });
      assert.equal(g.raw(TCB, "00a00f11"), undefined);
      await g.failsToApply(
        { name: "remove_snp_minimum_tcb_version", args: { cpuid: "00a00f11" } },
        /no minimum TCB version for CPUID 00a00f11/,
      );
    });

    it("refuses CPUIDs and TCB versions of the wrong case, size or shape", async () => {
      const g = single();
      const tcb = { boot_loader: 1, tee: 0, snp: 2, microcode: 3 };
      const set = (args: unknown): Action => ({ name: "set_snp_minimum_tcb_version", args });
      await g.refused(set({ cpuid: "00A00F11", tcb_version: tcb }), /cpuid: must be lowercase hex/);
      await g.refused(
        set({ cpuid: "00a00f", tcb_version: tcb }),
        /cpuid: must be 4 bytes of hex, found 3/,
      );
      await g.refused(set({ cpuid: "00a00f11", tcb_version: "x" }), /tcb_version: expected object/);
      await g.refused(
        set({ cpuid: "00a00f11", tcb_version: { ...tcb, snp: "2" } }),
        /tcb_version.snp: expected number/,
      );
      const hex = (args: unknown): Action => ({ name: "set_snp_minimum_tcb_version_hex", args });
      await g.refused(
        hex({ cpuid: "00a00f11", tcb_version: "00" }),
        /tcb_version: must be 8 bytes/,
      );
      await g.refused(
        hex({ cpuid: "00a00f11", tcb_version: "D315000000000004" }),
        /tcb_version: must be lowercase hex/,
      );
      await g.refused(
        { name: "remove_snp_minimum_tcb_version", args: { cpuid: 5 } },
        /cpuid: expected string/,
      );
    });

    it('virtual measurements are "AllowedToJoin"; virtual host data is a set entry of 8 zero bytes', async () => {
      const g = single();
      await g.pass(
        { name: "add_virtual_measurement", args: { measurement: "vm1" } },
        { name: "add_virtual_host_data", args: { host_data: "vh1" } },
      );
      assert.equal(g.text(Tables.VIRTUAL_MEASUREMENTS, "vm1"), '"AllowedToJoin"');
      assert.deepEqual(g.raw(Tables.VIRTUAL_HOST_DATA, "vh1"), Buffer.alloc(8));
      const stored = g.raw(Tables.VIRTUAL_HOST_DATA, "vh1");
      assert.ok(stored !== undefined);
      assert.equal(decodeValue(Tables.VIRTUAL_HOST_DATA, stored), "", "as the genesis entry");
      await g.pass(
        { name: "remove_virtual_measurement", args: { measurement: "vm1" } },
        { name: "remove_virtual_host_data", args: { host_data: "vh1" } },
      );
      assert.equal(g.raw(Tables.VIRTUAL_MEASUREMENTS, "vm1"), undefined);
      assert.equal(g.raw(Tables.VIRTUAL_HOST_DATA, "vh1"), undefined);
      await g.refused(
        { name: "add_virtual_host_data", args: { host_data: 1 } },
        /host_data: expected string/,
      );
      await g.refused(
        { name: "remove_virtual_measurement", args: {} },
        /measurement: expected string/,
      );
    });
  });

  describe("nodes", () => {
    const seedNodes = (g: Gov, config: Record<string, unknown> = { recovery_threshold: 1 }) =>
      g.write((tx) => {
        put(tx, Tables.NODES, idKey(NODE_A), {
          status: "Pending",
          certificate_signing_request: "csr-a",
        });
        put(tx, Tables.NODES, idKey(NODE_B), {
          status: "Trusted",
          certificate_signing_request: "csr-b",
        });
        put(tx, Tables.NODES, idKey(NODE_C), { status: "Trusted" });
        put(tx, Tables.CONFIGURATION, SINGLETON_KEY, config);
      });

    it("transition_node_to_trusted trusts a Pending node and endorses its CSR", async () => {
      const g = single();
      seedNodes(g, { recovery_threshold: 1, maximum_node_certificate_validity_days: 90 });
      await g.pass({
        name: "transition_node_to_trusted",
        args: { node_id: NODE_A, valid_from: "20250101000000Z" },
      });
      assert.equal(
        g.text(Tables.NODES, NODE_A),
        // The seeded value was written with sorted keys; the constitution appends the new field.
        '{"certificate_signing_request":"csr-a","status":"Trusted","ledger_secret_seqno":42}',
      );
      assert.equal(g.text(Tables.NODE_ENDORSED_CERTIFICATES, NODE_A), "endorsed(csr-a)");
      assert.deepEqual(g.effects.named("generateEndorsedCertificate"), [
        ["generateEndorsedCertificate", "csr-a", "20250101000000Z", 90],
      ]);
    });

    it("transition_node_to_trusted leaves a node that is not Pending alone, and caps the validity", async () => {
      const g = single();
      seedNodes(g);
      await g.pass({
        name: "transition_node_to_trusted",
        args: { node_id: NODE_B, valid_from: "x" },
      });
      assert.deepEqual(g.effects.calls, []);
      await g.failsToApply(
        {
          name: "transition_node_to_trusted",
          args: { node_id: NODE_A, valid_from: "x", validity_period_days: 366 },
        },
        /366 days exceeds the service's maximum of 365 days/,
      );
      await g.failsToApply(
        { name: "transition_node_to_trusted", args: { node_id: "d".repeat(64), valid_from: "x" } },
        /there is no node/,
      );
    });

    it("refuses bad node ids, missing valid_from and validity periods below one day", async () => {
      const g = single();
      await g.refused(
        { name: "transition_node_to_trusted", args: { node_id: "n1", valid_from: "x" } },
        /node_id: an id has 64 characters/,
      );
      await g.refused(
        { name: "transition_node_to_trusted", args: { node_id: NODE_A } },
        /valid_from: expected string/,
      );
      await g.refused(
        {
          name: "set_node_certificate_validity",
          args: { node_id: NODE_A, valid_from: "x", validity_period_days: 0 },
        },
        /validity_period_days: 0 is below the minimum 1/,
      );
      await g.refused(
        {
          name: "set_all_nodes_certificate_validity",
          args: { valid_from: "x", validity_period_days: 2.5 },
        },
        /validity_period_days: expected integer/,
      );
      await g.refused(
        { name: "set_node_data", args: { node_id: null } },
        /node_id: expected string/,
      );
    });

    it("remove_node deletes a Pending node, retires any other and ignores unknown ones", async () => {
      const g = single();
      seedNodes(g);
      await g.pass(
        { name: "remove_node", args: { node_id: NODE_A } },
        { name: "remove_node", args: { node_id: NODE_B } },
        { name: "remove_node", args: { node_id: "d".repeat(64) } },
      );
      assert.equal(g.raw(Tables.NODES, NODE_A), undefined);
      assert.equal(
        g.text(Tables.NODES, NODE_B),
        '{"certificate_signing_request":"csr-b","status":"Retired"}',
      );
    });

    it("set_node_data sets node_data on an existing node", async () => {
      const g = single();
      seedNodes(g);
      await g.pass({ name: "set_node_data", args: { node_id: NODE_C, node_data: { zone: 1 } } });
      assert.equal(g.text(Tables.NODES, NODE_C), '{"status":"Trusted","node_data":{"zone":1}}');
      await g.failsToApply(
        { name: "set_node_data", args: { node_id: "d".repeat(64), node_data: 1 } },
        /there is no node/,
      );
    });

    it("set_node_certificate_validity re-endorses a Trusted node only", async () => {
      const g = single();
      seedNodes(g);
      await g.pass({
        name: "set_node_certificate_validity",
        args: { node_id: NODE_B, valid_from: "t0", validity_period_days: 10 },
      });
      assert.deepEqual(g.effects.calls, [["generateEndorsedCertificate", "csr-b", "t0", 10]]);
      assert.equal(g.text(Tables.NODE_ENDORSED_CERTIFICATES, NODE_B), "endorsed(csr-b)");
      await g.failsToApply(
        { name: "set_node_certificate_validity", args: { node_id: NODE_A, valid_from: "t0" } },
        /is Pending, not Trusted/,
      );
      await g.failsToApply(
        { name: "set_node_certificate_validity", args: { node_id: NODE_C, valid_from: "t0" } },
        /has no certificate signing request/,
      );
    });

    it("set_all_nodes_certificate_validity re-endorses every Trusted node", async () => {
      const g = single();
      g.write((tx) => {
        put(tx, Tables.NODES, idKey(NODE_A), {
          status: "Pending",
          certificate_signing_request: "csr-a",
        });
        put(tx, Tables.NODES, idKey(NODE_B), {
          status: "Trusted",
          certificate_signing_request: "csr-b",
        });
        put(tx, Tables.NODES, idKey(NODE_C), {
          status: "Trusted",
          certificate_signing_request: "csr-c",
        });
      });
      await g.pass({ name: "set_all_nodes_certificate_validity", args: { valid_from: "t0" } });
      assert.deepEqual(g.keys(Tables.NODE_ENDORSED_CERTIFICATES), [NODE_B, NODE_C]);
      assert.equal(g.effects.named("generateEndorsedCertificate").length, 2);
    });
  });

  describe("service", () => {
    it("set_service_certificate_validity renews the service certificate in service.info", async () => {
      const g = single();
      g.write((tx) =>
        put(tx, Tables.CONFIGURATION, SINGLETON_KEY, {
          maximum_service_certificate_validity_days: 30,
        }),
      );
      await g.pass({ name: "set_service_certificate_validity", args: { valid_from: "t0" } });
      assert.deepEqual(g.effects.calls, [["generateNetworkCertificate", "t0", 30]]);
      assert.equal(
        g.text(Tables.SERVICE, SINGLETON_KEY),
        '{"cert":"renewed service cert","status":"Open"}',
      );
      await g.failsToApply(
        {
          name: "set_service_certificate_validity",
          args: { valid_from: "t0", validity_period_days: 31 },
        },
        /exceeds the service's maximum of 30 days/,
      );
    });

    it("trigger_ledger_chunk and trigger_snapshot call the node", async () => {
      const g = single();
      await g.pass({ name: "trigger_ledger_chunk" }, { name: "trigger_snapshot" });
      assert.deepEqual(g.effects.calls, [["triggerLedgerChunk"], ["triggerSnapshot"]]);
    });

    it("trigger_acme_refresh validates its interfaces but fails on a node without ACME", async () => {
      const g = single();
      await g.refused(
        { name: "trigger_acme_refresh", args: { interfaces: "all" } },
        /interfaces: expected array/,
      );
      await g.failsToApply(
        { name: "trigger_acme_refresh", args: { interfaces: ["primary"] } },
        /no ACME support/,
      );
    });

    it("assert_service_identity validates only against this service's certificate", async () => {
      const g = single();
      g.write((tx) => put(tx, Tables.SERVICE, SINGLETON_KEY, { cert: bob.cert, status: "Open" }));
      await g.pass({ name: "assert_service_identity", args: { service_identity: bob.cert } });
      assert.deepEqual(g.effects.calls, []);
      await g.refused(
        { name: "assert_service_identity", args: { service_identity: carol.cert } },
        /service_identity is not this service's certificate/,
      );
      await g.refused(
        { name: "assert_service_identity", args: { service_identity: "x" } },
        /service_identity: not a PEM/,
      );
    });
  });
});
