// The benchmarks' load generator: a small HTTP/1.1 client over `node:tls` (or `node:net`) with
// keep-alive connections and optional pipelining.
//
// Why not undici: the load generator shares the machine's two cores with the servers it measures,
// so what it spends is taken from them. undici's `dispatch` cost ~25-28 µs of CPU per request
// in `bench app`'s load (its `request` ~30); this client ~16-17.5, and one node served ~30 % more
// reads under it (bench/RESULTS.md, fourteenth session).
// Every benchmark (ccf-ts, etcd, the hello-world ceiling) uses it, so comparisons stay like for
// like. It speaks only what the benchmarks need: requests with a string body, responses framed
// by Content-Length or chunked, answered in order on each connection.

import type { IncomingHttpHeaders } from "node:http";
import { connect as connectTcp, type Socket } from "node:net";
import { connect as connectTls } from "node:tls";

export interface BenchRequest {
  method: "GET" | "PUT" | "POST";
  path: string;
  body?: string;
  headers?: Record<string, string>;
}

export interface BenchReply {
  status: number;
  /** Lower-case header names; a repeated header's values joined by ", ". */
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface BenchClientOptions {
  /** Keep-alive connections opened as requests need them (default 1). */
  connections?: number;
  /** Requests in flight on one connection (default 1: a request waits for the previous answer). */
  pipelining?: number;
  /** TLS (for https: bases): trusted CA, client certificate and key. */
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Skip the server certificate check (the hello-world server's self-signed certificate). */
  insecure?: boolean;
}

interface Pending {
  head: string;
  body: string;
  resolve: (reply: BenchReply) => void;
  reject: (error: Error) => void;
}

/** The most bytes a response head may take before the connection is given up as broken. */
const MAX_HEAD_BYTES = 64 * 1024;
const EMPTY = Buffer.alloc(0);

/** Reads one response at a time from a connection's bytes; `feed` returns those it completed. */
class ResponseReader {
  private buffered: Buffer = EMPTY;
  private status = 0;
  private headers: IncomingHttpHeaders = {};
  /** Body bytes still expected (Content-Length framing), or -1 while reading the head. */
  private remaining = -1;
  private chunked = false;
  private parts: Buffer[] = [];

  feed(data: Buffer, done: (reply: BenchReply) => void): void {
    this.buffered = this.buffered.length === 0 ? data : Buffer.concat([this.buffered, data]);
    let at = 0;
    for (;;) {
      if (this.remaining === -1) {
        const end = this.buffered.indexOf("\r\n\r\n", at);
        if (end === -1) {
          if (this.buffered.length - at > MAX_HEAD_BYTES)
            throw new Error("response head larger than 64 KiB");
          break;
        }
        const hasBody = this.readHead(this.buffered.toString("latin1", at, end));
        at = end + 4;
        if (!hasBody) {
          done(this.finish());
          continue;
        }
      }
      if (this.chunked) {
        at = this.readChunk(at);
        if (this.remaining !== -1) break;
        done(this.finish());
        continue;
      }
      const take = Math.min(this.remaining, this.buffered.length - at);
      if (take > 0) this.parts.push(this.buffered.subarray(at, at + take));
      at += take;
      this.remaining -= take;
      if (this.remaining > 0) break;
      done(this.finish());
    }
    this.buffered = at >= this.buffered.length ? EMPTY : this.buffered.subarray(at);
  }

  /** Reads a response head; false if the response has no body. */
  private readHead(head: string): boolean {
    const lines = head.split("\r\n");
    const statusLine = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
    if (statusLine === null) throw new Error(`not an HTTP/1.1 response: ${lines[0]}`);
    this.status = Number(statusLine[1]);
    const headers: Record<string, string> = {};
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i] ?? "";
      const colon = line.indexOf(":");
      if (colon <= 0) throw new Error(`malformed response header: ${line}`);
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    }
    this.headers = headers;
    this.chunked = /\bchunked\b/i.test(headers["transfer-encoding"] ?? "");
    if (this.status === 204 || this.status === 304) {
      this.chunked = false;
      this.remaining = 0;
      return false;
    }
    if (this.chunked) {
      this.remaining = 0;
    } else {
      const length = headers["content-length"];
      if (length === undefined || !/^\d+$/.test(length))
        throw new Error("response without Content-Length (reading to close is not supported)");
      this.remaining = Number(length);
    }
    return true;
  }

