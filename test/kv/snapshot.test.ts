// Snapshots of the store: a snapshot taken at any version still in the undo log holds exactly that
// version's live state, parses back, and installs into a store that reads the same.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  captureSnapshot,
  ccfKeyHash,
  installSnapshot,
  keyFromString,
  type ParsedSnapshot,
  parseSnapshot,
  type SnapshotLayout,
  SnapshotSerialiser,
  serialiseSnapshot,
  sipHash24Low32,
  Store,
  viewHistoryUntil,
} from "../../src/kv/index.js";

const MAPS = ["public:a", "public:b", "priv", "secret:c"];

type Op = { map: string; key: string; value: string | null };

const opArb: fc.Arbitrary<Op> = fc.record({
  map: fc.constantFrom(...MAPS),
  key: fc.string({ maxLength: 3, unit: fc.constantFrom("a", "b", "c", "\u0000", "\u00ff") }),
  value: fc.option(fc.string({ maxLength: 12 }), { nil: null, freq: 4 }),
});

/** Model of the live state after each version: map → key → [value, version]. */
function model(txs: Op[][], upTo: number): Map<string, Map<string, [string, number]>> {
  const out = new Map<string, Map<string, [string, number]>>();
  txs.slice(0, upTo).forEach((ops, i) => {
    for (const op of ops) {
      let m = out.get(op.map);
      if (m === undefined) {
        m = new Map();
        out.set(op.map, m);
      }
      if (op.value === null) m.delete(op.key);
      else m.set(op.key, [op.value, i + 1]);
    }
  });
  return out;
}

function commitAll(store: Store, txs: Op[][]): void {
  for (const ops of txs) {
    const tx = store.begin();
    for (const op of ops) {
      const h = tx.map(op.map);
      if (op.value === null) h.delete(keyFromString(op.key));
      else h.set(keyFromString(op.key), Buffer.from(op.value));
    }
    store.apply(tx.writeSet(), store.version + 1);
  }
}

function liveState(parsed: ParsedSnapshot): Map<string, Map<string, [string, number]>> {
  const out = new Map<string, Map<string, [string, number]>>();
  for (const m of parsed.maps.values()) {
    const entries = new Map<string, [string, number]>();
    for (const e of m.entries) {
      if (e.value !== null) entries.set(e.key, [Buffer.from(e.value).toString(), e.version]);
    }
    if (entries.size > 0) out.set(m.name, entries);
  }
  return out;
}

function withoutEmpty(m: Map<string, Map<string, [string, number]>>) {
  return new Map([...m].filter(([, v]) => v.size > 0));
}

