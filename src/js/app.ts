// A JS application as CCF's js_generic runs it: endpoints and modules from the governance tables,
// one QuickJS interpreter per request (or a cached one per reuse key), the `ccf` global's app
// pieces (kv, rpc, consensus, crypto.digest...), the Request object and CCF's response mapping.

import { randomBytes as nodeRandomBytes } from "node:crypto";
import type { EndpointRequest, EndpointResponse } from "../endpoints/types.js";
import { HttpErrors } from "../errors.js";
import { decodeValue, SINGLETON_KEY, Tables, type Tx } from "../kv/index.js";
import { type AuthPolicy, type Caller, parsePolicies } from "../rpc/auth.js";
import {
  installConverters,
  installCrypto,
  installGovExtension,
  installKv,
  KV_FACTORY_GLOBAL,
  type KvContext,
} from "./ccf/index.js";
import {
  CCF_DEFAULT_LIMITS,
  checkArgCount,
  createInterpreter,
  createRewindableInterpreter,
  deterministic,
  GuestError,
  type GuestValue,
  type HostValue,
  type Interpreter,
  type InterpreterOptions,
  JsException,
  LimitExceeded,
  type Limits,
  type RewindableInterpreter,
  SandboxError,
} from "./sandbox/index.js";
import { ModuleSourceMaps, mapStackTrace } from "./source-map.js";

export interface AppEndpoint {
  method: string;
  /** "/app" + the app.json key. */
  path: string;
  /** Module name without the leading "/". */
  jsModule: string;
  jsFunction: string;
  authnPolicies: AuthPolicy[];
  mode: "readwrite" | "readonly" | "historical";
  forwardingRequired: string;
  redirectionStrategy: string;
  interpreterReuseKey?: string;
  openapi: Record<string, unknown>;
}

const MODES = ["readwrite", "readonly", "historical"] as const;

function parseEndpoint(key: string, raw: unknown): AppEndpoint {
  const where = `JS endpoint '${key}'`;
  const space = key.indexOf(" ");
  if (space <= 0) throw new Error(`${where}: key is not "METHOD /path"`);
  const method = key.slice(0, space).toUpperCase();
  const path = key.slice(space + 1);
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new Error(`${where}: properties must be a JSON object`);
  }
  const p = raw as Record<string, unknown>;
  const str = (field: string, dflt?: string): string => {
    const v = p[field];
    if (v === undefined && dflt !== undefined) return dflt;
    if (typeof v !== "string" || v === "") throw new Error(`${where}: ${field} must be a string`);
    return v;
  };
  const jsModule = str("js_module").replace(/^\/+/, "");
  const jsFunction = str("js_function");
  const mode = str("mode", "readwrite");
  if (!(MODES as readonly string[]).includes(mode)) {
    throw new Error(`${where}: mode must be one of ${MODES.join(", ")}, not ${mode}`);
  }
  const authnPolicies = parsePolicies(p.authn_policies ?? [], where);
  const ep: AppEndpoint = {
    method,
    path: `/app${path}`,
    jsModule,
    jsFunction,
    authnPolicies,
    mode: mode as AppEndpoint["mode"],
    forwardingRequired: str("forwarding_required", "always"),
    redirectionStrategy: str("redirection_strategy", "to_primary"),
    openapi: {},
  };
  const openapi = p.openapi;
  if (openapi !== undefined && openapi !== null) {
    if (typeof openapi !== "object" || Array.isArray(openapi)) {
      throw new Error(`${where}: openapi must be an object`);
    }
    ep.openapi = openapi as Record<string, unknown>;
  }
  const reuse = p.interpreter_reuse;
  if (reuse !== undefined && reuse !== null) {
    const k = (reuse as { key?: unknown }).key;
    if (typeof reuse !== "object" || typeof k !== "string") {
      throw new Error(`${where}: interpreter_reuse must be {"key": string}`);
    }
    ep.interpreterReuseKey = k;
  }
  return ep;
}

/**
 * Parses public:ccf.gov.endpoints ("METHOD /path" -> JSON properties, js_module prefixed "/").
 * Throws an Error naming the endpoint for an unknown auth policy or a bad field.
 */
export function readAppEndpoints(tx: Tx): AppEndpoint[] {
  const out: AppEndpoint[] = [];
  tx.map(Tables.ENDPOINTS).forEach((value, key) => {
    const k = Buffer.from(key).toString("utf8");
    let raw: unknown;
    try {
      raw = JSON.parse(Buffer.from(value).toString("utf8"));
    } catch (e) {
      throw new Error(`JS endpoint '${k}': properties are not JSON`, { cause: e });
    }
    out.push(parseEndpoint(k, raw));
  });
  return out;
}

