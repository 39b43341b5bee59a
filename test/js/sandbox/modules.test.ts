import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { JsException, resolveModuleName, SandboxError } from "../../../src/js/sandbox/index.js";
import { sandbox } from "./fixture.js";

/** The shape of a rollup `preserveModules` build of a ccf-app app. */
const app = {
  "endpoints/log.js": `
    import { typedKv, count } from "../node_modules/@microsoft/ccf-app/kv.js";
    import { helper } from "../_virtual/helpers.js";
    import { Shape } from "./shapes/shape.js";
    export function getLog(request) { return { body: [typedKv(request.id), helper(), count()] }; }
    export function makeShape() { return new Shape(); }
    export const notAFunction = 5;
  `,
  "endpoints/check.js": `
    import { Shape } from "./shapes/shape.js";
    import { count } from "../node_modules/@microsoft/ccf-app/kv.js";
    import * as log from "./log.js";
    export function sameClass() { return log.makeShape() instanceof Shape; }
    export function evaluations() { return count(); }
  `,
  "endpoints/shapes/shape.js": `export class Shape {}`,
  "node_modules/@microsoft/ccf-app/kv.js": `
    import { prefix } from "./global.js";
    let evaluated = 0;
    evaluated++;
    export function typedKv(id) { return prefix + id; }
    export function count() { return evaluated; }
  `,
  "node_modules/@microsoft/ccf-app/global.js": `export const prefix = "kv:";`,
  "_virtual/helpers.js": `export const helper = () => "helped";`,
};

