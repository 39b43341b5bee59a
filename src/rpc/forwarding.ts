// Request forwarding from a backup to the primary, and its alternative, redirects (CCF's
// frontend.h `forward` / `check_redirect` and forwarder.h). A backup that receives a request the
// primary must run sends it over the node-to-node transport; the primary runs its ordinary dispatch
// on it, the caller's certificate included so authentication policies are checked there again, and
// sends the response back. Unlike CCF, HTTP/2 client sessions are forwarded too: the frame carries
// the parsed request, not HTTP/1.1 bytes, so the client's HTTP version does not matter.

import { X509Certificate } from "node:crypto";
import type { NodeId } from "../consensus/types.js";
import type { ClientSession, Endpoint, EndpointRequest } from "../endpoints/types.js";
import { CcfError, FormatError, type HttpError, HttpErrors } from "../errors.js";
import type { RedirectionResolver, RpcInterface } from "../node/config.js";
import { type BeforeHandler, errorResponse, type RpcResponse } from "./dispatch.js";

// ---------------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------------

/**
 * The leading byte of every node-to-node message, telling the node which layer it is for. The
 * transport moves opaque payloads; the node puts consensus and forwarding on the same one.
 */
export const NODE_CHANNEL = { consensus: 0x00, forwarding: 0x01 } as const;

const KIND_REQUEST = 0x01;
const KIND_RESPONSE = 0x02;

const REQ_HAS_VIEW = 0x01;
const REQ_HAS_SESSION = 0x02;
const REQ_HAS_CERT = 0x04;
const RES_CLOSE_SESSION = 0x01;

/** A client request as a backup forwards it. */
export interface ForwardedRequest {
  /** u32, chosen by the backup to match the response to its waiting client. */
  id: number;
  /** The view (Raft term) in which the backup saw the primary it forwards to, if known. */
  view: number | undefined;
  /** The client session's id on the backup, for logs (CCF's client_session_id). */
  sessionId: number | undefined;
  method: string;
  path: string;
  query: string;
  /** Lower-case names; HTTP/2 pseudo-headers (":path") are kept as the handler would see them. */
  headers: Record<string, string>;
  body: Buffer;
  /** DER of the client's TLS certificate, if it presented one. */
  clientCertDer: Buffer | undefined;
  /** "1.1" or "2.0": the client's protocol on the backup. */
  httpVersion: string;
  hostname: string;
}

/** The primary's answer to a forwarded request. */
export interface ForwardedResponse {
  id: number;
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** The backup must end the client session after sending this (SessionConsistencyLost). */
  closeSession: boolean;
}

