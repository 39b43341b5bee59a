// Governance on a real node over HTTPS: members activate by acking the state digest, propose,
// vote and withdraw with COSE Sign1 requests (one made by `ccf-ts cose-sign`, as CCF's docs pipe
// ccf_cose_sign1 into curl), and the constitution's apply changes the service.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import { certificateId } from "../../src/crypto/index.js";
import { signGovMessage } from "../../src/gov/index.js";
import { singleNodeConfig } from "../helpers/node-config.js";
import { ccfTsArgs, runCcfTs, startNode, waitFor } from "../helpers/process.js";

const API = "api-version=2024-07-01";

/** A constitution for this test: a majority of active members; one action, set_user. */
const CONSTITUTION = `
export function validate(input) {
  const p = JSON.parse(input);
  for (const a of p.actions) {
    if (a.name !== "set_user" && a.name !== "noop") return { valid: false, description: "unknown action " + a.name };
  }
  return { valid: true, description: "OK" };
}
export function resolve(proposal, proposerId, votes) {
  let active = 0;
  ccf.kv["public:ccf.gov.members.info"].forEach((v) => {
    if (ccf.bufToJsonCompatible(v).status === "Active") active++;
  });
  return votes.filter((v) => v.vote).length > Math.floor(active / 2) ? "Accepted" : "Open";
}
export function apply(proposal, proposalId) {
  for (const a of JSON.parse(proposal).actions) {
    if (a.name !== "set_user") continue;
    const id = ccf.strToBuf(ccf.pemToId(a.args.cert));
    ccf.kv["public:ccf.gov.users.certs"].set(id, ccf.strToBuf(a.args.cert));
  }
}
`;

const YES = { ballot: "export function vote(proposal, proposerId) { return true; }" };
const NO = { ballot: "export function vote(proposal, proposerId) { return false; }" };

/** The fields of gov API answers these tests read. */
interface GovJson {
  error: { code: string };
  proposalId: string;
  proposalState: string;
  ballotCount: number;
  finalVotes: Record<string, boolean>;
  status: string;
  memberId: string;
  stateDigest: string;
}

interface Signer {
  cert: string;
  key: string;
  id: string;
}

