// Forwarding from a backup to the primary and redirects: the frame codec, Forwarders wired by an
// in-memory hub with a Router per node, routeDecision, and a real RpcServer (HTTP/1.1 and HTTP/2).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { NodeId } from "../../src/consensus/types.js";
import type { ClientSession, Endpoint, EndpointRequest } from "../../src/endpoints/types.js";
import { FormatError, HttpErrors } from "../../src/errors.js";
import type { RpcInterface } from "../../src/node/config.js";
import { dispatch, type RpcResponse } from "../../src/rpc/dispatch.js";
import {
  decodeForwardingFrame,
  encodeForwardedRequest,
  encodeForwardedResponse,
  type ForwardedRequest,
  type ForwardedResponse,
  Forwarder,
  forwardingHook,
  NODE_CHANNEL,
  type NodeRole,
  type RouteContext,
  routeDecision,
} from "../../src/rpc/forwarding.js";
import { Router } from "../../src/rpc/router.js";
import { Agent } from "undici";
import {
  agent,
  call,
  type Identity,
  PROTOCOLS,
  type RunningServer,
  selfSigned,
  startServer,
} from "./tls-fixture.js";

// ---------------------------------------------------------------------------------------------
// Codec
// ---------------------------------------------------------------------------------------------

const sampleRequest: ForwardedRequest = {
  id: 0xfffffffe,
  view: 7,
  sessionId: 42,
  method: "POST",
  path: "/app/log/private",
  query: "a=1&b=é",
  headers: { "content-type": "application/json", ":authority": "127.0.0.1:8000", "x-e": "" },
  body: Buffer.from('{"id":1,"msg":"hello"}'),
  clientCertDer: Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]),
  httpVersion: "2.0",
  hostname: "127.0.0.1",
};

const sampleResponse: ForwardedResponse = {
  id: 3,
  status: 201,
  headers: { "content-type": "text/plain", "x-ms-ccf-transaction-id": "2.10" },
  body: Buffer.from("done"),
  closeSession: true,
};

