// Prometheus text exposition (format 0.0.4, served at `/node/metrics/prometheus`, beyond CCF): a
// small registry of counters, gauges and fixed-bucket histograms, and the node's own metrics on it
// (the list and meanings are in docs/metrics.md).
//
// Recording is meant for hot paths: a family hands out its series (one per set of label values)
// once, and callers keep them, so a request costs a few map lookups and additions, never string
// building. Values that already exist elsewhere (session counts, queue lengths, commit level) are
// not recorded at all: the family reads them when the text is rendered.

import { CcfError } from "../errors.js";
import type { NodeContext } from "./context.js";
import type { Endpoint } from "./types.js";

/** Label values in the order of the family's label names. */
export type LabelValues = readonly string[];

/** Reads a family's samples at render time (label values and value per series). */
export type Collector = () => Iterable<readonly [LabelValues, number]>;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function invalid(message: string): CcfError {
  return new CcfError("InvalidMetric", message);
}

/** A label value as the text format wants it: backslash, double quote and newline escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
}

/** HELP text escapes only backslash and newline. */
function escapeHelp(help: string): string {
  return help.replace(/[\\\n]/g, (c) => (c === "\n" ? "\\n" : "\\\\"));
}

/** A sample value in Go's float syntax, which the format uses (`+Inf`, `-Inf`, `NaN`). */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(v);
}

function labelText(names: readonly string[], values: LabelValues, extra?: string): string {
  if (names.length === 0) return extra === undefined ? "" : `{${extra}}`;
  let out = "{";
  for (let i = 0; i < names.length; i++) {
    if (i > 0) out += ",";
    out += `${names[i]}="${escapeLabelValue(values[i])}"`;
  }
  if (extra !== undefined) out += `,${extra}`;
  return `${out}}`;
}

abstract class Family<S> {
  protected readonly series = new Map<string, { labels: LabelValues; value: S }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {
    if (!METRIC_NAME.test(name)) throw invalid(`metric name ${JSON.stringify(name)} is not valid`);
    const seen = new Set<string>();
    for (const l of labelNames) {
      if (!LABEL_NAME.test(l) || l.startsWith("__")) {
        throw invalid(`label name ${JSON.stringify(l)} of ${name} is not valid`);
      }
      if (seen.has(l)) throw invalid(`label ${l} appears twice in ${name}`);
      seen.add(l);
    }
  }

  abstract readonly type: "counter" | "gauge" | "histogram";

  protected abstract create(): S;

  /**
   * The series for these label values, created at first use. Keep it: recording into a kept
   * series costs no lookup.
   */
  labels(...values: string[]): S {
    if (values.length !== this.labelNames.length) {
      throw invalid(
        `${this.name} takes ${this.labelNames.length} label values (${this.labelNames.join(", ")}), got ${values.length}`,
      );
    }
    const key = values.length === 1 ? values[0] : values.join("\u0000");
    let s = this.series.get(key);
    if (s === undefined) {
      s = { labels: values, value: this.create() };
      this.series.set(key, s);
    }
    return s.value;
  }

