// Tests for rewindable interpreters: every use after a rewind starts from the checkpointed state.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import {
  CCF_DEFAULT_LIMITS,
  createRewindableInterpreter,
  LimitExceeded,
  type RewindableInterpreter,
  SandboxError,
} from "../../../src/js/sandbox/index.js";
import { evaluate, sandbox } from "./fixture.js";

const MODULES: Record<string, string> = {
  "app.js": `
import { bump } from "./counter.js";
export const table = new Uint8Array(4096);
export function use(n) {
  const count = bump();
  // Fill the heap with garbage that must not survive the rewind.
  const junk = [];
  for (let i = 0; i < n; i++) junk.push({ i, s: "x".repeat(i % 50), b: new ArrayBuffer(64) });
  table[count] = 7;
  globalThis.leaked = (globalThis.leaked ?? 0) + 1;
  return [count, table.reduce((a, b) => a + b, 0), globalThis.leaked, junk.length];
}
export function big(mb) {
  const chunks = [];
  for (let i = 0; i < mb; i++) chunks.push(new Uint8Array(1024 * 1024).fill(1));
  return chunks.length;
}
export function random() { return Math.random(); }
export function swapWrapper() {
  globalThis.wrap = (fn, x) => "replaced";
  return "swapped";
}
export const notAFunction = 1;
export function echo(x) { return x; }
`,
  "counter.js": `let n = 0; export function bump() { return ++n; }`,
  "later.js": `let n = 0; export function bump() { return ++n; }`,
};

async function rewindable(
  limits: Partial<typeof CCF_DEFAULT_LIMITS> = {},
): Promise<RewindableInterpreter> {
  return createRewindableInterpreter({
    limits: { ...CCF_DEFAULT_LIMITS, ...limits },
    modules: { load: (name) => MODULES[name] },
    log: () => undefined,
    randomBytes: (n) => new Uint8Array(randomBytes(n)),
  });
}