export interface AppResult {
  response: EndpointResponse;
  applyWrites: boolean;
  claimsDigest?: Uint8Array;
}

/** A committed transaction's state, as historical queries hand it to the app. */
export interface AppHistoricalState {
  readonly transactionId: string;
  /** What `receipt` shows in the guest (CCF's JS receipt). */
  readonly jsReceipt: Record<string, unknown>;
  /** A read-only transaction over the state. */
  tx(): Tx;
}

/** Where `ccf.historical` gets ranges of states (the node's historical state cache). */
export interface AppHistory {
  /** The states of [start, end], or undefined while they are being fetched. */
  range(
    handle: number,
    start: number,
    end: number,
    expirySeconds: number,
  ): AppHistoricalState[] | undefined;
  /** Whether the handle held states. */
  drop(handle: number): boolean;
}

export interface ConsensusView {
  lastCommitted(): { view: number; seqno: number };
  statusFor(view: number, seqno: number): string;
  viewFor(seqno: number): number | undefined;
}

/** The JS runtime options of `public:ccf.gov.js_runtime_options`, CCF's defaults filled in. */
export interface RuntimeOptions {
  limits: Limits;
  /** `limits` as a string, part of a template's key. */
  limitsKey: string;
  logExceptionDetails: boolean;
  returnExceptionDetails: boolean;
  maxCachedInterpreters: number;
}

/** The options last decoded and the stored value they came from (read on every request). */
let lastRuntimeOptions: { raw: Uint8Array | undefined; options: RuntimeOptions } | undefined;

function readRuntimeOptions(tx: Tx): RuntimeOptions {
  // Read through the transaction every time (it is part of what the request read); decoded
  // only when the stored value changed.
  const raw = tx.map(Tables.JS_RUNTIME_OPTIONS).get(SINGLETON_KEY);
  const last = lastRuntimeOptions;
  if (
    last !== undefined &&
    (raw === last.raw ||
      (raw !== undefined && last.raw !== undefined && Buffer.from(raw).equals(last.raw)))
  ) {
    return last.options;
  }
  const options = decodeRuntimeOptions(raw);
  lastRuntimeOptions = { raw: raw === undefined ? undefined : Uint8Array.from(raw), options };
  return options;
}

/** Decodes the stored JS runtime options (undefined: none set, all defaults). */
export function decodeRuntimeOptions(raw: Uint8Array | undefined): RuntimeOptions {
  const o = (raw === undefined ? {} : decodeValue(Tables.JS_RUNTIME_OPTIONS, raw)) as Record<
    string,
    unknown
  >;
  const num = (v: unknown, d: number): number =>
    typeof v === "number" && Number.isFinite(v) && v > 0 ? v : d;
  const limits: Limits = {
    maxHeapBytes: num(o.max_heap_bytes, CCF_DEFAULT_LIMITS.maxHeapBytes),
    maxStackBytes: num(o.max_stack_bytes, CCF_DEFAULT_LIMITS.maxStackBytes),
    maxExecutionTimeMs: num(o.max_execution_time_ms, CCF_DEFAULT_LIMITS.maxExecutionTimeMs),
  };
  return {
    limits,
    limitsKey: JSON.stringify(limits),
    logExceptionDetails: o.log_exception_details === true,
    returnExceptionDetails: o.return_exception_details === true,
    maxCachedInterpreters: num(o.max_cached_interpreters, 10),
  };
}

/** The request being executed in an interpreter: what its late-bound host functions act on. */
interface Current {
  tx: Tx;
  context: KvContext;
  applyWrites: boolean | undefined;
  claimsDigest: Uint8Array | undefined;
  /** A historical endpoint's state (`ccf.historicalState`), once the guest has asked for it. */
  historical: AppHistoricalState | undefined;
  historicalSource: number | undefined;
  /** Historical states handed to the guest in this request: kv source i + 1 is sources[i]. */
  sources: Tx[];
}

/** One interpreter with the app's `ccf` global installed, and its per-request binding. */
interface AppInterpreter {
  interp: Interpreter;
  current: Current | undefined;
  metricsLogging: boolean;
  /** Requests executing in it now (0 or 1: a guest call is synchronous). */
  running: number;
  /** Evicted or flushed: disposed once no request runs in it. */
  retired: boolean;
}