  render(lines: string[]): void {
    lines.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`);
    this.renderSamples(lines);
  }

  protected abstract renderSamples(lines: string[]): void;
}

export class Counter {
  value = 0;

  inc(by = 1): void {
    if (!(by >= 0)) throw invalid(`a counter only goes up (inc by ${by})`);
    this.value += by;
  }
}

export class Gauge {
  value = 0;

  set(v: number): void {
    this.value = v;
  }

  inc(by = 1): void {
    this.value += by;
  }

  dec(by = 1): void {
    this.value -= by;
  }
}

/** Counters and gauges: one number per series, recorded or read by a collector. */
class ScalarFamily<S extends { value: number }> extends Family<S> {
  constructor(
    readonly type: "counter" | "gauge",
    name: string,
    help: string,
    labelNames: readonly string[],
    private readonly make: () => S,
    private readonly collector?: Collector,
  ) {
    super(name, help, labelNames);
  }

  protected create(): S {
    return this.make();
  }

  protected renderSamples(lines: string[]): void {
    const samples: Iterable<readonly [LabelValues, number]> =
      this.collector?.() ??
      [...this.series.values()].map((s) => [s.labels, s.value.value] as const);
    for (const [labels, value] of samples) {
      if (labels.length !== this.labelNames.length) {
        throw invalid(`${this.name}: a collected sample has ${labels.length} label values`);
      }
      lines.push(`${this.name}${labelText(this.labelNames, labels)} ${formatValue(value)}`);
    }
  }
}

export class CounterFamily extends ScalarFamily<Counter> {}
export class GaugeFamily extends ScalarFamily<Gauge> {}

/** One histogram series: per-bucket counts (not cumulative: made so when rendered), sum, count. */
export class Histogram {
  /** counts[i]: observations in (bounds[i-1], bounds[i]]; those above the last bound only in count. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(v: number): void {
    const bounds = this.bounds;
    // Buckets are few (a dozen or so): a scan beats a binary search at this size.
    for (let i = 0; i < bounds.length; i++) {
      if (v <= bounds[i]) {
        this.counts[i]++;
        break;
      }
    }
    this.sum += v;
    this.count++;
  }
}

export class HistogramFamily extends Family<Histogram> {
  readonly type = "histogram";
  readonly bounds: readonly number[];
  private readonly leText: string[];

  constructor(name: string, help: string, labelNames: readonly string[], buckets: number[]) {
    super(name, help, labelNames);
    if (labelNames.includes("le")) throw invalid(`histogram ${name} cannot have a label "le"`);
    if (buckets.length === 0) throw invalid(`histogram ${name} needs at least one bucket`);
    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i];
      if (!Number.isFinite(b)) throw invalid(`histogram ${name}: bucket ${b} is not finite`);
      if (i > 0 && b <= buckets[i - 1]) {
        throw invalid(`histogram ${name}: buckets must increase (${buckets[i - 1]}, ${b})`);
      }
    }
    this.bounds = [...buckets];
    this.leText = this.bounds.map((b) => `le="${formatValue(b)}"`);
  }

  protected create(): Histogram {
    return new Histogram(this.bounds);
  }

  protected renderSamples(lines: string[]): void {
    const names = this.labelNames;
    for (const { labels, value: h } of this.series.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += h.counts[i];
        lines.push(`${this.name}_bucket${labelText(names, labels, this.leText[i])} ${cumulative}`);
      }
      lines.push(`${this.name}_bucket${labelText(names, labels, 'le="+Inf"')} ${h.count}`);
      lines.push(`${this.name}_sum${labelText(names, labels)} ${formatValue(h.sum)}`);
      lines.push(`${this.name}_count${labelText(names, labels)} ${h.count}`);
    }
  }
}

/** Families by name, rendered in the order they were registered. */
export class MetricsRegistry {
  private readonly families = new Map<string, Family<unknown>>();

  private add<F extends Family<unknown>>(family: F): F {
    if (this.families.has(family.name)) throw invalid(`metric ${family.name} is registered twice`);
    this.families.set(family.name, family);
    return family;
  }

  /** A counter; with `collect`, its samples are read at render time instead of recorded. */
  counter(name: string, help: string, labelNames: string[] = [], collect?: Collector) {
    return this.add(
      new CounterFamily("counter", name, help, labelNames, () => new Counter(), collect),
    );
  }

  /** A gauge; with `collect`, its samples are read at render time instead of recorded. */
  gauge(name: string, help: string, labelNames: string[] = [], collect?: Collector) {
    return this.add(new GaugeFamily("gauge", name, help, labelNames, () => new Gauge(), collect));
  }

  /** A histogram with fixed upper bounds (increasing; `+Inf` is implied). */
  histogram(name: string, help: string, labelNames: string[], buckets: number[]) {
    return this.add(new HistogramFamily(name, help, labelNames, buckets));
  }

  /** The exposition text of every family. */
  render(): string {
    const lines: string[] = [];
    for (const f of this.families.values()) f.render(lines);
    return `${lines.join("\n")}\n`;
  }
}

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Request latencies, in seconds. */
export const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
/** Short operations (fsync, one sandbox call, one signature), in seconds. */
export const SHORT_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
  5, 10,
];

/** The label a request gets when no route matched (bounded cardinality). */
export const UNMATCHED_ROUTE = "<unmatched>";
/** The interface label of requests another node forwarded here. */
export const FORWARDED_INTERFACE = "<forwarded>";

const KNOWN_METHODS = new Set([
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "PATCH",
  "OPTIONS",
  "CONNECT",
  "TRACE",
]);

/** What the node knows beyond NodeContext, read when the text is rendered. */
export interface NodeMetricSources {
  /** Raft's role (`Primary`, `Backup`, `Candidate`, `PreVoteCandidate`). */
  role?(): string;
  /** Node-to-node send queues per peer. */
  peers?(): Iterable<
    readonly [string, { queuedMessages: number; queuedBytes: number; connected: boolean }]
  >;
  /** Node-to-node transport totals. */
  transport?(): { sent: number; received: number; dropped: number } | undefined;
  /** Requests forwarded to the primary: in flight now, and totals. */
  forwarding?(): { inFlight: number; forwarded: number; timedOut: number; served: number };
  /** On a primary: each backup's last index known to match, and the primary's last index. */
  replication?(): { lastIdx: number; match: Iterable<readonly [string, number]> } | undefined;
  /** Bytes and entries appended to this node's ledger. */
  ledger?(): { bytes: number; entries: number };
}

const RAFT_ROLES = ["Primary", "Backup", "Candidate", "PreVoteCandidate"];

/** Per route and method: status counters by status, and the latency histogram. */
interface RouteSeries {
  method: string;
  endpoint: string;
  byStatus: Map<number, Counter>;
  duration: Histogram;
}

/** Records one answered request (see rpc/dispatch.ts `RequestObserver`). */
export type HttpObserver = (
  endpoint: Endpoint | undefined,
  req: { method: string },
  status: number,
  seconds: number,
) => void;

/** Sandbox runs of one app endpoint (cached per endpoint object). */
interface SandboxTarget {
  method: string;
  path: string;
}

/**
 * The node's metrics: what the node records (requests, sandbox runs, signatures, fsyncs) and what
 * is read from it when scraped (sessions, commit level, role, queues).
 */
export class NodeMetrics {
  readonly registry = new MetricsRegistry();
  private readonly requests: CounterFamily;
  private readonly requestDuration: HistogramFamily;
  private readonly sandboxDuration: HistogramFamily;
  private readonly signatureDuration: Histogram;
  private readonly signatures: Counter;
  private readonly fsyncDuration: Histogram;
  private readonly sandboxByEndpoint = new WeakMap<object, Histogram>();
  private readonly sandboxByFunction = new Map<string, Histogram>();

  constructor(ctx: NodeContext, sources: NodeMetricSources = {}) {
    const r = this.registry;
    const sessions = (read: (i: SessionIface) => number): Collector => {
      return () =>
        Object.entries(ctx.sessionMetrics().interfaces).map(([n, i]) => [[n], read(i)] as const);
    };
    r.gauge(
      "ccf_sessions_active",
      "Open client sessions",
      ["interface"],
      sessions((i) => i.active),
    );
    r.gauge(
      "ccf_sessions_peak",
      "Most client sessions open at once",
      ["interface"],
      sessions((i) => i.peak),
    );
    r.gauge(
      "ccf_sessions_soft_cap",
      "Sessions past which requests get 503",
      ["interface"],
      sessions((i) => i.soft_cap),
    );
    r.gauge(
      "ccf_sessions_hard_cap",
      "Sessions past which connections are refused",
      ["interface"],
      sessions((i) => i.hard_cap),
    );
    r.counter(
      "ccf_session_errors_parsing_total",
      "Requests that did not parse",
      ["interface"],
      sessions((i) => i.errors.parsing),
    );
    r.counter(
      "ccf_session_errors_request_payload_too_large_total",
      "Requests refused with 413",
      ["interface"],
      sessions((i) => i.errors.request_payload_too_large),
    );
    r.counter(
      "ccf_session_errors_request_header_too_large_total",
      "Requests refused with 431",
      ["interface"],
      sessions((i) => i.errors.request_header_too_large),
    );
    this.requests = r.counter(
      "ccf_http_requests_total",
      "Requests answered, by interface, method, route template and status",
      ["interface", "method", "endpoint", "status"],
    );
    this.requestDuration = r.histogram(
      "ccf_http_request_duration_seconds",
      "Time from routing a request to its response being ready, by method and route template",
      ["method", "endpoint"],
      LATENCY_BUCKETS,
    );
    const one =
      (read: () => number): Collector =>
      () => [[[], read()]];
    r.gauge(
      "ccf_commit_seqno",
      "Seqno of the last committed transaction",
      [],
      one(() => ctx.commitTxId().seqno),
    );
    r.gauge(
      "ccf_current_view",
      "Current view",
      [],
      one(() => ctx.currentView()),
    );
    r.gauge(
      "ccf_last_signed_seqno",
      "Seqno of the last signature this node knows of",
      [],
      one(() => ctx.lastSignedSeqno()),
    );
    r.gauge(
      "ccf_last_seqno",
      "Seqno of the last transaction in this node's log",
      [],
      one(() => ctx.lastTxId().seqno),
    );
    r.gauge(
      "ccf_pending_transactions",
      "Transactions in this node's log not yet committed",
      [],
      one(() => Math.max(0, ctx.lastTxId().seqno - ctx.commitTxId().seqno)),
    );
    r.gauge(
      "ccf_consensus_role",
      "1 for this node's consensus role, 0 for the others",
      ["role"],
      () => {
        const role = sources.role?.() ?? (ctx.primaryId() === ctx.nodeId ? "Primary" : "Backup");
        return RAFT_ROLES.map((name) => [[name], name === role ? 1 : 0] as const);
      },
    );
    this.signatures = r
      .counter("ccf_signatures_total", "Signature transactions this node emitted as primary")
      .labels();
    this.signatureDuration = r
      .histogram(
        "ccf_signature_duration_seconds",
        "Time to emit one signature transaction (ECDSA and COSE signing, tree, append)",
        [],
        SHORT_BUCKETS,
      )
      .labels();
    this.fsyncDuration = r
      .histogram(
        "ccf_ledger_fsync_duration_seconds",
        "Time of each fdatasync of a ledger chunk (group commit and chunk completion)",
        [],
        SHORT_BUCKETS,
      )
      .labels();
    r.counter(
      "ccf_ledger_appended_bytes_total",
      "Bytes of entries appended to the ledger",
      [],
      one(() => sources.ledger?.().bytes ?? 0),
    );
    r.counter(
      "ccf_ledger_appended_entries_total",
      "Entries appended to the ledger",
      [],
      one(() => sources.ledger?.().entries ?? 0),
    );
    this.sandboxDuration = r.histogram(
      "ccf_js_sandbox_duration_seconds",
      "Time in the QuickJS sandbox per call: app handlers by method and route, constitution " +
        "functions (validate, resolve, apply, vote) by name",
      ["kind", "method", "endpoint"],
      SHORT_BUCKETS,
    );
    r.gauge(
      "ccf_forwarded_requests_in_flight",
      "Requests forwarded to the primary and not yet answered",
      [],
      one(() => sources.forwarding?.().inFlight ?? 0),
    );
    r.counter(
      "ccf_forwarded_requests_total",
      "Requests this node forwarded to the primary",
      [],
      one(() => sources.forwarding?.().forwarded ?? 0),
    );
    r.counter(
      "ccf_forwarded_requests_timed_out_total",
      "Forwarded requests the primary did not answer in time",
      [],
      one(() => sources.forwarding?.().timedOut ?? 0),
    );
    r.counter(
      "ccf_forwarded_requests_served_total",
      "Requests other nodes forwarded here that were answered",
      [],
      one(() => sources.forwarding?.().served ?? 0),
    );
    const peers = (read: (p: PeerQueue) => number): Collector => {
      return () => [...(sources.peers?.() ?? [])].map(([id, p]) => [[id], read(p)] as const);
    };
    r.gauge(
      "ccf_node_to_node_queued_messages",
      "Messages waiting to be sent to a peer",
      ["peer"],
      peers((p) => p.queuedMessages),
    );
    r.gauge(
      "ccf_node_to_node_queued_bytes",
      "Payload bytes waiting to be sent to a peer",
      ["peer"],
      peers((p) => p.queuedBytes),
    );
    r.gauge(
      "ccf_node_to_node_connected",
      "1 while the outbound connection to a peer is open",
      ["peer"],
      peers((p) => (p.connected ? 1 : 0)),
    );
    const transport =
      (read: (t: { sent: number; received: number; dropped: number }) => number) => () => {
        const t = sources.transport?.();
        return t === undefined ? [] : [[[], read(t)] as const];
      };
    r.counter(
      "ccf_node_to_node_sent_total",
      "Node-to-node messages written",
      [],
      transport((t) => t.sent),
    );
    r.counter(
      "ccf_node_to_node_received_total",
      "Node-to-node messages received",
      [],
      transport((t) => t.received),
    );
    r.counter(
      "ccf_node_to_node_dropped_total",
      "Node-to-node messages dropped (full queue, unknown peer, oversize)",
      [],
      transport((t) => t.dropped),
    );
    r.gauge(
      "ccf_replication_lag_seqnos",
      "On the primary: seqnos of its log a backup is not known to hold",
      ["peer"],
      () => {
        const rep = sources.replication?.();
        if (rep === undefined) return [];
        return [...rep.match].map(([id, m]) => [[id], Math.max(0, rep.lastIdx - m)] as const);
      },
    );
  }

  /**
   * The recorder of requests answered on one interface. Series are found by the matched
   * endpoint object (its route template is fixed), so no label text is built per request.
   */
  httpObserver(iface: string): HttpObserver {
    const byEndpoint = new WeakMap<Endpoint, Map<string, RouteSeries>>();
    const unmatched = new Map<string, RouteSeries>();
    const series = (method: string, endpoint: string): RouteSeries => ({
      method,
      endpoint,
      byStatus: new Map(),
      duration: this.requestDuration.labels(method, endpoint),
    });
    return (endpoint, req, status, seconds) => {
      const method = KNOWN_METHODS.has(req.method) ? req.method : "OTHER";
      let routes: Map<string, RouteSeries> | undefined;
      if (endpoint === undefined) routes = unmatched;
      else {
        routes = byEndpoint.get(endpoint);
        if (routes === undefined)
          byEndpoint.set(endpoint, (routes = new Map<string, RouteSeries>()));
      }
      let route = routes.get(method);
      if (route === undefined) {
        route = series(method, endpoint === undefined ? UNMATCHED_ROUTE : endpoint.path);
        routes.set(method, route);
      }
      let counter = route.byStatus.get(status);
      if (counter === undefined) {
        counter = this.requests.labels(iface, route.method, route.endpoint, String(status));
        route.byStatus.set(status, counter);
      }
      counter.value++;
      route.duration.observe(seconds);
    };
  }

  /** One run of an app endpoint's handler in the sandbox. */
  sandboxApp(endpoint: SandboxTarget, seconds: number): void {
    let h = this.sandboxByEndpoint.get(endpoint);
    if (h === undefined) {
      h = this.sandboxDuration.labels("app", endpoint.method, endpoint.path);
      this.sandboxByEndpoint.set(endpoint, h);
    }
    h.observe(seconds);
  }

  /** One call of a constitution (or ballot) function in the sandbox. */
  sandboxConstitution(fn: string, seconds: number): void {
    let h = this.sandboxByFunction.get(fn);
    if (h === undefined) {
      h = this.sandboxDuration.labels("constitution", "", fn);
      this.sandboxByFunction.set(fn, h);
    }
    h.observe(seconds);
  }

  /** One signature transaction emitted. */
  signature(seconds: number): void {
    this.signatures.value++;
    this.signatureDuration.observe(seconds);
  }

  /** One fdatasync of the ledger. */
  fsync(seconds: number): void {
    this.fsyncDuration.observe(seconds);
  }

  render(): string {
    return this.registry.render();
  }
}

type SessionIface = ReturnType<NodeContext["sessionMetrics"]>["interfaces"][string];
type PeerQueue = { queuedMessages: number; queuedBytes: number; connected: boolean };

/**
 * The node's metrics as Prometheus text: the node's own registry when it keeps one, else what can
 * be read from the context alone (sessions, commit level, view, role).
 */
export function prometheusText(ctx: NodeContext): string {
  return (ctx.prometheusMetrics ?? new NodeMetrics(ctx)).render();
}
