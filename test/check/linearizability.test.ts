// The register linearizability checker: known histories each way, per-key partitioning, agreement
// with a brute-force checker, and histories produced by a real sequential register.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  checkHistory,
  historyFromEvents,
  type Operation,
  type OperationKind,
} from "../../src/check/linearizability.js";
import { FormatError } from "../../src/errors.js";

let nextId = 0;

function put(value: string, invoke: number, complete: number | undefined, key = "k"): Operation {
  return { id: nextId++, clientId: nextId % 3, key, kind: "put", value, invoke, complete };
}

function del(invoke: number, complete: number | undefined, key = "k"): Operation {
  return { id: nextId++, clientId: nextId % 3, key, kind: "delete", invoke, complete };
}

/** A get that returned `output` (undefined: absent). */
function get(
  output: string | undefined,
  invoke: number,
  complete: number | undefined,
  key = "k",
): Operation {
  const op: Operation = { id: nextId++, clientId: nextId % 3, key, kind: "get", invoke, complete };
  if (output !== undefined) op.output = output;
  return op;
}

function accepted(ops: Operation[]): void {
  const report = checkHistory(ops);
  assert.equal(report.result, "linearizable", report.explanation);
  assert.equal(report.ok, true);
  assert.deepEqual(report.badKeys, []);
}

function rejected(ops: Operation[], key = "k"): string {
  const report = checkHistory(ops);
  assert.equal(report.result, "not-linearizable");
  assert.equal(report.ok, false);
  assert.deepEqual(report.badKeys, [key]);
  assert.ok(report.explanation?.includes(JSON.stringify(key)), report.explanation);
  return report.explanation ?? "";
}

describe("checkHistory: linearizable histories", () => {
  it("accepts an empty history and a first read of an absent key", () => {
    accepted([]);
    accepted([get(undefined, 0, 1)]);
  });

  it("accepts a sequential history of puts and gets", () => {
    accepted([put("a", 0, 1), get("a", 2, 3), put("b", 4, 5), get("b", 6, 7), get("b", 8, 9)]);
  });

  it("accepts a get overlapping a put whether it sees the old or the new value", () => {
    accepted([put("a", 0, 1), put("b", 10, 20), get("a", 12, 15)]);
    accepted([put("a", 0, 1), put("b", 10, 20), get("b", 12, 15)]);
    accepted([put("a", 0, 1), put("b", 10, 20), get("b", 12, 15), get("b", 16, 30)]);
  });

  it("accepts overlapping puts observed in either order", () => {
    accepted([put("a", 0, 10), put("b", 0, 10), get("a", 11, 12)]);
    accepted([put("a", 0, 10), put("b", 0, 10), get("b", 11, 12)]);
  });

  it("accepts a timed-out put whose value is read later", () => {
    accepted([put("a", 0, 1), put("b", 2, undefined), get("a", 5, 6), get("b", 100, 101)]);
  });

  it("accepts a timed-out put whose value is never read", () => {
    accepted([put("a", 0, 1), put("b", 2, undefined), get("a", 5, 6), get("a", 100, 101)]);
  });

  it("accepts deletes: absent after a delete, either state while one is in flight", () => {
    accepted([put("a", 0, 1), del(2, 3), get(undefined, 4, 5), put("b", 6, 7), get("b", 8, 9)]);
    accepted([put("a", 0, 1), del(2, 10), get("a", 3, 4), get(undefined, 5, 6)]);
    accepted([put("a", 0, 1), del(2, undefined), get(undefined, 5, 6)]);
  });

  it("ignores a get whose outcome is unknown, whatever it returned", () => {
    accepted([put("a", 0, 1), get("never-written", 2, undefined), get("a", 3, 4)]);
  });

  it("treats operations that only touch at one instant as concurrent", () => {
    accepted([put("a", 0, 5), get(undefined, 5, 6)]);
  });
});

