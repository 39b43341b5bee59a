// One contract, two implementations: the in-memory transport the simulator uses must behave as the
// TLS transport nodes use, for everything consensus relies on (per-pair order, authenticated
// senders, bounded loss-tolerant queues, peer set changes, close).

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import {
  MemoryHub,
  type NodeId,
  TlsTransport,
  type Transport,
  type TransportBounds,
} from "../../src/consensus/index.js";
import {
  createEndorsedCertificate,
  createServiceCertificate,
  EcKeyPair,
  nodeIdFromPublicKey,
} from "../../src/crypto/index.js";

/** N nodes on one network; `until` drives delivery until a condition holds or fails the test. */
interface Harness {
  ids: NodeId[];
  at(i: number): Transport;
  addressOf(i: number): string;
  /** Every node lists every other node as a peer. */
  meshAll(): void;
  until(condition: () => boolean, what: string): Promise<void>;
  /** Stops node i (its address stays reserved for `restart`). */
  stop(i: number): Promise<void>;
  /** Starts node i again, same identity and address, with the given peers. */
  restart(i: number): Promise<void>;
  close(): Promise<void>;
}

type MakeHarness = (n: number, bounds?: TransportBounds) => Promise<Harness>;

function peersOf(h: Harness, self: number, others: number[]): Map<NodeId, string> {
  return new Map(others.filter((o) => o !== self).map((o) => [h.ids[o], h.addressOf(o)] as const));
}

const memoryHarness: MakeHarness = (n, bounds) => {
  const hub = new MemoryHub();
  const ids = Array.from({ length: n }, (_, i) => `node${i}`);
  const transports = ids.map((id) => hub.attach(id, `mem:${id}`, bounds));
  const h: Harness = {
    ids,
    at: (i) => transports[i],
    addressOf: (i) => `mem:${ids[i]}`,
    meshAll() {
      const all = ids.map((_, i) => i);
      transports.forEach((t, i) => t.setPeers(peersOf(h, i, all)));
    },
    until(condition, what) {
      // Deterministic: flush until the condition holds; a flush that moves nothing never will.
      while (!condition()) {
        if (hub.flush() === 0 && !condition()) assert.fail(`no progress towards: ${what}`);
      }
      return Promise.resolve();
    },
    async stop(i) {
      await transports[i]?.close();
    },
    async restart(i) {
      transports[i] = hub.attach(ids[i], `mem:${ids[i]}`, bounds);
      await Promise.resolve();
    },
    async close() {
      for (const t of transports) await t.close();
    },
  };
  return Promise.resolve(h);
};

const service = await (async () => {
  const key = EcKeyPair.generate("secp384r1");
  const certPem = await createServiceCertificate(key, {
    validFrom: new Date(Date.now() - 3_600_000),
    validityDays: 2,
  });
  return { key, certPem };
})();

async function endorsedIdentity(): Promise<{ certPem: string; keyPem: string }> {
  const key = EcKeyPair.generate("secp384r1");
  const certPem = await createEndorsedCertificate({
    subjectPublicKey: key.publicKey,
    subjectName: "CN=CCF Node",
    issuerKey: service.key,
    issuerCertPem: service.certPem,
    validFrom: new Date(Date.now() - 3_600_000),
    validityDays: 2,
  });
  return { certPem, keyPem: key.privateKeyPem };
}

