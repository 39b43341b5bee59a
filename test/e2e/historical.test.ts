// Historical queries and receipts on a running node: the logging sample's historical endpoints
// (CCF's x-ms-ccf-transaction-id header and its 400 / 404 answers), ranges, JSON and COSE receipts
// that verify against the service certificate.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Agent } from "undici";
import { verifyReceiptBytes } from "../../src/audit/index.js";
import { callJson, type Reply } from "../helpers/http.js";
import { openAppNodeConfig } from "../helpers/node-config.js";
import { startNode, waitFor } from "../helpers/process.js";
import { clientAgent, makeMemberAndUser } from "../helpers/identities.js";

const BUNDLE = join(import.meta.dirname, "../../samples/apps/logging/dist/bundle.json");
const TXID = "x-ms-ccf-transaction-id";

/** The JS receipt as a JSON receipt: without the runtime's extra flag. */
function withoutFlag(receipt: Record<string, unknown>): Record<string, unknown> {
  const out = { ...receipt };
  delete out.is_signature_transaction;
  return out;
}

describe("historical queries and receipts on a node", () => {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-historical-"));
  let node: Awaited<ReturnType<typeof startNode>>["node"];
  let base: string;
  let user: Agent;
  let serviceCert: string;
  const txids: Record<string, string> = {};

  const call = (
    method: "GET" | "POST",
    path: string,
    options: { body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<Reply> => callJson(user, base, method, path, options);

  async function write(path: string, body: unknown): Promise<string> {
    const r = await call("POST", path, { body });
    assert.equal(r.status, 200, r.text);
    return String(r.headers[TXID]);
  }

  async function committed(txid: string): Promise<void> {
    await waitFor(`${txid} committed`, async () => {
      const r = await call("GET", `/app/tx?transaction_id=${txid}`);
      return (r.json() as { status: string }).status === "Committed" ? true : undefined;
    });
  }

  /** A historical GET, retried while the node answers 202 (fetching). */
  async function historical(path: string, headers: Record<string, string> = {}): Promise<Reply> {
    return await waitFor(`${path} answered`, async () => {
      const r = await call("GET", path, { headers });
      if (r.status === 202) {
        assert.ok(r.headers["retry-after"] !== undefined);
        return undefined;
      }
      return r;
    });
  }

  before(async () => {
    makeMemberAndUser(dir);
    const config = openAppNodeConfig(dir, BUNDLE, { tx_count: 10, delay: "50ms" });
    ({ node, base } = await startNode(dir, config));
    serviceCert = readFileSync(join(dir, "service_cert.pem"), "utf8");
    user = clientAgent(dir, serviceCert);
    txids.first = await write("/app/log/private", { id: 1, msg: "first" });
    txids.second = await write("/app/log/private", { id: 1, msg: "second" });
    txids.claim = await write("/app/log/public", { id: 2, msg: "claimed", record_claim: true });
    await committed(txids.claim);
  });

  after(async () => {
    await user?.close();
    if (node?.exitCode === null) node.kill("SIGTERM");
  });

  it("reads a record as each transaction wrote it", async () => {
    for (const [txid, msg] of [
      [txids.first, "first"],
      [txids.second, "second"],
    ]) {
      const r = await historical("/app/log/private/historical?id=1", { [TXID]: txid });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json(), { msg });
    }
    // A transaction that did not write the record: its state has no such record.
    const other = await historical("/app/log/private/historical?id=1", { [TXID]: txids.claim });
    assert.equal(other.status, 404);
  });

  it("answers CCF's errors for a missing, malformed, pending or invalid transaction id", async () => {
    const missing = await call("GET", "/app/log/private/historical?id=1");
    assert.equal(missing.status, 400);
    assert.equal((missing.json().error as { code: string }).code, "MissingRequiredHeader");
    const malformed = await call("GET", "/app/log/private/historical?id=1", {
      headers: { [TXID]: "not-a-txid" },
    });
    assert.equal(malformed.status, 400);
    assert.equal((malformed.json().error as { code: string }).code, "InvalidHeaderValue");
    const pending = await call("GET", "/app/log/private/historical?id=1", {
      headers: { [TXID]: "2.999999" },
    });
    assert.equal(pending.status, 404);
    assert.equal((pending.json().error as { code: string }).code, "TransactionPendingOrUnknown");
    assert.equal(pending.headers["cache-control"], "no-cache");
    const seqno = txids.first.split(".")[1];
    const invalid = await call("GET", "/app/log/private/historical?id=1", {
      headers: { [TXID]: `1.${seqno}` },
    });
    assert.equal(invalid.status, 404);
    assert.equal((invalid.json().error as { code: string }).code, "TransactionInvalid");
  });

  it("gives the receipt of the transaction, which verifies against the service certificate", async () => {
    const r = await historical("/app/log/private/historical_receipt?id=1", {
      [TXID]: txids.second,
    });
    assert.equal(r.status, 200, r.text);
    const body = r.json() as { msg: string; receipt: Record<string, unknown> };
    assert.equal(body.msg, "second");
    assert.equal(body.receipt.is_signature_transaction, false);
    const receipt = withoutFlag(body.receipt);
    const v = verifyReceiptBytes(JSON.stringify(receipt), { serviceCertPem: serviceCert });
    assert.ok(v.ok, JSON.stringify(v));
  });

  it("drops the claims digest from a public receipt; the message's digest restores it", async () => {
    const r = await historical("/app/log/public/historical_receipt?id=2", { [TXID]: txids.claim });
    assert.equal(r.status, 200, r.text);
    const body = r.json() as {
      msg: string;
      receipt: { leaf_components: Record<string, string> };
    };
    assert.equal(body.receipt.leaf_components.claims_digest, undefined);
    const receipt = withoutFlag(body.receipt);
    const withClaims = {
      ...receipt,
      leaf_components: {
        ...body.receipt.leaf_components,
        claims_digest: createHash("sha256").update(body.msg).digest("hex"),
      },
    };
    assert.ok(verifyReceiptBytes(JSON.stringify(withClaims), { serviceCertPem: serviceCert }).ok);
    assert.ok(!verifyReceiptBytes(JSON.stringify(receipt), { serviceCertPem: serviceCert }).ok);
  });

  it("shows a signature transaction's receipt with is_signature_transaction and root_hex", async () => {
    const commit = (await call("GET", "/app/commit")).json() as { transaction_id: string };
    // The commit point is a signature transaction.
    const r = await historical("/app/log/private/historical_receipt?id=1", {
      [TXID]: commit.transaction_id,
    });
    assert.equal(r.status, 404, r.text);
    const receipt = (r.json() as { receipt: Record<string, unknown> }).receipt;
    assert.equal(receipt.is_signature_transaction, true);
    assert.match(String(receipt.root_hex), /^[0-9a-f]{64}$/);
    assert.equal(receipt.leaf_components, undefined);
    // CCF's public variant deletes receipt.leaf_components.claims_digest: a TypeError there.
    const pub = await historical("/app/log/public/historical_receipt?id=2", {
      [TXID]: commit.transaction_id,
    });
    assert.equal(pub.status, 500);
  });

  it("lists every write of a record over a range of transactions", async () => {
    const r = await historical("/app/log/private/historical/range?id=1");
    assert.equal(r.status, 200, r.text);
    const seq = (t: string) => Number(t.split(".")[1]);
    assert.deepEqual(r.json(), {
      entries: [
        { seqno: seq(txids.first), id: 1, msg: "first" },
        { seqno: seq(txids.second), id: 1, msg: "second" },
      ],
    });
    const bad = await call("GET", "/app/log/private/historical/range?id=1&from_seqno=9&to_seqno=3");
    assert.equal(bad.status, 400);
    assert.equal((bad.json().error as { code: string }).code, "InvalidInput");
  });

  it("serves JSON and COSE receipts from /app/receipt", async () => {
    const json = await historical(`/app/receipt?transaction_id=${txids.first}`);
    assert.equal(json.status, 200, json.text);
    const v = verifyReceiptBytes(json.text, { serviceCertPem: serviceCert });
    assert.ok(v.ok, JSON.stringify(v));
    const cose = await historical(`/app/receipt?transaction_id=${txids.first}&format=cose`);
    assert.equal(cose.status, 200, cose.text);
    assert.equal(cose.headers["content-type"], "application/cose");
    const vc = verifyReceiptBytes(cose.body, { serviceCertPem: serviceCert });
    assert.ok(vc.ok, JSON.stringify(vc));
    assert.equal(vc.kind, "cose");
    const flipped = Buffer.from(cose.body);
    flipped[flipped.length - 40] ^= 1;
    assert.ok(!verifyReceiptBytes(flipped, { serviceCertPem: serviceCert }).ok);
    const badFormat = await call("GET", `/app/receipt?transaction_id=${txids.first}&format=xml`);
    assert.equal(badFormat.status, 400);
  });
});
