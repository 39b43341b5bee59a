// Tests for JS applications: endpoints and modules from the governance tables, the app's `ccf`
// global, the Request object, CCF's response mapping, limits and interpreter reuse.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import type { EndpointRequest } from "../../src/endpoints/types.js";
import { type AppEndpoint, JsApp, readAppEndpoints } from "../../src/js/app.js";
import { SINGLETON_KEY, Store, Tables, type Tx } from "../../src/kv/index.js";
import type { Caller } from "../../src/rpc/auth.js";

const enc = (s: string): Buffer => Buffer.from(s, "utf8");

const APP = `
import { helper } from "./lib/helper.js";
let counter = 0;
const rpc = ccf.rpc;
export function put(request) {
  const body = request.body.json();
  ccf.kv.records.set(ccf.strToBuf(body.k), ccf.strToBuf(body.v));
  return { body: helper(body.k) };
}
export function get(request) {
  const v = ccf.kv.records.get(ccf.strToBuf(request.params.k));
  if (v === undefined) return { statusCode: 404, body: "missing" };
  return { body: ccf.bufToStr(v) };
}
export function count(request) { counter += 1; return { body: counter }; }
export function echo(request) {
  return { body: {
    headers: request.headers, params: request.params, url: request.url, path: request.path,
    route: request.route, query: request.query, method: request.method, hostname: request.hostname,
    text: request.body.text(), bytes: request.body.arrayBuffer().byteLength, caller: request.caller,
    bodyKeys: Object.keys(request.body), bodyCopied: (() => {
      new Uint8Array(request.body.arrayBuffer()).fill(0x41);
      return request.body.text();
    })(),
  } };
}
export function respond(request) {
  const kind = request.query;
  switch (kind) {
    case "string": return { body: "hello" };
    case "object": return { body: { a: 1 } };
    case "null": return { body: null };
    case "buffer": return { body: ccf.strToBuf("raw") };
    case "slice": return { body: new Uint8Array([1, 2, 3, 4, 5]).subarray(1, 3) };
    case "undefined": return { statusCode: 204 };
    case "headers": return { body: "x", headers: { "Content-Type": "text/csv", "x-n": 7 }, statusCode: 201 };
    case "badstatus": return { statusCode: 200.5 };
    case "strstatus": return { statusCode: "200" };
    case "notobject": return 42;
    case "nullret": return null;
    case "throw": throw new Error("boom");
  }
  return {};
}
export function writeThen(request) {
  ccf.kv.records.set(ccf.strToBuf("w"), ccf.strToBuf("1"));
  const q = request.query;
  if (q === "force") { rpc.setApplyWrites(true); return { statusCode: 400 }; }
  if (q === "discard") { rpc.setApplyWrites(false); return { statusCode: 200 }; }
  if (q === "throw") throw new Error("x");
  return { statusCode: 409 };
}
export function claims(request) {
  const d = ccf.crypto.digest("SHA-256", ccf.strToBuf("abc"));
  rpc.setClaimsDigest(d);
  let bad = "";
  try { rpc.setClaimsDigest(new ArrayBuffer(5)); } catch (e) { bad = e.name; }
  let alg = "";
  try { ccf.crypto.digest("SHA-384", d); } catch (e) { alg = e.name; }
  let hist = "";
  try { ccf.historical.getStateRange(0, 1, 2, 3); } catch (e) { hist = e.message; }
  return { body: { bad, alg, hist, last: ccf.consensus.getLastCommittedTxId(),
    status: ccf.consensus.getStatusForTxId(2, 10), view: ccf.consensus.getViewForSeqno(99),
    metrics: ccf.enableMetricsLogging(false), untrusted: ccf.enableUntrustedDateTime(false) } };
}
export function loop() { for (;;) {} }
export function historicalRead() {
  const s = ccf.historicalState;
  const read = (kv) => ccf.bufToStr(kv.records.get(ccf.strToBuf("k")));
  let setError = "";
  try { s.kv.records.set(ccf.strToBuf("x"), ccf.strToBuf("y")); } catch (e) { setError = e.message; }
  let illegal = "";
  try { s.kv["ccf.gov.members"].get(ccf.strToBuf("x")); } catch (e) { illegal = e.message; }
  let arity = "";
  try { ccf.historical.getStateRange(1, 5, 6); } catch (e) { arity = e.name + ": " + e.message; }
  let negative = "";
  try { ccf.historical.getStateRange(1, -5, 6, 60); } catch (e) { negative = e.name; }
  const range = ccf.historical.getStateRange(1, 5, 6, 60);
  const pending = ccf.historical.getStateRange(2, 5, 7, 60);
  return { body: {
    id: s.transactionId,
    signature: s.receipt.is_signature_transaction,
    value: read(s.kv),
    current: ccf.kv.records.get(ccf.strToBuf("k")) === undefined ? null : "present",
    setError, illegal, arity, negative,
    range: range.map((r) => [r.transactionId, read(r.kv)]),
    pending,
    dropped: [ccf.historical.dropCachedStates(1), ccf.historical.dropCachedStates(1)],
  } };
}
export function countOrLoop(request) { counter += 1; if (request.query === "loop") for (;;) {} return { body: counter }; }
export function time() {
  const before = Date.now();
  const prev = ccf.enableUntrustedDateTime(true);
  const after = Date.now();
  ccf.enableUntrustedDateTime(prev);
  return { body: { before, after: after > 1e12, prev } };
}
`;

