// Disaster recovery end to end. (a) A three-node sandbox is written to (private and public
// records, a ledger rekey by governance, more records), stopped, and recovered from node 0's
// ledger with `sandbox --recover --nodes 3`: every record reads back, on every node, new writes
// commit, and a receipt issued before the disaster still verifies against the old identity.
// (b) A recovering node driven by hand through the recovery-share API: what it refuses (a share
// before the service waits for shares, a non-member, a corrupted share, one share short of the
// threshold, malformed share fetches), and that a correct submission still recovers. (c) A
// service with snapshots recovers from its latest one (only the ledger after it is replayed), and
// a node joining the recovered service starts from the recovered service's own snapshot.

import assert from "node:assert/strict";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Agent, request } from "undici";
import { verifyReceiptBytes } from "../../src/audit/index.js";
import { GovClient, GovRequestError } from "../../src/cli/gov-client.js";
import { certificateDer, certificateId, rsaOaepUnwrap } from "../../src/crypto/index.js";
import { decodeValue, keyToString, SINGLETON_KEY, Tables } from "../../src/kv/index.js";
import { readLedger } from "../../src/ledger/index.js";
import { singleNodeConfig } from "../helpers/node-config.js";
import { runCcfTs, startCcfTs, startNode, waitFor } from "../helpers/process.js";

const TXID = "x-ms-ccf-transaction-id";
const GOV = "api-version=2024-07-01";
const SINGLETON = keyToString(SINGLETON_KEY);

type Sandbox = ReturnType<typeof startCcfTs>;

