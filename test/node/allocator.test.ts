import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { CcfError } from "../../src/errors.js";
import {
  ALLOCATOR_VARIABLE,
  jemallocCandidates,
  nodeAllocator,
  runningAllocator,
} from "../../src/node/allocator.js";

const JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
const linuxWith =
  (...present: string[]) =>
  (): { platform: string; exists: (p: string) => boolean } => ({
    platform: "linux",
    exists: (p) => present.includes(p),
  });

describe("the nodes' memory allocator", () => {
  it("preloads jemalloc when it is installed and nothing else is asked for", () => {
    const choice = nodeAllocator({ PATH: "/bin" }, linuxWith(JEMALLOC)());
    assert.equal(choice.allocator, "jemalloc");
    assert.equal(choice.library, JEMALLOC);
    assert.equal(choice.env.LD_PRELOAD, JEMALLOC);
    assert.equal(choice.env.PATH, "/bin", "the rest of the environment is kept");
  });

  it("falls back to the system's allocator when jemalloc is not installed", () => {
    const env = { PATH: "/bin" };
    const choice = nodeAllocator(env, linuxWith()());
    assert.equal(choice.allocator, "system");
    assert.equal(choice.env.LD_PRELOAD, undefined);
  });

  it("looks where distributions install jemalloc", () => {
    const candidates = jemallocCandidates("arm64");
    assert.equal(candidates[0], "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2");
    const fedora = nodeAllocator({}, linuxWith("/usr/lib64/libjemalloc.so.2")());
    assert.equal(fedora.env.LD_PRELOAD, "/usr/lib64/libjemalloc.so.2");
  });

  it("uses the system's allocator when asked, even with jemalloc installed", () => {
    const choice = nodeAllocator({ [ALLOCATOR_VARIABLE]: "system" }, linuxWith(JEMALLOC)());
    assert.equal(choice.allocator, "system");
    assert.equal(choice.env.LD_PRELOAD, undefined);
  });

  it("leaves an LD_PRELOAD set by the user as it is", () => {
    const mine = nodeAllocator({ LD_PRELOAD: "/opt/libmine.so" }, linuxWith(JEMALLOC)());
    assert.equal(mine.allocator, "preloaded");
    assert.equal(mine.env.LD_PRELOAD, "/opt/libmine.so");
    const theirs = nodeAllocator({ LD_PRELOAD: JEMALLOC }, linuxWith(JEMALLOC)());
    assert.equal(theirs.allocator, "jemalloc");
    // Kept even with CCF_TS_ALLOCATOR=system, and reported as what it preloads, not as "system".
    const kept = nodeAllocator(
      { LD_PRELOAD: "/opt/libmine.so", [ALLOCATOR_VARIABLE]: "system" },
      linuxWith(JEMALLOC)(),
    );
    assert.equal(kept.allocator, "preloaded");
    assert.equal(kept.env.LD_PRELOAD, "/opt/libmine.so");
  });

  it("preloads a library named by its path", () => {
    const choice = nodeAllocator(
      { [ALLOCATOR_VARIABLE]: "/opt/libmimalloc.so.2" },
      linuxWith("/opt/libmimalloc.so.2")(),
    );
    assert.equal(choice.allocator, "preloaded");
    assert.equal(choice.env.LD_PRELOAD, "/opt/libmimalloc.so.2");
  });

  it("names the problem when the choice cannot be had", () => {
    const cases: Array<[NodeJS.ProcessEnv, string, RegExp]> = [
      [{ [ALLOCATOR_VARIABLE]: "jemalloc" }, "linux", /libjemalloc\.so\.2 is not installed/],
      [{ [ALLOCATOR_VARIABLE]: "/opt/nothing.so" }, "linux", /\/opt\/nothing\.so: no such file/],
      [{ [ALLOCATOR_VARIABLE]: "snmalloc" }, "linux", /expected jemalloc, system or the absolute/],
      [{ [ALLOCATOR_VARIABLE]: "jemalloc" }, "darwin", /only supported on Linux/],
    ];
    for (const [env, platform, message] of cases) {
      assert.throws(
        () => nodeAllocator(env, { platform, exists: () => false }),
        (e: unknown) => e instanceof CcfError && message.test(e.message),
        JSON.stringify(env),
      );
    }
    // Elsewhere than Linux, nothing asked: the system's allocator, no error.
    assert.equal(nodeAllocator({}, { platform: "darwin", exists: () => true }).allocator, "system");
  });

  it("a process started with the chosen environment runs with that allocator", () => {
    const choice = nodeAllocator({ ...process.env, LD_PRELOAD: "", [ALLOCATOR_VARIABLE]: "" });
    const module = pathToFileURL(join(import.meta.dirname, "../../src/node/allocator.ts")).href;
    const script = `import(${JSON.stringify(module)}).then((m) => process.stdout.write(m.runningAllocator()))`;
    const run = (env: NodeJS.ProcessEnv) =>
      spawnSync(process.execPath, ["--import", "tsx", "-e", script], { env, encoding: "utf8" });
    const chosen = run(choice.env);
    assert.equal(chosen.status, 0, chosen.stderr);
    assert.equal(chosen.stdout, choice.allocator === "jemalloc" ? "jemalloc" : "system");
    const system = run({ ...process.env, LD_PRELOAD: "" });
    assert.equal(system.stdout, "system");
    if (jemallocCandidates().some((p) => existsSync(p)) && process.platform === "linux") {
      assert.equal(choice.allocator, "jemalloc", "jemalloc is installed: it is the default");
    }
    // This test process was started by the test runner, not through nodeAllocator.
    assert.ok(["system", "jemalloc", "mimalloc", "tcmalloc"].includes(runningAllocator()));
  });
});
