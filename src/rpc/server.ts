// The HTTPS front end: one TLS port serving HTTP/1.1 and HTTP/2 in front of a Router, with CCF's
// session caps and request size limits.
import http2 from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import tls, { type Server as TlsServer, type TLSSocket } from "node:tls";
import type { ClientCertificate, ClientSession, EndpointRequest } from "../endpoints/types.js";
import { CcfError, type HttpError, HttpErrors } from "../errors.js";
import {
  type BeforeHandler,
  type DispatchHooks,
  dispatch,
  errorResponse,
  type HandlerErrorListener,
  type RequestObserver,
  type RpcResponse,
} from "./dispatch.js";
import {
  CONTINUE,
  encodeHttp1Response,
  type Http1Head,
  Http1ParseError,
  Http1Reader,
} from "./http1.js";
import type { Router } from "./router.js";

/** What answers a parsed request: the router in this process, or a node's over a pipe. */
export type RequestHandler = (request: EndpointRequest) => RpcResponse | Promise<RpcResponse>;

export interface RpcServerOptions {
  /** PEM private key and certificate served to clients. */
  key: string;
  cert: string;
  /** Dispatches requests here (with the hooks and listener below)... */
  router?: Router;
  /** ...or hands them to this (a frontend process: the node dispatches). One of the two. */
  handler?: RequestHandler;
  /** Told when a client session (an HTTP/1.1 connection or HTTP/2 session) that sent a request ends. */
  onSessionEnd?: (session: ClientSession) => void;
  /** Sessions opened while this many are open get one 503 SessionCapExhausted, then are closed. */
  maxOpenSessionsSoft: number;
  /** Sessions opened while this many are open are closed at once. */
  maxOpenSessionsHard: number;
  /** Largest request body in bytes; larger gets 413 RequestBodyTooLarge. */
  maxBodySize: number;
  /**
   * Largest request header block in bytes (default 16 KiB), answered with 431. CCF applies its
   * limit to each header name and value instead of the whole block.
   */
  maxHeaderSize?: number;
  /** Most request headers, HTTP/2 pseudo-headers aside (default 256, as CCF), answered with 431. */
  maxHeadersCount?: number;
  /** Restrict the port to one protocol, as CCF's `app_protocol`; default: both, chosen by ALPN. */
  appProtocol?: "HTTP1" | "HTTP2";
  /** Told about handler exceptions that the client sees as a 500, for logging. */
  onError?: HandlerErrorListener;
  /**
   * Runs before each handler (see dispatch's BeforeHandler): the node forwards to the primary or
   * redirects here. Absent: every request runs locally.
   */
  beforeHandler?: BeforeHandler;
  /** Told of every answered request (metrics; see dispatch's RequestObserver). */
  observe?: RequestObserver;
}

/** CCF's per-interface session metrics (`GET /node/metrics`, `sessions.interfaces`). */
export interface RpcServerStats {
  /** Sessions open now. */
  active: number;
  /** Most sessions open at once since the server started. */
  peak: number;
  errors: { parsing: number; requestPayloadTooLarge: number; requestHeaderTooLarge: number };
}

type Request = http2.Http2ServerRequest;
type Response = http2.Http2ServerResponse;

/** What the server keeps per HTTP/1.1 socket or HTTP/2 session, created at its first request. */
interface Connection {
  /** Read once: TLS 1.3 has no renegotiation, so it cannot change during the session. */
  cert: ClientCertificate | undefined;
  /** Requests started and not yet answered, so close() can spare busy sessions. */
  inFlight: number;
  /** Opened past the soft session cap. */
  capped: boolean;
  /** The HTTP/2 session, to end once idle when the server closes. */
  session: http2.ServerHttp2Session | undefined;
  /** What requests see of their session (its id and forwarding state). */
  client: ClientSession;
}

