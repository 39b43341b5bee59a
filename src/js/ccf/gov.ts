// ccf.gov.validateConstitution, on every interpreter (app and governance): evaluates a proposed
// constitution in an interpreter of its own and checks the functions it exports, as CCF does.

import {
  checkArgCount,
  createInterpreterNow,
  deterministic,
  GuestError,
  type Interpreter,
  JsException,
  type Limits,
  type LogLevel,
  SandboxError,
} from "../sandbox/index.js";

const HOST_GLOBAL = "__ccfGovHost";
const MODULE_NAME = "proposed constitution";
const LENGTH_OF = "__ccfLengthOf";

/** CCF's argument spec per function (`src/js/extensions/ccf/gov.cpp`), in its (sorted) order. */
const EXPECTED: ReadonlyArray<{ name: string; required: string[]; optional: string[] }> = [
  { name: "apply", required: ["proposal", "proposerId"], optional: [] },
  { name: "resolve", required: ["proposal", "proposerId", "votes"], optional: ["proposalId"] },
  { name: "validate", required: ["input"], optional: [] },
];

const INSTALL_SCRIPT = `(() => {
  "use strict";
  const host = globalThis.${HOST_GLOBAL};
  delete globalThis.${HOST_GLOBAL};
  if (typeof globalThis.ccf !== "object" || globalThis.ccf === null) globalThis.ccf = {};
  globalThis.ccf.gov = { validateConstitution: host.validateConstitution };
})();`;

export interface GovExtensionOptions {
  /** The limits of the calling interpreter: evaluating the proposal runs member-supplied code. */
  limits: Limits;
  log: (level: LogLevel, message: string) => void;
  randomBytes: (n: number) => Uint8Array;
}

const plural = (n: number): string => (n === 1 ? "arg" : "args");

/**
 * Throws a guest TypeError naming what is wrong with `source` as a constitution (CCF's messages),
 * or returns true. A limit hit while evaluating it is not catchable by the caller.
 */
export function validateConstitution(source: string, options: GovExtensionOptions): true {
  const sub: Interpreter = createInterpreterNow({
    limits: options.limits,
    modules: { load: (name) => (name === MODULE_NAME ? source : undefined) },
    log: options.log,
    randomBytes: options.randomBytes,
  });
  try {
    sub.evalScript(`globalThis.${LENGTH_OF} = (fn) => fn.length;`, "ccf-gov-length.js");
    for (const { name, required, optional } of EXPECTED) {
      let length: number;
      try {
        length = sub.callExport(MODULE_NAME, name, [], { via: LENGTH_OF }) as number;
      } catch (e) {
        if (e instanceof JsException || (e instanceof SandboxError && !sub.dead)) {
          throw new GuestError(
            "TypeError",
            `${MODULE_NAME} does not export a function named ${name}: ${e.message}`,
          );
        }
        throw e;
      }
      const actual = `${MODULE_NAME} exports function ${name} with ${length} ${plural(length)}`;
      const min = required.length;
      const max = min + optional.length;
      if (optional.length === 0 && length !== min) {
        throw new GuestError(
          "TypeError",
          `${actual}, expected ${min} ${plural(min)} (${required.join(", ")})`,
        );
      }
      if (optional.length > 0 && (length < min || length > max)) {
        throw new GuestError(
          "TypeError",
          `${actual}, expected between ${min} and ${max} args (${required.join(", ")}[, ${optional.join(", ")}])`,
        );
      }
    }
    return true;
  } finally {
    sub.dispose();
  }
}

/** Installs `ccf.gov.validateConstitution`, keeping other `ccf` members. */
export function installGovExtension(interp: Interpreter, options: GovExtensionOptions): void {
  interp.define(HOST_GLOBAL, {
    validateConstitution: deterministic((...args) => {
      checkArgCount(args, 1);
      const source = args[0];
      if (typeof source !== "string") {
        throw new GuestError("TypeError", "constitution is not a string");
      }
      if (source === "") throw new GuestError("TypeError", "constitution is empty");
      return validateConstitution(source, options);
    }),
  });
  interp.evalScript(INSTALL_SCRIPT, "ccf-gov.js");
}
