// Reconfiguration through governance, as an operator runs it with `ccf-ts` commands (README,
// "Operating: replace a node, update the code"), while a client keeps writing through the service:
// - replacing a dead node: a new node joins and is trusted, the dead one is removed with
//   `remove_node`, becomes removable once its retirement commits, and its records are deleted;
// - a rolling update to a new virtual measurement: `add_virtual_measurement`, then one by one a
//   node reporting the new measurement joins and is trusted and an old one is retired, the
//   primary included (it hands over), until no node runs the old code.
// At the end every write that was reported Committed reads back from the new nodes.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import { verifyReceiptBytes } from "../../src/audit/index.js";
import { constitutionFiles, DEFAULT_CONSTITUTION_DIR } from "../../src/gov/index.js";
import { singleNodeConfig } from "../helpers/node-config.js";
import { runCcfTs, startNode, waitFor } from "../helpers/process.js";
import { clientAgent, makeMemberAndUser } from "../helpers/identities.js";

const BUNDLE = join(import.meta.dirname, "../../samples/apps/logging/dist/bundle.json");
const NEW_MEASUREMENT = "ccf-ts virtual measurement, code version 2";

type Started = Awaited<ReturnType<typeof startNode>> & { id: string; name: string };

interface GovJson {
  proposalId: string;
  proposalState: string;
}

