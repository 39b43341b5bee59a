// The Prometheus registry and the node's metrics on it: the exposition text parsed back by a small
// parser (HELP/TYPE before samples, escaped label values, histogram buckets cumulative with +Inf
// equal to the count), misuse refused, and requests recorded by route template through dispatch.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NodeContext, SessionMetrics } from "../../src/endpoints/context.js";
import { nodeEndpoints } from "../../src/endpoints/node.js";
import {
  FORWARDED_INTERFACE,
  MetricsRegistry,
  NodeMetrics,
  prometheusText,
  UNMATCHED_ROUTE,
} from "../../src/endpoints/prometheus.js";
import type { Endpoint } from "../../src/endpoints/types.js";
import { CcfError } from "../../src/errors.js";
import { Store } from "../../src/kv/index.js";
import { dispatch, inject, Router } from "../../src/rpc/index.js";
import { Cluster, entry } from "../consensus/cluster.js";
import type { EndpointRequest } from "../../src/endpoints/types.js";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Family {
  help: string;
  type: string;
  samples: Sample[];
}

/** Parses exposition text, checking the format's rules as it goes; throws on any violation. */
function parse(text: string): Map<string, Family> {
  assert.ok(text.endsWith("\n"), "the text ends with a newline");
  const families = new Map<string, Family>();
  let current: { name: string; family: Family } | undefined;
  const seen = new Set<string>();
  for (const line of text.slice(0, -1).split("\n")) {
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (help !== null) {
      assert.ok(!families.has(help[1]), `family ${help[1]} declared once`);
      current = { name: help[1], family: { help: help[2], type: "", samples: [] } };
      families.set(help[1], current.family);
      continue;
    }
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line);
    if (type !== null) {
      assert.ok(current !== undefined && type[1] === current.name, "TYPE follows its HELP");
      assert.equal(current.family.type, "", "one TYPE per family");
      current.family.type = type[2];
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
    assert.ok(m !== null, `sample line: ${JSON.stringify(line)}`);
    assert.ok(current !== undefined && current.family.type !== "", "a sample follows HELP/TYPE");
    const name = m[1];
    const base = current.name;
    if (current.family.type === "histogram") {
      assert.ok(
        [`${base}_bucket`, `${base}_sum`, `${base}_count`].includes(name),
        `${name} belongs to histogram ${base}`,
      );
    } else {
      assert.equal(name, base, "a sample of its family");
    }
    const labels = parseLabels(m[2] ?? "");
    const value =
      m[3] === "+Inf"
        ? Number.POSITIVE_INFINITY
        : m[3] === "-Inf"
          ? Number.NEGATIVE_INFINITY
          : Number(m[3]);
    assert.ok(m[3] === "NaN" || !Number.isNaN(value), `a number: ${m[3]}`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    assert.ok(!seen.has(key), `series ${key} appears once`);
    seen.add(key);
    current.family.samples.push({ name, labels, value });
  }
  return families;
}

function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (text === "") return out;
  let i = 1;
  while (i < text.length - 1) {
    const name = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(text.slice(i));
    assert.ok(name !== null, `label name at ${i} of ${text}`);
    i += name[0].length;
    let value = "";
    for (;;) {
      const c = text[i];
      assert.ok(c !== undefined && c !== "\n", "label value closed");
      if (c === '"') break;
      if (c === "\\") {
        const next = text[i + 1];
        assert.ok(next === "\\" || next === '"' || next === "n", `escape \\${next}`);
        value += next === "n" ? "\n" : next;
        i += 2;
        continue;
      }
      value += c;
      i++;
    }
    i++;
    assert.ok(!(name[1] in out), `label ${name[1]} once`);
    out[name[1]] = value;
    if (text[i] === ",") i++;
  }
  assert.equal(i, text.length - 1, `labels end with '}': ${text}`);
  return out;
}