/** A small deterministic PRNG, so a failing fuzz case replays. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function decodesOrFormatError(bytes: Uint8Array): void {
  try {
    decodeForwardingFrame(bytes);
  } catch (err) {
    assert.ok(err instanceof FormatError, `unexpected ${String(err)}`);
  }
}

describe("forwarding frames", () => {
  it("round-trip a request with every optional field", () => {
    const frame = encodeForwardedRequest(sampleRequest);
    assert.equal(frame[0], NODE_CHANNEL.forwarding);
    assert.deepEqual(decodeForwardingFrame(frame), { kind: "request", request: sampleRequest });
  });

  it("round-trip a request without view, session or certificate", () => {
    const bare: ForwardedRequest = {
      ...sampleRequest,
      id: 0,
      view: undefined,
      sessionId: undefined,
      clientCertDer: undefined,
      headers: {},
      body: Buffer.alloc(0),
      query: "",
    };
    assert.deepEqual(decodeForwardingFrame(encodeForwardedRequest(bare)), {
      kind: "request",
      request: bare,
    });
  });

  it("round-trip a response", () => {
    const frame = encodeForwardedResponse(sampleResponse);
    assert.deepEqual(decodeForwardingFrame(frame), { kind: "response", response: sampleResponse });
    const open = { ...sampleResponse, closeSession: false };
    assert.deepEqual(decodeForwardingFrame(encodeForwardedResponse(open)), {
      kind: "response",
      response: open,
    });
  });

  it("refuse trailing bytes, truncation, unknown kinds, flags and channels", () => {
    const frame = encodeForwardedRequest(sampleRequest);
    assert.throws(
      () => decodeForwardingFrame(Buffer.concat([frame, Buffer.from([0])])),
      FormatError,
    );
    for (let n = 0; n < frame.length; n++) {
      assert.throws(() => decodeForwardingFrame(frame.subarray(0, n)), FormatError);
    }
    const badKind = Buffer.from(frame);
    badKind[1] = 9;
    assert.throws(() => decodeForwardingFrame(badKind), FormatError);
    const badFlags = Buffer.from(frame);
    badFlags[6] |= 0x80;
    assert.throws(() => decodeForwardingFrame(badFlags), FormatError);
    const consensus = Buffer.from(frame);
    consensus[0] = NODE_CHANNEL.consensus;
    assert.throws(() => decodeForwardingFrame(consensus), FormatError);
  });

  it("refuse header names and values that could corrupt a response", () => {
    const bad: Array<Record<string, string>> = [
      { "bad name": "x" },
      { "x-a": "1\r\nset-cookie: y" },
      { "": "x" },
    ];
    for (const headers of bad) {
      const frame = encodeForwardedResponse({ ...sampleResponse, headers });
      assert.throws(() => decodeForwardingFrame(frame), FormatError);
    }
  });

  it("never throw anything but FormatError on random or mutated input", () => {
    const rand = prng(9);
    const valid = [encodeForwardedRequest(sampleRequest), encodeForwardedResponse(sampleResponse)];
    for (let i = 0; i < 3000; i++) {
      const len = Math.floor(rand() * 64);
      const bytes = Buffer.alloc(len);
      for (let j = 0; j < len; j++) bytes[j] = Math.floor(rand() * 256);
      if (len > 1 && rand() < 0.5) {
        bytes[0] = NODE_CHANNEL.forwarding;
        bytes[1] = 1 + Math.floor(rand() * 2);
      }
      decodesOrFormatError(bytes);
    }
    for (let i = 0; i < 3000; i++) {
      const base = valid[i % 2];
      const bytes = Buffer.from(base);
      const flips = 1 + Math.floor(rand() * 4);
      for (let f = 0; f < flips; f++) {
        bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      }
      decodesOrFormatError(bytes);
      decodesOrFormatError(bytes.subarray(0, Math.floor(rand() * bytes.length)));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Nodes wired by an in-memory hub
// ---------------------------------------------------------------------------------------------

/** Delivers frames between Forwarders on a microtask; frames to a node in `down` are lost. */
class Hub {
  readonly nodes = new Map<NodeId, Forwarder>();
  readonly down = new Set<NodeId>();

  send(from: NodeId, to: NodeId, bytes: Uint8Array): void {
    if (this.down.has(to)) return;
    queueMicrotask(() => this.nodes.get(to)?.onFrame(from, bytes));
  }
}

/** What one node believes about the cluster. */
interface Belief {
  primary: NodeId | undefined;
  view: number;
}

interface TestNode {
  id: NodeId;
  belief: Belief;
  forwarder: Forwarder;
  /** Dispatch as a client request to this node. */
  call(req: EndpointRequest): Promise<RpcResponse>;
}

interface Ran {
  node: NodeId;
  forwarded: boolean;
  cert: string | null;
  body: string;
  httpVersion: string;
  query: string;
}

/** The endpoints every test node serves; each reports where it ran and what it saw. */
function endpointsOf(id: NodeId, allowedCertPem: () => string | undefined): Endpoint[] {
  const ran = (req: EndpointRequest) => ({
    status: 200,
    body: {
      node: id,
      forwarded: req.forwarded === true,
      cert: req.clientCert?.pem ?? null,
      body: req.body.toString(),
      httpVersion: req.httpVersion,
      query: req.query,
    } satisfies Ran,
  });
  return [
    { method: "POST", path: "/app/write", forwarding: "always", handler: ran },
    { method: "GET", path: "/app/read", forwarding: "never", handler: ran },
    { method: "GET", path: "/app/maybe", forwarding: "sometimes", handler: ran },
    { method: "GET", path: "/app/untagged", handler: ran },
    {
      // Stands in for a `user_cert` policy: only the registered certificate gets in.
      method: "POST",
      path: "/app/authed",
      forwarding: "always",
      handler: (req) => {
        const allowed = allowedCertPem();
        if (req.clientCert === undefined || req.clientCert.pem !== allowed) {
          throw HttpErrors.InvalidAuthenticationInfo("Invalid authentication credentials.", [
            { auth_policy: "user_cert", code: "InvalidAuthenticationInfo", message: "unknown" },
          ]);
        }
        return ran(req);
      },
    },
  ];
}

