// Source maps of app modules: decoding (base64 VLQ), inline maps in module sources, stack frames
// shown at the TypeScript lines, and JsApp's exception details for the debug-app fixture (built
// with source maps by build-samples).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { EndpointRequest } from "../../src/endpoints/types.js";
import { JsApp, readAppEndpoints } from "../../src/js/app.js";
import {
  inlineSourceMap,
  ModuleSourceMaps,
  mapStackTrace,
  SourceMap,
  SourceMapError,
} from "../../src/js/source-map.js";
import { loadApp } from "../../src/testing/index.js";
import { SINGLETON_KEY, Store, Tables } from "../../src/kv/index.js";
import { type AppBundle, loadBundle, writeBundle } from "../../src/node/bundle.js";

const APP_DIR = join(import.meta.dirname, "../fixtures/apps/debug-app");
const BUNDLE = join(APP_DIR, "dist/bundle.json");

/** The 1-based line of `src/<file>` holding `marker`. */
function lineOf(file: string, marker: string): number {
  const lines = readFileSync(join(APP_DIR, "src", file), "utf8").split("\n");
  const i = lines.findIndex((l) => l.includes(marker));
  assert.ok(i >= 0, `${marker} in ${file}`);
  return i + 1;
}

type Details = { error: { details?: Array<{ code: string; message: string; trace: string }> } };

const dataUrl = (map: unknown) =>
  `//# sourceMappingURL=data:application/json;charset=utf-8;base64,${Buffer.from(JSON.stringify(map)).toString("base64")}`;

describe("SourceMap", () => {
  // Segments as decoded (0-based, relative to the previous one; "gB" is a two-digit VLQ, "V" -10).
  const map = SourceMap.parse({
    version: 3,
    sources: ["a.ts", "b.ts"],
    names: [],
    // "AAAA"  [0,0,0,0]        -> a.ts 0:0 at gen col 0
    // "IAAI"  [4,0,0,4]        -> a.ts 0:4 at gen col 4
    // "gBCEM" [16,1,2,6]       -> b.ts 2:10 at gen col 20
    // ";AACV" [0,0,1,-10]      -> b.ts 3:0 at gen col 0 (next line)
    mappings: "AAAA,IAAI,gBCEM;AACV",
  });

  it("finds the original position of a generated line and column (1-based)", () => {
    assert.deepEqual(map.originalPosition(1, 1), { source: "a.ts", line: 1, column: 1 });
    assert.deepEqual(map.originalPosition(1, 5), { source: "a.ts", line: 1, column: 5 });
    assert.deepEqual(map.originalPosition(1, 21), { source: "b.ts", line: 3, column: 11 });
    assert.deepEqual(map.originalPosition(2, 1), { source: "b.ts", line: 4, column: 1 });
  });

  it("takes the nearest segment at or before the column, else the line's first", () => {
    assert.deepEqual(map.originalPosition(1, 3), { source: "a.ts", line: 1, column: 1 });
    assert.deepEqual(map.originalPosition(1, 99), { source: "b.ts", line: 3, column: 11 });
    const late = SourceMap.parse({ version: 3, sources: ["c.ts"], mappings: "KAAE" });
    assert.deepEqual(late.originalPosition(1, 1), { source: "c.ts", line: 1, column: 3 });
  });

  it("has no position for a line without segments", () => {
    assert.equal(map.originalPosition(3, 1), undefined);
    assert.equal(
      SourceMap.parse({ version: 3, sources: [], mappings: ";;" }).originalPosition(2, 1),
      undefined,
    );
  });

  it("prefixes sources with sourceRoot", () => {
    const rooted = SourceMap.parse({
      version: 3,
      sourceRoot: "app",
      sources: ["x.ts"],
      mappings: "AAAA",
    });
    assert.equal(rooted.originalPosition(1, 1)?.source, "app/x.ts");
  });

  it("refuses malformed maps with a SourceMapError", () => {
    const bad: Array<[unknown, RegExp]> = [
      ["{", /not JSON/],
      [{ version: 2, sources: [], mappings: "" }, /version 2 is not 3/],
      [{ version: 3, mappings: "" }, /sources array/],
      [{ version: 3, sources: ["a"], mappings: "A!AA" }, /bad base64 VLQ/],
      [{ version: 3, sources: ["a"], mappings: "ACAA" }, /out of range/],
      [{ version: 3, sources: ["a"], mappings: "AA" }, /2 fields/],
      [{ version: 3, sources: ["a"], mappings: "AAAg" }, /bad base64 VLQ/],
    ];
    for (const [input, message] of bad) {
      assert.throws(
        () => SourceMap.parse(input),
        (e: unknown) => {
          assert.ok(e instanceof SourceMapError);
          assert.match(e.message, message);
          return true;
        },
      );
    }
  });
});