  /**
   * Reads chunked body data from `at`; returns how far it read, having read all it could. Leaves
   * `remaining` at -1 once the last chunk and its trailers are read. `remaining`:
   * > 0 data bytes still to come, -2 the CRLF after a chunk's data, 0 a chunk-size line.
   */
  private readChunk(at: number): number {
    const buf = this.buffered;
    for (;;) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, buf.length - at);
        if (take === 0) return at;
        this.parts.push(buf.subarray(at, at + take));
        at += take;
        this.remaining -= take;
        if (this.remaining > 0) return at;
        this.remaining = -2;
      }
      if (this.remaining === -2) {
        if (buf.length - at < 2) return at;
        at += 2;
        this.remaining = 0;
      }
      const eol = buf.indexOf("\r\n", at);
      if (eol === -1) return at;
      const size = Number.parseInt(buf.toString("latin1", at, eol), 16);
      if (!Number.isFinite(size) || size < 0) throw new Error("malformed chunk size");
      if (size === 0) {
        // "0\r\n", trailers if any, then an empty line
        const end = buf.indexOf("\r\n\r\n", eol);
        if (end === -1) return at;
        this.remaining = -1;
        return end + 4;
      }
      at = eol + 2;
      this.remaining = size;
    }
  }

  private finish(): BenchReply {
    const body =
      this.parts.length === 0
        ? EMPTY
        : this.parts.length === 1
          ? Buffer.from(this.parts[0] ?? EMPTY)
          : Buffer.concat(this.parts);
    const reply = { status: this.status, headers: this.headers, body };
    this.parts = [];
    this.remaining = -1;
    this.chunked = false;
    return reply;
  }

  /** True when no response is partly read. */
  get idle(): boolean {
    return this.remaining === -1 && this.buffered.length === 0;
  }
}

/** One keep-alive connection: requests written in order, answers matched to them in order. */
class Connection {
  readonly inFlight: Pending[] = [];
  /** Whether the client has it in its list of idle connections. */
  listedIdle = false;
  private outbox: string[] = [];
  private flushing = false;
  private broken: Error | undefined;
  private readonly socket: Socket;
  private readonly reader = new ResponseReader();

  constructor(url: URL, options: BenchClientOptions, onSettled: (c: Connection) => void) {
    const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
    const host = url.hostname.replace(/^\[|\]$/g, "");
    this.socket =
      url.protocol === "https:"
        ? connectTls({
            host,
            port,
            ca: options.ca,
            cert: options.cert,
            key: options.key,
            rejectUnauthorized: options.insecure !== true,
          })
        : connectTcp({ host, port });
    this.socket.setNoDelay(true);
    this.socket.on("data", (data: Buffer) => {
      try {
        this.reader.feed(data, (reply) => {
          const p = this.inFlight.shift();
          if (p === undefined) throw new Error("a response nobody asked for");
          p.resolve(reply);
          if (reply.headers.connection?.toLowerCase() === "close") this.fail(new Error("closed"));
        });
      } catch (e) {
        this.fail(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      onSettled(this);
    });
    this.socket.on("error", (e) => this.fail(e));
    this.socket.on("close", () => {
      this.fail(new Error("connection closed by the server"));
      onSettled(this);
    });
  }

  get usable(): boolean {
    return this.broken === undefined;
  }

  send(p: Pending): void {
    this.inFlight.push(p);
    this.outbox.push(p.head, p.body);
    // Requests sent in the same turn (answers arriving together, each sending the next) leave in
    // one write.
    if (!this.flushing) {
      this.flushing = true;
      queueMicrotask(() => {
        this.flushing = false;
        if (this.broken !== undefined) return;
        const out = this.outbox.join("");
        this.outbox = [];
        this.socket.write(out);
      });
    }
  }

  /** Fails what is in flight and gives the connection up. */
  fail(error: Error): void {
    this.broken ??= error;
    for (const p of this.inFlight.splice(0)) p.reject(error);
    this.outbox = [];
    this.socket.destroy();
  }

  close(): Promise<void> {
    if (this.socket.closed) {
      this.fail(new Error("BenchClient: closed"));
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.socket.once("close", () => resolve());
      this.fail(new Error("BenchClient: closed"));
    });
  }
}

/** Sends requests on up to `connections` keep-alive connections to one server. */
export class BenchClient {
  private readonly url: URL;
  private readonly connections: Connection[] = [];
  /** Connections with nothing in flight (a connection may be listed after it broke). */
  private readonly idle: Connection[] = [];
  private readonly waiting: Pending[] = [];
  private readonly maxConnections: number;
  private readonly pipelining: number;
  private closed = false;

