// CCF's session caps: past the soft cap a session gets one 503 SessionCapExhausted and is closed;
// past the hard cap it is closed before TLS. Both count the sessions open when a session starts.
import assert from "node:assert/strict";
import http2 from "node:http2";
import tls from "node:tls";
import { afterEach, describe, it } from "node:test";
import { sampleEndpoints } from "./sample-endpoints.js";
import {
  agent,
  call,
  eventually,
  h2Request,
  type Identity,
  readUntilClosed,
  type RunningServer,
  selfSigned,
  startServer,
  tlsConnect,
} from "./tls-fixture.js";
import { SERVER_MODES } from "./tls-fixture.js";

const BUSY = {
  error: {
    code: "SessionCapExhausted",
    message: "Service is currently busy and unable to serve new connections",
  },
};

for (const mode of SERVER_MODES) {
  describe(`session caps (${mode})`, () => {
    let node: Identity | undefined;
    let running: RunningServer | undefined;
    const sockets: Array<{ destroy(): void }> = [];

    async function start(soft: number, hard: number): Promise<RunningServer> {
      node ??= await selfSigned("CN=node");
      running = await startServer(
        node,
        sampleEndpoints(),
        {
          maxOpenSessionsSoft: soft,
          maxOpenSessionsHard: hard,
        },
        mode,
      );
      return running;
    }

    afterEach(async () => {
      for (const s of sockets.splice(0)) s.destroy();
      await running?.stop();
      running = undefined;
    });

    it("answers an HTTP/1.1 session opened past the soft cap with 503, then closes it", async () => {
      const r = await start(1, 5);
      const first = agent("HTTP/1.1", r.ca);
      try {
        assert.equal((await call(first, `${r.base}/t/json`)).status, 200);
        const capped = await tlsConnect(r.port, ["http/1.1"]);
        sockets.push(capped);
        const reply = readUntilClosed(capped);
        capped.write("GET /t/json HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
        const text = await reply;
        assert.match(text, /^HTTP\/1\.1 503 /);
        assert.match(text, /\r\nconnection: close\r\n/i);
        assert.deepEqual(JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)), BUSY);
        // The first session is unaffected.
        assert.equal((await call(first, `${r.base}/t/json`)).status, 200);
      } finally {
        await first.close();
      }
    });

    it("answers an HTTP/2 session opened past the soft cap with 503, then closes it", async () => {
      const r = await start(1, 5);
      const first = agent("HTTP/2", r.ca);
      try {
        assert.equal((await call(first, `${r.base}/t/json`)).status, 200);
        const session = http2.connect(r.base, { ca: r.ca });
        session.on("error", () => {});
        sockets.push(session);
        const closed = new Promise((resolve) => session.once("close", resolve));
        const res = await h2Request(session, { ":path": "/t/json" });
        assert.ok("status" in res);
        assert.equal(res.status, 503);
        assert.deepEqual(JSON.parse(res.text), BUSY);
        await closed;
      } finally {
        await first.close();
      }
    });

    it("serves new sessions again once the open ones have closed", async () => {
      const r = await start(1, 5);
      const first = agent("HTTP/1.1", r.ca);
      assert.equal((await call(first, `${r.base}/t/json`)).status, 200);
      const second = agent("HTTP/1.1", r.ca);
      try {
        assert.equal((await call(second, `${r.base}/t/json`)).status, 503);
        await first.close();
        await eventually(() => r.server.openSessions === 0);
        assert.equal((await call(second, `${r.base}/t/json`)).status, 200);
      } finally {
        await second.close();
      }
    });

    it("closes a session opened at the hard cap before the TLS handshake", async () => {
      const r = await start(1, 2);
      sockets.push(await tlsConnect(r.port, ["http/1.1"]));
      sockets.push(await tlsConnect(r.port, ["http/1.1"]));
      await eventually(() => r.server.openSessions === 2);
      const outcome = await new Promise<string>((resolve) => {
        const socket = tls.connect(
          { host: "127.0.0.1", port: r.port, rejectUnauthorized: false },
          () => resolve("handshake completed"),
        );
        sockets.push(socket);
        socket.on("error", () => resolve("refused"));
        socket.on("close", () => resolve("refused"));
      });
      assert.equal(outcome, "refused");
      assert.equal(r.server.openSessions, 2);
    });

    it("counts open sessions and their peak", async () => {
      const r = await start(10, 20);
      const a = await tlsConnect(r.port, ["http/1.1"]);
      const b = await tlsConnect(r.port, ["h2"]);
      sockets.push(a, b);
      await eventually(() => r.server.openSessions === 2);
      a.destroy();
      await eventually(() => r.server.openSessions === 1);
      assert.deepEqual(r.server.stats(), {
        active: 1,
        peak: 2,
        errors: { parsing: 0, requestPayloadTooLarge: 0, requestHeaderTooLarge: 0 },
      });
    });
  });
}
