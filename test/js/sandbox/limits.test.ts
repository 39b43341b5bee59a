import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LimitExceeded, type LimitKind, SandboxError } from "../../../src/js/sandbox/index.js";
import { sandbox } from "./fixture.js";

const workloads = {
  "m.js": `
    export function ok() { return "ok"; }
    export function spin() { for (;;) {} }
    export function spinCatching() { for (;;) { try { for (;;) {} } catch (e) {} } }
    export async function spinInJob() { await null; for (;;) {} }
    export function buffers() { const a = []; for (;;) a.push(new ArrayBuffer(1 << 20)); }
    export function buffersCaught() { const a = []; try { for (;;) a.push(new ArrayBuffer(1 << 20)); } catch (e) { return "survived " + e; } }
    export function arrays() { const a = []; for (;;) a.push(new Array(100000).fill(1.5)); }
    export function objects() { const a = []; for (;;) a.push({ n: a.length }); }
    export function keep(mb) { (globalThis.kept ??= []).push(new ArrayBuffer(mb << 20)); return globalThis.kept.length; }
    export function recurse() { const r = (n) => 1 + r(n + 1); return r(0); }
    export function recurseCaught() { const r = (n) => 1 + r(n + 1); try { return r(0); } catch (e) { return String(e); } }
  `,
  "spin-at-load.js": `for (;;) {} export const f = () => 1;`,
};

const small = { maxHeapBytes: 16 * 1024 * 1024, maxExecutionTimeMs: 200 };

async function expectLimit(fn: string, kind: LimitKind, limits = small) {
  const { interp } = await sandbox(workloads, { limits });
  const started = performance.now();
  assert.throws(
    () => interp.callExport("m.js", fn, []),
    (e) => e instanceof LimitExceeded && e.kind === kind,
  );
  const elapsed = performance.now() - started;
  assert.equal(interp.dead, true);
  assert.throws(
    () => interp.callExport("m.js", "ok", []),
    SandboxError,
    "a dead interpreter refuses calls",
  );
  interp.dispose();
  const fresh = await sandbox(workloads, { limits });
  assert.equal(fresh.interp.callExport("m.js", "ok", []), "ok", "a fresh interpreter works");
  fresh.interp.dispose();
  return elapsed;
}

describe("sandbox limits", () => {
  it("stops an infinite loop at the time limit, even one that catches everything", async () => {
    await expectLimit("spin", "time");
    await expectLimit("spinCatching", "time");
  });

  it("applies the time limit to module evaluation and to promise jobs", async () => {
    const { interp } = await sandbox(workloads, { limits: small });
    assert.throws(
      () => interp.callExport("spin-at-load.js", "f", []),
      (e) => e instanceof LimitExceeded && e.kind === "time",
    );
    const second = await sandbox(workloads, { limits: small });
    assert.throws(
      () => second.interp.callExport("m.js", "spinInJob", []),
      (e) => e instanceof LimitExceeded && e.kind === "time",
    );
    interp.dispose();
    second.interp.dispose();
  });

  it("stops a memory bomb at the heap limit, even one that catches the out-of-memory error", async () => {
    await expectLimit("buffers", "memory");
    await expectLimit("buffersCaught", "memory");
    await expectLimit("arrays", "memory");
  });

  it("stops a flood of small objects by one limit or the other", async () => {
    const { interp } = await sandbox(workloads, {
      limits: { maxHeapBytes: 4 * 1024 * 1024, maxExecutionTimeMs: 2000 },
    });
    assert.throws(() => interp.callExport("m.js", "objects", []), LimitExceeded);
    assert.equal(interp.dead, true);
  });

  it("catches a heap that grows past the limit across calls", async () => {
    const { interp } = await sandbox(workloads, { limits: small });
    let calls = 0;
    assert.throws(
      () => {
        for (; calls < 100; calls++) interp.callExport("m.js", "keep", [1]);
      },
      (e) => e instanceof LimitExceeded && e.kind === "memory",
    );
    assert.ok(calls >= 15 && calls < 100, `limit hit after ${calls} calls of 1 MiB each`);
    assert.equal(interp.dead, true);
  });

  it("stops deep recursion at the stack limit", async () => {
    await expectLimit("recurse", "stack");
    const { interp } = await sandbox(workloads);
    assert.equal(
      interp.callExport("m.js", "recurseCaught", []),
      "InternalError: stack overflow",
      "a guest may catch its own overflow, as in CCF",
    );
    assert.equal(interp.dead, false);
    interp.dispose();
  });

  it("validates its limits", async () => {
    await assert.rejects(sandbox({}, { limits: { maxHeapBytes: 0 } }), SandboxError);
    await assert.rejects(sandbox({}, { limits: { maxExecutionTimeMs: Number.NaN } }), SandboxError);
  });
});
