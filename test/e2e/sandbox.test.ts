// `ccf-ts sandbox` (what `npm start` runs): the workspace CCF's sandbox lays out, an open service
// serving the logging sample to user0, and a clean stop of every node on SIGTERM.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Agent, request } from "undici";
import { startCcfTs, waitFor } from "../helpers/process.js";

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
        60_000,
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
