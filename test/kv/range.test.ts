// Ordered range scans (beyond CCF): key byte order, bounds, own writes, and range read sets, so that
// a write into a scanned range after the read version (an insert: a phantom, an update, a removal)
// conflicts and a write outside it does not. Checked against a model with fast-check.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ConflictError } from "../../src/errors.js";
import { Store, type Tx } from "../../src/kv/index.js";

const b = (s: string) => Buffer.from(s, "latin1");
const str = (v: Uint8Array) => Buffer.from(v).toString("latin1");
const keysOf = (entries: Array<[Uint8Array, Uint8Array]>) => entries.map(([k]) => str(k));

/** A store whose map "m" holds the given keys (value = key), committed in one transaction. */
function storeWith(...keys: string[]): Store {
  const store = new Store();
  const tx = store.begin();
  for (const k of keys) tx.map("m").set(b(k), b(k));
  store.commit(tx);
  return store;
}

/** Commits one transaction writing `key` (or removing it, with null) in map "m". */
function write(store: Store, key: string, value: string | null = "w"): void {
  const tx = store.begin();
  if (value === null) tx.map("m").delete(b(key));
  else tx.map("m").set(b(key), b(value));
  store.commit(tx);
}

/** Commits `tx` after it writes a marker elsewhere; true if it committed, false on a conflict. */
function commits(store: Store, tx: Tx): boolean {
  tx.map("out").set(b("marker"), b("1"));
  try {
    store.commit(tx);
    return true;
  } catch (e) {
    if (e instanceof ConflictError) return false;
    throw e;
  }
}