/**
 * A module's interpreter as it is once the app's `ccf` global is installed and the module (with its
 * imports) evaluated, rewound to that state before each request: CCF's fresh interpreter per
 * request, without paying to build one and evaluate the bundle each time.
 */
interface ModuleTemplate {
  app: AppInterpreter;
  interp: RewindableInterpreter;
  /** Used since the last rewind. */
  dirty: boolean;
}

/** Modules with a template at once: each holds an engine of its own (~16-32 MiB of address space). */
const MAX_TEMPLATES = 16;

function retire(app: AppInterpreter): void {
  app.retired = true;
  if (app.running === 0) app.interp.dispose();
}

const HOST_GLOBAL = "__ccfAppHost";
const INVOKE = "__ccfAppInvoke";
const UNAVAILABLE = "is not available in this version of ccf-ts";

/** Guest-side installation: ccf.rpc/consensus/crypto/historical..., and the request/response shim. */
const PRELUDE = `(() => {
  "use strict";
  const host = globalThis.${HOST_GLOBAL};
  delete globalThis.${HOST_GLOBAL};
  if (typeof globalThis.ccf !== "object" || globalThis.ccf === null) globalThis.ccf = {};
  const ccf = globalThis.ccf;
  const unavailable = (name) => ({ [name]() { throw new Error("ccf." + name + " ${UNAVAILABLE}"); } })[name];
  const stubs = (prefix, names) => {
    const o = {};
    for (const n of names) o[n] = unavailable(prefix + n);
    return o;
  };
  ccf.rpc = { setApplyWrites: host.setApplyWrites, setClaimsDigest: host.setClaimsDigest };
  ccf.consensus = {
    getLastCommittedTxId: host.getLastCommittedTxId,
    getStatusForTxId: host.getStatusForTxId,
    getViewForSeqno: host.getViewForSeqno,
  };
  const makeKv = globalThis.${KV_FACTORY_GLOBAL};
  delete globalThis.${KV_FACTORY_GLOBAL};
  const toStates = (list) => list.map((s) => ({ transactionId: s.transactionId, receipt: s.receipt, kv: makeKv(s.source) }));
  ccf.historical = {
    getStateRange: function getStateRange(...args) {
      const r = host.getStateRange(...args);
      return r === null ? null : toStates(r);
    },
    dropCachedStates: host.dropCachedStates,
  };
  // Set only while a historical endpoint runs; a getter so that module code evaluated for the
  // request (a fresh interpreter's imports) sees it too.
  Object.defineProperty(ccf, "historicalState", {
    get() {
      const s = host.historicalState();
      return s === null ? undefined : toStates([s])[0];
    },
    enumerable: true,
    configurable: true,
  });
  ccf.host = stubs("host.", ["triggerSubprocess"]);
  ccf.enableUntrustedDateTime = host.enableUntrustedDateTime;
  ccf.enableMetricsLogging = host.enableMetricsLogging;
  ccf.tcbHexToPolicy = unavailable("tcbHexToPolicy");
  // CCF defines this global (not ccf.snp_attestation) before app modules run; apps may bind it
  // at import time, so it exists even though ccf-ts cannot verify SNP evidence.
  if (typeof globalThis.snp_attestation !== "object" || globalThis.snp_attestation === null) {
    globalThis.snp_attestation = {
      verifySnpAttestation() {
        throw new Error("snp_attestation.verifySnpAttestation ${UNAVAILABLE}");
      },
    };
  }

  const isView = ArrayBuffer.isView;
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const ownKeys = Object.keys;
  const isInteger = Number.isInteger;
  const bufToStr = (b) => globalThis.ccf.bufToStr(b);
  // As CCF's request body: text/json/arrayBuffer on a prototype, not three closures per request
  // (~4 µs less per basic-app call: QuickJS allocates each closure and its captured variable).
  class Body {
    #b;
    constructor(b) { this.#b = b; }
    text() { return bufToStr(this.#b); }
    json() { return parse(bufToStr(this.#b)); }
    arrayBuffer() { return this.#b.slice(0); }
  }
  // r is the request as the host encoded it, fields in CCF's order: only its body is replaced.
  globalThis.${INVOKE} = (fn, r) => {
    r.body = new Body(r.body);
    const res = fn(r);
    if ((typeof res !== "object" && typeof res !== "function") || res === null) {
      return { error: "not-object" };
    }
    const out = { headers: {} };
    const b = res.body;
    if (b === undefined) {
      out.kind = "none";
    } else if (b instanceof ArrayBuffer) {
      out.kind = "bytes";
      out.body = b;
      out.headers["content-type"] = "application/octet-stream";
    } else if (isView(b)) {
      out.kind = "bytes";
      out.body = new Uint8Array(b.buffer, b.byteOffset, b.byteLength).slice().buffer;
      out.headers["content-type"] = "application/octet-stream";
    } else if (typeof b === "string") {
      out.kind = "text";
      out.body = b;
      out.headers["content-type"] = "text/plain";
    } else {
      out.kind = "text";
      out.body = String(stringify(b));
      out.headers["content-type"] = "application/json";
    }
    const h = res.headers;
    if (h !== undefined && h !== null && typeof h === "object") {
      for (const k of ownKeys(h)) out.headers[k.toLowerCase()] = String(h[k]);
    }
    const sc = res.statusCode;
    if (sc === undefined || sc === null) out.status = 200;
    else if (typeof sc === "number" && isInteger(sc) && sc >= -2147483648 && sc <= 2147483647 && !Object.is(sc, -0)) out.status = sc;
    else return { error: "status-type" };
    return out;
  };
})();`;