  constructor(
    base: string,
    private readonly options: BenchClientOptions = {},
  ) {
    this.url = new URL(base);
    if (this.url.protocol !== "https:" && this.url.protocol !== "http:")
      throw new Error(`BenchClient: ${base} is not an http(s) URL`);
    this.maxConnections = Math.max(1, options.connections ?? 1);
    this.pipelining = Math.max(1, options.pipelining ?? 1);
  }

  /** Sends one request; resolves with the whole response, rejects if its connection fails. */
  send(req: BenchRequest): Promise<BenchReply> {
    if (this.closed) return Promise.reject(new Error("BenchClient: closed"));
    let head = `${req.method} ${req.path} HTTP/1.1\r\nhost: ${this.url.host}\r\n`;
    if (req.headers !== undefined)
      for (const [name, value] of Object.entries(req.headers)) head += `${name}: ${value}\r\n`;
    const body = req.body ?? "";
    if (body !== "" || req.method !== "GET")
      head += `content-length: ${Buffer.byteLength(body)}\r\n`;
    head += "\r\n";
    return new Promise((resolve, reject) => {
      const p: Pending = { head, body, resolve, reject };
      const c = this.pick();
      if (c === undefined) this.waiting.push(p);
      else c.send(p);
    });
  }

  /** Closes every connection; requests still waiting or in flight are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    const error = new Error("BenchClient: closed");
    for (const p of this.waiting.splice(0)) p.reject(error);
    await Promise.all(this.connections.splice(0).map((c) => c.close()));
  }

  /** A usable connection with room for one more request (opened if there may be more), or none. */
  private pick(): Connection | undefined {
    for (let c = this.idle.pop(); c !== undefined; c = this.idle.pop()) {
      c.listedIdle = false;
      if (c.usable) return c;
    }
    if (this.connections.length < this.maxConnections) {
      const c = new Connection(this.url, this.options, (settled) => this.settled(settled));
      this.connections.push(c);
      return c;
    }
    if (this.pipelining === 1) return undefined;
    let best: Connection | undefined;
    for (const c of this.connections)
      if (
        c.usable &&
        c.inFlight.length < this.pipelining &&
        (best === undefined || c.inFlight.length < best.inFlight.length)
      )
        best = c;
    return best;
  }

  /**
   * After a connection read answers or broke: forgets it if it broke, hands waiting requests to
   * it (or to others), and lists it as idle once nothing is in flight on it.
   */
  private settled(c: Connection): void {
    if (!c.usable) {
      const at = this.connections.indexOf(c);
      if (at !== -1) this.connections.splice(at, 1);
    }
    while (this.waiting.length > 0) {
      const target = c.usable && c.inFlight.length < this.pipelining ? c : this.pick();
      if (target === undefined) break;
      target.send(this.waiting.shift() as Pending);
    }
    if (c.usable && c.inFlight.length === 0 && !c.listedIdle) {
      c.listedIdle = true;
      this.idle.push(c);
    }
  }
}