const DEFAULT_MAX_HEADER_SIZE = 16 * 1024;
const DEFAULT_MAX_HEADERS_COUNT = 256;
/** CCF's default `max_concurrent_streams_count` for HTTP/2. */
const MAX_CONCURRENT_STREAMS = 100;
/** How long close() lets in-flight requests finish before cutting their connections. */
const CLOSE_GRACE_MS = 1000;
/** Least an HTTP/2 client may keep sending after a 413 before its stream is reset. */
const MIN_DRAIN_BYTES = 1024 * 1024;
/** An HTTP/2 request carries up to four pseudo-headers (:method, :scheme, :authority, :path). */
const H2_PSEUDO_HEADERS = 4;
const NO_BODY = Buffer.alloc(0);
const BUSY = "Service is currently busy and unable to serve new connections";

function noop(): void {}

function peerKey(address: string | undefined, port: number | undefined): string {
  return `${address}|${port}`;
}

function peerCertificate(socket: TLSSocket): ClientCertificate | undefined {
  const cert = socket.getPeerX509Certificate();
  return cert === undefined ? undefined : { pem: cert.toString(), der: cert.raw };
}

/** Host or :authority without the port; IPv6 literals keep their brackets, as URL.hostname. */
function hostnameOf(host: string | string[] | undefined): string {
  if (typeof host !== "string") return "";
  if (host.charCodeAt(0) === 91 /* '[' */) {
    const end = host.indexOf("]");
    return end === -1 ? host : host.slice(0, end + 1);
  }
  const colon = host.indexOf(":");
  return colon === -1 ? host : host.slice(0, colon);
}

/**
 * Runs `then` once `stream` has closed. A GOAWAY sent earlier would overtake the response's DATA
 * frames (nghttp2 sends control frames first), and some clients (undici 7) fail the request then.
 */
function afterStream(stream: http2.Http2Stream, then: () => void): void {
  if (stream.closed) then();
  else stream.once("close", then);
}

/** How long a closing HTTP/1.1 connection keeps reading (and dropping) after its last answer. */
const LINGER_MS = 1000;
/** Node's defaults: the whole head within 60 s of its first byte, the whole request in 300 s. */
const HEAD_TIMEOUT_MS = 60_000;
const REQUEST_TIMEOUT_MS = 300_000;

/**
 * Ends `socket` after what was written, reading and dropping what the client still sends for up
 * to LINGER_MS: closed at once with unread data, the connection would be reset, and a client still
 * writing its body could fail (EPIPE) before it reads the answer.
 */
function endLingering(socket: Socket): void {
  socket.end();
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once("close", () => clearTimeout(timer));
}

/**
 * `bytes`, or a copy in memory of its own when it is a small part of a larger buffer (the reader's
 * input buffer, or a read holding pipelined requests): whoever keeps a request's body does not
 * keep the rest alive.
 */
function ownBytes(bytes: Buffer): Buffer {
  if (bytes.length * 2 >= bytes.buffer.byteLength) return bytes;
  const copy = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(copy);
  return copy;
}

function requireCount(name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new CcfError(
      "InvalidRpcServerOptions",
      `${name} must be an integer >= ${min}, got ${value}`,
    );
  }
  return value;
}

/** The caps and limits of `opts`, defaults filled in; throws InvalidRpcServerOptions for a bad one. */
export function serverLimits(opts: RpcServerOptions): {
  maxOpenSessionsSoft: number;
  maxOpenSessionsHard: number;
  maxBodySize: number;
  maxHeaderSize: number;
  maxHeadersCount: number;
} {
  return {
    maxOpenSessionsSoft: requireCount("maxOpenSessionsSoft", opts.maxOpenSessionsSoft, 0),
    maxOpenSessionsHard: requireCount("maxOpenSessionsHard", opts.maxOpenSessionsHard, 1),
    maxBodySize: requireCount("maxBodySize", opts.maxBodySize, 0),
    maxHeaderSize: requireCount("maxHeaderSize", opts.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE, 1),
    maxHeadersCount: requireCount(
      "maxHeadersCount",
      opts.maxHeadersCount ?? DEFAULT_MAX_HEADERS_COUNT,
      1,
    ),
  };
}