/** CCF's url_decode: %XX sequences become bytes (then UTF-8), anything malformed is kept. */
function urlDecode(s: string): string {
  if (!s.includes("%")) return s;
  const bytes: number[] = [];
  const raw = Buffer.from(s, "utf8");
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c === 0x25 && i + 2 < raw.length) {
      const hex = raw.subarray(i + 1, i + 3).toString("latin1");
      if (/^[0-9a-fA-F]{2}$/.test(hex)) {
        bytes.push(parseInt(hex, 16));
        i += 2;
        continue;
      }
    }
    bytes.push(c);
  }
  return Buffer.from(bytes).toString("utf8");
}

/** QuickJS's JS_ToInt64 of a guest argument: numbers truncated, NaN and non-numbers 0. */
function toInt64(v: GuestValue): number {
  const n =
    typeof v === "number" ? v : typeof v === "string" || typeof v === "boolean" ? Number(v) : 0;
  return Number.isFinite(n) ? Math.trunc(n) : 0;
}

/** A historical state as the guest gets it: its kv is source i + 1 of the running request. */
function historicalForGuest(current: Current, state: AppHistoricalState): HostValue {
  current.sources.push(state.tx());
  return {
    transactionId: state.transactionId,
    receipt: state.jsReceipt as HostValue,
    source: current.sources.length,
  };
}

function errorResponse(status: number, body: unknown): EndpointResponse {
  return { status, headers: { "content-type": "application/json" }, body };
}

function internalError(message: string): EndpointResponse {
  return errorResponse(500, HttpErrors.InternalError(message).toJSON());
}

export class JsApp {
  private readonly log: (level: string, msg: string) => void;
  private readonly consensus: ConsensusView;
  private readonly randomBytes: (n: number) => Uint8Array;
  /** Interpreters by reuse key, least recently used first. */
  private readonly cache = new Map<string, Promise<AppInterpreter>>();
  /**
   * Per module and limits: a template, or undefined when the module cannot have one (its
   * top-level code called a host function, drew entropy or read the clock), least recently used
   * first.
   */
  private readonly templates = new Map<string, Promise<ModuleTemplate | undefined>>();
  /**
   * What each template promise settled to, once it has: a request then runs in its template
   * without awaiting (no promise on the path of a request that needs none).
   */
  private readonly settledTemplates = new WeakMap<
    Promise<ModuleTemplate | undefined>,
    { template: ModuleTemplate | undefined }
  >();
  private readonly rewind: boolean;
  /** The key of the template used last (already last in `templates`' order). */
  private lastTemplate: string | undefined;
  private readonly onLongRun: (() => void) | undefined;
  private readonly history: AppHistory | undefined;
  private readonly onRun: ((endpoint: AppEndpoint, seconds: number) => void) | undefined;
  /** Decoded once per module source, only when an exception's details are asked for. */
  private readonly sourceMaps = new ModuleSourceMaps();

  constructor(opts: {
    log: (level: string, msg: string) => void;
    consensus: ConsensusView;
    randomBytes?: (n: number) => Uint8Array;
    /**
     * Serve endpoints without `interpreter_reuse` from per-module templates rewound before each
     * request (default), rather than from a new interpreter that evaluates the modules each time.
     */
    rewindInterpreters?: boolean;
    /** Called regularly while a handler runs long (see InterpreterOptions.onLongRun). */
    onLongRun?: () => void;
    /** Historical states for `ccf.historical` (absent: its functions throw). */
    history?: AppHistory;
    /** Told of each handler run in the sandbox and its seconds (metrics). */
    onRun?: (endpoint: AppEndpoint, seconds: number) => void;
  }) {
    this.onRun = opts.onRun;
    this.onLongRun = opts.onLongRun;
    this.history = opts.history;
    this.rewind = opts.rewindInterpreters ?? true;
    this.log = opts.log;
    this.consensus = opts.consensus;
    this.randomBytes = opts.randomBytes ?? ((n) => new Uint8Array(nodeRandomBytes(n)));
  }