describe("checkHistory: histories that are not linearizable", () => {
  it("rejects a stale read that started after a put completed", () => {
    const why = rejected([put("a", 0, 1), put("b", 2, 3), get("a", 4, 5)]);
    assert.match(why, /get\(\) -> "a" \[4, 5\]/);
  });

  it("rejects a read of absent after a completed put", () => {
    rejected([put("a", 0, 1), get(undefined, 2, 3)]);
  });

  it("rejects two sequential gets that see values in an impossible order", () => {
    // "b" overwrites "a" and nothing writes "a" again, so "a" cannot come back after "b" was seen.
    rejected([put("a", 0, 10), put("b", 20, 100), get("b", 30, 40), get("a", 50, 60)]);
  });

  it("rejects a read of a value never written, naming the read and the value", () => {
    const bad = get("zz", 2, 3);
    const why = rejected([put("a", 0, 1), bad]);
    assert.match(why, new RegExp(`op ${String(bad.id)} .*"zz".*no put on this key wrote`));
  });

  it("rejects a read seeing a put that started after the read completed", () => {
    rejected([get("a", 0, 5), put("a", 6, 7)]);
  });

  it("rejects a read seeing a timed-out put before that put was invoked", () => {
    rejected([get("a", 0, 5), put("a", 6, undefined)]);
  });

  it("rejects a read of a deleted value after the delete completed", () => {
    rejected([put("a", 0, 1), del(2, 3), get("a", 4, 5)]);
  });

  it("explains a failure with the order found and the operations stuck after it", () => {
    const ops = [put("a", 0, 1), put("b", 2, 3), get("a", 4, 5)];
    const why = rejected(ops);
    assert.match(why, /longest valid order found places 2 of 3 operations/);
    assert.match(why, /the key is "b"/);
    assert.ok(why.includes(`op ${String(ops[2]?.id)} must take effect by 5`), why);
  });
});

describe("checkHistory: partitioning by key", () => {
  it("reports a bad key by name while many good keys are linearizable", () => {
    const ops: Operation[] = [];
    for (let k = 0; k < 8; k++) {
      const key = `good${k}`;
      ops.push(put(`v${k}`, k, k + 10, key), get(`v${k}`, k + 11, k + 12, key));
    }
    ops.push(put("a", 0, 1, "bad"), put("b", 2, 3, "bad"), get("a", 4, 5, "bad"));
    const report = checkHistory(ops);
    assert.equal(report.result, "not-linearizable");
    assert.deepEqual(report.badKeys, ["bad"]);
    assert.match(report.explanation ?? "", /key "bad" is not linearizable/);
    assert.doesNotMatch(report.explanation ?? "", /good/);
  });

  it("reports every bad key, sorted", () => {
    const ops = [
      put("a", 0, 1, "z"),
      get(undefined, 2, 3, "z"),
      put("a", 0, 1, "y"),
      get("x", 2, 3, "y"),
      put("a", 0, 1, "ok"),
    ];
    assert.deepEqual(checkHistory(ops).badKeys, ["y", "z"]);
  });

  it("does not let one key's writes satisfy another key's reads", () => {
    rejected([put("a", 0, 1, "x"), get("a", 2, 3, "y")], "y");
    accepted([put("a", 0, 1, "x"), get(undefined, 2, 3, "y")]);
  });
});

describe("checkHistory: budget and input checks", () => {
  it("answers unknown rather than searching past the step budget", () => {
    const ops = [put("a", 0, 100), put("b", 0, 100), put("c", 0, 100), get("c", 101, 102)];
    accepted(ops);
    const report = checkHistory(ops, { maxStepsPerKey: 2 });
    assert.equal(report.result, "unknown");
    assert.equal(report.ok, false);
    assert.deepEqual(report.badKeys, []);
    assert.deepEqual(report.unknownKeys, ["k"]);
    assert.match(report.explanation ?? "", /gave up after 2 search steps/);
  });

  it("reports not-linearizable over unknown when keys differ in verdict", () => {
    const ops = [
      put("a", 0, 100, "slow"),
      put("b", 0, 100, "slow"),
      get("b", 101, 102, "slow"),
      put("a", 0, 1, "bad"),
      get("q", 2, 3, "bad"),
    ];
    const report = checkHistory(ops, { maxStepsPerKey: 2 });
    assert.equal(report.result, "not-linearizable");
    assert.deepEqual(report.badKeys, ["bad"]);
    assert.deepEqual(report.unknownKeys, ["slow"]);
  });

  it("refuses malformed histories", () => {
    const p = put("a", 0, 1);
    assert.throws(() => checkHistory([p, { ...p }]), FormatError);
    assert.throws(() => checkHistory([put("a", 5, 4)]), FormatError);
    assert.throws(
      () => checkHistory([{ id: 1, clientId: 1, key: "k", kind: "put", invoke: 0, complete: 1 }]),
      FormatError,
    );
  });
});

