// Tests for ccf.gov.validateConstitution: CCF's checks and messages, and no effect on the caller.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { installGovExtension } from "../../../src/js/ccf/gov.js";
import {
  CCF_DEFAULT_LIMITS,
  type Interpreter,
  JsException,
  LimitExceeded,
} from "../../../src/js/sandbox/index.js";
import { evaluate, sandbox } from "../sandbox/fixture.js";

const GOOD = `
export function validate(input) { return { valid: true }; }
export function resolve(proposal, proposerId, votes) { return "Open"; }
export function apply(proposal, proposerId) {}
`;

function validateIn(interp: Interpreter, source: string): unknown {
  interp.define("__source", source);
  return evaluate(interp, "ccf.gov.validateConstitution(__source)");
}

function typeError(interp: Interpreter, source: string, message: string | RegExp): void {
  assert.throws(
    () => validateIn(interp, source),
    (e) => {
      assert.ok(e instanceof JsException, String(e));
      assert.equal(e.jsName, "TypeError");
      if (typeof message === "string") assert.equal(e.jsMessage, message);
      else assert.match(e.jsMessage, message);
      return true;
    },
  );
}

describe("ccf.gov.validateConstitution", () => {
  let interp: Interpreter;
  const limits = { ...CCF_DEFAULT_LIMITS, maxExecutionTimeMs: 200 };
  before(async () => {
    interp = (await sandbox({}, { limits })).interp;
    installGovExtension(interp, {
      limits,
      log: () => undefined,
      randomBytes: (n) => new Uint8Array(randomBytes(n)),
    });
  });
  after(() => interp.dispose());

  it("returns true for a module exporting validate(1), resolve(3 or 4) and apply(2)", () => {
    assert.equal(validateIn(interp, GOOD), true);
    assert.equal(
      validateIn(interp, GOOD.replace("votes)", "votes, proposalId)")),
      true,
      "resolve may take the proposal id",
    );
  });

  it("checks its argument as CCF does", () => {
    assert.throws(() => evaluate(interp, "ccf.gov.validateConstitution()"), /expected 1/);
    typeError(interp, "", "constitution is empty");
    assert.throws(
      () => evaluate(interp, "ccf.gov.validateConstitution(42)"),
      (e) => e instanceof JsException && e.jsMessage === "constitution is not a string",
    );
  });

  it("names a missing export", () => {
    typeError(
      interp,
      GOOD.replace("export function apply", "function apply"),
      /^proposed constitution does not export a function named apply: /,
    );
  });

  it("names an export with the wrong number of parameters, with CCF's wording", () => {
    typeError(
      interp,
      GOOD.replace("validate(input)", "validate()"),
      "proposed constitution exports function validate with 0 args, expected 1 arg (input)",
    );
    typeError(
      interp,
      GOOD.replace("votes)", "votes, a, b)"),
      "proposed constitution exports function resolve with 5 args, expected between 3 and 4 args (proposal, proposerId, votes[, proposalId])",
    );
    typeError(
      interp,
      GOOD.replace("apply(proposal, proposerId)", "apply(proposal)"),
      "proposed constitution exports function apply with 1 arg, expected 2 args (proposal, proposerId)",
    );
  });

  it("reports a syntax error in the proposal as a TypeError, not a crash", () => {
    typeError(interp, "export function validate(", /does not export a function named apply/);
  });

  it("evaluates the proposal apart: its top-level code cannot touch the caller's globals", () => {
    evaluate(interp, "globalThis.marker = 1");
    assert.equal(
      validateIn(interp, `globalThis.marker = 2; globalThis.leak = true;\n${GOOD}`),
      true,
    );
    assert.deepEqual(evaluate(interp, "[globalThis.marker, typeof globalThis.leak]"), [
      1,
      "undefined",
    ]);
  });

  it("a proposal that never finishes evaluating hits the time limit, uncatchable", async () => {
    const s = await sandbox({}, { limits });
    installGovExtension(s.interp, {
      limits,
      log: () => undefined,
      randomBytes: (n) => new Uint8Array(randomBytes(n)),
    });
    s.interp.define("__source", `for (;;) {}\n${GOOD}`);
    assert.throws(
      () =>
        evaluate(
          s.interp,
          "(() => { try { return ccf.gov.validateConstitution(__source); } catch (e) { return 'caught'; } })()",
        ),
      (e) => e instanceof LimitExceeded,
    );
    assert.equal(s.interp.dead, true);
    s.interp.dispose();
  });
});
