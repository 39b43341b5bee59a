// `ccf-ts sandbox --recover` on the two services real CCF wrote (../shared/fixtures/ccf-ledgers):
// the facts their README lists for a compatible recovery. Each fixture is copied to a temp folder
// first (the fixture itself is never written); after the service opens, the sandbox is stopped and
// the recovered node's own ledger is read back for the recovery tables it wrote.

import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Agent, request } from "undici";
import { certificateDer } from "../../src/crypto/index.js";
import { decodeValue, keyToString, SINGLETON_KEY, Tables } from "../../src/kv/index.js";
import { readLedger } from "../../src/ledger/index.js";
import { startCcfTs, waitFor } from "../helpers/process.js";

const FIXTURES = join(import.meta.dirname, "../../../shared/fixtures/ccf-ledgers");
const SINGLETON = keyToString(SINGLETON_KEY);
const GOV = "api-version=2024-07-01";

interface Expected {
  recoveryCount: number;
  createTxId: string;
  /** L, the last signature the recovery kept. */
  lastSigned: number;
  lastSignedRoot: string;
  historical: { previousVersion: number; previousStoredVersion: number };
  endorsement: { begin: string; end: string; previousVersion: number };
  members: number;
  /** An app read that must give back the old service's data. */
  read: { path: string; body: unknown };
}

const CASES: Record<string, Expected> = {
  cose_flipflop_service: {
    recoveryCount: 1,
    createTxId: "4.47",
    lastSigned: 46,
    lastSignedRoot: "3276519e5f042834174904e6f41f6d0866e3779da509c55eb53f745e27a09ab0",
    historical: { previousVersion: 1, previousStoredVersion: 13 },
    endorsement: { begin: "2.1", end: "2.46", previousVersion: 13 },
    members: 1,
    read: { path: "/app/log/private?id=42", body: { msg: "hello" } },
  },
  // The sandbox copies the open chunk too (it is the main ledger directory), so L = 509.
  double_sealed_service: {
    recoveryCount: 2,
    createTxId: "7.510",
    lastSigned: 509,
    lastSignedRoot: "96af428b2350bd04753f9208b2a298b3cbebf374aaeb41645997231610033c17",
    historical: { previousVersion: 484, previousStoredVersion: 503 },
    endorsement: { begin: "4.484", end: "5.509", previousVersion: 503 },
    members: 3,
    // The C++ app stored JSON; through the JS logging sample the quotes are part of the message.
    read: {
      path: "/app/log/public?id=42",
      body: { msg: '"Uninteresting recoverable transactions"' },
    },
  },
};

/** The writes of `tables`' singleton in a ledger, with their seqnos, in order. */
function singletonWrites(
  dir: string,
  tables: string[],
): Array<{ seqno: number; table: string; value: unknown }> {
  const out: Array<{ seqno: number; table: string; value: unknown }> = [];
  readLedger(dir, {
    onEntry: (e) => {
      for (const table of tables) {
        const v = e.writeSet.get(table)?.get(SINGLETON);
        if (v !== undefined && v !== null) {
          out.push({ seqno: e.seqno, table, value: decodeValue(table, v) });
        }
      }
    },
  });
  return out;
}

