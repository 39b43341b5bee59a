// Ordered KV maps (beyond CCF: docs/ordered-maps.md) from an app built with rollup against
// @microsoft/ccf-app and types/ordered-kv.d.ts (test/fixtures/apps/ordered-app), deployed at genesis
// on one node and called over HTTPS: range answers are in key byte order and bounded [from, to).
// The build also checks that the typings compile (and refuse misuse: the app's typingChecks).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Agent } from "undici";
import { request } from "undici";
import { openAppNodeConfig } from "../helpers/node-config.js";
import { startNode, waitFor } from "../helpers/process.js";
import { clientAgent, makeMemberAndUser } from "../helpers/identities.js";

const ROOT = join(import.meta.dirname, "../..");
const APP = join(ROOT, "test/fixtures/apps/ordered-app");

interface NumbersAnswer {
  keys: number[];
  valuesMatch: boolean;
  raw: number[];
  forEachInRange: number[];
}

describe("ordered KV maps from a rollup-built app on a node", () => {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-ordered-"));
  let node: Awaited<ReturnType<typeof startNode>>["node"];
  let base: string;
  let user: Agent;

  async function call(method: "GET" | "POST", path: string, body?: unknown) {
    const res = await request(`${base}/app${path}`, {
      dispatcher: user,
      method,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
    });
    const text = await res.body.text();
    return { status: res.statusCode, json: () => JSON.parse(text) as unknown, text };
  }

  async function numbers(query = ""): Promise<NumbersAnswer> {
    const res = await call("GET", `/numbers${query}`);
    assert.equal(res.status, 200, res.text);
    const answer = res.json() as NumbersAnswer;
    assert.equal(answer.valuesMatch, true, "each value is stored under its own number");
    return answer;
  }

  before(async () => {
    // Built here (not only by npm ci) so that this test checks the build, typings included.
    const build = spawnSync(
      process.execPath,
      [join(ROOT, "scripts/build-samples.mjs"), "--out-dir", join(dir, "build"), "ordered-app"],
      { encoding: "utf8", cwd: ROOT, timeout: 120_000 },
    );
    assert.equal(build.status, 0, `build-samples failed: ${build.stderr}`);
    const bundle = join(dir, "build/ordered-app/bundle.json");
    assert.ok(existsSync(bundle), bundle);
    makeMemberAndUser(dir);
    ({ node, base } = await startNode(
      dir,
      openAppNodeConfig(dir, bundle, { tx_count: 10, delay: "50ms" }),
    ));
    user = clientAgent(dir, readFileSync(join(dir, "service_cert.pem"), "utf8"));
    await waitFor("the app to answer", async () => {
      const res = await request(`${base}/app/numbers`, { dispatcher: user });
      await res.body.text();
      return res.statusCode === 200 ? true : undefined;
    });
  });

  after(async () => {
    await user?.close();
    if (node?.exitCode === null) node.kill("SIGTERM");
  });

  it("the typings compile with tsc, strict and without skipLibCheck", () => {
    const tsc = spawnSync(
      process.execPath,
      [join(ROOT, "node_modules/typescript/bin/tsc"), "--noEmit", "-p", APP],
      { encoding: "utf8", cwd: ROOT, timeout: 120_000 },
    );
    assert.equal(tsc.status, 0, `tsc: ${tsc.stdout}${tsc.stderr}`);
  });

  it("answers big-endian numeric keys in numeric order, bounded [from, to)", async () => {
    // Little-endian encodings would sort 256 before 1 and 65536 before 2.
    const written = [300, 2, 70000, 1, 256, 4294967295, 0, 65536];
    const res = await call("POST", "/numbers", { numbers: written });
    assert.equal(res.status, 200, res.text);
    const sorted = [0, 1, 2, 256, 300, 65536, 70000, 4294967295];

    const all = await numbers();
    assert.deepEqual(all, { keys: sorted, valuesMatch: true, raw: sorted, forEachInRange: sorted });

    const keys = async (q: string) => (await numbers(q)).keys;
    assert.deepEqual(await keys("?from=2&to=300"), [2, 256]);
    assert.deepEqual(await keys("?from=3&to=301"), [256, 300]);
    assert.deepEqual(await keys("?from=300"), [300, 65536, 70000, 4294967295]);
    assert.deepEqual(await keys("?to=1"), [0]);
    assert.deepEqual(await keys("?to=4294967295"), sorted.slice(0, -1));
    assert.deepEqual(await keys("?from=5&to=5"), []);
    assert.deepEqual(await keys("?from=300&to=2"), []);
    assert.deepEqual(await keys("?limit=2"), [0, 1]);
    assert.deepEqual(await keys("?reverse=true&limit=3"), [4294967295, 70000, 65536]);
    assert.deepEqual(await keys("?from=1&to=65536&reverse=true"), [300, 256, 2, 1]);
    const bounded = await numbers("?from=2&to=70000&reverse=true&limit=2");
    assert.deepEqual(bounded.keys, [65536, 300]);
    assert.deepEqual(bounded.raw, [2, 256, 300, 65536], "the raw and forEach views are unlimited");
    assert.deepEqual(bounded.forEachInRange, [2, 256, 300, 65536]);
  });

  it("a removed key leaves the range; a re-written one comes back in its place", async () => {
    assert.equal((await call("POST", "/numbers/delete", { numbers: [256, 1] })).status, 200);
    assert.deepEqual((await numbers("?to=70000")).keys, [0, 2, 300, 65536]);
    assert.equal((await call("POST", "/numbers", { numbers: [256] })).status, 200);
    assert.deepEqual((await numbers("?to=70000")).keys, [0, 2, 256, 300, 65536]);
  });

  it("orders string keys by their UTF-8 bytes, bounds included and excluded", async () => {
    const names = ["b", "a", "B", "\u00e9", "ab", "", "zz", "a\u0000"];
    assert.equal((await call("POST", "/names", { names })).status, 200);
    const get = async (q: string) => {
      const res = await call("GET", `/names${q}`);
      assert.equal(res.status, 200, res.text);
      return res.json() as { names: string[]; bytes: number[][] };
    };
    const all = await get("");
    assert.deepEqual(all.names, ["", "B", "a", "a\u0000", "ab", "b", "zz", "\u00e9"]);
    assert.deepEqual(all.bytes[all.bytes.length - 1], [0xc3, 0xa9]);
    assert.deepEqual((await get("?from=a&to=b")).names, ["a", "a\u0000", "ab"]);
    assert.deepEqual((await get("?from=ab&to=ab")).names, []);
    assert.deepEqual((await get(`?from=zz&to=${encodeURIComponent("\u00e9")}`)).names, ["zz"]);
    assert.deepEqual((await get("?from=z")).names, ["zz", "\u00e9"]);
  });

  it("refuses bad bounds and bodies with CCF's error shape, and writes nothing", async () => {
    const before = await numbers();
    for (const q of ["?from=abc", "?to=-1", "?from=4294967296", "?limit=1.5"]) {
      const res = await call("GET", `/numbers${q}`);
      assert.equal(res.status, 400, `${q}: ${res.text}`);
      const body = res.json() as { error: { code: string; message: string } };
      assert.equal(body.error.code, "InvalidInput");
      assert.match(body.error.message, /must be an unsigned 32-bit integer/);
    }
    for (const body of [{ numbers: [1, -2] }, { numbers: "7" }, { numbers: [2 ** 32] }]) {
      const res = await call("POST", "/numbers", body);
      assert.equal(res.status, 400, res.text);
      assert.match(res.text, /"code":"InvalidInput"/);
    }
    assert.deepEqual(await numbers(), before);
  });
});