describe("inlineSourceMap", () => {
  const MAP = { version: 3, sources: ["src/x.ts"], mappings: "AAAA" };

  it("reads a base64 or percent-encoded data URL in the module's last sourceMappingURL comment", () => {
    const src = `export const x = 1;\n${dataUrl({ ...MAP, sources: ["old.ts"] })}\n${dataUrl(MAP)}\n`;
    assert.equal(inlineSourceMap(src)?.originalPosition(1, 1)?.source, "src/x.ts");
    const encoded = `f();\n//# sourceMappingURL=data:application/json,${encodeURIComponent(JSON.stringify(MAP))}`;
    assert.equal(inlineSourceMap(encoded)?.originalPosition(1, 1)?.source, "src/x.ts");
  });

  it("gives undefined for a module without one or naming a file", () => {
    assert.equal(inlineSourceMap("export const x = 1;\n"), undefined);
    assert.equal(inlineSourceMap("f();\n//# sourceMappingURL=x.js.map\n"), undefined);
  });

  it("throws a SourceMapError for a broken inline map", () => {
    assert.throws(
      () => inlineSourceMap("f();\n//# sourceMappingURL=data:application/json;base64,bm90IGpzb24="),
      SourceMapError,
    );
  });
});

describe("mapStackTrace", () => {
  const map = SourceMap.parse({ version: 3, sources: ["src/x.ts"], mappings: ";AAEA,IAAI" });

  it("replaces frames of mapped modules and keeps the others", () => {
    const stack = [
      "    at f (x.js:2:5)",
      "    at x.js:2:1",
      "    at g (x.js:2)",
      "    at reduce (native)",
      "    at h (other.js:7:3)",
      "    at k (x.js:9:1)",
      "",
    ].join("\n");
    const mapped = mapStackTrace(stack, (m) => (m === "x.js" ? map : undefined));
    assert.equal(
      mapped,
      [
        "    at f (src/x.ts:3:5)",
        "    at src/x.ts:3:1",
        "    at g (src/x.ts:3:1)",
        "    at reduce (native)",
        "    at h (other.js:7:3)",
        "    at k (x.js:9:1)",
        "",
      ].join("\n"),
    );
  });
});

describe("ModuleSourceMaps", () => {
  const module = (n: number) =>
    Buffer.from(`f();\n${dataUrl({ version: 3, sources: [`v${n}.ts`], mappings: "AAAA" })}`);

  it("decodes a module's map once, and again when its source changes", () => {
    const maps = new ModuleSourceMaps();
    const first = maps.get("m.js", module(1));
    assert.ok(first);
    assert.equal(maps.get("m.js", module(1)), first);
    const second = maps.get("m.js", module(2));
    assert.notEqual(second, first);
    assert.equal(second?.originalPosition(1, 1)?.source, "v2.ts");
    maps.clear();
    assert.notEqual(maps.get("m.js", module(2)), second);
  });

  it("has no map for a missing module or a malformed map", () => {
    const maps = new ModuleSourceMaps();
    assert.equal(maps.get("m.js", undefined), undefined);
    assert.equal(
      maps.get("m.js", Buffer.from("f();\n//# sourceMappingURL=data:application/json,%7B")),
      undefined,
    );
  });
});