function makeNode(
  hub: Hub,
  id: NodeId,
  belief: Belief,
  opts: {
    timeoutMs?: number;
    maxInFlight?: number;
    allowedCertPem?: () => string | undefined;
  } = {},
): TestNode {
  const router = new Router();
  router.setEndpoints("app", endpointsOf(id, opts.allowedCertPem ?? (() => undefined)));
  const role = (): NodeRole => (belief.primary === id ? "primary" : "backup");
  // The forwarder's handler and the hook refer to each other; the hook is set right below.
  const late: { hook?: ReturnType<typeof forwardingHook> } = {};
  const forwarder = new Forwarder({
    selfId: id,
    send: (to, bytes) => hub.send(id, to, bytes),
    primary: () => belief.primary,
    view: () => belief.view,
    handle: (req) => dispatch(router, req, undefined, { beforeHandler: late.hook }),
    timeoutMs: opts.timeoutMs ?? 60_000,
    maxInFlight: opts.maxInFlight,
  });
  const hook = forwardingHook({
    role,
    primary: () => belief.primary,
    view: () => belief.view,
    forwarder,
  });
  late.hook = hook;
  hub.nodes.set(id, forwarder);
  return {
    id,
    belief,
    forwarder,
    call: async (req) => dispatch(router, req, undefined, { beforeHandler: hook }),
  };
}

function clientRequest(
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
    headers: { "content-type": "text/plain" },
    body: Buffer.alloc(0),
    clientCert: undefined,
    httpVersion: "1.1",
    hostname: "localhost",
    ...extra,
  };
}

function json<T>(res: RpcResponse): T {
  return JSON.parse(res.body.toString()) as T;
}

function errorCode(res: RpcResponse): string {
  return json<{ error: { code: string } }>(res).error.code;
}