describe("store snapshots", () => {
  it("hold exactly the live state at any uncompacted version, and install to the same reads", () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(opArb, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 12 }),
        fc.nat(),
        fc.nat(),
        (txs, compactPick, snapPick) => {
          const store = new Store();
          commitAll(store, txs);
          const compactAt = compactPick % (txs.length + 1);
          store.compact(compactAt);
          const at = compactAt + (snapPick % (txs.length - compactAt + 1));
          const domains = serialiseSnapshot(store, at, { viewHistory: [1] });
          const parsed = parseSnapshot(domains.publicDomain, domains.privateDomain);
          assert.equal(parsed.version, at);
          assert.deepEqual(parsed.viewHistory, [1]);
          assert.deepEqual(liveState(parsed), withoutEmpty(model(txs, at)));
          for (const m of parsed.maps.values()) {
            for (const e of m.entries) assert.notEqual(e.value, null, "no tombstones");
          }
          // The public domain holds no private map and the other way round.
          const pubOnly = parseSnapshot(domains.publicDomain);
          for (const name of pubOnly.maps.keys()) assert.ok(name.startsWith("public:"));

          const installed = new Store();
          installSnapshot(installed, parsed);
          assert.equal(installed.version, at);
          const expected = model(txs, at);
          for (const map of MAPS) {
            const exp = expected.get(map) ?? new Map<string, [string, number]>();
            const state = installed.mapState(map);
            assert.equal(state?.size ?? 0, exp.size);
            for (const [k, [v, ver]] of exp) {
              const e = state?.entries.get(k);
              assert.equal(Buffer.from(e?.value ?? []).toString(), v);
              assert.equal(e?.version, ver);
            }
            const tx = installed.begin();
            assert.equal(tx.map(map).size, exp.size);
          }
          // The same state serialises to the same bytes.
          const again = serialiseSnapshot(installed, at, { viewHistory: [1] });
          assert.deepEqual(again, domains);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("serialise a capture to the same bytes in any slices, whatever the store does after it", () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(opArb, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 10 }),
        fc.array(fc.array(opArb, { minLength: 1, maxLength: 5 }), { maxLength: 6 }),
        fc.nat(),
        fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 8 }),
        (txs, later, snapPick, budgets) => {
          const store = new Store();
          commitAll(store, txs);
          const at = snapPick % (txs.length + 1);
          const whole = serialiseSnapshot(store, at, { viewHistory: [1, 4] });
          const serialiser = new SnapshotSerialiser(captureSnapshot(store, at), {
            viewHistory: [1, 4],
          });
          // Between slices the store goes on: writes, removals, compaction past the capture.
          let steps = 0;
          for (;;) {
            const budget = budgets[steps % budgets.length];
            if (serialiser.step(budget)) break;
            const ops = later[steps % Math.max(later.length, 1)];
            if (ops !== undefined) commitAll(store, [ops]);
            store.compact(store.version);
            steps++;
            assert.ok(steps < 10_000, "a step makes progress");
          }
          assert.deepEqual(serialiser.domains, whole);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("copy what an earlier snapshot holds, to the same bytes as serialising it all", () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(opArb, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 8 }),
        fc.array(
          fc.record({
            txs: fc.array(fc.array(opArb, { minLength: 1, maxLength: 5 }), { maxLength: 8 }),
            compact: fc.boolean(),
            lag: fc.nat({ max: 3 }),
            budget: fc.integer({ min: 1, max: 9 }),
          }),
          { minLength: 1, maxLength: 4 },
        ),
        (first, rounds) => {
          const store = new Store();
          commitAll(store, first);
          let layout: SnapshotLayout | undefined;
          for (const round of rounds) {
            commitAll(store, round.txs);
            // The snapshot's version trails the store's by `lag` (still in the undo log).
            const at = Math.max(store.compactedVersion, store.version - round.lag);
            const expected = serialiseSnapshot(store, at, { viewHistory: [1] });
            const serialiser = new SnapshotSerialiser(
              captureSnapshot(store, at),
              { viewHistory: [1] },
              layout,
            );
            while (!serialiser.step(round.budget)) {
              // The store goes on between slices.
              commitAll(store, [[{ map: "priv", key: "a", value: String(store.version) }]]);
            }
            assert.deepEqual(serialiser.domains, expected);
            layout = serialiser.layout;
            if (round.compact) store.compact(store.version);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("copy most of a large store that changed a little since the last snapshot", () => {
    const store = new Store();
    const keys = Array.from({ length: 2000 }, (_, i) => `key-${i}`);
    commitAll(store, [keys.map((key) => ({ map: "priv", key, value: `v-${key}` }))]);
    const first = new SnapshotSerialiser(captureSnapshot(store, store.version), {
      viewHistory: [],
    });
    while (!first.step(100));
    assert.equal(first.reused, 0);
    commitAll(store, [
      [
        { map: "priv", key: "key-7", value: "changed" },
        { map: "priv", key: "key-1500", value: null },
        { map: "priv", key: "new-key", value: "new" },
      ],
    ]);
    store.compact(store.version);
    const second = new SnapshotSerialiser(
      captureSnapshot(store, store.version),
      { viewHistory: [] },
      first.layout,
    );
    while (!second.step(100));
    assert.equal(second.reused, 1998);
    assert.deepEqual(second.domains, serialiseSnapshot(store, store.version, { viewHistory: [] }));
  });

  it("keeps each map's version: its last write at or before the snapshot", () => {
    const store = new Store();
    commitAll(store, [
      [{ map: "public:a", key: "x", value: "1" }],
      [{ map: "priv", key: "y", value: "2" }],
      [{ map: "public:a", key: "x", value: null }],
      [{ map: "public:a", key: "z", value: "3" }],
    ]);
    const domains = serialiseSnapshot(store, 3, { viewHistory: [1] });
    const parsed = parseSnapshot(domains.publicDomain, domains.privateDomain);
    assert.equal(parsed.maps.get("public:a")?.version, 3);
    assert.deepEqual(parsed.maps.get("public:a")?.entries, []);
    assert.equal(parsed.maps.get("priv")?.version, 2);
    const installed = new Store();
    installSnapshot(installed, parsed);
    assert.equal(installed.mapState("public:a")?.version, 3);
    assert.equal(installed.get("public:a", "x"), undefined);
  });

  it("orders a map's entries by the low 32 bits of CCF's SipHash of the key", () => {
    const store = new Store();
    const keys = Array.from({ length: 40 }, (_, i) => `key-${i}`);
    commitAll(store, [keys.map((key) => ({ map: "public:a", key, value: "v" }))]);
    const parsed = parseSnapshot(serialiseSnapshot(store, 1, { viewHistory: [] }).publicDomain);
    const hashes = (parsed.maps.get("public:a")?.entries ?? []).map((e) =>
      ccfKeyHash(keyFromString(e.key)),
    );
    assert.equal(hashes.length, 40);
    assert.deepEqual(
      hashes,
      [...hashes].sort((a, b) => a - b),
    );
  });

  it("orders keys whose hashes are equal by key, and hashes a key's bytes and string alike", () => {
    // Two pairs of keys whose hashes collide (found by search): CCF leaves their order unspecified.
    assert.equal(ccfKeyHash("k15260"), 0x8901a91f);
    assert.equal(ccfKeyHash("k62756"), 0x8901a91f);
    assert.equal(ccfKeyHash("k86735"), ccfKeyHash("k93899"));
    const store = new Store();
    const keys = ["k93899", "k62756", "zz", "k86735", "k15260", "a"];
    commitAll(store, [keys.map((key) => ({ map: "public:a", key, value: "v" }))]);
    const order = (s: Store) =>
      (
        parseSnapshot(serialiseSnapshot(s, 1, { viewHistory: [] }).publicDomain).maps.get(
          "public:a",
        )?.entries ?? []
      ).map((e) => e.key);
    const got = order(store);
    const expected = [...keys].sort(
      (a, b) => ccfKeyHash(a) - ccfKeyHash(b) || (a < b ? -1 : a > b ? 1 : 0),
    );
    assert.deepEqual(got, expected);
    assert.ok(got.indexOf("k15260") + 1 === got.indexOf("k62756"));
    // Inserted in the other order, the snapshot is the same.
    const other = new Store();
    commitAll(other, [[...keys].reverse().map((key) => ({ map: "public:a", key, value: "v" }))]);
    assert.deepEqual(order(other), expected);
    for (const k of ["", "a", "12345678", "123456789abcdefgh", "\u00ff\u0000x".repeat(9)]) {
      assert.equal(ccfKeyHash(k), ccfKeyHash(Buffer.from(k, "latin1")), JSON.stringify(k));
    }
  });

  it("computes SipHash-2-4 as its reference vectors", () => {
    const key = Buffer.from(Array.from({ length: 16 }, (_, i) => i));
    const k0: [number, number] = [key.readUInt32LE(4), key.readUInt32LE(0)];
    const k1: [number, number] = [key.readUInt32LE(12), key.readUInt32LE(8)];
    // Low halves of 0xa129ca6149be45e5 (15 bytes 00..0e) and 0x726fdb47dd0e0e31 (empty input).
    const fifteen = Buffer.from(Array.from({ length: 15 }, (_, i) => i));
    assert.equal(sipHash24Low32(fifteen, k0, k1), 0x49be45e5);
    assert.equal(sipHash24Low32(Buffer.alloc(0), k0, k1), 0xdd0e0e31);
  });

  it("reads CCF's tombstones (negated version, empty value) and does not install them", () => {
    const pub = Buffer.concat([
      Buffer.from([1]),
      u64(5),
      u64(0),
      u64(0),
      u64(0),
      u64(8),
      Buffer.from("public:t"),
      u64(5),
      u64(16 + 16),
      u64(1),
      Buffer.from("k\0\0\0\0\0\0\0", "latin1"),
      u64(8),
      Buffer.from(new BigInt64Array([-4n]).buffer),
    ]);
    const parsed = parseSnapshot(pub);
    assert.deepEqual(parsed.maps.get("public:t")?.entries, [{ key: "k", value: null, version: 4 }]);
    assert.equal(parsed.hashAtSnapshot, undefined);
    const store = new Store();
    installSnapshot(store, parsed);
    assert.equal(store.mapState("public:t")?.size, 0);
    assert.equal(store.version, 5);
  });

  it("refuses a truncated snapshot and a private map in the public domain", () => {
    const store = new Store();
    commitAll(store, [[{ map: "priv", key: "k", value: "v" }]]);
    const { publicDomain, privateDomain } = serialiseSnapshot(store, 1, { viewHistory: [1] });
    assert.throws(
      () => parseSnapshot(publicDomain, privateDomain.subarray(0, privateDomain.length - 1)),
      { code: "InvalidSnapshot" },
    );
    assert.throws(() => parseSnapshot(Buffer.concat([publicDomain, privateDomain])), {
      code: "InvalidSnapshot",
    });
  });

  it("refuses to install into a store that holds anything", () => {
    const store = new Store();
    commitAll(store, [[{ map: "public:a", key: "k", value: "v" }]]);
    const parsed = parseSnapshot(serialiseSnapshot(store, 1, { viewHistory: [] }).publicDomain);
    assert.throws(() => installSnapshot(store, parsed), /empty store/);
  });

  it("builds CCF's view history from view starts", () => {
    // CCF's ViewHistory test: views 1@1, 2@2, 4@5 (view 3 empty), 5@10.
    const starts = [
      { view: 1, seqno: 1 },
      { view: 2, seqno: 2 },
      { view: 4, seqno: 5 },
      { view: 5, seqno: 10 },
    ];
    assert.deepEqual(viewHistoryUntil(starts, 4), [1, 2]);
    assert.deepEqual(viewHistoryUntil(starts, 5), [1, 2, 5, 5]);
    assert.deepEqual(viewHistoryUntil(starts, 11), [1, 2, 5, 5, 10]);
    // A service that starts in view 2 (as bootstrap nodes do).
    assert.deepEqual(viewHistoryUntil([{ view: 2, seqno: 1 }], 3), [1, 1]);
  });
});

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}
