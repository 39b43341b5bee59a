import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MapsWatch, MapState, Store } from "../../src/kv/index.js";

const b = (s: string) => Buffer.from(s);

function write(store: Store, map: string, key: string, value: string): number {
  const tx = store.begin();
  tx.map(map).set(b(key), b(value));
  return store.commit(tx).version;
}

describe("MapsWatch", () => {
  it("says changed on the first look, then only after a watched map changes", () => {
    const store = new Store();
    const watch = new MapsWatch(store, ["a", "b"]);
    assert.equal(watch.changed(), true, "first look");
    assert.equal(watch.changed(), false);
    write(store, "a", "k", "1");
    assert.equal(watch.changed(), true, "map a created by a write");
    assert.equal(watch.changed(), false);
    write(store, "other", "k", "1");
    store.begin().map("a").get(b("k"));
    assert.equal(watch.changed(), false, "another map's write, a read");
    const v = write(store, "b", "k", "1");
    assert.equal(watch.changed(), true, "map b written");
    store.rollback(v - 1);
    assert.equal(watch.changed(), true, "the write rolled back");
    write(store, "b", "k", "2");
    assert.equal(watch.changed(), true, "a different write at the same version");
    watch.invalidate();
    assert.equal(watch.changed(), true, "invalidated");
    assert.equal(watch.changed(), false);
  });

  it("sees a map replaced by replayed maps", () => {
    const store = new Store();
    const watch = new MapsWatch(store, ["m"]);
    watch.changed();
    const replayed = new MapState();
    replayed.set("k", b("v"), 0);
    store.addReplayedMaps(new Map([["m", replayed]]));
    assert.equal(watch.changed(), true);
  });
});