describe("Forwarder between a backup and a primary", () => {
  let user: Identity;
  let stranger: Identity;
  before(async () => {
    user = await selfSigned("CN=user0");
    stranger = await selfSigned("CN=stranger");
  });

  function cluster(opts: Parameters<typeof makeNode>[3] = {}) {
    const hub = new Hub();
    const belief = (): Belief => ({ primary: "p", view: 2 });
    const primary = makeNode(hub, "p", belief(), opts);
    const backup = makeNode(hub, "b", belief(), opts);
    return { hub, primary, backup };
  }

  it("forwards a write from the backup and returns the primary's answer", async () => {
    const { backup } = cluster();
    const res = await backup.call(
      clientRequest("POST", "/app/write?x=1", { body: Buffer.from("payload"), httpVersion: "2.0" }),
    );
    assert.equal(res.status, 200);
    const ran = json<Ran>(res);
    assert.deepEqual(
      { ...ran, cert: undefined },
      {
        node: "p",
        forwarded: true,
        cert: undefined,
        body: "payload",
        httpVersion: "2.0",
        query: "x=1",
      },
    );
    assert.equal(backup.forwarder.stats().forwarded, 1);
    assert.equal(backup.forwarder.stats().inFlight, 0);
  });

  it("runs writes on the primary itself without forwarding", async () => {
    const { primary } = cluster();
    const res = await primary.call(clientRequest("POST", "/app/write"));
    assert.deepEqual([json<Ran>(res).node, json<Ran>(res).forwarded], ["p", false]);
  });

  it("runs reads marked never, and untagged endpoints, on the backup", async () => {
    const { backup } = cluster();
    for (const path of ["/app/read", "/app/untagged"]) {
      const res = await backup.call(clientRequest("GET", path));
      assert.equal(json<Ran>(res).node, "b", path);
    }
    assert.equal(backup.forwarder.stats().forwarded, 0);
  });

  it("hands the caller's certificate to the primary, where the policy is checked again", async () => {
    const { backup } = cluster({ allowedCertPem: () => user.cert });
    const der = Buffer.from(
      user.cert.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""),
      "base64",
    );
    const res = await backup.call(
      clientRequest("POST", "/app/authed", { clientCert: { pem: user.cert, der } }),
    );
    assert.equal(res.status, 200);
    const ran = json<Ran>(res);
    assert.equal(ran.node, "p");
    assert.equal(ran.cert?.trim(), user.cert.trim());
  });

  it("has the primary refuse a forwarded caller its policy rejects", async () => {
    const { backup } = cluster({ allowedCertPem: () => user.cert });
    const anonymous = await backup.call(clientRequest("POST", "/app/authed"));
    assert.equal(anonymous.status, 401);
    assert.equal(errorCode(anonymous), "InvalidAuthenticationInfo");
    const der = Buffer.from(
      stranger.cert.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""),
      "base64",
    );
    const wrong = await backup.call(
      clientRequest("POST", "/app/authed", { clientCert: { pem: stranger.cert, der } }),
    );
    assert.equal(wrong.status, 401);
    assert.equal(backup.forwarder.stats().forwarded, 2);
  });

  it("forwards `sometimes` endpoints only once the session has forwarded", async () => {
    const { backup } = cluster();
    const session: ClientSession = { id: 5 };
    const first = await backup.call(clientRequest("GET", "/app/maybe", { session }));
    assert.equal(json<Ran>(first).node, "b");
    await backup.call(clientRequest("POST", "/app/write", { session }));
    assert.deepEqual(session.forwardedTo, { primary: "p", view: 2 });
    const after = await backup.call(clientRequest("GET", "/app/maybe", { session }));
    assert.equal(json<Ran>(after).node, "p");
    // Another session has not forwarded: it reads locally.
    const other = await backup.call(clientRequest("GET", "/app/maybe", { session: { id: 6 } }));
    assert.equal(json<Ran>(other).node, "b");
  });

  it("ends a session that forwarded once the primary or view changed", async () => {
    const { backup } = cluster();
    const session: ClientSession = { id: 8 };
    await backup.call(clientRequest("POST", "/app/write", { session }));
    backup.belief.view = 3;
    const res = await backup.call(clientRequest("GET", "/app/read", { session }));
    assert.equal(res.status, 500);
    assert.equal(errorCode(res), "SessionConsistencyLost");
    assert.equal(res.closeSession, true);
    // A fresh session on the same node is unaffected.
    const fresh = await backup.call(clientRequest("GET", "/app/read", { session: { id: 9 } }));
    assert.equal(fresh.status, 200);
  });

  it("ends the session when the backup became primary after its session forwarded", async () => {
    const { backup } = cluster();
    const session: ClientSession = { id: 10 };
    await backup.call(clientRequest("POST", "/app/write", { session }));
    backup.belief.primary = "b";
    const res = await backup.call(clientRequest("POST", "/app/write", { session }));
    assert.equal(errorCode(res), "SessionConsistencyLost");
  });

  it("keeps the queue of received requests bounded under a steady stream", async () => {
    // As many requests arrive each turn as are served in one, over a backlog: the queue never
    // empties, so served entries must still be dropped (they held every request's body).
    let served = 0;
    const primary = new Forwarder({
      selfId: "p",
      send: () => undefined,
      primary: () => "p",
      view: () => 2,
      handle: () => {
        served++;
        return { status: 200, headers: {}, body: Buffer.alloc(0) };
      },
      timeoutMs: 60_000,
    });
    const frame = (i: number) =>
      encodeForwardedRequest({ ...sampleRequest, clientCertDer: undefined, view: 2, id: i });
    let sent = 0;
    for (; sent < 64; sent++) primary.onFrame("b", frame(sent));
    let maxQueued = 0;
    for (let turn = 0; turn < 400; turn++) {
      for (let k = 0; k < 16; k++, sent++) primary.onFrame("b", frame(sent));
      maxQueued = Math.max(maxQueued, primary.stats().queued);
      await new Promise<void>((r) => setImmediate(r));
    }
    const deadline = Date.now() + 10_000;
    while (served < sent && Date.now() < deadline) await new Promise<void>((r) => setImmediate(r));
    assert.equal(served, sent);
    assert.equal(primary.stats().waiting, 0);
    assert.ok(maxQueued <= 1024 + 64 + 16, `the queue held ${maxQueued} slots`);
  });

  it("keeps a session that forwarded while the primary is unknown for a moment in the same view", async () => {
    const { backup } = cluster();
    const session: ClientSession = { id: 12 };
    await backup.call(clientRequest("POST", "/app/write", { session }));
    backup.belief.primary = undefined;
    const unknown = await backup.call(clientRequest("POST", "/app/write", { session }));
    assert.equal(unknown.status, 503);
    assert.notEqual(unknown.closeSession, true);
    backup.belief.primary = "p";
    const again = await backup.call(clientRequest("POST", "/app/write", { session }));
    assert.equal(again.status, 200);
    assert.equal(json<Ran>(again).node, "p");
  });

  it("has the primary refuse a forward sent in another view", async () => {
    const { primary, backup } = cluster();
    primary.belief.view = 3;
    const res = await backup.call(clientRequest("POST", "/app/write", { session: { id: 11 } }));
    assert.equal(res.status, 500);
    assert.equal(errorCode(res), "SessionConsistencyLost");
    assert.equal(res.closeSession, true);
  });

  it("answers 503 when no primary is known", async () => {
    const { backup } = cluster();
    backup.belief.primary = undefined;
    const res = await backup.call(clientRequest("POST", "/app/write"));
    assert.equal(res.status, 503);
    assert.deepEqual(json(res), {
      error: { code: "InternalError", message: "RPC could not be forwarded to unknown primary." },
    });
  });

  it("answers 504 when the primary does not answer in time", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const { hub, backup } = cluster({ timeoutMs: 3000 });
    hub.down.add("p");
    const pending = backup.call(clientRequest("POST", "/app/write"));
    // Let dispatch reach the forwarder (a microtask) before the clock moves.
    await Promise.resolve();
    t.mock.timers.tick(3000);
    const res = await pending;
    assert.equal(res.status, 504);
    assert.equal(
      res.body.toString(),
      "Request was forwarded to node p, but no response was received after 3000ms",
    );
    assert.equal(backup.forwarder.stats().timedOut, 1);
    assert.equal(backup.forwarder.stats().inFlight, 0);
  });

  it("refuses to forward again a request forwarded to a node that is not primary", async () => {
    const hub = new Hub();
    // a thinks b is primary; b thinks c is.
    const a = makeNode(hub, "a", { primary: "b", view: 2 });
    makeNode(hub, "b", { primary: "c", view: 2 });
    const c = makeNode(hub, "c", { primary: "c", view: 2 });
    const res = await a.call(clientRequest("POST", "/app/write"));
    assert.equal(res.status, 503);
    assert.deepEqual(json(res), {
      error: { code: "RequestAlreadyForwarded", message: "RPC was already forwarded." },
    });
    assert.equal(c.forwarder.stats().served, 0);
    // Reads still run on whichever node received them.
    const read = await a.call(clientRequest("GET", "/app/read"));
    assert.equal(json<Ran>(read).node, "a");
  });

  it("refuses forwards beyond the in-flight bound, and answers them all on close", async () => {
    const { hub, backup } = cluster({ maxInFlight: 2 });
    hub.down.add("p");
    const waiting = [
      backup.call(clientRequest("POST", "/app/write")),
      backup.call(clientRequest("POST", "/app/write")),
    ];
    const refused = await backup.call(clientRequest("POST", "/app/write"));
    assert.equal(refused.status, 503);
    assert.equal(errorCode(refused), "TooManyPendingTransactions");
    backup.forwarder.close();
    for (const res of await Promise.all(waiting)) assert.equal(res.status, 503);
    assert.equal(backup.forwarder.stats().inFlight, 0);
  });

  it("ignores answers from a node it did not ask, and late answers", async () => {
    const { hub, backup } = cluster();
    hub.down.add("p");
    const pending = backup.call(clientRequest("POST", "/app/write"));
    await Promise.resolve();
    const answer = encodeForwardedResponse({
      id: 0,
      status: 200,
      headers: {},
      body: Buffer.alloc(0),
      closeSession: false,
    });
    backup.forwarder.onFrame("intruder", answer);
    assert.equal(backup.forwarder.stats().inFlight, 1);
    backup.forwarder.onFrame("p", answer);
    assert.equal((await pending).status, 200);
    backup.forwarder.onFrame("p", answer);
    assert.equal(backup.forwarder.stats().unmatched, 2);
  });

  it("serves a burst of forwarded requests a few per event-loop turn, in arrival order", async () => {
    // Frames arrive from the node-to-node transport in batches; serving a whole batch at once
    // would hold back consensus messages queued behind it (a vote waited 18 s under load).
    const served: number[] = [];
    const replies: number[] = [];
    const primary = new Forwarder({
      selfId: "p",
      send: (_to, bytes) => {
        const f = decodeForwardingFrame(bytes);
        if (f.kind === "response") replies.push(f.response.id);
      },
      primary: () => "p",
      view: () => 2,
      handle: (req) => {
        served.push(Number(req.path.slice("/app/n/".length)));
        return { status: 200, headers: {}, body: Buffer.alloc(0) };
      },
      timeoutMs: 60_000,
    });
    const count = 40;
    for (let i = 0; i < count; i++) {
      primary.onFrame(
        "b",
        encodeForwardedRequest({
          ...sampleRequest,
          clientCertDer: undefined,
          view: 2,
          id: i,
          path: `/app/n/${i}`,
        }),
      );
    }
    assert.equal(served.length, 0, "nothing runs inside the transport's callback");
    // Something queued behind the burst (a consensus message) runs before the burst is done.
    let otherRanAfter = -1;
    setImmediate(() => {
      otherRanAfter = served.length;
    });
    const deadline = Date.now() + 10_000;
    while (replies.length < count && Date.now() < deadline) {
      await new Promise<void>((r) => setImmediate(r));
    }
    assert.deepEqual(served, [...Array(count).keys()]);
    assert.deepEqual(
      [...replies].sort((a, b) => a - b),
      [...Array(count).keys()],
    );
    assert.ok(
      otherRanAfter >= 0 && otherRanAfter < count,
      `ran after ${otherRanAfter} of ${count}`,
    );
  });

  it("answers a malformed forwarded request with 400 and survives garbage", async () => {
    const hub = new Hub();
    const primary = makeNode(hub, "p", { primary: "p", view: 1 });
    const replies: Uint8Array[] = [];
    hub.nodes.set("b", {
      onFrame: (_from: NodeId, bytes: Uint8Array) => replies.push(bytes),
    } as unknown as Forwarder);
    const frame = encodeForwardedRequest({ ...sampleRequest, id: 77 });
    primary.forwarder.onFrame("b", frame.subarray(0, frame.length - 1));
    primary.forwarder.onFrame("b", Buffer.from([NODE_CHANNEL.forwarding]));
    primary.forwarder.onFrame("b", new Uint8Array(0));
    await new Promise<void>((r) => queueMicrotask(r));
    assert.equal(replies.length, 1);
    const decoded = decodeForwardingFrame(replies[0]);
    assert.equal(decoded.kind, "response");
    if (decoded.kind === "response") {
      assert.equal(decoded.response.id, 77);
      assert.equal(decoded.response.status, 400);
    }
    assert.equal(primary.forwarder.stats().malformed, 3);
  });
});

