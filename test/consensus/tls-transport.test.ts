// The TLS transport on real sockets (127.0.0.1, port 0): who may connect, what a bad frame costs,
// reconnection, the certificate switch of a joining node, and a node's two lanes (NodeTransport;
// that the heartbeat lane keeps a held-up primary's backups quiet is tested end to end by
// test/e2e/multinode.test.ts). The shared behaviour is in
// transport.case.test.ts; the frame decoder is fuzzed here because it parses peer bytes.

import assert from "node:assert/strict";
import * as tls from "node:tls";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import {
  encodeFrame,
  encodeFrameHeader,
  FRAME_MAGIC,
  FrameDecoder,
  FrameError,
  type NodeId,
  NodeTransport,
  parseAddress,
  TlsTransport,
  type TlsTransportOptions,
  TransportConfigError,
} from "../../src/consensus/index.js";
import {
  createEndorsedCertificate,
  createSelfSignedCertificate,
  createServiceCertificate,
  EcKeyPair,
  nodeIdFromPublicKey,
} from "../../src/crypto/index.js";

const validFrom = new Date(Date.now() - 3_600_000);

async function makeService(): Promise<{ key: EcKeyPair; certPem: string }> {
  const key = EcKeyPair.generate("secp384r1");
  return { key, certPem: await createServiceCertificate(key, { validFrom, validityDays: 2 }) };
}

const service = await makeService();

interface Identity {
  id: NodeId;
  key: EcKeyPair;
  certPem: string;
  keyPem: string;
}

async function endorsed(by = service, key = EcKeyPair.generate("secp384r1")): Promise<Identity> {
  const certPem = await createEndorsedCertificate({
    subjectPublicKey: key.publicKey,
    subjectName: "CN=CCF Node",
    issuerKey: by.key,
    issuerCertPem: by.certPem,
    validFrom,
    validityDays: 2,
  });
  return { id: nodeIdFromPublicKey(key.publicKey), key, certPem, keyPem: key.privateKeyPem };
}

async function selfSigned(key = EcKeyPair.generate("secp384r1")): Promise<Identity> {
  const certPem = await createSelfSignedCertificate(key, {
    subjectName: "CN=CCF Node",
    validFrom,
    validityDays: 2,
  });
  return { id: nodeIdFromPublicKey(key.publicKey), key, certPem, keyPem: key.privateKeyPem };
}

const running: Array<TlsTransport | NodeTransport> = [];
after(async () => {
  for (const t of running) await t.close();
});

async function start(
  who: Identity,
  extra: Partial<TlsTransportOptions> = {},
  serviceCertPem = service.certPem,
): Promise<TlsTransport> {
  const t = await TlsTransport.start({
    bindAddress: "127.0.0.1:0",
    identity: { certPem: who.certPem, keyPem: who.keyPem, serviceCertPem },
    minBackoffMs: 10,
    maxBackoffMs: 100,
    ...extra,
  });
  running.push(t);
  return t;
}

async function startNodeTransport(who: Identity): Promise<NodeTransport> {
  const t = await NodeTransport.start({
    bindAddress: "127.0.0.1:0",
    identity: { certPem: who.certPem, keyPem: who.keyPem, serviceCertPem: service.certPem },
    minBackoffMs: 10,
    maxBackoffMs: 100,
  });
  running.push(t);
  return t;
}

async function until(condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

function inbox(t: TlsTransport): Array<[NodeId, string]> {
  const got: Array<[NodeId, string]> = [];
  t.onMessage((from, payload) => got.push([from, str(payload)]));
  return got;
}

/** A raw TLS client presenting `who`'s certificate, for writing arbitrary bytes. */
async function rawClient(who: Identity, address: string): Promise<tls.TLSSocket> {
  const { host, port } = parseAddress(address);
  const socket = tls.connect({
    host,
    port,
    cert: who.certPem,
    key: who.keyPem,
    ca: service.certPem,
    checkServerIdentity: () => undefined,
  });
  socket.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", resolve);
    socket.once("error", reject);
  });
  return socket;
}

