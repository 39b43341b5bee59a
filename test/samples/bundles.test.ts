// scripts/build-samples.mjs: builds both sample apps quietly, from any working directory, into
// CCF's layout (app.json + src/ + bundle.json as ccf-build-bundle writes it), with modules CCF can
// load (ES modules, relative imports only, every js_module of app.json present and exporting its
// js_function), and fails loudly. Also pins the app.json endpoint properties taken from CCF.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseAst } from "rollup/parseAst";
import {
  type AppMetadata,
  type Build,
  appJson,
  appsDir,
  buildSamples,
  loadModule,
  repoRoot,
} from "./fixture.js";
import "@microsoft/ccf-app/polyfill.js";

const APPS = ["basic", "logging"];

/** Every (verb, path) → props of an app.json, as "VERB path". */
function endpointList(metadata: AppMetadata) {
  return Object.entries(metadata.endpoints).flatMap(([path, verbs]) =>
    Object.entries(verbs).map(([verb, props]) => ({ key: `${verb.toUpperCase()} ${path}`, props })),
  );
}

/** Specifiers of every static import/re-export and dynamic import() of a module's AST. */
function importSpecifiers(source: string): string[] {
  const found: string[] = [];
  const visit = (node: unknown): void => {
    if (node === null || typeof node !== "object") return;
    if (Array.isArray(node)) {
      for (const n of node) visit(n);
      return;
    }
    const n = node as { type?: string; source?: { value?: unknown } };
    if (
      (n.type === "ImportDeclaration" ||
        n.type === "ExportAllDeclaration" ||
        n.type === "ExportNamedDeclaration" ||
        n.type === "ImportExpression") &&
      n.source &&
      typeof n.source.value === "string"
    ) {
      found.push(n.source.value);
    }
    for (const value of Object.values(node)) visit(value);
  };
  visit(parseAst(source));
  return found;
}

