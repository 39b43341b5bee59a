// Snapshots on a running service: the primary writes one every `snapshots.tx_count` transactions
// (evidence transaction, then `.committed` with its receipt), serves it at /node/snapshot, and a
// node that joins later starts from it: it never replicates the ledger before the snapshot.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import { parseChunkName, parseSnapshotFileName, readSnapshotFile } from "../../src/ledger/index.js";
import { loadSnapshot } from "../../src/node/snapshot-fetch.js";
import { singleNodeConfig } from "../helpers/node-config.js";
import { clientAgent, makeMemberAndUser } from "../helpers/identities.js";
import { runCcfTs, startNode, waitFor } from "../helpers/process.js";

const LOGGING_APP = join(import.meta.dirname, "../../samples/apps/logging/dist/bundle.json");

describe("snapshots and a node that joins from one", () => {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-snapshot-"));
  const nodes: Array<Awaited<ReturnType<typeof startNode>>> = [];
  let user: Agent;
  let agent: Agent;
  let serviceCert: string;

  async function write(base: string, id: number, msg: string): Promise<string> {
    const res = await request(`${base}/app/log/private`, {
      dispatcher: user,
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id, msg }),
    });
    assert.equal(res.statusCode, 200, await res.body.text());
    return String(res.headers["x-ms-ccf-transaction-id"]);
  }

  async function read(base: string, id: number): Promise<{ status: number; text: string }> {
    const res = await request(`${base}/app/log/private?id=${id}`, { dispatcher: user });
    return { status: res.statusCode, text: await res.body.text() };
  }

  const committedSnapshots = (d: string) =>
    readdirSync(join(d, "snapshots"), { withFileTypes: true })
      .map((e) => parseSnapshotFileName(e.name))
      .filter((n) => n?.committed === true);

  before(async () => {
    makeMemberAndUser(dir);
    const dir0 = join(dir, "n0");
    mkdirSync(dir0);
    const config0 = singleNodeConfig(dir0, {
      start: {
        users: [{ certificate_file: join(dir, "user0_cert.pem") }],
        js_app_bundle: LOGGING_APP,
        members: [
          {
            certificate_file: join(dir, "member0_cert.pem"),
            encryption_public_key_file: join(dir, "member0_enc_pubk.pem"),
          },
        ],
      },
      signatures: { tx_count: 5, delay: "50ms" },
    });
    config0.snapshots = { directory: join(dir0, "snapshots"), tx_count: 20 };
    nodes.push(await startNode(dir0, config0));
    serviceCert = readFileSync(join(dir0, "service_cert.pem"), "utf8");
    user = clientAgent(dir, serviceCert);
    agent = new Agent({ connect: { ca: serviceCert } });
  });

  after(async () => {
    await user?.close();
    await agent?.close();
    for (const n of nodes) if (n.node.exitCode === null) n.node.kill("SIGTERM");
  });

  it("writes a committed snapshot with its receipt once enough transactions passed", async () => {
    const base = nodes[0]?.base;
    for (let i = 0; i < 30; i++) await write(base, i, `record ${i}`);
    const dir0 = join(dir, "n0");
    const snap = await waitFor("a committed snapshot", () => committedSnapshots(dir0)[0]);
    assert.ok(snap.seqno >= 20, `snapshot at ${snap.seqno}`);
    assert.ok(snap.evidenceSeqno > snap.seqno);
    const file = join(dir0, "snapshots", `snapshot_${snap.seqno}_${snap.evidenceSeqno}.committed`);
    const loaded = loadSnapshot(file, serviceCert);
    assert.equal(loaded.seqno, snap.seqno);
    // Private records are in the snapshot only encrypted.
    assert.ok(!readFileSync(file).includes(Buffer.from("record 3")));
    assert.ok(readSnapshotFile(file).receipt !== undefined);
    // As CCF, a snapshot due at a signature ends the ledger chunk there.
    const ends = readdirSync(join(dir0, "ledger")).map((f) => parseChunkName(f)?.end);
    assert.ok(ends.includes(snap.seqno), `a ledger chunk ends at ${snap.seqno}: ${ends.join(",")}`);
    // /node/snapshot redirects to the latest committed snapshot, served whole.
    const res = await request(`${base}/node/snapshot`, { dispatcher: agent, method: "HEAD" });
    assert.equal(res.statusCode, 308);
    assert.match(String(res.headers.location), /\/node\/snapshot\/snapshot_\d+_\d+\.committed$/);
    await res.body.dump();
  });

  it("a joiner starts from the snapshot and replicates only what follows it", async () => {
    const d = join(dir, "n1");
    mkdirSync(d);
    const config = singleNodeConfig(d, { signatures: { tx_count: 5, delay: "50ms" } });
    config.snapshots = { directory: join(d, "snapshots"), tx_count: 20 };
    config.command = {
      type: "Join",
      service_certificate_file: join(dir, "n0", "service_cert.pem"),
      join: {
        target_rpc_address: nodes[0]?.base.replace("https://", ""),
        retry_timeout: "200ms",
      },
    };
    nodes.push(await startNode(d, config));
    const joiner = nodes[1]?.base;
    const state = await waitFor("the joiner to be part of the network", async () => {
      const res = await request(`${joiner}/node/state`, { dispatcher: agent });
      const body = (await res.body.json()) as { state: string; startup_seqno: number };
      return body.state === "PartOfNetwork" ? body : undefined;
    });
    const fetched = committedSnapshots(d);
    assert.equal(fetched.length, 1, "the joiner fetched one snapshot");
    assert.equal(state.startup_seqno, fetched[0]?.seqno);
    // Records written before the snapshot come from it; one written after, from replication.
    const late = await write(nodes[0]?.base, 100, "after the join");
    const lateSeqno = Number(late.split(".")[1]);
    await waitFor("the late record on the joiner", async () => {
      const r = await read(joiner, 100);
      return r.status === 200 ? r : undefined;
    });
    assert.deepEqual(JSON.parse((await read(joiner, 3)).text), { msg: "record 3" });
    // Its ledger holds nothing up to the snapshot.
    const chunks = readdirSync(join(d, "ledger"))
      .map((f) => parseChunkName(f))
      .filter((n) => n !== undefined);
    assert.ok(chunks.length > 0);
    const first = Math.min(...chunks.map((c) => c.start));
    assert.equal(first, (fetched[0]?.seqno ?? 0) + 1, "the ledger starts after the snapshot");
    assert.ok(lateSeqno > first);
  });

  it("audits the joiner's ledger offline from the snapshot it starts after", () => {
    const d = join(dir, "n1");
    const snapshot = committedSnapshots(d)[0];
    assert.ok(snapshot !== undefined);
    const snapshotFile = join(
      d,
      "snapshots",
      `snapshot_${snapshot.seqno}_${snapshot.evidenceSeqno}.committed`,
    );
    const cert = join(dir, "n0", "service_cert.pem");
    const ok = runCcfTs([
      "ledger",
      "verify",
      join(d, "ledger"),
      "--snapshot",
      snapshotFile,
      "--service-cert",
      cert,
    ]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`from snapshot at seqno: ${snapshot.seqno}\\n`));
    assert.match(ok.stdout, /^verified/m);
    // Without the snapshot, the gap is named and the way out given.
    const gap = runCcfTs(["ledger", "verify", join(d, "ledger")]);
    assert.notEqual(gap.status, 0);
    assert.match(
      gap.stderr,
      new RegExp(
        `the first starts at ${snapshot.seqno + 1}: a ledger that starts after a snapshot`,
      ),
    );
    const noCert = runCcfTs(["ledger", "verify", join(d, "ledger"), "--snapshot", snapshotFile]);
    assert.notEqual(noCert.status, 0);
    assert.match(noCert.stderr, /--snapshot needs --service-cert/);
  });
});
