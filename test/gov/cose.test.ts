import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { Tag } from "cbor-x";
import {
  cborEncode,
  certificateId,
  coseSign1Decode,
  coseSign1Sign,
  createSelfSignedCertificate,
  EcKeyPair,
  type HashName,
  signData,
} from "../../src/crypto/index.js";
import { HttpError } from "../../src/errors.js";
import {
  checkProposalReplay,
  type RecentProposal,
  recentProposalKey,
  signGovMessage,
  verifyGovMessage,
} from "../../src/gov/index.js";
import {
  decodeValue,
  encodeValue,
  idKey,
  keyFromString,
  Store,
  Tables,
} from "../../src/kv/index.js";
import { readLedger } from "../../src/ledger/index.js";

const FIXTURES = join(import.meta.dirname, "../../../shared/fixtures/ccf-ledgers");

interface Identity {
  key: EcKeyPair;
  cert: string;
  id: string;
}

async function identity(name: string, curve: "secp384r1" | "secp256r1" = "secp384r1") {
  const key = EcKeyPair.generate(curve);
  const cert = await createSelfSignedCertificate(key, {
    subjectName: `CN=${name}`,
    validFrom: new Date(),
    validityDays: 30,
  });
  return { key, cert, id: certificateId(cert) };
}

function addMember(store: Store, m: Identity, status: "Accepted" | "Active"): void {
  const tx = store.begin();
  tx.map(Tables.MEMBER_CERTS).set(idKey(m.id), encodeValue(Tables.MEMBER_CERTS, m.cert));
  tx.map(Tables.MEMBER_INFO).set(idKey(m.id), encodeValue(Tables.MEMBER_INFO, { status }));
  store.commit(tx);
}

function addUser(store: Store, u: Identity): void {
  const tx = store.begin();
  tx.map(Tables.USER_CERTS).set(idKey(u.id), encodeValue(Tables.USER_CERTS, u.cert));
  store.commit(tx);
}

function sign(who: Identity, over: Partial<Parameters<typeof signGovMessage>[0]> = {}): Buffer {
  return signGovMessage({
    signingKeyPem: who.key.privateKeyPem,
    signingCertPem: who.cert,
    msgType: "proposal",
    createdAt: 1_700_000_000,
    content: Buffer.from('{"actions":[]}'),
    ...over,
  });
}

/** Asserts an HttpError with this status and code; for 401s, that `reason` is the detail. */
function rejects(fn: () => unknown, status: number, code: string, reason?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof HttpError, `expected an HttpError, got ${String(e)}`);
    assert.equal(e.status, status, e.message);
    assert.equal(e.code, code);
    if (reason !== undefined) {
      const text = status === 401 ? (e.details?.[0]?.message ?? "") : e.message;
      assert.match(text, reason);
    }
    return true;
  });
}

/** Re-encodes a message with changed protected headers, re-signed by `who` (so only they differ). */
function resignWithHeaders(who: Identity, edit: (h: Map<number | string, unknown>) => void) {
  const d = coseSign1Decode(sign(who));
  const headers = new Map(d.protectedHeaders);
  edit(headers);
  return coseSign1Sign({
    key: who.key,
    protectedHeaders: headers,
    payload: d.payload ?? Buffer.alloc(0),
  });
}

/**
 * A tagged COSE_Sign1 signed by hand with `hash`, whatever alg the headers name (coseSign1Sign
 * refuses an alg that does not fit the key, which is what these tests need to send).
 */
function signRaw(who: Identity, headers: Map<number | string, unknown>, hash: HashName) {
  const protectedBytes = cborEncode(headers);
  const payload = Buffer.from("{}");
  const tbs = cborEncode(["Signature1", protectedBytes, new Uint8Array(0), payload]);
  const signature = signData(who.key, tbs, hash);
  return cborEncode(new Tag([protectedBytes, new Map(), payload, signature], 18));
}

function untag(msg: Buffer): unknown[] {
  const d = coseSign1Decode(msg);
  return [d.protectedBytes, d.unprotectedHeaders, d.payload, d.signature];
}

