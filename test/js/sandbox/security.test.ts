import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GuestView, JsException } from "../../../src/js/sandbox/index.js";
import { evaluate, sandbox } from "./fixture.js";

const FORBIDDEN = [
  "process",
  "require",
  "module",
  "exports",
  "__dirname",
  "__filename",
  "Buffer",
  "global",
  "setTimeout",
  "setInterval",
  "setImmediate",
  "clearTimeout",
  "queueMicrotask",
  "fetch",
  "WebAssembly",
  "performance",
  "TextEncoder",
  "std",
  "os",
  "print",
  "scriptArgs",
];

/** What a QuickJS context has, plus what CCF installs (console) and the test's own probe. */
const ALLOWED_GLOBALS = new Set(
  `Object Function Array Number parseFloat parseInt Infinity NaN undefined Boolean String Symbol Date Promise RegExp
   Error AggregateError EvalError RangeError ReferenceError SyntaxError TypeError URIError InternalError globalThis
   JSON Math Reflect Proxy Map Set WeakMap WeakSet WeakRef FinalizationRegistry ArrayBuffer SharedArrayBuffer
   Uint8Array Int8Array Uint8ClampedArray Int16Array Uint16Array Int32Array Uint32Array BigInt64Array BigUint64Array
   Float16Array Float32Array Float64Array DataView BigInt Iterator isNaN isFinite decodeURI decodeURIComponent
   encodeURI encodeURIComponent escape unescape eval console __probe`.split(/\s+/),
);

describe("sandbox isolation", () => {
  it("has none of Node's globals", async () => {
    const { interp } = await sandbox();
    for (const name of FORBIDDEN) {
      assert.equal(
        evaluate(interp, `typeof globalThis[${JSON.stringify(name)}]`),
        "undefined",
        name,
      );
    }
    const names = evaluate(interp, "Object.getOwnPropertyNames(globalThis)") as string[];
    assert.deepEqual(
      names.filter((n) => !ALLOWED_GLOBALS.has(n)),
      [],
    );
    interp.dispose();
  });

  it("reaches only the guest's own global through Function", async () => {
    const { interp } = await sandbox();
    assert.deepEqual(
      evaluate(
        interp,
        `[(function () {}).constructor("return this")() === globalThis, typeof (function () {}).constructor("return this")().process,
          (() => {}).constructor === Function, Function("return typeof process")()]`,
      ),
      [true, "undefined", true, "undefined"],
    );
    interp.dispose();
  });

  it("exposes nothing of the host through a host function or what it returns", async () => {
    const { interp } = await sandbox();
    interp.define("ccf.strToBuf", (s) => Buffer.from(s as string));
    assert.deepEqual(
      evaluate(
        interp,
        `[ccf.strToBuf.constructor === Function, ccf.strToBuf.constructor.constructor("return typeof process")(),
          Object.getPrototypeOf(ccf.strToBuf("x")) === ArrayBuffer.prototype, ccf.strToBuf("x").constructor.constructor("return this")() === globalThis]`,
      ),
      [true, "undefined", true, true],
    );
    interp.dispose();
  });

  it("keeps what the guest caught of a failed host call free of host detail", async () => {
    const { interp } = await sandbox();
    let caught: unknown;
    interp.define("fail", () => {
      throw new Error("/secret/host/path.ts");
    });
    interp.define("report", (v) => {
      caught = v;
    });
    interp.evalScript(
      `globalThis.go = () => { try { fail() } catch (e) { report([e.name, e.message, e.stack]) } };`,
      "x.js",
    );
    assert.throws(() => interp.callGlobal("go", []), /secret/);
    assert.deepEqual((caught as string[]).slice(0, 2), ["InternalError", "host function failed"]);
    assert.doesNotMatch(JSON.stringify(caught), /secret|\.ts/);
  });

  it("cannot import host modules, statically or dynamically", async () => {
    const { interp } = await sandbox({
      "static.js": `import fs from "fs"; export const f = () => fs;`,
      "dynamic.js": `export let outcome = "pending"; export function go() { import("node:fs").then(() => { outcome = "loaded" }, (e) => { outcome = e.message }) } export const read = () => outcome;`,
    });
    assert.throws(
      () => interp.callExport("static.js", "f", []),
      (e) => e instanceof JsException && /Cannot find module 'fs'/.test(e.message),
    );
    interp.callExport("dynamic.js", "go", []);
    assert.equal(
      interp.callExport("dynamic.js", "read", []),
      "Cannot find module 'node:fs' (imported by 'dynamic.js')",
    );
    interp.dispose();
  });

  it("is not subverted by a guest that replaces the built-ins conversions use", async () => {
    const { interp } = await sandbox();
    interp.evalScript(
      `Object.keys = () => ["hijacked"]; Array.isArray = () => false; JSON.stringify = () => "hijacked";
       Object.defineProperty(Object.prototype, "ccf", { set() { globalThis.stolen = true }, configurable: true });
       Object.defineProperty(Uint8Array.prototype, Symbol.toStringTag, { get() { return "Float64Array" } });`,
      "hostile.js",
    );
    interp.define("ccf", { f: () => 1 });
    assert.deepEqual(
      evaluate(interp, `[typeof stolen, ccf.f(), { a: 1, get g() { return [2] } }]`),
      ["undefined", 1, { a: 1, g: [2] }],
    );
    assert.deepEqual(
      evaluate(interp, "new Uint8Array([1])"),
      new GuestView("Uint8Array", new Uint8Array([1])),
    );
    interp.dispose();
  });

  it("keeps interpreters apart", async () => {
    const a = await sandbox();
    const b = await sandbox();
    a.interp.evalScript("globalThis.secret = 42; Object.prototype.polluted = 1;", "a.js");
    assert.deepEqual(evaluate(b.interp, "[typeof secret, ({}).polluted]"), [
      "undefined",
      undefined,
    ]);
    a.interp.dispose();
    b.interp.dispose();
  });
});