/** Waits for the sandbox to report the service up; returns every node's address. */
async function sandboxUp(sandbox: Sandbox, nodes: number): Promise<string[]> {
  try {
    return await waitFor(
      "the sandbox to report the network",
      () => {
        if (sandbox.exitCode !== null) throw new Error(`sandbox exited: ${sandbox.output()}`);
        if (!sandbox.output().includes("Press Ctrl+C")) return undefined;
        const found = [...sandbox.output().matchAll(/node (\d): https:\/\/(\S+)/g)];
        assert.equal(found.length, nodes, sandbox.output());
        return found.map((m) => `https://${m[2]}`);
      },
      150_000,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}\nsandbox output:\n${sandbox.output()}`);
  }
}

interface Reply {
  status: number;
  text: string;
  txId: string;
  json: () => Record<string, unknown>;
}

async function call(
  agent: Agent,
  url: string,
  method: "GET" | "POST" = "GET",
  body?: unknown,
): Promise<Reply> {
  const res = await request(url, {
    dispatcher: agent,
    method,
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
  });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    text,
    txId: String(res.headers[TXID]),
    json: () => JSON.parse(text) as Record<string, unknown>,
  };
}

function userAgent(common: string, ca: string): Agent {
  return new Agent({
    connect: {
      ca,
      cert: readFileSync(join(common, "user0_cert.pem"), "utf8"),
      key: readFileSync(join(common, "user0_privk.pem"), "utf8"),
    },
  });
}

async function committed(agent: Agent, base: string, txId: string): Promise<void> {
  await waitFor(`${txId} committed`, async () => {
    const r = await call(agent, `${base}/app/tx?transaction_id=${txId}`);
    return r.json().status === "Committed" ? true : undefined;
  });
}

/** `ccf-ts gov` from the workspace's sandbox_common, as a member would run it. */
function gov(common: string, base: string, ...args: string[]) {
  const r = runCcfTs(["gov", "--url", base, ...args], common);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { proposalId: string; proposalState: string };
}

/** Proposes `actions` as member0; member0 and member1 vote yes (two of three: accepted). */
function passProposal(common: string, base: string, name: string, actions: unknown[]): void {
  writeFileSync(join(common, `${name}.json`), JSON.stringify({ actions }));
  const { proposalId } = gov(common, base, "propose", `${name}.json`);
  assert.equal(gov(common, base, "vote", proposalId).proposalState, "Open");
  assert.equal(
    gov(common, base, "--member", "member1", "vote", proposalId).proposalState,
    "Accepted",
  );
}

function committedSnapshotSeqnos(dir: string): number[] {
  return readdirSync(dir)
    .map((f) => /^snapshot_(\d+)_\d+\.committed$/.exec(f)?.[1])
    .filter((x) => x !== undefined)
    .map(Number);
}

/** Writes to a singleton table in a ledger, with their seqnos. */
function singletonWrites(dir: string, table: string): Array<{ seqno: number; value: unknown }> {
  const out: Array<{ seqno: number; value: unknown }> = [];
  readLedger(dir, {
    onEntry: (e) => {
      const v = e.writeSet.get(table)?.get(SINGLETON);
      if (v !== undefined && v !== null) out.push({ seqno: e.seqno, value: decodeValue(table, v) });
    },
  });
  return out;
}

describe("disaster recovery", () => {
  it("recovers a rekeyed three-node service: all records, all nodes, old receipts", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "ccf-ts-recovery-"));
    const common = join(cwd, "ws", "sandbox_common");
    const sandbox = startCcfTs(
      ["sandbox", "--port", "0", "--nodes", "3", "--workspace", "ws"],
      cwd,
    );
    const records = {
      private: new Map<number, string>(),
      public: new Map<number, string>(),
    };
    let oldCert: string;
    let receipt: Record<string, unknown>;
    let firstTxId: string;
    let user: Agent | undefined;
    try {
      const [base] = (await sandboxUp(sandbox, 3)) as [string];
      oldCert = readFileSync(join(common, "service_cert.pem"), "utf8");
      user = userAgent(common, oldCert);
      const log = async (table: "private" | "public", id: number, msg: string) => {
        const r = await call(user as Agent, `${base}/app/log/${table}`, "POST", { id, msg });
        assert.equal(r.status, 200, r.text);
        records[table].set(id, msg);
        return r.txId;
      };
      firstTxId = await log("private", 1, "private before the rekey");
      await log("private", 2, "another private record before the rekey");
      await log("public", 1, "public before the rekey");
      passProposal(common, base, "rekey", [{ name: "trigger_ledger_rekey" }]);
      await log("private", 11, "private after the rekey");
      await log("public", 11, "public after the rekey");
      // Overwritten after the rekey: the newer value (under the newer secret) must win.
      await log("private", 2, "private 2, rewritten after the rekey");
      const last = await log("private", 12, "the last private record");
      await committed(user, base, last);
      receipt = await waitFor("the receipt of the first record", async () => {
        const r = await call(user as Agent, `${base}/app/receipt?transaction_id=${firstTxId}`);
        if (r.status === 202) return undefined;
        assert.equal(r.status, 200, r.text);
        return r.json();
      });
      assert.ok(verifyReceiptBytes(JSON.stringify(receipt), { serviceCertPem: oldCert }).ok);
    } finally {
      await user?.close();
      if (sandbox.exitCode === null) sandbox.kill("SIGTERM");
    }
    assert.equal(await waitFor("the sandbox to exit", () => sandbox.exitCode ?? undefined), 0);
    const oldLedger = join(cwd, "ws", "sandbox_0", "0.ledger");
    // The rekey really happened: the old ledger chains a second secret (opening, then the rekey).
    assert.equal(
      singletonWrites(oldLedger, Tables.HISTORICAL_ENCRYPTED_LEDGER_SECRET).length,
      2,
      "historical_encrypted_ledger_secret written at opening and at the rekey",
    );

    const recovering = startCcfTs(
      [
        "sandbox",
        "--port",
        "0",
        "--nodes",
        "3",
        "--workspace",
        "ws2",
        "--recover",
        "--ledger-dir",
        oldLedger,
        "--common-dir",
        common,
      ],
      cwd,
    );
    const common2 = join(cwd, "ws2", "sandbox_common");
    let agent: Agent | undefined;
    user = undefined;
    try {
      const bases = await sandboxUp(recovering, 3);
      const [base] = bases as [string];
      assert.match(recovering.output(), /Recovery: .*service Open/);
      const newCert = readFileSync(join(common2, "service_cert.pem"), "utf8");
      assert.ok(!certificateDer(newCert).equals(certificateDer(oldCert)), "a new identity");
      agent = new Agent({ connect: { ca: newCert } });
      const network = (await call(agent, `${base}/node/network`)).json();
      assert.equal(network.service_status, "Open");
      assert.equal(network.recovery_count, 1);
      const info = (await call(agent, `${base}/gov/service/info?${GOV}`)).json();
      assert.equal(info.recoveryCount, 1);
      const nodes = (await call(agent, `${base}/node/network/nodes`)).json().nodes as Array<{
        status: string;
      }>;
      assert.equal(nodes.filter((n) => n.status === "Trusted").length, 3, JSON.stringify(nodes));
      assert.equal(nodes.filter((n) => n.status === "Retired").length, 3, "the old nodes");

      user = userAgent(common2, newCert);
      for (const b of bases) {
        for (const table of ["private", "public"] as const) {
          for (const [id, msg] of records[table]) {
            const got = await waitFor(`${table} ${id} on ${b}`, async () => {
              const r = await call(user as Agent, `${b}/app/log/${table}?id=${id}`);
              return r.status === 200 ? r : undefined;
            });
            assert.deepEqual(got.json(), { msg }, `${table} ${id} on ${b}`);
          }
        }
      }
      const written = await call(user, `${base}/app/log/private`, "POST", {
        id: 100,
        msg: "after the recovery",
      });
      assert.equal(written.status, 200, written.text);
      assert.match(written.txId, /^\d+\.\d+$/);
      await committed(user, base, written.txId);
      assert.deepEqual((await call(user, `${base}/app/log/private?id=100`)).json(), {
        msg: "after the recovery",
      });

      // A receipt from before the disaster verifies against the identity it was issued under.
      const v = verifyReceiptBytes(JSON.stringify(receipt), { serviceCertPem: oldCert });
      assert.ok(v.ok, JSON.stringify(v));
      assert.ok(!verifyReceiptBytes(JSON.stringify(receipt), { serviceCertPem: newCert }).ok);
      // The recovered service gives the same transaction's receipt with CCF's service_endorsements
      // (the previous identity endorsed by the new one): it verifies against the new identity.
      const again = await waitFor(
        "the old transaction's receipt from the recovered service",
        async () => {
          const r = await call(user as Agent, `${base}/app/receipt?transaction_id=${firstTxId}`);
          if (r.status !== 200) return undefined;
          const body = r.json() as { service_endorsements?: string[] };
          return body.service_endorsements === undefined ? undefined : body;
        },
      );
      assert.equal(again.service_endorsements?.length, 1);
      const viaChain = verifyReceiptBytes(JSON.stringify(again), { serviceCertPem: newCert });
      assert.ok(viaChain.ok, JSON.stringify(viaChain));
    } finally {
      await agent?.close();
      await user?.close();
      if (recovering.exitCode === null) recovering.kill("SIGTERM");
    }
    assert.equal(await waitFor("the sandbox to exit", () => recovering.exitCode ?? undefined), 0);
  });

  it("refuses bad share submissions, and still recovers with good ones", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "ccf-ts-recovery-refusals-"));
    const common = join(cwd, "ws", "sandbox_common");
    const sandbox = startCcfTs(
      ["sandbox", "--port", "0", "--nodes", "1", "--workspace", "ws"],
      cwd,
    );
    let user: Agent | undefined;
    try {
      const [base] = (await sandboxUp(sandbox, 1)) as [string];
      const oldCert = readFileSync(join(common, "service_cert.pem"), "utf8");
      user = userAgent(common, oldCert);
      const posted = await call(user, `${base}/app/log/private`, "POST", { id: 7, msg: "seven" });
      assert.equal(posted.status, 200, posted.text);
      passProposal(common, base, "threshold", [
        { name: "set_recovery_threshold", args: { recovery_threshold: 2 } },
      ]);
      const last = await call(user, `${base}/app/log/public`, "POST", { id: 8, msg: "eight" });
      assert.equal(last.status, 200, last.text);
      await committed(user, base, last.txId);
    } finally {
      await user?.close();
      if (sandbox.exitCode === null) sandbox.kill("SIGTERM");
    }
    assert.equal(await waitFor("the sandbox to exit", () => sandbox.exitCode ?? undefined), 0);

    // A recovering node started by hand (as the sandbox does it), on a copy of the old ledger.
    const dir = join(cwd, "recovering");
    const ledger = join(dir, "ledger");
    mkdirSync(ledger, { recursive: true });
    const oldLedger = join(cwd, "ws", "sandbox_0", "0.ledger");
    for (const f of readdirSync(oldLedger)) {
      if (/^ledger_\d+(-\d+)?(\.committed)?$/.test(f)) {
        copyFileSync(join(oldLedger, f), join(ledger, f));
      }
    }
    const config = singleNodeConfig(dir, { signatures: { tx_count: 100, delay: "50ms" } });
    config.command = {
      type: "Recover",
      service_certificate_file: join(dir, "service_cert.pem"),
      recover: {
        previous_service_identity_file: join(common, "service_cert.pem"),
        initial_service_certificate_validity_days: 90,
      },
    };
    const { node, base } = await startNode(dir, config);
    const clients: GovClient[] = [];
    let agent: Agent | undefined;
    try {
      const newCert = await waitFor("the service certificate", () => {
        try {
          return readFileSync(join(dir, "service_cert.pem"), "utf8");
        } catch {
          return undefined;
        }
      });
      agent = new Agent({ connect: { ca: newCert } });
      const status = async () =>
        (await call(agent as Agent, `${base}/node/network`)).json().service_status;
      await waitFor("the service to be Recovering", async () =>
        (await status()) === "Recovering" ? true : undefined,
      );
      for (const m of [0, 1, 2]) {
        clients.push(
          new GovClient(base, newCert, {
            certPem: readFileSync(join(common, `member${m}_cert.pem`), "utf8"),
            keyPem: readFileSync(join(common, `member${m}_privk.pem`), "utf8"),
          }),
        );
      }
      const [m0, m1, m2] = clients as [GovClient, GovClient, GovClient];
      const encKey = (m: number) => readFileSync(join(common, `member${m}_enc_privk.pem`), "utf8");
      const rawShare = async (c: GovClient, m: number): Promise<Buffer> => {
        const r = await c.get(`/gov/recovery/encrypted-shares/${c.memberId}`);
        assert.equal(r.status, 200, r.text);
        return rsaOaepUnwrap(
          encKey(m),
          Buffer.from((r.body as { encryptedShare: string }).encryptedShare, "base64"),
        );
      };
      const submit = (c: GovClient, memberId: string, share: Buffer) =>
        c.post(
          `/gov/recovery/members/${memberId}:recover`,
          c.sign("recovery_share", JSON.stringify({ share: share.toString("base64") })),
        );
      const errorOf = (r: { body: unknown }) =>
        (r.body as { error?: { code: string; message: string } }).error;

      // Fetching shares: the API version is required; an unknown member has none.
      const noVersion = await call(agent, `${base}/gov/recovery/encrypted-shares/${m0.memberId}`);
      assert.equal(noVersion.status, 400, noVersion.text);
      const unknown = await call(
        agent,
        `${base}/gov/recovery/encrypted-shares/${"ab".repeat(32)}?${GOV}`,
      );
      assert.equal(unknown.status, 404, unknown.text);

      // Before transition_service_to_open, the service takes no shares.
      const early = await submit(m0, m0.memberId, await rawShare(m0, 0));
      assert.equal(early.status, 403, early.text);
      assert.equal(errorOf(early)?.code, "ServiceNotWaitingForRecoveryShares");

      let state = await m0.propose({
        actions: [
          {
            name: "transition_service_to_open",
            args: {
              previous_service_identity: readFileSync(join(common, "service_cert.pem"), "utf8"),
              next_service_identity: newCert,
            },
          },
        ],
      });
      for (const c of [m0, m1]) {
        if (state.proposalState === "Open") {
          state = await c.vote(
            state.proposalId,
            "export function vote(proposal, proposerId) { return true; }",
          );
        }
      }
      assert.equal(state.proposalState, "Accepted", JSON.stringify(state));
      assert.equal(await status(), "WaitingForRecoveryShares");

      // A key that is no member's is refused.
      const keys = join(cwd, "intruder");
      mkdirSync(keys);
      const k = runCcfTs(["keygen", "--name", "intruder"], keys);
      assert.equal(k.status, 0, k.stderr);
      const intruder = new GovClient(base, newCert, {
        certPem: readFileSync(join(keys, "intruder_cert.pem"), "utf8"),
        keyPem: readFileSync(join(keys, "intruder_privk.pem"), "utf8"),
      });
      clients.push(intruder);
      const stranger = await submit(intruder, intruder.memberId, await rawShare(m0, 0));
      assert.equal(stranger.status, 401, stranger.text);

      // Threshold 2: one share is not enough.
      const first = await m0.submitShare(encKey(0));
      assert.match(first.message, /^1\/2 recovery shares successfully submitted/);
      assert.doesNotMatch(first.message, /End of recovery/);
      assert.equal(first.submittedCount, 1);
      assert.equal(first.recoveryThreshold, 2);
      assert.equal(await status(), "WaitingForRecoveryShares");

      // A corrupted second share: the combination fails, the submitted shares are cleared.
      const corrupted = Buffer.from(await rawShare(m1, 1));
      corrupted[corrupted.length - 5] ^= 0xff;
      const bad = await submit(m1, m1.memberId, corrupted);
      assert.equal(bad.status, 500, bad.text);
      assert.deepEqual(errorOf(bad), {
        code: "InternalError",
        message: "Failed to initiate private recovery.",
      });
      assert.equal(await status(), "WaitingForRecoveryShares");
      const again = await m0.submitShare(encKey(0));
      assert.match(again.message, /^1\/2 /, "the earlier submissions were cleared");

      // The right second share recovers the service.
      const done = await m2.submitShare(encKey(2));
      assert.match(done.message, /^2\/2 recovery shares successfully submitted/);
      assert.match(done.message, /End of recovery procedure initiated/);
      await waitFor("the service to open", async () =>
        (await status()) === "Open" ? true : undefined,
      );
      const network = (await call(agent, `${base}/node/network`)).json();
      assert.equal(network.recovery_count, 1);
      user = userAgent(common, newCert);
      assert.deepEqual((await call(user, `${base}/app/log/private?id=7`)).json(), {
        msg: "seven",
      });
      assert.deepEqual((await call(user, `${base}/app/log/public?id=8`)).json(), {
        msg: "eight",
      });
      // Once open, shares are refused again.
      const late = await m1.submitShare(encKey(1)).catch((e: unknown) => e);
      assert.ok(late instanceof GovRequestError, String(late));
      assert.equal(late.response.status, 403);
      assert.equal(late.code, "ServiceNotWaitingForRecoveryShares");
    } finally {
      await agent?.close();
      await user?.close();
      await Promise.all(clients.map((c) => c.close()));
      if (node.exitCode === null) node.kill("SIGTERM");
    }
    await waitFor("the node to exit", () => node.exitCode ?? node.signalCode ?? undefined);
  });

  it("recovers from the latest snapshot and replays only the ledger after it", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "ccf-ts-recovery-snapshot-"));
    const old = startCcfTs(
      [
        "sandbox",
        "--port",
        "0",
        "--nodes",
        "1",
        "--workspace",
        "ws",
        "--snapshot-tx-interval",
        "20",
      ],
      cwd,
    );
    const common = join(cwd, "ws", "sandbox_common");
    const snapshots = join(cwd, "ws", "sandbox_0", "snapshots");
    let user: Agent | undefined;
    let snapshotSeqno = 0;
    try {
      const [base] = (await sandboxUp(old, 1)) as [string];
      user = userAgent(common, readFileSync(join(common, "service_cert.pem"), "utf8"));
      let last = "";
      for (let i = 1; i <= 45; i++) {
        const r = await call(user, `${base}/app/log/private`, "POST", {
          id: i,
          msg: `record ${i}`,
        });
        assert.equal(r.status, 200, r.text);
        last = r.txId;
      }
      await committed(user, base, last);
      snapshotSeqno = await waitFor("a committed snapshot", () => {
        const seqnos = committedSnapshotSeqnos(snapshots);
        return seqnos.length > 0 ? Math.max(...seqnos) : undefined;
      });
    } finally {
      await user?.close();
      old.kill("SIGTERM");
    }
    await waitFor("the old service to stop", () => old.exitCode ?? old.signalCode ?? undefined);
    // Snapshots may have been written until it stopped: the recovery takes the latest.
    snapshotSeqno = Math.max(snapshotSeqno, ...committedSnapshotSeqnos(snapshots));

    const recovering = startCcfTs(
      [
        "sandbox",
        "--port",
        "0",
        "--nodes",
        "2",
        "--workspace",
        "ws2",
        "--recover",
        "--ledger-dir",
        join(cwd, "ws", "sandbox_0", "0.ledger"),
        "--common-dir",
        common,
        "--snapshots-dir",
        snapshots,
      ],
      cwd,
    );
    const common2 = join(cwd, "ws2", "sandbox_common");
    try {
      const bases = await sandboxUp(recovering, 2);
      const cert = readFileSync(join(common2, "service_cert.pem"), "utf8");
      user = userAgent(common2, cert);
      const log0 = readFileSync(join(cwd, "ws2", "sandbox_0", "out"), "utf8");
      assert.match(log0, /recovery: from a snapshot/);
      const state0 = (await call(user, `${bases[0]}/node/state`)).json();
      assert.equal(state0.startup_seqno, snapshotSeqno, "the recovery started at the snapshot");
      // The second node joined from the recovered service's own snapshot.
      const state1 = (await call(user, `${bases[1]}/node/state`)).json();
      assert.ok((state1.startup_seqno as number) > snapshotSeqno);
      for (const b of bases) {
        for (const id of [1, 20, 45]) {
          const got = await waitFor(`record ${id} on ${b}`, async () => {
            const r = await call(user as Agent, `${b}/app/log/private?id=${id}`);
            return r.status === 200 ? r : undefined;
          });
          assert.deepEqual(got.json(), { msg: `record ${id}` });
        }
      }
    } finally {
      await user?.close();
      if (recovering.exitCode === null) recovering.kill("SIGTERM");
    }
  });

  it("re-issues recovery shares when a recovery member becomes active; rekeys when one is removed", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "ccf-ts-recovery-member-"));
    const sandbox = startCcfTs(
      ["sandbox", "--port", "0", "--nodes", "1", "--workspace", "ws"],
      cwd,
    );
    const common = join(cwd, "ws", "sandbox_common");
    try {
      const [base] = (await sandboxUp(sandbox, 1)) as [string];
      const ca = readFileSync(join(common, "service_cert.pem"), "utf8");
      const client = new Agent({ connect: { ca } });
      const keys = runCcfTs(["keygen", "--name", "member9", "--gen-enc-key"], common);
      assert.equal(keys.status, 0, keys.stderr);
      const id = certificateId(readFileSync(join(common, "member9_cert.pem"), "utf8"));
      const shareOf = async () =>
        (await call(client, `${base}/gov/recovery/encrypted-shares/${id}?${GOV}`)).status;
      passProposal(common, base, "add_member9", [
        {
          name: "set_member",
          args: {
            cert: readFileSync(join(common, "member9_cert.pem"), "utf8"),
            encryption_pub_key: readFileSync(join(common, "member9_enc_pubk.pem"), "utf8"),
          },
        },
      ]);
      assert.equal(await shareOf(), 404, "no share while the new member is only Accepted");
      const ack = runCcfTs(["gov", "--url", base, "--member", "member9", "ack"], common);
      assert.equal(ack.status, 0, ack.stderr);
      await waitFor("a share for the new member", async () =>
        (await shareOf()) === 200 ? true : undefined,
      );
      // Its share is a real one: it decrypts to a 44-byte share with its key.
      const fetched = (
        await call(client, `${base}/gov/recovery/encrypted-shares/${id}?${GOV}`)
      ).json() as { encryptedShare: string };
      const share = rsaOaepUnwrap(
        readFileSync(join(common, "member9_enc_privk.pem"), "utf8"),
        Buffer.from(fetched.encryptedShare, "base64"),
      );
      assert.equal(share.length, 44);
      // Removing an active recovery member rekeys the ledger: its share goes, and the service
      // goes on writing and reading private records under the new secret.
      const secretsBefore = (await call(client, `${base}/node/network`)).json();
      // Four active members now: three votes pass it.
      writeFileSync(
        join(common, "remove_member9.json"),
        JSON.stringify({ actions: [{ name: "remove_member", args: { member_id: id } }] }),
      );
      const { proposalId } = gov(common, base, "propose", "remove_member9.json");
      for (const m of ["member0", "member1", "member2"]) {
        const state = gov(common, base, "--member", m, "vote", proposalId).proposalState;
        if (m === "member2") assert.equal(state, "Accepted");
      }
      assert.equal(await shareOf(), 404, "the removed member holds no share");
      const user = userAgent(common, ca);
      const w = await call(user, `${base}/app/log/private`, "POST", { id: 7, msg: "rekeyed" });
      assert.equal(w.status, 200, w.text);
      await committed(user, base, w.txId);
      assert.deepEqual((await call(user, `${base}/app/log/private?id=7`)).json(), {
        msg: "rekeyed",
      });
      assert.equal(secretsBefore.service_status, "Open");
      await user.close();
      await client.close();
      // The ledger shows the rekey: a second write to the secret chain, after the opening's.
      sandbox.kill("SIGTERM");
      await waitFor(
        "the sandbox to stop",
        () => sandbox.exitCode ?? sandbox.signalCode ?? undefined,
      );
      const chain = singletonWrites(
        join(cwd, "ws", "sandbox_0", "0.ledger"),
        Tables.HISTORICAL_ENCRYPTED_LEDGER_SECRET,
      );
      assert.equal(chain.length, 2, JSON.stringify(chain));
      assert.ok(
        (chain[1]?.value as { previous_ledger_secret?: unknown }).previous_ledger_secret !==
          undefined,
      );
    } finally {
      if (sandbox.exitCode === null) sandbox.kill("SIGTERM");
    }
  });
});