describe("governance COSE Sign1 messages", () => {
  const store = new Store();
  let member: Identity;
  let accepted: Identity;
  let p256Member: Identity;
  let user: Identity;

  before(async () => {
    member = await identity("member0");
    accepted = await identity("member1");
    p256Member = await identity("member2", "secp256r1");
    user = await identity("user0");
    addMember(store, member, "Active");
    addMember(store, accepted, "Accepted");
    addMember(store, p256Member, "Active");
    addUser(store, user);
  });

  it("signs as CCF's tool does: tagged, alg from the curve, kid = member id bytes, gov headers", () => {
    const msg = sign(member, { msgType: "ballot", proposalId: "ab".repeat(32) });
    assert.equal(msg[0], 0xd2, "tag 18");
    const d = coseSign1Decode(msg);
    assert.deepEqual(
      [...d.protectedHeaders.keys()],
      [1, 4, "ccf.gov.msg.type", "ccf.gov.msg.created_at", "ccf.gov.msg.proposal_id"],
    );
    assert.equal(d.protectedHeaders.get(1), -35);
    assert.deepEqual(Buffer.from(d.protectedHeaders.get(4) as Uint8Array).toString(), member.id);
    assert.equal(d.protectedHeaders.get("ccf.gov.msg.created_at"), 1_700_000_000);
    assert.equal(d.unprotectedHeaders.size, 0);
    assert.equal(coseSign1Decode(sign(p256Member)).protectedHeaders.get(1), -7);
  });

  it("round-trips: the verifier returns the signer, headers and content", () => {
    const content = Buffer.from('{"actions":[{"name":"set_recovery_threshold"}]}');
    const msg = sign(member, { msgType: "proposal", createdAt: 1_746_707_517, content });
    const v = verifyGovMessage(msg, { tx: store.begin(), expectedType: "proposal" });
    assert.equal(v.memberId, member.id);
    assert.equal(v.msgType, "proposal");
    assert.equal(v.createdAt, 1_746_707_517);
    assert.equal(v.proposalId, undefined);
    assert.ok(v.content.equals(content));
    assert.ok(v.envelope.equals(msg));
    assert.equal(v.protectedHeaders.get("ccf.gov.msg.type"), "proposal");
  });

  it("keeps created_at beyond 32 bits an integer", () => {
    const msg = sign(member, { createdAt: 9_999_999_999 });
    assert.equal(verifyGovMessage(msg, { tx: store.begin() }).createdAt, 9_999_999_999);
  });

  it("accepts a ballot whose signed proposal id is the one in the URL", () => {
    const proposalId = "cd".repeat(32);
    const msg = sign(member, { msgType: "ballot", proposalId });
    const v = verifyGovMessage(msg, { tx: store.begin(), expectedType: "ballot", proposalId });
    assert.equal(v.proposalId, proposalId);
  });

  it("refuses a signed proposal id that differs from the URL's (400 InvalidResourceName)", () => {
    const msg = sign(member, { msgType: "ballot", proposalId: "cd".repeat(32) });
    rejects(
      () => verifyGovMessage(msg, { tx: store.begin(), proposalId: "ef".repeat(32) }),
      400,
      "InvalidResourceName",
      /Authenticated proposal id does not match URL/,
    );
    const none = sign(member, { msgType: "withdrawal" });
    rejects(
      () => verifyGovMessage(none, { tx: store.begin(), proposalId: "ef".repeat(32) }),
      400,
      "InvalidResourceName",
    );
  });

  it("refuses a kid that is no member (401)", async () => {
    const stranger = await identity("stranger");
    rejects(
      () => verifyGovMessage(sign(stranger), { tx: store.begin() }),
      401,
      "InvalidAuthenticationInfo",
      /^Signer is not a known member$/,
    );
  });

  it("refuses a message signed with a user's key (401)", () => {
    rejects(
      () => verifyGovMessage(sign(user), { tx: store.begin() }),
      401,
      "InvalidAuthenticationInfo",
      /^Signer is not a known member$/,
    );
  });

  it("refuses a tampered payload (401)", () => {
    const msg = sign(member, { content: Buffer.from('{"actions":[1]}') });
    const at = msg.indexOf(Buffer.from('{"actions":[1]}'));
    msg[at + 12] = "2".charCodeAt(0);
    rejects(
      () => verifyGovMessage(msg, { tx: store.begin() }),
      401,
      "InvalidAuthenticationInfo",
      /^Failed to validate COSE Sign1$/,
    );
  });

  it("refuses a kid claiming another member's identity (401)", async () => {
    const impostor = await identity("impostor");
    const msg = resignWithHeaders(impostor, (h) => h.set(4, Buffer.from(member.id)));
    rejects(
      () => verifyGovMessage(msg, { tx: store.begin() }),
      401,
      "InvalidAuthenticationInfo",
      /^Failed to validate COSE Sign1$/,
    );
  });

  it("refuses the wrong or a missing message type (401), with CCF's reasons", () => {
    rejects(
      () => verifyGovMessage(sign(member), { tx: store.begin(), expectedType: "ballot" }),
      401,
      "InvalidAuthenticationInfo",
      /^Found ccf.gov.msg.type set to proposal, expected ccf.gov.msg.type to be ballot$/,
    );
    const untyped = resignWithHeaders(member, (h) => h.delete("ccf.gov.msg.type"));
    rejects(
      () => verifyGovMessage(untyped, { tx: store.begin(), expectedType: "proposal" }),
      401,
      "InvalidAuthenticationInfo",
      /^Missing ccf.gov.msg.type, expected ccf.gov.msg.type to be proposal$/,
    );
  });

  it("requires an Active member except for ack and state_digest", () => {
    rejects(
      () => verifyGovMessage(sign(accepted), { tx: store.begin(), expectedType: "proposal" }),
      401,
      "InvalidAuthenticationInfo",
      /^Signer is not an ACTIVE member$/,
    );
    for (const msgType of ["ack", "state_digest"]) {
      const v = verifyGovMessage(sign(accepted, { msgType }), {
        tx: store.begin(),
        expectedType: msgType,
      });
      assert.equal(v.memberId, accepted.id);
    }
  });

  it("names the policy that failed and the COSE challenge, as CCF's 401 does", () => {
    try {
      verifyGovMessage(sign(user), { tx: store.begin(), expectedType: "ack" });
      assert.fail("verified");
    } catch (e) {
      assert.ok(e instanceof HttpError);
      assert.equal(e.details?.[0]?.auth_policy, "member_cose_sign1");
      assert.equal(e.headers?.["www-authenticate"], 'COSE-SIGN1 realm="Signed request access"');
    }
  });

  it("refuses a message without created_at, or with a negative one (400)", () => {
    const noTime = resignWithHeaders(member, (h) => h.delete("ccf.gov.msg.created_at"));
    rejects(
      () => verifyGovMessage(noTime, { tx: store.begin() }),
      400,
      "InvalidInput",
      /Missing created_at in protected header/,
    );
    const negative = resignWithHeaders(member, (h) => h.set("ccf.gov.msg.created_at", -1));
    rejects(() => verifyGovMessage(negative, { tx: store.begin() }), 400, "InvalidInput");
    const text = resignWithHeaders(member, (h) => h.set("ccf.gov.msg.created_at", "1700000000"));
    rejects(() => verifyGovMessage(text, { tx: store.begin() }), 400, "InvalidInput");
  });

  it("refuses a kid sent as text, or missing, as malformed (400)", () => {
    const textKid = resignWithHeaders(member, (h) => h.set(4, member.id));
    rejects(() => verifyGovMessage(textKid, { tx: store.begin() }), 400, "InvalidInput");
    const noKid = resignWithHeaders(member, (h) => h.delete(4));
    rejects(
      () => verifyGovMessage(noKid, { tx: store.begin() }),
      400,
      "InvalidInput",
      /Missing kid/,
    );
  });

  it("refuses bytes that are not a tagged COSE_Sign1 (400)", () => {
    const tx = store.begin();
    rejects(() => verifyGovMessage(Buffer.from('{"actions":[]}'), { tx }), 400, "InvalidInput");
    rejects(() => verifyGovMessage(Buffer.alloc(0), { tx }), 400, "InvalidInput");
    rejects(() => verifyGovMessage(cborEncode([1, 2]), { tx }), 400, "InvalidInput");
    rejects(
      () => verifyGovMessage(cborEncode(untag(sign(member))), { tx }),
      400,
      "InvalidInput",
      /COSE_Sign1 is not tagged/,
    );
  });

  it("refuses an algorithm that is not ECDSA (401)", () => {
    const headers = new Map(coseSign1Decode(sign(member)).protectedHeaders).set(1, -8);
    rejects(
      () => verifyGovMessage(signRaw(member, headers, "sha384"), { tx: store.begin() }),
      401,
      "InvalidAuthenticationInfo",
      /^Unsupported algorithm: -8$/,
    );
  });

  it("refuses an ECDSA alg that does not fit the member's key, even with a valid signature", () => {
    // ES256 names SHA-256; signing with SHA-256 on the P-384 key makes the signature itself good.
    const headers = new Map(coseSign1Decode(sign(member)).protectedHeaders).set(1, -7);
    rejects(
      () => verifyGovMessage(signRaw(member, headers, "sha256"), { tx: store.begin() }),
      401,
      "InvalidAuthenticationInfo",
      /^Failed to validate COSE Sign1$/,
    );
  });
});