  /** Drops cached interpreters (after public:ccf.gov.modules / interpreter.flush change). */
  flush(): void {
    this.sourceMaps.clear();
    const all = [...this.cache.values()];
    this.cache.clear();
    for (const p of all) p.then(retire, () => undefined);
    const templates = [...this.templates.values()];
    this.templates.clear();
    for (const p of templates)
      p.then(
        (t) => t && retire(t.app),
        () => undefined,
      );
  }

  /**
   * Builds the templates of the modules of `endpoints` (those without `interpreter_reuse`) ahead
   * of their first request, reading modules and runtime options through `tx`.
   */
  async prewarm(endpoints: readonly AppEndpoint[], tx: Tx): Promise<void> {
    if (!this.rewind) return;
    const options = readRuntimeOptions(tx);
    const modules = new Set(
      endpoints
        .filter((e) => e.interpreterReuseKey === undefined && e.mode !== "historical")
        .map((e) => e.jsModule),
    );
    for (const module of [...modules].slice(0, MAX_TEMPLATES)) {
      await this.template(module, options.limits, options.limitsKey, tx);
    }
  }

  /** The template of `module` under `limits`, built on first use; undefined if it cannot have one. */
  private template(
    module: string,
    limits: Limits,
    limitsKey: string,
    tx: Tx,
  ): Promise<ModuleTemplate | undefined> {
    const key = `${module}\0${limitsKey}`;
    let p = this.templates.get(key);
    if (p !== undefined) {
      // Least recently used first; most requests use the one used last.
      if (this.lastTemplate !== key) {
        this.templates.delete(key);
        this.templates.set(key, p);
        this.lastTemplate = key;
      }
      return p;
    }
    const built = this.buildTemplate(module, limits, tx).catch((e: unknown) => {
      // A module that fails to evaluate is left to the per-request path, which reports it.
      this.log("info", `no interpreter template for module ${module}: ${String(e)}`);
      return undefined;
    });
    void built.then((template) => this.settledTemplates.set(built, { template }));
    p = built;
    this.templates.set(key, p);
    this.lastTemplate = key;
    while (this.templates.size > MAX_TEMPLATES) {
      const oldest = this.templates.keys().next().value as string;
      const old = this.templates.get(oldest);
      this.templates.delete(oldest);
      old?.then(
        (t) => t && retire(t.app),
        () => undefined,
      );
    }
    return p;
  }

  private async buildTemplate(
    module: string,
    limits: Limits,
    tx: Tx,
  ): Promise<ModuleTemplate | undefined> {
    let interp: RewindableInterpreter | undefined;
    const app = await this.create(limits, async (options) => {
      interp = await createRewindableInterpreter(options);
      return interp;
    });
    if (interp === undefined) throw new Error("unreachable: the factory made no interpreter");
    try {
      const before = interp.hostCalls;
      // Module sources come from `tx`; any other use of the request's state (ccf.kv, ccf.rpc,
      // ccf.consensus...) is a host call, and makes the module unsuitable.
      app.current = {
        tx,
        context: "app-ro",
        applyWrites: undefined,
        claimsDigest: undefined,
        historical: undefined,
        historicalSource: undefined,
        sources: [],
      };
      try {
        interp.importModule(module);
      } finally {
        app.current = undefined;
      }
      if (interp.hostCalls !== before) {
        retire(app);
        return undefined;
      }
      // The handlers' functions and the request wrapper, looked up once into the captured state
      // rather than after every rewind (~4% of a request).
      const functions = new Set(
        readAppEndpoints(tx)
          .filter((e) => e.jsModule === module)
          .map((e) => e.jsFunction),
      );
      for (const fn of functions) interp.prepareCall(module, fn, INVOKE);
      interp.checkpoint();
    } catch (e) {
      retire(app);
      if (e instanceof SandboxError || e instanceof JsException) return undefined;
      throw e;
    }
    return { app, interp, dirty: false };
  }

