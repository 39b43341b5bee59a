import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadEngine } from "../../../src/js/sandbox/engine.js";
import { GuestError, type Interpreter, JsException } from "../../../src/js/sandbox/index.js";
import { sandbox } from "./fixture.js";

const app = {
  "endpoints/app.js": `
    export function handle(request) {
      const value = kv.get(request.key);
      kv.set(request.key, value);
      console.log("request", request.n);
      return { statusCode: 200, body: { n: request.n, size: value.byteLength, r: Math.random() < 1, t: Date.now() } };
    }
    export function unusual(request) { return { get lazy() { return request.n }, f() {}, view: new DataView(new ArrayBuffer(4)) }; }
    export function throwing(request) { if (request.n % 2) throw new Error("odd " + request.n); kv.refuse(); }
  `,
};

function exercise(interp: Interpreter, n: number, payload: Uint8Array): void {
  interp.define("ccf.rpc", { setApplyWrites: () => undefined, requestId: n });
  interp.callExport("endpoints/app.js", "handle", [{ n, key: payload }]);
  interp.callExport("endpoints/app.js", "unusual", [{ n }]);
  try {
    interp.callExport("endpoints/app.js", "throwing", [{ n }]);
  } catch (e) {
    assert.ok(e instanceof JsException);
  }
  interp.setUntrustedDateTime(n % 2 === 0);
}

describe("sandbox resource hygiene", () => {
  it("does not leak guest heap or WASM memory over 10,000 calls", async () => {
    const { interp, logs } = await sandbox(app);
    const stored = new Map<string, ArrayBuffer>();
    interp.define("kv", {
      get: (key) =>
        stored.get(String(new Uint8Array(key as ArrayBuffer)[0])) ?? new ArrayBuffer(16 * 1024),
      set: (key, value) =>
        void stored.set(String(new Uint8Array(key as ArrayBuffer)[0]), value as ArrayBuffer),
      refuse: () => {
        throw new GuestError("TypeError", "refused");
      },
    });
    const engine = await loadEngine();
    const payload = new Uint8Array(16 * 1024).fill(7);
    for (let i = 0; i < 500; i++) exercise(interp, i, payload);
    logs.length = 0;
    const heapBefore = interp.heapUsed();
    const memoryBefore = engine.memoryBytes();
    for (let i = 0; i < 10_000; i++) {
      exercise(interp, i, payload);
      logs.length = 0;
    }
    const heapAfter = interp.heapUsed();
    assert.ok(
      heapAfter - heapBefore < 64 * 1024,
      `guest heap grew from ${heapBefore} to ${heapAfter} bytes`,
    );
    assert.equal(engine.memoryBytes(), memoryBefore, "the WASM memory did not grow");
    assert.equal(interp.dead, false);
    interp.dispose();
  });

  it("frees everything an interpreter held when it is disposed", async () => {
    const engine = await loadEngine();
    const cycle = async () => {
      const { interp } = await sandbox(app);
      interp.define("kv", {
        get: () => new ArrayBuffer(1024),
        set: () => undefined,
        refuse: () => undefined,
      });
      interp.callExport("endpoints/app.js", "handle", [{ n: 1, key: new Uint8Array([1]) }]);
      interp.dispose();
      interp.dispose();
    };
    for (let i = 0; i < 50; i++) await cycle();
    const memoryBefore = engine.memoryBytes();
    for (let i = 0; i < 300; i++) await cycle();
    assert.equal(engine.memoryBytes(), memoryBefore);
  });
});
