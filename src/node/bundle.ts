// JS app bundles as CCF's tools make them: a `bundle.json` ({metadata: app.json, modules: [{name,
// module}]}), or a folder laid out as CCF's (`app.json` + `src/**`), read into the rows that
// `set_js_app` writes: `public:ccf.gov.modules` ("/" + name → source) and
// `public:ccf.gov.endpoints` ("METHOD /path" → properties with js_module prefixed by "/").

import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { encodeValue, SINGLETON_KEY, Tables, type Tx } from "../kv/index.js";
import { parsePolicies } from "../rpc/index.js";
import { ConfigError } from "./config.js";

export interface AppBundle {
  metadata: { endpoints: Record<string, Record<string, Record<string, unknown>>> };
  modules: Array<{ name: string; module: string }>;
}

function readJson(path: string, field: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as unknown;
  } catch (e) {
    throw new ConfigError(`${field}: cannot read ${path} (${(e as Error).message})`);
  }
}

function listSources(dir: string): string[] {
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => statSync(join(dir, f)).isFile())
    .sort();
}

/** Reads a bundle from a bundle.json file, a folder holding one (or dist/bundle.json), or app.json + src/. */
export function loadBundle(path: string, field = "js_app_bundle"): AppBundle {
  if (!existsSync(path)) throw new ConfigError(`${field}: ${path} does not exist`);
  let bundle: unknown;
  if (statSync(path).isFile()) bundle = readJson(path, field);
  else if (existsSync(join(path, "bundle.json")))
    bundle = readJson(join(path, "bundle.json"), field);
  else if (existsSync(join(path, "dist", "bundle.json")))
    bundle = readJson(join(path, "dist", "bundle.json"), field);
  else if (existsSync(join(path, "app.json")) && existsSync(join(path, "src"))) {
    const src = join(path, "src");
    bundle = {
      metadata: readJson(join(path, "app.json"), field),
      modules: listSources(src).map((f) => ({
        name: relative(src, join(src, f)).split(sep).join("/"),
        module: readFileSync(join(src, f), "utf8"),
      })),
    };
  } else {
    throw new ConfigError(`${field}: ${path} holds neither bundle.json nor app.json with src/`);
  }
  return checkBundle(bundle, field);
}

/** Checks a bundle's shape and that each endpoint's module is in it (a ConfigError naming the problem). */
export function checkBundle(b: unknown, field: string): AppBundle {
  const bundle = b as Partial<AppBundle>;
  if (bundle === null || typeof bundle !== "object" || !Array.isArray(bundle.modules)) {
    throw new ConfigError(`${field}: a bundle has "metadata" and a "modules" array`);
  }
  const endpoints = bundle.metadata?.endpoints;
  if (endpoints === undefined || typeof endpoints !== "object") {
    throw new ConfigError(`${field}: metadata.endpoints is missing`);
  }
  const names = new Set(bundle.modules.map((m) => m.name));
  for (const [path, methods] of Object.entries(endpoints)) {
    for (const [method, props] of Object.entries(methods)) {
      const where = `${field}: ${method.toUpperCase()} ${path}`;
      if (typeof props.js_module !== "string" || !names.has(props.js_module)) {
        throw new ConfigError(
          `${where}: js_module ${String(props.js_module)} is not in the bundle`,
        );
      }
      if (typeof props.js_function !== "string")
        throw new ConfigError(`${where}: js_function is required`);
      try {
        parsePolicies(props.authn_policies, where);
      } catch (e) {
        throw new ConfigError((e as Error).message);
      }
    }
  }
  return bundle as AppBundle;
}

/** Writes the bundle as `set_js_app` does. */
export function writeBundle(tx: Tx, bundle: AppBundle): void {
  for (const m of bundle.modules) {
    tx.map(Tables.MODULES).set(Buffer.from(`/${m.name}`), encodeValue(Tables.MODULES, m.module));
  }
  for (const [path, methods] of Object.entries(bundle.metadata.endpoints)) {
    for (const [method, props] of Object.entries(methods)) {
      const value = { ...props, js_module: `/${String(props.js_module)}` };
      tx.map(Tables.ENDPOINTS).set(
        Buffer.from(`${method.toUpperCase()} ${path}`),
        encodeValue(Tables.ENDPOINTS, value),
      );
    }
  }
  tx.map(Tables.INTERPRETER_FLUSH).set(SINGLETON_KEY, encodeValue(Tables.INTERPRETER_FLUSH, true));
}
