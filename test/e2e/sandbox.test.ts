// `ccf-ts sandbox` (what `npm start` runs): the workspace CCF's sandbox lays out, an open service
// serving the logging sample to user0, and a clean stop of every node on SIGTERM.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Agent, request } from "undici";
import { nodeAllocator } from "../../src/node/allocator.js";
import { runCcfTs, startCcfTs, waitFor } from "../helpers/process.js";

describe("ccf-ts sandbox", () => {
  it("starts a node with CCF's workspace layout, prints where, and stops it on SIGTERM", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "ccf-ts-sandbox-"));
    const sandbox = startCcfTs(["sandbox", "--port", "0", "--workspace", "ws"], cwd);
    try {
      const printed = await waitFor(
        "the sandbox to report the network",
        () => {
          if (sandbox.exitCode !== null) throw new Error(`sandbox exited: ${sandbox.output()}`);
          const m = /node 0: https:\/\/(\S+)/.exec(sandbox.output());
          return m?.[1];
        },
        180_000,
      );
      const common = join(cwd, "ws", "sandbox_common");
      for (const f of [
        "service_cert.pem",
        "member0_cert.pem",
        "member2_enc_privk.pem",
        "user1_privk.pem",
      ]) {
        assert.ok(existsSync(join(common, f)), f);
      }
      assert.ok(existsSync(join(cwd, "ws", "sandbox_0", "0.ledger")));
      assert.match(
        sandbox.output(),
        /Identities and the service certificate are in .*sandbox_common/,
      );
      // The node runs with the allocator the sandbox says, and says so in its log.
      const allocator = nodeAllocator().allocator;
      assert.match(sandbox.output(), new RegExp(`memory allocator: ${allocator}`));
      const nodePid = Number(readFileSync(join(cwd, "ws", "sandbox_0", "node.pid"), "utf8"));
      const maps = readFileSync(`/proc/${nodePid}/maps`, "utf8");
      assert.equal(maps.includes("libjemalloc"), allocator === "jemalloc");
      const nodeLog = readFileSync(join(cwd, "ws", "sandbox_0", "out"), "utf8");
      assert.match(
        nodeLog,
        new RegExp(`"allocator":"${allocator === "jemalloc" ? "jemalloc" : "system"}"`),
      );
      const agent = new Agent({
        connect: { ca: readFileSync(join(common, "service_cert.pem"), "utf8") },
      });
      const res = await request(`https://${printed}/node/network`, { dispatcher: agent });
      assert.equal(res.statusCode, 200);
      assert.equal(((await res.body.json()) as { service_status: string }).service_status, "Open");
      await agent.close();
      const asUser0 = new Agent({
        connect: {
          ca: readFileSync(join(common, "service_cert.pem"), "utf8"),
          cert: readFileSync(join(common, "user0_cert.pem"), "utf8"),
          key: readFileSync(join(common, "user0_privk.pem"), "utf8"),
        },
      });
      const posted = await request(`https://${printed}/app/log/private`, {
        dispatcher: asUser0,
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ id: 1, msg: "from the sandbox" }),
      });
      assert.equal(posted.statusCode, 200, await posted.body.text());
      const got = await request(`https://${printed}/app/log/private?id=1`, { dispatcher: asUser0 });
      assert.deepEqual(await got.body.json(), { msg: "from the sandbox" });
      await asUser0.close();

      // CCF's "Running CCF Applications" guide, from sandbox_common, with curl itself.
      const curl = (...args: string[]) => {
        const r = spawnSync("curl", ["-s", "-w", "\n%{http_code}", ...args], {
          cwd: common,
          encoding: "utf8",
        });
        assert.equal(r.status, 0, r.stderr);
        const lines = r.stdout.split("\n");
        return { status: Number(lines.pop()), body: lines.join("\n") };
      };
      const asUser = (n: number) => [
        "--cacert",
        "service_cert.pem",
        "--cert",
        `user${n}_cert.pem`,
        "--key",
        `user${n}_privk.pem`,
      ];
      const base = `https://${printed}`;
      for (const [table, msg] of [
        ["private", "Logged to private table"],
        ["public", "Logged to public table"],
      ]) {
        const post = curl(
          `${base}/app/log/${table}`,
          "-X",
          "POST",
          ...asUser(0),
          "-H",
          "Content-Type: application/json",
          "--data-binary",
          JSON.stringify({ id: 42, msg }),
        );
        assert.deepEqual(post, { status: 200, body: "true" });
        const get = curl(`${base}/app/log/${table}?id=42`, ...asUser(0));
        assert.deepEqual(JSON.parse(get.body), { msg });
      }
      // Three nodes by default: the others joined, are trusted, and serve replicated reads.
      const others = [...sandbox.output().matchAll(/node [12]: https:\/\/(\S+)/g)].map((m) => m[1]);
      assert.equal(others.length, 2, sandbox.output());
      const listed = JSON.parse(
        curl(`${base}/node/network/nodes`, "--cacert", "service_cert.pem").body,
      ) as {
        nodes: Array<{ status: string }>;
      };
      assert.deepEqual(
        listed.nodes.map((n) => n.status),
        ["Trusted", "Trusted", "Trusted"],
      );
      for (const other of others) {
        const read = await waitFor(`the record replicated to ${other}`, () => {
          const r = curl(`https://${other}/app/log/public?id=42`, ...asUser(0));
          return r.status === 200 ? r : undefined;
        });
        assert.deepEqual(JSON.parse(read.body), { msg: "Logged to public table" });
      }
      // A write sent to a backup is forwarded to the primary, the caller checked there.
      for (const [i, other] of others.entries()) {
        const forwarded = curl(
          `https://${other}/app/log/private`,
          "-X",
          "POST",
          ...asUser(0),
          "-H",
          "Content-Type: application/json",
          "--data-binary",
          JSON.stringify({ id: 43 + i * 10, msg: `through backup ${i + 1}` }),
        );
        assert.deepEqual(forwarded, { status: 200, body: "true" });
        assert.deepEqual(
          JSON.parse(curl(`${base}/app/log/private?id=${43 + i * 10}`, ...asUser(0)).body),
          { msg: `through backup ${i + 1}` },
        );
      }
      const anonymous = curl(
        `https://${others[0]}/app/log/private`,
        "-X",
        "POST",
        "--cacert",
        "service_cert.pem",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        JSON.stringify({ id: 44, msg: "nobody" }),
      );
      assert.equal(anonymous.status, 401, "refused on the primary without a user certificate");
      // A user is not a member: a plain request to create a proposal is refused (CCF: 401).
      const asGov = curl(
        `${base}/gov/members/proposals:create?api-version=2024-07-01`,
        "-X",
        "POST",
        ...asUser(0),
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        '{"actions": []}',
      );
      assert.equal(asGov.status, 401, asGov.body);
      // Public writes are in the ledger in clear; private ones are not.
      await waitFor("the records to reach the ledger", () => {
        const ledger = join(cwd, "ws", "sandbox_0", "0.ledger");
        const grep = (text: string) =>
          spawnSync("grep", ["-r", "-l", text, ledger], { encoding: "utf8" }).stdout.trim() !== "";
        if (!grep("Logged to public table")) return undefined;
        assert.equal(grep("Logged to private table"), false, "a private message in clear");
        return true;
      });

      // Members add a fourth user by proposal; two of three vote yes; the user calls the app.
      const r = runCcfTs(["keygen", "--name", "user3"], common);
      assert.equal(r.status, 0, r.stderr);
      writeFileSync(
        join(common, "add_user3.json"),
        JSON.stringify({
          actions: [
            {
              name: "set_user",
              args: { cert: readFileSync(join(common, "user3_cert.pem"), "utf8") },
            },
          ],
        }),
      );
      assert.equal(curl(`${base}/app/log/private?id=42`, ...asUser(3)).status, 401);
      const gov = (...args: string[]) => {
        const out = runCcfTs(["gov", "--url", base, ...args], common);
        assert.equal(out.status, 0, out.stderr);
        return JSON.parse(out.stdout) as { proposalId: string; proposalState: string };
      };
      const { proposalId } = gov("propose", "add_user3.json");
      assert.equal(gov("vote", proposalId).proposalState, "Open");
      assert.equal(gov("--member", "member1", "vote", proposalId).proposalState, "Accepted");
      assert.equal(curl(`${base}/app/log/private?id=42`, ...asUser(3)).status, 200);

      const pid = Number(readFileSync(join(cwd, "ws", "sandbox_0", "node.pid"), "utf8"));
      sandbox.kill("SIGTERM");
      const code = await waitFor(
        "the sandbox to exit",
        () => sandbox.exitCode ?? undefined,
        30_000,
      );
      assert.equal(code, 0);
      await waitFor("node 0 to exit", () => {
        try {
          process.kill(pid, 0);
          return undefined;
        } catch {
          return true;
        }
      });
      assert.match(readFileSync(join(cwd, "ws", "sandbox_0", "out"), "utf8"), /node stopped/);
    } finally {
      if (sandbox.exitCode === null) sandbox.kill("SIGKILL");
    }
  });
});
