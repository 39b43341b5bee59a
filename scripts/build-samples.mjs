#!/usr/bin/env node
// Builds the sample JavaScript apps (samples/apps/<name>/) into CCF app bundles, as CCF's own
// app build does: rollup (node-resolve + typescript, preserveModules under src/) writes
// dist/src/**.js, app.json is copied to dist/, and dist/bundle.json is written in the layout of
// @microsoft/ccf-app's `ccf-build-bundle`:
//   {"metadata": <app.json>, "modules": [{"name": "<path relative to dist/src>", "module": "<source>"}]}
//
// Usage: node scripts/build-samples.mjs [--out-dir DIR] [--source-maps] [APP...]
//   APP            app names under samples/apps/ or test/fixtures/apps/ (default: every folder
//                  there with an app.json; the test fixtures' apps build into their own dist/ the
//                  same way)
//   --out-dir      write <DIR>/<app>/ instead of samples/apps/<app>/dist/ (used by tests)
//   --source-maps  end every module with an inline source map (`//# sourceMappingURL=data:...`, a
//                  plain comment, so CCF accepts the bundle), its sources named from the app's
//                  folder (`src/x.ts`) and their text left out. An app whose tsconfig.json sets
//                  `compilerOptions.sourceMap` gets them without the flag.
// Silent on success; on failure prints what failed and exits 1.
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { rollup } from "rollup";
import { nodeResolve } from "@rollup/plugin-node-resolve";
import typescript from "@rollup/plugin-typescript";
import ts from "typescript";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const appsDir = join(root, "samples", "apps");
// Apps built only for the tests (e.g. ccf-app-check, which the e2e tests deploy).
const testAppsDir = join(root, "test", "fixtures", "apps");
const appsDirs = [appsDir, testAppsDir];

/** The folder of an app, by name: under samples/apps/, else under test/fixtures/apps/. */
function appDirOf(name) {
  return appsDirs.map((d) => join(d, name)).find((d) => existsSync(d)) ?? join(appsDir, name);
}

class BuildError extends Error {}

function parseArgs(argv) {
  const apps = [];
  let outDir;
  let sourceMaps = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--out-dir") {
      outDir = argv[++i];
      if (outDir === undefined) throw new BuildError("--out-dir needs a directory");
      outDir = resolve(outDir);
    } else if (arg.startsWith("--out-dir=")) {
      outDir = resolve(arg.slice("--out-dir=".length));
    } else if (arg === "--source-maps") {
      sourceMaps = true;
    } else if (arg === "-h" || arg === "--help") {
      console.log("usage: node scripts/build-samples.mjs [--out-dir DIR] [--source-maps] [APP...]");
      process.exit(0);
    } else if (arg.startsWith("-")) {
      throw new BuildError(`unknown option ${arg}`);
    } else {
      apps.push(arg);
    }
  }
  if (apps.length === 0) {
    for (const dir of appsDirs.filter((d) => existsSync(d))) {
      for (const name of readdirSync(dir).sort()) {
        if (existsSync(join(dir, name, "app.json"))) apps.push(name);
      }
    }
  }
  return { apps, outDir, sourceMaps };
}

