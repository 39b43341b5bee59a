// `ccf-ts node --config FILE [--log-level L] [--check]`: validates the config (and that the files
// it names exist), or runs the node until SIGTERM / SIGINT, then stops it cleanly.

import { CcfError } from "../errors.js";
import { runningAllocator } from "./allocator.js";
import { ConfigError, inputFileIssues, loadNodeConfig } from "./config.js";
import { createLogger, LOG_LEVELS, type LogLevel } from "./log.js";
import { Node } from "./node.js";

export interface NodeCommandOptions {
  config: string;
  logLevel?: string;
  check?: boolean;
}

export async function runNodeCommand(opts: NodeCommandOptions): Promise<number> {
  const level = (opts.logLevel ?? "info") as LogLevel;
  if (!LOG_LEVELS.includes(level)) {
    throw new CcfError("InvalidArgument", `--log-level must be one of ${LOG_LEVELS.join(", ")}`);
  }
  const config = loadNodeConfig(opts.config);
  if (opts.check === true) {
    // Beyond the schema: every file the node would read at start is there.
    const missing = inputFileIssues(config);
    if (missing.length > 0) throw new ConfigError(missing);
    process.stdout.write(`${opts.config}: configuration is valid\n`);
    return 0;
  }
  const log = createLogger(level);
  log.info({ allocator: runningAllocator() }, "memory allocator");
  const node = await Node.start(config, log);
  await new Promise<void>((resolve) => {
    let stopping = false;
    // Stay subscribed: a second signal (Ctrl+C reaches the whole process group, and the sandbox
    // forwards it too) must not kill the node halfway through a clean stop.
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, "stopping");
      resolve();
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });
  await node.stop();
  return 0;
}