function closed(socket: tls.TLSSocket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.closed) resolve();
    else socket.once("close", () => resolve());
  });
}

describe("TLS node-to-node transport", () => {
  it("delivers both ways between endorsed nodes and exposes the bound address", async () => {
    const [ia, ib] = await Promise.all([endorsed(), endorsed()]);
    const a = await start(ia);
    const b = await start(ib);
    assert.match(a.address, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(parseAddress(a.address).port, 0);
    assert.equal(a.nodeId, ia.id);
    a.setPeers(new Map([[ib.id, b.address]]));
    b.setPeers(new Map([[ia.id, a.address]]));
    const atA = inbox(a);
    const atB = inbox(b);
    a.send(ib.id, text("ping"));
    b.send(ia.id, text("pong"));
    await until(() => atA.length === 1 && atB.length === 1, "one message each way");
    assert.deepEqual(atB, [[ia.id, "ping"]]);
    assert.deepEqual(atA, [[ib.id, "pong"]]);
    await until(() => a.stats().connections === 2, "one connection each way at a");
  });

  it("refuses a node whose certificate is not endorsed by the service, even with a peer's key", async () => {
    const ia = await endorsed();
    const otherService = await makeService();
    const a = await start(ia);
    const atA = inbox(a);
    // Same key pair as a configured peer, so only the endorsement is wrong.
    const key = EcKeyPair.generate("secp384r1");
    const rogues = [await selfSigned(key), await endorsed(otherService, key)];
    a.setPeers(new Map([[rogues[0]?.id, "127.0.0.1:1"]]));
    for (const [i, rogue] of rogues.entries()) {
      const r = await start(rogue, {}, i === 0 ? service.certPem : otherService.certPem);
      r.setPeers(new Map([[ia.id, a.address]]));
      r.send(ia.id, text("let me in"));
      await until(() => a.stats().refusedConnections > i, `refusal of rogue ${i}`);
      await r.close();
    }
    assert.deepEqual(atA, []);
    assert.equal(a.stats().received, 0);
  });

  it("hears an endorsed node that is not (yet) a configured peer, as CCF", async () => {
    // A node catching up has not replicated the records of nodes that joined later: it must still
    // hear from them (the primary may be one). Their certificate is endorsed by the service.
    const [ia, ic] = await Promise.all([endorsed(), endorsed()]);
    const a = await start(ia);
    const c = await start(ic);
    const atA = inbox(a);
    c.setPeers(new Map([[ia.id, a.address]]));
    c.send(ia.id, text("from a newer node"));
    await until(() => atA.length === 1, "the delivery");
    assert.deepEqual(atA, [[ic.id, "from a newer node"]]);
    assert.equal(a.stats().refusedConnections, 0);
  });

  it("does not send to a node at a peer's address that presents another node's certificate", async () => {
    const [ia, ib, ic] = await Promise.all([endorsed(), endorsed(), endorsed()]);
    const a = await start(ia);
    const c = await start(ic);
    const atC = inbox(c);
    c.setPeers(new Map([[ia.id, a.address]]));
    // a believes b lives at c's address.
    a.setPeers(new Map([[ib.id, c.address]]));
    a.send(ib.id, text("for b only"));
    await until(() => a.stats().refusedConnections >= 1, "a refusing c's certificate");
    assert.equal(a.stats().peers[ib.id]?.connected, false);
    assert.equal(a.stats().peers[ib.id]?.queuedMessages, 1);
    assert.deepEqual(atC, []);
  });

  for (const [what, bytes] of [
    ["a malformed frame", Buffer.from([0x00, 0x00, 0x00, 0x00, 0x01, 0x41])],
    ["an oversize frame", encodeFrameHeader(1025)],
  ] as const) {
    it(`closes only the connection that sent ${what}, and keeps serving`, async () => {
      const [ia, ib, ic] = await Promise.all([endorsed(), endorsed(), endorsed()]);
      const a = await start(ia, { maxFrameBytes: 1024 });
      const b = await start(ib);
      a.setPeers(
        new Map([
          [ib.id, b.address],
          [ic.id, "127.0.0.1:1"],
        ]),
      );
      b.setPeers(new Map([[ia.id, a.address]]));
      const atA = inbox(a);
      b.send(ia.id, text("before"));
      await until(() => atA.length === 1, "b's first message");

      const raw = await rawClient(ic, a.address);
      // A good frame ahead of the bad one in the same write is still delivered.
      raw.write(Buffer.concat([encodeFrame(text("good")), bytes]));
      await closed(raw);
      assert.equal(a.stats().malformedFrames, 1);
      assert.deepEqual(atA[1], [ic.id, "good"]);

      b.send(ia.id, text("after"));
      await until(() => atA.length === 3, "b's message after the bad frame");
      assert.deepEqual(atA[2], [ib.id, "after"]);
      assert.equal(b.stats().peers[ia.id]?.connected, true);
    });
  }

  it("reconnects to a peer that restarts on the same address", async () => {
    const [ia, ib] = await Promise.all([endorsed(), endorsed()]);
    const a = await start(ia);
    let b = await start(ib);
    const bAddress = b.address;
    a.setPeers(new Map([[ib.id, bAddress]]));
    b.setPeers(new Map([[ia.id, a.address]]));
    let atB = inbox(b);
    a.send(ib.id, text("first"));
    await until(() => atB.length === 1, "the first message");

    await b.close();
    await until(() => a.stats().peers[ib.id]?.connected === false, "a noticing b is down");
    a.send(ib.id, text("while down"));

    b = await start(ib, { bindAddress: bAddress });
    b.setPeers(new Map([[ia.id, a.address]]));
    atB = inbox(b);
    await until(() => atB.length === 1, "the message queued while b was down");
    assert.deepEqual(atB, [[ia.id, "while down"]]);
    assert.equal(a.stats().peers[ib.id]?.connected, true);
  });

  it("drops the oldest messages when the queue for an unreachable peer is full", async () => {
    const [ia, ib] = await Promise.all([endorsed(), endorsed()]);
    const a = await start(ia, { maxQueuedMessages: 100, maxQueuedBytes: 1000, maxFrameBytes: 500 });
    a.setPeers(new Map([[ib.id, "127.0.0.1:1"]]));
    for (let k = 0; k < 10; k++) a.send(ib.id, new Uint8Array(300).fill(k));
    // 1000 bytes hold three 300-byte messages.
    assert.deepEqual(a.stats().peers[ib.id], {
      queuedMessages: 3,
      queuedBytes: 900,
      connected: false,
    });
    assert.equal(a.stats().dropped, 7);

    const b = await start(ib);
    b.setPeers(new Map([[ia.id, a.address]]));
    const got: number[] = [];
    b.onMessage((_, payload) => got.push(payload[0]));
    a.setPeers(new Map([[ib.id, b.address]]));
    await until(() => got.length === 3, "the three newest messages");
    assert.deepEqual(got, [7, 8, 9]);
  });

  it("switches certificate at run time: a joining node is refused until it presents its endorsed one", async () => {
    const ia = await endorsed();
    const key = EcKeyPair.generate("secp384r1");
    const [joinerSelf, joinerEndorsed] = [await selfSigned(key), await endorsed(service, key)];
    assert.equal(joinerSelf.id, joinerEndorsed.id);
    const a = await start(ia);
    const j = await start(joinerSelf);
    a.setPeers(new Map([[joinerSelf.id, j.address]]));
    j.setPeers(new Map([[ia.id, a.address]]));
    const atA = inbox(a);
    const atJ = inbox(j);
    j.send(ia.id, text("hello from j"));
    a.send(joinerSelf.id, text("hello from a"));
    await until(() => a.stats().refusedConnections >= 1, "a refusing the self-signed certificate");
    assert.equal(a.stats().peers[joinerSelf.id]?.connected, false);

    j.setIdentity({ certPem: joinerEndorsed.certPem, keyPem: joinerEndorsed.keyPem });
    await until(
      () => atA.some(([, m]) => m === "hello from j") && atJ.some(([, m]) => m === "hello from a"),
      "messages both ways once j is endorsed",
    );
    assert.equal(j.nodeId, joinerEndorsed.id);

    // The new certificate did not relax the listener's checks.
    const rogue = await start(await selfSigned());
    rogue.setPeers(new Map([[ia.id, j.address]]));
    const refusedBefore = j.stats().refusedConnections;
    await until(
      () => j.stats().refusedConnections > refusedBefore,
      "j refusing a self-signed node",
    );
    await rogue.close();
  });

  it("keeps serving when the message handler throws", async () => {
    const [ia, ib] = await Promise.all([endorsed(), endorsed()]);
    const a = await start(ia);
    const b = await start(ib);
    a.setPeers(new Map([[ib.id, b.address]]));
    b.setPeers(new Map([[ia.id, a.address]]));
    const got: string[] = [];
    a.onMessage((_, payload) => {
      got.push(str(payload));
      if (got.length === 1) throw new Error("handler bug");
    });
    b.send(ia.id, text("one"));
    b.send(ia.id, text("two"));
    await until(() => got.length === 2, "both messages");
    assert.deepEqual(got, ["one", "two"]);
  });

  it("keeps a node's main and heartbeat lanes side by side: neither connection displaces the other", async () => {
    const [ia, ib] = await Promise.all([endorsed(), endorsed()]);
    const b = await start(ib);
    const main = await start(ia);
    const heartbeat = await start(ia, { lane: "heartbeat", listen: false });
    assert.equal(heartbeat.address, "", "a transport that only dials has no address");
    const atB = inbox(b);
    for (const t of [main, heartbeat]) t.setPeers(new Map([[ib.id, b.address]]));
    main.send(ib.id, text("main 1"));
    heartbeat.send(ib.id, text("heartbeat 1"));
    await until(() => atB.length === 2, "one message on each lane");
    await until(() => b.stats().connections === 2, "two inbound connections from the same node");
    // A second connection on one lane would have closed the other's: both still deliver.
    main.send(ib.id, text("main 2"));
    heartbeat.send(ib.id, text("heartbeat 2"));
    await until(() => atB.length === 4, "a second message on each lane");
    assert.deepEqual(atB.map(([from, m]) => `${from === ia.id ? "a" : "?"}:${m}`).sort(), [
      "a:heartbeat 1",
      "a:heartbeat 2",
      "a:main 1",
      "a:main 2",
    ]);
    assert.equal(main.stats().peers[ib.id]?.connected, true);
    assert.equal(heartbeat.stats().peers[ib.id]?.connected, true);
    assert.equal(b.stats().connections, 2);
  });

  it("rejects unusable configuration with a typed error", async () => {
    const ia = await endorsed();
    await assert.rejects(
      () => start(ia, { maxFrameBytes: 100, maxQueuedBytes: 10 }),
      TransportConfigError,
    );
    await assert.rejects(() => start(ia, { bindAddress: "nowhere" }), TransportConfigError);
    await assert.rejects(() => start({ ...ia, keyPem: "not a key" }), TransportConfigError);
  });
});

describe("node-to-node frames", () => {
  it("reassemble from any split of the stream", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 50 }),
        (payloads, cuts) => {
          const stream = Buffer.concat(payloads.map((p) => encodeFrame(p)));
          const decoder = new FrameDecoder(300);
          const out: Uint8Array[] = [];
          let at = 0;
          for (let i = 0; at < stream.length; i++) {
            const n = cuts[i % cuts.length];
            const { frames, error } = decoder.push(stream.subarray(at, at + n));
            assert.equal(error, undefined);
            out.push(...frames);
            at += n;
          }
          assert.deepEqual(
            out.map((f) => Buffer.from(f)),
            payloads.map((p) => Buffer.from(p)),
          );
        },
      ),
    );
  });

  it("never throw on arbitrary bytes: they decode or fail with a FrameError, and stay failed", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 10 }), (chunks) => {
        const decoder = new FrameDecoder(64);
        let failed: FrameError | undefined;
        for (const chunk of chunks) {
          const { frames, error } = decoder.push(chunk);
          for (const f of frames) assert.ok(f.length <= 64);
          if (failed !== undefined) assert.equal(error, failed);
          if (error !== undefined) {
            assert.ok(error instanceof FrameError);
            failed = error;
          }
        }
      }),
    );
  });

  it("refuse a bad magic byte and a declared length over the limit before reading the body", () => {
    const bad = new FrameDecoder(10).push(Buffer.from([FRAME_MAGIC ^ 1, 0, 0, 0, 0]));
    assert.equal(bad.error?.code, "MalformedFrame");
    const big = new FrameDecoder(10).push(encodeFrameHeader(11));
    assert.equal(big.error?.code, "FrameTooLarge");
    const empty = new FrameDecoder(10).push(encodeFrame(new Uint8Array(0)));
    assert.deepEqual(
      empty.frames,
      [new Uint8Array(0)].map((x) => Buffer.from(x)),
    );
  });

  it("parse host:port and [v6]:port addresses, and refuse others", () => {
    assert.deepEqual(parseAddress("127.0.0.1:0"), { host: "127.0.0.1", port: 0 });
    assert.deepEqual(parseAddress("[::1]:8080"), { host: "::1", port: 8080 });
    assert.deepEqual(parseAddress("node-1.example:443"), { host: "node-1.example", port: 443 });
    for (const bad of ["", "host", ":80", "host:65536", "::1:80", "host:-1"]) {
      assert.throws(() => parseAddress(bad), TransportConfigError, bad);
    }
  });
});

