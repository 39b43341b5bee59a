// Its own file: breaking the engine replaces it for the whole process.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LimitExceeded, SandboxError } from "../../../src/js/sandbox/index.js";
import { sandbox } from "./fixture.js";

const modules = {
  "m.js": `
    export function ok() { return "ok"; }
    // JSON.stringify recurses in C, using far more of V8's stack than of QuickJS's own per level.
    export function deepStringify() { let o = {}; for (let i = 0; i < 200000; i++) o = { o }; return JSON.stringify(o).length; }
  `,
};

describe("sandbox engine recovery", () => {
  it("reports V8's stack running out inside the engine as the stack limit, and replaces the broken engine", async () => {
    const victim = await sandbox(modules);
    const bystander = await sandbox(modules);
    assert.equal(bystander.interp.callExport("m.js", "ok", []), "ok");

    assert.throws(
      () => victim.interp.callExport("m.js", "deepStringify", []),
      (e) => e instanceof LimitExceeded && e.kind === "stack",
    );
    assert.equal(victim.interp.dead, true);
    assert.equal(bystander.interp.dead, true, "every interpreter on the broken engine is dead");
    assert.throws(() => bystander.interp.callExport("m.js", "ok", []), SandboxError);
    victim.interp.dispose();
    bystander.interp.dispose();

    const fresh = await sandbox(modules);
    assert.equal(fresh.interp.callExport("m.js", "ok", []), "ok");
    fresh.interp.dispose();
  });
});
