// Three nodes, each in a network namespace of its own with its own address, joined through a
// bridge: nothing can work by way of 127.0.0.1. A node's cable is pulled at the switch (a real
// partition, not a paused process): the other two keep committing, and once plugged back in it
// catches up. Then the primary's cable is pulled: the two others elect a new primary, a write sent
// to the remaining backup is forwarded to it, and the old primary catches up as a backup.

import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import {
  createTestNetwork,
  type NodeProcess,
  netnsUnavailable,
  startNodeIn,
  type TestNetwork,
} from "../helpers/netns.js";
import { singleNodeConfig } from "../helpers/node-config.js";
import { runCcfTs, waitFor } from "../helpers/process.js";

const LOGGING_APP = join(import.meta.dirname, "../../samples/apps/logging/dist/bundle.json");
// Each namespace has its own port space: every node uses the same ports.
const RPC_PORT = 20443;
const NODE_TO_NODE_PORT = 20444;
const REDIRECTING_PORT = 20445;

/** A node's configuration bound and published on its namespace's address, with fast elections. */
function namespaceConfig(dir: string, address: string): Record<string, unknown> {
  const config = singleNodeConfig(dir, { signatures: { tx_count: 10, delay: "50ms" } });
  return {
    ...config,
    network: {
      node_to_node_interface: {
        bind_address: `${address}:${NODE_TO_NODE_PORT}`,
        published_address: `${address}:${NODE_TO_NODE_PORT}`,
      },
      rpc_interfaces: {
        primary_rpc_interface: {
          bind_address: `${address}:${RPC_PORT}`,
          published_address: `${address}:${RPC_PORT}`,
        },
        // A second interface that answers what must run on the primary with a 307 to it.
        redirecting_interface: {
          bind_address: `${address}:${REDIRECTING_PORT}`,
          published_address: `${address}:${REDIRECTING_PORT}`,
          redirections: {
            to_primary: { kind: "NodeByRole", target: { role: "primary" } },
            to_backup: { kind: "NodeByRole", target: { role: "backup" } },
          },
        },
      },
    },
    // Clients check the node's certificate against the address they connect to.
    node_certificate: { subject_alt_names: [`iPAddress:${address}`] },
    consensus: { message_timeout: "50ms", election_timeout: "1000ms" },
  };
}

const unavailable = netnsUnavailable();