// ---------------------------------------------------------------------------------------------
// routeDecision and redirects
// ---------------------------------------------------------------------------------------------

describe("routeDecision", () => {
  const handler = () => ({ status: 200 });
  const ep = (extra: Partial<Endpoint>): Endpoint => ({
    method: "GET",
    path: "/app/x",
    handler,
    ...extra,
  });
  const redirections: RpcInterface["redirections"] = {
    to_primary: { kind: "NodeByRole", target: { role: "primary" } },
    to_backup: { kind: "StaticAddress", target: { address: "10.0.0.9:8443" } },
  };
  const ctx = (role: NodeRole, extra: Partial<RouteContext> = {}): RouteContext => ({
    role,
    primary: "p",
    view: 4,
    redirections,
    addressOf: (r) => (r === "primary" ? "10.0.0.1:8443" : undefined),
    ...extra,
  });
  const req = clientRequest("GET", "/app/x?a=1&b=%20");

  it("redirects to_primary from a backup to the primary's address with path and query", () => {
    assert.deepEqual(routeDecision(ep({ redirection: "to_primary" }), req, ctx("backup")), {
      redirect: "https://10.0.0.1:8443/app/x?a=1&b=%20",
    });
    assert.equal(routeDecision(ep({ redirection: "to_primary" }), req, ctx("primary")), "local");
  });

  it("redirects to_backup from the primary to the static address", () => {
    assert.deepEqual(routeDecision(ep({ redirection: "to_backup" }), req, ctx("primary")), {
      redirect: "https://10.0.0.9:8443/app/x?a=1&b=%20",
    });
    assert.equal(routeDecision(ep({ redirection: "to_backup" }), req, ctx("backup")), "local");
  });

  it("answers PrimaryNotFound and BackupNotFound when no address resolves", () => {
    const none = ctx("backup", { addressOf: () => undefined });
    const p = routeDecision(ep({ redirection: "to_primary" }), req, none);
    assert.ok(typeof p === "object" && "error" in p);
    assert.deepEqual([p.error.status, p.error.code], [503, "PrimaryNotFound"]);
    const b = routeDecision(ep({ redirection: "to_backup" }), req, {
      ...ctx("primary"),
      redirections: { ...redirections, to_backup: redirections.to_primary },
      addressOf: () => undefined,
    });
    assert.ok(typeof b === "object" && "error" in b);
    assert.deepEqual([b.error.status, b.error.code], [503, "BackupNotFound"]);
  });

  it("never forwards on an interface with redirections", () => {
    const e = ep({ forwarding: "always", redirection: "none" });
    assert.equal(routeDecision(e, req, ctx("backup")), "local");
    assert.equal(routeDecision(e, req, ctx("backup", { redirections: undefined })), "forward");
  });

  it("does not redirect a forwarded request", () => {
    const fwd = { ...req, forwarded: true };
    assert.equal(routeDecision(ep({ redirection: "to_backup" }), fwd, ctx("primary")), "local");
  });

  it("answers 307 with Location through the hook, with no body", async () => {
    const router = new Router();
    router.setEndpoints("app", [ep({ redirection: "to_primary" })]);
    const beforeHandler = forwardingHook({
      role: () => "backup",
      primary: () => "p",
      redirections,
      addressOf: (r) => (r === "primary" ? "10.0.0.1:8443" : undefined),
    });
    const res = await dispatch(router, clientRequest("GET", "/app/x?y=2"), undefined, {
      beforeHandler,
    });
    assert.equal(res.status, 307);
    assert.equal(res.headers.location, "https://10.0.0.1:8443/app/x?y=2");
    assert.equal(res.body.length, 0);
  });

  it("answers CCF's 500 when forwarding is needed and there is no forwarder", async () => {
    const router = new Router();
    router.setEndpoints("app", [ep({ forwarding: "always" })]);
    const beforeHandler = forwardingHook({ role: () => "backup", primary: () => "p" });
    const res = await dispatch(router, clientRequest("GET", "/app/x"), undefined, {
      beforeHandler,
    });
    assert.equal(res.status, 500);
    assert.equal(errorCode(res), "InternalError");
  });
});

