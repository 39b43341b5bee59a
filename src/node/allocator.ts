// The memory allocator the nodes run with. Node's own is glibc's malloc, which a node's main
// thread spends ~6 % of a request in (the ArrayBuffers of every frame, guest value and response
// body come and go through it); jemalloc serves the same calls for less (see bench/RESULTS.md).
// CCF itself ships its own allocator (snmalloc) for the same reason. A process picks its
// allocator when it starts, so the choice is made by whoever starts a node: the sandbox, and
// the tests and benchmarks, preload jemalloc when the system has it (Debian: libjemalloc2).
//
// CCF_TS_ALLOCATOR chooses: unset (jemalloc if installed, else the system's), `jemalloc`
// (required), `system`, or the absolute path of a shared library to preload. An LD_PRELOAD set
// already is left as it is, and reported as what it preloads.

import { existsSync, readFileSync } from "node:fs";
import { isAbsolute } from "node:path";
import { CcfError } from "../errors.js";

export const ALLOCATOR_VARIABLE = "CCF_TS_ALLOCATOR";

export interface AllocatorChoice {
  /** What the node will run with: `jemalloc`, `system`, or `preloaded` (another library, named
   * by path in CCF_TS_ALLOCATOR or in an LD_PRELOAD set before). */
  allocator: "jemalloc" | "system" | "preloaded";
  /** The library preloaded, if any. */
  library?: string;
  /** The environment to start the node with. */
  env: NodeJS.ProcessEnv;
}

const MULTIARCH: Partial<Record<string, string>> = {
  x64: "x86_64-linux-gnu",
  arm64: "aarch64-linux-gnu",
};

/** Where distributions install jemalloc's shared library, most specific first. */
export function jemallocCandidates(arch: string = process.arch): string[] {
  const multiarch = MULTIARCH[arch];
  return [
    ...(multiarch === undefined ? [] : [`/usr/lib/${multiarch}/libjemalloc.so.2`]),
    "/usr/lib64/libjemalloc.so.2",
    "/usr/lib/libjemalloc.so.2",
    "/usr/local/lib/libjemalloc.so.2",
  ];
}

/**
 * The environment to start a node process with, from `env` (the caller's). Throws a CcfError
 * naming the problem when CCF_TS_ALLOCATOR asks for what cannot be had.
 */
export function nodeAllocator(
  env: NodeJS.ProcessEnv = process.env,
  probe: { platform: string; exists: (path: string) => boolean } = {
    platform: process.platform,
    exists: existsSync,
  },
): AllocatorChoice {
  const wanted = env[ALLOCATOR_VARIABLE] ?? "";
  const preloaded = env.LD_PRELOAD ?? "";
  if (wanted !== "" && wanted !== "system" && wanted !== "jemalloc" && !isAbsolute(wanted)) {
    throw new CcfError(
      "InvalidArgument",
      `${ALLOCATOR_VARIABLE}=${wanted}: expected jemalloc, system or the absolute path of a shared library`,
    );
  }
  // Kept whatever CCF_TS_ALLOCATOR says (it may hold other libraries), and reported as it is.
  if (preloaded !== "") {
    return { allocator: isJemalloc(preloaded) ? "jemalloc" : "preloaded", library: preloaded, env };
  }
  if (wanted === "system") return { allocator: "system", env };
  if (probe.platform !== "linux") {
    if (wanted === "") return { allocator: "system", env };
    throw new CcfError(
      "InvalidArgument",
      `${ALLOCATOR_VARIABLE}=${wanted}: preloading an allocator is only supported on Linux`,
    );
  }
  if (isAbsolute(wanted)) {
    if (!probe.exists(wanted)) {
      throw new CcfError("InvalidArgument", `${ALLOCATOR_VARIABLE}=${wanted}: no such file`);
    }
    return {
      allocator: isJemalloc(wanted) ? "jemalloc" : "preloaded",
      library: wanted,
      env: { ...env, LD_PRELOAD: wanted },
    };
  }
  const library = jemallocCandidates().find((p) => probe.exists(p));
  if (library === undefined) {
    if (wanted === "") return { allocator: "system", env };
    throw new CcfError(
      "InvalidArgument",
      `${ALLOCATOR_VARIABLE}=jemalloc: libjemalloc.so.2 is not installed (Debian: apt-get install libjemalloc2)`,
    );
  }
  return { allocator: "jemalloc", library, env: { ...env, LD_PRELOAD: library } };
}

/** `jemalloc (/usr/lib/...)`: the choice as the sandbox and the benchmarks print it. */
export function describeAllocator(choice: AllocatorChoice): string {
  return choice.library === undefined
    ? choice.allocator
    : `${choice.allocator} (${choice.library})`;
}

function isJemalloc(library: string): boolean {
  return /(^|\/)libjemalloc[^/]*$/.test(library);
}

/**
 * The allocator this process runs with, as its mapped libraries show: a preloaded jemalloc,
 * mimalloc or tcmalloc by name, otherwise `system`.
 */
export function runningAllocator(): string {
  let maps: string;
  try {
    maps = readFileSync("/proc/self/maps", "utf8");
  } catch {
    return "system";
  }
  for (const name of ["jemalloc", "mimalloc", "tcmalloc"]) {
    if (maps.includes(`lib${name}`)) return name;
  }
  return "system";
}