describe("kv range scans", () => {
  it("orders keys as unsigned bytes, a prefix first, with from inclusive and to exclusive", () => {
    const store = storeWith("\u0080", "\u007f", "a", "ab", "", "b", "\u00ff", "\u0000");
    const tx = store.begin();
    assert.deepEqual(keysOf(tx.map("m").range()), [
      "",
      "\u0000",
      "a",
      "ab",
      "b",
      "\u007f",
      "\u0080",
      "\u00ff",
    ]);
    assert.deepEqual(keysOf(tx.map("m").range(b("a"), b("b"))), ["a", "ab"]);
    assert.deepEqual(keysOf(tx.map("m").range(b("ab"))), ["ab", "b", "\u007f", "\u0080", "\u00ff"]);
    assert.deepEqual(keysOf(tx.map("m").range(undefined, b("\u0080"))), [
      "",
      "\u0000",
      "a",
      "ab",
      "b",
      "\u007f",
    ]);
    assert.deepEqual(
      tx
        .map("m")
        .range(b("a"), b("ab\u0000"))
        .map(([k, v]) => [str(k), str(v)]),
      [
        ["a", "a"],
        ["ab", "ab"],
      ],
    );
  });

  it("treats from >= to as empty, and reads nothing for it: any write still commits", () => {
    const store = storeWith("a", "b", "c");
    const tx = store.begin();
    assert.deepEqual(tx.map("m").range(b("b"), b("b")), []);
    assert.deepEqual(tx.map("m").range(b("c"), b("a")), []);
    assert.deepEqual(tx.map("m").range(b("a"), b("c"), { limit: 0 }), []);
    write(store, "b", "changed");
    write(store, "bb");
    assert.equal(commits(store, tx), true);
  });

  it("merges the transaction's own writes and removals in order, forwards and in reverse", () => {
    const store = storeWith("a", "c", "e", "g");
    const tx = store.begin();
    const m = tx.map("m");
    m.set(b("d"), b("own-d"));
    m.set(b("c"), b("own-c"));
    m.delete(b("e"));
    m.set(b("f"), b("own-f"));
    m.delete(b("f"));
    m.set(b("zz"), b("outside"));
    const pairs = (e: Array<[Uint8Array, Uint8Array]>) => e.map(([k, v]) => `${str(k)}=${str(v)}`);
    assert.deepEqual(pairs(m.range(b("b"), b("h"))), ["c=own-c", "d=own-d", "g=g"]);
    assert.deepEqual(pairs(m.range(b("b"), b("h"), { reverse: true })), [
      "g=g",
      "d=own-d",
      "c=own-c",
    ]);
    assert.deepEqual(pairs(m.range(undefined, undefined, { limit: 2 })), ["a=a", "c=own-c"]);
    assert.deepEqual(pairs(m.range(undefined, undefined, { reverse: true, limit: 2 })), [
      "zz=outside",
      "g=g",
    ]);
    // Nobody else sees them.
    assert.deepEqual(keysOf(store.begin().map("m").range()), ["a", "c", "e", "g"]);
  });

  it("an insert into a scanned range (a phantom) conflicts", () => {
    const store = storeWith("a", "e");
    const tx = store.begin();
    assert.deepEqual(keysOf(tx.map("m").range(b("b"), b("d"))), []);
    write(store, "c");
    assert.equal(commits(store, tx), false);
    assert.equal(store.get("out", "marker"), undefined, "a conflicting transaction writes nothing");
  });

  it("a removal or an update in a scanned range conflicts", () => {
    for (const value of [null, "updated"]) {
      const store = storeWith("a", "c", "e");
      const tx = store.begin();
      assert.deepEqual(keysOf(tx.map("m").range(b("b"), b("d"))), ["c"]);
      write(store, "c", value);
      assert.equal(commits(store, tx), false, `write ${value}`);
    }
    // Even a removal of a key that was not there: the map changed inside the range.
    const store = storeWith("a");
    const tx = store.begin();
    tx.map("m").range(b("b"), b("d"));
    write(store, "bz", null);
    assert.equal(commits(store, tx), false);
  });

  it("a write outside the scanned range commits, the excluded upper bound included", () => {
    for (const key of ["a", "b\u00ff", "d", "d\u0000", "z", ""]) {
      const store = storeWith("a", "c", "e");
      const tx = store.begin();
      assert.deepEqual(keysOf(tx.map("m").range(b("c"), b("d"))), ["c"]);
      write(store, key);
      write(store, key, null);
      assert.equal(commits(store, tx), true, `write of ${JSON.stringify(key)}`);
    }
    // ... and the lower bound is inside.
    const store = storeWith("a");
    const tx = store.begin();
    tx.map("m").range(b("c"), b("d"));
    write(store, "c");
    assert.equal(commits(store, tx), false);
  });

  it("half-unbounded and unbounded ranges cover everything on their open side", () => {
    const cases: Array<[string | undefined, string | undefined, string, boolean]> = [
      [undefined, "m", "", false],
      [undefined, "m", "\u0000", false],
      [undefined, "m", "m", true],
      ["m", undefined, "\u00ff\u00ff\u00ff", false],
      ["m", undefined, "l\u00ff", true],
      [undefined, undefined, "anything", false],
    ];
    for (const [from, to, key, commitsExpected] of cases) {
      const store = storeWith("k");
      const tx = store.begin();
      tx.map("m").range(
        from === undefined ? undefined : b(from),
        to === undefined ? undefined : b(to),
      );
      write(store, key);
      assert.equal(commits(store, tx), commitsExpected, `[${from}, ${to}) then ${key}`);
    }
  });

  it("a limited scan reads only up to its last key (down to it, in reverse)", () => {
    const scan = (options: { reverse?: boolean; limit?: number }, key: string) => {
      const store = storeWith("a", "c", "e", "g");
      const tx = store.begin();
      const got = keysOf(tx.map("m").range(b("b"), b("h"), options));
      write(store, key);
      return { got, commits: commits(store, tx) };
    };
    assert.deepEqual(scan({ limit: 2 }, "e"), { got: ["c", "e"], commits: false });
    assert.deepEqual(scan({ limit: 2 }, "d"), { got: ["c", "e"], commits: false });
    assert.deepEqual(scan({ limit: 2 }, "b"), { got: ["c", "e"], commits: false });
    assert.deepEqual(scan({ limit: 2 }, "e\u0000"), { got: ["c", "e"], commits: true });
    assert.deepEqual(scan({ limit: 2 }, "f"), { got: ["c", "e"], commits: true });
    assert.deepEqual(scan({ reverse: true, limit: 2 }, "e"), { got: ["g", "e"], commits: false });
    assert.deepEqual(scan({ reverse: true, limit: 2 }, "g\u00ff"), {
      got: ["g", "e"],
      commits: false,
    });
    assert.deepEqual(scan({ reverse: true, limit: 2 }, "d\u00ff"), {
      got: ["g", "e"],
      commits: true,
    });
    // Fewer keys than the limit: the whole range was seen.
    assert.deepEqual(scan({ limit: 10 }, "g\u0000"), { got: ["c", "e", "g"], commits: false });
    assert.deepEqual(scan({ limit: 10 }, "h"), { got: ["c", "e", "g"], commits: true });
  });

  it("a scan after a write into its range committed throws at once; outside the range it does not", () => {
    const store = storeWith("a", "c");
    const tx = store.begin();
    write(store, "x");
    assert.deepEqual(keysOf(tx.map("m").range(b("a"), b("d"))), ["a", "c"]);
    write(store, "b");
    assert.throws(() => tx.map("m").range(b("a"), b("d")), ConflictError);
    // A later insert past a limited scan's last key is not a conflict.
    const t2 = store.begin();
    write(store, "c\u0001");
    assert.deepEqual(keysOf(t2.map("m").range(b("a"), b("d"), { limit: 2 })), ["a", "b"]);
    assert.deepEqual(keysOf(t2.map("m").range(b("a"), b("d"), { limit: 3 })), ["a", "b", "c"]);
    assert.throws(() => t2.map("m").range(b("a"), b("d"), { limit: 4 }), ConflictError);
  });

  it("whole-map iteration and size still conflict with any write to the map", () => {
    for (const read of [(tx: Tx) => tx.map("m").size, (tx: Tx) => tx.map("m").forEach(() => {})]) {
      const store = storeWith("a");
      const tx = store.begin();
      read(tx);
      write(store, "zzz");
      assert.equal(commits(store, tx), false);
    }
  });

  it("after compaction past the read version, still conflicts inside the range and not outside", () => {
    const run = (key: string, value: string | null) => {
      const store = storeWith("a", "c", "e", "q");
      const tx = store.begin();
      tx.map("m").range(b("b"), b("f"));
      write(store, key, value);
      store.compact(store.version);
      return commits(store, tx);
    };
    assert.equal(run("d", "x"), false);
    assert.equal(run("c", null), false);
    assert.equal(run("z", "x"), true);
    // A dropped tombstone could have been anywhere: conservatively a conflict.
    assert.equal(run("q", null), false);
  });
});