describe("rewindable interpreters", () => {
  it("each use after a rewind sees the module state of the checkpoint, not the last use's", async () => {
    const interp = await rewindable();
    interp.importModule("app.js");
    interp.checkpoint();
    for (let round = 0; round < 50; round++) {
      interp.rewind();
      assert.deepEqual(interp.callExport("app.js", "use", [round * 20]), [1, 7, 1, round * 20]);
    }
    interp.dispose();
  });

  it("calls prepared before the checkpoint run from the captured handles after every rewind", async () => {
    const interp = await rewindable();
    interp.evalScript("globalThis.wrap = (fn, x) => ['wrapped', fn(x)];", "prelude.js");
    interp.importModule("app.js");
    assert.equal(interp.prepareCall("app.js", "use", "wrap"), true);
    assert.equal(interp.prepareCall("app.js", "swapWrapper", "wrap"), true);
    // A missing export or one that is not a function is left for the call to report.
    assert.equal(interp.prepareCall("app.js", "nope", "wrap"), false);
    assert.equal(interp.prepareCall("app.js", "notAFunction"), false);
    assert.equal(interp.prepareCall("app.js", "use", "noSuchGlobal"), false);
    interp.checkpoint();
    assert.throws(() => interp.prepareCall("app.js", "use"), SandboxError);
    for (let round = 0; round < 5; round++) {
      interp.rewind();
      assert.deepEqual(interp.callExport("app.js", "use", [round], { via: "wrap" }), [
        "wrapped",
        [1, 7, 1, round],
      ]);
      // The guest replacing the wrapper lasts only until the rewind.
      interp.rewind();
      assert.deepEqual(interp.callExport("app.js", "swapWrapper", [], { via: "wrap" }), [
        "wrapped",
        "swapped",
      ]);
    }
    interp.rewind();
    assert.throws(
      () => interp.callExport("app.js", "nope", [], { via: "wrap" }),
      /Failed to find export 'nope' in module 'app.js'/,
    );
    interp.dispose();
  });

  it("a discarding call leaves its values to the rewind; elsewhere they are freed as usual", async () => {
    const arg = { rows: Array.from({ length: 200 }, (_, i) => ({ i, s: "y".repeat(40) })) };
    const interp = await rewindable();
    interp.importModule("app.js");
    interp.callExport("app.js", "echo", [arg]);
    // Not checkpointed: the flag is ignored, the argument and the result are freed.
    const before = interp.heapUsed();
    assert.deepEqual(interp.callExport("app.js", "echo", [arg], { discard: true }), arg);
    assert.ok(interp.heapUsed() - before < 1024, `heap ${before} -> ${interp.heapUsed()}`);
    interp.checkpoint();
    const captured = interp.heapUsed();
    for (let round = 0; round < 3; round++) {
      interp.rewind();
      assert.equal(interp.heapUsed(), captured);
      assert.deepEqual(interp.callExport("app.js", "echo", [arg], { discard: true }), arg);
      // Left in the heap (200 objects and strings) until the rewind takes them away.
      assert.ok(
        interp.heapUsed() - captured > 200 * 40,
        `heap ${captured} -> ${interp.heapUsed()}`,
      );
    }
    interp.rewind();
    assert.equal(interp.heapUsed(), captured);
    interp.dispose();
  });

  it("a module first imported during a use is evaluated afresh after each rewind", async () => {
    // Its namespace and export handles are cached during the use, in memory the rewind restores:
    // the caches must forget them, or the next use would call through stale handles.
    const interp = await rewindable();
    interp.importModule("app.js");
    interp.checkpoint();
    for (let round = 0; round < 5; round++) {
      interp.rewind();
      assert.deepEqual(interp.callExport("app.js", "use", [round]), [1, 7, 1, round]);
      assert.equal(interp.callExport("later.js", "bump", []), 1);
      assert.equal(interp.callExport("later.js", "bump", []), 2);
    }
    interp.dispose();
  });

  it("a use that grew the memory leaves nothing behind after the rewind", async () => {
    const interp = await rewindable({ maxHeapBytes: 256 * 1024 * 1024 });
    interp.importModule("app.js");
    interp.checkpoint();
    assert.equal(interp.callExport("app.js", "big", [40]), 40);
    interp.rewind();
    assert.deepEqual(interp.callExport("app.js", "use", [10]), [1, 7, 1, 10]);
    interp.rewind();
    assert.equal(interp.callExport("app.js", "big", [8]), 8);
    interp.rewind();
    assert.deepEqual(interp.callExport("app.js", "use", [10]), [1, 7, 1, 10]);
    interp.dispose();
  });

  it("Math.random gives new values after every rewind", async () => {
    const interp = await rewindable();
    interp.importModule("app.js");
    interp.checkpoint();
    const seen = new Set<unknown>();
    for (let i = 0; i < 20; i++) {
      interp.rewind();
      seen.add(interp.callExport("app.js", "random", []));
    }
    assert.equal(seen.size, 20);
    interp.dispose();
  });

  it("refuses to checkpoint a setup that drew entropy or read the clock", async () => {
    const interp = await rewindable();
    interp.evalScript("globalThis.r = Math.random();", "setup.js");
    assert.throws(() => interp.checkpoint(), SandboxError);
    interp.dispose();
  });

  it("a limit hit during a use kills it: no rewind, a new one must be made", async () => {
    const interp = await rewindable({ maxExecutionTimeMs: 50 });
    interp.evalScript("globalThis.spin = () => { for (;;) {} };", "spin.js");
    interp.checkpoint();
    assert.throws(() => interp.callGlobal("spin", []), LimitExceeded);
    assert.equal(interp.dead, true);
    assert.throws(() => interp.rewind(), SandboxError);
    interp.dispose();
  });

  it("an interpreter on the shared engine cannot be checkpointed", async () => {
    const { interp } = await sandbox();
    assert.throws(() => (interp as RewindableInterpreter).checkpoint(), SandboxError);
    assert.equal(evaluate(interp, "1 + 1"), 2);
    interp.dispose();
  });
});
