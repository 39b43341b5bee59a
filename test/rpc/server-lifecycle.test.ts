// RpcServer's life: listening on a free port, switching certificate for new sessions, and closing
// with clients still connected.
import assert from "node:assert/strict";
import http2 from "node:http2";
import { describe, it } from "node:test";
import { certificateDer } from "../../src/crypto/index.js";
import { Router, RpcServer } from "../../src/rpc/index.js";
import { sampleEndpoints, slowGate } from "./sample-endpoints.js";
import {
  agent,
  call,
  selfSigned,
  serviceEndorsed,
  startServer,
  tlsConnect,
} from "./tls-fixture.js";
import { SERVER_MODES } from "./tls-fixture.js";

for (const mode of SERVER_MODES) {
  describe(`RpcServer lifecycle (${mode})`, () => {
    it("listens on the port it reports when asked for port 0", async () => {
      const running = await startServer(await selfSigned("CN=node"), sampleEndpoints(), {}, mode);
      try {
        assert.ok(running.port > 0);
        const dispatcher = agent("HTTP/1.1", running.ca);
        assert.equal((await call(dispatcher, `${running.base}/t/json`)).status, 200);
        await dispatcher.close();
      } finally {
        await running.stop();
      }
    });

    it("rejects listen on a port already taken", async () => {
      const identity = await selfSigned("CN=node");
      const running = await startServer(identity, [], {}, mode);
      const other = new RpcServer({
        key: identity.key.privateKeyPem,
        cert: identity.cert,
        router: new Router(),
        maxOpenSessionsSoft: 1,
        maxOpenSessionsHard: 1,
        maxBodySize: 1,
      });
      try {
        await assert.rejects(other.listen("127.0.0.1", running.port), { code: "EADDRINUSE" });
      } finally {
        await running.stop();
        await other.close();
      }
    });

    it("refuses nonsensical limits", async () => {
      const { key, cert } = await selfSigned("CN=x");
      const base = {
        key: key.privateKeyPem,
        cert,
        router: new Router(),
        maxOpenSessionsSoft: 1,
        maxOpenSessionsHard: 1,
        maxBodySize: 1,
      };
      assert.throws(() => new RpcServer({ ...base, maxOpenSessionsHard: 0 }), {
        code: "InvalidRpcServerOptions",
      });
      assert.throws(() => new RpcServer({ ...base, maxBodySize: -1 }), {
        code: "InvalidRpcServerOptions",
      });
    });

    it("serves a new certificate to sessions opened after setCertificate", async () => {
      const selfCert = await selfSigned("CN=node");
      const { service, node } = await serviceEndorsed();
      const running = await startServer(selfCert, sampleEndpoints(), {}, mode);
      try {
        const before = await tlsConnect(running.port, ["http/1.1"]);
        assert.deepEqual(before.getPeerCertificate().raw, certificateDer(selfCert.cert));
        // Trusting only the service identity fails until the node serves its endorsed certificate.
        const trustsService = agent("HTTP/2", service.cert);
        await assert.rejects(call(trustsService, `${running.base}/t/json`));
        await trustsService.close();

        running.server.setCertificate(node.key.privateKeyPem, node.cert);
        const afterSwitch = await tlsConnect(running.port, ["h2"]);
        assert.deepEqual(afterSwitch.getPeerCertificate().raw, certificateDer(node.cert));
        for (const protocol of ["HTTP/1.1", "HTTP/2"] as const) {
          const dispatcher = agent(protocol, service.cert);
          assert.equal((await call(dispatcher, `${running.base}/t/json`)).status, 200);
          await dispatcher.close();
        }
        // A session opened before the switch keeps the certificate it began with.
        assert.deepEqual(before.getPeerCertificate().raw, certificateDer(selfCert.cert));
        before.destroy();
        afterSwitch.destroy();
      } finally {
        await running.stop();
      }
    });

    it("closes with idle HTTP/1.1, HTTP/2 and bare TLS clients connected", async () => {
      const running = await startServer(await selfSigned("CN=node"), sampleEndpoints(), {}, mode);
      const h1 = agent("HTTP/1.1", running.ca);
      const h2 = agent("HTTP/2", running.ca);
      assert.equal((await call(h1, `${running.base}/t/json`)).status, 200);
      assert.equal((await call(h2, `${running.base}/t/json`)).status, 200);
      const session = http2.connect(running.base, { ca: running.ca });
      session.on("error", () => {});
      await new Promise((r) => session.once("connect", r));
      const bare = await tlsConnect(running.port, ["http/1.1"]);
      bare.on("error", () => {});
      assert.equal(running.server.openSessions, 4);
      await running.stop();
      assert.equal(running.server.openSessions, 0);
      await Promise.all([h1.close(), h2.close()]);
      session.destroy();
      bare.destroy();
    });

    it("answers requests in flight before closing their sessions", async () => {
      for (const protocol of ["HTTP/1.1", "HTTP/2"] as const) {
        const gate = slowGate();
        const running = await startServer(
          await selfSigned("CN=node"),
          sampleEndpoints(gate),
          {},
          mode,
        );
        const dispatcher = agent(protocol, running.ca);
        assert.equal((await call(dispatcher, `${running.base}/t/json`)).status, 200);
        try {
          const slow = call(dispatcher, `${running.base}/t/slow`);
          await gate.arrived;
          const closed = running.stop();
          gate.release();
          const res = await slow;
          assert.equal(res.status, 200, protocol);
          assert.equal(res.body.toString(), "slow");
          await closed;
        } finally {
          await dispatcher.close();
          await running.stop();
        }
      }
    });

    it("does not wait for an HTTP/2 upload its client abandoned", async () => {
      const running = await startServer(await selfSigned("CN=node"), sampleEndpoints(), {}, mode);
      const session = http2.connect(running.base, { ca: running.ca });
      session.on("error", () => {});
      const upload = session.request({ ":path": "/t/echo", ":method": "POST" });
      upload.on("error", () => {});
      upload.write("partial");
      await new Promise((r) => setTimeout(r, 20));
      // destroy() resets the stream without ending the body (close() would end it first).
      upload.destroy();
      await new Promise((r) => setTimeout(r, 20));
      await running.stop();
      assert.equal(running.server.openSessions, 0);
      session.destroy();
    });

    it("speaks only HTTP/1.1 when appProtocol is HTTP1, even to clients offering HTTP/2", async () => {
      const running = await startServer(
        await selfSigned("CN=node"),
        sampleEndpoints(),
        {
          appProtocol: "HTTP1",
        },
        mode,
      );
      const dispatcher = agent("HTTP/2", running.ca);
      try {
        const res = await call(dispatcher, `${running.base}/t/whoami`);
        assert.equal(
          (JSON.parse(res.body.toString()) as { httpVersion: string }).httpVersion,
          "1.1",
        );
      } finally {
        await dispatcher.close();
        await running.stop();
      }
    });

    it("speaks only HTTP/2 when appProtocol is HTTP2", async () => {
      const running = await startServer(
        await selfSigned("CN=node"),
        sampleEndpoints(),
        {
          appProtocol: "HTTP2",
        },
        mode,
      );
      const h1 = agent("HTTP/1.1", running.ca);
      const h2 = agent("HTTP/2", running.ca);
      try {
        await assert.rejects(call(h1, `${running.base}/t/json`));
        const res = await call(h2, `${running.base}/t/whoami`);
        assert.equal(
          (JSON.parse(res.body.toString()) as { httpVersion: string }).httpVersion,
          "2.0",
        );
      } finally {
        await Promise.all([h1.close(), h2.close()]);
        await running.stop();
      }
    });

    it("can be closed twice and before it listens", async () => {
      const { key, cert } = await selfSigned("CN=x");
      const server = new RpcServer({
        key: key.privateKeyPem,
        cert,
        router: new Router(),
        maxOpenSessionsSoft: 1,
        maxOpenSessionsHard: 1,
        maxBodySize: 1,
      });
      await server.close();
      await server.close();
    });
  });
}