describe("sandbox module loading", () => {
  it("resolves relative imports across directories, node_modules/ and _virtual/ names", async () => {
    const { interp, loads } = await sandbox(app);
    assert.deepEqual(interp.callExport("endpoints/log.js", "getLog", [{ id: 7 }]), {
      body: ["kv:7", "helped", 1],
    });
    assert.deepEqual([...loads].sort(), [
      "_virtual/helpers.js",
      "endpoints/log.js",
      "endpoints/shapes/shape.js",
      "node_modules/@microsoft/ccf-app/global.js",
      "node_modules/@microsoft/ccf-app/kv.js",
    ]);
    interp.dispose();
  });

  it("evaluates each module once per interpreter, so two importers share its state and classes", async () => {
    const { interp, loads } = await sandbox(app);
    interp.callExport("endpoints/log.js", "getLog", [{ id: 1 }]);
    interp.callExport("endpoints/log.js", "getLog", [{ id: 2 }]);
    assert.equal(interp.callExport("endpoints/check.js", "sameClass", []), true);
    assert.equal(interp.callExport("endpoints/check.js", "evaluations", []), 1);
    assert.equal(
      interp.callExport("/endpoints/check.js", "evaluations", []),
      1,
      "a leading slash names the same module",
    );
    assert.equal(new Set(loads).size, loads.length, "no module source was loaded twice");
    interp.dispose();
  });

  it("gives each interpreter its own module instances", async () => {
    const first = await sandbox(app);
    const second = await sandbox(app);
    first.interp.callExport("endpoints/log.js", "getLog", [{ id: 1 }]);
    assert.equal(second.interp.callExport("endpoints/check.js", "evaluations", []), 1);
    first.interp.dispose();
    second.interp.dispose();
  });

  it("supports circular imports", async () => {
    const { interp } = await sandbox({
      "a.js": `import { b } from "./b.js"; export const a = () => "a" + b(); export const name = "A";`,
      "b.js": `import { name } from "./a.js"; export const b = () => "b" + name;`,
    });
    assert.equal(interp.callExport("a.js", "a", []), "abA");
    interp.dispose();
  });

  it("names a missing module, and its importer", async () => {
    const { interp } = await sandbox({ "lib/a.js": `import "./gone.js"; export function f() {}` });
    assert.throws(
      () => interp.callExport("lib/a.js", "f", []),
      (e) =>
        e instanceof JsException &&
        e.jsMessage === "Cannot find module 'lib/gone.js' (imported by 'lib/a.js')",
    );
    assert.throws(
      () => interp.callExport("nowhere.js", "f", []),
      (e) => e instanceof JsException && e.jsMessage === "Cannot find module 'nowhere.js'",
    );
    assert.equal(interp.dead, false);
    interp.dispose();
  });

  it("reports a missing export or one that is not a function as CCF does, leaving the interpreter usable", async () => {
    const { interp } = await sandbox(app);
    assert.throws(
      () => interp.callExport("endpoints/log.js", "nope", []),
      (e) =>
        e instanceof SandboxError &&
        e.message === "Failed to find export 'nope' in module 'endpoints/log.js'",
    );
    assert.throws(
      () => interp.callExport("endpoints/log.js", "notAFunction", []),
      (e) =>
        e instanceof SandboxError &&
        e.message === "Export 'notAFunction' of module 'endpoints/log.js' is not a function",
    );
    assert.deepEqual(interp.callExport("endpoints/log.js", "getLog", [{ id: 3 }]), {
      body: ["kv:3", "helped", 1],
    });
    interp.dispose();
  });

  it("reports a syntax error, and a module that throws while evaluating (every time it is imported)", async () => {
    const { interp } = await sandbox({
      "bad.js": `export function f( {`,
      "throws.js": `throw new RangeError("at load"); export function f() {}`,
    });
    assert.throws(
      () => interp.callExport("bad.js", "f", []),
      (e) => e instanceof JsException && e.jsName === "SyntaxError",
    );
    for (let i = 0; i < 2; i++) {
      assert.throws(
        () => interp.callExport("throws.js", "f", []),
        (e) =>
          e instanceof JsException &&
          e.message === "RangeError: at load" &&
          /throws\.js:1/.test(String(e.jsStack)),
      );
    }
    interp.dispose();
  });

  it("waits for a module's top-level await, and refuses one that never settles", async () => {
    const { interp } = await sandbox({
      "tla.js": `export let ready = false; await Promise.resolve(); ready = true; export const f = () => ready;`,
      "stuck.js": `await new Promise(() => {}); export const f = () => 1;`,
    });
    assert.equal(interp.callExport("tla.js", "f", []), true);
    assert.throws(() => interp.callExport("stuck.js", "f", []), /top-level await never settled/);
    interp.dispose();
  });

  it("lets a prelude wrap the call of an export (`via`)", async () => {
    const { interp } = await sandbox(app);
    interp.evalScript(
      `globalThis.__invoke = (handler, data) => { const r = handler({ id: data.id * 2 }); return { status: 200, body: JSON.stringify(r.body) }; };`,
      "prelude.js",
    );
    assert.deepEqual(
      interp.callExport("endpoints/log.js", "getLog", [{ id: 4 }], { via: "__invoke" }),
      {
        status: 200,
        body: '["kv:8","helped",1]',
      },
    );
    assert.throws(
      () => interp.callExport("endpoints/log.js", "getLog", [], { via: "missing" }),
      SandboxError,
    );
    interp.dispose();
  });
});

describe("module name resolution (QuickJS's normaliser)", () => {
  it("resolves ./ and ../ against the importer's directory and keeps other specifiers as they are", () => {
    assert.equal(resolveModuleName("endpoints/log.js", "./x.js"), "endpoints/x.js");
    assert.equal(
      resolveModuleName("endpoints/log.js", "../node_modules/a/b.js"),
      "node_modules/a/b.js",
    );
    assert.equal(resolveModuleName("a/b/c/d.js", "../../x.js"), "a/x.js");
    assert.equal(resolveModuleName("top.js", "./x.js"), "x.js");
    assert.equal(resolveModuleName("a/b.js", "./.././x.js"), "x.js");
    assert.equal(
      resolveModuleName("endpoints/log.js", "node_modules/lib.js"),
      "node_modules/lib.js",
    );
    assert.equal(resolveModuleName("endpoints/log.js", "lodash-es"), "lodash-es");
  });

  it("stops consuming ../ past the root and leaves inner segments alone, as QuickJS does", () => {
    assert.equal(resolveModuleName("top.js", "../x.js"), "../x.js");
    assert.equal(resolveModuleName("a/b.js", "./c/../d.js"), "a/c/../d.js");
  });

  it("drops leading slashes, the KV's key prefix", () => {
    assert.equal(resolveModuleName("a/b.js", "/x.js"), "x.js");
    assert.equal(resolveModuleName("/a/b.js", "./x.js"), "a/x.js");
  });
});