const tlsHarness: MakeHarness = async (n, bounds) => {
  const identities = await Promise.all(Array.from({ length: n }, () => endorsedIdentity()));
  const ids = identities.map((x) => nodeIdFromPublicKey(x.certPem));
  const start = (i: number, bindAddress: string) =>
    TlsTransport.start({
      bindAddress,
      identity: {
        ...identities[i],
        serviceCertPem: service.certPem,
      },
      minBackoffMs: 10,
      maxBackoffMs: 100,
      ...bounds,
    });
  const transports = await Promise.all(identities.map((_, i) => start(i, "127.0.0.1:0")));
  const addresses = transports.map((t) => t.address);
  const h: Harness = {
    ids,
    at: (i) => transports[i],
    addressOf: (i) => addresses[i],
    meshAll() {
      const all = ids.map((_, i) => i);
      transports.forEach((t, i) => t.setPeers(peersOf(h, i, all)));
    },
    async until(condition, what) {
      const deadline = Date.now() + 10_000;
      while (!condition()) {
        if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    async stop(i) {
      await transports[i]?.close();
    },
    async restart(i) {
      transports[i] = await start(i, addresses[i]);
    },
    async close() {
      for (const t of transports) await t.close();
    },
  };
  return h;
};

const implementations: Array<[string, MakeHarness]> = [
  ["MemoryTransport", memoryHarness],
  ["TlsTransport", tlsHarness],
];

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

/** Every message each node received, as [from, text]. */
function record(h: Harness, n: number): Array<Array<[NodeId, string]>> {
  const inbox = Array.from({ length: n }, () => [] as Array<[NodeId, string]>);
  for (let i = 0; i < n; i++) {
    h.at(i).onMessage((from, payload) => inbox[i]?.push([from, str(payload)]));
  }
  return inbox;
}

for (const [name, make] of implementations) {
  describe(`node-to-node transport contract: ${name}`, () => {
    const open: Harness[] = [];
    const harness = async (n: number, bounds?: TransportBounds) => {
      const h = await make(n, bounds);
      open.push(h);
      return h;
    };
    after(async () => {
      for (const h of open) await h.close();
    });

    it("delivers every pair's messages in send order, with the sender's node id", async () => {
      const h = await harness(3);
      h.meshAll();
      const inbox = record(h, 3);
      for (let k = 0; k < 50; k++) {
        for (let s = 0; s < 3; s++) {
          for (let r = 0; r < 3; r++) if (r !== s) h.at(s).send(h.ids[r], text(`${s}:${k}`));
        }
      }
      await h.until(() => inbox.every((m) => m.length === 100), "100 messages at each node");
      for (let r = 0; r < 3; r++) {
        for (let s = 0; s < 3; s++) {
          if (s === r) continue;
          const fromS = (inbox[r] ?? []).filter(([from]) => from === h.ids[s]).map(([, m]) => m);
          assert.deepEqual(
            fromS,
            Array.from({ length: 50 }, (_, k) => `${s}:${k}`),
          );
        }
      }
      assert.equal(h.at(0).stats().received, 100);
      assert.equal(h.at(0).stats().sent, 100);
      assert.equal(h.at(0).stats().dropped, 0);
    });

    it("drops and counts a message to an unknown peer without throwing", async () => {
      const h = await harness(2);
      h.meshAll();
      const inbox = record(h, 2);
      h.at(0).send("not-a-peer", text("lost"));
      assert.equal(h.at(0).stats().dropped, 1);
      h.at(0).send(h.ids[1], text("kept"));
      await h.until(() => inbox[1]?.length === 1, "the message to the known peer");
      assert.deepEqual(inbox[1], [[h.ids[0], "kept"]]);
    });

    it("drops and counts a message larger than the frame limit", async () => {
      const h = await harness(2, { maxFrameBytes: 64 });
      h.meshAll();
      const inbox = record(h, 2);
      h.at(0).send(h.ids[1], new Uint8Array(65));
      assert.equal(h.at(0).stats().dropped, 1);
      h.at(0).send(h.ids[1], text("small"));
      await h.until(() => inbox[1]?.length === 1, "the small message");
      assert.deepEqual(inbox[1], [[h.ids[0], "small"]]);
    });

    it("replaces the peer set: a removed node can neither send nor be sent to, until re-added", async () => {
      const h = await harness(3);
      h.meshAll();
      const inbox = record(h, 3);
      h.at(2).send(h.ids[0], text("before"));
      await h.until(() => inbox[0]?.length === 1, "the message before removal");

      h.at(0).setPeers(peersOf(h, 0, [1]));
      const droppedBefore = h.at(0).stats().dropped;
      h.at(0).send(h.ids[2], text("to removed"));
      assert.equal(h.at(0).stats().dropped, droppedBefore + 1);
      assert.deepEqual(Object.keys(h.at(0).stats().peers), [h.ids[1]]);
      h.at(2).send(h.ids[0], text("from removed"));
      h.at(1).send(h.ids[0], text("sentinel"));
      await h.until(
        () => inbox[0]?.some(([, m]) => m === "sentinel") === true,
        "the message from a remaining peer",
      );
      assert.ok(!inbox[0]?.some(([, m]) => m === "from removed"));
      assert.equal(inbox[2]?.length, 0);

      h.at(0).setPeers(peersOf(h, 0, [1, 2]));
      h.at(2).send(h.ids[0], text("back"));
      h.at(0).send(h.ids[2], text("welcome"));
      await h.until(
        () =>
          inbox[0]?.some(([, m]) => m === "back") === true &&
          inbox[2]?.some(([, m]) => m === "welcome") === true,
        "messages both ways after re-adding",
      );
    });

    it("keeps a bounded queue for an unreachable peer, dropping the oldest, and delivers the rest once it is back", async () => {
      const h = await harness(2, { maxQueuedMessages: 4 });
      h.meshAll();
      record(h, 2);
      h.at(0).send(h.ids[1], text("warm-up"));
      await h.until(() => h.at(1).stats().received === 1, "the warm-up message");

      await h.stop(1);
      await h.until(
        () => h.at(0).stats().peers[h.ids[1]]?.connected === false,
        "the sender noticing the peer is gone",
      );
      for (let k = 0; k < 10; k++) h.at(0).send(h.ids[1], text(`m${k}`));
      const peer = h.at(0).stats().peers[h.ids[1]];
      assert.equal(peer?.queuedMessages, 4);
      assert.equal(peer?.queuedBytes, 8);
      assert.equal(h.at(0).stats().dropped, 6);

      await h.restart(1);
      const got: string[] = [];
      h.at(1).onMessage((_, payload) => got.push(str(payload)));
      h.at(1).setPeers(peersOf(h, 1, [0]));
      await h.until(() => got.length === 4, "the queued messages after the restart");
      assert.deepEqual(got, ["m6", "m7", "m8", "m9"]);
    });

    it("after close, sends are counted drops and nothing more is delivered", async () => {
      const h = await harness(2);
      h.meshAll();
      const inbox = record(h, 2);
      h.at(0).send(h.ids[1], text("one"));
      await h.until(() => inbox[1]?.length === 1, "the first message");
      await h.at(0).close();
      await h.at(0).close();
      h.at(0).send(h.ids[1], text("after close"));
      assert.equal(h.at(0).stats().dropped, 1);
      assert.equal(h.at(0).stats().connections, 0);
      h.at(1).send(h.ids[0], text("to closed"));
      assert.deepEqual(inbox[0], []);
    });
  });
}
