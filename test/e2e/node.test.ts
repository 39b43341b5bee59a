// A real node process started from a CCF config on port 0: every built-in endpoint over HTTPS,
// CCF's error answers, then SIGKILL and an offline read of what it left on disk.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import {
  certificateId,
  nodeIdFromPublicKey,
  publicKeyFromPem,
  verifyDigest,
} from "../../src/crypto/index.js";
import { readLedger } from "../../src/ledger/index.js";
import { type Receipt, verifyReceipt } from "../../src/merkle/index.js";
import { singleNodeConfig } from "../helpers/node-config.js";
import { runCcfTs, startCcfTs, waitFor } from "../helpers/process.js";

function startConfig(dir: string): Record<string, unknown> {
  return singleNodeConfig(dir, {
    rpcInterface: { http_configuration: { max_body_size: "1KB" } },
    ledger: { chunk_size: "20KB" },
    signatures: { tx_count: 100, delay: "50ms" },
  });
}

describe("a node process", () => {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-node-"));
  let node: ReturnType<typeof startCcfTs>;
  let agent: Agent;
  let base: string;
  let serviceCert: string;

  async function get(path: string, init: { method?: "GET" | "POST"; body?: Buffer } = {}) {
    const res = await request(`${base}${path}`, {
      dispatcher: agent,
      method: init.method ?? "GET",
      body: init.body,
    });
    const text = await res.body.text();
    return {
      status: res.statusCode,
      headers: res.headers,
      text,
      json: () => JSON.parse(text) as Record<string, unknown>,
    };
  }

  before(async () => {
    const keys = runCcfTs(["keygen", "--name", "member0", "--gen-enc-key"], dir);
    assert.equal(keys.status, 0, keys.stderr);
    writeFileSync(join(dir, "config.json"), JSON.stringify(startConfig(dir)));
    node = startCcfTs(["node", "--config", join(dir, "config.json")], dir);
    const addresses = await waitFor("the RPC address file", () =>
      existsSync(join(dir, "rpc_addresses.json"))
        ? (JSON.parse(readFileSync(join(dir, "rpc_addresses.json"), "utf8")) as Record<
            string,
            string
          >)
        : node.exitCode !== null
          ? (() => {
              throw new Error(`node exited: ${node.output()}`);
            })()
          : undefined,
    );
    base = `https://${addresses.primary_rpc_interface}`;
    serviceCert = readFileSync(join(dir, "service_cert.pem"), "utf8");
    agent = new Agent({ connect: { ca: serviceCert } });
  });

  after(async () => {
    await agent?.close();
    if (node?.exitCode === null) node.kill("SIGKILL");
  });

  it("serves its state and identity over TLS trusted through the service certificate", async () => {
    const state = (await get("/node/state")).json();
    assert.equal(state.state, "PartOfNetwork");
    const nodeCert = readFileSync(join(dir, "nodecert.pem"), "utf8");
    assert.equal(state.node_id, nodeIdFromPublicKey(publicKeyFromPem(nodeCert)));
    assert.equal(state.startup_seqno, 0);
    assert.equal(typeof state.last_signed_seqno, "number");
    assert.equal(readFileSync(join(dir, "node.pid"), "utf8"), String(node.pid));
    const n2n = JSON.parse(readFileSync(join(dir, "node_address.json"), "utf8")) as Record<
      string,
      string
    >;
    assert.match(n2n.node_to_node_interface ?? "", /^127\.0\.0\.1:[1-9]\d*$/);
  });

  it("serves its self-signed certificate and the configuration it started with (CCF's fields)", async () => {
    const cert = (await get("/node/self_signed_certificate")).json();
    assert.equal(cert.self_signed_certificate, readFileSync(join(dir, "nodecert.pem"), "utf8"));
    const config = (await get("/node/config")).json() as {
      command: { type: string };
      ledger: { chunk_size: string };
      ledger_signatures: { tx_count: number; delay: string };
      consensus: { election_timeout: string };
    };
    assert.equal(config.command.type, "Start");
    assert.equal(config.ledger.chunk_size, "20KB");
    assert.equal(config.ledger_signatures.tx_count, 100);
    assert.equal(config.ledger_signatures.delay, "50ms");
    // Defaults filled in, in CCF's units.
    assert.equal(config.consensus.election_timeout, "5000ms");
  });

  it("describes the network: an Opening service in view 2 with this node as primary", async () => {
    const state = (await get("/node/state")).json();
    const net = await get("/node/network");
    assert.equal(net.status, 200);
    assert.match(String(net.headers["x-ms-ccf-transaction-id"]), /^2\.\d+$/);
    const body = net.json();
    assert.equal(body.service_status, "Opening");
    assert.equal(body.service_certificate, serviceCert);
    assert.equal(body.current_view, 2);
    assert.equal(body.primary_id, state.node_id);
    assert.equal(body.recovery_count, 0);
    assert.equal(body.current_service_create_txid, "2.1");
  });

  it("lists its nodes in CCF's shape, by id, self and primary", async () => {
    const id = String((await get("/node/state")).json().node_id);
    const nodes = (await get("/node/network/nodes")).json().nodes as Array<Record<string, unknown>>;
    assert.equal(nodes.length, 1);
    const me = nodes[0];
    assert.equal(me.node_id, id);
    assert.equal(me.status, "Trusted");
    assert.equal(me.primary, true);
    const rpc = (
      me.rpc_interfaces as Record<string, { bind_address: string; published_address: string }>
    ).primary_rpc_interface;
    assert.equal(rpc?.published_address, base.slice("https://".length));
    for (const path of [
      `/node/network/nodes/${id}`,
      "/node/network/nodes/self",
      "/node/network/nodes/primary",
    ]) {
      assert.equal((await get(path)).json().node_id, id, path);
    }
    const [host, port] = base.slice("https://".length).split(":");
    assert.equal(
      ((await get(`/node/network/nodes?host=${host}&port=${port}`)).json().nodes as unknown[])
        .length,
      1,
    );
    assert.equal(
      ((await get(`/node/network/nodes?host=${host}&port=1`)).json().nodes as unknown[]).length,
      0,
    );
    const missing = await get(`/node/network/nodes/${"0".repeat(64)}`);
    assert.equal(missing.status, 404);
    assert.equal((missing.json().error as { code: string }).code, "ResourceNotFound");
  });

  it("answers version, readiness, quotes, metrics and its API", async () => {
    const version = (await get("/node/version")).json();
    assert.match(String(version.ccf_version), /^ccf-ts-\d+\.\d+\.\d+$/);
    assert.equal(version.unsafe, false);
    assert.equal((await get("/node/ready/app")).status, 204);
    assert.equal((await get("/node/ready/gov")).status, 204);
    const quote = (await get("/node/quotes/self")).json();
    assert.equal(quote.format, "Insecure_Virtual");
    assert.equal(quote.measurement, "Insecure hard-coded virtual measurement v1");
    const raw = JSON.parse(Buffer.from(String(quote.raw), "base64").toString()) as Record<
      string,
      string
    >;
    assert.equal(raw.measurement, quote.measurement);
    const quotes = (await get("/node/quotes")).json().quotes as Array<Record<string, unknown>>;
    assert.deepEqual(
      quotes.map((q) => q.node_id),
      [quote.node_id],
    );
    const metrics = (await get("/node/metrics")).json().sessions as Record<string, unknown>;
    assert.ok((metrics.active as number) >= 1);
    const iface = (metrics.interfaces as Record<string, Record<string, number>>)
      .primary_rpc_interface;
    assert.equal(iface?.soft_cap, 1000);
    assert.equal(iface?.hard_cap, 1010);
    const prom = await get("/node/metrics/prometheus");
    assert.equal(prom.status, 200);
    assert.match(String(prom.headers["content-type"]), /^text\/plain/);
    assert.match(prom.text, /^ccf_sessions_soft_cap\{interface="primary_rpc_interface"\} 1000$/m);
    assert.match(prom.text, /^ccf_current_view 2$/m);
    const api = (await get("/node/api")).json();
    assert.equal(api.openapi, "3.0.0");
    assert.ok("/node/network/nodes/{node_id}" in (api.paths as Record<string, unknown>));
    const endpointMetrics = (await get("/node/api/metrics")).json().metrics as Array<
      Record<string, unknown>
    >;
    const calls = endpointMetrics.find((m) => m.path === "/node/version")?.calls as number;
    assert.ok(calls >= 1);
  });

  it("commits the genesis transaction and gives a receipt that verifies against the service", async () => {
    const commit = await waitFor("a committed signature", async () => {
      const c = (await get("/app/commit")).json();
      return c.transaction_id !== "2.0" ? c : undefined;
    });
    assert.match(String(commit.transaction_id), /^2\.\d+$/);
    assert.deepEqual((await get("/node/commit")).json(), commit);
    assert.deepEqual((await get("/app/commit?view_history=true")).json().view_history, ["2.1"]);
    assert.deepEqual((await get("/app/tx?transaction_id=2.1")).json(), {
      status: "Committed",
      transaction_id: "2.1",
    });
    // seqno 1 committed in view 2, so it can never be in view 3 (CCF's evaluate_tx_status)
    assert.equal((await get("/app/tx?transaction_id=3.1")).json().status, "Invalid");
    assert.equal((await get("/app/tx?transaction_id=2.999999")).json().status, "Unknown");
    assert.equal((await get("/app/tx?transaction_id=3.999999")).json().status, "Unknown");
    assert.equal((await get("/app/tx?transaction_id=1.999999")).json().status, "Invalid");
    const receipt = (await get("/app/receipt?transaction_id=2.1")).json() as unknown as Receipt;
    assert.ok("leaf_components" in receipt);
    const verify = (cert: string, digest: Uint8Array, sig: Uint8Array) =>
      verifyDigest(cert, digest, sig);
    const { verifyCertificateIssued } = await import("../../src/crypto/index.js");
    assert.ok(verifyReceipt(receipt, verify, serviceCert, verifyCertificateIssued));
    const sigReceipt = (await get("/app/receipt?transaction_id=2.2")).json();
    assert.deepEqual(sigReceipt.proof, []);
    assert.equal((await get("/app/receipt?transaction_id=2.999999")).status, 404);
  });

  it("answers CCF's errors: 400 for a malformed TxID, 404 for an unknown path, 413 for a large body", async () => {
    const bad = await get("/app/tx?transaction_id=abc");
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.json(), {
      error: {
        code: "InvalidQueryParameterValue",
        message:
          "The value 'abc' passed as query parameter 'transaction_id' could not be converted to a valid Transaction ID.",
      },
    });
    const missingParam = await get("/app/tx");
    assert.equal(missingParam.status, 400);
    const unknown = await get("/app/nothing/here");
    assert.equal(unknown.status, 404);
    assert.equal((unknown.json().error as { code: string }).code, "ResourceNotFound");
    const big = await get("/app/commit", { method: "POST", body: Buffer.alloc(2048, 1) });
    assert.equal(big.status, 413);
    assert.equal((big.json().error as { code: string }).code, "RequestBodyTooLarge");
    assert.equal((await get("/node/state")).status, 200, "the node keeps serving");
  });

  it("leaves a ledger that holds every committed transaction and verifies offline after SIGKILL", async () => {
    const commit = String((await get("/node/commit")).json().transaction_id);
    const committedSeqno = Number(commit.split(".")[1]);
    node.kill("SIGKILL");
    await waitFor("the node to die", () =>
      node.exitCode !== null || node.signalCode !== null ? true : undefined,
    );
    const report = readLedger(join(dir, "ledger"));
    assert.ok(report.lastSeqno >= committedSeqno);
    assert.ok(report.lastSignedSeqno >= committedSeqno);
    assert.equal(report.signers.size, 1);
    const member0 = certificateId(readFileSync(join(dir, "member0_cert.pem"), "utf8"));
    assert.ok(report.store.get("public:ccf.gov.members.info", member0) !== undefined);
  });
});

