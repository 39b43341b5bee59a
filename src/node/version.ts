// The ccf-ts version, from the package's own package.json (found upward from this module, which
// sits at a different depth when run from source or from dist/).

import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "package.json");
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, "utf8")) as { name?: string };
      if (pkg.name === "ccf-ts") return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error("ccf-ts package.json not found");
    dir = parent;
  }
}

/** The folder of the ccf-ts package (samples, constitutions and bundles are found from here). */
export const PACKAGE_ROOT = findPackageRoot();

export const VERSION = (
  JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string }
).version;
