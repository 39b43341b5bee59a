// The /node/* endpoints that describe the node and the service: attestations, the self-signed
// certificate, the previous service identity, the service configuration, the startup config,
// memory, JS runtime limits, indexing strategies, and HEAD /node/primary.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NodeContext } from "../../src/endpoints/context.js";
import { nodeEndpoints } from "../../src/endpoints/node.js";
import { encodeValue, SINGLETON_KEY, Store, Tables } from "../../src/kv/index.js";
import { inject, Router } from "../../src/rpc/index.js";

function context(store: Store, primary: string | undefined, self = "n0"): NodeContext {
  return {
    nodeId: self,
    version: { ccf_version: "test", quickjs_version: "", unsafe: false },
    store,
    state: () => "PartOfNetwork",
    primaryId: () => primary,
    currentView: () => 2,
    lastTxId: () => ({ view: 2, seqno: 5 }),
    commitTxId: () => ({ view: 2, seqno: 5 }),
    lastSignedSeqno: () => 5,
    startupSeqno: () => 0,
    viewHistory: () => [],
    txStatus: () => "Unknown",
    receipt: () => undefined,
    quote: () => ({
      node_id: self,
      format: "Insecure_Virtual",
      raw: "cmF3",
      endorsements: "",
      measurement: "m",
    }),
    sessionMetrics: () => ({ active: 0, peak: 0, interfaces: {} }),
    isReady: () => true,
    selfSignedCertificate: () => "-----BEGIN CERTIFICATE-----\nself\n-----END CERTIFICATE-----\n",
    startupConfig: () => ({ command: { type: "Start" }, ledger: { chunk_size: "5MB" } }),
  };
}

function storeWith(tables: Record<string, Array<[Buffer, Buffer]>>): Store {
  const store = new Store();
  const tx = store.begin();
  for (const [table, rows] of Object.entries(tables)) {
    for (const [k, v] of rows) tx.map(table).set(k, v);
  }
  store.commit(tx);
  return store;
}

async function get(ctx: NodeContext, path: string, method = "GET") {
  const router = new Router();
  router.setEndpoints("node", nodeEndpoints(ctx));
  const r = await inject(router, { method, path });
  return { ...r, json: () => JSON.parse(r.body.toString()) as Record<string, unknown> };
}

const nodeInfo = (address: string) =>
  Buffer.from(
    JSON.stringify({
      status: "Trusted",
      rpc_interfaces: {
        primary_rpc_interface: { bind_address: address, published_address: address },
      },
      quote_info: { format: "Insecure_Virtual", quote: "cmF3", endorsements: "" },
    }),
  );

describe("/node/* information endpoints", () => {
  const store = storeWith({
    [Tables.CONFIGURATION]: [
      [
        SINGLETON_KEY,
        Buffer.from(
          JSON.stringify({ recovery_threshold: 1, reconfiguration_type: "OneTransaction" }),
        ),
      ],
    ],
    [Tables.NODES]: [
      [Buffer.from("n0"), nodeInfo("127.0.0.1:1000")],
      [Buffer.from("n1"), nodeInfo("10.0.0.2:2000")],
    ],
  });

  it("serves attestations as CCF names them", async () => {
    const ctx = context(store, "n0");
    const self = await get(ctx, "/node/attestations/self");
    assert.equal(self.status, 200);
    assert.deepEqual(self.json(), ctx.quote());
    const all = (await get(ctx, "/node/attestations")).json().attestations as Array<{
      node_id: string;
    }>;
    assert.deepEqual(
      all.map((a) => a.node_id),
      ["n0", "n1"],
    );
  });

  it("serves the self-signed certificate, the service configuration and the startup config", async () => {
    const ctx = context(store, "n0");
    assert.deepEqual((await get(ctx, "/node/self_signed_certificate")).json(), {
      self_signed_certificate: "-----BEGIN CERTIFICATE-----\nself\n-----END CERTIFICATE-----\n",
    });
    assert.deepEqual((await get(ctx, "/node/service/configuration")).json(), {
      recovery_threshold: 1,
      reconfiguration_type: "OneTransaction",
    });
    assert.deepEqual((await get(ctx, "/node/config")).json(), {
      command: { type: "Start" },
      ledger: { chunk_size: "5MB" },
    });
  });

  it("answers 404 for the previous identity of a service that recovered none, else the PEM", async () => {
    const none = await get(context(store, "n0"), "/node/service/previous_identity");
    assert.equal(none.status, 404);
    assert.equal((none.json().error as { code: string }).code, "ResourceNotFound");
    const pem = "-----BEGIN CERTIFICATE-----\nold\n-----END CERTIFICATE-----\n";
    const recovered = storeWith({
      [Tables.PREVIOUS_SERVICE_IDENTITY]: [
        [SINGLETON_KEY, encodeValue(Tables.PREVIOUS_SERVICE_IDENTITY, pem)],
      ],
    });
    const r = await get(context(recovered, "n0"), "/node/service/previous_identity");
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { previous_service_identity: pem });
  });

  it("reports memory, JS runtime limits (CCF's defaults unless set) and no indexing strategies", async () => {
    const ctx = context(store, "n0");
    const memory = (await get(ctx, "/node/memory")).json() as Record<string, number>;
    assert.ok(memory.current_allocated_heap_size > 0);
    assert.ok(memory.peak_allocated_heap_size >= memory.current_allocated_heap_size);
    assert.ok(memory.max_total_heap_size >= memory.peak_allocated_heap_size);
    const js = (await get(ctx, "/node/js_metrics")).json();
    assert.equal(js.bytecode_used, false);
    assert.equal(typeof js.max_heap_size, "number");
    const limited = storeWith({
      [Tables.JS_RUNTIME_OPTIONS]: [
        [SINGLETON_KEY, Buffer.from(JSON.stringify({ max_heap_bytes: 1234, max_stack_bytes: 99 }))],
      ],
    });
    const set = (await get(context(limited, "n0"), "/node/js_metrics")).json();
    assert.equal(set.max_heap_size, 1234);
    assert.equal(set.max_stack_size, 99);
    assert.deepEqual(JSON.parse((await get(ctx, "/node/index/strategies")).body.toString()), []);
  });

  it("HEAD /node/primary: 200 on the primary, 308 to the primary from a backup, 404 if unknown", async () => {
    assert.equal((await get(context(store, "n0"), "/node/primary", "HEAD")).status, 200);
    const backup = await get(context(store, "n1", "n0"), "/node/primary", "HEAD");
    assert.equal(backup.status, 308);
    assert.equal(backup.headers.location, "https://10.0.0.2:2000/node/primary");
    assert.equal((await get(context(store, undefined), "/node/primary", "HEAD")).status, 404);
  });
});
