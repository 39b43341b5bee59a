import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { JsException } from "../../../src/js/sandbox/index.js";
import { sandbox } from "./fixture.js";

const thrower = {
  "endpoints/fail.js": `
    function inner(kind) {
      if (kind === "error") throw new TypeError("bad input");
      if (kind === "string") throw "plain string";
      if (kind === "object") throw { code: 42 };
      if (kind === "null") throw null;
      if (kind === "hostile") throw { get name() { throw 1 }, get message() { throw 2 }, toString() { throw 3 } };
      return "fine";
    }
    export function run(kind) { return inner(kind); }
  `,
};

describe("sandbox exceptions", () => {
  it("turns a guest Error into a JsException with its name, message and guest stack", async () => {
    const { interp } = await sandbox(thrower);
    assert.throws(
      () => interp.callExport("endpoints/fail.js", "run", ["error"]),
      (e) =>
        e instanceof JsException &&
        e.code === "JSException" &&
        e.jsName === "TypeError" &&
        e.jsMessage === "bad input" &&
        e.message === "TypeError: bad input" &&
        /at inner \(endpoints\/fail\.js:3/.test(String(e.jsStack)) &&
        /at run \(endpoints\/fail\.js:10/.test(String(e.jsStack)),
    );
    assert.equal(interp.dead, false);
    assert.equal(interp.callExport("endpoints/fail.js", "run", ["none"]), "fine");
    interp.dispose();
  });

  it("reports thrown non-errors as the guest prints them", async () => {
    const { interp } = await sandbox(thrower);
    const caught = (kind: string) => {
      try {
        interp.callExport("endpoints/fail.js", "run", [kind]);
      } catch (e) {
        assert.ok(e instanceof JsException);
        return [e.message, e.jsName, e.jsMessage, e.jsStack];
      }
      assert.fail("no exception");
    };
    assert.deepEqual(caught("string"), ["plain string", "", "plain string", undefined]);
    assert.deepEqual(caught("object"), ["[object Object]", "", "", undefined]);
    assert.deepEqual(caught("null"), ["null", "", "null", undefined]);
    assert.deepEqual(caught("hostile"), [
      "(exception not convertible to a string)",
      "",
      "",
      undefined,
    ]);
    interp.dispose();
  });

  it("shows no host detail in what the guest or the caller sees", async () => {
    const { interp } = await sandbox(thrower);
    try {
      interp.callExport("endpoints/fail.js", "run", ["error"]);
    } catch (e) {
      assert.ok(e instanceof JsException);
      assert.doesNotMatch(
        `${e.message}\n${e.jsStack}`,
        /node:|\.ts\b|\/work\/|quickjs|ccf-ts sandbox|wasm/,
      );
    }
    interp.dispose();
  });

  it("reports a syntax error in a script", async () => {
    const { interp } = await sandbox();
    assert.throws(
      () => interp.evalScript("let = ;", "prelude.js"),
      (e) =>
        e instanceof JsException &&
        e.jsName === "SyntaxError" &&
        /prelude\.js/.test(String(e.jsStack)),
    );
    interp.dispose();
  });

  it("runs promise jobs before returning, and drops an unhandled rejection", async () => {
    const { interp } = await sandbox({
      "async.js": `
        export let log = [];
        export function start() { Promise.resolve().then(() => log.push("job ran")); Promise.reject(new Error("ignored")); return "returned"; }
        export async function handler() { await null; log.push("after await"); return 1; }
        export function read() { return log; }
      `,
    });
    assert.equal(interp.callExport("async.js", "start", []), "returned");
    assert.deepEqual(
      interp.callExport("async.js", "handler", []),
      {},
      "a promise is an object with no own properties",
    );
    assert.deepEqual(interp.callExport("async.js", "read", []), ["job ran", "after await"]);
    interp.dispose();
  });
});