describe("historyFromEvents", () => {
  it("completes ok operations, drops failed ones and leaves info or unfinished ones unknown", () => {
    const ops = historyFromEvents([
      { type: "invoke", id: 1, time: 0, clientId: "c1", key: "k", kind: "put", value: "a" },
      { type: "invoke", id: 2, time: 1, clientId: "c2", key: "k", kind: "put", value: "b" },
      { type: "invoke", id: 3, time: 2, clientId: "c3", key: "k", kind: "put", value: "c" },
      { type: "invoke", id: 4, time: 3, clientId: "c4", key: "k", kind: "get" },
      { type: "ok", id: 1, time: 5 },
      { type: "fail", id: 2, time: 6 },
      { type: "info", id: 3, time: 7 },
      { type: "ok", id: 4, time: 8, output: "a" },
      { type: "invoke", id: 5, time: 9, clientId: "c1", key: "k", kind: "get" },
    ]);
    assert.deepEqual(
      ops.map((o) => [o.id, o.complete, o.output]),
      [
        [1, 5, undefined],
        [3, undefined, undefined],
        [4, 8, "a"],
        [5, undefined, undefined],
      ],
    );
    accepted(ops);
  });

  it("refuses completions without an invoke and double completions", () => {
    assert.throws(() => historyFromEvents([{ type: "ok", id: 1, time: 0 }]), FormatError);
    const inv = { type: "invoke", id: 1, time: 0, clientId: 1, key: "k", kind: "get" } as const;
    assert.throws(
      () =>
        historyFromEvents([inv, { type: "ok", id: 1, time: 1 }, { type: "info", id: 1, time: 2 }]),
      FormatError,
    );
  });
});

// ---- histories produced by executing against a sequential register ----

interface Step {
  client: number;
  key: string;
  kind: OperationKind;
  value: string;
  /** Idle time before the client invokes. */
  think: number;
  /** Invoke to the point the operation takes effect. */
  before: number;
  /** Taking effect to the response. */
  after: number;
  /** "lost": timed out and never took effect; "late": timed out, took effect `after` later. */
  outcome: "ok" | "lost" | "late";
}

/**
 * Each client runs its steps one after another; every operation takes effect at one point inside
 * its interval (or, timed out, possibly after the client gave up, or never), and outputs come from
 * applying the operations to a plain Map in order of those points.
 */
function execute(steps: Step[]): Operation[] {
  const free = new Map<number, number>();
  const drafts = steps.map((s, i) => {
    const invoke = (free.get(s.client) ?? 0) + s.think;
    const point = invoke + s.before + (s.outcome === "late" ? s.after * 3 : 0);
    const complete = s.outcome === "ok" ? invoke + s.before + s.after : undefined;
    free.set(s.client, complete ?? invoke + s.before);
    const op: Operation = { id: i, clientId: s.client, key: s.key, kind: s.kind, invoke, complete };
    if (s.kind === "put") op.value = s.value;
    return { op, point, applied: s.outcome !== "lost" };
  });
  const register = new Map<string, string>();
  for (const d of [...drafts].sort(
    (a, b) => a.point - b.point || Number(a.op.id) - Number(b.op.id),
  )) {
    if (!d.applied) continue;
    const { op } = d;
    if (op.kind === "put") register.set(op.key, op.value as string);
    else if (op.kind === "delete") register.delete(op.key);
    else if (op.complete !== undefined) {
      const v = register.get(op.key);
      if (v !== undefined) op.output = v;
    }
  }
  // A timed-out get's output is whatever the harness had: the checker must not care.
  for (const d of drafts) if (d.op.kind === "get" && d.op.complete === undefined) d.op.output = "?";
  return drafts.map((d) => d.op);
}

const stepArb = (keys: string[], clients: number): fc.Arbitrary<Step> =>
  fc.record({
    client: fc.nat(clients - 1),
    key: fc.constantFrom(...keys),
    kind: fc.constantFrom<OperationKind>("put", "put", "get", "get", "get", "delete"),
    value: fc.constantFrom("a", "b", "c"),
    think: fc.nat(20),
    before: fc.nat(30),
    after: fc.nat(30),
    outcome: fc.constantFrom<Step["outcome"]>("ok", "ok", "ok", "ok", "lost", "late"),
  });

/** Tries every order of every choice of which unknown-outcome operations happened. */
function bruteForceLinearizable(history: Operation[]): boolean {
  const ops = history.filter((o) => !(o.kind === "get" && o.complete === undefined));
  const unknown = ops.filter((o) => o.complete === undefined);
  for (let mask = 0; mask < 1 << unknown.length; mask++) {
    const chosen = ops.filter((o) => o.complete !== undefined || (mask >> unknown.indexOf(o)) & 1);
    if (someOrderWorks(chosen, [], new Map())) return true;
  }
  return false;
}

