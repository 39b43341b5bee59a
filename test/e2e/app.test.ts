// The logging sample, built with rollup from @microsoft/ccf-app, served by a real node over HTTPS
// with client certificates: CCF's documented requests and answers.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import { openAppNodeConfig } from "../helpers/node-config.js";
import { startNode, waitFor } from "../helpers/process.js";
import { clientAgent, makeMemberAndUser } from "../helpers/identities.js";

const ROOT = join(import.meta.dirname, "../..");
const BUNDLE = join(ROOT, "samples/apps/logging/dist/bundle.json");

// worker_threads 2: TLS and HTTP in two frontend processes, requests dispatched by the node.
for (const workerThreads of [0, 2]) {
  describe(`the logging app on a node (worker_threads ${workerThreads})`, () => {
    const dir = mkdtempSync(join(tmpdir(), "ccf-ts-app-"));
    let node: Awaited<ReturnType<typeof startNode>>["node"];
    let base: string;
    let user: Agent;
    let anonymous: Agent;

    async function call(
      agent: Agent,
      method: "GET" | "POST" | "DELETE",
      path: string,
      body?: unknown,
      contentType = "application/json",
    ) {
      const res = await request(`${base}${path}`, {
        dispatcher: agent,
        method,
        ...(body === undefined
          ? {}
          : {
              body: typeof body === "string" ? body : JSON.stringify(body),
              headers: { "content-type": contentType },
            }),
      });
      const text = await res.body.text();
      return {
        status: res.statusCode,
        headers: res.headers,
        text,
        json: () => JSON.parse(text) as unknown,
      };
    }

    before(async () => {
      assert.ok(existsSync(BUNDLE), `the sample app is built by npm ci: ${BUNDLE}`);
      makeMemberAndUser(dir);
      const config = openAppNodeConfig(dir, BUNDLE, { tx_count: 10, delay: "50ms" });
      config.worker_threads = workerThreads;
      ({ node, base } = await startNode(dir, config));
      const ca = readFileSync(join(dir, "service_cert.pem"), "utf8");
      user = clientAgent(dir, ca);
      anonymous = new Agent({ connect: { ca } });
    });

    after(async () => {
      await user?.close();
      await anonymous?.close();
      if (node?.exitCode === null) node.kill("SIGTERM");
    });

    it("opens the service at genesis with the app deployed", async () => {
      const net = (await call(anonymous, "GET", "/node/network")).json() as {
        service_status: string;
      };
      assert.equal(net.service_status, "Open");
    });

    it("answers a write with x-ccf-ts-wait-for-commit only once it is committed (beyond CCF)", async () => {
      for (let i = 0; i < 5; i++) {
        const res = await request(`${base}/app/log/private`, {
          dispatcher: user,
          method: "POST",
          headers: { "content-type": "application/json", "x-ccf-ts-wait-for-commit": "true" },
          body: JSON.stringify({ id: 900 + i, msg: "committed before the answer" }),
        });
        assert.equal(res.statusCode, 200, await res.body.text());
        const txid = String(res.headers["x-ms-ccf-transaction-id"]);
        // No waiting here: the answer itself came after the commit.
        const status = await call(user, "GET", `/app/tx?transaction_id=${txid}`);
        assert.equal((status.json() as { status: string }).status, "Committed", txid);
      }
    });

    it("writes and reads private and public records for an authenticated user", async () => {
      for (const table of ["private", "public"]) {
        const posted = await call(user, "POST", `/app/log/${table}`, {
          id: 42,
          msg: `hello ${table}`,
        });
        assert.equal(posted.status, 200, posted.text);
        assert.equal(posted.json(), true);
        assert.match(String(posted.headers["x-ms-ccf-transaction-id"]), /^2\.\d+$/);
        const got = await call(user, "GET", `/app/log/${table}?id=42`);
        assert.equal(got.status, 200, got.text);
        assert.deepEqual(got.json(), { msg: `hello ${table}` });
      }
    });

    it("answers 404 ResourceNotFound for a missing record, and deletes", async () => {
      const missing = await call(user, "GET", "/app/log/private?id=7");
      assert.equal(missing.status, 404);
      assert.equal((missing.json() as { error: { code: string } }).error.code, "ResourceNotFound");
      await call(user, "POST", "/app/log/private", { id: 8, msg: "bye" });
      assert.equal((await call(user, "DELETE", "/app/log/private?id=8")).json(), true);
      assert.equal((await call(user, "GET", "/app/log/private?id=8")).status, 404);
      assert.equal((await call(user, "DELETE", "/app/log/private?id=8")).status, 404);
    });

    it("refuses a caller without a user certificate with 401 before any app code runs", async () => {
      const res = await call(anonymous, "POST", "/app/log/private", { id: 9, msg: "nope" });
      assert.equal(res.status, 401);
      assert.equal(
        (res.json() as { error: { code: string } }).error.code,
        "InvalidAuthenticationInfo",
      );
      assert.equal(
        (await call(user, "GET", "/app/log/private?id=9")).status,
        404,
        "nothing was written",
      );
    });

    it("answers 415 for raw_text with the wrong content type, and stores it with the right one", async () => {
      const wrong = await call(
        user,
        "POST",
        "/app/log/private/raw_text/11",
        "some text",
        "application/json",
      );
      assert.equal(wrong.status, 415);
      const right = await call(
        user,
        "POST",
        "/app/log/private/raw_text/11",
        "some text",
        "text/plain",
      );
      assert.equal(right.status, 200, right.text);
      assert.deepEqual((await call(user, "GET", "/app/log/private?id=11")).json(), {
        msg: "some text",
      });
    });

    it("commits the app's writes: their TxID becomes Committed", async () => {
      const posted = await call(user, "POST", "/app/log/public", { id: 100, msg: "commit me" });
      const txid = String(posted.headers["x-ms-ccf-transaction-id"]);
      const status = await waitFor("the write to commit", async () => {
        const s = (await call(anonymous, "GET", `/app/tx?transaction_id=${txid}`)).json() as {
          status: string;
        };
        return s.status === "Committed" ? s.status : undefined;
      });
      assert.equal(status, "Committed");
    });

    it("identifies the caller by the certificate it presented (multi_auth)", async () => {
      const res = await call(user, "POST", "/app/multi_auth");
      assert.equal(res.status, 200, res.text);
      assert.match(res.text, /User TLS cert/);
      const anon = await call(anonymous, "POST", "/app/multi_auth");
      assert.equal(anon.status, 200, anon.text);
      assert.doesNotMatch(anon.text, /User TLS cert/);
    });

    it("counts the open sessions of the interface in /node/metrics", async () => {
      const metrics = (await call(anonymous, "GET", "/node/metrics")).json() as {
        sessions: { active: number; interfaces: Record<string, { active: number }> };
      };
      assert.ok(metrics.sessions.active >= 2, JSON.stringify(metrics.sessions));
    });

    if (workerThreads > 0) {
      it("replaces a frontend process that dies, and stops its processes with it", async () => {
        const children = (): number[] => {
          const r = spawnSync("pgrep", ["-P", String(node.pid)], { encoding: "utf8" });
          return r.stdout.trim().split("\n").filter(Boolean).map(Number);
        };
        const before = children();
        assert.equal(before.length, workerThreads, "one process per worker thread");
        process.kill(before[0], "SIGKILL");
        await waitFor("a replacement frontend process", () => {
          const now = children();
          return now.length === workerThreads && !now.includes(before[0]) ? true : undefined;
        });
        // New connections, whichever process they reach, are served.
        for (let i = 0; i < 4; i++) {
          const fresh = clientAgent(dir, readFileSync(join(dir, "service_cert.pem"), "utf8"));
          try {
            const res = await call(fresh, "GET", "/app/log/private?id=11");
            assert.equal(res.status, 200, res.text);
          } finally {
            await fresh.close();
          }
        }
        const mine = children();
        node.kill("SIGTERM");
        await new Promise((resolve) => node.once("exit", resolve));
        assert.equal(node.exitCode, 0);
        for (const pid of mine) {
          assert.throws(
            () => process.kill(pid, 0),
            "frontend process " + pid + " outlived its node",
          );
        }
      });
    }
  });
}