describe("three nodes in three network namespaces", { skip: unavailable ?? false }, () => {
  let dir = "";
  const nodes: Array<Awaited<ReturnType<typeof startNodeIn>> & { id: string }> = [];
  // Every node process started, whether or not `before` got as far as listing it in `nodes`.
  const processes: NodeProcess[] = [];
  let net: TestNetwork | undefined;
  let user: Agent;

  /** A fresh connection per call: GETs with `forwarding_required: sometimes` then run locally. */
  async function get(base: string, path: string) {
    const agent = new Agent({
      connect: {
        ca: readFileSync(join(dir, "service_cert.pem"), "utf8"),
        cert: readFileSync(join(dir, "user0_cert.pem"), "utf8"),
        key: readFileSync(join(dir, "user0_privk.pem"), "utf8"),
      },
    });
    try {
      const res = await request(`${base}${path}`, { dispatcher: agent });
      const text = await res.body.text();
      return { status: res.statusCode, json: () => JSON.parse(text) as Record<string, unknown> };
    } finally {
      await agent.close();
    }
  }

  /** Logs a private record through `base`; its TxID as view and seqno. */
  async function log(base: string, id: number): Promise<{ txId: string; seqno: number }> {
    const res = await request(`${base}/app/log/private`, {
      dispatcher: user,
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id, msg: `record ${id}` }),
    });
    const text = await res.body.text();
    assert.equal(res.statusCode, 200, text);
    const txId = String(res.headers["x-ms-ccf-transaction-id"]);
    return { txId, seqno: Number(txId.split(".")[1]) };
  }

  async function committedOn(on: typeof nodes, txId: string): Promise<void> {
    for (const n of on) {
      await waitFor(`${txId} committed on ${n.base}`, async () => {
        const s = (await get(n.base, `/app/tx?transaction_id=${txId}`)).json();
        return s.status === "Committed" ? true : undefined;
      });
    }
  }

  /** The node every one of `among` names as primary, once they agree on one of themselves. */
  async function agreedPrimary(among: typeof nodes, timeoutMs?: number) {
    return waitFor(
      "a primary the nodes agree on",
      async () => {
        const ids = new Set<unknown>();
        for (const n of among) ids.add((await get(n.base, "/node/network")).json().primary_id);
        const [id] = ids;
        return ids.size === 1 ? among.find((n) => n.id === id) : undefined;
      },
      timeoutMs,
    );
  }

  /** The base URL of a node's redirecting interface: its namespace's address, another port. */
  function redirecting(n: (typeof nodes)[number]): string {
    return n.base.replace(`:${RPC_PORT}`, `:${REDIRECTING_PORT}`);
  }

  async function commitSeqno(base: string): Promise<number> {
    const txId = String((await get(base, "/node/commit")).json().transaction_id);
    return Number(txId.split(".")[1]);
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "ccf-ts-netns-"));
    net = createTestNetwork(3);
    for (const args of [
      ["--name", "member0", "--gen-enc-key"],
      ["--name", "user0"],
    ]) {
      const r = runCcfTs(["keygen", ...args], dir);
      assert.equal(r.status, 0, r.stderr);
    }
    // Every node runs in a folder of its own; identities are copied in, never shared.
    const dirs = net.nodes.map((_, i) => {
      const d = join(dir, `n${i}`);
      mkdirSync(d);
      return d;
    });
    const [ns0, ...joiners] = net.nodes as [TestNetwork["nodes"][number], ...TestNetwork["nodes"]];
    const dir0 = dirs[0];
    for (const f of ["member0_cert.pem", "member0_enc_pubk.pem", "user0_cert.pem"]) {
      copyFileSync(join(dir, f), join(dir0, f));
    }
    const config0 = namespaceConfig(dir0, ns0.address);
    // The logging app and a user at genesis; the service stays Opening, so joiners are trusted.
    Object.assign((config0.command as { start: Record<string, unknown> }).start, {
      users: [{ certificate_file: join(dir0, "user0_cert.pem") }],
      js_app_bundle: LOGGING_APP,
    });
    const first = await startNodeIn(ns0, dir0, config0);
    copyFileSync(join(dir0, "service_cert.pem"), join(dir, "service_cert.pem"));
    user = new Agent({
      connect: {
        ca: readFileSync(join(dir, "service_cert.pem"), "utf8"),
        cert: readFileSync(join(dir, "user0_cert.pem"), "utf8"),
        key: readFileSync(join(dir, "user0_privk.pem"), "utf8"),
      },
    });
    // A joiner serves its self-signed certificate until the service endorses it.
    const self = (base: string) =>
      waitFor(`the node id of ${base}`, async () => {
        const id = (await get(base, "/node/network/nodes/self")).json().node_id;
        return typeof id === "string" ? id : undefined;
      });
    processes.push(first.node);
    nodes.push({ ...first, id: await self(first.base) });
    for (const [i, ns] of joiners.entries()) {
      const d = dirs[i + 1];
      copyFileSync(join(dir, "service_cert.pem"), join(d, "service_cert.pem"));
      const config = namespaceConfig(d, ns.address);
      config.command = {
        type: "Join",
        service_certificate_file: join(d, "service_cert.pem"),
        join: { target_rpc_address: `${ns0.address}:${RPC_PORT}`, retry_timeout: "200ms" },
      };
      const joined = await startNodeIn(ns, d, config);
      processes.push(joined.node);
      nodes.push({ ...joined, id: await self(joined.base) });
    }
  });

  after(async () => {
    await user?.close();
    await Promise.all(
      processes.map(async (node) => {
        if (node.exitCode !== null || node.signalCode !== null) return;
        const exited = new Promise((resolve) => node.once("exit", resolve));
        node.kill("SIGKILL");
        await exited;
      }),
    );
    net?.cleanup();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  it("joins the nodes through namespace addresses; all three commit the same writes", async () => {
    await waitFor("three trusted nodes, each part of the network", async () => {
      for (const n of nodes) {
        const list = (await get(n.base, "/node/network/nodes")).json().nodes as Array<{
          status: string;
        }>;
        if (list.length !== 3 || list.some((x) => x.status !== "Trusted")) return undefined;
        if ((await get(n.base, "/node/state")).json().state !== "PartOfNetwork") return undefined;
      }
      return true;
    });
    const primary = await agreedPrimary(nodes);
    let last = { txId: "", seqno: 0 };
    for (let id = 1; id <= 5; id++) last = await log(primary.base, id);
    await committedOn(nodes, last.txId);
    const commits = await waitFor("every node to report the same commit", async () => {
      const seen = await Promise.all(
        nodes.map(async (n) => String((await get(n.base, "/node/commit")).json().transaction_id)),
      );
      return new Set(seen).size === 1 ? seen : undefined;
    });
    assert.ok(Number(commits[0]?.split(".")[1]) >= last.seqno);
  });

  it("redirects a write sent to a backup's redirecting interface to the primary's address", async () => {
    const primary = await agreedPrimary(nodes);
    const backup = nodes.find((n) => n !== primary) as (typeof nodes)[number];
    const res = await request(`${redirecting(backup)}/app/log/private`, {
      dispatcher: user,
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id: 50, msg: "record 50" }),
    });
    await res.body.dump();
    assert.equal(res.statusCode, 307);
    assert.equal(res.headers.location, `${redirecting(primary)}/app/log/private`);
  });

  it("commits on two nodes while a backup's link is cut; restored, the backup catches up", async () => {
    assert.ok(net !== undefined);
    const primary = await agreedPrimary(nodes);
    const [cut, other] = nodes.filter((n) => n !== primary) as [
      (typeof nodes)[number],
      (typeof nodes)[number],
    ];
    const cutNs = net.nodes[nodes.indexOf(cut)];
    net.cutLink(cutNs);
    let written: { txId: string; seqno: number };
    try {
      written = await waitFor("a write on the primary", () => log(primary.base, 100));
      await committedOn([primary, other], written.txId);
    } finally {
      net.restoreLink(cutNs);
    }
    await waitFor(`${cut.base} to commit past ${written.txId}`, async () =>
      (await commitSeqno(cut.base)) >= written.seqno ? true : undefined,
    );
    await committedOn([cut], written.txId);
    const record = await get(cut.base, "/app/log/private?id=100");
    assert.equal(record.status, 200);
    assert.deepEqual(record.json(), { msg: "record 100" });
  });

  it("elects a new primary when the primary's link is cut; a backup forwards to it; the old primary catches up", async () => {
    assert.ok(net !== undefined);
    const old = await agreedPrimary(nodes);
    const oldView = Number((await get(old.base, "/node/network")).json().current_view);
    const survivors = nodes.filter((n) => n !== old);
    const oldNs = net.nodes[nodes.indexOf(old)];
    net.cutLink(oldNs);
    let written: { txId: string; seqno: number };
    try {
      const primary = await agreedPrimary(survivors, 30_000);
      const backup = survivors.find((n) => n !== primary) as (typeof nodes)[number];
      // Sent to the survivor that is not primary: forwarded over the node-to-node link.
      written = await waitFor("a write forwarded to the new primary", async () => {
        const w = await log(backup.base, 200);
        return Number(w.txId.split(".")[0]) > oldView ? w : undefined;
      });
      await committedOn(survivors, written.txId);
    } finally {
      net.restoreLink(oldNs);
    }
    await waitFor(`${old.base} to commit past ${written.txId}`, async () =>
      (await commitSeqno(old.base)) >= written.seqno ? true : undefined,
    );
    await committedOn([old], written.txId);
    const record = await get(old.base, "/app/log/private?id=200");
    assert.equal(record.status, 200);
    assert.deepEqual(record.json(), { msg: "record 200" });
  });
});
