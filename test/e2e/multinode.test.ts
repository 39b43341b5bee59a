// Several nodes in separate processes: a node joins a service that is still Opening, is trusted at
// once, receives the service identity and ledger secrets, catches up through replication, and
// then replicates and commits the primary's new writes.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import { certificateId } from "../../src/crypto/index.js";
import { signGovMessage } from "../../src/gov/index.js";
import { singleNodeConfig } from "../helpers/node-config.js";
import { startNode, waitFor } from "../helpers/process.js";
import { clientAgent, makeMemberAndUser } from "../helpers/identities.js";

const API = "api-version=2024-07-01";
const LOGGING_APP = join(import.meta.dirname, "../../samples/apps/logging/dist/bundle.json");

/** The logging sample plus `GET /slow`, a handler that holds its node's event loop for 3 s. */
function withSlowEndpoint(bundlePath: string): unknown {
  const bundle = JSON.parse(readFileSync(bundlePath, "utf8")) as {
    metadata: { endpoints: Record<string, unknown> };
    modules: Array<{ name: string; module: string }>;
  };
  bundle.metadata.endpoints["/slow"] = {
    get: {
      js_module: "slow.js",
      js_function: "slow",
      forwarding_required: "never",
      authn_policies: ["user_cert"],
      mode: "readonly",
      openapi: {},
    },
  };
  bundle.modules.push({
    name: "slow.js",
    module: `export function slow() {
      ccf.enableUntrustedDateTime(true);
      const start = Date.now();
      let spins = 0;
      while (Date.now() - start < 3000) spins++;
      return { body: { spins } };
    }`,
  });
  return bundle;
}

/** Elections within about a second, so that a failover test does not wait CCF's default 5 s. */
function withFastElections(config: Record<string, unknown>): Record<string, unknown> {
  return { ...config, consensus: { message_timeout: "50ms", election_timeout: "1000ms" } };
}

