// The node's output files are written whole or not at all: a reader polling for one (the sandbox
// waiting for rpc_addresses.json) must never see it empty or half written.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { writeFileAtomically } from "../../src/node/files.js";

const dir = mkdtempSync(join(tmpdir(), "ccf-ts-files-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("the node's output files", () => {
  it("replace the file whole, leaving no temporary file behind", () => {
    const path = join(dir, "0.rpc_addresses.json");
    assert.equal(existsSync(path), false);
    writeFileAtomically(path, JSON.stringify({ primary_rpc_interface: "127.0.0.1:1" }));
    assert.deepEqual(JSON.parse(readFileSync(path, "utf8")), {
      primary_rpc_interface: "127.0.0.1:1",
    });
    writeFileSync(path, "an older, longer content that must not survive in any part");
    writeFileAtomically(path, "{}");
    assert.equal(readFileSync(path, "utf8"), "{}");
    assert.deepEqual(readdirSync(dir), ["0.rpc_addresses.json"]);
  });

  it("are never seen empty or partial by a reader polling from another thread", async () => {
    // A worker reads the file in a loop while this thread rewrites it: with a plain write it
    // would catch it truncated or half written; with a rename every read is one whole version.
    const path = join(dir, "polled.json");
    const big = (n: number) => JSON.stringify({ n, pad: "x".repeat(1_000_000) });
    writeFileAtomically(path, big(0));
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const reader = new Worker(
      `const { workerData, parentPort } = require("node:worker_threads");
       const { readFileSync } = require("node:fs");
       const stop = new Int32Array(workerData.stop);
       let reads = 0, bad = 0;
       while (Atomics.load(stop, 0) === 0) {
         try { JSON.parse(readFileSync(workerData.path, "utf8")); } catch { bad++; }
         reads++;
       }
       parentPort.postMessage({ reads, bad });`,
      { eval: true, workerData: { path, stop: stop.buffer } },
    );
    const result = new Promise<{ reads: number; bad: number }>((resolve, reject) => {
      reader.once("message", resolve);
      reader.once("error", reject);
    });
    for (let n = 1; n <= 60; n++) writeFileAtomically(path, big(n));
    Atomics.store(stop, 0, 1);
    const { reads, bad } = await result;
    await reader.terminate();
    assert.ok(reads > 0, "the reader read the file");
    assert.equal(bad, 0, `${bad} of ${reads} reads saw a partial file`);
  });
});