const HELPER = `export function helper(k) { return "stored " + k; }`;

function ep(path: string, method: string, fn: string, extra: Record<string, unknown> = {}) {
  return [
    `${method} ${path}`,
    {
      js_module: "/app.js",
      js_function: fn,
      forwarding_required: "sometimes",
      authn_policies: ["no_auth"],
      mode: "readwrite",
      openapi: {},
      ...extra,
    },
  ] as const;
}

const ENDPOINTS = [
  ep("/put", "POST", "put"),
  ep("/get/{k}", "GET", "get", { mode: "readonly" }),
  ep("/put_ro", "POST", "put", { mode: "readonly" }),
  ep("/count", "GET", "count"),
  ep("/count_reuse", "GET", "count", { interpreter_reuse: { key: "k1" } }),
  ep("/echo/{a}", "POST", "echo", {
    authn_policies: ["user_cert", { all_of: ["user_cert", "jwt"] }],
  }),
  ep("/respond", "GET", "respond"),
  ep("/write", "POST", "writeThen"),
  ep("/claims", "POST", "claims", { interpreter_reuse: { key: "k2" } }),
  ep("/loop", "GET", "loop", { interpreter_reuse: { key: "k3" } }),
  ep("/hist", "GET", "historicalRead", { mode: "historical" }),
  ep("/col", "GET", "countOrLoop", { interpreter_reuse: { key: "k4" } }),
  ep("/time", "GET", "time"),
  ep("/c1", "GET", "count", { interpreter_reuse: { key: "c1" } }),
  ep("/c2", "GET", "count", { interpreter_reuse: { key: "c2" } }),
];

function makeStore(
  modules: Record<string, string>,
  endpoints: ReadonlyArray<readonly [string, Record<string, unknown>]>,
  runtimeOptions?: Record<string, unknown>,
): Store {
  const store = new Store();
  const tx = store.begin();
  for (const [name, src] of Object.entries(modules)) {
    tx.map(Tables.MODULES).set(enc(`/${name}`), enc(src));
  }
  for (const [key, props] of endpoints) {
    tx.map(Tables.ENDPOINTS).set(enc(key), enc(JSON.stringify(props)));
  }
  if (runtimeOptions !== undefined) {
    tx.map(Tables.JS_RUNTIME_OPTIONS).set(SINGLETON_KEY, enc(JSON.stringify(runtimeOptions)));
  }
  store.commit(tx);
  return store;
}

function request(
  method: string,
  path: string,
  extra: Partial<EndpointRequest> = {},
): EndpointRequest {
  const q = path.indexOf("?");
  return {
    method,
    path: q === -1 ? path : path.slice(0, q),
    query: q === -1 ? "" : path.slice(q + 1),
    params: {},
    headers: {},
    body: Buffer.alloc(0),
    clientCert: undefined,
    httpVersion: "1.1",
    hostname: "",
    ...extra,
  };
}

const consensus = {
  lastCommitted: () => ({ view: 2, seqno: 41 }),
  statusFor: (view: number, seqno: number) => (view === 2 && seqno <= 41 ? "Committed" : "Unknown"),
  viewFor: (seqno: number) => (seqno <= 41 ? 2 : undefined),
};