function someOrderWorks(rest: Operation[], done: Operation[], state: Map<string, string>): boolean {
  if (rest.length === 0) return true;
  for (const op of rest) {
    // op may go next only if nothing left completed strictly before it was invoked.
    if (rest.some((o) => o !== op && o.complete !== undefined && o.complete < op.invoke)) continue;
    const next = new Map(state);
    if (op.kind === "put") next.set(op.key, op.value as string);
    else if (op.kind === "delete") next.delete(op.key);
    else if (state.get(op.key) !== op.output) continue;
    if (
      someOrderWorks(
        rest.filter((o) => o !== op),
        [...done, op],
        next,
      )
    )
      return true;
  }
  return false;
}

describe("checkHistory: properties", () => {
  it("accepts every history produced by a sequential register", () => {
    fc.assert(
      fc.property(fc.array(stepArb(["x", "y", "z"], 4), { maxLength: 40 }), (steps) => {
        const report = checkHistory(execute(steps));
        assert.equal(report.result, "linearizable", report.explanation);
      }),
      { seed: 14, numRuns: 300 },
    );
  });

  it("rejects such a history once one read returns a value never written", () => {
    fc.assert(
      fc.property(
        fc.array(stepArb(["x", "y"], 3), { minLength: 1, maxLength: 30 }),
        fc.nat(),
        (steps, pick) => {
          const ops = execute(steps);
          const reads = ops.filter((o) => o.kind === "get" && o.complete !== undefined);
          fc.pre(reads.length > 0);
          const victim = reads[pick % reads.length];
          victim.output = "never-written";
          const report = checkHistory(ops);
          assert.equal(report.result, "not-linearizable");
          assert.deepEqual(report.badKeys, [victim.key]);
        },
      ),
      { seed: 1414, numRuns: 200 },
    );
  });

  it("agrees with a brute-force checker on small arbitrary histories", () => {
    const opArb = fc.record({
      kind: fc.constantFrom<OperationKind>("put", "get", "get", "delete"),
      value: fc.option(fc.constantFrom("a", "b"), { nil: undefined }),
      invoke: fc.nat(20),
      length: fc.option(fc.nat(10), { nil: undefined, freq: 5 }),
    });
    let rejectedCount = 0;
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 6 }), (specs) => {
        const ops = specs.map((s, i): Operation => {
          const complete = s.length === undefined ? undefined : s.invoke + s.length;
          const op: Operation = {
            id: i,
            clientId: i,
            key: "k",
            kind: s.kind,
            invoke: s.invoke,
            complete,
          };
          if (s.kind === "put") op.value = s.value ?? "a";
          if (s.kind === "get" && s.value !== undefined) op.output = s.value;
          return op;
        });
        const expected = bruteForceLinearizable(ops);
        if (!expected) rejectedCount++;
        assert.equal(checkHistory(ops).ok, expected);
      }),
      { seed: 4242, numRuns: 1000 },
    );
    // The generator must produce both verdicts for the comparison to mean anything.
    assert.ok(rejectedCount > 50 && rejectedCount < 950, `rejected ${rejectedCount}`);
  });
});

describe("checkHistory: scale", () => {
  it("checks a 2000-operation history over 10 keys and 5 clients", () => {
    // mulberry32: a fixed stream, so this history is the same on every run.
    let seed = 0x14;
    const rand = (n: number): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const kinds: OperationKind[] = ["put", "get", "get", "delete"];
    const outcomes: Step["outcome"][] = [
      "ok",
      "ok",
      "ok",
      "ok",
      "ok",
      "ok",
      "ok",
      "ok",
      "lost",
      "late",
    ];
    const steps: Step[] = Array.from({ length: 2000 }, (_, i) => ({
      client: rand(5),
      key: `key${rand(10)}`,
      kind: kinds[rand(kinds.length)],
      value: `v${i % 7}`,
      think: rand(10),
      before: rand(50),
      after: rand(50),
      outcome: outcomes[rand(outcomes.length)],
    }));
    const ops = execute(steps);
    assert.equal(ops.length, 2000);
    const report = checkHistory(ops);
    assert.equal(report.result, "linearizable", report.explanation);
  });
});