describe("sandbox --recover on ledgers CCF wrote", () => {
  for (const [name, x] of Object.entries(CASES)) {
    it(`${name}: opens with the README's recovery facts and serves the old data`, async () => {
      const cwd = mkdtempSync(join(tmpdir(), `ccf-ts-recover-${name}-`));
      const copy = join(cwd, "fixture");
      cpSync(join(FIXTURES, name), copy, { recursive: true });
      const oldServiceCert = readFileSync(join(copy, "common", "service_cert.pem"), "utf8");
      const sandbox = startCcfTs(
        [
          "sandbox",
          "--port",
          "0",
          "--nodes",
          "1",
          "--workspace",
          "ws",
          "--recover",
          "--ledger-dir",
          join(copy, "ledger"),
          "--common-dir",
          join(copy, "common"),
        ],
        cwd,
      );
      const common = join(cwd, "ws", "sandbox_common");
      let agent: Agent | undefined;
      let asUser: Agent | undefined;
      try {
        const address = await waitFor(
          "the recovered service to open",
          () => {
            if (sandbox.exitCode !== null) throw new Error(`sandbox exited: ${sandbox.output()}`);
            if (!sandbox.output().includes("Press Ctrl+C")) return undefined;
            return /node 0: https:\/\/(\S+)/.exec(sandbox.output())?.[1];
          },
          80_000,
        );
        const base = `https://${address}`;
        const serviceCert = readFileSync(join(common, "service_cert.pem"), "utf8");
        assert.ok(
          !certificateDer(serviceCert).equals(certificateDer(oldServiceCert)),
          "a new service identity",
        );
        agent = new Agent({ connect: { ca: serviceCert } });
        const get = async (path: string, dispatcher: Agent) => {
          const res = await request(`${base}${path}`, { dispatcher });
          const text = await res.body.text();
          assert.equal(res.statusCode, 200, `${path}: ${text}`);
          return JSON.parse(text) as Record<string, unknown>;
        };
        const network = await get("/node/network", agent);
        assert.equal(network.service_status, "Open");
        assert.equal(network.recovery_count, x.recoveryCount);
        assert.equal(network.current_service_create_txid, x.createTxId);
        // The old nodes are retired; only the recovering node is trusted.
        const nodes = (await get("/node/network/nodes", agent)).nodes as Array<{
          node_id: string;
          status: string;
        }>;
        assert.deepEqual(
          nodes.filter((n) => n.status === "Trusted").map((n) => n.node_id),
          [network.primary_id],
        );
        assert.ok(nodes.length > 1 && nodes.every((n) => n.status !== "Pending"));
        assert.equal(nodes.filter((n) => n.status === "Retired").length, nodes.length - 1);
        const members = (await get(`/gov/service/members?${GOV}`, agent)).value as Array<{
          status: string;
        }>;
        assert.equal(members.length, x.members);
        for (const m of members) assert.equal(m.status, "Active");
        // The sample app serves the old data to the fresh user0 the sandbox made (the fixture's
        // user0 certificate has expired, so it could not even connect).
        asUser = new Agent({
          connect: {
            ca: serviceCert,
            cert: readFileSync(join(common, "user0_cert.pem"), "utf8"),
            key: readFileSync(join(common, "user0_privk.pem"), "utf8"),
          },
        });
        assert.notEqual(
          readFileSync(join(common, "user0_cert.pem"), "utf8"),
          readFileSync(join(copy, "common", "user0_cert.pem"), "utf8"),
          "user0 replaced",
        );
        assert.deepEqual(await get(x.read.path, asUser), x.read.body);
      } finally {
        await agent?.close();
        await asUser?.close();
        if (sandbox.exitCode === null) sandbox.kill("SIGTERM");
      }
      const code = await waitFor("the sandbox to exit", () => sandbox.exitCode ?? undefined);
      assert.equal(code, 0, sandbox.output());

      // What the recovery wrote, read back from the recovered node's ledger.
      const writes = singletonWrites(join(cwd, "ws", "sandbox_0", "0.ledger"), [
        Tables.SERVICE,
        Tables.PREVIOUS_SERVICE_IDENTITY,
        Tables.PREVIOUS_SERVICE_LAST_SIGNED_ROOT,
        Tables.HISTORICAL_ENCRYPTED_LEDGER_SECRET,
        Tables.PREVIOUS_SERVICE_IDENTITY_ENDORSEMENT,
      ]);
      const after = (table: string) =>
        writes.filter((w) => w.table === table && w.seqno > x.lastSigned);
      const genesis = after(Tables.SERVICE)[0];
      assert.equal(genesis?.seqno, x.lastSigned + 1, "the recovery genesis follows L");
      assert.equal((genesis.value as { status: string }).status, "Recovering");
      const previousIdentity = after(Tables.PREVIOUS_SERVICE_IDENTITY);
      assert.equal(previousIdentity.length, 1);
      assert.ok(
        certificateDer(previousIdentity[0].value as string).equals(certificateDer(oldServiceCert)),
        "previous_service_identity is the fixture's service certificate",
      );
      assert.deepEqual(
        after(Tables.PREVIOUS_SERVICE_LAST_SIGNED_ROOT).map((w) => w.value),
        [x.lastSignedRoot],
      );
      const historical = after(Tables.HISTORICAL_ENCRYPTED_LEDGER_SECRET);
      assert.equal(historical.length, 1, "one end-of-recovery transaction");
      const h = historical[0].value as {
        next_version: number;
        previous_ledger_secret?: { version: number; previous_secret_stored_version: number };
      };
      assert.equal(h.next_version, x.lastSigned + 1);
      assert.equal(h.previous_ledger_secret?.version, x.historical.previousVersion);
      assert.equal(
        h.previous_ledger_secret?.previous_secret_stored_version,
        x.historical.previousStoredVersion,
      );
      const endorsements = after(Tables.PREVIOUS_SERVICE_IDENTITY_ENDORSEMENT);
      assert.equal(endorsements.length, 1);
      assert.equal(endorsements[0].seqno, historical[0].seqno, "written together");
      const e = endorsements[0].value as Record<string, unknown>;
      assert.equal(e.endorsement_epoch_begin, x.endorsement.begin);
      assert.equal(e.endorsement_epoch_end, x.endorsement.end);
      assert.equal(e.previous_version, x.endorsement.previousVersion);
      const statuses = after(Tables.SERVICE).map((w) => (w.value as { status: string }).status);
      assert.deepEqual(statuses, ["Recovering", "WaitingForRecoveryShares", "Open"]);
    });
  }
});
