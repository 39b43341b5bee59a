// A node joining a service that is already Open: it is recorded Pending, and joins once a member's
// proposal `transition_node_to_trusted` (under the default constitution) is accepted: governance
// endorses its CSR, the node is trusted, added to the consensus configuration, and catches up.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import { GovClient } from "../../src/cli/gov-client.js";
import { constitutionFiles, DEFAULT_CONSTITUTION_DIR } from "../../src/gov/index.js";
import { singleNodeConfig } from "../helpers/node-config.js";
import { runCcfTs, startNode, waitFor } from "../helpers/process.js";

describe("a node joining an Open service", () => {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-join-open-"));
  const nodes: Array<Awaited<ReturnType<typeof startNode>>> = [];
  let agent: Agent;
  let member: GovClient;

  async function nodeList(base: string) {
    const res = await request(`${base}/node/network/nodes`, { dispatcher: agent });
    return ((await res.body.json()) as { nodes: Array<{ node_id: string; status: string }> }).nodes;
  }

  before(async () => {
    const r = runCcfTs(["keygen", "--name", "member0", "--gen-enc-key"], dir);
    assert.equal(r.status, 0, r.stderr);
    const dir0 = join(dir, "n0");
    mkdirSync(dir0);
    const config0 = singleNodeConfig(dir0, { signatures: { tx_count: 10, delay: "50ms" } });
    const start = (config0.command as { start: Record<string, unknown> }).start;
    Object.assign(start, {
      members: [
        {
          certificate_file: join(dir, "member0_cert.pem"),
          encryption_public_key_file: join(dir, "member0_enc_pubk.pem"),
        },
      ],
      constitution_files: constitutionFiles(DEFAULT_CONSTITUTION_DIR),
      open_service: true,
    });
    nodes.push(await startNode(dir0, config0));
    const serviceCert = readFileSync(join(dir0, "service_cert.pem"), "utf8");
    agent = new Agent({ connect: { ca: serviceCert } });
    member = new GovClient(nodes[0]?.base, serviceCert, {
      certPem: readFileSync(join(dir, "member0_cert.pem"), "utf8"),
      keyPem: readFileSync(join(dir, "member0_privk.pem"), "utf8"),
    });
    await waitFor("member0 to be active", async () => {
      try {
        await member.activate();
        return true;
      } catch {
        return undefined;
      }
    });
    const dir1 = join(dir, "n1");
    mkdirSync(dir1);
    const config1 = singleNodeConfig(dir1, { signatures: { tx_count: 10, delay: "50ms" } });
    config1.command = {
      type: "Join",
      service_certificate_file: join(dir0, "service_cert.pem"),
      join: {
        target_rpc_address: (nodes[0]?.base).replace("https://", ""),
        retry_timeout: "200ms",
      },
    };
    nodes.push(await startNode(dir1, config1));
  });

  after(async () => {
    await member?.close();
    await agent?.close();
    for (const n of nodes) if (n.node.exitCode === null) n.node.kill("SIGTERM");
  });

  it("is Pending until transition_node_to_trusted is accepted, then joins and catches up", async () => {
    const pending = await waitFor("the joiner to be recorded Pending", async () => {
      const list = await nodeList(nodes[0]?.base);
      return list.find((n) => n.status === "Pending");
    });
    const state = await request(`${nodes[1]?.base}/node/state`, {
      dispatcher: new Agent({ connect: { rejectUnauthorized: false } }),
    });
    assert.equal(((await state.body.json()) as { state: string }).state, "Pending");

    const proposal = await member.propose({
      actions: [
        {
          name: "transition_node_to_trusted",
          args: { node_id: pending.node_id, valid_from: new Date().toISOString() },
        },
      ],
    });
    const voted = await member.vote(
      proposal.proposalId,
      "export function vote(proposal, proposerId) { return true; }",
    );
    assert.equal(voted.proposalState, "Accepted", JSON.stringify(voted));

    await waitFor("the joiner to be part of the network", async () => {
      try {
        const res = await request(`${nodes[1]?.base}/node/state`, { dispatcher: agent });
        const s = (await res.body.json()) as { state: string };
        return s.state === "PartOfNetwork" ? true : undefined;
      } catch {
        return undefined;
      }
    });
    const list = await waitFor("the joiner to have replicated both nodes' records", async () => {
      const l = await nodeList(nodes[1]?.base);
      return l.length === 2 ? l : undefined;
    });
    assert.deepEqual(list.map((n) => n.status).sort(), ["Trusted", "Trusted"]);
    const commit = async (base: string) => {
      const res = await request(`${base}/node/commit`, { dispatcher: agent });
      return ((await res.body.json()) as { transaction_id: string }).transaction_id;
    };
    const primaryCommit = await commit(nodes[0]?.base);
    await waitFor("the joiner to catch up", async () => {
      const mine = await commit(nodes[1]?.base);
      return Number(mine.split(".")[1]) >= Number(primaryCommit.split(".")[1]) ? true : undefined;
    });
  });
});