// ---- The model ------------------------------------------------------------------------------

type Op =
  | { kind: "range"; from?: string; to?: string; reverse: boolean; limit?: number }
  | { kind: "get"; key: string }
  | { kind: "set"; key: string; value: string }
  | { kind: "delete"; key: string };

/** A range scan over a model: committed state plus own writes (null: removed). */
function modelRange(
  state: ReadonlyMap<string, string>,
  own: ReadonlyMap<string, string | null>,
  op: Extract<Op, { kind: "range" }>,
): { entries: string[]; observed: { from?: string; to?: string } | undefined } {
  const merged = new Map(state);
  for (const [k, v] of own) {
    if (v === null) merged.delete(k);
    else merged.set(k, v);
  }
  const inRange = (k: string) =>
    (op.from === undefined || k >= op.from) && (op.to === undefined || k < op.to);
  let keys = [...merged.keys()].filter(inRange).sort();
  if (op.reverse) keys.reverse();
  const limit = op.limit ?? Number.POSITIVE_INFINITY;
  keys = keys.slice(0, limit);
  let observed: { from?: string; to?: string } | undefined = { from: op.from, to: op.to };
  if ((op.from !== undefined && op.to !== undefined && op.from >= op.to) || limit === 0) {
    observed = undefined;
  } else if (keys.length === limit) {
    const last = keys[keys.length - 1];
    observed = op.reverse ? { from: last, to: op.to } : { from: op.from, to: `${last}\u0000` };
  }
  return { entries: keys.map((k) => `${k}=${merged.get(k)}`), observed };
}

/** What each op returns against a model, and the footprint it reads. */
function modelRun(state: ReadonlyMap<string, string>, ops: readonly Op[]) {
  const own = new Map<string, string | null>();
  const results: unknown[] = [];
  const ranges: Array<{ from?: string; to?: string }> = [];
  const keys = new Set<string>();
  for (const op of ops) {
    switch (op.kind) {
      case "range": {
        const r = modelRange(state, own, op);
        results.push(r.entries);
        if (r.observed !== undefined) ranges.push(r.observed);
        break;
      }
      case "get": {
        const mine = own.get(op.key);
        if (mine !== undefined) {
          results.push(mine);
        } else {
          keys.add(op.key);
          results.push(state.get(op.key) ?? null);
        }
        break;
      }
      case "set":
        own.set(op.key, op.value);
        results.push(undefined);
        break;
      case "delete":
        // TxMap.delete reads the key (it returns whether it was present).
        if (!own.has(op.key)) keys.add(op.key);
        own.set(op.key, null);
        results.push(undefined);
        break;
    }
  }
  const reads = (k: string) =>
    keys.has(k) ||
    ranges.some((r) => (r.from === undefined || k >= r.from) && (r.to === undefined || k < r.to));
  return { results, own, reads };
}

const applyWrites = (state: Map<string, string>, writes: Iterable<[string, string | null]>) => {
  for (const [k, v] of writes) {
    if (v === null) state.delete(k);
    else state.set(k, v);
  }
};

