// Frontend processes (worker_threads > 0): the frame format between a node and its frontends, and
// the node's bookkeeping of their sessions. The RpcServer contract itself is run in both modes by
// server.test.ts, session-caps, server-lifecycle and server-robustness; a node with them by
// test/e2e/app.test.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Agent, request } from "undici";
import type { EndpointRequest } from "../../src/endpoints/types.js";
import {
  encodeFrame,
  FRAME_REQUEST,
  FRAME_RESPONSE,
  FrameReader,
  frameWriter,
} from "../../src/rpc/frontend-wire.js";
import { FrontendPool, Router } from "../../src/rpc/index.js";
import { waitFor } from "../helpers/process.js";
import { selfSigned } from "./tls-fixture.js";

describe("frontend frames", () => {
  it("come out whole however the stream is cut, bodies byte for byte", () => {
    const bodies = [Buffer.alloc(0), Buffer.from("héllo"), Buffer.from([0, 255, 10, 13, 0])];
    const stream = Buffer.concat(
      bodies.map((b, i) => encodeFrame(i % 2 ? FRAME_RESPONSE : FRAME_REQUEST, { i, s: "ü" }, b)),
    );
    for (const step of [1, 2, 3, 7, stream.length]) {
      const reader = new FrameReader();
      const frames = [];
      for (let at = 0; at < stream.length; at += step) {
        frames.push(...reader.push(stream.subarray(at, at + step)));
      }
      assert.equal(frames.length, bodies.length, `step ${step}`);
      frames.forEach((f, i) => {
        assert.equal(f.kind, i % 2 ? FRAME_RESPONSE : FRAME_REQUEST);
        assert.deepEqual(f.head, { i, s: "ü" });
        assert.deepEqual(f.body, bodies[i]);
      });
    }
  });

  it("refuse a malformed stream", () => {
    const bad = Buffer.alloc(8);
    bad.writeUInt32LE(2, 0);
    assert.throws(() => new FrameReader().push(bad), /bad frame length/);
    const head = encodeFrame(FRAME_REQUEST, { a: 1 });
    head.writeUInt32LE(1000, 5);
    assert.throws(() => new FrameReader().push(head), /bad frame head length/);
  });

  it("written in one microtask checkpoint leave in one write, in order, before the next turn", async () => {
    const writes: Buffer[] = [];
    let closed = false;
    const write = frameWriter(
      (b) => writes.push(b),
      () => closed,
    );
    const frames = [0, 1, 2].map((i) => encodeFrame(FRAME_RESPONSE, { i }));
    // another request's continuation, already queued when the first frame is written
    queueMicrotask(() => write(frames[1]));
    write(frames[0]);
    assert.equal(writes.length, 0);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(writes, [Buffer.concat([frames[0], frames[1]])]);
    write(frames[2]);
    await Promise.resolve();
    assert.equal(writes.length, 2, "written before the next turn");
    assert.deepEqual(writes[1], frames[2]);
    closed = true;
    write(frames[0]);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(writes.length, 2, "nothing is written once closed");
  });
});

describe("FrontendPool", () => {
  it("keeps a session per connection and interface, and forgets it when the connection closes", async () => {
    const node = await selfSigned("CN=node");
    const client = await selfSigned("CN=user0");
    const pool = await FrontendPool.start(2);
    try {
      const seen: Array<{ iface: string; session: number; cert: boolean }> = [];
      const servers = ["a", "b"].map((name) => {
        const router = new Router();
        router.setEndpoints("t", [
          {
            method: "GET",
            path: "/s",
            handler: (req: EndpointRequest) => {
              seen.push({
                iface: name,
                session: req.session?.id ?? -1,
                cert: req.clientCert !== undefined,
              });
              return { status: 200, body: { session: req.session?.id } };
            },
          },
        ]);
        return pool.serve(name, {
          key: node.key.privateKeyPem,
          cert: node.cert,
          router,
          maxOpenSessionsSoft: 10,
          maxOpenSessionsHard: 20,
          maxBodySize: 1024,
        });
      });
      const ports = await Promise.all(
        servers.map(async (s) => (await s.listen("127.0.0.1", 0)).port),
      );
      // Two connections per interface, two requests on each.
      const agents = [0, 1, 2, 3].map(
        (i) =>
          new Agent({
            connections: 1,
            connect: {
              ca: node.cert,
              ...(i % 2 === 0 ? { cert: client.cert, key: client.key.privateKeyPem } : {}),
            },
          }),
      );
      for (const [i, agent] of agents.entries()) {
        for (let r = 0; r < 2; r++) {
          const res = await request(`https://127.0.0.1:${ports[i < 2 ? 0 : 1]}/s`, {
            dispatcher: agent,
          });
          assert.equal(res.statusCode, 200);
          await res.body.dump();
        }
      }
      assert.equal(seen.length, 8);
      // Each connection is one session, the same for both its requests, and distinct from every
      // other connection's (whatever frontend and interface it went through).
      const byConnection = [0, 2, 4, 6].map((at) => seen[at]?.session);
      for (const [k, at] of [0, 2, 4, 6].entries())
        assert.equal(seen[at + 1]?.session, byConnection[k]);
      assert.equal(new Set(byConnection).size, 4);
      // The certificate of a session, sent once, is there on its later requests too.
      assert.deepEqual(
        seen.map((s) => s.cert),
        [true, true, false, false, true, true, false, false],
      );
      assert.equal(pool.sessions, 4);
      await Promise.all(agents.map((a) => a.close()));
      await waitFor("the sessions to be forgotten", () => (pool.sessions === 0 ? true : undefined));
      await waitFor("the connections to be counted closed", () =>
        servers.every((s) => s.openSessions === 0) ? true : undefined,
      );
    } finally {
      await pool.stop();
    }
  });

  it("refuses bad options when the interface is served, as RpcServer does", async () => {
    const node = await selfSigned("CN=node");
    const pool = await FrontendPool.start(1);
    try {
      assert.throws(
        () =>
          pool.serve("bad", {
            key: node.key.privateKeyPem,
            cert: node.cert,
            router: new Router(),
            maxOpenSessionsSoft: 1,
            maxOpenSessionsHard: 0,
            maxBodySize: 1024,
          }),
        /maxOpenSessionsHard must be an integer >= 1/,
      );
    } finally {
      await pool.stop();
    }
  });
});