class Harness {
  readonly logs: Array<[string, string]> = [];
  readonly app = new JsApp({ log: (l, m) => this.logs.push([l, m]), consensus });
  readonly endpoints: AppEndpoint[];

  constructor(readonly store: Store) {
    this.endpoints = readAppEndpoints(store.begin());
  }

  find(method: string, path: string): AppEndpoint {
    const e = this.endpoints.find((x) => x.method === method && x.path === path);
    assert.ok(e, `${method} ${path}`);
    return e;
  }

  /** Runs one request in a fresh transaction, committing it when the app applies writes. */
  async call(
    method: string,
    route: string,
    req: EndpointRequest,
    caller: Caller | null = { policy: "no_auth" },
  ) {
    const tx: Tx = this.store.begin();
    const result = await this.app.execute(this.find(method, route), req, caller, tx);
    if (result.applyWrites) this.store.commit(tx);
    return result;
  }
}

const bodyText = (b: unknown): string =>
  Buffer.isBuffer(b) ? b.toString("utf8") : typeof b === "string" ? b : JSON.stringify(b);

describe("readAppEndpoints", () => {
  it("parses the endpoints table", () => {
    const h = new Harness(makeStore({ "app.js": APP }, ENDPOINTS));
    const get = h.find("GET", "/app/get/{k}");
    assert.deepEqual(get, {
      method: "GET",
      path: "/app/get/{k}",
      jsModule: "app.js",
      jsFunction: "get",
      authnPolicies: ["no_auth"],
      mode: "readonly",
      forwardingRequired: "sometimes",
      redirectionStrategy: "to_primary",
      openapi: {},
    });
    assert.equal(h.find("GET", "/app/count_reuse").interpreterReuseKey, "k1");
    assert.deepEqual(h.find("POST", "/app/echo/{a}").authnPolicies, [
      "user_cert",
      { all_of: ["user_cert", "jwt"] },
    ]);
    assert.equal(h.endpoints.length, ENDPOINTS.length);
  });

  it("names the endpoint for an unknown policy or bad field", () => {
    const bad = makeStore({}, [ep("/x", "GET", "f", { authn_policies: ["nope"] })]);
    assert.throws(() => readAppEndpoints(bad.begin()), /GET \/x.*Unknown auth policy: nope/);
    const bad2 = makeStore({}, [ep("/y", "GET", "f", { mode: "sideways" })]);
    assert.throws(() => readAppEndpoints(bad2.begin()), /GET \/y.*mode/);
    const bad3 = makeStore({}, [ep("/z", "GET", "f", { js_function: 3 })]);
    assert.throws(() => readAppEndpoints(bad3.begin()), /GET \/z.*js_function/);
  });
});