// Keys over a few bytes on both sides of 0x80, so that signed order would differ.
const keyArb = fc
  .array(fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0xff), { maxLength: 2 })
  .map((bytes) => String.fromCharCode(...bytes));
const valueArb = fc.constantFrom("v1", "v2", "v3");
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record(
    {
      kind: fc.constant("range" as const),
      from: keyArb,
      to: keyArb,
      reverse: fc.boolean(),
      limit: fc.nat({ max: 4 }),
    },
    { requiredKeys: ["kind", "reverse"] },
  ),
  fc.record({ kind: fc.constant("get" as const), key: keyArb }),
  fc.record({ kind: fc.constant("set" as const), key: keyArb, value: valueArb }),
  fc.record({ kind: fc.constant("delete" as const), key: keyArb }),
);

describe("kv range read sets against a model", () => {
  it("two interleaved transactions: T1 aborts iff T2 wrote into what T1 read, else it serialises after T2", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(keyArb, fc.option(valueArb)), { maxLength: 12 }),
        fc.array(opArb, { minLength: 1, maxLength: 8 }),
        fc.array(fc.tuple(keyArb, fc.option(valueArb)), { maxLength: 4 }),
        fc.nat(),
        fc.boolean(),
        (seed, ops, t2Writes, t2Pos, compact) => {
          const store = new Store();
          const base = new Map<string, string>();
          // Seed in two transactions, so that some keys carry tombstones.
          for (const half of [seed.slice(0, 6), seed.slice(6)]) {
            const tx = store.begin();
            for (const [k, v] of half) {
              if (v === null) tx.map("m").delete(b(k));
              else tx.map("m").set(b(k), b(v));
            }
            store.commit(tx);
            applyWrites(base, half);
          }
          const t2At = t2Pos % (ops.length + 1);
          const t1 = store.begin();
          const m = t1.map("m");
          const commitT2 = () => {
            const t2 = store.begin();
            for (const [k, v] of t2Writes) {
              if (v === null) t2.map("m").delete(b(k));
              else t2.map("m").set(b(k), b(v));
            }
            store.commit(t2);
            if (compact) store.compact(store.version);
          };

          const observed: unknown[] = [];
          let aborted = false;
          for (const [i, op] of ops.entries()) {
            if (i === t2At) commitT2();
            try {
              switch (op.kind) {
                case "range":
                  observed.push(
                    m
                      .range(
                        op.from === undefined ? undefined : b(op.from),
                        op.to === undefined ? undefined : b(op.to),
                        { reverse: op.reverse, limit: op.limit },
                      )
                      .map(([k, v]) => `${str(k)}=${str(v)}`),
                  );
                  break;
                case "get": {
                  const v = m.get(b(op.key));
                  observed.push(v === undefined ? null : str(v));
                  break;
                }
                case "set":
                  m.set(b(op.key), b(op.value));
                  observed.push(undefined);
                  break;
                case "delete":
                  m.delete(b(op.key));
                  observed.push(undefined);
                  break;
              }
            } catch (e) {
              if (!(e instanceof ConflictError)) throw e;
              aborted = true;
              break;
            }
          }
          if (t2At === ops.length) commitT2();
          if (!aborted) {
            try {
              store.commit(t1);
            } catch (e) {
              if (!(e instanceof ConflictError)) throw e;
              aborted = true;
            }
          }

          const atRead = modelRun(base, ops);
          const afterT2 = new Map(base);
          applyWrites(afterT2, t2Writes);
          const written = new Set(t2Writes.map(([k]) => k));
          const overlaps = [...written].some((k) => atRead.reads(k));
          // Whatever T1 saw before it stopped is the state at its read version.
          assert.deepEqual(observed, atRead.results.slice(0, observed.length));
          if (overlaps) assert.equal(aborted, true, "T2 wrote into T1's read set");
          const droppedTombstones = compact && t2Writes.some(([, v]) => v === null);
          if (!overlaps && !droppedTombstones) assert.equal(aborted, false, "disjoint: commits");
          const expected = new Map(afterT2);
          if (!aborted) {
            // Serialisable: T1 saw exactly what it would have seen running after T2.
            assert.deepEqual(observed, modelRun(afterT2, ops).results);
            applyWrites(expected, atRead.own);
          }
          const final = store
            .begin()
            .map("m")
            .range()
            .map(([k, v]) => [str(k), str(v)]);
          assert.deepEqual(
            final,
            [...expected].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)),
          );
        },
      ),
      { seed: 15004, numRuns: 1500 },
    );
  });
});