/** The distinct `js_module` values of an app.json, checked for shape. */
function jsModules(metadata, appJsonPath) {
  const endpoints = metadata?.endpoints;
  if (endpoints === null || typeof endpoints !== "object") {
    throw new BuildError(`${appJsonPath}: no "endpoints" object`);
  }
  const modules = new Set();
  for (const [path, verbs] of Object.entries(endpoints)) {
    for (const [verb, props] of Object.entries(verbs ?? {})) {
      if (typeof props?.js_module !== "string" || typeof props?.js_function !== "string") {
        throw new BuildError(
          `${appJsonPath}: ${verb.toUpperCase()} ${path} needs js_module and js_function`,
        );
      }
      modules.add(props.js_module.replace(/^\//, ""));
    }
  }
  if (modules.size === 0) throw new BuildError(`${appJsonPath}: no endpoints`);
  return [...modules].sort();
}

/** Every file under dir, breadth first as ccf-build-bundle walks it (entries sorted, for a reproducible bundle). */
function allFiles(dir) {
  const pending = [dir];
  const files = [];
  for (const path of pending) {
    if (statSync(path).isDirectory()) {
      for (const entry of readdirSync(path).sort()) pending.push(join(path, entry));
    } else {
      files.push(path);
    }
  }
  return files;
}

/** TypeScript's diagnostics carry colour codes: keep them for a terminal only. */
function plain(text) {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching ANSI escape sequences
  return process.stderr.isTTY ? text : text.replace(/\x1b\[[0-9;]*m/g, "");
}

function formatWarning(w) {
  const where = w.loc
    ? `${relative(root, w.loc.file ?? w.id ?? "")}:${w.loc.line}:${w.loc.column}: `
    : w.id
      ? `${relative(root, w.id)}: `
      : "";
  return `${where}${w.message}`;
}

/** Whether the app's tsconfig.json asks for source maps (`sourceMap` or `inlineSourceMap`). */
function tsconfigWantsSourceMaps(tsconfigPath) {
  const { config, error } = ts.readConfigFile(tsconfigPath, ts.sys.readFile);
  if (error !== undefined) {
    throw new BuildError(
      `${relative(root, tsconfigPath)}: ${ts.flattenDiagnosticMessageText(error.messageText, "\n")}`,
    );
  }
  const options = config?.compilerOptions ?? {};
  return options.sourceMap === true || options.inlineSourceMap === true;
}

/**
 * A source as a stack trace should name it: relative to the app's folder (src/x.ts), or from
 * node_modules/ for a dependency outside it.
 */
function sourceName(appDir, mapPath, source) {
  const abs = resolve(dirname(mapPath), source);
  const rel = relative(appDir, abs).split(sep).join("/");
  if (!rel.startsWith("../")) return rel;
  const posix = abs.split(sep).join("/");
  const dep = posix.lastIndexOf("/node_modules/");
  return dep === -1 ? posix : posix.slice(dep + 1);
}

async function buildApp(name, outDir, sourceMapsFlag) {
  const appDir = appDirOf(name);
  const appJsonPath = join(appDir, "app.json");
  if (!existsSync(appJsonPath)) throw new BuildError(`${relative(root, appDir)}: no app.json`);
  let metadata;
  try {
    metadata = JSON.parse(readFileSync(appJsonPath, "utf-8"));
  } catch (e) {
    throw new BuildError(`${relative(root, appJsonPath)}: ${e.message}`);
  }
  const srcDir = join(appDir, "src");
  // Each module app.json names is built from src/<same path>.ts: those are the (usually single) inputs.
  const inputs = jsModules(metadata, relative(root, appJsonPath)).map((m) => {
    const ts = join(srcDir, m.replace(/\.js$/, ".ts"));
    if (!existsSync(ts))
      throw new BuildError(
        `${relative(root, appJsonPath)}: js_module ${m} has no source ${relative(root, ts)}`,
      );
    return ts;
  });

  const finalDir = outDir ? join(outDir, name) : join(appDir, "dist");
  // Build beside the destination, then swap it in, so a reader never sees a half-written dist.
  const stageDir = `${finalDir}.tmp-${process.pid}`;
  rmSync(stageDir, { recursive: true, force: true });
  mkdirSync(stageDir, { recursive: true });

  const tsconfig = join(appDir, "tsconfig.json");
  const sourceMaps = sourceMapsFlag || (existsSync(tsconfig) && tsconfigWantsSourceMaps(tsconfig));

  const warnings = [];
  try {
    const bundle = await rollup({
      input: inputs,
      plugins: [
        nodeResolve(),
        typescript({
          tsconfig,
          include: [join(srcDir, "**/*.ts")],
          outDir: join(stageDir, "src"),
          noEmitOnError: true,
          // Rollup chains TypeScript's maps into its own; the module's inline map replaces both.
          sourceMap: sourceMaps,
          inlineSourceMap: false,
          inlineSources: false,
          // Absolute, so that rollup finds the .ts files (TypeScript names them from its outDir).
          ...(sourceMaps ? { sourceRoot: srcDir } : {}),
        }),
      ],
      onwarn: (w) => warnings.push(w),
    });
    try {
      await bundle.write({
        dir: join(stageDir, "src"),
        format: "es",
        preserveModules: true,
        preserveModulesRoot: srcDir,
        ...(sourceMaps
          ? {
              sourcemap: "inline",
              sourcemapExcludeSources: true,
              // Sources as the app's author sees them: relative to the app's folder (src/x.ts).
              sourcemapPathTransform: (source, mapPath) => sourceName(appDir, mapPath, source),
            }
          : {}),
      });
    } finally {
      await bundle.close();
    }
    if (warnings.length > 0) {
      throw new BuildError(
        `rollup warnings (treated as errors):\n  ${warnings.map(formatWarning).join("\n  ")}`,
      );
    }

    cpSync(appJsonPath, join(stageDir, "app.json"));
    const builtSrc = join(stageDir, "src");
    const modules = allFiles(builtSrc).map((file) => ({
      name: relative(builtSrc, file).split(sep).join("/"),
      module: readFileSync(file, "utf-8"),
    }));
    const names = new Set(modules.map((m) => m.name));
    for (const m of jsModules(metadata, "app.json")) {
      if (!names.has(m)) throw new BuildError(`the build has no module ${m}, which app.json names`);
    }
    writeFileSync(join(stageDir, "bundle.json"), JSON.stringify({ metadata, modules }));

    rmSync(finalDir, { recursive: true, force: true });
    renameSync(stageDir, finalDir);
  } catch (e) {
    rmSync(stageDir, { recursive: true, force: true });
    if (e instanceof BuildError) throw e;
    const at = e.loc ? `${e.loc.line}:${e.loc.column}` : undefined;
    const loc =
      at && !String(e.message).includes(at)
        ? ` (${relative(root, e.loc.file ?? e.id ?? "")}:${at})`
        : "";
    throw new BuildError(`${e.message}${loc}${e.frame ? `\n${e.frame}` : ""}`);
  }
}

try {
  const { apps, outDir, sourceMaps } = parseArgs(process.argv.slice(2));
  if (apps.length === 0)
    throw new BuildError(`no apps under ${relative(process.cwd(), appsDir) || "."}`);
  const results = await Promise.allSettled(apps.map((name) => buildApp(name, outDir, sourceMaps)));
  let failed = false;
  results.forEach((r, i) => {
    if (r.status === "rejected") {
      failed = true;
      const msg =
        r.reason instanceof BuildError ? r.reason.message : (r.reason?.stack ?? String(r.reason));
      console.error(plain(`build-samples: ${apps[i]}: ${msg}`));
    }
  });
  // Exit explicitly: after a type error, @rollup/plugin-typescript can leave its TypeScript watch
  // program's handles open, which would keep the process alive.
  process.exit(failed ? 1 : 0);
} catch (e) {
  console.error(`build-samples: ${e instanceof BuildError ? e.message : (e?.stack ?? e)}`);
  process.exit(1);
}
