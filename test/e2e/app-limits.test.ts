// An app that misbehaves, on a real node: a memory bomb and an infinite loop each answer 500 and
// the node serves the next request; a claims digest set by a handler is in its receipt; the
// interpreter a request ran in starts fresh for the next one (CCF's default, without reuse).

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import { sha256, verifyCertificateIssued, verifyDigest } from "../../src/crypto/index.js";
import { type Receipt, verifyReceipt } from "../../src/merkle/index.js";
import { singleNodeConfig } from "../helpers/node-config.js";
import { startNode, waitFor } from "../helpers/process.js";
import { clientAgent, makeMemberAndUser } from "../helpers/identities.js";

const MODULE = `
let calls = 0;
export function bomb() {
  const hoard = [];
  for (;;) hoard.push(new Uint8Array(1024 * 1024).fill(1));
}
export function spin() { for (;;) {} }
export function ok() { calls++; return { body: { calls } }; }
export function claims(request) {
  ccf.rpc.setClaimsDigest(ccf.crypto.digest("SHA-256", ccf.strToBuf(request.body.text())));
  ccf.kv["public:records"].set(ccf.strToBuf("k"), request.body.arrayBuffer());
  return { statusCode: 200, body: "stored" };
}
`;

function endpoint(fn: string, mode = "readonly") {
  return {
    js_module: "limits.js",
    js_function: fn,
    forwarding_required: "never",
    authn_policies: ["user_cert"],
    mode,
    openapi: {},
  };
}

const BUNDLE = {
  metadata: {
    endpoints: {
      "/bomb": { get: endpoint("bomb") },
      "/spin": { get: endpoint("spin") },
      "/ok": { get: endpoint("ok") },
      "/claims": { post: endpoint("claims", "readwrite") },
    },
  },
  modules: [{ name: "limits.js", module: MODULE }],
};

describe("an app that hits the sandbox's limits, on a node", () => {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-limits-"));
  let node: Awaited<ReturnType<typeof startNode>>["node"];
  let base: string;
  let user: Agent;
  let serviceCert: string;

  async function call(method: "GET" | "POST", path: string, body?: string) {
    const res = await request(`${base}${path}`, {
      dispatcher: user,
      method,
      ...(body === undefined ? {} : { body, headers: { "content-type": "text/plain" } }),
    });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text };
  }

  before(async () => {
    makeMemberAndUser(dir);
    writeFileSync(join(dir, "bundle.json"), JSON.stringify(BUNDLE));
    ({ node, base } = await startNode(
      dir,
      singleNodeConfig(dir, {
        start: {
          users: [{ certificate_file: join(dir, "user0_cert.pem") }],
          js_app_bundle: join(dir, "bundle.json"),
          open_service: true,
        },
        signatures: { tx_count: 10, delay: "50ms" },
      }),
    ));
    serviceCert = readFileSync(join(dir, "service_cert.pem"), "utf8");
    user = clientAgent(dir, serviceCert);
  });

  after(async () => {
    await user?.close();
    if (node?.exitCode === null) node.kill("SIGTERM");
  });

  it("starts every request from the module's initial state (no interpreter_reuse)", async () => {
    for (let i = 0; i < 3; i++) {
      const res = await call("GET", "/app/ok");
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(JSON.parse(res.text), { calls: 1 });
    }
  });

  it("answers a memory bomb with 500 and serves the next request", async () => {
    const res = await call("GET", "/app/bomb");
    assert.equal(res.status, 500, res.text);
    assert.equal((JSON.parse(res.text) as { error: { code: string } }).error.code, "InternalError");
    assert.deepEqual(JSON.parse((await call("GET", "/app/ok")).text), { calls: 1 });
  });

  it("answers an infinite loop with 500 once the time limit passes, and serves the next request", async () => {
    const res = await call("GET", "/app/spin");
    assert.equal(res.status, 500, res.text);
    assert.match(res.text, /Operation took too long to complete/);
    assert.equal((await call("GET", "/app/ok")).status, 200);
  });

  it("puts the claims digest a handler sets into the transaction's receipt", async () => {
    const posted = await call("POST", "/app/claims", "my claims");
    assert.equal(posted.status, 200, posted.text);
    const txId = String(posted.headers["x-ms-ccf-transaction-id"]);
    const receipt = await waitFor("the transaction to commit", async () => {
      const r = await call("GET", `/app/receipt?transaction_id=${txId}`);
      return r.status === 200 ? (JSON.parse(r.text) as Receipt) : undefined;
    });
    assert.ok("leaf_components" in receipt);
    assert.equal(
      receipt.leaf_components.claims_digest,
      sha256(Buffer.from("my claims")).toString("hex"),
    );
    assert.ok(verifyReceipt(receipt, verifyDigest, serviceCert, verifyCertificateIssued));
  });
});
