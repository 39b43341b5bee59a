// The in-process app harness (`ccf-ts/testing`): the logging sample served from an in-memory KV,
// answered as a node answers (routing, authentication, CCF's errors), writes committed on 2xx only.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { AppTestError, loadApp, type TestApp } from "../../src/testing/index.js";

const BUNDLE = join(import.meta.dirname, "../../samples/apps/logging/dist/bundle.json");

describe("loadApp with the logging sample", () => {
  let app: TestApp;
  const alice = { policy: "user_cert", id: "alice" } as const;

  before(async () => {
    assert.ok(existsSync(BUNDLE), `the sample app is built by npm ci: ${BUNDLE}`);
    app = await loadApp({ bundle: BUNDLE, users: ["alice"] });
  });

  it("stores a private record with POST and reads it back with GET", async () => {
    const post = await app.call({
      method: "POST",
      path: "/app/log/private",
      body: { id: 1, msg: "hello" },
      caller: alice,
    });
    assert.equal(post.status, 200, post.text);
    assert.equal(post.body, true);
    assert.match(post.headers["x-ms-ccf-transaction-id"] ?? "", /^2\.\d+$/);
    const get = await app.call({
      method: "GET",
      path: "/app/log/private",
      query: { id: "1" },
      caller: alice,
    });
    assert.equal(get.status, 200, get.text);
    assert.deepEqual(get.body, { msg: "hello" });
    assert.equal(app.kv("records").getString("1"), "hello");
  });

  it("reads what the test seeded in the KV, and a JWT caller is accepted", async () => {
    app.kv("records").set("7", "seeded");
    const get = await app.call({
      method: "GET",
      path: "/app/log/private?id=7",
      caller: { jwt: { sub: "bob" } },
    });
    assert.equal(get.status, 200, get.text);
    assert.deepEqual(get.body, { msg: "seeded" });
  });

  it("answers the app's own 400 for bad input", async () => {
    const res = await app.call({
      method: "GET",
      path: "/app/log/private/historical/range?id=1&from_seqno=5&to_seqno=2",
      caller: alice,
    });
    assert.equal(res.status, 400, res.text);
    assert.equal((res.body as { error: { code: string } }).error.code, "InvalidInput");
  });

  it("refuses a request without credentials with CCF's 401, and an unknown certificate", async () => {
    const before = app.kv("records").size;
    const res = await app.call({
      method: "POST",
      path: "/app/log/private",
      body: { id: 2, msg: "x" },
    });
    assert.equal(res.status, 401);
    const err = (res.body as { error: { code: string; details: Array<{ auth_policy: string }> } })
      .error;
    assert.equal(err.code, "InvalidAuthenticationInfo");
    assert.deepEqual(
      err.details.map((d) => d.auth_policy),
      ["jwt", "user_cert"],
    );
    const stranger = await loadApp({ bundle: BUNDLE, users: ["mallory"] });
    const mallory = stranger.users.get("mallory")?.cert ?? "";
    const unknown = await app.call({
      method: "POST",
      path: "/app/log/private",
      body: { id: 2, msg: "x" },
      caller: { cert: mallory },
    });
    assert.equal(unknown.status, 401);
    assert.equal(app.kv("records").has("2"), false);
    assert.equal(app.kv("records").size, before);
  });

  it("writes nothing when the handler throws (a malformed body: 500)", async () => {
    const res = await app.call({
      method: "POST",
      path: "/app/log/private",
      body: { msg: "no id" },
      caller: alice,
    });
    assert.equal(res.status, 500);
    assert.deepEqual(res.body, {
      error: { code: "InternalError", message: "Exception thrown while executing." },
    });
  });

  it("answers 404 for an unknown path and 405 for a wrong method, as the node", async () => {
    const missing = await app.call({ method: "GET", path: "/app/nope" });
    assert.equal(missing.status, 404);
    assert.equal((missing.body as { error: { code: string } }).error.code, "ResourceNotFound");
    const verb = await app.call({ method: "PUT", path: "/app/log/private" });
    assert.equal(verb.status, 405);
    assert.match(verb.headers.allow ?? "", /GET/);
  });
});

describe("loadApp with a bundle object", () => {
  const bundle = {
    metadata: {
      endpoints: {
        "/write": {
          post: {
            js_module: "w.js",
            js_function: "write",
            authn_policies: ["no_auth"],
            mode: "readwrite",
            openapi: {},
          },
        },
      },
    },
    modules: [
      {
        name: "w.js",
        module: `export function write(request) {
  const q = request.query;
  ccf.kv["public:w"].set(ccf.strToBuf("k"), ccf.strToBuf(q));
  return { statusCode: q === "conflict" ? 409 : 201, body: { stored: q } };
}`,
      },
    ],
  };

  it("applies a handler's writes on 2xx and drops them on 4xx", async () => {
    const app = await loadApp({ bundle });
    const ok = await app.call({ method: "POST", path: "/app/write?first" });
    assert.equal(ok.status, 201);
    assert.equal(app.kv("public:w").getString("k"), "first");
    const refused = await app.call({ method: "POST", path: "/app/write", query: "conflict" });
    assert.equal(refused.status, 409);
    assert.deepEqual(refused.body, { stored: "conflict" });
    assert.equal(refused.headers["x-ms-ccf-transaction-id"], undefined);
    assert.equal(app.kv("public:w").getString("k"), "first");
  });

  it("runs concurrent calls one at a time, each its own transaction", async () => {
    const app = await loadApp({ bundle });
    const results = await Promise.all(
      ["a", "b", "c"].map((q) => app.call({ method: "POST", path: `/app/write?${q}` })),
    );
    assert.deepEqual(
      results.map((r) => r.status),
      [201, 201, 201],
    );
    assert.equal(app.kv("public:w").getString("k"), "c");
  });

  it("refuses a bundle whose endpoint names a missing module, and no bundle at all", async () => {
    const broken = { ...bundle, modules: [] };
    await assert.rejects(loadApp({ bundle: broken }), (e: unknown) => {
      assert.ok(e instanceof AppTestError);
      assert.match(e.message, /POST \/write: js_module w\.js is not in the bundle/);
      return true;
    });
    const saved = process.env.CCF_TS_APP_BUNDLE;
    delete process.env.CCF_TS_APP_BUNDLE;
    try {
      await assert.rejects(
        loadApp(),
        /no bundle: pass loadApp\(\{bundle\}\) or set CCF_TS_APP_BUNDLE/,
      );
    } finally {
      if (saved !== undefined) process.env.CCF_TS_APP_BUNDLE = saved;
    }
    await assert.rejects(loadApp({ bundle: "/nonexistent/bundle.json" }), /does not exist/);
  });

  it("names an unknown caller", async () => {
    const app = await loadApp({ bundle });
    await assert.rejects(
      app.call({ method: "POST", path: "/app/write", caller: { policy: "user_cert", id: "zoe" } }),
      /caller: no user zoe/,
    );
  });
});
