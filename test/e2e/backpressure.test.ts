// CCF's back-pressure: a primary with `consensus.max_uncommitted_tx_count` transactions awaiting
// commit refuses new writes with 503 TooManyPendingTransactions, keeps serving reads, and writes
// nothing for the refused request. (Signatures are set far apart, so nothing commits meanwhile.)

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import { openAppNodeConfig } from "../helpers/node-config.js";
import { startNode, waitFor } from "../helpers/process.js";
import { clientAgent, makeMemberAndUser } from "../helpers/identities.js";

const BUNDLE = join(import.meta.dirname, "../../samples/apps/logging/dist/bundle.json");

describe("back-pressure on uncommitted transactions", () => {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-backpressure-"));
  let node: Awaited<ReturnType<typeof startNode>>["node"];
  let base: string;
  let user: Agent;

  async function call(method: "GET" | "POST", path: string, body?: unknown) {
    const res = await request(`${base}${path}`, {
      method,
      dispatcher: user,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
    });
    const text = await res.body.text();
    return { status: res.statusCode, text };
  }

  before(async () => {
    makeMemberAndUser(dir);
    const config = openAppNodeConfig(dir, BUNDLE, { tx_count: 1000, delay: "1000s" });
    config.consensus = { max_uncommitted_tx_count: 3 };
    config.ledger_signatures = { tx_count: 1000, delay: "1000s", sign_when_idle: false };
    ({ node, base } = await startNode(dir, config));
    const ca = readFileSync(join(dir, "service_cert.pem"), "utf8");
    user = clientAgent(dir, ca);
  });

  after(async () => {
    await user?.close();
    if (node?.exitCode === null) node.kill("SIGTERM");
  });

  it("refuses writes past the limit with 503 TooManyPendingTransactions, and still reads", async () => {
    let id = 0;
    const refused = await waitFor("a write to be refused", async () => {
      id++;
      const r = await call("POST", "/app/log/private", { id, msg: `m${id}` });
      if (r.status === 200) return undefined;
      return { ...r, id };
    });
    assert.equal(refused.status, 503, refused.text);
    const error = (JSON.parse(refused.text) as { error: { code: string; message: string } }).error;
    assert.equal(error.code, "TooManyPendingTransactions");
    assert.match(error.message, /pending commit \(limit 3\)/);
    // Not many got in before the limit: the refusal is the limit, not something else.
    assert.ok(refused.id <= 5, `refused only at write ${refused.id}`);
    const read = await call("GET", "/app/log/private?id=1");
    assert.equal(read.status, 200, read.text);
    const missing = await call("GET", `/app/log/private?id=${refused.id}`);
    assert.equal(missing.status, 404, "the refused write wrote nothing");
  });
});