describe("governance replay protection", () => {
  const sig = (n: number) => Buffer.from([n]);
  const entries = (times: number[]): RecentProposal[] =>
    times.map((t, i) => ({ key: recentProposalKey(t, sig(i)), proposalId: `p${i}` }));

  it("keys a proposal by its padded created_at and the SHA-256 of its signature", () => {
    const digest = createHash("sha256").update("sig").digest("hex");
    assert.equal(recentProposalKey(42, Buffer.from("sig")), `0000000042:${digest}`);
  });

  it("accepts the first proposal and records it", () => {
    const r = checkProposalReplay({ recent: [], createdAt: 100, signature: sig(9) });
    assert.equal(r.key, recentProposalKey(100, sig(9)));
    assert.deepEqual(r.evict, []);
  });

  it("refuses the same message twice (ProposalReplay, naming the first proposal)", () => {
    rejects(
      () => checkProposalReplay({ recent: entries([100, 101]), createdAt: 101, signature: sig(1) }),
      400,
      "ProposalReplay",
      /already exists as proposal p1$/,
    );
  });

  it("refuses a proposal older than the window's median (ProposalCreatedTooLongAgo)", () => {
    const recent = entries([100, 101, 102, 103]);
    rejects(
      () => checkProposalReplay({ recent, createdAt: 101, signature: sig(7) }),
      400,
      "ProposalCreatedTooLongAgo",
      /created_at must be greater than 0000000102$/,
    );
    assert.doesNotThrow(() => checkProposalReplay({ recent, createdAt: 102, signature: sig(7) }));
  });

  it("refuses created_at beyond ten digits (InvalidCreatedAt)", () => {
    rejects(
      () => checkProposalReplay({ recent: [], createdAt: 10_000_000_000, signature: sig(1) }),
      400,
      "InvalidCreatedAt",
    );
  });

  it("evicts the oldest keys beyond the window size", () => {
    const recent = entries([103, 100, 102, 101]);
    const r = checkProposalReplay({ recent, createdAt: 104, signature: sig(8), windowSize: 3 });
    assert.deepEqual(r.evict, [recentProposalKey(100, sig(1)), recentProposalKey(101, sig(3))]);
    const full = checkProposalReplay({ recent, createdAt: 104, signature: sig(8) });
    assert.deepEqual(full.evict, []);
  });
});