describe("exception details of the debug-app fixture (TypeScript, built with source maps)", () => {
  const consensus = {
    lastCommitted: () => ({ view: 2, seqno: 1 }),
    statusFor: () => "Unknown",
    viewFor: () => undefined,
  };
  const order = {
    id: "o1",
    items: [
      { sku: "apple", quantity: 2, unitPrice: 3 },
      { sku: "pear", quantity: -1, unitPrice: 5 },
    ],
  };

  function setUp(options: Record<string, unknown> | undefined, bundle?: AppBundle) {
    assert.ok(existsSync(BUNDLE), `the fixture is built by npm ci (build-samples): ${BUNDLE}`);
    const store = new Store();
    const tx = store.begin();
    writeBundle(tx, bundle ?? loadBundle(BUNDLE));
    if (options !== undefined) {
      tx.map(Tables.JS_RUNTIME_OPTIONS).set(SINGLETON_KEY, Buffer.from(JSON.stringify(options)));
    }
    store.commit(tx);
    const logs: string[] = [];
    const app = new JsApp({ log: (_l, m) => logs.push(m), consensus });
    const [endpoint] = readAppEndpoints(store.begin());
    assert.ok(endpoint);
    const call = async (body: unknown) => {
      const req: EndpointRequest = {
        method: "POST",
        path: "/app/checkout",
        query: "",
        params: {},
        headers: {},
        body: Buffer.from(JSON.stringify(body)),
        clientCert: undefined,
        httpVersion: "1.1",
        hostname: "",
      };
      return (await app.execute(endpoint, req, { policy: "no_auth" }, store.begin())).response;
    };
    return { call, logs };
  }

  it("every module of the built bundle ends with an inline source map", () => {
    const bundle = loadBundle(BUNDLE);
    for (const m of bundle.modules) {
      assert.match(m.module, /\/\/# sourceMappingURL=data:application\/json;charset=utf-8;base64,/);
    }
  });

  it("returns the stack at the app's TypeScript files and lines", async () => {
    const { call } = setUp({ return_exception_details: true });
    const res = await call(order);
    assert.equal(res.status, 500);
    const details = (res.body as Details).error.details;
    assert.equal(details?.length, 1);
    assert.equal(details?.[0]?.code, "JSException");
    assert.equal(details?.[0]?.message, "RangeError: negative quantity for pear");
    const frames = (details?.[0]?.trace ?? "").split("\n");
    const throwLine = lineOf("pricing.ts", "debug-app: throws here");
    const callLine = lineOf("checkout.ts", "totalOf(order)");
    const reduceLine = lineOf("pricing.ts", "order.items.reduce");
    assert.match(
      frames[0] ?? "",
      new RegExp(`^ {4}at priceOf \\(src/pricing\\.ts:${throwLine}:\\d+\\)$`),
    );
    assert.ok(
      frames.some((f) => f.includes(`(src/pricing.ts:${reduceLine}:`)),
      frames.join("\n"),
    );
    assert.ok(frames.some((f) => /^ {4}at totalOf \(src\/pricing\.ts:\d+:\d+\)$/.test(f)));
    assert.ok(frames.some((f) => f.startsWith(`    at checkout (src/checkout.ts:${callLine}:`)));
    // Frames without a map are kept as QuickJS gives them.
    assert.ok(frames.includes("    at reduce (native)"));
    assert.ok(
      frames.every((f) => !/\b(checkout|pricing)\.js:/.test(f)),
      frames.join("\n"),
    );
  });

  it("logs the mapped stack with log_exception_details, and returns nothing then", async () => {
    const { call, logs } = setUp({ log_exception_details: true });
    const res = await call(order);
    assert.deepEqual(res.body, {
      error: { code: "InternalError", message: "Exception thrown while executing." },
    });
    const line = lineOf("pricing.ts", "debug-app: throws here");
    assert.ok(
      logs.some((m) => m.includes(`at priceOf (src/pricing.ts:${line}:`)),
      logs.join("\n"),
    );
  });

  it("keeps the JavaScript frames of modules built without source maps", async () => {
    const bundle = loadBundle(BUNDLE);
    const stripped: AppBundle = {
      ...bundle,
      modules: bundle.modules.map((m) => ({
        name: m.name,
        module: m.module.replace(/\/\/# sourceMappingURL=.*$/m, ""),
      })),
    };
    const { call } = setUp({ return_exception_details: true }, stripped);
    const trace = ((await call(order)).body as Details).error.details?.[0]?.trace ?? "";
    assert.match(trace, /^ {4}at priceOf \(pricing\.js:\d+:\d+\)$/m);
    assert.doesNotMatch(trace, /\.ts:/);
  });

  it("serves the handler normally when it does not throw", async () => {
    const { call } = setUp({ return_exception_details: true });
    const res = await call({ id: "o2", items: [{ sku: "apple", quantity: 2, unitPrice: 3 }] });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(String(res.body)), { items: 1, total: 6 });
  });
});

describe("build-samples --source-maps", () => {
  it("builds the logging sample with inline maps whose frames name its TypeScript files", async () => {
    const root = join(import.meta.dirname, "../..");
    const out = mkdtempSync(join(tmpdir(), "ccf-ts-source-maps-"));
    const build = spawnSync(
      process.execPath,
      [join(root, "scripts/build-samples.mjs"), "--source-maps", "--out-dir", out, "logging"],
      { encoding: "utf8", timeout: 120_000 },
    );
    assert.equal(build.status, 0, build.stderr);
    const bundlePath = join(out, "logging/bundle.json");
    const bundle = loadBundle(bundlePath);
    for (const m of bundle.modules) assert.match(m.module, /\/\/# sourceMappingURL=data:/);

    const app = await loadApp({
      bundle: bundlePath,
      runtimeOptions: { return_exception_details: true },
    });
    const res = await app.call({
      method: "POST",
      path: "/app/log/private/anonymous",
      body: { msg: "no id" },
    });
    assert.equal(res.status, 500);
    const trace = (res.body as Details).error.details?.[0]?.trace ?? "";
    const src = readFileSync(join(root, "samples/apps/logging/src/endpoints/records.ts"), "utf8");
    const line = src.split("\n").findIndex((l) => l.includes("The body has no 'id'")) + 1;
    assert.match(
      trace,
      new RegExp(`^ {4}at postBody \\(src/endpoints/records\\.ts:${line}:\\d+\\)$`, "m"),
    );
    assert.equal(app.kv("records").size, 0);
  });
});