describe("reconfiguration: replacing nodes and rolling updates", () => {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-reconfig-"));
  const nodes: Started[] = [];
  const live: Started[] = [];
  let agent: Agent;
  let user: Agent;
  const agents: Agent[] = [];
  let serviceCertFile: string;
  let stopWriting = false;
  let writer: Promise<void> | undefined;
  const acked: Array<{ id: number; txid: string }> = [];
  const committedWrites: Array<{ id: number; txid: string }> = [];
  let nextId = 1;

  async function get(base: string, path: string) {
    const res = await request(`${base}${path}`, { dispatcher: agent });
    const text = await res.body.text();
    return { status: res.statusCode, json: () => JSON.parse(text) as Record<string, unknown> };
  }

  /**
   * Proposes `actions` and votes for it (member0 alone is a majority). As an operator would, it
   * tries again while the service answers 503 (no primary known for a moment, e.g. while a
   * configuration change settles): such a request was not run.
   */
  async function passProposal(name: string, actions: unknown[]): Promise<void> {
    const file = join(dir, `${name}.json`);
    writeFileSync(file, JSON.stringify({ actions }));
    const voted = await waitFor(`proposal ${name} accepted`, () => {
      const r = runCcfTs(
        ["gov", "--url", live[0].base, "--cacert", serviceCertFile, "propose", file, "--vote"],
        dir,
      );
      if (r.status !== 0 && /\b503\b/.test(r.stderr)) return undefined;
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as GovJson;
    }).catch(async (e: unknown) => {
      throw new Error(`${String(e)}\n${await diagnostics()}`);
    });
    assert.equal(voted.proposalState, "Accepted", JSON.stringify(voted));
  }

  async function startJoiner(name: string, measurement?: string): Promise<Started> {
    const d = join(dir, name);
    mkdirSync(d);
    const config = withFastElections(
      singleNodeConfig(d, { signatures: { tx_count: 10, delay: "50ms" } }),
    );
    config.command = {
      type: "Join",
      service_certificate_file: serviceCertFile,
      join: { target_rpc_address: live[0].base.replace("https://", ""), retry_timeout: "200ms" },
    };
    if (measurement !== undefined) config.attestation = { virtual_measurement: measurement };
    const started = await startNode(d, config);
    const self = await waitFor(`${name} to answer`, async () => {
      try {
        const r = await request(`${started.base}/node/state`, {
          dispatcher: new Agent({ connect: { rejectUnauthorized: false } }),
        });
        return ((await r.body.json()) as { node_id: string }).node_id;
      } catch {
        return undefined;
      }
    });
    const n = { ...started, id: self, name };
    nodes.push(n);
    return n;
  }

  /** Joins a node and trusts it through governance; it is live once part of the network. */
  async function addNode(name: string, measurement?: string): Promise<Started> {
    const n = await startJoiner(name, measurement);
    await waitFor(`${name} recorded Pending`, async () => {
      const r = await get(live[0].base, `/node/network/nodes/${n.id}`);
      return r.status === 200 && r.json().status === "Pending" ? true : undefined;
    });
    await passProposal(`trust-${name}`, [
      {
        name: "transition_node_to_trusted",
        args: { node_id: n.id, valid_from: new Date().toISOString() },
      },
    ]);
    await waitFor(`${name} part of the network`, async () => {
      try {
        const r = await get(n.base, "/node/state");
        return r.json().state === "PartOfNetwork" ? true : undefined;
      } catch {
        return undefined;
      }
    });
    live.push(n);
    return n;
  }

  /** Retires `old` with remove_node, waits until it is removable, deletes its records. */
  async function retire(old: Started): Promise<void> {
    const index = live.indexOf(old);
    if (index !== -1) live.splice(index, 1);
    await passProposal(`remove-${old.name}`, [{ name: "remove_node", args: { node_id: old.id } }]);
    await waitFor(
      `${old.name} removable`,
      async () => {
        const r = await get(live[0].base, "/node/network/removable_nodes");
        const ids = (r.json().nodes as Array<{ node_id: string }>).map((x) => x.node_id);
        return ids.includes(old.id) ? true : undefined;
      },
      60_000,
    ).catch(async (e: unknown) => {
      throw new Error(`${String(e)}\n${await diagnostics()}`);
    });
    if (!old.node.killed && old.node.exitCode === null) {
      // A retired node that is still up learns it (from the primary's next AppendEntries).
      await waitFor(`${old.name} to know it is retired`, async () => {
        const details = (await get(old.base, "/node/consensus")).json().details as {
          membership_state: string;
          retirement_phase: string;
        };
        return details.membership_state === "Retired" &&
          /^(Completed|RetiredCommitted)$/.test(details.retirement_phase)
          ? true
          : undefined;
      });
    }
    const del = await request(`${live[0].base}/node/network/nodes/${old.id}`, {
      method: "DELETE",
      dispatcher: agent,
    });
    assert.equal(del.statusCode, 200, await del.body.text());
    await waitFor(`${old.name} gone from nodes`, async () => {
      const r = await get(live[0].base, `/node/network/nodes/${old.id}`);
      return r.status === 404 ? true : undefined;
    });
    if (old.node.exitCode === null) old.node.kill("SIGTERM");
  }

  /** Each live node's view of consensus and the end of its log, for a failure's message. */
  async function diagnostics(): Promise<string> {
    const out: string[] = [];
    for (const n of nodes) {
      let details = "";
      try {
        details = JSON.stringify((await get(n.base, "/node/consensus")).json().details);
      } catch (e) {
        details = String(e);
      }
      out.push(`${n.name} ${n.id.slice(0, 8)} exit=${n.node.exitCode} ${details}`);
      out.push(
        n.node
          .output()
          .split("\n")
          .filter((l) => !l.includes("JS execution complete"))
          .slice(-12)
          .join("\n"),
      );
    }
    return out.join("\n");
  }

  /**
   * A user client with sessions of its own: the writer's sessions were forwarded across view
   * changes, and CCF closes such sessions (SessionConsistencyLost).
   */
  function freshUser(): Agent {
    const a = new Agent({
      connect: {
        ca: readFileSync(serviceCertFile, "utf8"),
        cert: readFileSync(join(dir, "user0_cert.pem"), "utf8"),
        key: readFileSync(join(dir, "user0_privk.pem"), "utf8"),
      },
    });
    agents.push(a);
    return a;
  }

  /** Writes one record at a time through any live node, recording what was acknowledged. */
  async function writeLoop(): Promise<void> {
    while (!stopWriting) {
      const target = live[nextId % live.length];
      const id = nextId++;
      try {
        const res = await request(`${target.base}/app/log/private`, {
          method: "POST",
          dispatcher: user,
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ id, msg: `record ${id}` }),
          headersTimeout: 5000,
        });
        await res.body.text();
        const txid = res.headers["x-ms-ccf-transaction-id"];
        if (res.statusCode === 200 && typeof txid === "string") acked.push({ id, txid });
      } catch {
        // A node going away mid-request: the write may or may not have happened.
      }
    }
  }

  before(async () => {
    makeMemberAndUser(dir);
    const d0 = join(dir, "n0");
    mkdirSync(d0);
    const config0 = withFastElections(
      singleNodeConfig(d0, { signatures: { tx_count: 10, delay: "50ms" } }),
    );
    Object.assign((config0.command as { start: Record<string, unknown> }).start, {
      members: [
        {
          certificate_file: join(dir, "member0_cert.pem"),
          encryption_public_key_file: join(dir, "member0_enc_pubk.pem"),
        },
      ],
      users: [{ certificate_file: join(dir, "user0_cert.pem") }],
      constitution_files: constitutionFiles(DEFAULT_CONSTITUTION_DIR),
      js_app_bundle: BUNDLE,
      open_service: true,
    });
    const started = await startNode(d0, config0);
    serviceCertFile = join(d0, "service_cert.pem");
    const serviceCert = readFileSync(serviceCertFile, "utf8");
    agent = new Agent({ connect: { ca: serviceCert } });
    user = clientAgent(dir, serviceCert);
    const id0 = (await get(started.base, "/node/state")).json().node_id as string;
    const n0 = { ...started, id: id0, name: "n0" };
    nodes.push(n0);
    live.push(n0);
    await waitFor("member0 active", () => {
      const r = runCcfTs(
        ["gov", "--url", n0.base, "--cacert", serviceCertFile, "--member", "member0", "ack"],
        dir,
      );
      return r.status === 0 ? true : undefined;
    });
    await addNode("n1");
    await addNode("n2");
    writer = writeLoop();
  });

  after(async () => {
    stopWriting = true;
    await writer;
    await user?.close();
    await agent?.close();
    for (const a of agents) await a.close();
    for (const n of nodes) if (n.node.exitCode === null) n.node.kill("SIGKILL");
  });

  it("replaces a dead backup: join and trust a new node, remove the dead one, delete its records", async () => {
    const primaryId = (await get(live[0].base, "/node/network")).json().primary_id as string;
    const victim = live.find((n) => n.id !== primaryId) as Started;
    live.splice(live.indexOf(victim), 1);
    victim.node.kill("SIGKILL");
    await addNode("n3");
    await retire(victim);
    const list = (await get(live[0].base, "/node/network/nodes")).json().nodes as Array<{
      node_id: string;
      status: string;
    }>;
    assert.deepEqual(list.map((n) => n.node_id).sort(), live.map((n) => n.id).sort());
    assert.ok(list.every((n) => n.status === "Trusted"));
    // Only a completely retired node's records can be deleted.
    const trusted = await request(`${live[0].base}/node/network/nodes/${live[1].id}`, {
      method: "DELETE",
      dispatcher: agent,
    });
    assert.equal(trusted.statusCode, 400);
    assert.equal(
      ((await trusted.body.json()) as { error: { code: string } }).error.code,
      "NodeNotRetiredCommitted",
    );
    const unknown = await request(`${live[0].base}/node/network/nodes/${"ab".repeat(32)}`, {
      method: "DELETE",
      dispatcher: agent,
    });
    assert.equal(unknown.statusCode, 404);
    await unknown.body.text();
  });

  it("updates the code node by node, the primary included, without stopping the service", async () => {
    await passProposal("allow-new-code", [
      { name: "add_virtual_measurement", args: { measurement: NEW_MEASUREMENT } },
    ]);
    const old = [...live];
    for (const [i, o] of old.entries()) {
      await addNode(`v2-${i}`, NEW_MEASUREMENT);
      await retire(o);
    }
    await passProposal("forbid-old-code", [
      {
        name: "remove_virtual_measurement",
        args: { measurement: "Insecure hard-coded virtual measurement v1" },
      },
    ]);
    const quotes = (await get(live[0].base, "/node/quotes")).json().quotes as Array<{
      measurement: string;
    }>;
    assert.equal(quotes.length, 3);
    assert.ok(quotes.every((q) => q.measurement === NEW_MEASUREMENT));
    const consensus = (await get(live[0].base, "/node/consensus")).json().details as {
      primary_id: string;
    };
    assert.ok(
      live.some((n) => n.id === consensus.primary_id),
      "a new node is primary",
    );
  });

  it("had no node fail on its own", () => {
    for (const n of nodes) {
      if (n.node.killed) continue;
      assert.equal(n.node.exitCode, null, `${n.name} exited:\n${n.node.output().slice(-4000)}`);
    }
  });

  it("lost no write that was committed", async () => {
    stopWriting = true;
    await writer;
    assert.ok(acked.length > 10, `only ${acked.length} writes acknowledged`);
    const base = live[0].base;
    const reader = freshUser();
    let committed = 0;
    for (const { id, txid } of acked) {
      const status = await waitFor(`${txid} settled`, async () => {
        const r = await get(base, `/app/tx?transaction_id=${txid}`);
        const s = r.json().status as string;
        return s === "Committed" || s === "Invalid" ? s : undefined;
      });
      if (status !== "Committed") continue;
      committed++;
      committedWrites.push({ id, txid });
      const res = await request(`${base}/app/log/private?id=${id}`, { dispatcher: reader });
      assert.equal(res.statusCode, 200, `record ${id} (${txid}) is gone`);
      assert.deepEqual(await res.body.json(), { msg: `record ${id}` });
    }
    assert.ok(committed > 10, `only ${committed} writes committed`);
  });

  it("answers historical queries for writes from before the changes, with receipts that verify", async () => {
    const serviceCert = readFileSync(serviceCertFile, "utf8");
    // Written under the first primary, long retired; asked of a node that joined later.
    const { id, txid } = committedWrites[0];
    const node = live[live.length - 1];
    const fresh = freshUser();
    const reply = await waitFor("the historical answer", async () => {
      const res = await request(`${node.base}/app/log/private/historical_receipt?id=${id}`, {
        dispatcher: fresh,
        headers: { "x-ms-ccf-transaction-id": txid },
      });
      const text = await res.body.text();
      return res.statusCode === 202 ? undefined : { status: res.statusCode, text };
    });
    assert.equal(reply.status, 200, reply.text);
    const body = JSON.parse(reply.text) as { msg: string; receipt: Record<string, unknown> };
    assert.equal(body.msg, `record ${id}`);
    const receipt = { ...body.receipt };
    delete receipt.is_signature_transaction;
    const verified = verifyReceiptBytes(JSON.stringify(receipt), { serviceCertPem: serviceCert });
    assert.ok(verified.ok, JSON.stringify(verified));
  });
});

/** Elections within about a second, so that a handover does not wait CCF's default 5 s. */
function withFastElections(config: Record<string, unknown>): Record<string, unknown> {
  return { ...config, consensus: { message_timeout: "50ms", election_timeout: "1000ms" } };
}