  /**
   * Runs the request in its module's template, or returns undefined if there is none. Without
   * awaiting once the template is built.
   */
  private runInTemplate(
    endpoint: AppEndpoint,
    req: EndpointRequest,
    caller: Caller | null,
    tx: Tx,
    options: RuntimeOptions,
    historical: AppHistoricalState | undefined,
  ): AppResult | undefined | Promise<AppResult | undefined> {
    const p = this.template(endpoint.jsModule, options.limits, options.limitsKey, tx);
    const runIn = (template: ModuleTemplate | undefined): AppResult | undefined => {
      if (template === undefined) return undefined;
      const drop = () => {
        const key = `${endpoint.jsModule}\0${options.limitsKey}`;
        if (this.templates.get(key) === p) this.templates.delete(key);
        retire(template.app);
      };
      if (template.app.retired || template.interp.dead) {
        drop();
        return undefined;
      }
      // From here to the end of `run`, nothing awaits: no other request can use the template.
      if (template.dirty) {
        try {
          template.interp.rewind();
        } catch (e) {
          drop();
          if (e instanceof SandboxError) return undefined;
          throw e;
        }
        template.app.metricsLogging = true;
      }
      template.dirty = true;
      try {
        return this.run(template.app, endpoint, req, caller, tx, options, historical);
      } finally {
        if (template.interp.dead) drop();
      }
    };
    const settled = this.settledTemplates.get(p);
    return settled === undefined ? p.then(runIn) : runIn(settled.template);
  }

  /**
   * Runs the endpoint's handler in `tx` for `req` with `caller`: at once (no promise) when the
   * handler runs in a template that is built, as most requests do.
   */
  execute(
    endpoint: AppEndpoint,
    req: EndpointRequest,
    caller: Caller | null,
    tx: Tx,
    historical?: AppHistoricalState,
  ): AppResult | Promise<AppResult> {
    const options = readRuntimeOptions(tx);
    if (endpoint.interpreterReuseKey === undefined && this.rewind) {
      const result = this.runInTemplate(endpoint, req, caller, tx, options, historical);
      if (result instanceof Promise) {
        return result.then(
          (r) => r ?? this.executeElsewhere(endpoint, req, caller, tx, options, historical),
        );
      }
      if (result !== undefined) return result;
    }
    return this.executeElsewhere(endpoint, req, caller, tx, options, historical);
  }

  /** Runs the handler in a fresh interpreter, or in the reused one of its reuse key. */
  private async executeElsewhere(
    endpoint: AppEndpoint,
    req: EndpointRequest,
    caller: Caller | null,
    tx: Tx,
    options: RuntimeOptions,
    historical: AppHistoricalState | undefined,
  ): Promise<AppResult> {
    const key = endpoint.interpreterReuseKey;
    if (key === undefined) {
      const app = await this.create(options.limits);
      try {
        return this.run(app, endpoint, req, caller, tx, options, historical);
      } finally {
        app.interp.dispose();
      }
    }
    let p = this.cache.get(key);
    if (p === undefined) {
      p = this.create(options.limits);
      const created = p;
      this.cache.set(key, created);
      created.catch(() => {
        if (this.cache.get(key) === created) this.cache.delete(key);
      });
      while (this.cache.size > options.maxCachedInterpreters) {
        const oldest = this.cache.keys().next().value as string;
        const old = this.cache.get(oldest);
        this.cache.delete(oldest);
        old?.then(retire, () => undefined);
      }
    } else {
      // Least recently used first.
      this.cache.delete(key);
      this.cache.set(key, p);
    }
    const app = await p;
    if (app.retired || app.interp.dead) {
      if (this.cache.get(key) === p) this.cache.delete(key);
      retire(app);
      return this.execute(endpoint, req, caller, tx, historical);
    }
    app.running += 1;
    try {
      return this.run(app, endpoint, req, caller, tx, options, historical);
    } finally {
      app.running -= 1;
      if (app.interp.dead) {
        if (this.cache.get(key) === p) this.cache.delete(key);
        retire(app);
      } else if (app.retired && app.running === 0) {
        app.interp.dispose();
      }
    }
  }

