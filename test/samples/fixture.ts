// Builds the sample apps into a temporary directory (never the normal samples/apps/*/dist, which a
// running sandbox may be reading) and loads a bundle's modules the way CCF does: from bundle.json,
// by module name, with relative imports only.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const appsDir = join(repoRoot, "samples", "apps");

export interface EndpointProps {
  js_module: string;
  js_function: string;
  forwarding_required: string;
  redirection_strategy?: string;
  authn_policies: (string | { all_of: string[] })[];
  mode: string;
  openapi?: Record<string, unknown>;
  interpreter_reuse?: { key: string };
}

export interface AppMetadata {
  endpoints: Record<string, Record<string, EndpointProps>>;
}

export interface Bundle {
  metadata: AppMetadata;
  modules: { name: string; module: string }[];
}

export interface Build {
  outDir: string;
  stdout: string;
  stderr: string;
  status: number | null;
  bundle(app: string): Bundle;
  cleanup(): void;
}

/** Runs scripts/build-samples.mjs into a fresh temporary directory, from an unrelated working directory. */
export function buildSamples(): Build {
  const outDir = mkdtempSync(join(tmpdir(), "ccf-ts-samples-"));
  const r = spawnSync(
    process.execPath,
    [join(repoRoot, "scripts", "build-samples.mjs"), "--out-dir", outDir],
    { cwd: outDir, encoding: "utf8", timeout: 120_000 },
  );
  return {
    outDir,
    stdout: r.stdout,
    stderr: r.stderr,
    status: r.status,
    bundle: (app) => JSON.parse(readFileSync(join(outDir, app, "bundle.json"), "utf8")) as Bundle,
    cleanup: () => rmSync(outDir, { recursive: true, force: true }),
  };
}

/** The app.json of a sample, from its source folder. */
export function appJson(app: string): AppMetadata {
  return JSON.parse(readFileSync(join(appsDir, app, "app.json"), "utf8")) as AppMetadata;
}

const materialized = new Set<string>();

/**
 * Writes a bundle's modules under dir (one file per module name) and imports the named module.
 * Every folder gets a package.json {"type":"module"}: CCF's modules are all ES modules, and Node
 * would otherwise take files under a `node_modules/` folder without package.json for CommonJS.
 * The `ccf` global must be installed (e.g. by the polyfill) before this is called.
 */
export async function loadModule(bundle: Bundle, dir: string, name: string): Promise<unknown> {
  if (!materialized.has(dir)) {
    for (const m of bundle.modules) {
      const file = join(dir, ...m.name.split("/"));
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(join(dirname(file), "package.json"), '{"type":"module"}\n');
      writeFileSync(file, m.module);
    }
    materialized.add(dir);
  }
  assert.ok(
    bundle.modules.some((m) => m.name === name),
    `bundle has no module ${name}`,
  );
  return import(pathToFileURL(join(dir, ...name.split("/"))).href);
}

export interface FakeRequestInit {
  method?: string;
  route?: string;
  path?: string;
  query?: string;
  headers?: Record<string, string>;
  params?: Record<string, string>;
  body?: string | Uint8Array | object;
  caller?: unknown;
}

/** A Request object shaped like the one CCF passes to a handler (ccf-app's `Request`). */
export function fakeRequest(init: FakeRequestInit = {}) {
  const bytes =
    init.body === undefined
      ? new Uint8Array(0)
      : typeof init.body === "string"
        ? new TextEncoder().encode(init.body)
        : init.body instanceof Uint8Array
          ? init.body
          : new TextEncoder().encode(JSON.stringify(init.body));
  const query = init.query ?? "";
  const path = init.path ?? "/app/";
  return {
    method: init.method ?? "GET",
    headers: init.headers ?? {},
    params: init.params ?? {},
    query,
    path,
    route: init.route ?? path,
    url: query === "" ? path : `${path}?${query}`,
    hostname: "127.0.0.1:8000",
    caller: init.caller,
    body: {
      text: () => new TextDecoder().decode(bytes),
      json: () => JSON.parse(new TextDecoder().decode(bytes)) as unknown,
      arrayBuffer: () =>
        bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
    },
  };
}

export interface HandlerResponse {
  statusCode?: number;
  headers?: Record<string, string>;
  body?: unknown;
}

export type Handler = (request: ReturnType<typeof fakeRequest>) => HandlerResponse;

/** The HTTP status CCF derives from a handler's response. */
export const statusOf = (r: HandlerResponse): number => r.statusCode ?? 200;
