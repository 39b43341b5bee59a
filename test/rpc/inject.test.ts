// inject(): the server's routing, error mapping and body encoding, without a socket.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type HandlerErrorListener, inject, Router } from "../../src/rpc/index.js";
import { CASES, sampleEndpoints } from "./sample-endpoints.js";

function setup() {
  const router = new Router();
  router.setEndpoints("app", sampleEndpoints());
  const reported: Array<{ err: unknown; path: string }> = [];
  const onError: HandlerErrorListener = (err, req) => reported.push({ err, path: req.path });
  return { router, reported, onError };
}

describe("inject", () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const { router, reported, onError } = setup();
      const res = await inject(
        router,
        {
          method: c.method,
          path: c.path,
          ...(c.body === undefined ? {} : { body: Buffer.from(c.body) }),
        },
        onError,
      );
      assert.equal(res.status, c.status);
      assert.equal(res.headers["content-type"], c.contentType);
      if (c.text !== undefined) assert.equal(res.body.toString("latin1"), c.text);
      if (c.json !== undefined) assert.deepEqual(JSON.parse(res.body.toString()), c.json);
      for (const [name, value] of Object.entries(c.headers ?? {})) {
        assert.equal(res.headers[name], value, name);
      }
      if (c.status !== 204) assert.equal(res.headers["content-length"], String(res.body.length));
      assert.equal(reported.length, c.reported === true ? 1 : 0);
      if (c.reported === true) {
        assert.equal(reported[0]?.path, c.path);
        assert.ok(!res.body.toString().includes("secret"));
      }
    });
  }

  it("fills the request's defaults and passes what is given", async () => {
    const { router } = setup();
    const res = await inject(router, {
      method: "GET",
      path: "/t/whoami?a=b",
      headers: { "X-Custom": "v" },
      clientCert: { pem: "PEM", der: Buffer.from([1, 2]) },
      httpVersion: "2.0",
      hostname: "node.example",
    });
    assert.deepEqual(JSON.parse(res.body.toString()), {
      method: "GET",
      path: "/t/whoami",
      query: "a=b",
      httpVersion: "2.0",
      hostname: "node.example",
      cert: "PEM",
      derLength: 2,
      userAgent: null,
      custom: "v",
    });
  });

  it("answers HEAD with the length of a body it does not carry", async () => {
    const router = new Router();
    router.setEndpoints("app", [
      { method: "HEAD", path: "/h", handler: () => ({ status: 200, body: "four" }) },
    ]);
    const res = await inject(router, { method: "HEAD", path: "/h" });
    assert.equal(res.headers["content-length"], "4");
    assert.equal(res.body.length, 0);
  });

  it("drops connection-level headers a handler sets", async () => {
    const router = new Router();
    router.setEndpoints("app", [
      {
        method: "GET",
        path: "/h",
        handler: () => ({
          status: 200,
          headers: { Connection: "close", "Transfer-Encoding": "chunked", "Content-Length": "99" },
          body: "ok",
        }),
      },
    ]);
    const res = await inject(router, { method: "GET", path: "/h" });
    assert.deepEqual(res.headers, {
      "content-type": "text/plain; charset=utf-8",
      "content-length": "2",
    });
  });

  it("keeps serving when the error listener itself throws", async () => {
    const { router } = setup();
    const res = await inject(router, { method: "GET", path: "/t/throw" }, () => {
      throw new Error("logger down");
    });
    assert.equal(res.status, 500);
  });
});