  private run(
    app: AppInterpreter,
    endpoint: AppEndpoint,
    req: EndpointRequest,
    caller: Caller | null,
    tx: Tx,
    options: RuntimeOptions,
    historical: AppHistoricalState | undefined,
  ): AppResult {
    const started = performance.now();
    const current: Current = {
      tx,
      context: endpoint.mode === "readwrite" ? "app-rw" : "app-ro",
      applyWrites: undefined,
      claimsDigest: undefined,
      historical,
      historicalSource: undefined,
      sources: [],
    };
    const query = urlDecode(req.query);
    const hostHeader = req.headers.host;
    const hostname =
      hostHeader !== undefined ? hostHeader : req.hostname !== "" ? req.hostname : null;
    const requestData: HostValue = {
      headers: { ...req.headers },
      params: { ...req.params },
      url: req.query === "" ? req.path : `${req.path}?${req.query}`,
      path: req.path,
      route: endpoint.path,
      query,
      method: req.method,
      hostname,
      body: req.body,
      caller: (caller ?? null) as HostValue,
    };
    app.current = current;
    let response: EndpointResponse;
    let threw = false;
    try {
      // A template is rewound before its next request, which takes the call's values away (an
      // interpreter without a checkpoint ignores the flag and frees them).
      const out = app.interp.callExport(endpoint.jsModule, endpoint.jsFunction, [requestData], {
        via: INVOKE,
        discard: true,
      });
      response = this.mapResponse(out);
    } catch (e) {
      threw = true;
      if (e instanceof LimitExceeded) {
        response = internalError(e.message);
      } else if (e instanceof JsException) {
        const trace =
          options.logExceptionDetails || options.returnExceptionDetails
            ? this.originalTrace(e.jsStack ?? "", tx)
            : "";
        if (options.logExceptionDetails) {
          this.log("error", `Exception thrown while executing: ${e.message}\n${trace}`);
        }
        const body = HttpErrors.InternalError("Exception thrown while executing.").toJSON() as {
          error: Record<string, unknown>;
        };
        if (options.returnExceptionDetails) {
          body.error.details = [{ code: "JSException", message: e.message, trace }];
        }
        response = errorResponse(500, body);
      } else if (e instanceof SandboxError && !app.interp.dead) {
        response = internalError(e.message);
      } else {
        throw e;
      }
    } finally {
      app.current = undefined;
    }
    const elapsed = performance.now() - started;
    this.onRun?.(endpoint, elapsed / 1000);
    if (app.metricsLogging) {
      const ms = Math.round(elapsed);
      this.log(
        "info",
        `JS execution complete: Method=${req.method}, Path=${endpoint.path}, ` +
          `Status=${response.status}, ExecMilliseconds=${ms}`,
      );
    }
    const ok = response.status >= 200 && response.status < 300;
    const applyWrites = threw ? false : (current.applyWrites ?? ok);
    const result: AppResult = { response, applyWrites };
    if (!threw && current.claimsDigest !== undefined) result.claimsDigest = current.claimsDigest;
    return result;
  }

  /** A guest stack with frames of modules that carry a source map shown at their original lines. */
  private originalTrace(stack: string, tx: Tx): string {
    const modules = tx.map(Tables.MODULES);
    return mapStackTrace(stack, (name) =>
      this.sourceMaps.get(name, modules.get(Buffer.from(`/${name}`, "utf8"))),
    );
  }

  private mapResponse(out: GuestValue): EndpointResponse {
    const o = out as Record<string, GuestValue>;
    if (o.error === "not-object") {
      return internalError("Invalid endpoint function return value (not an object).");
    }
    if (o.error === "status-type") {
      return internalError("Invalid endpoint function return value (status code type).");
    }
    const headers = o.headers as Record<string, string>;
    const response: EndpointResponse = { status: o.status as number, headers };
    if (o.kind === "bytes") response.body = Buffer.from(o.body as ArrayBuffer);
    else if (o.kind === "text") response.body = o.body;
    return response;
  }

