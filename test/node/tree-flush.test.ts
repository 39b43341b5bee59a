// A running node flushes its Merkle tree behind commit (CCF's history compaction), and still serves
// receipts and historical states of flushed transactions, identical to those it gave while it held
// their leaves; the snapshots and the ledger it writes meanwhile still verify. The node runs in
// this process so the test can read its tree (a private field) and set how many leaves it keeps.

import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { Agent, request } from "undici";
import { verifyReceiptBytes } from "../../src/audit/index.js";
import { Store } from "../../src/kv/index.js";
import { readLedger } from "../../src/ledger/index.js";
import { MerkleTree } from "../../src/merkle/index.js";
import { parseNodeConfig } from "../../src/node/config.js";
import type { HistoricalStates } from "../../src/node/historical.js";
import { Node } from "../../src/node/node.js";
import { installLoadedSnapshot, loadSnapshot } from "../../src/node/snapshot-fetch.js";
import { callJson } from "../helpers/http.js";
import { clientAgent, makeMemberAndUser } from "../helpers/identities.js";
import { openAppNodeConfig } from "../helpers/node-config.js";
import { waitFor } from "../helpers/process.js";

const BUNDLE = join(import.meta.dirname, "../../samples/apps/logging/dist/bundle.json");
const TXID = "x-ms-ccf-transaction-id";

/** What the test reads of the node's insides. */
interface Internals {
  tree: MerkleTree;
  historical: HistoricalStates;
  host: { o: { treeLeavesKept?: number } };
}

describe("a node flushing its Merkle tree", () => {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-tree-flush-"));
  let node: Node;
  let inside: Internals;
  let base: string;
  let user: Agent;
  let serviceCert: string;

  const call = (
    method: "GET" | "POST",
    path: string,
    options: { body?: unknown; headers?: Record<string, string> } = {},
  ) => callJson(user, base, method, path, options);

  async function writeTx(id: number, msg: string): Promise<string> {
    const res = await request(`${base}/app/log/private`, {
      dispatcher: user,
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id, msg }),
    });
    const text = await res.body.text();
    assert.equal(res.statusCode, 200, text);
    return String(res.headers[TXID]);
  }

  async function committed(txid: string): Promise<void> {
    await waitFor(`${txid} committed`, async () => {
      const r = await call("GET", `/app/tx?transaction_id=${txid}`);
      return (JSON.parse(r.text) as { status: string }).status === "Committed" ? true : undefined;
    });
  }

  /** A GET retried while the node answers 202 (fetching from the ledger). */
  async function historical(
    path: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: Buffer; text: string }> {
    return await waitFor(`${path} answered`, async () => {
      const r = await call("GET", path, { headers });
      return r.status === 202 ? undefined : r;
    });
  }

  before(async () => {
    makeMemberAndUser(dir);
    const raw = openAppNodeConfig(dir, BUNDLE, { tx_count: 10, delay: "20ms" });
    raw.snapshots = { directory: join(dir, "snapshots"), tx_count: 40 };
    node = await Node.start(parseNodeConfig(raw, dir), pino({ level: "silent" }));
    inside = node as unknown as Internals;
    const addresses = JSON.parse(readFileSync(join(dir, "rpc_addresses.json"), "utf8")) as Record<
      string,
      string
    >;
    base = `https://${addresses.primary_rpc_interface}`;
    serviceCert = readFileSync(join(dir, "service_cert.pem"), "utf8");
    user = clientAgent(dir, serviceCert);
  });

  after(async () => {
    await user?.close();
    await node?.stop();
  });

  it("serves the same receipts and states for transactions whose leaves it has flushed", async () => {
    const txid = await writeTx(1, "kept in the ledger");
    await committed(txid);
    const seqno = Number(txid.split(".")[1]);
    // The default keeps the last 1000 leaves: this one is still in memory.
    assert.ok(inside.tree.minIndex <= seqno, `leaf ${seqno} held (from ${inside.tree.minIndex})`);
    const json = await historical(`/app/receipt?transaction_id=${txid}`);
    assert.equal(json.status, 200, json.text);
    const cose = await historical(`/app/receipt?transaction_id=${txid}&format=cose`);
    assert.equal(cose.status, 200, cose.text);
    const state = await historical("/app/log/private/historical?id=1", { [TXID]: txid });
    assert.equal(state.status, 200, state.text);

    // Keep nothing behind commit from now on, and move commit on.
    inside.host.o.treeLeavesKept = 0;
    let last = "";
    for (let i = 0; i < 60; i++) last = await writeTx(2, `filler ${i}`);
    await committed(last);
    const lastSeqno = Number(last.split(".")[1]);
    assert.ok(inside.tree.minIndex > seqno, `flushed past ${seqno} (to ${inside.tree.minIndex})`);
    assert.ok(inside.tree.minIndex >= lastSeqno - 20, "flushed up to about the commit point");
    assert.ok(
      inside.tree.size - inside.tree.minIndex < 40,
      `holds ${inside.tree.size - inside.tree.minIndex} leaves`,
    );

    // Forget the states built while the leaf was held: they are rebuilt from the ledger.
    inside.historical.dropAll();
    const json2 = await historical(`/app/receipt?transaction_id=${txid}`);
    assert.equal(json2.status, 200, json2.text);
    assert.equal(json2.text, json.text, "the same JSON receipt, byte for byte");
    const v = verifyReceiptBytes(json2.text, { serviceCertPem: serviceCert });
    assert.ok(v.ok, JSON.stringify(v));
    const cose2 = await historical(`/app/receipt?transaction_id=${txid}&format=cose`);
    assert.ok(cose2.body.equals(cose.body), "the same COSE receipt, byte for byte");
    assert.ok(verifyReceiptBytes(cose2.body, { serviceCertPem: serviceCert }).ok);
    const state2 = await historical("/app/log/private/historical?id=1", { [TXID]: txid });
    assert.equal(state2.status, 200, state2.text);
    assert.deepEqual(JSON.parse(state2.text), { msg: "kept in the ledger" });

    // Every flushed transaction's receipt verifies, signatures included.
    for (let s = seqno; s < inside.tree.minIndex; s++) {
      const r = await historical(`/app/receipt?transaction_id=2.${s}`);
      assert.equal(r.status, 200, `${s}: ${r.text}`);
      const ok = verifyReceiptBytes(r.text, { serviceCertPem: serviceCert });
      assert.ok(ok.ok, `${s}: ${JSON.stringify(ok)}`);
    }
  });

  it("writes snapshots and a ledger that verify, flushed tree and all", async () => {
    const snapshots = join(dir, "snapshots");
    const file = await waitFor("a committed snapshot", () =>
      readdirSync(snapshots).find((f) => f.endsWith(".committed")),
    );
    const snap = loadSnapshot(join(snapshots, file), serviceCert);
    assert.ok(snap.seqno > 0);
    // The ledger from its start, and from the snapshot on (as a joiner from it would hold).
    const whole = readLedger(join(dir, "ledger"), { serviceCert });
    assert.ok(whole.signatures > 5);
    const into = { store: new Store(), tree: new MerkleTree() };
    installLoadedSnapshot(snap, into.store, into.tree);
    const fromSnapshot = readLedger(join(dir, "ledger"), { serviceCert, from: snap.seqno, into });
    assert.equal(fromSnapshot.lastSeqno, whole.lastSeqno);
  });
});
