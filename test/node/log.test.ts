// The node's log destination: JSON lines, in order, none lost when lines pile up behind a write in
// flight, and all of them out before the process exits.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createLogger, LINE_BATCH_CHARS, LineBatch } from "../../src/node/log.js";

const dir = mkdtempSync(join(tmpdir(), "ccf-ts-log-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const TSX = import.meta.resolve("tsx");
const LOG_MODULE = new URL("../../src/node/log.ts", import.meta.url).href;

function lines(path: string): Array<Record<string, unknown>> {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function waitUntil(done: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 1));
  }
}

describe("the node's log", () => {
  it("writes every line, in order, as JSON, when many pile up behind a write in flight", async () => {
    const path = join(dir, "burst.log");
    const fd = openSync(path, "w");
    const log = createLogger("info", fd);
    const n = 5000;
    // One synchronous burst: every line after the first waits for the write in flight.
    for (let i = 0; i < n; i++) log.info({ tag: "app", i }, `line ${i} é€ ${"x".repeat(i % 50)}`);
    log.debug({}, "below the level");
    log.error({ tag: "node" }, "a failure");
    // The writes are asynchronous: wait (with a deadline) for the file to hold them all.
    const deadline = Date.now() + 20_000;
    while (readFileSync(path, "utf8").split("\n").length < n + 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const got = lines(path);
    closeSync(fd);
    assert.equal(got.length, n + 1);
    for (let i = 0; i < n; i++) {
      assert.equal(got[i]?.i, i);
      assert.equal(got[i]?.msg, `line ${i} é€ ${"x".repeat(i % 50)}`);
      assert.equal(got[i]?.level, 30);
    }
    assert.equal(got[n]?.msg, "a failure");
    assert.equal(got[n]?.level, 50);
  });

  it("gathers lines into batches handed over in order, after a while or past a size", async () => {
    const chunks: string[] = [];
    const batch = new LineBatch((chunk) => chunks.push(chunk.toString("utf8")));
    batch.add("a é\n");
    batch.add("b\n");
    await new Promise((r) => setImmediate(r));
    batch.add("c\n");
    assert.deepEqual(chunks, [], "a line waits for others");
    await waitUntil(() => chunks.length > 0);
    assert.deepEqual(chunks, ["a é\nb\nc\n"]);
    batch.add("d\n");
    batch.drain();
    assert.deepEqual(chunks, ["a é\nb\nc\n", "d\n"]);
    batch.drain();
    assert.equal(chunks.length, 2, "nothing waits after a drain");
    // Past the size bound a batch leaves at once, in the same turn.
    const line = `${"x".repeat(1023)}\n`;
    const n = (2 * LINE_BATCH_CHARS) / line.length + 10;
    for (let i = 0; i < n; i++) batch.add(line);
    assert.equal(chunks.length, 4);
    await waitUntil(() => chunks.length === 5);
    assert.equal(chunks.slice(2).join(""), line.repeat(n));
  });

  it("gets every line out before a process that logs and returns exits", () => {
    const path = join(dir, "exit.log");
    const script = `
      import { openSync } from "node:fs";
      const { createLogger } = await import(${JSON.stringify(LOG_MODULE)});
      const log = createLogger("info", openSync(${JSON.stringify(path)}, "w"));
      for (let i = 0; i < 20000; i++) log.info({ i }, "before exit");
    `;
    const r = spawnSync(process.execPath, ["--import", TSX, "--input-type=module", "-e", script], {
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const got = lines(path);
    assert.equal(got.length, 20000);
    assert.equal(got.at(-1)?.i, 19999);
  });
});
