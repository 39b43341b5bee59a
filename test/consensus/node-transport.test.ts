// A node's transport: its main-thread TlsTransport and the worker thread's heartbeat lane, on real
// sockets. That the lane keeps a held-up primary's backups quiet is tested end to end by
// test/e2e/multinode.test.ts (an app handler holding the primary for three election timeouts).

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { type NodeId, NodeTransport } from "../../src/consensus/index.js";
import {
  createEndorsedCertificate,
  createServiceCertificate,
  EcKeyPair,
  nodeIdFromPublicKey,
} from "../../src/crypto/index.js";

const validFrom = new Date(Date.now() - 3_600_000);
const serviceKey = EcKeyPair.generate("secp384r1");
const serviceCertPem = await createServiceCertificate(serviceKey, { validFrom, validityDays: 2 });

async function nodeIdentity(): Promise<{ id: NodeId; certPem: string; keyPem: string }> {
  const key = EcKeyPair.generate("secp384r1");
  const certPem = await createEndorsedCertificate({
    subjectPublicKey: key.publicKey,
    subjectName: "CN=CCF Node",
    issuerKey: serviceKey,
    issuerCertPem: serviceCertPem,
    validFrom,
    validityDays: 2,
  });
  return { id: nodeIdFromPublicKey(key.publicKey), certPem, keyPem: key.privateKeyPem };
}

const running: NodeTransport[] = [];
after(async () => {
  for (const t of running) await t.close();
});

async function start(who: { certPem: string; keyPem: string }): Promise<NodeTransport> {
  const t = await NodeTransport.start({
    bindAddress: "127.0.0.1:0",
    identity: { certPem: who.certPem, keyPem: who.keyPem, serviceCertPem },
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

describe("a node's transport", () => {
  it("delivers what is sent on the main thread and what is sent while held up, from the same node", async () => {
    const [ia, ib] = await Promise.all([nodeIdentity(), nodeIdentity()]);
    const a = await start(ia);
    const b = await start(ib);
    assert.match(a.address, /^127\.0\.0\.1:\d+$/);
    assert.equal(a.nodeId, ia.id);
    a.setPeers(new Map([[ib.id, b.address]]));
    b.setPeers(new Map([[ia.id, a.address]]));
    const atB: Array<[NodeId, string]> = [];
    b.onMessage((from, payload) => atB.push([from, new TextDecoder().decode(payload)]));
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
    const [ia, ib] = await Promise.all([nodeIdentity(), nodeIdentity()]);
    const a = await start(ia);
    const b = await start(ib);
    a.setPeers(new Map([[ib.id, b.address]]));
    const atB: string[] = [];
    b.onMessage((_from, payload) => atB.push(new TextDecoder().decode(payload)));
    a.sendWhileHeldUp(ib.id, text("before"));
    await until(() => atB.length === 1, "the message before closing");
    await a.close();
    a.send(ib.id, text("after"));
    a.sendWhileHeldUp(ib.id, text("after"));
    await until(() => b.stats().connections === 0, "b seeing a's lanes close");
    assert.deepEqual(atB, ["before"]);
  });
});
