// RpcServer under bad input and abrupt clients: garbage bytes, parse errors, header limits, resets
// and aborted uploads must never take the server down.
import assert from "node:assert/strict";
import http2 from "node:http2";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { waitFor } from "../helpers/process.js";
import { sampleEndpoints } from "./sample-endpoints.js";
import {
  agent,
  call,
  h2Request,
  readUntilClosed,
  type RunningServer,
  selfSigned,
  startServer,
  tlsConnect,
} from "./tls-fixture.js";
import { SERVER_MODES } from "./tls-fixture.js";

const MAX_HEADER_SIZE = 2048;
const MAX_HEADERS_COUNT = 10;

for (const mode of SERVER_MODES) {
  describe(`RpcServer robustness (${mode})`, () => {
    let running: RunningServer;

    before(async () => {
      running = await startServer(
        await selfSigned("CN=node"),
        sampleEndpoints(),
        {
          maxBodySize: 1024,
          maxHeaderSize: MAX_HEADER_SIZE,
          maxHeadersCount: MAX_HEADERS_COUNT,
        },
        mode,
      );
    });
    after(() => running.stop());

    async function stillServes(): Promise<void> {
      for (const protocol of ["HTTP/1.1", "HTTP/2"] as const) {
        const dispatcher = agent(protocol, running.ca);
        try {
          assert.equal((await call(dispatcher, `${running.base}/t/json`)).status, 200, protocol);
        } finally {
          await dispatcher.close();
        }
      }
    }

    async function rawHttp1(data: string | Buffer): Promise<string> {
      const socket = await tlsConnect(running.port, ["http/1.1"]);
      const reply = readUntilClosed(socket);
      socket.write(data);
      return reply;
    }

    it("answers garbage on an HTTP/1.1 TLS session with a plain-text 400 and closes it", async () => {
      const text = await rawHttp1(Buffer.from("\x00\x01\x02\xff garbage\r\n\r\n", "latin1"));
      assert.match(text, /^HTTP\/1\.1 400 /);
      assert.match(text, /Unable to parse data as a HTTP request/);
      await stillServes();
    });

    it("answers pipelined HTTP/1.1 requests in order, chunked bodies included", async () => {
      const socket = await tlsConnect(running.port, ["http/1.1"]);
      const reply = readUntilClosed(socket);
      socket.write(
        "POST /t/echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc" +
          "POST /t/echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n" +
          "2\r\nde\r\n3;ext\r\nfgh\r\n0\r\n\r\n" +
          "GET /t/json HTTP/1.1\r\nhost: x\r\n\r\n" +
          "GET /t/text HTTP/1.0\r\n\r\n" +
          "GET /t/json HTTP/1.1\r\nhost: x\r\n\r\n",
      );
      const text = await reply;
      // The HTTP/1.0 request ends the connection: the request after it is never answered.
      const statuses = [...text.matchAll(/HTTP\/1\.1 (\d+) /g)].map((m) => m[1]);
      assert.deepEqual(statuses, ["200", "200", "200", "200"]);
      assert.match(text, /x-body-length: 3\r\n[^]*\r\n\r\nabc/);
      assert.match(text, /x-body-length: 5\r\n[^]*\r\n\r\ndefgh/);
      assert.match(text, /connection: close\r\n\r\nh\S+llo$/);
      await stillServes();
    });

    it("answers 413 to a chunked HTTP/1.1 body once it passes the limit, and closes", async () => {
      const text = await rawHttp1(
        "POST /t/echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n" +
          `400\r\n${"a".repeat(1024)}\r\n1\r\nb\r\n0\r\n\r\n`,
      );
      assert.match(text, /^HTTP\/1\.1 413 /);
      assert.match(text, /RequestBodyTooLarge/);
      await stillServes();
    });

    it("answers request smuggling attempts and bare line feeds with 400", async () => {
      for (const [request, code] of [
        [
          "POST /t/echo HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
          "HPE_UNEXPECTED_CONTENT_LENGTH",
        ],
        ["GET /t/json HTTP/1.1\nhost: x\n\n", "HPE_CR_EXPECTED"],
      ]) {
        const text = await rawHttp1(request);
        assert.match(text, /^HTTP\/1\.1 400 /);
        assert.ok(text.includes(code), text);
      }
      await stillServes();
    });

    it("closes an HTTP/2 session that sends garbage instead of the preface", async () => {
      const socket = await tlsConnect(running.port, ["h2"]);
      const closed = readUntilClosed(socket);
      socket.write(Buffer.alloc(200, 0xee));
      await closed;
      await stillServes();
    });

    it("survives garbage that is not TLS at all", async () => {
      await new Promise<void>((resolve) => {
        const socket = net.connect(running.port, "127.0.0.1", () =>
          socket.write(Buffer.alloc(500, 0x16)),
        );
        socket.on("error", () => {});
        socket.on("close", () => resolve());
      });
      await stillServes();
    });

    it("survives clients that vanish mid-handshake or mid-request", async () => {
      const half = net.connect(running.port, "127.0.0.1");
      half.on("error", () => {});
      await new Promise((r) => half.once("connect", r));
      half.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x01]));
      half.resetAndDestroy();
      const partial = await tlsConnect(running.port, ["http/1.1"]);
      partial.write("POST /t/echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nonly part");
      await new Promise((r) => setTimeout(r, 20));
      partial.destroy();
      await stillServes();
    });

    it("survives HTTP/1.1 clients that disconnect while the handler runs", async () => {
      const dispatcher = agent("HTTP/1.1", running.ca);
      try {
        const aborted = call(dispatcher, `${running.base}/t/slow`, {
          signal: AbortSignal.timeout(10),
        });
        await assert.rejects(aborted);
        await new Promise((r) => setTimeout(r, 80));
      } finally {
        await dispatcher.close();
      }
      await stillServes();
    });

    it("survives HTTP/2 streams reset while the handler runs or the body uploads", async () => {
      const session = http2.connect(running.base, { ca: running.ca });
      session.on("error", () => {});
      try {
        const slow = session.request({ ":path": "/t/slow" });
        slow.on("error", () => {});
        slow.end();
        setTimeout(() => slow.close(http2.constants.NGHTTP2_CANCEL), 10);
        const upload = session.request({ ":path": "/t/echo", ":method": "POST" });
        upload.on("error", () => {});
        upload.write("partial");
        setTimeout(() => upload.close(http2.constants.NGHTTP2_CANCEL), 10);
        await new Promise((r) => setTimeout(r, 80));
        const res = await h2Request(session, { ":path": "/t/json" });
        assert.ok("status" in res && res.status === 200);
      } finally {
        session.destroy();
      }
      await stillServes();
    });

    it("never hands a handler a body cut short by a reset or a lost connection", async () => {
      const bodies: string[] = [];
      running.router.setEndpoints("spy", [
        {
          method: "POST",
          path: "/spy",
          handler: (req) => {
            bodies.push(req.body.toString());
            return { status: 200 };
          },
        },
      ]);
      const pause = () => new Promise((r) => setTimeout(r, 30));
      try {
        const sized = await tlsConnect(running.port, ["http/1.1"]);
        sized.write("POST /spy HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\npartial");
        await pause();
        sized.destroy();
        const chunked = await tlsConnect(running.port, ["http/1.1"]);
        chunked.write(
          "POST /spy HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n7\r\npartial\r\n",
        );
        await pause();
        chunked.destroy();
        // HTTP/2: RST_STREAM without END_STREAM, then a whole session lost mid-upload.
        const session = http2.connect(running.base, { ca: running.ca });
        session.on("error", () => {});
        const reset = session.request({ ":path": "/spy", ":method": "POST" });
        reset.on("error", () => {});
        reset.write("partial");
        await pause();
        reset.destroy();
        const lost = http2.connect(running.base, { ca: running.ca });
        lost.on("error", () => {});
        const cut = lost.request({ ":path": "/spy", ":method": "POST" });
        cut.on("error", () => {});
        cut.write("partial");
        await pause();
        lost.destroy();
        await pause();
        assert.deepEqual(bodies, []);
        // A whole body on the surviving session still gets through.
        const whole = await h2Request(
          session,
          { ":path": "/spy", ":method": "POST" },
          Buffer.from("whole"),
        );
        assert.ok("status" in whole && whole.status === 200);
        assert.deepEqual(bodies, ["whole"]);
        session.destroy();
      } finally {
        running.router.setEndpoints("spy", []);
      }
    });

    it("answers HTTP/1.1 headers over the size limit with 431", async () => {
      const text = await rawHttp1(
        `GET /t/json HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(MAX_HEADER_SIZE)}\r\n\r\n`,
      );
      assert.match(text, /^HTTP\/1\.1 431 /);
      const body = JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)) as {
        error: { code: string };
      };
      assert.equal(body.error.code, "RequestHeaderTooLarge");
      await stillServes();
    });

    it("answers more HTTP/1.1 headers than allowed with 431, as CCF words it", async () => {
      const dispatcher = agent("HTTP/1.1", running.ca);
      try {
        const headers: Record<string, string> = {};
        for (let i = 0; i < MAX_HEADERS_COUNT; i++) headers[`x-h${i}`] = "v";
        const res = await call(dispatcher, `${running.base}/t/json`, { headers });
        assert.equal(res.status, 431);
        assert.deepEqual(JSON.parse(res.body.toString()), {
          error: {
            code: "RequestHeaderTooLarge",
            message: `Too many headers (max number allowed: ${MAX_HEADERS_COUNT})`,
          },
        });
      } finally {
        await dispatcher.close();
      }
    });

    it("answers HTTP/2 headers over the limits with 431, from the first request on", async () => {
      const session = http2.connect(running.base, { ca: running.ca });
      session.on("error", () => {});
      try {
        // First on the session: before the client has acknowledged the server's SETTINGS.
        const big = await h2Request(session, {
          ":path": "/t/json",
          "x-big": "a".repeat(MAX_HEADER_SIZE),
        });
        assert.ok("status" in big);
        assert.equal(big.status, 431);
        assert.deepEqual(JSON.parse(big.text), {
          error: {
            code: "RequestHeaderTooLarge",
            message: `Request headers are too large (max size allowed: ${MAX_HEADER_SIZE})`,
          },
        });
        const many: http2.OutgoingHttpHeaders = { ":path": "/t/json" };
        for (let i = 0; i <= MAX_HEADERS_COUNT; i++) many[`x-h${i}`] = "v";
        const tooMany = await h2Request(session, many);
        assert.ok("status" in tooMany);
        assert.equal(tooMany.status, 431);
        assert.match(tooMany.text, /Too many headers \(max number allowed: 10\)/);
        const ok = await h2Request(session, { ":path": "/t/json" });
        assert.ok("status" in ok && ok.status === 200);
      } finally {
        session.destroy();
      }
    });

    it("resets HTTP/2 streams far over the header limits, keeping the session", async () => {
      const session = http2.connect(running.base, { ca: running.ca });
      session.on("error", () => {});
      try {
        assert.ok("status" in (await h2Request(session, { ":path": "/t/json" })));
        const many: http2.OutgoingHttpHeaders = { ":path": "/t/json" };
        for (let i = 0; i <= 3 * MAX_HEADERS_COUNT; i++) many[`x-h${i}`] = "v";
        assert.ok("error" in (await h2Request(session, many)));
        const ok = await h2Request(session, { ":path": "/t/json" });
        assert.ok("status" in ok && ok.status === 200);
      } finally {
        session.destroy();
      }
    });

    it("resets an HTTP/2 upload that goes on far past the body limit after its 413", async () => {
      const session = http2.connect(running.base, { ca: running.ca });
      session.on("error", () => {});
      try {
        const outcome = await new Promise<{ status: number; sent: number }>((resolve) => {
          const stream = session.request({ ":path": "/t/echo", ":method": "POST" });
          let status = 0;
          stream.on("response", (h) => {
            status = Number(h[":status"]);
          });
          stream.on("error", () => {});
          let sent = 0;
          stream.on("close", () => resolve({ status, sent }));
          stream.resume();
          // Several MiB, more than the server drains after refusing (1 MiB at least).
          const pump = (): void => {
            while (sent < 4 * 1024 * 1024 && !stream.destroyed) {
              sent += 16 * 1024;
              if (!stream.write(Buffer.alloc(16 * 1024))) {
                stream.once("drain", pump);
                return;
              }
            }
            if (!stream.destroyed) stream.end();
          };
          pump();
        });
        assert.equal(outcome.status, 413);
        assert.ok(outcome.sent < 4 * 1024 * 1024, `the server read all ${outcome.sent} bytes`);
        const ok = await h2Request(session, { ":path": "/t/json" });
        assert.ok("status" in ok && ok.status === 200);
      } finally {
        session.destroy();
      }
    });

    it("refuses an oversized body announced with Expect: 100-continue without inviting it", async () => {
      const text = await rawHttp1(
        "POST /t/echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5000\r\nexpect: 100-continue\r\n\r\n",
      );
      assert.match(text, /^HTTP\/1\.1 413 /);
      assert.doesNotMatch(text, /100 Continue/);
    });

    it("accepts a body after 100-continue when it fits", async () => {
      const socket = await tlsConnect(running.port, ["http/1.1"]);
      const reply = readUntilClosed(socket);
      socket.write(
        "POST /t/echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
      );
      await new Promise((r) => socket.once("data", r));
      socket.write("hello");
      const text = await reply;
      assert.match(text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
      assert.match(text, /hello$/);
    });

    it("counts parse, body and header errors", async () => {
      // Frontend processes report their counts to the node every 500 ms.
      const errors = await waitFor("the error counts", () => {
        const e = running.server.stats().errors;
        return e.parsing >= 1 && e.requestHeaderTooLarge >= 2 && e.requestPayloadTooLarge >= 1
          ? e
          : undefined;
      });
      assert.ok(errors.parsing >= 1);
    });
  });
}