function value(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const base = name.replace(/_(bucket|sum|count)$/, "");
  const family = families.get(name) ?? families.get(base);
  const sample = family?.samples.find(
    (s) =>
      s.name === name &&
      Object.keys(labels).length === Object.keys(s.labels).length &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  return sample?.value;
}

/** Checks every histogram series: buckets increasing and cumulative, +Inf = count. */
function checkHistograms(families: Map<string, Family>): void {
  for (const [name, f] of families) {
    if (f.type !== "histogram") continue;
    const series = new Map<string, Sample[]>();
    for (const s of f.samples) {
      const key = JSON.stringify(
        Object.entries(s.labels)
          .filter(([k]) => k !== "le")
          .sort(),
      );
      let list = series.get(key);
      if (list === undefined) series.set(key, (list = []));
      list.push(s);
    }
    for (const [key, samples] of series) {
      const buckets = samples.filter((s) => s.name === `${name}_bucket`);
      assert.ok(buckets.length > 0, `${name}${key} has buckets`);
      let lastLe = Number.NEGATIVE_INFINITY;
      let lastCount = 0;
      for (const b of buckets) {
        const le = b.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(b.labels.le);
        assert.ok(le > lastLe, `${name}${key}: le increases`);
        assert.ok(b.value >= lastCount, `${name}${key}: buckets are cumulative`);
        lastLe = le;
        lastCount = b.value;
      }
      assert.equal(lastLe, Number.POSITIVE_INFINITY, `${name}${key}: last bucket is +Inf`);
      const count = samples.find((s) => s.name === `${name}_count`)?.value;
      assert.equal(lastCount, count, `${name}${key}: +Inf equals count`);
      assert.ok(
        samples.some((s) => s.name === `${name}_sum`),
        `${name}${key}: has a sum`,
      );
    }
  }
}

function refuses(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CcfError);
    assert.equal(e.code, "InvalidMetric");
    assert.match(e.message, message);
    return true;
  });
}

const SESSIONS: SessionMetrics = {
  active: 2,
  peak: 3,
  interfaces: {
    primary: {
      active: 2,
      peak: 3,
      soft_cap: 10,
      hard_cap: 20,
      errors: { parsing: 1, request_payload_too_large: 0, request_header_too_large: 4 },
    },
  },
};

/** A NodeContext with fixed values: what the metrics read of it. */
function fakeContext(primary = true): NodeContext {
  return {
    nodeId: "n0",
    version: { ccf_version: "test", quickjs_version: "", unsafe: false },
    store: new Store(),
    state: () => "PartOfNetwork",
    primaryId: () => (primary ? "n0" : "n1"),
    currentView: () => 4,
    lastTxId: () => ({ view: 4, seqno: 17 }),
    commitTxId: () => ({ view: 4, seqno: 12 }),
    lastSignedSeqno: () => 15,
    startupSeqno: () => 0,
    viewHistory: () => [],
    txStatus: () => "Unknown",
    receipt: () => undefined,
    quote: () => ({ node_id: "n0", format: "", raw: "", endorsements: "", measurement: "" }),
    sessionMetrics: () => SESSIONS,
    isReady: () => true,
  };
}

function request(method: string, path: string): EndpointRequest {
  return {
    method,
    path,
    query: "",
    params: {},
    headers: {},
    body: Buffer.alloc(0),
    clientCert: undefined,
    httpVersion: "1.1",
    hostname: "localhost",
  };
}

