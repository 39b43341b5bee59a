// Builds a constitution from the files of samples/constitutions/, the way CCF's tooling does:
// the parts are concatenated into one ES module (actions first, because validate, resolve and
// apply refer to the `actions` map they define).

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../node/version.js";

/** ccf-ts's default constitution folder (`samples/constitutions/default`). */
export const DEFAULT_CONSTITUTION_DIR = join(PACKAGE_ROOT, "samples", "constitutions", "default");

/** A resolve.js that replaces the default one; each lives in a sibling folder of `dir`. */
export type ConstitutionVariant = "veto" | "sandbox";

/**
 * The files of the constitution in `dir` (a folder like samples/constitutions/default), in CCF's
 * order: actions.js, virtual_actions.js when present, validate.js, resolve.js
 * (`<dir>/../<variant>/resolve.js` for a variant) and apply.js. A node's `constitution_files`.
 */
export function constitutionFiles(dir: string, variant?: ConstitutionVariant): string[] {
  const resolvePath =
    variant === undefined ? join(dir, "resolve.js") : join(dir, "..", variant, "resolve.js");
  const virtualActions = join(dir, "virtual_actions.js");
  return [
    join(dir, "actions.js"),
    ...(existsSync(virtualActions) ? [virtualActions] : []),
    join(dir, "validate.js"),
    resolvePath,
    join(dir, "apply.js"),
  ];
}

/** The constitution in `dir` as one module, joined with newlines as the node joins its files. */
export function readConstitution(dir: string, variant?: ConstitutionVariant): string {
  return constitutionFiles(dir, variant)
    .map((p) => readFileSync(p, "utf8"))
    .join("\n");
}