// ---------------------------------------------------------------------------------------------
// Through a real RpcServer
// ---------------------------------------------------------------------------------------------

describe("forwarding through RpcServer", () => {
  let nodeId: Identity;
  let client: Identity;
  let running: RunningServer;
  const hub = new Hub();
  const belief: Belief = { primary: "p", view: 1 };

  before(async () => {
    nodeId = await selfSigned("CN=node");
    client = await selfSigned("CN=user0");
    const primary = makeNode(hub, "p", belief, { allowedCertPem: () => client.cert });
    void primary;
    // The backup: a Forwarder on the hub, its hook on a real server.
    const backupRouter = new Router();
    backupRouter.setEndpoints(
      "app",
      endpointsOf("b", () => client.cert),
    );
    const late: { hook?: ReturnType<typeof forwardingHook> } = {};
    const forwarder = new Forwarder({
      selfId: "b",
      send: (to, bytes) => hub.send("b", to, bytes),
      primary: () => belief.primary,
      view: () => belief.view,
      handle: (req) => dispatch(backupRouter, req, undefined, { beforeHandler: late.hook }),
      timeoutMs: 10_000,
    });
    hub.nodes.set("b", forwarder);
    const hook = forwardingHook({
      role: () => (belief.primary === "b" ? "primary" : "backup"),
      primary: () => belief.primary,
      view: () => belief.view,
      forwarder,
    });
    late.hook = hook;
    running = await startServer(
      nodeId,
      endpointsOf("b", () => client.cert),
      {
        beforeHandler: hook,
      },
    );
  });
  after(() => running.stop());

  for (const protocol of PROTOCOLS) {
    it(`forwards an ${protocol} client's write with its certificate to the primary`, async () => {
      // One connection, so both requests share a client session.
      const dispatcher = new Agent({
        allowH2: protocol === "HTTP/2",
        connections: 1,
        connect: { ca: running.ca, cert: client.cert, key: client.key.privateKeyPem },
      });
      try {
        const res = await call(dispatcher, `${running.base}/app/authed?q=1`, {
          method: "POST",
          body: "hello",
        });
        assert.equal(res.status, 200);
        const ran = JSON.parse(res.body.toString()) as Ran;
        assert.equal(ran.node, "p");
        assert.equal(ran.forwarded, true);
        assert.equal(ran.body, "hello");
        assert.equal(ran.query, "q=1");
        assert.equal(ran.httpVersion, protocol === "HTTP/2" ? "2.0" : "1.1");
        assert.equal(ran.cert?.trim(), client.cert.trim());
        const read = await call(dispatcher, `${running.base}/app/maybe`);
        // The session forwarded, so its `sometimes` reads follow it to the primary.
        assert.equal((JSON.parse(read.body.toString()) as Ran).node, "p");
      } finally {
        await dispatcher.close();
      }
    });

    it(`ends an ${protocol} session that forwarded once the view changed`, async () => {
      const dispatcher = new Agent({
        allowH2: protocol === "HTTP/2",
        connections: 1,
        connect: { ca: running.ca, cert: client.cert, key: client.key.privateKeyPem },
      });
      try {
        const write = await call(dispatcher, `${running.base}/app/write`, { method: "POST" });
        assert.equal((JSON.parse(write.body.toString()) as Ran).node, "p");
        belief.view++;
        const lost = await call(dispatcher, `${running.base}/app/read`);
        assert.equal(lost.status, 500);
        assert.equal(
          (JSON.parse(lost.body.toString()) as { error: { code: string } }).error.code,
          "SessionConsistencyLost",
        );
        // The server ended that session: the next request comes on a new one, which has not
        // forwarded, so its `sometimes` read runs on the backup.
        // HTTP/2 clients may already have sent it on the ended session (undici fails a request
        // on a GOAWAY): that is the session ending too, and a retry opens a new one.
        const next = await call(dispatcher, `${running.base}/app/maybe`).catch(() =>
          call(dispatcher, `${running.base}/app/maybe`),
        );
        assert.equal((JSON.parse(next.body.toString()) as Ran).node, "b");
      } finally {
        await dispatcher.close();
      }
    });

    it(`refuses an ${protocol} client without a certificate on the primary`, async () => {
      const dispatcher = agent(protocol, running.ca);
      try {
        const res = await call(dispatcher, `${running.base}/app/authed`, { method: "POST" });
        assert.equal(res.status, 401);
        const read = await call(dispatcher, `${running.base}/app/read`);
        assert.equal((JSON.parse(read.body.toString()) as Ran).node, "b");
      } finally {
        await dispatcher.close();
      }
    });
  }
});
