// `/node/metrics/prometheus` on a real node serving the logging sample: requests counted by route
// template and status (a 4xx included), one latency observation per request, signature and fsync
// histograms filled once a write commits, sandbox time per app endpoint, and the commit gauge
// agreeing with `/node/commit`.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import { clientAgent, makeMemberAndUser } from "../helpers/identities.js";
import { openAppNodeConfig } from "../helpers/node-config.js";
import { startNode, waitFor } from "../helpers/process.js";

const ROOT = join(import.meta.dirname, "../..");
const BUNDLE = join(ROOT, "samples/apps/logging/dist/bundle.json");
const IFACE = "primary_rpc_interface";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Sample lines of exposition text (comments skipped), label values unescaped. */
function samples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m !== null, `sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    out.push({ name: m[1], labels, value: m[3] === "+Inf" ? Infinity : Number(m[3]) });
  }
  return out;
}

class Scrape {
  constructor(readonly all: Sample[]) {}

  /** Sum of the samples named `name` whose labels include `labels` (0 when there are none). */
  sum(name: string, labels: Record<string, string> = {}): number {
    return this.all
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((n, s) => n + s.value, 0);
  }

  has(name: string): boolean {
    return this.all.some((s) => s.name === name);
  }
}

describe("Prometheus metrics of a node", () => {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-metrics-"));
  let node: Awaited<ReturnType<typeof startNode>>["node"];
  let base: string;
  let user: Agent;
  let anonymous: Agent;

  async function call(
    agent: Agent,
    method: "GET" | "POST",
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) {
    const res = await request(`${base}${path}`, {
      dispatcher: agent,
      method,
      ...(body === undefined
        ? { headers }
        : {
            body: JSON.stringify(body),
            headers: { "content-type": "application/json", ...headers },
          }),
    });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  }

  async function scrape(): Promise<Scrape> {
    const res = await call(anonymous, "GET", "/node/metrics/prometheus");
    assert.equal(res.status, 200, res.text);
    assert.match(String(res.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
    return new Scrape(samples(res.text));
  }

  before(async () => {
    assert.ok(existsSync(BUNDLE), `the sample app is built by npm ci: ${BUNDLE}`);
    makeMemberAndUser(dir);
    const config = openAppNodeConfig(dir, BUNDLE, { tx_count: 10, delay: "50ms" });
    ({ node, base } = await startNode(dir, config));
    const ca = readFileSync(join(dir, "service_cert.pem"), "utf8");
    user = clientAgent(dir, ca);
    anonymous = new Agent({ connect: { ca } });
  });

  after(async () => {
    await user?.close();
    await anonymous?.close();
    if (node?.exitCode === null) node.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  });

  it("counts requests by route and status, with one latency observation each", async () => {
    const before = await scrape();
    const route = (method: string, endpoint: string, status: string) => ({
      interface: IFACE,
      method,
      endpoint,
      status,
    });
    const posted = route("POST", "/app/log/private", "200");
    const missing = route("GET", "/app/log/private", "404");
    const unknown = route("GET", "<unmatched>", "404");
    const unauthenticated = route("POST", "/app/log/private", "401");
    for (let i = 0; i < 3; i++) {
      const r = await call(
        user,
        "POST",
        "/app/log/private",
        { id: 100 + i, msg: "metered" },
        { "x-ccf-ts-wait-for-commit": "true" },
      );
      assert.equal(r.status, 200, r.text);
    }
    for (const id of [7001, 7002]) {
      assert.equal((await call(user, "GET", `/app/log/private?id=${id}`)).status, 404);
    }
    assert.equal((await call(user, "GET", "/app/no/such/route/42")).status, 404);
    assert.equal(
      (await call(anonymous, "POST", "/app/log/private", { id: 1, msg: "x" })).status,
      401,
    );

    const now = await scrape();
    const delta = (labels: Record<string, string>) =>
      now.sum("ccf_http_requests_total", labels) - before.sum("ccf_http_requests_total", labels);
    assert.equal(delta(posted), 3);
    assert.equal(delta(missing), 2);
    assert.equal(delta(unknown), 1);
    assert.equal(delta(unauthenticated), 1);
    // Raw paths never become labels: the query string and unknown paths are folded away.
    for (const s of now.all) {
      if (s.name !== "ccf_http_requests_total") continue;
      assert.ok(
        !s.labels.endpoint.includes("?") && !s.labels.endpoint.includes("/42"),
        s.labels.endpoint,
      );
    }
    // Every counted request has its latency observed, per method and route.
    const routes = new Set(
      now.all
        .filter((s) => s.name === "ccf_http_requests_total")
        .map((s) => `${s.labels.method} ${s.labels.endpoint}`),
    );
    assert.ok(routes.has("GET /node/metrics/prometheus"), "the first scrape was counted");
    for (const r of routes) {
      const [method, endpoint] = r.split(" ");
      assert.equal(
        now.sum("ccf_http_request_duration_seconds_count", { method, endpoint }),
        now.sum("ccf_http_requests_total", { method, endpoint }),
        r,
      );
      assert.equal(
        now.sum("ccf_http_request_duration_seconds_bucket", { method, endpoint, le: "+Inf" }),
        now.sum("ccf_http_request_duration_seconds_count", { method, endpoint }),
        r,
      );
    }
    // The handlers ran in the sandbox (the 401 was refused before any app code ran).
    const sandbox = (s: Scrape) =>
      s.sum("ccf_js_sandbox_duration_seconds_count", {
        kind: "app",
        method: "POST",
        endpoint: "/app/log/private",
      });
    assert.equal(sandbox(now) - sandbox(before), 3);
  });

  it("fills the signature and fsync histograms once a write commits", async () => {
    const r = await call(
      user,
      "POST",
      "/app/log/public",
      { id: 5, msg: "committed" },
      { "x-ccf-ts-wait-for-commit": "true" },
    );
    assert.equal(r.status, 200, r.text);
    const s = await scrape();
    assert.ok(s.sum("ccf_signatures_total") >= 1);
    assert.equal(s.sum("ccf_signature_duration_seconds_count"), s.sum("ccf_signatures_total"));
    assert.ok(s.sum("ccf_signature_duration_seconds_sum") > 0);
    assert.ok(s.sum("ccf_ledger_fsync_duration_seconds_count") >= 1);
    assert.ok(s.sum("ccf_ledger_appended_bytes_total") > 0);
    assert.ok(s.sum("ccf_ledger_appended_entries_total") >= s.sum("ccf_commit_seqno"));
    assert.equal(s.sum("ccf_consensus_role", { role: "Primary" }), 1);
    assert.equal(s.sum("ccf_consensus_role"), 1);
    assert.ok(s.sum("ccf_last_signed_seqno") >= s.sum("ccf_commit_seqno"));
    assert.ok(s.has("ccf_forwarded_requests_in_flight"));
    assert.equal(s.sum("ccf_forwarded_requests_in_flight"), 0);
  });

  it("reports the commit seqno /node/commit reports", async () => {
    // Commit can move between two requests: compare at a moment it stood still.
    await waitFor("a commit gauge equal to /node/commit", async () => {
      const first = JSON.parse((await call(anonymous, "GET", "/node/commit")).text) as {
        transaction_id: string;
      };
      const s = await scrape();
      const second = JSON.parse((await call(anonymous, "GET", "/node/commit")).text) as {
        transaction_id: string;
      };
      if (first.transaction_id !== second.transaction_id) return undefined;
      const seqno = Number(first.transaction_id.split(".")[1]);
      assert.equal(s.sum("ccf_commit_seqno"), seqno);
      assert.equal(s.sum("ccf_current_view"), Number(first.transaction_id.split(".")[0]));
      return true;
    });
  });

  it("keeps CCF's JSON at /node/metrics", async () => {
    const res = await call(anonymous, "GET", "/node/metrics");
    assert.equal(res.status, 200);
    const body = JSON.parse(res.text) as { sessions: { interfaces: Record<string, unknown> } };
    assert.deepEqual(Object.keys(body), ["sessions"]);
    assert.ok(IFACE in body.sessions.interfaces);
  });
});