  private async create(
    limits: Limits,
    factory: (options: InterpreterOptions) => Promise<Interpreter> = createInterpreter,
  ): Promise<AppInterpreter> {
    const app: AppInterpreter = {
      interp: undefined as unknown as Interpreter,
      current: undefined,
      metricsLogging: true,
      running: 0,
      retired: false,
    };
    const need = (): Current => {
      if (app.current === undefined) {
        throw new GuestError("Error", "No request is being executed");
      }
      return app.current;
    };
    const interp = await factory({
      limits,
      modules: {
        load: (name) => {
          const tx = app.current?.tx;
          if (tx === undefined) return undefined;
          const v = tx.map(Tables.MODULES).get(Buffer.from(`/${name}`, "utf8"));
          return v === undefined ? undefined : Buffer.from(v).toString("utf8");
        },
      },
      log: (level, message) => this.log(level, message),
      randomBytes: this.randomBytes,
      ...(this.onLongRun === undefined ? {} : { onLongRun: this.onLongRun }),
    });
    app.interp = interp;
    const nonNegative = (v: GuestValue, what: string): number => {
      if (typeof v !== "number" || !Number.isFinite(v)) {
        throw new GuestError("TypeError", `${what} must be a number`);
      }
      if (v < 0) throw new GuestError("RangeError", `${what} cannot be negative`);
      return v;
    };
    try {
      interp.define(HOST_GLOBAL, {
        setApplyWrites: (...args) => {
          checkArgCount(args, 1);
          if (typeof args[0] !== "boolean") {
            throw new GuestError("TypeError", "Argument must be a boolean");
          }
          need().applyWrites = args[0];
        },
        setClaimsDigest: (...args) => {
          checkArgCount(args, 1);
          const d = args[0];
          if (!(d instanceof ArrayBuffer) || d.byteLength !== 32) {
            throw new GuestError("TypeError", "Argument must be an ArrayBuffer of 32 bytes");
          }
          need().claimsDigest = new Uint8Array(d.slice(0));
        },
        getLastCommittedTxId: (...args) => {
          checkArgCount(args, 0);
          const { view, seqno } = this.consensus.lastCommitted();
          return { view, seqno };
        },
        getStatusForTxId: (...args) => {
          checkArgCount(args, 2);
          const view = nonNegative(args[0], "view");
          const seqno = nonNegative(args[1], "seqno");
          return this.consensus.statusFor(view, seqno);
        },
        getViewForSeqno: (...args) => {
          checkArgCount(args, 1);
          const seqno = nonNegative(args[0], "seqno");
          return this.consensus.viewFor(seqno) ?? null;
        },
        getStateRange: (...args) => {
          checkArgCount(args, 4);
          const [handle, start, end, expiry] = args.map(toInt64);
          if (handle < 0 || start < 0 || end < 0 || expiry < 0) {
            throw new GuestError(
              "RangeError",
              "Invalid handle or seqno or expiry: cannot be negative",
            );
          }
          const current = need();
          if (this.history === undefined) {
            throw new GuestError("InternalError", "Failed to get state cache");
          }
          let states: AppHistoricalState[] | undefined;
          try {
            states = this.history.range(handle, start, end, expiry);
          } catch (e) {
            throw new GuestError(
              "InternalError",
              `Failed to get state range: ${e instanceof Error ? e.message : String(e)}`,
            );
          }
          if (states === undefined) return null;
          return states.map((state) => historicalForGuest(current, state));
        },
        dropCachedStates: (...args) => {
          checkArgCount(args, 1);
          const handle = toInt64(args[0]);
          if (handle < 0) throw new GuestError("RangeError", "Invalid handle: cannot be negative");
          if (this.history === undefined) {
            throw new GuestError("InternalError", "Failed to get state cache");
          }
          return this.history.drop(handle);
        },
        // Deterministic outside historical endpoints (always undefined there), and those never
        // run from templates: a module reading it at its top level (ccf-app's historical.js)
        // keeps its template.
        historicalState: deterministic(() => {
          const current = app.current;
          if (current?.historical === undefined) return null;
          if (current.historicalSource === undefined) {
            current.sources.push(current.historical.tx());
            current.historicalSource = current.sources.length;
          }
          return {
            transactionId: current.historical.transactionId,
            receipt: current.historical.jsReceipt as HostValue,
            source: current.historicalSource,
          };
        }),
        enableUntrustedDateTime: (...args) => {
          checkArgCount(args, 1);
          if (typeof args[0] !== "boolean") {
            throw new GuestError("TypeError", "Argument must be a boolean");
          }
          return interp.setUntrustedDateTime(args[0]);
        },
        enableMetricsLogging: (...args) => {
          checkArgCount(args, 1);
          if (typeof args[0] !== "boolean") {
            throw new GuestError("TypeError", "Argument must be a boolean");
          }
          const prev = app.metricsLogging;
          app.metricsLogging = args[0];
          return prev;
        },
      });
      installKv(
        interp,
        {
          current: () =>
            app.current === undefined
              ? undefined
              : { tx: app.current.tx, context: app.current.context },
          historical: (source) => app.current?.sources[source - 1],
        },
        { exposeFactory: true },
      );
      interp.evalScript(PRELUDE, "ccf-app-prelude.js");
      installConverters(interp);
      installCrypto(interp);
      installGovExtension(interp, {
        limits,
        log: (level, message) => this.log(level, message),
        randomBytes: this.randomBytes,
      });
    } catch (e) {
      interp.dispose();
      throw e;
    }
    return app;
  }
}
