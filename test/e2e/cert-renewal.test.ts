// Renewing certificates through governance on a real node, with the default constitution and
// `ccf-ts gov`: the node serves its renewed certificate and signs with it once the proposal
// commits; the renewed service certificate keeps the service key, so clients pinned to either the
// old or the new one still connect; a validity over the service's maximum fails the proposal.

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import { verifyReceiptBytes } from "../../src/audit/index.js";
import { GovClient } from "../../src/cli/gov-client.js";
import { constitutionFiles, DEFAULT_CONSTITUTION_DIR } from "../../src/gov/index.js";
import { singleNodeConfig } from "../helpers/node-config.js";
import { runCcfTs, startNode, waitFor } from "../helpers/process.js";

const DAY_MS = 86_400_000;
const MAX_NODE_DAYS = 20;

/** CCF's X.509 time format for `valid_from` ("YYYYMMDDhhmmssZ"). */
function x509Time(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, "").slice(0, 14)}Z`;
}

/** What the node serves on its RPC interface to a client that checks nothing. */
function servedCertificate(base: string): Promise<X509Certificate> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: hostname, port: Number(port), rejectUnauthorized: false },
      () => {
        const raw = socket.getPeerCertificate().raw;
        socket.end();
        resolve(new X509Certificate(raw));
      },
    );
    socket.on("error", reject);
  });
}

describe("certificate renewal through governance", () => {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-cert-renewal-"));
  let node: Awaited<ReturnType<typeof startNode>>["node"];
  let base: string;
  let oldServiceCert: string;
  let oldAgent: Agent;
  let nodeId: string;
  const validFrom = new Date(Math.floor((Date.now() - DAY_MS) / 1000) * 1000);

  function gov(...args: string[]): { proposalId: string; proposalState: string } {
    const r = runCcfTs(["gov", "--url", base, ...args], dir);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as { proposalId: string; proposalState: string };
  }

  /** Proposes `actions` and votes for it as member0 (the only member): accepted at once. */
  function passProposal(name: string, args: Record<string, unknown>): void {
    const file = join(dir, `${name}.json`);
    writeFileSync(file, JSON.stringify({ actions: [{ name, args }] }));
    const proposed = gov("propose", file);
    assert.equal(proposed.proposalState, "Open");
    assert.equal(gov("vote", proposed.proposalId).proposalState, "Accepted");
  }

  async function getJson(path: string, agent: Agent): Promise<Record<string, unknown>> {
    const res = await request(`${base}${path}`, { dispatcher: agent });
    const body = (await res.body.json()) as Record<string, unknown>;
    assert.equal(res.statusCode, 200, JSON.stringify(body));
    return body;
  }

  function assertValidity(cert: X509Certificate, days: number): void {
    assert.equal(new Date(cert.validFrom).getTime(), validFrom.getTime());
    assert.equal(new Date(cert.validTo).getTime(), validFrom.getTime() + days * DAY_MS - 1000);
  }

  before(async () => {
    const r = runCcfTs(["keygen", "--name", "member0", "--gen-enc-key"], dir);
    assert.equal(r.status, 0, r.stderr);
    const config = singleNodeConfig(dir, {
      start: {
        constitution_files: constitutionFiles(DEFAULT_CONSTITUTION_DIR),
        service_configuration: {
          recovery_threshold: 1,
          maximum_node_certificate_validity_days: MAX_NODE_DAYS,
        },
        open_service: true,
      },
      signatures: { tx_count: 10, delay: "50ms" },
    });
    ({ node, base } = await startNode(dir, config));
    oldServiceCert = readFileSync(join(dir, "service_cert.pem"), "utf8");
    oldAgent = new Agent({ connect: { ca: oldServiceCert } });
    await waitFor("member0 to be active", () => {
      const ack = runCcfTs(["gov", "--url", base, "ack"], dir);
      return ack.status === 0 ? true : undefined;
    });
    nodeId = String((await getJson("/node/network/nodes/self", oldAgent)).node_id);
  });

  after(async () => {
    await oldAgent?.close();
    if (node !== undefined && node.exitCode === null) node.kill("SIGTERM");
  });

  it("set_all_nodes_certificate_validity: the node serves and signs with its renewed certificate", async () => {
    const before = await servedCertificate(base);
    passProposal("set_all_nodes_certificate_validity", {
      valid_from: x509Time(validFrom),
      validity_period_days: 10,
    });
    const renewed = await waitFor("the node to serve its renewed certificate", async () => {
      const cert = await servedCertificate(base);
      return cert.validFrom === before.validFrom ? undefined : cert;
    });
    assertValidity(renewed, 10);
    const service = new X509Certificate(oldServiceCert);
    assert.ok(renewed.publicKey.equals(before.publicKey), "same node key");
    assert.ok(renewed.checkIssued(service) && renewed.verify(service.publicKey));

    // A transaction after the switch is covered by a signature carrying the renewed certificate.
    const member = new GovClient(base, oldServiceCert, {
      certPem: readFileSync(join(dir, "member0_cert.pem"), "utf8"),
      keyPem: readFileSync(join(dir, "member0_privk.pem"), "utf8"),
    });
    let txId: string | undefined;
    try {
      const res = await member.post(
        "/gov/members/proposals:create",
        member.sign(
          "proposal",
          JSON.stringify({
            actions: [{ name: "set_node_data", args: { node_id: nodeId, node_data: {} } }],
          }),
        ),
      );
      assert.equal(res.status, 200, res.text);
      txId = res.txId;
    } finally {
      await member.close();
    }
    assert.ok(txId !== undefined);
    const receipt = await waitFor("a receipt for the later transaction", async () => {
      const res = await request(`${base}/app/receipt?transaction_id=${txId}`, {
        dispatcher: oldAgent,
      });
      const text = await res.body.text();
      return res.statusCode === 200 ? text : undefined;
    });
    const signedWith = new X509Certificate((JSON.parse(receipt) as { cert: string }).cert);
    assert.ok(signedWith.raw.equals(renewed.raw), "the signature carries the renewed certificate");
    assert.equal(verifyReceiptBytes(receipt, { serviceCertPem: oldServiceCert }).ok, true);
  });

  it("set_service_certificate_validity: a new service certificate with the same key; old and new CAs both work", async () => {
    passProposal("set_service_certificate_validity", {
      valid_from: x509Time(validFrom),
      validity_period_days: 10,
    });
    const newServiceCert = await waitFor("the renewed service certificate", async () => {
      const cert = String((await getJson("/node/network", oldAgent)).service_certificate);
      return new X509Certificate(cert).raw.equals(new X509Certificate(oldServiceCert).raw)
        ? undefined
        : cert;
    });
    const renewed = new X509Certificate(newServiceCert);
    const old = new X509Certificate(oldServiceCert);
    assertValidity(renewed, 10);
    assert.equal(renewed.subject, old.subject);
    assert.ok(renewed.publicKey.equals(old.publicKey), "same service key");
    assert.ok(renewed.ca && renewed.verify(renewed.publicKey), "a self-signed CA");
    await waitFor("the node to adopt the renewed service certificate", () =>
      /"service":true[^\n]*serving renewed certificates/.test(node.output()) ? true : undefined,
    );

    const newAgent = new Agent({ connect: { ca: newServiceCert } });
    try {
      const state = await getJson("/node/state", newAgent);
      assert.equal(state.state, "PartOfNetwork");
      assert.equal((await getJson("/node/network", newAgent)).service_certificate, newServiceCert);
    } finally {
      await newAgent.close();
    }
    assert.equal((await getJson("/node/state", oldAgent)).state, "PartOfNetwork");
  });

  it("set_node_certificate_validity over the service's maximum fails and changes nothing", async () => {
    const path = `/gov/service/nodes/${nodeId}?api-version=2024-07-01`;
    const before = (await getJson(path, oldAgent)).certificate;
    const served = await servedCertificate(base);
    const file = join(dir, "too-long.json");
    writeFileSync(
      file,
      JSON.stringify({
        actions: [
          {
            name: "set_node_certificate_validity",
            args: {
              node_id: nodeId,
              valid_from: x509Time(validFrom),
              validity_period_days: MAX_NODE_DAYS + 1,
            },
          },
        ],
      }),
    );
    const proposed = gov("propose", file);
    const vote = runCcfTs(["gov", "--url", base, "vote", proposed.proposalId], dir);
    assert.equal(vote.status, 1);
    assert.match(
      vote.stderr,
      new RegExp(`a validity of ${MAX_NODE_DAYS + 1} days exceeds the service's maximum`),
    );
    assert.equal((await getJson(path, oldAgent)).certificate, before);
    assert.ok((await servedCertificate(base)).raw.equals(served.raw));
  });
});