describe("build-samples", () => {
  let build: Build;
  before(() => {
    build = buildSamples();
  });
  after(() => build.cleanup());

  it("succeeds quietly, run from another working directory", () => {
    assert.equal(build.status, 0, build.stderr);
    assert.equal(build.stdout, "");
    assert.equal(build.stderr, "");
  });

  for (const app of APPS) {
    describe(app, () => {
      it("writes CCF's layout: app.json, src/ and bundle.json", () => {
        const dir = join(build.outDir, app);
        assert.deepEqual(JSON.parse(readFileSync(join(dir, "app.json"), "utf8")), appJson(app));
        assert.ok(existsSync(join(dir, "src", `${app}.js`)));
        assert.ok(existsSync(join(dir, "bundle.json")));
      });

      it("bundle.json is {metadata: app.json, modules: [{name, module}]} over dist/src", () => {
        const bundle = build.bundle(app);
        assert.deepEqual(Object.keys(bundle).sort(), ["metadata", "modules"]);
        assert.deepEqual(bundle.metadata, appJson(app));
        assert.ok(Array.isArray(bundle.modules) && bundle.modules.length > 0);
        const names = new Set<string>();
        for (const m of bundle.modules) {
          assert.deepEqual(Object.keys(m).sort(), ["module", "name"]);
          assert.equal(typeof m.module, "string");
          assert.ok(!m.name.startsWith("/"), `${m.name} has a leading /`);
          assert.ok(!m.name.includes("\\") && !m.name.split("/").includes(".."), m.name);
          assert.match(m.name, /\.js$/);
          assert.ok(!names.has(m.name), `duplicate module ${m.name}`);
          names.add(m.name);
          // Each module is the file of the same name under src/.
          assert.equal(m.module, readFileSync(join(build.outDir, app, "src", m.name), "utf8"));
        }
        for (const { key, props } of endpointList(bundle.metadata)) {
          assert.ok(names.has(props.js_module), `${key}: no module ${props.js_module}`);
        }
        // ccf-app's modules are bundled under node_modules/, as rollup names them in CCF's apps.
        assert.ok(names.has("node_modules/@microsoft/ccf-app/global.js"));
        assert.ok(names.has("node_modules/@microsoft/ccf-app/kv.js"));
      });

      it("every module is an ES module whose imports are relative and resolve inside the bundle", () => {
        const bundle = build.bundle(app);
        const names = new Set(bundle.modules.map((m) => m.name));
        for (const m of bundle.modules) {
          let specifiers: string[] = [];
          assert.doesNotThrow(() => {
            specifiers = importSpecifiers(m.module);
          }, `${m.name} does not parse as an ES module`);
          assert.doesNotMatch(m.module, /\brequire\(/, `${m.name} uses require()`);
          for (const s of specifiers) {
            // CCF has no node_modules resolution: bare specifiers cannot load.
            assert.ok(s.startsWith("./") || s.startsWith("../"), `${m.name} imports ${s}`);
            const target = posix.normalize(posix.join(posix.dirname(m.name), s));
            assert.ok(names.has(target), `${m.name} imports ${s}, not in the bundle`);
          }
        }
      });

      it("loads from bundle.json and exports every js_function app.json names", async () => {
        const bundle = build.bundle(app);
        const dir = join(build.outDir, `load-${app}`);
        for (const { key, props } of endpointList(bundle.metadata)) {
          const mod = (await loadModule(bundle, dir, props.js_module)) as Record<string, unknown>;
          assert.equal(typeof mod[props.js_function], "function", `${key}: ${props.js_function}`);
        }
      });
    });
  }

  it("fails with a clear message, exit 1, leaving the previous output in place", () => {
    // A copy of the basic app with a type error, built into its own temporary tree.
    const tmp = mkdtempSync(join(tmpdir(), "ccf-ts-samples-bad-"));
    try {
      const repo = join(tmp, "repo");
      cpSync(join(repoRoot, "scripts"), join(repo, "scripts"), { recursive: true });
      cpSync(join(appsDir, "basic"), join(repo, "samples", "apps", "basic"), {
        recursive: true,
        filter: (src) => !src.includes(`${join("basic", "dist")}`),
      });
      // The script resolves rollup from the repo; share this checkout's node_modules.
      cpSync(join(repoRoot, "package.json"), join(repo, "package.json"));
      symlinkSync(join(repoRoot, "node_modules"), join(repo, "node_modules"), "dir");
      const script = join(repo, "scripts", "build-samples.mjs");
      const ok = spawnSync(process.execPath, [script, "basic"], { cwd: tmp, encoding: "utf8" });
      assert.equal(ok.status, 0, ok.stderr);
      const bundlePath = join(repo, "samples", "apps", "basic", "dist", "bundle.json");
      const good = readFileSync(bundlePath, "utf8");

      const src = join(repo, "samples", "apps", "basic", "src", "basic.ts");
      writeFileSync(src, `${readFileSync(src, "utf8")}\nexport const broken: number = "text";\n`);
      const bad = spawnSync(process.execPath, [script, "basic"], {
        cwd: tmp,
        encoding: "utf8",
        timeout: 60_000,
      });
      assert.equal(bad.status, 1);
      assert.equal(bad.stdout, "");
      assert.match(bad.stderr, /build-samples: basic: .*TS2322/);
      assert.match(bad.stderr, /basic\.ts/);
      assert.equal(readFileSync(bundlePath, "utf8"), good);

      const unknown = spawnSync(process.execPath, [script, "no-such-app"], { encoding: "utf8" });
      assert.equal(unknown.status, 1);
      assert.match(unknown.stderr, /no-such-app: .*no app\.json/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe("sample app.json", () => {
  const COMMON = {
    js_module: "logging.js",
    interpreter_reuse: { key: "singleton_interpreter" },
  };
  const USER = ["jwt", "user_cert"];
  const read = { mode: "readonly", forwarding_required: "sometimes", redirection_strategy: "none" };
  const write = {
    mode: "readwrite",
    forwarding_required: "always",
    redirection_strategy: "to_primary",
  };
  const backup = { ...read, redirection_strategy: "to_backup" };
  const historical = {
    mode: "historical",
    forwarding_required: "never",
    redirection_strategy: "none",
  };
  const range = { mode: "readonly", forwarding_required: "never", redirection_strategy: "none" };
  // CCF's JS logging sample (§6.1).
  const LOGGING: Record<string, object> = {
    "GET /custom_auth": {
      js_function: "custom_auth",
      authn_policies: ["no_auth"],
      mode: "readonly",
      forwarding_required: "never",
      redirection_strategy: "none",
    },
    "POST /multi_auth": {
      js_function: "multi_auth",
      authn_policies: [
        { all_of: ["user_cert", "jwt", "user_cose_sign1"] },
        "user_cert",
        "member_cert",
        "any_cert",
        "jwt",
        "user_cose_sign1",
        "no_auth",
      ],
      ...write,
    },
    "GET /log/private": { js_function: "get_private", authn_policies: USER, ...read },
    "POST /log/private": { js_function: "post_private", authn_policies: USER, ...write },
    "DELETE /log/private": { js_function: "delete_private", authn_policies: USER, ...write },
    "GET /log/private/backup": { js_function: "get_private", authn_policies: USER, ...backup },
    "POST /log/private/admin_only": {
      js_function: "post_private_admin_only",
      authn_policies: ["user_cert"],
      ...write,
    },
    "POST /log/private/anonymous": {
      js_function: "post_private",
      authn_policies: ["no_auth"],
      ...write,
    },
    "DELETE /log/private/all": { js_function: "clear_private", authn_policies: USER, ...write },
    "GET /log/private/count": { js_function: "count_private", authn_policies: USER, ...read },
    "POST /log/private/prefix_cert": {
      js_function: "post_private_prefix_cert",
      authn_policies: USER,
      ...write,
    },
    "POST /log/private/raw_text/{id}": {
      js_function: "post_private_raw_text",
      authn_policies: USER,
      ...write,
    },
    "GET /log/public": { js_function: "get_public", authn_policies: USER, ...read },
    "POST /log/public": { js_function: "post_public", authn_policies: USER, ...write },
    "DELETE /log/public": { js_function: "delete_public", authn_policies: USER, ...write },
    "GET /log/public/backup": { js_function: "get_public", authn_policies: USER, ...backup },
    "DELETE /log/public/all": { js_function: "clear_public", authn_policies: USER, ...write },
    "GET /log/public/count": { js_function: "count_public", authn_policies: USER, ...read },
    "GET /log/private/historical": {
      js_function: "get_historical",
      authn_policies: USER,
      ...historical,
    },
    "GET /log/private/historical_receipt": {
      js_function: "get_historical_with_receipt",
      authn_policies: USER,
      ...historical,
    },
    "GET /log/private/historical/range": {
      js_function: "get_historical_range",
      authn_policies: USER,
      ...range,
    },
    "GET /log/public/historical": {
      js_function: "get_historical_public",
      authn_policies: USER,
      ...historical,
    },
    "GET /log/public/historical_receipt": {
      js_function: "get_historical_public_with_receipt",
      authn_policies: USER,
      ...historical,
    },
    "GET /log/public/historical/range": {
      js_function: "get_historical_range_public",
      authn_policies: USER,
      ...range,
    },
  };

  it("logging: CCF's endpoints, with CCF's properties and an openapi object each", () => {
    const list = endpointList(appJson("logging"));
    assert.deepEqual(list.map((e) => e.key).sort(), Object.keys(LOGGING).sort());
    for (const { key, props } of list) {
      const { openapi, ...rest } = props;
      assert.deepEqual(rest, { ...COMMON, ...LOGGING[key] }, key);
      assert.equal(typeof openapi, "object", key);
      assert.equal(typeof openapi?.responses, "object", `${key}: openapi.responses`);
    }
  });

  it("basic: CCF's basic JS sample endpoints", () => {
    const list = endpointList(appJson("basic"));
    const base = { js_module: "basic.js", authn_policies: ["user_cert"], openapi: {} };
    const never = { forwarding_required: "never", redirection_strategy: "none" };
    assert.deepEqual(Object.fromEntries(list.map((e) => [e.key, e.props])), {
      "GET /records/{key}": { ...base, ...never, js_function: "get_record", mode: "readonly" },
      "PUT /records/{key}": { ...base, ...never, js_function: "put_record", mode: "readwrite" },
      "POST /records": {
        ...base,
        js_function: "post_records",
        mode: "readwrite",
        forwarding_required: "always",
        redirection_strategy: "to_primary",
      },
    });
  });
});
