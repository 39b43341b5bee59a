import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import type { TLSSocket } from "node:tls";
import { BenchClient } from "../../bench/http-client.js";
import { createSelfSignedCertificate, EcKeyPair } from "../../src/crypto/index.js";

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

/** An HTTP server on a free port; counts the connections it accepted. */
async function serve(handler: Handler): Promise<{ base: string; connections: () => number }> {
  let connections = 0;
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => {
      body += d.toString();
    });
    req.on("end", () => handler(req, body, res));
  });
  server.on("connection", () => connections++);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => connections,
  };
}

describe("BenchClient", () => {
  it("sends method, path, headers and body, and reads status, headers and a sized body", async () => {
    const { base } = await serve((req, body, res) => {
      res.setHeader("x-seen", `${req.method} ${req.url} ${String(req.headers["x-tag"])}`);
      res.setHeader("X-Twice", ["a", "b"]);
      res.writeHead(201, { "content-length": Buffer.byteLength(body) + 1 }).end(`${body}!`);
    });
    const client = new BenchClient(base);
    const r = await client.send({
      method: "PUT",
      path: "/p/q?x=1",
      body: "düp",
      headers: { "x-tag": "t1" },
    });
    assert.equal(r.status, 201);
    assert.equal(r.headers["x-seen"], "PUT /p/q?x=1 t1");
    assert.equal(r.headers["x-twice"], "a, b");
    assert.equal(r.body.toString(), "düp!");
    await client.close();
  });

  it("reads chunked bodies, empty bodies and 204s, keeping one connection", async () => {
    const { base, connections } = await serve((req, _body, res) => {
      if (req.url === "/chunked") {
        res.writeHead(200);
        res.write("first ");
        setImmediate(() => res.end("second"));
      } else if (req.url === "/none") {
        res.writeHead(204).end();
      } else {
        res.writeHead(200, { "content-length": 0 }).end();
      }
    });
    const client = new BenchClient(base);
    for (let i = 0; i < 3; i++) {
      const chunked = await client.send({ method: "GET", path: "/chunked" });
      assert.equal(chunked.body.toString(), "first second");
      const none = await client.send({ method: "POST", path: "/none" });
      assert.equal(none.status, 204);
      assert.equal(none.body.length, 0);
      const empty = await client.send({ method: "GET", path: "/empty" });
      assert.equal(empty.status, 200);
      assert.equal(empty.body.length, 0);
    }
    assert.equal(connections(), 1);
    await client.close();
  });

  it("pipelines requests on one connection and matches each answer to its request", async () => {
    const { base, connections } = await serve((req, _body, res) => {
      const text = `answer to ${req.url}`;
      // answers come out of the handler in a different order; node's server sends them in order
      setTimeout(() => res.end(text), req.url === "/0" ? 20 : 0);
    });
    const client = new BenchClient(base, { connections: 1, pipelining: 4 });
    const replies = await Promise.all(
      Array.from({ length: 10 }, (_, i) => client.send({ method: "GET", path: `/${i}` })),
    );
    assert.deepEqual(
      replies.map((r) => r.body.toString()),
      Array.from({ length: 10 }, (_, i) => `answer to /${i}`),
    );
    assert.equal(connections(), 1);
    await client.close();
  });

  it("spreads requests over its connections, at most `connections` of them", async () => {
    const { base, connections } = await serve((_req, _body, res) => {
      setImmediate(() => res.end("ok"));
    });
    const client = new BenchClient(base, { connections: 3 });
    const replies = await Promise.all(
      Array.from({ length: 12 }, () => client.send({ method: "GET", path: "/" })),
    );
    assert.ok(replies.every((r) => r.body.toString() === "ok"));
    assert.equal(connections(), 3);
    await client.close();
  });

  it("rejects the requests of a connection the server drops, then goes on with a new one", async () => {
    const { base, connections } = await serve((req, _body, res) => {
      if (req.url === "/drop") req.socket.destroy();
      else if (req.url === "/close") res.writeHead(200, { connection: "close" }).end("bye");
      else res.end("fine");
    });
    const client = new BenchClient(base);
    await assert.rejects(client.send({ method: "GET", path: "/drop" }));
    assert.equal((await client.send({ method: "GET", path: "/" })).body.toString(), "fine");
    assert.equal((await client.send({ method: "GET", path: "/close" })).body.toString(), "bye");
    assert.equal((await client.send({ method: "GET", path: "/" })).body.toString(), "fine");
    assert.equal(connections(), 3);
    await client.close();
    await assert.rejects(client.send({ method: "GET", path: "/" }), /closed/);
  });

  it("fails a request whose answer is not HTTP, without hanging", async () => {
    const { createServer: createTcpServer } = await import("node:net");
    const server = createTcpServer((s) => {
      s.on("data", () => s.write("SSH-2.0-nope\r\n\r\n"));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const client = new BenchClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    await assert.rejects(client.send({ method: "GET", path: "/" }), /not an HTTP\/1.1 response/);
    await client.close();
    server.close();
  });

  it("presents its client certificate over TLS and checks the server's", async () => {
    const key = EcKeyPair.generate("secp384r1");
    const cert = await createSelfSignedCertificate(key, {
      subjectName: "CN=bench",
      validFrom: new Date(Date.now() - 3_600_000),
      validityDays: 1,
      sans: [{ type: "ip", value: "127.0.0.1" }],
    });
    const server = createHttpsServer(
      { key: key.privateKeyPem, cert, ca: cert, requestCert: true, rejectUnauthorized: false },
      (req, res) => {
        const socket = req.socket as TLSSocket;
        res.end(`${socket.authorized} ${String(socket.getPeerCertificate().subject?.CN)}`);
      },
    );
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const client = new BenchClient(base, { ca: cert, cert, key: key.privateKeyPem });
    assert.equal((await client.send({ method: "GET", path: "/" })).body.toString(), "true bench");
    await client.close();

    const untrusting = new BenchClient(base, { cert, key: key.privateKeyPem });
    await assert.rejects(untrusting.send({ method: "GET", path: "/" }), /self.signed|certificate/i);
    await untrusting.close();

    const insecure = new BenchClient(base, { insecure: true });
    assert.equal(
      (await insecure.send({ method: "GET", path: "/" })).body.toString(),
      "false undefined",
    );
    await insecure.close();
  });
});