describe("governance on a node", () => {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-gov-"));
  let node: Awaited<ReturnType<typeof startNode>>["node"];
  let base: string;
  let agent: Agent;
  const members: Signer[] = [];
  let user1: Signer;
  // Messages signed here take created_at from this counter, an hour behind the clock: the CLI
  // (created_at = the clock's second) then never meets the same second, nor a median of recent
  // proposals ahead of it (CCF refuses a proposal older than that median).
  let createdAt = Math.floor(Date.now() / 1000) - 3600;

  function signer(name: string): Signer {
    const cert = readFileSync(join(dir, `${name}_cert.pem`), "utf8");
    return {
      cert,
      key: readFileSync(join(dir, `${name}_privk.pem`), "utf8"),
      id: certificateId(cert),
    };
  }

  function sign(who: Signer, msgType: string, content: unknown, proposalId?: string): Buffer {
    createdAt += 1;
    return signGovMessage({
      signingKeyPem: who.key,
      signingCertPem: who.cert,
      msgType,
      createdAt,
      content: Buffer.from(typeof content === "string" ? content : JSON.stringify(content)),
      ...(proposalId === undefined ? {} : { proposalId }),
    });
  }

  async function call(method: "GET" | "POST", path: string, body?: Buffer) {
    const res = await request(`${base}${path}`, {
      dispatcher: agent,
      method,
      ...(body === undefined ? {} : { body, headers: { "content-type": "application/cose" } }),
    });
    const text = await res.body.text();
    return {
      status: res.statusCode,
      headers: res.headers,
      text,
      json: () => JSON.parse(text) as GovJson,
    };
  }

  before(async () => {
    for (const args of [
      ["--name", "member0", "--gen-enc-key"],
      ["--name", "member1"],
      ["--name", "user1"],
    ]) {
      const r = runCcfTs(["keygen", ...args], dir);
      assert.equal(r.status, 0, r.stderr);
    }
    writeFileSync(join(dir, "constitution.js"), CONSTITUTION);
    const config = singleNodeConfig(dir, {
      start: {
        members: [
          {
            certificate_file: join(dir, "member0_cert.pem"),
            encryption_public_key_file: join(dir, "member0_enc_pubk.pem"),
          },
          { certificate_file: join(dir, "member1_cert.pem") },
        ],
        constitution_files: [join(dir, "constitution.js")],
      },
      signatures: { tx_count: 10, delay: "50ms" },
    });
    ({ node, base } = await startNode(dir, config));
    agent = new Agent({ connect: { ca: readFileSync(join(dir, "service_cert.pem"), "utf8") } });
    members.push(signer("member0"), signer("member1"));
    user1 = signer("user1");
  });

  after(async () => {
    await agent?.close();
    if (node?.exitCode === null) node.kill("SIGTERM");
  });

  it("refuses governance calls without an api-version", async () => {
    const res = await call("GET", "/gov/members/proposals");
    assert.equal(res.status, 400);
    assert.equal(res.json().error.code, "MissingApiVersionParameter");
  });

  it("activates each member through the state digest update and ack", async () => {
    for (const m of members) {
      const digest = await waitFor("a signature to ack", async () => {
        const r = await call(
          "POST",
          `/gov/members/state-digests/${m.id}:update?${API}`,
          sign(m, "state_digest", ""),
        );
        return r.status === 200 ? r.json() : undefined;
      });
      assert.equal(digest.memberId, m.id);
      assert.match(digest.stateDigest, /^[0-9a-f]{64}$/);
      const ack = await call(
        "POST",
        `/gov/members/state-digests/${m.id}:ack?${API}`,
        sign(m, "ack", digest),
      );
      assert.equal(ack.status, 204, ack.text);
      const info = await call("GET", `/gov/service/members/${m.id}?${API}`);
      assert.equal(info.json().status, "Active", info.text);
    }
  });

  it("runs CCF's documented round trip: cose-sign a proposal, a majority votes, Accepted and applied", async () => {
    const proposalFile = join(dir, "set_user.json");
    writeFileSync(
      proposalFile,
      JSON.stringify({ actions: [{ name: "set_user", args: { cert: user1.cert } }] }),
    );
    createdAt += 1;
    const signed = spawnSync(
      process.execPath,
      ccfTsArgs(
        "cose-sign",
        "--content",
        proposalFile,
        "--signing-cert",
        join(dir, "member0_cert.pem"),
        "--signing-key",
        join(dir, "member0_privk.pem"),
        "--ccf-gov-msg-type",
        "proposal",
        "--ccf-gov-msg-created_at",
        new Date(createdAt * 1000).toISOString(),
      ),
      { cwd: dir, timeout: 60_000 },
    );
    assert.equal(signed.status, 0, signed.stderr?.toString());
    const created = await call("POST", `/gov/members/proposals:create?${API}`, signed.stdout);
    assert.equal(created.status, 200, created.text);
    const proposal = created.json() as { proposalId: string; proposalState: string };
    assert.equal(proposal.proposalState, "Open");
    assert.match(String(created.headers["x-ms-ccf-transaction-id"]), /^2\.\d+$/);

    const [m0, m1] = members as [Signer, Signer];
    const v0 = await call(
      "POST",
      `/gov/members/proposals/${proposal.proposalId}/ballots/${m0.id}:submit?${API}`,
      sign(m0, "ballot", YES, proposal.proposalId),
    );
    assert.equal(v0.json().proposalState, "Open", v0.text);
    assert.equal((await call("GET", `/gov/service/users/${user1.id}?${API}`)).status, 404);
    const v1 = await call(
      "POST",
      `/gov/members/proposals/${proposal.proposalId}/ballots/${m1.id}:submit?${API}`,
      sign(m1, "ballot", YES, proposal.proposalId),
    );
    assert.equal(v1.status, 200, v1.text);
    assert.equal(v1.json().proposalState, "Accepted");
    assert.deepEqual(v1.json().finalVotes, { [m0.id]: true, [m1.id]: true });
    assert.equal((await call("GET", `/gov/service/users/${user1.id}?${API}`)).status, 200);

    const listed = await call("GET", `/gov/members/proposals/${proposal.proposalId}?${API}`);
    assert.equal(listed.json().proposalState, "Accepted");
    const ballot = await call(
      "GET",
      `/gov/members/proposals/${proposal.proposalId}/ballots/${m0.id}?${API}`,
    );
    assert.equal(ballot.text, YES.ballot);
  });

  it("a ballot that returns false keeps the proposal Open; the proposer withdraws it", async () => {
    const [m0, m1] = members as [Signer, Signer];
    const created = await call(
      "POST",
      `/gov/members/proposals:create?${API}`,
      sign(m0, "proposal", { actions: [{ name: "noop" }] }),
    );
    const id = (created.json() as { proposalId: string }).proposalId;
    const no = await call(
      "POST",
      `/gov/members/proposals/${id}/ballots/${m1.id}:submit?${API}`,
      sign(m1, "ballot", NO, id),
    );
    assert.equal(no.json().proposalState, "Open");
    assert.equal(no.json().ballotCount, 1);
    const notMine = await call(
      "POST",
      `/gov/members/proposals/${id}:withdraw?${API}`,
      sign(m1, "withdrawal", "", id),
    );
    assert.equal(notMine.status, 403);
    const withdrawn = await call(
      "POST",
      `/gov/members/proposals/${id}:withdraw?${API}`,
      sign(m0, "withdrawal", "", id),
    );
    assert.equal(withdrawn.status, 200, withdrawn.text);
    assert.equal(withdrawn.json().proposalState, "Withdrawn");
  });

  it("ccf-ts gov proposes, votes and shows in one step each, from the identities' folder", () => {
    const file = join(dir, "noop.json");
    // Three noops: no other test proposes this. The CLI's created_at is the clock's second, which
    // the other tests' counter may also reach, and the same content signed (deterministically) at
    // the same second by the same member is a replay.
    writeFileSync(
      file,
      JSON.stringify({ actions: [{ name: "noop" }, { name: "noop" }, { name: "noop" }] }),
    );
    const gov = (...args: string[]) => {
      const r = runCcfTs(["gov", "--url", base, ...args], dir);
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as GovJson;
    };
    const proposed = gov("propose", file);
    assert.equal(proposed.proposalState, "Open");
    assert.equal(gov("vote", proposed.proposalId).proposalState, "Open");
    const accepted = gov("--member", "member1", "vote", proposed.proposalId, "--accept");
    assert.equal(accepted.proposalState, "Accepted");
    assert.equal(gov("show", proposed.proposalId).proposalState, "Accepted");
    const refused = runCcfTs(["gov", "--url", base, "--member", "user1", "propose", file], dir);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /InvalidAuthenticationInfo|401/);
  });

  it("refuses a replayed message, a user's signature and a non-COSE body with CCF's codes", async () => {
    const [m0] = members as [Signer];
    // Not a proposal any other test makes (the single noop, the CLI's three): with this test's
    // counter reaching the same created_at, that would be a replay too.
    const bytes = sign(m0, "proposal", { actions: [{ name: "noop" }, { name: "noop" }] });
    assert.equal((await call("POST", `/gov/members/proposals:create?${API}`, bytes)).status, 200);
    const replay = await call("POST", `/gov/members/proposals:create?${API}`, bytes);
    assert.equal(replay.status, 400);
    assert.equal(replay.json().error.code, "ProposalReplay");
    const byUser = await call(
      "POST",
      `/gov/members/proposals:create?${API}`,
      sign(user1, "proposal", { actions: [] }),
    );
    assert.equal(byUser.status, 401);
    assert.equal(byUser.json().error.code, "InvalidAuthenticationInfo");
    const garbage = await call(
      "POST",
      `/gov/members/proposals:create?${API}`,
      Buffer.from("not cose"),
    );
    assert.equal(garbage.status, 400);
  });
});