describe("MetricsRegistry", () => {
  it("renders counters and gauges with HELP and TYPE, and escapes label values", () => {
    const r = new MetricsRegistry();
    const c = r.counter("t_requests_total", "Requests\nwith a \\ in help", ["path"]);
    const tricky = 'a"b\\c\nd';
    c.labels(tricky).inc();
    c.labels(tricky).inc(2);
    c.labels("/plain").inc();
    r.gauge("t_depth", "Depth").labels().set(-3.5);
    const text = r.render();
    assert.match(text, /^# HELP t_requests_total Requests\\nwith a \\\\ in help$/m);
    assert.ok(text.includes('t_requests_total{path="a\\"b\\\\c\\nd"} 3\n'), text);
    const families = parse(text);
    assert.equal(families.get("t_requests_total")?.type, "counter");
    assert.equal(value(families, "t_requests_total", { path: tricky }), 3);
    assert.equal(value(families, "t_requests_total", { path: "/plain" }), 1);
    assert.equal(value(families, "t_depth"), -3.5);
  });

  it("keeps histogram buckets cumulative, le inclusive, +Inf equal to the count", () => {
    const r = new MetricsRegistry();
    const h = r.histogram("t_seconds", "Durations", ["op"], [0.1, 0.5, 1]).labels("x");
    for (const v of [0.05, 0.1, 0.3, 0.5, 0.7, 2, 30]) h.observe(v);
    r.histogram("t_empty_seconds", "Never observed", ["op"], [1]).labels("y");
    const families = parse(r.render());
    checkHistograms(families);
    const b = (le: string) => value(families, "t_seconds_bucket", { op: "x", le });
    assert.equal(b("0.1"), 2); // 0.05 and exactly 0.1
    assert.equal(b("0.5"), 4);
    assert.equal(b("1"), 5);
    assert.equal(b("+Inf"), 7);
    assert.equal(value(families, "t_seconds_count", { op: "x" }), 7);
    assert.ok(Math.abs((value(families, "t_seconds_sum", { op: "x" }) ?? 0) - 33.65) < 1e-9);
    assert.equal(value(families, "t_empty_seconds_bucket", { op: "y", le: "+Inf" }), 0);
    assert.equal(value(families, "t_empty_seconds_count", { op: "y" }), 0);
  });

  it("reads collected families when rendering, not before", () => {
    const r = new MetricsRegistry();
    let depth = 1;
    r.gauge("t_queue", "Queue", ["peer"], () => [
      [["a"], depth],
      [["b"], depth * 2],
    ]);
    depth = 5;
    const families = parse(r.render());
    assert.equal(value(families, "t_queue", { peer: "a" }), 5);
    assert.equal(value(families, "t_queue", { peer: "b" }), 10);
  });

  it("refuses malformed names, labels and buckets, and counters that go down", () => {
    const r = new MetricsRegistry();
    refuses(() => r.counter("1bad", "x"), /metric name "1bad"/);
    refuses(() => r.gauge("ok_name", "x", ["bad-label"]), /label name "bad-label"/);
    refuses(() => r.gauge("ok_name2", "x", ["__reserved"]), /label name "__reserved"/);
    refuses(() => r.gauge("ok_name3", "x", ["a", "a"]), /label a appears twice/);
    refuses(() => r.histogram("h1", "x", ["le"], [1]), /cannot have a label "le"/);
    refuses(() => r.histogram("h2", "x", [], []), /at least one bucket/);
    refuses(() => r.histogram("h3", "x", [], [1, 1]), /buckets must increase/);
    refuses(() => r.histogram("h4", "x", [], [1, Number.POSITIVE_INFINITY]), /not finite/);
    const c = r.counter("t_total", "x", ["a", "b"]);
    refuses(() => r.counter("t_total", "again"), /registered twice/);
    refuses(() => c.labels("only one"), /takes 2 label values \(a, b\), got 1/);
    refuses(() => c.labels("x", "y").inc(-1), /only goes up/);
    r.gauge("t_collected", "x", ["a"], () => [[["1", "2"], 1]]);
    refuses(() => r.render(), /t_collected: a collected sample has 2 label values/);
  });
});

describe("NodeMetrics", () => {
  it("counts requests by route template, not raw path, with unmatched routes as one label", async () => {
    const metrics = new NodeMetrics(fakeContext());
    const router = new Router();
    const endpoints: Endpoint[] = [
      { method: "GET", path: "/app/log/{id}", handler: () => ({ status: 200, body: "ok" }) },
      {
        method: "POST",
        path: "/app/log/{id}",
        handler: async () => Promise.resolve({ status: 201 }),
      },
      {
        method: "GET",
        path: "/app/fail",
        handler: () => {
          throw new Error("boom");
        },
      },
    ];
    router.setEndpoints("app", endpoints);
    const hooks = { observe: metrics.httpObserver("primary") };
    const forwarded = { observe: metrics.httpObserver(FORWARDED_INTERFACE) };
    const send = async (method: string, path: string, h = hooks) =>
      (await dispatch(router, request(method, path), undefined, h)).status;
    for (const id of ["1", "2", "3"]) assert.equal(await send("GET", `/app/log/${id}`), 200);
    assert.equal(await send("POST", "/app/log/9"), 201);
    assert.equal(await send("GET", "/app/fail"), 500);
    assert.equal(await send("GET", "/nowhere/a"), 404);
    assert.equal(await send("GET", "/nowhere/b"), 404);
    assert.equal(await send("DELETE", "/app/log/1"), 405);
    assert.equal(await send("BREW", "/nowhere"), 404);
    assert.equal(await send("GET", "/app/log/7", forwarded), 200);
    const families = parse(metrics.render());
    checkHistograms(families);
    const req = (labels: Record<string, string>) =>
      value(families, "ccf_http_requests_total", { interface: "primary", ...labels });
    const get = { method: "GET", endpoint: "/app/log/{id}" };
    assert.equal(req({ ...get, status: "200" }), 3);
    assert.equal(req({ method: "POST", endpoint: "/app/log/{id}", status: "201" }), 1);
    assert.equal(req({ method: "GET", endpoint: "/app/fail", status: "500" }), 1);
    assert.equal(req({ method: "GET", endpoint: UNMATCHED_ROUTE, status: "404" }), 2);
    assert.equal(req({ method: "DELETE", endpoint: UNMATCHED_ROUTE, status: "405" }), 1);
    assert.equal(req({ method: "OTHER", endpoint: UNMATCHED_ROUTE, status: "404" }), 1);
    assert.equal(
      value(families, "ccf_http_requests_total", {
        interface: FORWARDED_INTERFACE,
        ...get,
        status: "200",
      }),
      1,
    );
    const samples = families.get("ccf_http_requests_total")?.samples ?? [];
    assert.ok(
      samples.every((s) => !/\/app\/log\/\d/.test(s.labels.endpoint)),
      "no raw path is a label",
    );
    // One latency histogram per method and route, over every interface.
    assert.equal(value(families, "ccf_http_request_duration_seconds_count", get), 4);
    const total = samples.reduce((n, s) => n + s.value, 0);
    const counts = (families.get("ccf_http_request_duration_seconds")?.samples ?? [])
      .filter((s) => s.name.endsWith("_count"))
      .reduce((n, s) => n + s.value, 0);
    assert.equal(counts, total, "every counted request has a latency");
  });

  it("never lets a throwing observer change an answer", async () => {
    const router = new Router();
    router.setEndpoints("app", [
      { method: "GET", path: "/app/x", handler: () => ({ status: 200, body: "fine" }) },
    ]);
    const observe = () => {
      throw new Error("metrics bug");
    };
    const res = await dispatch(router, request("GET", "/app/x"), undefined, { observe });
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), "fine");
  });

  it("records sandbox runs, signatures and fsyncs, and reads node state when rendered", () => {
    let lastIdx = 30;
    const metrics = new NodeMetrics(fakeContext(), {
      role: () => "Primary",
      peers: () => [
        ["n1", { queuedMessages: 3, queuedBytes: 300, connected: true }],
        ["n2", { queuedMessages: 0, queuedBytes: 0, connected: false }],
      ],
      transport: () => ({ sent: 10, received: 9, dropped: 1 }),
      forwarding: () => ({ inFlight: 2, forwarded: 5, timedOut: 1, served: 0 }),
      replication: () => ({
        lastIdx,
        match: new Map([
          ["n1", 30],
          ["n2", 21],
        ]),
      }),
      ledger: () => ({ bytes: 4096, entries: 17 }),
    });
    const endpoint = { method: "POST", path: "/app/log/private" };
    metrics.sandboxApp(endpoint, 0.002);
    metrics.sandboxApp(endpoint, 0.004);
    metrics.sandboxConstitution("validate", 0.01);
    metrics.signature(0.003);
    metrics.fsync(0.0002);
    metrics.fsync(0.02);
    lastIdx = 32;
    const families = parse(metrics.render());
    checkHistograms(families);
    const v = (name: string, labels: Record<string, string> = {}) => value(families, name, labels);
    assert.equal(
      v("ccf_js_sandbox_duration_seconds_count", {
        kind: "app",
        method: "POST",
        endpoint: "/app/log/private",
      }),
      2,
    );
    assert.equal(
      v("ccf_js_sandbox_duration_seconds_count", {
        kind: "constitution",
        method: "",
        endpoint: "validate",
      }),
      1,
    );
    assert.equal(v("ccf_signatures_total"), 1);
    assert.equal(v("ccf_signature_duration_seconds_count"), 1);
    assert.equal(v("ccf_ledger_fsync_duration_seconds_count"), 2);
    assert.equal(v("ccf_ledger_fsync_duration_seconds_bucket", { le: "0.00025" }), 1);
    assert.equal(v("ccf_ledger_appended_bytes_total"), 4096);
    assert.equal(v("ccf_ledger_appended_entries_total"), 17);
    assert.equal(v("ccf_commit_seqno"), 12);
    assert.equal(v("ccf_current_view"), 4);
    assert.equal(v("ccf_last_signed_seqno"), 15);
    assert.equal(v("ccf_pending_transactions"), 5);
    assert.equal(v("ccf_consensus_role", { role: "Primary" }), 1);
    assert.equal(v("ccf_consensus_role", { role: "Backup" }), 0);
    assert.equal(v("ccf_node_to_node_queued_messages", { peer: "n1" }), 3);
    assert.equal(v("ccf_node_to_node_queued_bytes", { peer: "n1" }), 300);
    assert.equal(v("ccf_node_to_node_connected", { peer: "n2" }), 0);
    assert.equal(v("ccf_node_to_node_dropped_total"), 1);
    assert.equal(v("ccf_forwarded_requests_in_flight"), 2);
    assert.equal(v("ccf_forwarded_requests_timed_out_total"), 1);
    assert.equal(v("ccf_replication_lag_seqnos", { peer: "n1" }), 2);
    assert.equal(v("ccf_replication_lag_seqnos", { peer: "n2" }), 11);
    assert.equal(v("ccf_sessions_soft_cap", { interface: "primary" }), 10);
    assert.equal(
      v("ccf_session_errors_request_header_too_large_total", { interface: "primary" }),
      4,
    );
  });

  it("measures replication lag from the primary's match indexes", () => {
    const c = new Cluster(["n0", "n1", "n2"]);
    c.propose("n0", [entry(1, 2), entry(2, 2, true)]);
    c.deliverAll((e) => e.to !== "n2" && e.from !== "n2");
    const primary = c.node("n0");
    assert.deepEqual([...primary.matchIndexes()].sort(), [
      ["n1", 2],
      ["n2", 0],
    ]);
    assert.equal(c.node("n1").matchIndexes().size, 0, "a backup knows no match indexes");
    const metrics = new NodeMetrics(fakeContext(), {
      replication: () => ({ lastIdx: primary.lastIdx, match: primary.matchIndexes() }),
    });
    const families = parse(metrics.render());
    assert.equal(value(families, "ccf_replication_lag_seqnos", { peer: "n1" }), 0);
    assert.equal(value(families, "ccf_replication_lag_seqnos", { peer: "n2" }), 2);
  });

  it("serves the context's metrics at /node/metrics/prometheus, or what the context tells", async () => {
    const withMetrics = { ...fakeContext(false), prometheusMetrics: undefined } as NodeContext & {
      prometheusMetrics?: NodeMetrics;
    };
    const own = new NodeMetrics(withMetrics);
    own.signature(0.001);
    withMetrics.prometheusMetrics = own;
    const router = new Router();
    router.setEndpoints("node", nodeEndpoints(withMetrics));
    const res = await inject(router, { method: "GET", path: "/node/metrics/prometheus" });
    assert.equal(res.status, 200);
    assert.equal(res.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    const served = parse(res.body.toString());
    assert.equal(value(served, "ccf_signatures_total"), 1);
    // A context without a registry of its own still gets its sessions, commit level and role.
    const bare = parse(prometheusText(fakeContext(false)));
    assert.equal(value(bare, "ccf_signatures_total"), 0);
    assert.equal(value(bare, "ccf_commit_seqno"), 12);
    assert.equal(value(bare, "ccf_consensus_role", { role: "Backup" }), 1);
    assert.equal(value(bare, "ccf_sessions_active", { interface: "primary" }), 2);
    assert.deepEqual(bare.get("ccf_replication_lag_seqnos")?.samples, []);
  });
});
