import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ConflictError } from "../../src/errors.js";
import { Store } from "../../src/kv/index.js";

const b = (s: string) => Buffer.from(s);
const str = (v: Uint8Array | undefined) =>
  v === undefined ? undefined : Buffer.from(v).toString();

describe("kv store", () => {
  it("creates a map by its first write and reads it back after commit", () => {
    const store = new Store();
    const tx = store.begin();
    tx.map("public:m").set(b("k"), b("v"));
    assert.equal(store.commit(tx).version, 1);
    const r = store.begin();
    assert.equal(str(r.map("public:m").get(b("k"))), "v");
    assert.equal(r.map("public:m").size, 1);
    assert.equal(r.map("other").get(b("k")), undefined);
  });

  it("sees its own writes and removals before commit, and nobody else does", () => {
    const store = new Store();
    const t0 = store.begin();
    t0.map("m").set(b("a"), b("1"));
    store.commit(t0);
    const tx = store.begin();
    const other = store.begin();
    tx.map("m").set(b("b"), b("2"));
    assert.ok(tx.map("m").delete(b("a")));
    assert.equal(tx.map("m").get(b("a")), undefined);
    assert.equal(str(tx.map("m").get(b("b"))), "2");
    assert.equal(str(other.map("m").get(b("a"))), "1");
    assert.equal(other.map("m").get(b("b")), undefined);
  });

  it("fails a transaction whose read key was written by a later commit", () => {
    const store = new Store();
    const seed = store.begin();
    seed.map("m").set(b("x"), b("0"));
    store.commit(seed);
    const t1 = store.begin();
    const t2 = store.begin();
    t1.map("m").get(b("x"));
    t1.map("m").set(b("y"), b("1"));
    t2.map("m").set(b("x"), b("2"));
    store.commit(t2);
    assert.throws(() => store.commit(t1), ConflictError);
    assert.equal(store.get("m", "y"), undefined, "a conflicting transaction writes nothing");
  });

  it("lets blind writes and disjoint reads commit concurrently", () => {
    const store = new Store();
    const t1 = store.begin();
    const t2 = store.begin();
    t1.map("m").get(b("a"));
    t1.map("m").set(b("a"), b("1"));
    t2.map("m").get(b("b"));
    t2.map("m").set(b("b"), b("2"));
    store.commit(t1);
    store.commit(t2);
    assert.equal(store.version, 2);
  });

  it("conflicts when a map it iterated or sized changed", () => {
    const store = new Store();
    const t1 = store.begin();
    const t2 = store.begin();
    assert.equal(t1.map("m").size, 0);
    t1.map("n").set(b("z"), b("1"));
    t2.map("m").set(b("new"), b("1"));
    store.commit(t2);
    assert.throws(() => store.commit(t1), ConflictError);
  });

  it("refuses to read a version newer than its own (consistent snapshot)", () => {
    const store = new Store();
    const t1 = store.begin();
    const t2 = store.begin();
    t2.map("m").set(b("k"), b("v"));
    store.commit(t2);
    assert.throws(() => t1.map("m").get(b("k")), ConflictError);
  });

  it("reports the version of the previous write of a key", () => {
    const store = new Store();
    for (let i = 0; i < 3; i++) {
      const tx = store.begin();
      tx.map("m").set(b(`k${i % 2}`), b("v"));
      store.commit(tx);
    }
    const tx = store.begin();
    assert.equal(tx.map("m").getVersionOfPreviousWrite(b("k0")), 3);
    assert.equal(tx.map("m").getVersionOfPreviousWrite(b("k1")), 2);
    assert.equal(tx.map("m").getVersionOfPreviousWrite(b("nope")), undefined);
  });

  it("clears a map by removing every key", () => {
    const store = new Store();
    const t0 = store.begin();
    for (const k of ["a", "b", "c"]) t0.map("m").set(b(k), b(k));
    store.commit(t0);
    const tx = store.begin();
    tx.map("m").clear();
    assert.equal(tx.map("m").size, 0);
    const { writeSet } = store.commit(tx);
    assert.deepEqual([...(writeSet.get("m")?.values() ?? [])], [null, null, null]);
    assert.equal(store.begin().map("m").size, 0);
  });

  it("rolls back uncommitted versions and keeps compacted ones", () => {
    const store = new Store();
    for (let i = 1; i <= 5; i++) {
      const tx = store.begin();
      tx.map("m").set(b("k"), b(String(i)));
      if (i === 4) tx.map("m").delete(b("gone"));
      tx.map("m").set(b(`only${i}`), b("x"));
      store.commit(tx);
    }
    store.compact(2);
    store.rollback(3);
    assert.equal(store.version, 3);
    const tx = store.begin();
    assert.equal(str(tx.map("m").get(b("k"))), "3");
    assert.equal(tx.map("m").get(b("only4")), undefined);
    assert.equal(tx.map("m").size, 4);
    assert.throws(() => store.rollback(1), ConflictError);
  });

  it("scans ranges in key byte order (beyond CCF)", () => {
    const store = new Store();
    const t0 = store.begin();
    for (const k of ["b", "a", "d", "c", "\u00ff", "\u0001"]) t0.map("m").set(b(k), b(k));
    store.commit(t0);
    const tx = store.begin();
    tx.map("m").set(b("bb"), b("bb"));
    tx.map("m").delete(b("c"));
    const keys = tx
      .map("m")
      .range(b("b"), b("d"))
      .map(([k]) => Buffer.from(k).toString("latin1"));
    assert.deepEqual(keys, ["b", "bb"]);
  });

  it("iterates in byte order and matches a model under random operations", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            key: fc.uint8Array({ minLength: 0, maxLength: 3 }),
            value: fc.option(fc.uint8Array({ maxLength: 4 })),
            commitAfter: fc.boolean(),
          }),
          { maxLength: 60 },
        ),
        (ops) => {
          const store = new Store();
          const model = new Map<string, string>();
          let pending = new Map<string, string | null>();
          let tx = store.begin();
          for (const op of ops) {
            const k = Buffer.from(op.key).toString("hex");
            if (op.value === null) {
              tx.map("m").delete(op.key);
              pending.set(k, null);
            } else {
              tx.map("m").set(op.key, op.value);
              pending.set(k, Buffer.from(op.value).toString("hex"));
            }
            if (op.commitAfter) {
              store.commit(tx);
              for (const [pk, pv] of pending) {
                if (pv === null) model.delete(pk);
                else model.set(pk, pv);
              }
              pending = new Map();
              tx = store.begin();
            }
          }
          const seen: Array<[string, string]> = [];
          store
            .begin()
            .map("m")
            .forEach((v, key) => {
              seen.push([Buffer.from(key).toString("hex"), Buffer.from(v).toString("hex")]);
            });
          const expected = [...model.entries()].sort((x, y) =>
            Buffer.compare(Buffer.from(x[0], "hex"), Buffer.from(y[0], "hex")),
          );
          assert.deepEqual(seen, expected);
        },
      ),
    );
  });

  it("serialisable: concurrent increments either commit or conflict, never lose an update", () => {
    fc.assert(
      fc.property(fc.array(fc.nat(4), { minLength: 1, maxLength: 40 }), (schedule) => {
        const store = new Store();
        const open: ReturnType<Store["begin"]>[] = [];
        let committedIncrements = 0;
        for (const step of schedule) {
          if (step < 2 || open.length === 0) {
            const tx = store.begin();
            const cur = tx.map("c").get(b("n"));
            tx.map("c").set(b("n"), b(String(Number(str(cur) ?? "0") + 1)));
            open.push(tx);
          } else {
            const tx = open.splice(step % open.length, 1)[0];
            if (tx === undefined) continue;
            try {
              store.commit(tx);
              committedIncrements++;
            } catch (e) {
              assert.ok(e instanceof ConflictError);
            }
          }
        }
        assert.equal(Number(str(store.begin().map("c").get(b("n"))) ?? "0"), committedIncrements);
      }),
    );
  });

  it("moves a map's generation on every change to its entries, and only then", () => {
    const store = new Store();
    const write = (k: string, v: string | null) => {
      const tx = store.begin();
      if (v === null) tx.map("m").delete(b(k));
      else tx.map("m").set(b(k), b(v));
      return store.commit(tx).version;
    };
    write("a", "1");
    const state = store.mapState("m");
    assert.ok(state !== undefined);
    const seen = new Set([state.generation]);
    const moved = (what: string) => {
      assert.ok(!seen.has(state.generation), `${what} moves the generation`);
      seen.add(state.generation);
    };
    write("b", "2");
    moved("a write");
    const before = state.generation;
    store.begin().map("m").get(b("a"));
    store.get("m", "a");
    assert.equal(state.generation, before, "reads leave it");
    // A rollback and a different write at the same version: the map's version cannot tell them
    // apart, its generation can.
    const v = write("c", "3");
    moved("a write");
    store.rollback(v - 1);
    moved("a rollback");
    assert.equal(write("c", "other"), v);
    moved("the rewrite");
    write("a", null);
    moved("a removal");
    store.compact(store.version);
    moved("dropping the tombstone at compaction");
    store.compact(store.version);
    assert.equal(state.generation, [...seen].pop(), "compacting nothing leaves it");
  });
});