describe("JsApp", () => {
  const modules = { "app.js": APP, "lib/helper.js": HELPER };

  it("writes through ccf.kv, then reads back in another request; readonly refuses set", async () => {
    const h = new Harness(makeStore(modules, ENDPOINTS));
    const body = Buffer.from(JSON.stringify({ k: "a", v: "apple" }));
    const put = await h.call("POST", "/app/put", request("POST", "/app/put", { body }));
    assert.equal(put.response.status, 200);
    assert.equal(put.response.body, "stored a");
    assert.equal(put.response.headers?.["content-type"], "text/plain");
    assert.equal(put.applyWrites, true);
    const get = await h.call(
      "GET",
      "/app/get/{k}",
      request("GET", "/app/get/a", { params: { k: "a" } }),
    );
    assert.equal(get.response.status, 200);
    assert.equal(get.response.body, "apple");
    assert.equal(get.response.headers?.["content-type"], "text/plain");
    const missing = await h.call(
      "GET",
      "/app/get/{k}",
      request("GET", "/app/get/b", { params: { k: "b" } }),
    );
    assert.equal(missing.response.status, 404);
    assert.equal(missing.applyWrites, false);
    const ro = await h.call("POST", "/app/put_ro", request("POST", "/app/put_ro", { body }));
    assert.equal(ro.response.status, 500);
    assert.deepEqual(ro.response.body, {
      error: { code: "InternalError", message: "Exception thrown while executing." },
    });
    assert.equal(ro.applyWrites, false);
  });

  it("answers without a promise once the module's template is built", async () => {
    const h = new Harness(makeStore(modules, ENDPOINTS));
    const ep = h.find("GET", "/app/get/{k}");
    const req = request("GET", "/app/get/a", { params: { k: "a" } });
    const first = h.app.execute(ep, req, { policy: "no_auth" }, h.store.begin());
    assert.ok(first instanceof Promise, "the first request waits for the template");
    assert.equal((await first).response.status, 404);
    const later = h.app.execute(ep, req, { policy: "no_auth" }, h.store.begin());
    assert.ok(!(later instanceof Promise));
    assert.equal(later.response.status, 404);
    // an endpoint with a reuse key runs in its cached interpreter, through a promise as before
    const viaCache = h.app.execute(
      h.find("GET", "/app/count_reuse"),
      request("GET", "/app/count_reuse"),
      { policy: "no_auth" },
      h.store.begin(),
    );
    assert.ok(viaCache instanceof Promise);
    assert.equal((await viaCache).response.status, 200);
  });

  it("returns exception details when js_runtime_options asks", async () => {
    const h = new Harness(
      makeStore(modules, ENDPOINTS, {
        return_exception_details: true,
        log_exception_details: true,
      }),
    );
    const body = Buffer.from(JSON.stringify({ k: "a", v: "apple" }));
    const ro = await h.call("POST", "/app/put_ro", request("POST", "/app/put_ro", { body }));
    const err = (ro.response.body as { error: { details: Array<{ message: string }> } }).error;
    assert.match(err.details[0]?.message ?? "", /Cannot call set on table named records/);
    assert.ok(h.logs.some(([l, m]) => l === "error" && m.includes("Cannot call set")));
  });

  it("maps responses as CCF does", async () => {
    const h = new Harness(makeStore(modules, ENDPOINTS));
    const r = async (q: string) =>
      (await h.call("GET", "/app/respond", request("GET", `/app/respond?${q}`))).response;
    let res = await r("string");
    assert.deepEqual(
      [res.status, res.body, res.headers],
      [200, "hello", { "content-type": "text/plain" }],
    );
    res = await r("object");
    assert.deepEqual([res.body, res.headers?.["content-type"]], ['{"a":1}', "application/json"]);
    res = await r("null");
    assert.deepEqual([res.body, res.headers?.["content-type"]], ["null", "application/json"]);
    res = await r("buffer");
    assert.ok(Buffer.isBuffer(res.body));
    assert.equal(bodyText(res.body), "raw");
    assert.equal(res.headers?.["content-type"], "application/octet-stream");
    res = await r("slice");
    assert.deepEqual([...(res.body as Buffer)], [2, 3]);
    assert.equal(res.headers?.["content-type"], "application/octet-stream");
    res = await r("undefined");
    assert.deepEqual(res, { status: 204, headers: {} });
    res = await r("headers");
    assert.deepEqual(res, {
      status: 201,
      headers: { "content-type": "text/csv", "x-n": "7" },
      body: "x",
    });
    const internal = (message: string) => ({
      status: 500,
      headers: { "content-type": "application/json" },
      body: { error: { code: "InternalError", message } },
    });
    assert.deepEqual(
      await r("badstatus"),
      internal("Invalid endpoint function return value (status code type)."),
    );
    assert.deepEqual(
      await r("strstatus"),
      internal("Invalid endpoint function return value (status code type)."),
    );
    assert.deepEqual(
      await r("notobject"),
      internal("Invalid endpoint function return value (not an object)."),
    );
    assert.deepEqual(
      await r("nullret"),
      internal("Invalid endpoint function return value (not an object)."),
    );
    const thrown = await r("throw");
    assert.deepEqual(thrown, internal("Exception thrown while executing."));
    assert.equal(
      JSON.stringify(thrown.body),
      '{"error":{"code":"InternalError","message":"Exception thrown while executing."}}',
    );
    assert.deepEqual(await r("other"), { status: 200, headers: {} });
    assert.ok(
      h.logs.some(([, m]) =>
        /^JS execution complete: Method=GET, Path=\/app\/respond, Status=200, ExecMilliseconds=\d+$/.test(
          m,
        ),
      ),
    );
  });

  it("applies writes on 2xx only, unless setApplyWrites says otherwise", async () => {
    const h = new Harness(makeStore(modules, ENDPOINTS));
    const w = async (q: string) =>
      await h.call("POST", "/app/write", request("POST", `/app/write?${q}`));
    const has = () => h.store.begin().map("records").get(enc("w")) !== undefined;
    let res = await w("plain");
    assert.equal(res.response.status, 409);
    assert.equal(res.applyWrites, false);
    res = await w("throw");
    assert.equal(res.applyWrites, false);
    res = await w("discard");
    assert.equal(res.response.status, 200);
    assert.equal(res.applyWrites, false);
    assert.equal(has(), false);
    res = await w("force");
    assert.equal(res.response.status, 400);
    assert.equal(res.applyWrites, true);
    assert.equal(has(), true);
  });

  it("returns the claims digest; consensus, crypto.digest and stubs work", async () => {
    const h = new Harness(makeStore(modules, ENDPOINTS));
    const res = await h.call("POST", "/app/claims", request("POST", "/app/claims"));
    assert.equal(res.response.status, 200);
    assert.deepEqual(
      Buffer.from(res.claimsDigest ?? []).toString("hex"),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    assert.deepEqual(JSON.parse(res.response.body as string), {
      bad: "TypeError",
      alg: "RangeError",
      hist: "Failed to get state cache",
      last: { view: 2, seqno: 41 },
      status: "Committed",
      view: null,
      metrics: true,
      untrusted: false,
    });
    // Reused interpreter: metrics logging stays off, the flag reads back false.
    const logsBefore = h.logs.length;
    const res2 = await h.call("POST", "/app/claims", request("POST", "/app/claims"));
    assert.equal((JSON.parse(res2.response.body as string) as { metrics: boolean }).metrics, false);
    assert.equal(h.logs.length, logsBefore);
  });

  it("keeps module state with a reuse key, not without; flush drops it", async () => {
    const h = new Harness(makeStore(modules, ENDPOINTS));
    const count = async (route: string) =>
      (await h.call("GET", route, request("GET", route))).response.body;
    assert.equal(await count("/app/count"), "1");
    assert.equal(await count("/app/count"), "1");
    assert.equal(await count("/app/count_reuse"), "1");
    assert.equal(await count("/app/count_reuse"), "2");
    assert.equal(await count("/app/count_reuse"), "3");
    h.app.flush();
    assert.equal(await count("/app/count_reuse"), "1");
  });

  it("shares one interpreter between concurrent first requests of a key", async () => {
    const h = new Harness(makeStore(modules, ENDPOINTS));
    const results = await Promise.all(
      [1, 2, 3].map(() => h.call("GET", "/app/count_reuse", request("GET", "/app/count_reuse"))),
    );
    assert.deepEqual(results.map((r) => r.response.body).sort(), ["1", "2", "3"]);
  });

  it("evicts the least recently used interpreter beyond max_cached_interpreters", async () => {
    const h = new Harness(makeStore(modules, ENDPOINTS, { max_cached_interpreters: 1 }));
    const count = async (route: string) =>
      (await h.call("GET", route, request("GET", route))).response.body;
    assert.equal(await count("/app/c1"), "1");
    assert.equal(await count("/app/c1"), "2");
    assert.equal(await count("/app/c2"), "1");
    assert.equal(await count("/app/c1"), "1");
  });

  it("discards a reused interpreter that hit a limit", async () => {
    const h = new Harness(makeStore(modules, ENDPOINTS, { max_execution_time_ms: 100 }));
    const col = async (q: string) =>
      (await h.call("GET", "/app/col", request("GET", `/app/col?${q}`))).response;
    assert.equal((await col("")).body, "1");
    assert.equal((await col("")).body, "2");
    assert.equal((await col("loop")).status, 500);
    assert.equal((await col("")).body, "1");
  });

  it("keeps Date at the epoch until untrusted time is enabled", async () => {
    const h = new Harness(makeStore(modules, ENDPOINTS));
    const res = await h.call("GET", "/app/time", request("GET", "/app/time"));
    assert.deepEqual(JSON.parse(res.response.body as string), {
      before: 0,
      after: true,
      prev: false,
    });
  });

  it("times out an infinite loop, then serves the next request", async () => {
    const h = new Harness(makeStore(modules, ENDPOINTS, { max_execution_time_ms: 100 }));
    const res = await h.call("GET", "/app/loop", request("GET", "/app/loop"));
    assert.deepEqual(res.response.body, {
      error: { code: "InternalError", message: "Operation took too long to complete." },
    });
    assert.equal(res.response.status, 500);
    assert.equal(res.applyWrites, false);
    const again = await h.call("GET", "/app/count", request("GET", "/app/count"));
    assert.equal(again.response.body, "1");
    const loop2 = await h.call("GET", "/app/loop", request("GET", "/app/loop"));
    assert.equal(loop2.response.status, 500);
  });

  it("builds the request object", async () => {
    const h = new Harness(makeStore(modules, ENDPOINTS));
    const caller = { policy: "user_cert", id: "ab", data: { x: 1 }, cert: "PEM" };
    const res = await h.call(
      "POST",
      "/app/echo/{a}",
      request("POST", "/app/echo/v%20w?x=1%202&y", {
        params: { a: "v%20w" },
        headers: { host: "example.com:8000", "x-h": "yes" },
        body: Buffer.from("héllo"),
        hostname: "example.com",
      }),
      caller,
    );
    assert.equal(res.response.status, 200);
    assert.deepEqual(JSON.parse(res.response.body as string), {
      headers: { host: "example.com:8000", "x-h": "yes" },
      params: { a: "v%20w" },
      url: "/app/echo/v%20w?x=1%202&y",
      path: "/app/echo/v%20w",
      route: "/app/echo/{a}",
      query: "x=1 2&y",
      method: "POST",
      hostname: "example.com:8000",
      text: "héllo",
      bytes: 6,
      caller,
      // As CCF: the body's methods are on its prototype; arrayBuffer() is a copy.
      bodyKeys: [],
      bodyCopied: "héllo",
    });
    const noCaller = await h.call("POST", "/app/echo/{a}", request("POST", "/app/echo/z"), null);
    const parsed = JSON.parse(noCaller.response.body as string) as Record<string, unknown>;
    assert.equal(parsed.caller, null);
    assert.equal(parsed.hostname, null);
    assert.equal(parsed.text, "");
  });

  it("runs historical endpoints over the requested state, read-only, with ranges by handle", async () => {
    // A state holding one write, k = v<seqno>, as the node's historical cache gives it.
    const stateAt = (seqno: number) => {
      const store = new Store();
      const tx = store.begin();
      tx.map("records").set(enc("k"), enc(`v${seqno}`));
      store.commit(tx, { version: seqno });
      return {
        transactionId: `2.${seqno}`,
        jsReceipt: { is_signature_transaction: false, node_id: "n" },
        tx: () => store.begin(),
      };
    };
    const handles = new Set<number>();
    const app = new JsApp({
      log: () => undefined,
      consensus,
      history: {
        range: (handle, start, end) => {
          handles.add(handle);
          if (end > 6) return undefined;
          const out = [];
          for (let s = start; s <= end; s++) out.push(stateAt(s));
          return out;
        },
        drop: (handle) => handles.delete(handle),
      },
    });
    const store = makeStore(modules, ENDPOINTS);
    const endpoint = readAppEndpoints(store.begin()).find((e) => e.path === "/app/hist");
    assert.ok(endpoint);
    const tx = store.begin();
    const res = await app.execute(
      endpoint,
      request("GET", "/app/hist"),
      { policy: "no_auth" },
      tx,
      stateAt(4),
    );
    assert.equal(res.response.status, 200, bodyText(res.response.body));
    assert.deepEqual(JSON.parse(res.response.body as string), {
      id: "2.4",
      signature: false,
      value: "v4",
      current: null,
      setError:
        "Cannot call set on table named records. All tables are read-only during historical transaction.",
      illegal:
        "Cannot call get on table named ccf.gov.members. This table is inaccessible in current (read-only application) execution context. See https://microsoft.github.io/CCF/main/audit/read_write_restrictions.html for more detail.",
      arity: "TypeError: Passed 3 arguments, but expected 4",
      negative: "RangeError",
      range: [
        ["2.5", "v5"],
        ["2.6", "v6"],
      ],
      pending: null,
      dropped: [true, false],
    });
    assert.equal(tx.hasWrites(), false);
  });

  it("reports a missing export as a 500", async () => {
    const h = new Harness(makeStore(modules, [ep("/nofn", "GET", "nope")]));
    const res = await h.call("GET", "/app/nofn", request("GET", "/app/nofn"));
    assert.equal(res.response.status, 500);
    assert.match(JSON.stringify(res.response.body), /Failed to find export 'nope'/);
  });
});

describe("the logging sample", () => {
  it("POSTs then GETs /log/private", async (t) => {
    let bundle: {
      metadata: { endpoints: Record<string, Record<string, Record<string, unknown>>> };
      modules: Array<{ name: string; module: string }>;
    };
    try {
      bundle = JSON.parse(
        readFileSync("samples/apps/logging/dist/bundle.json", "utf8"),
      ) as typeof bundle;
    } catch {
      t.skip("samples/apps/logging/dist/bundle.json missing (npm run build:samples)");
      return;
    }
    const endpoints: Array<[string, Record<string, unknown>]> = [];
    for (const [path, verbs] of Object.entries(bundle.metadata.endpoints)) {
      for (const [verb, props] of Object.entries(verbs)) {
        endpoints.push([
          `${verb.toUpperCase()} ${path}`,
          { ...props, js_module: `/${String(props.js_module)}` },
        ]);
      }
    }
    const modules = Object.fromEntries(bundle.modules.map((m) => [m.name, m.module]));
    const h = new Harness(makeStore(modules, endpoints));
    const caller = {
      policy: "user_cert",
      id: "a".repeat(64),
      data: null,
      cert: "-----BEGIN CERTIFICATE-----\n",
    };
    const post = await h.call(
      "POST",
      "/app/log/private",
      request("POST", "/app/log/private", {
        body: Buffer.from(JSON.stringify({ id: 42, msg: "hello world" })),
        headers: { "content-type": "application/json" },
      }),
      caller,
    );
    assert.equal(post.response.status, 200, JSON.stringify(post.response));
    assert.equal(post.response.body, "true");
    assert.equal(post.applyWrites, true);
    const get = await h.call(
      "GET",
      "/app/log/private",
      request("GET", "/app/log/private?id=42"),
      caller,
    );
    assert.equal(get.response.status, 200, JSON.stringify(get.response));
    assert.deepEqual(JSON.parse(get.response.body as string), { msg: "hello world" });
    const missing = await h.call(
      "GET",
      "/app/log/private",
      request("GET", "/app/log/private?id=7"),
      caller,
    );
    assert.equal(missing.response.status, 404);
    const count = await h.call(
      "GET",
      "/app/log/private/count",
      request("GET", "/app/log/private/count"),
      caller,
    );
    assert.equal(count.response.body, "1");
  });
});

describe("ccf.crypto certificate checks", () => {
  it("isValidX509CertBundle and isValidX509CertChain answer as CCF's do", async () => {
    const { EcKeyPair, createServiceCertificate, createEndorsedCertificate } = await import(
      "../../src/crypto/index.js"
    );
    const caKey = EcKeyPair.generate();
    const ca = await createServiceCertificate(caKey, {
      validFrom: new Date(Date.now() - 60_000),
      validityDays: 10,
    });
    const leafKey = EcKeyPair.generate();
    const leaf = await createEndorsedCertificate({
      subjectPublicKey: leafKey.publicKey,
      subjectName: "CN=leaf",
      issuerKey: caKey,
      issuerCertPem: ca,
      validFrom: new Date(Date.now() - 60_000),
      validityDays: 10,
    });
    const otherCa = await createServiceCertificate(EcKeyPair.generate(), {
      validFrom: new Date(Date.now() - 60_000),
      validityDays: 10,
    });
    const CERTS = `
export function check(request) {
  const { leaf, ca, other } = request.body.json();
  return { body: [
    ccf.crypto.isValidX509CertBundle(leaf + ca),
    ccf.crypto.isValidX509CertBundle("not a certificate"),
    ccf.crypto.isValidX509CertChain(leaf, ca),
    ccf.crypto.isValidX509CertChain(leaf, other),
  ] };
}`;
    const h = new Harness(
      makeStore({ "app.js": CERTS }, [ep("/check", "POST", "check")], {
        return_exception_details: true,
      }),
    );
    const res = await h.call(
      "POST",
      "/app/check",
      request("POST", "/app/check", {
        body: Buffer.from(JSON.stringify({ leaf, ca, other: otherCa })),
      }),
    );
    assert.equal(res.response.status, 200, bodyText(res.response.body));
    assert.deepEqual(JSON.parse(bodyText(res.response.body)), [true, false, true, false]);
  });
});
