// A TypeScript app built with source maps (test/fixtures/apps/debug-app) on a real node: once
// governance sets return_exception_details and log_exception_details, a handler that throws
// answers 500 with the JS stack at the app's TypeScript files and lines, and the node logs it.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import { constitutionFiles, DEFAULT_CONSTITUTION_DIR } from "../../src/gov/index.js";
import { singleNodeConfig } from "../helpers/node-config.js";
import { runCcfTs, startNode, waitFor } from "../helpers/process.js";

const APP_DIR = join(import.meta.dirname, "../fixtures/apps/debug-app");
const BUNDLE = join(APP_DIR, "dist/bundle.json");

function lineOf(file: string, marker: string): number {
  const i = readFileSync(join(APP_DIR, "src", file), "utf8")
    .split("\n")
    .findIndex((l) => l.includes(marker));
  assert.ok(i >= 0, `${marker} in ${file}`);
  return i + 1;
}

const BAD_ORDER = {
  id: "o1",
  items: [
    { sku: "apple", quantity: 2, unitPrice: 3 },
    { sku: "pear", quantity: -1, unitPrice: 5 },
  ],
};

type ErrorBody = {
  error: { code: string; message: string; details?: Array<{ code: string; trace: string }> };
};

describe("exception details of a TypeScript app on a node", () => {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-debug-app-"));
  let node: Awaited<ReturnType<typeof startNode>>["node"];
  let base: string;
  let anonymous: Agent;

  function gov(...args: string[]): { proposalId: string; proposalState: string } {
    const r = runCcfTs(["gov", "--url", base, ...args], dir);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as { proposalId: string; proposalState: string };
  }

  async function checkout(order: unknown) {
    const res = await request(`${base}/app/checkout`, {
      dispatcher: anonymous,
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(order),
    });
    return { status: res.statusCode, body: (await res.body.json()) as ErrorBody };
  }

  before(async () => {
    assert.ok(existsSync(BUNDLE), `the fixture is built by npm ci (build-samples): ${BUNDLE}`);
    const r = runCcfTs(["keygen", "--name", "member0", "--gen-enc-key"], dir);
    assert.equal(r.status, 0, r.stderr);
    const config = singleNodeConfig(dir, {
      start: {
        constitution_files: constitutionFiles(DEFAULT_CONSTITUTION_DIR),
        js_app_bundle: BUNDLE,
        open_service: true,
      },
      signatures: { tx_count: 10, delay: "50ms" },
    });
    ({ node, base } = await startNode(dir, config));
    anonymous = new Agent({ connect: { ca: readFileSync(join(dir, "service_cert.pem"), "utf8") } });
    await waitFor("member0 to be active", () => {
      const ack = runCcfTs(["gov", "--url", base, "ack"], dir);
      return ack.status === 0 ? true : undefined;
    });
  });

  after(async () => {
    await anonymous?.close();
    if (node !== undefined && node.exitCode === null) node.kill("SIGTERM");
  });

  it("answers a plain 500 until governance asks for exception details", async () => {
    const res = await checkout(BAD_ORDER);
    assert.equal(res.status, 500);
    assert.deepEqual(res.body, {
      error: { code: "InternalError", message: "Exception thrown while executing." },
    });
  });

  it("returns and logs the stack at src/pricing.ts and src/checkout.ts lines", async () => {
    const file = join(dir, "runtime-options.json");
    writeFileSync(
      file,
      JSON.stringify({
        actions: [
          {
            name: "set_js_runtime_options",
            args: {
              max_heap_bytes: 100 * 1024 * 1024,
              max_stack_bytes: 1024 * 1024,
              max_execution_time_ms: 5000,
              log_exception_details: true,
              return_exception_details: true,
            },
          },
        ],
      }),
    );
    const proposed = gov("propose", file);
    assert.equal(gov("vote", proposed.proposalId).proposalState, "Accepted");

    const res = await checkout(BAD_ORDER);
    assert.equal(res.status, 500);
    const detail = res.body.error.details?.[0];
    assert.equal(detail?.code, "JSException");
    const frames = (detail?.trace ?? "").split("\n");
    const throwLine = lineOf("pricing.ts", "debug-app: throws here");
    const callLine = lineOf("checkout.ts", "totalOf(order)");
    assert.match(
      frames[0] ?? "",
      new RegExp(`^ {4}at priceOf \\(src/pricing\\.ts:${throwLine}:\\d+\\)$`),
    );
    assert.ok(
      frames.some((f) => f.startsWith(`    at checkout (src/checkout.ts:${callLine}:`)),
      frames.join("\n"),
    );
    await waitFor("the node to log the mapped stack", () =>
      node.output().includes(`at priceOf (src/pricing.ts:${throwLine}:`) ? true : undefined,
    );
  });
});
