import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { certificateId, coseSign1Decode } from "../../src/crypto/index.js";
import { verifyGovMessage } from "../../src/gov/index.js";
import { encodeValue, idKey, Store, Tables } from "../../src/kv/index.js";
import { ccfTsArgs } from "../helpers/process.js";

// CCF-generated identities: the key is a SEC1 PEM after an EC PARAMETERS block, as CCF writes it.
const COMMON = join(
  import.meta.dirname,
  "../../../shared/fixtures/ccf-ledgers/cose_flipflop_service/common",
);
const MEMBER_CERT = join(COMMON, "member0_cert.pem");
const MEMBER_KEY = join(COMMON, "member0_privk.pem");
const USER_KEY = join(COMMON, "user0_privk.pem");

/** Runs `ccf-ts cose-sign` with binary stdout (the COSE bytes) and text stderr. */
function coseSign(args: string[], opts: { input?: Buffer; tz?: string } = {}) {
  const r = spawnSync(process.execPath, ccfTsArgs("cose-sign", ...args), {
    input: opts.input,
    env: { ...process.env, TZ: opts.tz ?? "UTC" },
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString("utf8") };
}

function flags(over: Record<string, string | undefined>): string[] {
  const all: Record<string, string | undefined> = {
    "--signing-cert": MEMBER_CERT,
    "--signing-key": MEMBER_KEY,
    "--ccf-gov-msg-type": "proposal",
    "--ccf-gov-msg-created_at": "1747219110",
    ...over,
  };
  return Object.entries(all).flatMap(([k, v]) => (v === undefined ? [] : [k, v]));
}

describe("ccf-ts cose-sign", () => {
  let dir: string;
  let proposal: string;
  const store = new Store();
  const memberCert = readFileSync(MEMBER_CERT, "utf8");
  const memberId = certificateId(memberCert);

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "cose-sign-"));
    proposal = join(dir, "proposal.json");
    writeFileSync(proposal, '{"actions":[{"name":"trigger_ledger_chunk","args":{}}]}');
    const tx = store.begin();
    tx.map(Tables.MEMBER_CERTS).set(idKey(memberId), encodeValue(Tables.MEMBER_CERTS, memberCert));
    tx.map(Tables.MEMBER_INFO).set(
      idKey(memberId),
      encodeValue(Tables.MEMBER_INFO, { status: "Active" }),
    );
    store.commit(tx);
  });

  it("writes a COSE_Sign1 that the governance verifier accepts", () => {
    const r = coseSign(flags({ "--content": proposal }));
    assert.equal(r.status, 0, r.stderr);
    const v = verifyGovMessage(r.stdout, { tx: store.begin(), expectedType: "proposal" });
    assert.equal(v.memberId, memberId);
    assert.equal(v.createdAt, 1747219110);
    assert.equal(v.content.toString(), readFileSync(proposal, "utf8"));
  });

  it("reads the content from stdin with '-', and takes the dashed flag spellings", () => {
    const proposalId = "ab".repeat(32);
    const r = coseSign(
      flags({
        "--content": "-",
        "--ccf-gov-msg-type": "ballot",
        "--ccf-gov-msg-created_at": undefined,
        "--ccf-gov-msg-created-at": "1747219111",
        "--ccf-gov-msg-proposal-id": proposalId,
      }),
      { input: Buffer.from('{"ballot":"export function vote() { return true; }"}') },
    );
    assert.equal(r.status, 0, r.stderr);
    const v = verifyGovMessage(r.stdout, {
      tx: store.begin(),
      expectedType: "ballot",
      proposalId,
    });
    assert.match(v.content.toString(), /return true/);
    assert.equal(v.createdAt, 1747219111);
  });

  it("gives ISO-8601 and epoch times the same created_at header", () => {
    const createdAt = (time: string, tz?: string) => {
      const r = coseSign(flags({ "--content": proposal, "--ccf-gov-msg-created_at": time }), {
        ...(tz === undefined ? {} : { tz }),
      });
      assert.equal(r.status, 0, r.stderr);
      return coseSign1Decode(r.stdout).protectedHeaders.get("ccf.gov.msg.created_at");
    };
    assert.equal(createdAt("1747219110"), 1747219110);
    assert.equal(createdAt("2025-05-14T10:38:30+00:00"), 1747219110);
    assert.equal(createdAt("2025-05-14T12:38:30.75+02:00"), 1747219110);
    // Without an offset the time is local, as Python's datetime.fromisoformat reads it.
    assert.equal(createdAt("2025-05-14T16:08:30", "Asia/Kolkata"), 1747219110);
  });

  it("names a missing content file and exits non-zero", () => {
    const r = coseSign(flags({ "--content": join(dir, "nope.json") }));
    assert.equal(r.status, 1);
    assert.equal(r.stdout.length, 0);
    assert.match(r.stderr, /--content .*nope\.json: cannot read \(ENOENT\)/);
  });

  it("names a bad created_at", () => {
    const r = coseSign(flags({ "--content": proposal, "--ccf-gov-msg-created_at": "yesterday" }));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--ccf-gov-msg-created_at "yesterday": not an ISO-8601 time/);
    const feb30 = coseSign(
      flags({ "--content": proposal, "--ccf-gov-msg-created_at": "2025-02-30T00:00:00Z" }),
    );
    assert.equal(feb30.status, 1);
  });

  it("refuses a key that is not the certificate's, and an unparsable key", () => {
    const other = coseSign(flags({ "--content": proposal, "--signing-key": USER_KEY }));
    assert.equal(other.status, 1);
    assert.match(other.stderr, /signing key does not match the signing certificate/);
    const garbage = join(dir, "garbage.pem");
    writeFileSync(garbage, "not a key");
    const bad = coseSign(flags({ "--content": proposal, "--signing-key": garbage }));
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /--signing-key .*garbage\.pem/);
  });

  it("refuses an unknown message type, a ballot without a proposal id, and missing flags", () => {
    const type = coseSign(flags({ "--content": proposal, "--ccf-gov-msg-type": "vote" }));
    assert.notEqual(type.status, 0);
    assert.match(type.stderr, /'vote' is invalid/);
    const ballot = coseSign(flags({ "--content": proposal, "--ccf-gov-msg-type": "ballot" }));
    assert.equal(ballot.status, 1);
    assert.match(ballot.stderr, /ballot requires --ccf-gov-msg-proposal_id/);
    const missing = coseSign(["--content", proposal]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /missing --signing-cert, --signing-key, --ccf-gov-msg-type/);
  });
});