describe("node configuration on the command line", () => {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-config-"));

  it("--check accepts a valid configuration without starting anything", () => {
    runCcfTs(["keygen", "--name", "member0", "--gen-enc-key"], dir);
    writeFileSync(join(dir, "good.json"), JSON.stringify(startConfig(dir)));
    const r = runCcfTs(["node", "--config", join(dir, "good.json"), "--check"], dir);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /configuration is valid/);
    assert.equal(existsSync(join(dir, "service_cert.pem")), false);
  });

  it("refuses a bad configuration with a message naming the field", () => {
    const config = startConfig(dir);
    (config.network as Record<string, unknown>).rpc_interfaces = {
      primary_rpc_interface: { bind_address: "not-an-address" },
    };
    writeFileSync(join(dir, "bad.json"), JSON.stringify(config));
    const r = runCcfTs(["node", "--config", join(dir, "bad.json"), "--check"], dir);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /network\.rpc_interfaces\.primary_rpc_interface\.bind_address/);
  });

  it("--check names every input file that is missing, by its field", () => {
    const config = startConfig(dir) as { command: { start: Record<string, unknown> } };
    const members = config.command.start.members as Array<Record<string, unknown>>;
    members[0].certificate_file = join(dir, "no-such-member.pem");
    config.command.start.constitution_files = [join(dir, "no-such-constitution.js")];
    writeFileSync(join(dir, "missing.json"), JSON.stringify(config));
    const r = runCcfTs(["node", "--config", join(dir, "missing.json"), "--check"], dir);
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /command\.start\.members\[0\]\.certificate_file: .*no-such-member\.pem: no such file/,
    );
    assert.match(
      r.stderr,
      /command\.start\.constitution_files\[0\]: .*no-such-constitution\.js: no such file/,
    );
  });

  it("exits with the error when the start fails part-way (a bundle that is not there)", () => {
    const config = startConfig(dir) as { command: { start: Record<string, unknown> } };
    config.command.start.js_app_bundle = join(dir, "no-such-app", "bundle.json");
    writeFileSync(join(dir, "no-bundle.json"), JSON.stringify(config));
    // Before, the error was printed but the process stayed up (listeners, timers still open):
    // spawnSync would time out with status null.
    const r = runCcfTs(["node", "--config", join(dir, "no-bundle.json")], dir);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /js_app_bundle: .*no-such-app.*does not exist/);
  });

  it("refuses a missing configuration file, naming it", () => {
    const r = runCcfTs(["node", "--config", join(dir, "nope.json")], dir);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /nope\.json/);
  });

  it("keygen writes CCF's identity files", () => {
    const r = runCcfTs(["keygen", "--name", "user7"], dir);
    assert.equal(r.status, 0, r.stderr);
    const cert = readFileSync(join(dir, "user7_cert.pem"), "utf8");
    assert.match(cert, /^-----BEGIN CERTIFICATE-----/);
    assert.match(readFileSync(join(dir, "user7_privk.pem"), "utf8"), /PRIVATE KEY/);
    assert.equal(existsSync(join(dir, "user7_enc_pubk.pem")), false);
    const again = runCcfTs(["keygen", "--name", "user7"], dir);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /already exists/);
  });
});
