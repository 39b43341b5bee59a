// `ccf-ts app test` (compiled dist: `npm run build` first): runs an app's test files with
// node --test against the logging sample's bundle, which each file loads with loadApp() and no
// arguments; the exit code is node --test's.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { before, describe, it } from "node:test";

const ROOT = join(import.meta.dirname, "../..");
const BIN = join(ROOT, "bin/ccf-ts.js");
const HARNESS = join(ROOT, "dist/src/testing/index.js");
const BUNDLE = join(ROOT, "samples/apps/logging/dist/bundle.json");

function ccfTs(cwd: string, ...args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: "utf8", timeout: 120_000 });
}

const testFile = (expectedStatus: number) => `
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadApp } from ${JSON.stringify(pathToFileURL(HARNESS).href)};

test("an anonymous record is stored and counted", async () => {
  const app = await loadApp();
  const res = await app.call({
    method: "POST",
    path: "/app/log/private/anonymous",
    body: { id: 1, msg: "hi" },
  });
  assert.equal(res.status, ${expectedStatus});
  assert.equal(app.kv("records").getString("1"), "hi");
});
`;

describe("ccf-ts app test", () => {
  let dir: string;

  before(() => {
    assert.ok(existsSync(HARNESS), `npm run build first: ${HARNESS}`);
    assert.ok(existsSync(BUNDLE), `the sample app is built by npm ci: ${BUNDLE}`);
    dir = mkdtempSync(join(tmpdir(), "ccf-ts-app-test-"));
    mkdirSync(join(dir, "test", "unit"), { recursive: true });
    writeFileSync(join(dir, "test", "unit", "records.test.mjs"), testFile(200));
    writeFileSync(join(dir, "failing.test.mjs"), testFile(201));
  });

  it("finds test/**/*.test.mjs and passes them the bundle: exit 0", () => {
    const r = ccfTs(dir, "app", "test", "--bundle", BUNDLE);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /# pass 1\b/);
    assert.match(r.stdout, /# fail 0\b/);
  });

  it("exits non-zero, as node --test, when a given test file fails", () => {
    const r = ccfTs(dir, "app", "test", "--bundle", BUNDLE, "failing.test.mjs");
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /not ok 1 - an anonymous record is stored and counted/);
    assert.match(r.stdout, /# fail 1\b/);
  });

  it("names a missing bundle or test file and runs nothing", () => {
    const noBundle = ccfTs(dir, "app", "test");
    assert.equal(noBundle.status, 1);
    assert.match(noBundle.stderr, /--bundle dist\/bundle\.json: no such file/);
    const noFile = ccfTs(dir, "app", "test", "--bundle", BUNDLE, "missing.test.mjs");
    assert.equal(noFile.status, 1);
    assert.match(noFile.stderr, /test file missing\.test\.mjs: no such file/);
    assert.equal(noFile.stdout, "");
  });
});