/** What answers the requests of a server with `opts`: its handler, or dispatch to its router. */
export function requestHandlerOf(opts: RpcServerOptions): RequestHandler {
  const router = opts.router;
  if ((router === undefined) === (opts.handler === undefined)) {
    throw new CcfError("InvalidRpcServerOptions", "exactly one of router and handler is needed");
  }
  if (router === undefined) return opts.handler as RequestHandler;
  const onError = opts.onError;
  const hooks: DispatchHooks | undefined =
    opts.beforeHandler === undefined && opts.observe === undefined
      ? undefined
      : { beforeHandler: opts.beforeHandler, observe: opts.observe };
  return (request) => dispatch(router, request, onError, hooks);
}

/** What a node's RPC interface offers, served in the node's process or by frontend processes. */
export interface RpcFrontend {
  listen(host: string, port: number): Promise<{ host: string; port: number }>;
  setCertificate(key: string, cert: string): void;
  readonly openSessions: number;
  stats(): RpcServerStats;
  close(): Promise<void>;
}

export class RpcServer implements RpcFrontend {
  readonly #server: TlsServer;
  readonly #h2: http2.Http2Server;
  readonly #appProtocol: "HTTP1" | "HTTP2" | undefined;
  readonly #handler: RequestHandler;
  readonly #onSessionEnd: ((session: ClientSession) => void) | undefined;
  readonly #onError: HandlerErrorListener | undefined;
  /** Sockets accepted elsewhere (a node's listener) and handed over with their cap decided. */
  readonly #adopted = new WeakSet<Socket>();
  readonly #soft: number;
  readonly #maxBodySize: number;
  readonly #maxHeaderSize: number;
  readonly #maxHeadersCount: number;
  #nextSessionId = 1;
  /** Open TCP connections: CCF counts a session from the moment it is accepted. */
  readonly #sockets = new Set<Socket>();
  /** Remote address|port of sessions opened past the soft cap (node hands us the TCP socket first). */
  readonly #cappedPeers = new Set<string>();
  readonly #connections = new WeakMap<object, Connection>();
  readonly #h1Sockets = new Set<TLSSocket>();
  readonly #h2Sessions = new Set<http2.ServerHttp2Session>();
  #closed: Promise<void> | undefined;
  /** Set by close() while sessions remain: called when the last one goes. */
  #whenDrained: (() => void) | undefined;
  #peak = 0;
  readonly #errors = { parsing: 0, requestPayloadTooLarge: 0, requestHeaderTooLarge: 0 };

