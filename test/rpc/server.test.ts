// RpcServer over real TLS on 127.0.0.1, HTTP/1.1 and HTTP/2, with and without a client certificate:
// the same contract as inject, the peer certificate, and body limits.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import type { Agent } from "undici";
import { certificateDer } from "../../src/crypto/index.js";
import { CASES, sampleEndpoints } from "./sample-endpoints.js";
import {
  agent,
  call,
  type Identity,
  PROTOCOLS,
  type RunningServer,
  selfSigned,
  startServer,
} from "./tls-fixture.js";
import { SERVER_MODES } from "./tls-fixture.js";

const MAX_BODY = 4096;

for (const mode of SERVER_MODES) {
  describe(`RpcServer (${mode})`, () => {
    let node: Identity;
    let client: Identity;
    let running: RunningServer;
    const reported: string[] = [];

    before(async () => {
      node = await selfSigned("CN=node");
      client = await selfSigned("CN=user0");
      running = await startServer(
        node,
        sampleEndpoints(),
        {
          maxBodySize: MAX_BODY,
          onError: (_err, req) => reported.push(req.path),
        },
        mode,
      );
    });
    after(() => running.stop());

    for (const protocol of PROTOCOLS) {
      for (const withCert of [false, true]) {
        describe(`${protocol}, ${withCert ? "with" : "without"} a client certificate`, () => {
          let dispatcher: Agent;
          before(() => {
            dispatcher = agent(protocol, running.ca, withCert ? client : undefined);
          });
          after(() => dispatcher.close());

          for (const c of CASES) {
            it(c.name, async () => {
              reported.length = 0;
              const res = await call(dispatcher, `${running.base}${c.path}`, {
                method: c.method,
                ...(c.body === undefined ? {} : { body: c.body }),
              });
              assert.equal(res.status, c.status);
              assert.equal(res.headers["content-type"], c.contentType);
              if (c.text !== undefined) assert.equal(res.body.toString("latin1"), c.text);
              if (c.json !== undefined) assert.deepEqual(JSON.parse(res.body.toString()), c.json);
              for (const [name, value] of Object.entries(c.headers ?? {})) {
                assert.equal(res.headers[name], value, name);
              }
              assert.deepEqual(reported, c.reported === true ? [c.path.split("?")[0]] : []);
            });
          }

          it("describes the request to the handler", async () => {
            const res = await call(dispatcher, `${running.base}/t/whoami?q=1`, {
              headers: { "x-custom": "Value", "user-agent": "rpc-test" },
            });
            const seen = JSON.parse(res.body.toString()) as Record<string, unknown>;
            assert.equal(seen.method, "GET");
            assert.equal(seen.path, "/t/whoami");
            assert.equal(seen.query, "q=1");
            assert.equal(seen.httpVersion, protocol === "HTTP/2" ? "2.0" : "1.1");
            assert.equal(seen.hostname, "127.0.0.1");
            assert.equal(seen.custom, "Value");
            assert.equal(seen.userAgent, "rpc-test");
          });

          it(`gives the handler the client certificate ${withCert ? "as PEM and DER" : "as undefined"}`, async () => {
            const res = await call(dispatcher, `${running.base}/t/whoami`);
            const seen = JSON.parse(res.body.toString()) as {
              cert: string | null;
              derLength: number | null;
            };
            if (!withCert) {
              assert.equal(seen.cert, null);
              assert.equal(seen.derLength, null);
              return;
            }
            assert.ok(seen.cert !== null);
            assert.deepEqual(new X509Certificate(seen.cert).raw, certificateDer(client.cert));
            assert.equal(seen.derLength, certificateDer(client.cert).length);
          });

          it("keeps serving on the same connection after a handler throws", async () => {
            for (let i = 0; i < 3; i++) {
              assert.equal((await call(dispatcher, `${running.base}/t/throw`)).status, 500);
              assert.equal((await call(dispatcher, `${running.base}/t/json`)).status, 200);
            }
          });

          it("accepts a body of exactly the maximum size", async () => {
            const body = Buffer.alloc(MAX_BODY, 7);
            const res = await call(dispatcher, `${running.base}/t/echo`, { method: "POST", body });
            assert.equal(res.status, 200);
            assert.deepEqual(res.body, body);
          });

          const tooLarge = {
            error: {
              code: "RequestBodyTooLarge",
              message: `HTTP request body is too large (max size allowed: ${MAX_BODY})`,
            },
          };

          it("refuses a body over the maximum announced by Content-Length with 413, then serves", async () => {
            const res = await call(dispatcher, `${running.base}/t/echo`, {
              method: "POST",
              body: Buffer.alloc(MAX_BODY + 1),
            });
            assert.equal(res.status, 413);
            assert.deepEqual(JSON.parse(res.body.toString()), tooLarge);
            const next = await call(dispatcher, `${running.base}/t/echo`, {
              method: "POST",
              body: "ok",
            });
            assert.equal(next.body.toString(), "ok");
          });

          it("refuses a streamed body (no Content-Length) once it passes the maximum, then serves", async () => {
            function* chunks() {
              // Far more than the limit, in many chunks.
              for (let i = 0; i < 256; i++) yield Buffer.alloc(1024, i);
            }
            const res = await call(dispatcher, `${running.base}/t/echo`, {
              method: "POST",
              body: Readable.from(chunks()),
            });
            assert.equal(res.status, 413);
            assert.deepEqual(JSON.parse(res.body.toString()), tooLarge);
            const next = await call(dispatcher, `${running.base}/t/echo`, {
              method: "POST",
              body: "ok",
            });
            assert.equal(next.body.toString(), "ok");
          });
        });
      }
    }

    it("routes endpoints installed while serving", async () => {
      const dispatcher = agent("HTTP/1.1", running.ca);
      try {
        assert.equal((await call(dispatcher, `${running.base}/late`)).status, 404);
        running.router.setEndpoints("late", [
          { method: "GET", path: "/late", handler: () => ({ status: 200, body: "here" }) },
        ]);
        assert.equal((await call(dispatcher, `${running.base}/late`)).body.toString(), "here");
        running.router.setEndpoints("late", []);
        assert.equal((await call(dispatcher, `${running.base}/late`)).status, 404);
      } finally {
        await dispatcher.close();
      }
    });
  });
}
