import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeValue, Store, Tables } from "../../src/kv/index.js";
import { retirementCandidates, retirementsIn } from "../../src/node/retirement.js";

/** Writes nodes.info records in one transaction; returns its version. */
function writeNodes(store: Store, records: Record<string, Record<string, unknown> | null>): number {
  const tx = store.begin();
  const nodes = tx.map(Tables.NODES);
  for (const [id, info] of Object.entries(records)) {
    if (info === null) nodes.delete(Buffer.from(id));
    else nodes.set(Buffer.from(id), encodeValue(Tables.NODES, info));
  }
  return store.commit(tx).version;
}

describe("retirement bookkeeping", () => {
  it("lists Retired nodes not yet marked retired_committed, once their entry is committed", () => {
    const store = new Store();
    assert.deepEqual(retirementCandidates(store), [], "no nodes.info at all");
    const v1 = writeNodes(store, {
      n1: { status: "Trusted" },
      n2: { status: "Retired" },
      n3: { status: "Retired", retired_committed: true },
      n4: { status: "Pending" },
    });
    const v2 = writeNodes(store, { n1: { status: "Retired" }, n5: { status: "Retired" } });
    const v3 = writeNodes(store, { n5: null });
    const candidates = retirementCandidates(store);
    assert.deepEqual(candidates, [
      { id: "n1", version: v2 },
      { id: "n2", version: v1 },
    ]);
    assert.deepEqual(retirementsIn(candidates, v1 - 1), []);
    assert.deepEqual(retirementsIn(candidates, v1), ["n2"]);
    assert.deepEqual(retirementsIn(candidates, v3), ["n1", "n2"]);
  });

  it("is read again after nodes.info changes: the map's generation says when", () => {
    const store = new Store();
    writeNodes(store, { n1: { status: "Retired" } });
    const state = store.mapState(Tables.NODES);
    const generation = state?.generation;
    writeNodes(store, { n1: { status: "Retired", retired_committed: true } });
    assert.notEqual(store.mapState(Tables.NODES)?.generation, generation);
    assert.deepEqual(retirementCandidates(store), []);
  });
});