describe("a node's transport: the main thread's TlsTransport and the worker's heartbeat lane", () => {
  it("delivers what is sent on the main thread and what is sent while held up, from the same node", async () => {
    const [ia, ib] = await Promise.all([endorsed(), endorsed()]);
    const a = await startNodeTransport(ia);
    const b = await startNodeTransport(ib);
    assert.match(a.address, /^127\.0\.0\.1:\d+$/);
    assert.equal(a.nodeId, ia.id);
    a.setPeers(new Map([[ib.id, b.address]]));
    b.setPeers(new Map([[ia.id, a.address]]));
    const atB: Array<[NodeId, string]> = [];
    b.onMessage((from, payload) => atB.push([from, str(payload)]));
    a.send(ib.id, text("append entries"));
    a.sendWhileHeldUp(ib.id, text("heartbeat"));
    await until(() => atB.length === 2, "both messages");
    assert.deepEqual(
      [...atB].sort((x, y) => x[1].localeCompare(y[1])),
      [
        [ia.id, "append entries"],
        [ia.id, "heartbeat"],
      ],
    );
    // b holds a's two lanes and its own connection to a; a's worker reports every 500 ms.
    await until(() => b.stats().connections === 3, "both of a's lanes connected to b");
    await until(() => a.stats().sent === 2, "a's counters include its heartbeat lane");
  });

  it("closes both lanes: nothing is delivered afterwards", async () => {
    const [ia, ib] = await Promise.all([endorsed(), endorsed()]);
    const a = await startNodeTransport(ia);
    const b = await startNodeTransport(ib);
    a.setPeers(new Map([[ib.id, b.address]]));
    const atB: string[] = [];
    b.onMessage((_from, payload) => atB.push(str(payload)));
    a.sendWhileHeldUp(ib.id, text("before"));
    await until(() => atB.length === 1, "the message before closing");
    await a.close();
    a.send(ib.id, text("after"));
    a.sendWhileHeldUp(ib.id, text("after"));
    await until(() => b.stats().connections === 0, "b seeing a's lanes close");
    assert.deepEqual(atB, ["before"]);
  });
});