const INVALID = "InvalidForwardedFrame";
const MAX_U16 = 0xffff;
const MAX_U32 = 0xffff_ffff;
// RFC 9110 token characters, optionally after one ':' for HTTP/2 pseudo-headers; lower case only,
// since every producer lower-cases names.
const HEADER_NAME = /^:?[!#$%&'*+\-.^_`|~0-9a-z]+$/;
// What node's own validateHeaderValue accepts: a value must never smuggle CR/LF into a response.
const BAD_HEADER_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

class Writer {
  readonly #parts: Buffer[] = [];
  #size = 0;

  #push(b: Buffer): void {
    this.#parts.push(b);
    this.#size += b.length;
  }

  u8(v: number): void {
    const b = Buffer.allocUnsafe(1);
    b.writeUInt8(v);
    this.#push(b);
  }

  u16(v: number): void {
    const b = Buffer.allocUnsafe(2);
    b.writeUInt16BE(v);
    this.#push(b);
  }

  u32(v: number): void {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(v);
    this.#push(b);
  }

  u53(v: number, what: string): void {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new FormatError(INVALID, `${what} must be a non-negative safe integer, got ${v}`);
    }
    const b = Buffer.allocUnsafe(8);
    b.writeBigUInt64BE(BigInt(v));
    this.#push(b);
  }

  /** Length-prefixed bytes; `width` is the prefix's size in bytes. */
  bytes(v: Uint8Array, width: 1 | 2 | 4, what: string): void {
    const max = width === 1 ? 0xff : width === 2 ? MAX_U16 : MAX_U32;
    if (v.length > max) throw new FormatError(INVALID, `${what} is too long (${v.length} bytes)`);
    if (width === 1) this.u8(v.length);
    else if (width === 2) this.u16(v.length);
    else this.u32(v.length);
    this.#push(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  }

  str(v: string, width: 1 | 2 | 4, what: string): void {
    this.bytes(Buffer.from(v, "utf8"), width, what);
  }

  headers(h: Record<string, string>): void {
    const names = Object.keys(h);
    if (names.length > MAX_U16) throw new FormatError(INVALID, "too many headers");
    this.u16(names.length);
    for (const name of names) {
      this.str(name.toLowerCase(), 2, "header name");
      this.str(String(h[name]), 4, "header value");
    }
  }

  finish(): Buffer {
    return Buffer.concat(this.#parts, this.#size);
  }
}

class Reader {
  #at = 0;

  constructor(readonly buf: Buffer) {}

  #need(n: number, what: string): void {
    if (this.buf.length - this.#at < n) {
      throw new FormatError(INVALID, `forwarding frame truncated in ${what}`);
    }
  }

  u8(what: string): number {
    this.#need(1, what);
    return this.buf.readUInt8(this.#at++);
  }

  u16(what: string): number {
    this.#need(2, what);
    const v = this.buf.readUInt16BE(this.#at);
    this.#at += 2;
    return v;
  }

  u32(what: string): number {
    this.#need(4, what);
    const v = this.buf.readUInt32BE(this.#at);
    this.#at += 4;
    return v;
  }

  u53(what: string): number {
    this.#need(8, what);
    const v = this.buf.readBigUInt64BE(this.#at);
    this.#at += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new FormatError(INVALID, `${what} ${v} exceeds the safe integer range`);
    }
    return Number(v);
  }

  bytes(width: 1 | 2 | 4, what: string): Buffer {
    const n = width === 1 ? this.u8(what) : width === 2 ? this.u16(what) : this.u32(what);
    this.#need(n, what);
    // A copy: the frame's buffer may be reused by the transport once the handler returns.
    const out = Buffer.from(this.buf.subarray(this.#at, this.#at + n));
    this.#at += n;
    return out;
  }

  str(width: 1 | 2 | 4, what: string): string {
    const n = width === 1 ? this.u8(what) : width === 2 ? this.u16(what) : this.u32(what);
    this.#need(n, what);
    const view = this.buf.subarray(this.#at, this.#at + n);
    this.#at += n;
    try {
      return utf8.decode(view);
    } catch (cause) {
      throw new FormatError(INVALID, `${what} is not UTF-8`, { cause });
    }
  }

  headers(): Record<string, string> {
    const count = this.u16("header count");
    // A null-prototype object: a header named "__proto__" must be data, not a prototype change.
    const out = Object.create(null) as Record<string, string>;
    for (let i = 0; i < count; i++) {
      const name = this.str(2, "header name");
      const value = this.str(4, "header value");
      if (!HEADER_NAME.test(name)) throw new FormatError(INVALID, `bad header name ${name}`);
      if (BAD_HEADER_VALUE.test(value)) {
        throw new FormatError(INVALID, `bad value for header ${name}`);
      }
      if (Object.hasOwn(out, name)) throw new FormatError(INVALID, `duplicate header ${name}`);
      out[name] = value;
    }
    // Back to an ordinary object, as handlers elsewhere receive.
    return { ...out };
  }

  end(): void {
    if (this.#at !== this.buf.length) {
      throw new FormatError(INVALID, `${this.buf.length - this.#at} trailing bytes in frame`);
    }
  }
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/**
 * Request frame: u8 channel (0x01) | u8 kind (0x01) | u32 id | u8 flags (1 view, 2 session, 4 cert)
 * | [u64 view] | [u64 session id] | str8 httpVersion | str8 method | str32 path | str32 query |
 * str16 hostname | u16 n, n × (str16 name, str32 value) | [bytes32 cert DER] | bytes32 body.
 * Integers big-endian; strN = N-bit byte length + UTF-8.
 */
export function encodeForwardedRequest(r: ForwardedRequest): Buffer {
  const w = new Writer();
  w.u8(NODE_CHANNEL.forwarding);
  w.u8(KIND_REQUEST);
  w.u32(r.id);
  let flags = 0;
  if (r.view !== undefined) flags |= REQ_HAS_VIEW;
  if (r.sessionId !== undefined) flags |= REQ_HAS_SESSION;
  if (r.clientCertDer !== undefined) flags |= REQ_HAS_CERT;
  w.u8(flags);
  if (r.view !== undefined) w.u53(r.view, "view");
  if (r.sessionId !== undefined) w.u53(r.sessionId, "session id");
  w.str(r.httpVersion, 1, "http version");
  w.str(r.method, 1, "method");
  w.str(r.path, 4, "path");
  w.str(r.query, 4, "query");
  w.str(r.hostname, 2, "hostname");
  w.headers(r.headers);
  if (r.clientCertDer !== undefined) w.bytes(r.clientCertDer, 4, "client certificate");
  w.bytes(r.body, 4, "body");
  return w.finish();
}

/**
 * Response frame: u8 channel (0x01) | u8 kind (0x02) | u32 id | u8 flags (1 close session) |
 * u16 status | u16 n, n × (str16 name, str32 value) | bytes32 body.
 */
export function encodeForwardedResponse(r: ForwardedResponse): Buffer {
  const w = new Writer();
  w.u8(NODE_CHANNEL.forwarding);
  w.u8(KIND_RESPONSE);
  w.u32(r.id);
  w.u8(r.closeSession ? RES_CLOSE_SESSION : 0);
  w.u16(r.status);
  w.headers(r.headers);
  w.bytes(r.body, 4, "body");
  return w.finish();
}

export type ForwardingFrame =
  | { kind: "request"; request: ForwardedRequest }
  | { kind: "response"; response: ForwardedResponse };

/** Decodes either frame; anything malformed (including trailing bytes) is a FormatError. */
export function decodeForwardingFrame(bytes: Uint8Array): ForwardingFrame {
  const r = new Reader(asBuffer(bytes));
  const channel = r.u8("channel");
  if (channel !== NODE_CHANNEL.forwarding) {
    throw new FormatError(INVALID, `not a forwarding frame (channel ${channel})`);
  }
  const kind = r.u8("kind");
  const id = r.u32("id");
  const flags = r.u8("flags");
  if (kind === KIND_REQUEST) {
    if ((flags & ~(REQ_HAS_VIEW | REQ_HAS_SESSION | REQ_HAS_CERT)) !== 0) {
      throw new FormatError(INVALID, `unknown request flags ${flags}`);
    }
    const view = flags & REQ_HAS_VIEW ? r.u53("view") : undefined;
    const sessionId = flags & REQ_HAS_SESSION ? r.u53("session id") : undefined;
    const httpVersion = r.str(1, "http version");
    const method = r.str(1, "method");
    if (method.length === 0) throw new FormatError(INVALID, "empty method");
    const path = r.str(4, "path");
    const query = r.str(4, "query");
    const hostname = r.str(2, "hostname");
    const headers = r.headers();
    const clientCertDer = flags & REQ_HAS_CERT ? r.bytes(4, "client certificate") : undefined;
    const body = r.bytes(4, "body");
    r.end();
    return {
      kind: "request",
      request: {
        id,
        view,
        sessionId,
        method,
        path,
        query,
        headers,
        body,
        clientCertDer,
        httpVersion,
        hostname,
      },
    };
  }
  if (kind === KIND_RESPONSE) {
    if ((flags & ~RES_CLOSE_SESSION) !== 0) {
      throw new FormatError(INVALID, `unknown response flags ${flags}`);
    }
    const status = r.u16("status");
    if (status < 100 || status > 599) throw new FormatError(INVALID, `bad status ${status}`);
    const headers = r.headers();
    const body = r.bytes(4, "body");
    r.end();
    return {
      kind: "response",
      response: { id, status, headers, body, closeSession: (flags & RES_CLOSE_SESSION) !== 0 },
    };
  }
  throw new FormatError(INVALID, `unknown forwarding frame kind ${kind}`);
}

/** The id of a request frame whose header is readable, to answer even when the rest is not. */
function requestIdOf(bytes: Buffer): number | undefined {
  if (bytes.length < 6) return undefined;
  if (bytes[0] !== NODE_CHANNEL.forwarding || bytes[1] !== KIND_REQUEST) return undefined;
  return bytes.readUInt32BE(2);
}

// ---------------------------------------------------------------------------------------------
// Forwarder
// ---------------------------------------------------------------------------------------------

export interface ForwarderOptions {
  selfId: NodeId;
  /** Queues a frame for a node (the node's transport, frames already carry their channel byte). */
  send(to: NodeId, bytes: Uint8Array): void;
  /** The primary as this node currently knows it. */
  primary(): NodeId | undefined;
  /**
   * The current view (Raft term). Sent with each forward; a primary whose view differs answers
   * SessionConsistencyLost, as CCF's ForwardedCommandHeader_v3 `active_view` check.
   */
  view?(): number | undefined;
  /**
   * Runs a request forwarded here: the node's ordinary dispatch (with its forwarding hook), so the
   * caller is authenticated here with the forwarded certificate.
   */
  handle(req: EndpointRequest): RpcResponse | Promise<RpcResponse>;
  /** How long a backup waits for the primary's answer (an interface's `forwarding_timeout_ms`). */
  timeoutMs: number;
  /** Forwards waiting for an answer at once; beyond it requests are refused with 503. Default 1024. */
  maxInFlight?: number;
  /** Told about frames that could not be decoded or answered, for logging. */
  onMalformed?(from: NodeId, err: unknown): void;
}

export interface ForwarderStats {
  /** Forwards waiting for the primary's answer. */
  inFlight: number;
  /** Forwarded requests received and not yet started (they start a few per event-loop turn). */
  waiting: number;
  /** Slots of the queue of received requests, served ones not yet dropped (bounded). */
  queued: number;
  /** Requests sent to a primary. */
  forwarded: number;
  /** Forwards answered 504 because no response came in time. */
  timedOut: number;
  /** Forwarded requests this node ran and answered. */
  served: number;
  /** Frames dropped or refused as malformed. */
  malformed: number;
  /** Responses dropped: too late (already answered 504) or from a node that was not asked. */
  unmatched: number;
}

interface Pending {
  to: NodeId;
  resolve(res: RpcResponse): void;
  timer: NodeJS.Timeout;
}

const DEFAULT_MAX_IN_FLIGHT = 1024;

/** CCF's wording (frontend.h `forward`). */
const UNKNOWN_PRIMARY = "RPC could not be forwarded to unknown primary.";
const ALREADY_FORWARDED = "RPC was already forwarded.";

function timeoutResponse(to: NodeId, ms: number): RpcResponse {
  // CCF answers a lost forward with a plain-text 504 (forwarder.h send_timeout_error_response).
  const body = Buffer.from(
    `Request was forwarded to node ${to}, but no response was received after ${ms}ms`,
  );
  return {
    status: 504,
    headers: { "content-type": "text/plain", "content-length": String(body.length) },
    body,
  };
}

function pemOf(der: Buffer): string {
  return new X509Certificate(der).toString();
}

/** Forwarded requests started per event-loop turn (see `Forwarder.#incoming`). */
const SERVED_PER_TURN = 16;

export class Forwarder {
  readonly #opts: ForwarderOptions;
  readonly #maxInFlight: number;
  readonly #pending = new Map<number, Pending>();
  #nextId = 0;
  #closed = false;
  readonly #stats = { forwarded: 0, timedOut: 0, served: 0, malformed: 0, unmatched: 0 };
  /**
   * Forwarded requests waiting to run. They run a few per event-loop turn, not as their frames
   * arrive: frames come in batches from the node-to-node transport, and a request runs its
   * handler synchronously, so serving a batch of hundreds at once would hold back the consensus
   * messages (votes, AppendEntries responses) and timers queued behind it.
   */
  readonly #incoming: Array<{ from: NodeId; request: ForwardedRequest } | undefined> = [];
  #incomingAt = 0;
  #draining = false;

  constructor(opts: ForwarderOptions) {
    if (!Number.isSafeInteger(opts.timeoutMs) || opts.timeoutMs < 1) {
      throw new CcfError(
        "InvalidForwarderOptions",
        `timeoutMs must be >= 1, got ${opts.timeoutMs}`,
      );
    }
    const max = opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    if (!Number.isSafeInteger(max) || max < 1 || max > MAX_U32) {
      throw new CcfError("InvalidForwarderOptions", `maxInFlight must be >= 1, got ${max}`);
    }
    this.#opts = opts;
    this.#maxInFlight = max;
  }

  stats(): ForwarderStats {
    return {
      inFlight: this.#pending.size,
      waiting: this.#incoming.length - this.#incomingAt,
      queued: this.#incoming.length,
      ...this.#stats,
    };
  }

  /**
   * Sends `req` to the current primary and resolves with its answer, or with CCF's error when it
   * cannot be sent or no answer comes within the timeout. Never rejects. On success the request's
   * session remembers the primary, so its later `sometimes` requests follow (session consistency).
   */
  forward(req: EndpointRequest, options: { timeoutMs?: number } = {}): Promise<RpcResponse> {
    if (req.forwarded === true) {
      // No daisy chains: a node that is not primary cannot know a better primary than the sender.
      return Promise.resolve(errorResponse(HttpErrors.RequestAlreadyForwarded(ALREADY_FORWARDED)));
    }
    const primary = this.#opts.primary();
    if (this.#closed || primary === undefined || primary === this.#opts.selfId) {
      // primary === self would mean our role and the consensus disagree for a moment: sending to
      // ourselves would only come back here.
      return Promise.resolve(errorResponse(HttpErrors.InternalErrorUnavailable(UNKNOWN_PRIMARY)));
    }
    if (this.#pending.size >= this.#maxInFlight) {
      return Promise.resolve(
        errorResponse(
          HttpErrors.TooManyPendingTransactions(
            "Too many requests are waiting to be forwarded to the primary.",
          ),
        ),
      );
    }
    const id = this.#allocateId();
    const view = this.#opts.view?.();
    let frame: Buffer;
    try {
      frame = encodeForwardedRequest({
        id,
        view,
        sessionId: req.session?.id,
        method: req.method,
        path: req.path,
        query: req.query,
        headers: req.headers,
        body: req.body,
        clientCertDer: req.clientCert?.der,
        httpVersion: req.httpVersion,
        hostname: req.hostname,
      });
    } catch (err) {
      // Only sizes past the frame's length prefixes fail here; the server's limits are far below.
      return Promise.resolve(
        errorResponse(
          HttpErrors.InvalidInput(
            `Request cannot be forwarded: ${err instanceof Error ? err.message : String(err)}`,
          ),
        ),
      );
    }
    const timeoutMs = options.timeoutMs ?? this.#opts.timeoutMs;
    return new Promise<RpcResponse>((resolve) => {
      const timer = setTimeout(() => {
        if (this.#pending.delete(id)) {
          this.#stats.timedOut++;
          resolve(timeoutResponse(primary, timeoutMs));
        }
      }, timeoutMs);
      this.#pending.set(id, { to: primary, resolve, timer });
      try {
        this.#opts.send(primary, frame);
      } catch {
        clearTimeout(timer);
        this.#pending.delete(id);
        resolve(
          errorResponse(
            HttpErrors.InternalErrorUnavailable(
              "Unable to establish channel to forward to primary.",
            ),
          ),
        );
        return;
      }
      this.#stats.forwarded++;
      const session = req.session;
      if (session !== undefined && session.forwardedTo === undefined) {
        session.forwardedTo = { primary, view };
      }
    });
  }

  /**
   * A frame from another node on the forwarding channel: a request to run (answered with a
   * response frame) or the answer to one of our forwards. Never throws: malformed frames are
   * counted and reported, and answered with 400 when their id can be read.
   */
  onFrame(from: NodeId, bytes: Uint8Array): void {
    let frame: ForwardingFrame;
    try {
      frame = decodeForwardingFrame(bytes);
    } catch (err) {
      this.#stats.malformed++;
      this.#report(from, err);
      const id = requestIdOf(asBuffer(bytes));
      if (id !== undefined) {
        this.#reply(
          from,
          id,
          errorResponse(HttpErrors.InvalidInput("Malformed forwarded request.")),
        );
      }
      return;
    }
    if (frame.kind === "response") {
      this.#onResponse(from, frame.response);
      return;
    }
    this.#incoming.push({ from, request: frame.request });
    if (!this.#draining) {
      this.#draining = true;
      setImmediate(() => this.#drain());
    }
  }

  /** Serves up to SERVED_PER_TURN waiting requests, in arrival order, and yields to the loop. */
  #drain(): void {
    const end = Math.min(this.#incoming.length, this.#incomingAt + SERVED_PER_TURN);
    while (this.#incomingAt < end) {
      const next = this.#incoming[this.#incomingAt];
      this.#incoming[this.#incomingAt] = undefined;
      this.#incomingAt++;
      if (next !== undefined) void this.#serve(next.from, next.request);
    }
    if (this.#incomingAt < this.#incoming.length) {
      // Under a steady stream the queue never empties: drop the served prefix now and then.
      if (this.#incomingAt >= 1024) {
        this.#incoming.splice(0, this.#incomingAt);
        this.#incomingAt = 0;
      }
      setImmediate(() => this.#drain());
      return;
    }
    this.#incoming.length = 0;
    this.#incomingAt = 0;
    this.#draining = false;
  }

  /** Answers every waiting forward with 503 and stops forwarding (the node is shutting down). */
  close(): void {
    this.#closed = true;
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.resolve(errorResponse(HttpErrors.InternalErrorUnavailable(UNKNOWN_PRIMARY)));
    }
  }

  #allocateId(): number {
    // u32 ids wrap; the in-flight bound is far below 2^32, so a free one is always near.
    let id = this.#nextId;
    while (this.#pending.has(id)) id = (id + 1) >>> 0;
    this.#nextId = (id + 1) >>> 0;
    return id;
  }

  #onResponse(from: NodeId, res: ForwardedResponse): void {
    const p = this.#pending.get(res.id);
    // A late answer (its client already got the 504) or one from a node we did not ask.
    if (p === undefined || p.to !== from) {
      this.#stats.unmatched++;
      return;
    }
    clearTimeout(p.timer);
    this.#pending.delete(res.id);
    const out: RpcResponse = { status: res.status, headers: res.headers, body: res.body };
    if (res.closeSession) out.closeSession = true;
    p.resolve(out);
  }

  async #serve(from: NodeId, fwd: ForwardedRequest): Promise<void> {
    let res: RpcResponse;
    const current = this.#opts.view?.();
    if (fwd.view !== undefined && current !== undefined && current !== fwd.view) {
      // The backup forwarded to the primary of another view: what its session wrote before may be
      // lost, so CCF fails the request and ends the client's session.
      res = errorResponse(
        HttpErrors.SessionConsistencyLost(
          `Potential loss of session consistency on session ${fwd.sessionId ?? "unknown"}. ` +
            `Started in view ${fwd.view}, now in view ${current}. Closing session.`,
        ),
      );
      res.closeSession = true;
    } else {
      let clientCert: EndpointRequest["clientCert"];
      try {
        clientCert =
          fwd.clientCertDer === undefined
            ? undefined
            : { pem: pemOf(fwd.clientCertDer), der: fwd.clientCertDer };
      } catch (err) {
        this.#stats.malformed++;
        this.#report(from, err);
        this.#reply(
          from,
          fwd.id,
          errorResponse(HttpErrors.InvalidInput("Forwarded client certificate is malformed.")),
        );
        return;
      }
      const req: EndpointRequest = {
        method: fwd.method,
        path: fwd.path,
        query: fwd.query,
        params: {},
        headers: fwd.headers,
        body: fwd.body,
        clientCert,
        httpVersion: fwd.httpVersion,
        hostname: fwd.hostname,
        forwarded: true,
      };
      try {
        res = await this.#opts.handle(req);
      } catch (err) {
        this.#report(from, err);
        res = errorResponse(HttpErrors.InternalError("Internal error"));
      }
    }
    this.#stats.served++;
    this.#reply(from, fwd.id, res);
  }

  #reply(to: NodeId, id: number, res: RpcResponse): void {
    try {
      this.#opts.send(
        to,
        encodeForwardedResponse({
          id,
          status: res.status,
          headers: res.headers,
          body: res.body,
          closeSession: res.closeSession === true,
        }),
      );
    } catch (err) {
      this.#report(to, err);
    }
  }

  #report(from: NodeId, err: unknown): void {
    try {
      this.#opts.onMalformed?.(from, err);
    } catch {
      // A failing logger must not break the forwarding channel.
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Routing: run here, forward, or redirect
// ---------------------------------------------------------------------------------------------

export type NodeRole = "primary" | "backup";

/** What the node knows when a request arrives, for `routeDecision`. */
export interface RouteContext {
  /** "primary" when this node can replicate (or runs without consensus); otherwise "backup". */
  role: NodeRole;
  primary: NodeId | undefined;
  view?: number | undefined;
  /** The receiving interface's `redirections`: when present, it redirects and never forwards. */
  redirections?: RpcInterface["redirections"];
  /**
   * The published address (host:port) on the receiving interface of a trusted node in `role`
   * (for a backup, any one), for NodeByRole resolvers; undefined if none is known.
   */
  addressOf?: (role: NodeRole) => string | undefined;
}

export type RouteDecision =
  | "local"
  | "forward"
  | { redirect: string }
  | { error: HttpError; closeSession?: boolean };

function resolveAddress(resolver: RedirectionResolver, ctx: RouteContext): string | undefined {
  if (resolver.kind === "StaticAddress") return resolver.target.address;
  return ctx.addressOf?.(resolver.target.role);
}

function requestUrl(req: EndpointRequest): string {
  return req.query === "" ? req.path : `${req.path}?${req.query}`;
}

/**
 * Where `req` for `endpoint` must run (frontend.h process_command_inner): a session that forwarded
 * before fails once the primary changed; on an interface with `redirections`, the endpoint's
 * redirection strategy decides and nothing is forwarded; otherwise a backup forwards per
 * `forwarding_required`. A request already forwarded to us is never forwarded again.
 */
export function routeDecision(
  endpoint: Endpoint,
  req: EndpointRequest,
  ctx: RouteContext,
  session: ClientSession | undefined = req.session,
): RouteDecision {
  const sent = session?.forwardedTo;
  if (sent !== undefined) {
    const viewChanged = sent.view !== undefined && ctx.view !== undefined && sent.view !== ctx.view;
    // Not knowing the primary for a moment in the same view (a pre-vote round, an election
    // timeout) loses nothing: that request gets 503 like any other, the session goes on.
    const primaryChanged = ctx.primary !== undefined && sent.primary !== ctx.primary;
    if (viewChanged || primaryChanged) {
      const from = sent.view !== undefined ? `view ${sent.view}` : `primary ${sent.primary}`;
      const now =
        sent.view !== undefined && ctx.view !== undefined
          ? `view ${ctx.view}`
          : `primary ${ctx.primary ?? "unknown"}`;
      return {
        error: HttpErrors.SessionConsistencyLost(
          `Potential loss of session consistency on session ${session?.id}. ` +
            `Started in ${from}, now in ${now}. Closing session.`,
        ),
        closeSession: true,
      };
    }
  }
  const forwarding = endpoint.forwarding ?? "never";
  if (req.forwarded === true) {
    // As CCF: forwarded requests come without an interface (no redirects) and without session
    // state (`sometimes` runs here); only one that must forward again is refused.
    if (ctx.role === "backup" && forwarding === "always") {
      return { error: HttpErrors.RequestAlreadyForwarded(ALREADY_FORWARDED) };
    }
    return "local";
  }
  if (ctx.redirections !== undefined) {
    const strategy = endpoint.redirection ?? "none";
    if (strategy === "to_primary" && ctx.role !== "primary") {
      const address = resolveAddress(ctx.redirections.to_primary, ctx);
      if (address === undefined) {
        return {
          error: HttpErrors.PrimaryNotFound(
            "Request should be redirected to primary, but receiving node does not know current " +
              "primary address",
          ),
        };
      }
      return { redirect: `https://${address}${requestUrl(req)}` };
    }
    if (strategy === "to_backup" && ctx.role === "primary") {
      const address = resolveAddress(ctx.redirections.to_backup, ctx);
      if (address === undefined) {
        return {
          error: HttpErrors.BackupNotFound(
            "Request should be redirected to backup, but receiving node does not know any " +
              "current backup address",
          ),
        };
      }
      return { redirect: `https://${address}${requestUrl(req)}` };
    }
    return "local";
  }
  if (ctx.role === "primary") return "local";
  if (forwarding === "always") return "forward";
  if (forwarding === "sometimes" && sent !== undefined) return "forward";
  return "local";
}

export interface ForwardingHookOptions {
  role(): NodeRole;
  primary(): NodeId | undefined;
  view?(): number | undefined;
  /** Absent: a request that must be forwarded gets CCF's 500 "No consensus or forwarder". */
  forwarder?: Forwarder;
  /** The receiving interface's `redirections` (RpcInterface.redirections). */
  redirections?: RpcInterface["redirections"];
  addressOf?: (role: NodeRole) => string | undefined;
  /** The receiving interface's `forwarding_timeout_ms`; default: the forwarder's. */
  forwardingTimeoutMs?: number;
}

const NO_BODY = Buffer.alloc(0);

/**
 * The dispatch hook (RpcServerOptions.beforeHandler) of one interface: runs `routeDecision` and
 * answers with the redirect, the error, or the primary's response; undefined runs the handler.
 */
export function forwardingHook(opts: ForwardingHookOptions): BeforeHandler {
  return (endpoint, req) => {
    const ctx: RouteContext = {
      role: opts.role(),
      primary: opts.primary(),
      view: opts.view?.(),
      redirections: opts.redirections,
      addressOf: opts.addressOf,
    };
    const decision = routeDecision(endpoint, req, ctx);
    if (decision === "local") return undefined;
    if (decision === "forward") {
      if (opts.forwarder === undefined) {
        return errorResponse(
          HttpErrors.InternalError("No consensus or forwarder to forward request."),
        );
      }
      return opts.forwarder.forward(
        req,
        opts.forwardingTimeoutMs === undefined ? {} : { timeoutMs: opts.forwardingTimeoutMs },
      );
    }
    if ("redirect" in decision) {
      return {
        status: 307,
        headers: { location: decision.redirect, "content-length": "0" },
        body: NO_BODY,
      };
    }
    const res = errorResponse(decision.error);
    if (decision.closeSession === true) res.closeSession = true;
    return res;
  };
}