  constructor(opts: RpcServerOptions) {
    this.#handler = requestHandlerOf(opts);
    this.#onSessionEnd = opts.onSessionEnd;
    this.#onError = opts.onError;
    const limits = serverLimits(opts);
    this.#soft = limits.maxOpenSessionsSoft;
    const hard = limits.maxOpenSessionsHard;
    this.#maxBodySize = limits.maxBodySize;
    this.#maxHeaderSize = limits.maxHeaderSize;
    this.#maxHeadersCount = limits.maxHeadersCount;
    // The client certificate is asked for but not verified: as in CCF, callers are identified by
    // looking their certificate up, not by a CA.
    const tlsOptions = {
      key: opts.key,
      cert: opts.cert,
      requestCert: true,
      rejectUnauthorized: false,
    };
    this.#appProtocol = opts.appProtocol;
    // TLS is served here; an HTTP/2 session is handed to node's HTTP/2 server (not listening: it
    // only runs sessions), an HTTP/1.1 connection read by this class (#serveHttp1).
    const server = tls.createServer({
      ...tlsOptions,
      ALPNProtocols:
        opts.appProtocol === "HTTP1"
          ? ["http/1.1"]
          : opts.appProtocol === "HTTP2"
            ? ["h2"]
            : ["h2", "http/1.1"],
    });
    // node refuses connections past this before any TLS work, as CCF's hard cap does.
    server.maxConnections = hard;
    this.#server = server;
    const h2 = http2.createServer({
      // nghttp2 resets streams past these, but only once the client has acknowledged our
      // SETTINGS, and it measures the block compressed: the exact limits (431) are checked in
      // #onRequest, these twice-as-large ones only bound what an abusive client can make us hold.
      settings: {
        maxConcurrentStreams: MAX_CONCURRENT_STREAMS,
        maxHeaderListSize: 2 * this.#maxHeaderSize,
      },
      maxHeaderListPairs: 2 * this.#maxHeadersCount + H2_PSEUDO_HEADERS,
    });
    this.#h2 = h2;

    server.on("connection", this.#onConnection);
    server.on("secureConnection", this.#onSecureConnection);
    server.on("tlsClientError", (_err: Error, socket: TLSSocket) => socket.destroy());
    // Accept errors (EMFILE and the like) are transient: the server keeps listening.
    server.on("error", noop);
    h2.on("session", this.#onSession);
    h2.on("request", this.#onRequest);
    h2.on("checkContinue", this.#onCheckContinue);
    h2.on("unknownProtocol", (socket: TLSSocket) => socket.destroy());
    h2.on("sessionError", noop);
    h2.on("error", noop);
  }

  /** Starts listening; port 0 picks a free port. Resolves with the address actually bound. */
  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const server = this.#server;
      const onError = (err: Error) => reject(err);
      server.once("error", onError);
      server.listen({ host, port }, () => {
        server.removeListener("error", onError);
        const address = server.address() as AddressInfo;
        resolve({ host: address.address, port: address.port });
      });
    });
  }

  /**
   * Serves `cert` to connections made from now on (a node switches from its self-signed certificate
   * to the service-endorsed one once trusted); open sessions keep the one they began with.
   */
  setCertificate(key: string, cert: string): void {
    this.#server.setSecureContext({ key, cert });
  }

  /** Open sessions (TCP connections, including those still in the TLS handshake). */
  get openSessions(): number {
    return this.#sockets.size;
  }

  stats(): RpcServerStats {
    return { active: this.#sockets.size, peak: this.#peak, errors: { ...this.#errors } };
  }

  /**
   * Stops accepting, ends idle sessions at once and busy ones once their requests are answered,
   * and cuts whatever is left after a short grace period. Resolves when every session is gone.
   */
  close(): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    const serverClosed = new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
    });
    const drained = new Promise<void>((resolve) => {
      if (this.#sockets.size === 0) resolve();
      else this.#whenDrained = resolve;
    });
    const cut = setTimeout(() => {
      for (const session of this.#h2Sessions) session.destroy();
      for (const socket of this.#h1Sockets) socket.destroy();
      for (const socket of this.#sockets) socket.destroy();
    }, CLOSE_GRACE_MS);
    this.#closed = Promise.all([serverClosed, drained]).then(() => clearTimeout(cut));
    // GOAWAY only once a session is idle: some clients (undici 7) fail the requests still in flight
    // on a session that receives one, graceful or not. Busy ones are ended by #send.
    for (const session of this.#h2Sessions) {
      if ((this.#connections.get(session)?.inFlight ?? 0) === 0) session.close();
    }
    for (const socket of this.#h1Sockets) {
      if ((this.#connections.get(socket)?.inFlight ?? 0) === 0) socket.destroy();
    }
    return this.#closed;
  }

  /**
   * Serves a TCP connection accepted by someone else (a node handing it to its frontend process),
   * which decided whether it is past the soft session cap; the hard cap is theirs to apply.
   */
  adopt(socket: Socket, capped: boolean): void {
    this.#adopted.add(socket);
    this.#track(socket, capped);
    this.#server.emit("connection", socket);
  }

  #onConnection = (socket: Socket): void => {
    if (this.#adopted.has(socket)) return;
    this.#track(socket, this.#sockets.size >= this.#soft);
  };

  #track(socket: Socket, capped: boolean): void {
    // The error surfaces on the TLS socket wrapped around this one; this only keeps a stray
    // emit on the raw socket from being fatal.
    socket.on("error", noop);
    if (this.#closed !== undefined) {
      socket.destroy();
      return;
    }
    this.#sockets.add(socket);
    if (this.#sockets.size > this.#peak) this.#peak = this.#sockets.size;
    const key = capped ? peerKey(socket.remoteAddress, socket.remotePort) : undefined;
    if (key !== undefined) this.#cappedPeers.add(key);
    socket.once("close", () => {
      this.#sockets.delete(socket);
      if (key !== undefined) this.#cappedPeers.delete(key);
      if (this.#sockets.size === 0) this.#whenDrained?.();
    });
  }

  #onSecureConnection = (socket: TLSSocket): void => {
    socket.on("error", noop);
    if (this.#closed !== undefined) {
      socket.destroy();
      return;
    }
    const h2 = socket.alpnProtocol === "h2";
    // A client that named no protocol (or a wrong one) speaks HTTP/1.1.
    if (h2 ? this.#appProtocol === "HTTP1" : this.#appProtocol === "HTTP2") {
      socket.destroy();
      return;
    }
    if (h2) {
      this.#h2.emit("connection", socket);
      return;
    }
    this.#h1Sockets.add(socket);
    socket.once("close", () => this.#h1Sockets.delete(socket));
    this.#serveHttp1(socket);
  };

  #onSession = (session: http2.ServerHttp2Session): void => {
    session.on("error", noop);
    if (this.#closed !== undefined) {
      session.destroy();
      return;
    }
    this.#h2Sessions.add(session);
    session.once("close", () => this.#h2Sessions.delete(session));
  };

  // -------------------------------------------------------------------------------------------
  // HTTP/1.1

  /**
   * Reads the requests of an HTTP/1.1 connection one at a time: the next is read once the previous
   * one is answered (pipelined requests wait, unread past a bound), so answers go out in order.
   */
  #serveHttp1(socket: TLSSocket): void {
    socket.setNoDelay(true);
    const reader = new Http1Reader(this.#maxHeaderSize);
    /** Most bytes held unread while a request is served: one more whole request. */
    const holdLimit = this.#maxHeaderSize + this.#maxBodySize;
    let conn: Connection | undefined;
    /** The request being read (head parsed, body not complete). */
    let head: Http1Head | undefined;
    let chunks: Buffer[] = [];
    let size = 0;
    /** A request is with the handler. */
    let busy = false;
    /** Answered for the last time: what else arrives is dropped. */
    let ended = false;
    let timer: NodeJS.Timeout | undefined;
    const clearTimer = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    };
    const armTimer = (ms: number): void => {
      if (timer !== undefined) return;
      timer = setTimeout(() => {
        timer = undefined;
        if (busy || ended) return;
        // Node's answer to a request that is too slow to arrive.
        endWith(encodeHttp1Response(408, {}, NO_BODY, false, true));
      }, ms);
      timer.unref();
    };
    const endWith = (bytes: Buffer): void => {
      ended = true;
      clearTimer();
      if (head !== undefined && conn !== undefined) conn.inFlight--;
      head = undefined;
      if (!socket.destroyed) {
        socket.write(bytes);
        endLingering(socket);
      }
    };
    /** Refuses the request being read with `err` and closes the connection. */
    const refuse = (err: HttpError): void => {
      const out = errorResponse(err);
      endWith(encodeHttp1Response(out.status, out.headers, out.body, false, true));
    };
    const pump = (): void => {
      while (!busy && !ended) {
        if (head === undefined) {
          head = reader.readHead();
          if (head === undefined) {
            if (reader.buffered > 0) armTimer(HEAD_TIMEOUT_MS);
            return;
          }
          clearTimer();
          conn ??= this.#connectionOf(socket, socket, undefined);
          conn.inFlight++;
          chunks = [];
          size = 0;
          if (conn.capped) return refuse(HttpErrors.SessionCapExhausted(BUSY));
          if (head.count > this.#maxHeadersCount) {
            this.#errors.requestHeaderTooLarge++;
            return refuse(this.#tooManyHeaders());
          }
          if ((head.contentLength ?? 0) > this.#maxBodySize) return refuse(this.#bodyTooLarge());
          // A body that will be refused is not invited (above).
          if (head.expectContinue && (head.chunked || (head.contentLength ?? 0) > 0)) {
            socket.write(CONTINUE);
          }
        }
        const from = chunks.length;
        const complete = reader.readBody(chunks);
        for (let i = from; i < chunks.length; i++) size += chunks[i].length;
        // Content-Length was checked above; a chunked body is counted as it arrives.
        if (size > this.#maxBodySize) return refuse(this.#bodyTooLarge());
        if (!complete) {
          armTimer(REQUEST_TIMEOUT_MS);
          return;
        }
        clearTimer();
        const request = head;
        head = undefined;
        busy = true;
        const body =
          chunks.length === 0
            ? NO_BODY
            : chunks.length === 1
              ? ownBytes(chunks[0])
              : Buffer.concat(chunks, size);
        chunks = [];
        this.#serveRequest(socket, conn as Connection, request, body, answered);
      }
    };
    /** The answer to the request the handler had has been written (or the socket is gone). */
    const answered = (close: boolean): void => {
      busy = false;
      if (close) {
        ended = true;
        return;
      }
      if (socket.isPaused()) socket.resume();
      run();
    };
    const run = (): void => {
      try {
        pump();
      } catch (e) {
        if (e instanceof Http1ParseError) {
          if (e.status === 431) {
            this.#errors.requestHeaderTooLarge++;
            refuse(this.#headersTooLarge());
          } else {
            // CCF answers unparseable input with a plain-text 400 before closing.
            this.#errors.parsing++;
            endWith(
              encodeHttp1Response(
                400,
                { "content-type": "text/plain; charset=utf-8" },
                Buffer.from(
                  "Unable to parse data as a HTTP request. Error message is: HTTP parsing " +
                    `failed (${e.code}: ${e.reason})`,
                ),
                false,
                true,
              ),
            );
          }
        } else {
          // Only a bug can get here: lose the connection, not the server.
          ended = true;
          socket.destroy();
        }
      }
    };
    socket.on("data", (chunk: Buffer) => {
      if (ended) return;
      reader.feed(chunk);
      if (busy) {
        if (reader.buffered > holdLimit) socket.pause();
        return;
      }
      run();
    });
    socket.once("close", () => {
      clearTimer();
      // A request cut short is never answered (nor dispatched): stop counting it.
      if (head !== undefined && conn !== undefined && !ended) conn.inFlight--;
      head = undefined;
      ended = true;
    });
  }

  /**
   * Hands a complete HTTP/1.1 request to the handler and writes its answer, then calls `answered`
   * (with whether the connection is closing) so the session reads the next request.
   */
  #serveRequest(
    socket: TLSSocket,
    conn: Connection,
    head: Http1Head,
    body: Buffer,
    answered: (close: boolean) => void,
  ): void {
    const target = head.target;
    const request = this.#endpointRequest(
      head.method,
      target,
      head.headers,
      body,
      conn,
      head.version,
      head.headers.host,
    );
    const out = this.#handler(request);
    if (out instanceof Promise) {
      // dispatch never rejects; the catch keeps a bug in #sendHttp1 from becoming a fatal rejection.
      out
        .then((r) => this.#sendHttp1(socket, conn, head, r, answered))
        .catch((err: unknown) => {
          this.#onError?.(err, request);
          socket.destroy();
        });
    } else {
      this.#sendHttp1(socket, conn, head, out, answered);
    }
  }

  #sendHttp1(
    socket: TLSSocket,
    conn: Connection,
    head: Http1Head,
    out: RpcResponse,
    answered: (close: boolean) => void,
  ): void {
    conn.inFlight--;
    const close = this.#closed !== undefined || out.closeSession === true || !head.keepAlive;
    if (socket.destroyed) {
      answered(true);
      return;
    }
    let bytes: Buffer;
    const isHead = head.method === "HEAD";
    try {
      bytes = encodeHttp1Response(out.status, out.headers, out.body, isHead, close);
    } catch (e) {
      const err = errorResponse(HttpErrors.InternalError(String((e as Error).message)));
      bytes = encodeHttp1Response(err.status, err.headers, err.body, isHead, close);
    }
    socket.write(bytes);
    // SessionConsistencyLost (closeSession), HTTP/1.0 or `connection: close`, or the server closing.
    if (close) endLingering(socket);
    answered(close);
  }

  // -------------------------------------------------------------------------------------------
  // HTTP/2

  #onCheckContinue = (req: Request, res: Response): void => {
    // A body that will be refused is not invited.
    const length = req.headers["content-length"];
    if (!(length !== undefined && Number(length) > this.#maxBodySize)) res.writeContinue();
    this.#onRequest(req, res);
  };

  #onRequest = (req: Request, res: Response): void => {
    try {
      this.#handle(req, res);
    } catch {
      // Only a bug here can throw (a reset is reported, not thrown): lose the request, not the server.
      req.stream.destroy();
    }
  };

  #handle(req: Request, res: Response): void {
    // A stream on this server belongs to a server session.
    const session = req.stream.session as http2.ServerHttp2Session | undefined;
    if (session === undefined) return;
    const conn = this.#connectionOf(session, session.socket as TLSSocket, session);
    conn.inFlight++;
    if (conn.capped) {
      this.#refuse(req, res, conn, HttpErrors.SessionCapExhausted(BUSY), true);
      return;
    }
    const headerError = this.#h2HeaderError(req.rawHeaders);
    if (headerError !== undefined) {
      this.#errors.requestHeaderTooLarge++;
      this.#refuse(req, res, conn, headerError, false);
      return;
    }
    const length = req.headers["content-length"];
    if (length !== undefined && Number(length) > this.#maxBodySize) {
      this.#refuse(req, res, conn, this.#bodyTooLarge(), false);
      return;
    }
    if (req.stream.endAfterHeaders) {
      this.#serve(req, res, conn, NO_BODY);
      return;
    }
    // Content-Length may be absent or lie: count what actually arrives.
    const chunks: Buffer[] = [];
    let size = 0;
    /** Refused, dispatched or abandoned: each request is settled once. */
    let settled = false;
    const abandon = (): void => {
      if (settled) return;
      settled = true;
      conn.inFlight--;
      if (this.#closed !== undefined && conn.inFlight === 0) conn.session?.close();
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > this.#maxBodySize) {
        settled = true;
        req.removeListener("data", onData);
        this.#refuse(req, res, conn, this.#bodyTooLarge(), false);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      if (settled) return;
      // node's HTTP/2 layer also ends the body of a stream that was reset or lost mid-upload: that
      // body is truncated and must never reach a handler.
      if (req.aborted) {
        abandon();
        return;
      }
      settled = true;
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
      this.#serve(req, res, conn, body);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    // A client that gives up mid-upload is never answered: stop counting its request.
    req.once("close", abandon);
  }

  #h2HeaderError(raw: string[]): HttpError | undefined {
    let size = 0;
    let count = 0;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i];
      size += name.length + raw[i + 1].length;
      if (name.charCodeAt(0) !== 58 /* ':' */) count++;
    }
    if (count > this.#maxHeadersCount) return this.#tooManyHeaders();
    if (size > this.#maxHeaderSize) return this.#headersTooLarge();
    return undefined;
  }

  #tooManyHeaders(): HttpError {
    return HttpErrors.RequestHeaderTooLarge(
      `Too many headers (max number allowed: ${this.#maxHeadersCount})`,
    );
  }

  #headersTooLarge(): HttpError {
    return HttpErrors.RequestHeaderTooLarge(
      `Request headers are too large (max size allowed: ${this.#maxHeaderSize})`,
    );
  }

  #bodyTooLarge(): HttpError {
    this.#errors.requestPayloadTooLarge++;
    return HttpErrors.RequestBodyTooLarge(
      `HTTP request body is too large (max size allowed: ${this.#maxBodySize})`,
    );
  }

  /** The session state of an HTTP/1.1 socket or HTTP/2 session, made at its first request. */
  #connectionOf(
    owner: TLSSocket | http2.ServerHttp2Session,
    socket: TLSSocket,
    session: http2.ServerHttp2Session | undefined,
  ): Connection {
    let conn = this.#connections.get(owner);
    if (conn === undefined) {
      conn = {
        cert: peerCertificate(socket),
        inFlight: 0,
        capped:
          this.#cappedPeers.size > 0 &&
          this.#cappedPeers.has(peerKey(socket.remoteAddress, socket.remotePort)),
        session,
        client: { id: this.#nextSessionId++ },
      };
      this.#connections.set(owner, conn);
      const onSessionEnd = this.#onSessionEnd;
      if (onSessionEnd !== undefined) {
        const client = conn.client;
        owner.once("close", () => onSessionEnd(client));
      }
    }
    return conn;
  }

  /** The request the handler sees, from either protocol. */
  #endpointRequest(
    method: string,
    url: string,
    headers: Record<string, string | string[] | undefined>,
    body: Buffer,
    conn: Connection,
    httpVersion: string,
    host: string | string[] | undefined,
  ): EndpointRequest {
    let path = url;
    let query = "";
    const q = url.indexOf("?");
    if (q !== -1) {
      path = url.slice(0, q);
      query = url.slice(q + 1);
      const fragment = query.indexOf("#");
      if (fragment !== -1) query = query.slice(0, fragment);
    }
    const setCookie = headers["set-cookie"];
    // node keeps a repeated set-cookie as an array; every other repeat is already joined.
    if (Array.isArray(setCookie)) headers["set-cookie"] = setCookie.join(", ");
    return {
      method,
      path,
      query,
      params: {},
      // Only set-cookie could have been an array, and it is joined above.
      headers: headers as Record<string, string>,
      body,
      clientCert: conn.cert,
      httpVersion,
      hostname: hostnameOf(host),
      session: conn.client,
    };
  }

  #serve(req: Request, res: Response, conn: Connection, body: Buffer): void {
    const headers = req.headers;
    const request = this.#endpointRequest(
      req.method ?? "",
      req.url ?? "/",
      headers,
      body,
      conn,
      req.httpVersion,
      headers[":authority"] ?? headers.host,
    );
    const out = this.#handler(request);
    if (out instanceof Promise) {
      // dispatch never rejects; the catch keeps a bug in #send from becoming a fatal rejection.
      out
        .then((r) => this.#send(res, conn, r))
        .catch((err: unknown) => this.#onError?.(err, request));
    } else {
      this.#send(res, conn, out);
    }
  }

  /**
   * Answers with `err`, then ends the session (`endSession`) or just the stream, reading and
   * dropping the rest of its upload.
   */
  #refuse(
    req: Request,
    res: Response,
    conn: Connection,
    err: HttpError,
    endSession: boolean,
  ): void {
    this.#send(res, conn, errorResponse(err));
    const stream = req.stream;
    if (endSession) {
      afterStream(stream, () => conn.session?.close());
      return;
    }
    // RFC 9113 8.1 lets us reset the stream now, but undici 7 then fails the request (its upload is
    // cut short) instead of reporting our answer: read and drop what is still coming, without
    // keeping it, and reset only a client that keeps sending well past the limit.
    const drainLimit = Math.max(this.#maxBodySize, MIN_DRAIN_BYTES);
    let drained = 0;
    const drop = (chunk: Buffer): void => {
      drained += chunk.length;
      if (drained > drainLimit) {
        req.removeListener("data", drop);
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
      }
    };
    req.on("data", drop);
    req.resume();
  }

  #send(res: Response, conn: Connection, out: RpcResponse): void {
    conn.inFlight--;
    const closing = this.#closed !== undefined;
    try {
      res.writeHead(out.status, out.headers);
      res.end(out.body);
    } catch {
      // The stream was reset or the socket closed while the handler ran: nobody is left to answer.
    }
    if (out.closeSession === true) {
      // The session lost its consistency guarantee: no later request may run on it; ended once
      // this stream has delivered the answer.
      afterStream(res.stream, () => conn.session?.close());
      return;
    }
    if (closing) {
      afterStream(res.stream, () => {
        if (conn.inFlight === 0) conn.session?.close();
      });
    }
  }
}
