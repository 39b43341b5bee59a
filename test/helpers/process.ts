// Helpers for tests that run real processes: spawning the ccf-ts CLI from source, and waiting on a
// condition with a deadline (never a fixed sleep).

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { nodeAllocator } from "../../src/node/allocator.js";

const CLI = join(import.meta.dirname, "ccf-ts-cli.ts");
/** The installed command, which runs the compiled build (dist/): what benchmarks measure. */
const BUILT_CLI = join(import.meta.dirname, "..", "..", "bin", "ccf-ts.js");
// Resolved here, not from the child's working directory (tests run nodes in temp folders).
const TSX = import.meta.resolve("tsx");

export function ccfTsArgs(...args: string[]): string[] {
  return ["--import", TSX, CLI, ...args];
}

/** Runs the CLI to completion. */
export function runCcfTs(args: string[], cwd?: string) {
  return spawnSync(process.execPath, ccfTsArgs(...args), {
    encoding: "utf8",
    cwd,
    timeout: 60_000,
  });
}

/**
 * Starts the CLI as a long-running child (its output collected): from the sources, or with `built`
 * the compiled build (`npm run build` first), as users run it. With `logFile` its output goes to
 * that file (read back by `output()`) rather than through a pipe into this process: benchmarks use
 * it, so that the load generator does not also carry the nodes' logs (etcd's go to a file too).
 */
export function startCcfTs(
  args: string[],
  cwd?: string,
  built = false,
  logFile?: string,
): ChildProcess & { output: () => string } {
  const argv = built ? [BUILT_CLI, ...args] : ccfTsArgs(...args);
  // Nodes run with the allocator the sandbox gives them (jemalloc when installed).
  const { env } = nodeAllocator();
  if (logFile !== undefined) {
    const fd = openSync(logFile, "a");
    try {
      const child = spawn(process.execPath, argv, { cwd, stdio: ["ignore", fd, fd], env });
      return Object.assign(child, {
        output: () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : ""),
      });
    } finally {
      closeSync(fd);
    }
  }
  const child = spawn(process.execPath, argv, {
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
    env,
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  return Object.assign(child, { output: () => out });
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${what}${lastError instanceof Error ? `: ${lastError.message}` : ""}`,
      );
    }
    await delay(50);
  }
}

/**
 * Starts `ccf-ts node` on `config` (written to `dir/config.json`) and waits until it has written
 * its RPC address file; returns the process and the base URL of its primary RPC interface.
 */
export async function startNode(
  dir: string,
  config: Record<string, unknown>,
  built = false,
  /** Its output to `dir/node.log` instead of this process (see `startCcfTs`). */
  logToFile = false,
): Promise<{ node: ReturnType<typeof startCcfTs>; base: string }> {
  const file = join(dir, "config.json");
  writeFileSync(file, JSON.stringify(config));
  const node = startCcfTs(
    ["node", "--config", file],
    dir,
    built,
    logToFile ? join(dir, "node.log") : undefined,
  );
  let addresses: Record<string, string> | "exited";
  try {
    addresses = await waitFor("the node to listen", () => {
      // An exit is final: no point waiting out the deadline.
      if (node.exitCode !== null) return "exited" as const;
      const path = join(dir, "rpc_addresses.json");
      return existsSync(path)
        ? (JSON.parse(readFileSync(path, "utf8")) as Record<string, string>)
        : undefined;
    });
  } catch (e) {
    // The caller never gets the process: do not leave it running. Its output says why it failed.
    if (node.exitCode === null) node.kill("SIGKILL");
    throw new Error(`${e instanceof Error ? e.message : String(e)}\nnode output:\n${tail(node)}`, {
      cause: e,
    });
  }
  if (addresses === "exited") {
    throw new Error(`the node exited (${node.exitCode}) before listening:\n${tail(node)}`);
  }
  return { node, base: `https://${addresses.primary_rpc_interface}` };
}

/** The end of a child's output, for error messages. */
function tail(child: { output: () => string }): string {
  return child.output().slice(-2000);
}
