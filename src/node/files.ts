// Files a config names (member certificates, constitution, data JSON): read with errors that name
// the config field, so a bad path is reported as the config's problem.

import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { ConfigError } from "./config.js";

export function readConfigFile(path: string, field: string, json = false): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(
      `${field}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
  if (!json) return text;
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ConfigError(`${field}: ${path} is not JSON (${(e as Error).message})`);
  }
}

/**
 * Writes `path` whole or not at all: into a temporary file beside it, then renamed over it, so that
 * a tool polling for one of the node's output files (the sandbox, a script waiting on a node)
 * never reads it empty or half written.
 */
export function writeFileAtomically(path: string, data: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}