describe("a service of three nodes", () => {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-multi-"));
  const nodes: Array<{ node: Awaited<ReturnType<typeof startNode>>["node"]; base: string }> = [];
  let agent: Agent;

  async function get(base: string, path: string) {
    const res = await request(`${base}${path}`, { dispatcher: agent });
    const text = await res.body.text();
    return {
      status: res.statusCode,
      json: () => JSON.parse(text) as Record<string, unknown>,
      text,
    };
  }

  before(async () => {
    makeMemberAndUser(dir);
    const dir0 = join(dir, "n0");
    mkdirSync(dir0);
    const config0 = withFastElections(
      singleNodeConfig(dir0, { signatures: { tx_count: 10, delay: "50ms" } }),
    );
    const start = (config0.command as { start: { members: Array<Record<string, string>> } }).start;
    // The logging app and a user at genesis; the service stays Opening, so joiners are trusted.
    writeFileSync(join(dir, "app.json"), JSON.stringify(withSlowEndpoint(LOGGING_APP)));
    Object.assign(start, {
      users: [{ certificate_file: join(dir, "user0_cert.pem") }],
      js_app_bundle: join(dir, "app.json"),
    });
    start.members = [
      {
        certificate_file: join(dir, "member0_cert.pem"),
        encryption_public_key_file: join(dir, "member0_enc_pubk.pem"),
      },
    ];
    nodes.push(await startNode(dir0, config0));
    const serviceCert = join(dir0, "service_cert.pem");
    agent = new Agent({ connect: { ca: readFileSync(serviceCert, "utf8") } });
    const target = nodes[0]?.base.replace("https://", "");
    for (const i of [1, 2]) {
      const d = join(dir, `n${i}`);
      mkdirSync(d);
      const config = withFastElections(
        singleNodeConfig(d, { signatures: { tx_count: 10, delay: "50ms" } }),
      );
      if (i === 1) {
        // Node 1 answers what must run on the primary with a redirect instead of forwarding it.
        const rpc = (config.network as { rpc_interfaces: Record<string, Record<string, unknown>> })
          .rpc_interfaces;
        rpc.primary_rpc_interface.redirections = {
          to_primary: { kind: "NodeByRole", target: { role: "primary" } },
          to_backup: { kind: "NodeByRole", target: { role: "backup" } },
        };
      }
      config.command = {
        type: "Join",
        service_certificate_file: serviceCert,
        join: { target_rpc_address: target, retry_timeout: "200ms" },
      };
      nodes.push(await startNode(d, config));
    }
  });

  after(async () => {
    await agent?.close();
    for (const n of nodes) if (n.node.exitCode === null) n.node.kill("SIGTERM");
  });

  it("trusts joiners at once while the service is Opening; every node knows the three", async () => {
    const listed = await waitFor("three trusted nodes", async () => {
      const res = await get(nodes[0]?.base, "/node/network/nodes");
      const list = res.json().nodes as Array<{ node_id: string; status: string }>;
      return list.length === 3 && list.every((n) => n.status === "Trusted") ? list : undefined;
    });
    assert.equal(listed.length, 3);
    for (const n of nodes.slice(1)) {
      const state = await waitFor("the joiner to be part of the network", async () => {
        const s = (await get(n.base, "/node/state")).json();
        return s.state === "PartOfNetwork" ? s : undefined;
      });
      assert.equal(state.state, "PartOfNetwork");
    }
  });

  /** A signed state-digest update by member0 through `base` (a write); its TxID and digest. */
  async function write(base: string): Promise<{ txId: string; digest: string; id: string }> {
    const member = {
      cert: readFileSync(join(dir, "member0_cert.pem"), "utf8"),
      key: readFileSync(join(dir, "member0_privk.pem"), "utf8"),
    };
    const id = certificateId(member.cert);
    return waitFor(`a write through ${base}`, async () => {
      const signed = signGovMessage({
        signingKeyPem: member.key,
        signingCertPem: member.cert,
        msgType: "state_digest",
        createdAt: Math.floor(Date.now() / 1000),
        content: Buffer.alloc(0),
      });
      const r = await request(`${base}/gov/members/state-digests/${id}:update?${API}`, {
        dispatcher: agent,
        method: "POST",
        body: signed,
        headers: { "content-type": "application/cose" },
      });
      const text = await r.body.text();
      if (r.statusCode !== 200) return undefined;
      return {
        txId: String(r.headers["x-ms-ccf-transaction-id"]),
        digest: (JSON.parse(text) as { stateDigest: string }).stateDigest,
        id,
      };
    });
  }

  async function committedEverywhere(
    on: typeof nodes,
    w: { txId: string; digest: string; id: string },
  ): Promise<void> {
    for (const n of on) {
      await waitFor(`${w.txId} committed on ${n.base}`, async () => {
        const s = (await get(n.base, `/app/tx?transaction_id=${w.txId}`)).json();
        return s.status === "Committed" ? true : undefined;
      });
      const ack = (await get(n.base, `/gov/members/state-digests/${w.id}?${API}`)).json();
      assert.ok(typeof ack.stateDigest === "string");
    }
  }

  let committedBeforeKill: { txId: string; digest: string; id: string } | undefined;

  it("replicates and commits the primary's writes on every node", async () => {
    const w = await write(nodes[0]?.base);
    await committedEverywhere(nodes, w);
    for (const n of nodes) {
      const ack = (await get(n.base, `/gov/members/state-digests/${w.id}?${API}`)).json();
      assert.equal(ack.stateDigest, w.digest, `${n.base} holds the replicated write`);
    }
    committedBeforeKill = w;
  });

  it("forwards a write sent to a backup, and redirects (307) where the interface says so; the caller is checked on the primary", async () => {
    const ca = readFileSync(join(dir, "n0", "service_cert.pem"), "utf8");
    const asUser = clientAgent(dir, ca);
    const post = (a: Agent, url: string, id: number) =>
      request(url, {
        dispatcher: a,
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ id, msg: `record ${id}` }),
      });
    try {
      const forwarded = await post(asUser, `${nodes[2]?.base}/app/log/private`, 1);
      assert.equal(forwarded.statusCode, 200);
      assert.equal(await forwarded.body.text(), "true");
      const refused = await post(agent, `${nodes[2]?.base}/app/log/private`, 2);
      assert.equal(refused.statusCode, 401, "no user certificate: refused on the primary");
      await refused.body.dump();

      const redirected = await post(asUser, `${nodes[1]?.base}/app/log/private`, 3);
      assert.equal(redirected.statusCode, 307);
      await redirected.body.dump();
      const location = String(redirected.headers.location);
      assert.equal(location, `${nodes[0]?.base}/app/log/private`);
      const followed = await post(asUser, location, 3);
      assert.equal(followed.statusCode, 200);
      assert.equal(await followed.body.text(), "true");
      const anonymous = await post(agent, location, 4);
      assert.equal(anonymous.statusCode, 401, "the redirected request is checked on arrival");
      await anonymous.body.dump();
    } finally {
      await asUser.close();
    }
  });

  it("keeps its primary while an app handler holds the primary's event loop for 3 election timeouts", async () => {
    const user = new Agent({
      connect: {
        ca: readFileSync(join(dir, "n0", "service_cert.pem"), "utf8"),
        cert: readFileSync(join(dir, "user0_cert.pem"), "utf8"),
        key: readFileSync(join(dir, "user0_privk.pem"), "utf8"),
      },
    });
    try {
      const res = await request(`${nodes[0]?.base}/app/slow`, { dispatcher: user });
      assert.equal(res.statusCode, 200);
      assert.ok(((await res.body.json()) as { spins: number }).spins > 0);
    } finally {
      await user.close();
    }
    for (const n of nodes) {
      const details = (await get(n.base, "/node/consensus")).json().details as {
        current_view: number;
      };
      assert.equal(details.current_view, 2, `${n.base}: no election happened`);
    }
  });

  it("reports the consensus state of every node (CCF's /node/consensus)", async () => {
    for (const n of nodes) {
      const details = (await get(n.base, "/node/consensus")).json().details as {
        configs: Array<{ nodes: Record<string, unknown> }>;
        primary_id: string;
        current_view: number;
        leadership_state: string;
      };
      assert.equal(Object.keys(details.configs.at(-1)?.nodes ?? {}).length, 3);
      assert.equal(details.current_view, 2);
      assert.ok(["Leader", "Follower"].includes(details.leadership_state));
    }
  });

  it("commits with a backup paused (SIGSTOP); resumed, the backup catches up", async () => {
    const paused = nodes[2];
    paused.node.kill("SIGSTOP");
    try {
      const w = await write(nodes[0]?.base);
      await committedEverywhere(nodes.slice(0, 2), w);
      paused.node.kill("SIGCONT");
      await committedEverywhere([paused], w);
    } finally {
      paused.node.kill("SIGCONT");
    }
  });

  it("elects a new primary among the survivors when the primary is killed under load; writes reported Committed survive", async () => {
    const [first, ...survivors] = nodes as [(typeof nodes)[number], ...typeof nodes];
    const asUser = new Agent({
      connect: {
        ca: readFileSync(join(dir, "n0", "service_cert.pem"), "utf8"),
        cert: readFileSync(join(dir, "user0_cert.pem"), "utf8"),
        key: readFileSync(join(dir, "user0_privk.pem"), "utf8"),
      },
    });
    // Four writers keep writing to the primary; each write's status is polled until Committed.
    const committed: number[] = [];
    let next = 1000;
    let killed = false;
    const writer = async () => {
      while (!killed) {
        const id = next++;
        try {
          const res = await request(`${first.base}/app/log/public`, {
            dispatcher: asUser,
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ id, msg: `load ${id}` }),
          });
          await res.body.dump();
          const txId = String(res.headers["x-ms-ccf-transaction-id"]);
          for (let i = 0; i < 100 && !killed; i++) {
            const s = (await get(first.base, `/app/tx?transaction_id=${txId}`)).json();
            if (s.status === "Committed") {
              committed.push(id);
              break;
            }
          }
        } catch {
          // The primary is gone: this write's fate is unknown, and it is not counted.
        }
      }
    };
    const writers = [writer(), writer(), writer(), writer()];
    await waitFor("writes to commit under load", () => (committed.length >= 20 ? true : undefined));
    const reportedBeforeKill = [...committed];
    first.node.kill("SIGKILL");
    killed = true;
    await Promise.all(writers);
    const primary = await waitFor(
      "a survivor to become primary",
      async () => {
        for (const n of survivors) {
          const res = await get(n.base, "/node/network").catch(() => undefined);
          const id = res?.json().current_view !== undefined ? res?.json().primary_id : undefined;
          if (typeof id !== "string") continue;
          const self = (await get(n.base, "/node/network/nodes/self")).json();
          if (self.node_id === id) return n;
        }
        return undefined;
      },
      30_000,
    );
    const view = Number((await get(primary.base, "/node/network")).json().current_view);
    assert.ok(view > 2, `a new view (${view})`);
    const w = await write(primary.base);
    assert.match(w.txId, new RegExp(`^${view}\\.`));
    await committedEverywhere(survivors, w);
    // What was committed before the failure is still committed on every survivor.
    for (const n of survivors) {
      const s = (await get(n.base, `/app/tx?transaction_id=${committedBeforeKill?.txId}`)).json();
      assert.equal(s.status, "Committed");
      for (const id of reportedBeforeKill) {
        const res = await request(`${n.base}/app/log/public?id=${id}`, { dispatcher: asUser });
        assert.equal(res.statusCode, 200, `write ${id} reported Committed is on ${n.base}`);
        assert.deepEqual(await res.body.json(), { msg: `load ${id}` });
      }
    }
    await asUser.close();
  });
});