describe("governance messages CCF wrote", () => {
  for (const service of ["cose_flipflop_service", "double_sealed_service"]) {
    it(`verifies every message in ${service}'s cose_history, and its replay keys`, () => {
      const messages: Array<{ bytes: Buffer; seqno: number }> = [];
      const replayKeys = new Map<number, string>();
      const report = readLedger(join(FIXTURES, service, "ledger"), {
        committedOnly: true,
        onEntry: (e) => {
          for (const [, v] of e.writeSet.get(Tables.COSE_HISTORY) ?? []) {
            if (v === null) continue;
            const b64 = decodeValue(Tables.COSE_HISTORY, v) as string;
            messages.push({ bytes: Buffer.from(b64, "base64"), seqno: e.seqno });
          }
          for (const [k, v] of e.writeSet.get(Tables.COSE_RECENT_PROPOSALS) ?? []) {
            if (v !== null) replayKeys.set(e.seqno, keyFromString(k).toString("utf8"));
          }
        },
      });
      assert.ok(messages.length >= 6, `${messages.length} messages`);
      const tx = report.store.begin();
      const members = new Set(
        readdirCerts(join(FIXTURES, service, "common")).map((pem) => certificateId(pem)),
      );
      for (const { bytes, seqno } of messages) {
        const v = verifyGovMessage(bytes, { tx });
        assert.ok(members.has(v.memberId), `seqno ${seqno}: signer ${v.memberId}`);
        if (v.msgType === "proposal") {
          assert.equal(recentProposalKey(v.createdAt, v.signature), replayKeys.get(seqno));
        } else {
          assert.equal(v.msgType, "ballot");
          assert.match(v.proposalId ?? "", /^[0-9a-f]{64}$/);
        }
      }
    });
  }
});

function readdirCerts(dir: string): string[] {
  return ["member0", "member1", "member2"].flatMap((m) => {
    try {
      return [readFileSync(join(dir, `${m}_cert.pem`), "utf8")];
    } catch {
      return [];
    }
  });
}
