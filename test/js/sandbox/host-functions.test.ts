import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type GuestValue,
  GuestError,
  GuestView,
  JsException,
  SandboxError,
} from "../../../src/js/sandbox/index.js";
import { evaluate, sandbox } from "./fixture.js";

describe("sandbox host functions", () => {
  it("installs nested namespaces of functions and values, creating parents and keeping siblings", async () => {
    const { interp } = await sandbox();
    interp.define("ccf", {
      strToBuf: (s) => Buffer.from(s as string),
      version: "6.0.1",
      nested: { twice: (n) => Number(n) * 2 },
    });
    interp.define("ccf.kv.records", { size: () => 3 });
    interp.define("deep.a.b", 7);
    assert.deepEqual(
      evaluate(
        interp,
        `[typeof ccf.strToBuf, ccf.strToBuf.name, ccf.version, ccf.nested.twice(21), ccf.kv.records.size(), deep.a.b,
          Object.keys(ccf).sort(), new Uint8Array(ccf.strToBuf("hi")).join(",")]`,
      ),
      [
        "function",
        "strToBuf",
        "6.0.1",
        42,
        3,
        7,
        ["kv", "nested", "strToBuf", "version"],
        "104,105",
      ],
    );
    interp.dispose();
  });

  it("refuses to define below a global that is not an object", async () => {
    const { interp } = await sandbox();
    interp.evalScript("globalThis.taken = 5;", "x.js");
    assert.throws(
      () => interp.define("taken.x", 1),
      (e) => e instanceof JsException && e.jsName === "TypeError",
    );
    assert.throws(() => interp.define("a..b", 1), SandboxError);
    assert.equal(interp.dead, false);
    interp.dispose();
  });

  it("tells an ArrayBuffer argument from a typed array, so a kv-like function can refuse the latter with a TypeError", async () => {
    const { interp } = await sandbox();
    const seen: GuestValue[] = [];
    interp.define("kv.get", (key) => {
      seen.push(key);
      if (!(key instanceof ArrayBuffer))
        throw new GuestError("TypeError", "Key must be an ArrayBuffer");
      return new Uint8Array([...new Uint8Array(key)].reverse());
    });
    assert.deepEqual(
      evaluate(interp, `Array.from(new Uint8Array(kv.get(new Uint8Array([1, 2]).buffer)))`),
      [2, 1],
    );
    assert.deepEqual(
      evaluate(
        interp,
        `(() => { try { kv.get(new Uint8Array([1])) } catch (e) { return [e instanceof TypeError, e.message] } })()`,
      ),
      [true, "Key must be an ArrayBuffer"],
    );
    assert.ok(seen[0] instanceof ArrayBuffer);
    assert.deepEqual(seen[1], new GuestView("Uint8Array", new Uint8Array([1])));
    interp.dispose();
  });

  it("throws a GuestError in the guest as a real instance of its type, with guest frames only", async () => {
    const { interp } = await sandbox({ "m.js": `export function go(name) { return fail(name) }` });
    interp.define("fail", (name) => {
      throw new GuestError(name as string, `failed as ${name as string}`);
    });
    interp.evalScript(
      `globalThis.probe = (name) => { try { fail(name) } catch (e) {
         return [e.constructor.name, e.name, e.message, e instanceof Error, e.stack] } };`,
      "probe.js",
    );
    for (const name of [
      "TypeError",
      "RangeError",
      "SyntaxError",
      "ReferenceError",
      "InternalError",
      "Error",
    ]) {
      const [ctor, errorName, message, isError, stack] = interp.callGlobal("probe", [
        name,
      ]) as string[];
      assert.deepEqual(
        [ctor, errorName, message, isError],
        [name, name, `failed as ${name}`, true],
      );
      assert.match(String(stack), /probe\.js/);
      assert.doesNotMatch(String(stack), /ccf-ts sandbox|\.ts:/);
    }
    assert.deepEqual((interp.callGlobal("probe", ["NotFound"]) as unknown[]).slice(0, 4), [
      "Error",
      "NotFound",
      "failed as NotFound",
      true,
    ]);
    assert.throws(
      () => interp.callExport("m.js", "go", ["RangeError"]),
      (e) =>
        e instanceof JsException &&
        e.jsName === "RangeError" &&
        e.message === "RangeError: failed as RangeError" &&
        /m\.js/.test(String(e.jsStack)),
    );
    assert.equal(interp.dead, false);
    interp.dispose();
  });

  it("aborts the whole call with the host's own error when a host function fails otherwise, even if the guest catches", async () => {
    const { interp } = await sandbox();
    const failure = new Error("the KV broke");
    interp.define("broken", () => {
      throw failure;
    });
    interp.evalScript(
      `globalThis.swallow = () => { let n = 0; try { broken() } catch (e) { n++ } for (let i = 0; i < 1e6; i++) n++; return n };`,
      "x.js",
    );
    assert.throws(
      () => interp.callGlobal("swallow", []),
      (e) => e === failure,
    );
    assert.equal(interp.dead, true);
    assert.throws(() => interp.callGlobal("swallow", []), SandboxError);
  });

  it("aborts the call when a host function returns what cannot enter the guest", async () => {
    const { interp } = await sandbox();
    interp.define("bad", () => new Map() as never);
    interp.evalScript(
      "globalThis.call = () => { try { return bad() } catch { return 'caught' } };",
      "x.js",
    );
    assert.throws(() => interp.callGlobal("call", []), SandboxError);
    assert.equal(interp.dead, true);
  });

  it("makes host functions plain, non-constructible guest functions", async () => {
    const { interp } = await sandbox();
    interp.define("fn", () => 1);
    assert.deepEqual(
      evaluate(
        interp,
        `[fn.constructor === Function, Object.getPrototypeOf(fn) === Function.prototype, fn(), (() => { try { new fn(); return "constructed" } catch (e) { return e.name } })()]`,
      ),
      [true, true, 1, "TypeError"],
    );
    interp.dispose();
  });

  it("refuses a host function that calls back into its own interpreter, but allows switching untrusted time", async () => {
    const { interp } = await sandbox({}, { clock: () => 42_000 });
    interp.define("ccf.enableUntrustedDateTime", (on) => interp.setUntrustedDateTime(on === true));
    assert.deepEqual(
      evaluate(
        interp,
        `[Date.now(), ccf.enableUntrustedDateTime(true), Date.now(), ccf.enableUntrustedDateTime(false), Date.now()]`,
      ),
      [0, false, 42_000, true, 0],
    );
    interp.define("reenter", () => {
      interp.callGlobal("reenter", []);
    });
    assert.throws(() => evaluate(interp, "reenter()"), /already running/);
    assert.equal(interp.dead, true);
  });
});
