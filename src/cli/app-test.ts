// `ccf-ts app test [--bundle FILE] [FILES...]`: runs an app's unit tests with `node --test`, each
// test file able to `loadApp()` (ccf-ts/testing) the bundle named by $CCF_TS_APP_BUNDLE.

import { spawn } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { CcfError } from "../errors.js";

/** `test/**\/*.test.{js,mjs}` under `cwd`, sorted (Node 20's --test does not expand globs). */
function defaultTestFiles(cwd: string): string[] {
  const dir = join(cwd, "test");
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => /\.test\.m?js$/.test(f))
    .map((f) => join("test", f))
    .sort();
}

/** Runs the tests; resolves to node --test's exit code. */
export async function appTest(opts: {
  bundle: string;
  files: string[];
  cwd?: string;
}): Promise<number> {
  const cwd = opts.cwd ?? process.cwd();
  const bundle = resolve(cwd, opts.bundle);
  if (!existsSync(bundle)) {
    throw new CcfError(
      "InvalidArgument",
      `--bundle ${opts.bundle}: no such file (build the app first)`,
    );
  }
  const files = opts.files.length > 0 ? opts.files : defaultTestFiles(cwd);
  if (files.length === 0) {
    throw new CcfError(
      "InvalidArgument",
      "no test files: none given and none match test/**/*.test.{js,mjs}",
    );
  }
  for (const f of files) {
    if (!existsSync(resolve(cwd, f)))
      throw new CcfError("InvalidArgument", `test file ${f}: no such file`);
  }
  // Imported here: the harness pulls in the JS runtime, which other subcommands do not need.
  const { APP_BUNDLE_ENV } = await import("../testing/index.js");
  const env: NodeJS.ProcessEnv = { ...process.env, [APP_BUNDLE_ENV]: bundle };
  // Set when this command itself runs under node --test: it would make the child report to that
  // runner instead of running its own.
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, ["--test", ...files], { cwd, stdio: "inherit", env });
  return new Promise((done, fail) => {
    child.on("error", fail);
    child.on("close", (code) => done(code ?? 1));
  });
}

export function registerAppTest(program: Command, setExitCode: (code: number) => void): void {
  const app = program.command("app").description("JS applications");
  app
    .command("test")
    .description(
      "run an app's unit tests (node --test) against its bundle in-process; tests call loadApp() from ccf-ts/testing",
    )
    .argument("[files...]", "test files (default: test/**/*.test.{js,mjs})")
    .option("--bundle <file>", "the app's bundle.json", "dist/bundle.json")
    .action(async (files: string[], opts: { bundle: string }) => {
      setExitCode(await appTest({ bundle: opts.bundle, files }));
    });
}
