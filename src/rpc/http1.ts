// HTTP/1.1 requests read off a connection's bytes (RFC 9112) and responses written back, for the
// RPC server's HTTP/1.1 sessions. Node's own HTTP/1.1 server (IncomingMessage, ServerResponse and
// their streams around llhttp) cost ~30 µs of CPU per request more than this on a busy node
// (measured: a hello-world HTTPS server answers at 78 µs of CPU per request with node:https, 47 µs
// with a reader like this one), a third of a frontend process's work. What it checks follows
// llhttp's strict mode as node runs it: CRLF line ends, token methods and header names, no control
// characters in values, no obsolete line folding, a single valid Content-Length, Transfer-Encoding
// ending in chunked and never beside Content-Length (request smuggling), a size limit on the head.
// Parse errors carry llhttp's error names, which CCF quotes in its 400 answer.

import { STATUS_CODES } from "node:http";

/** A request the reader cannot accept: answered (`status`) and the connection closed. */
export class Http1ParseError extends Error {
  constructor(
    /** llhttp's name for the error (HPE_...). */
    readonly code: string,
    readonly reason: string,
    /** 400, or 431 for a head over the size limit. */
    readonly status = 400,
  ) {
    super(`${code}: ${reason}`);
  }
}

export interface Http1Head {
  method: string;
  /** The request target as sent (path and query, or absolute form). */
  target: string;
  /** "1.1" or "1.0". */
  version: string;
  /** Lower-case names; repeats combined as node combines them (see `addHeader`). */
  headers: Record<string, string>;
  /** Header lines in the head (for the count limit). */
  count: number;
  /** The body's length when it is given by Content-Length (0 when there is no body). */
  contentLength: number | undefined;
  /** The body comes in chunks (Transfer-Encoding ending in chunked). */
  chunked: boolean;
  /** The connection may carry another request after this one's answer. */
  keepAlive: boolean;
  /** The client waits for 100 Continue before sending the body. */
  expectContinue: boolean;
}

const EMPTY = Buffer.alloc(0);
const CRLF = 0x0a0d; // "\r\n" read as a little-endian u16
/** Longest chunk-size line (with extensions) and longest block of trailers accepted. */
const MAX_CHUNK_LINE = 4096;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const TARGET = /^[\x21-\x7e\x80-\xff]+$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const HEX = /^[0-9A-Fa-f]{1,15}$/;

/**
 * Headers node keeps only the first of when repeated (`IncomingMessage`'s `matchKnownFields`);
 * every other repeat is joined with ", ", cookie with "; ".
 */
const FIRST_ONLY = new Set([
  "age",
  "authorization",
  "content-length",
  "content-type",
  "etag",
  "expires",
  "from",
  "host",
  "if-modified-since",
  "if-unmodified-since",
  "last-modified",
  "location",
  "max-forwards",
  "proxy-authorization",
  "referer",
  "retry-after",
  "server",
  "user-agent",
]);

function addHeader(headers: Record<string, string>, name: string, value: string): void {
  const prior = headers[name];
  if (prior === undefined) headers[name] = value;
  else if (FIRST_ONLY.has(name)) return;
  else headers[name] = `${prior}${name === "cookie" ? "; " : ", "}${value}`;
}

function hasToken(list: string | undefined, token: string): boolean {
  if (list === undefined) return false;
  for (const t of list.split(",")) if (t.trim().toLowerCase() === token) return true;
  return false;
}

type BodyState =
  | { kind: "none" }
  | { kind: "length"; remaining: number }
  | { kind: "chunk-size" }
  | { kind: "chunk-data"; remaining: number }
  | { kind: "chunk-end" }
  | { kind: "trailers"; bytes: number };

/**
 * Reads requests from a connection's bytes, one at a time: `readHead`, then `readBody` until it
 * says the body is done, then `readHead` again for the next (pipelined) request.
 */
export class Http1Reader {
  private buf: Buffer = EMPTY;
  /**
   * Room `buf` grows into (its own memory, `buf` a view of it): input that arrives a few bytes at a
   * time is appended in place, not copied whole at each arrival.
   */
  private backing: Buffer | undefined;
  /** Where the search for the end of the head resumes (bytes before it were searched). */
  private scanned = 0;
  private body: BodyState = { kind: "none" };

  constructor(private readonly maxHeadBytes: number) {}

  /** Bytes received and not yet read. */
  get buffered(): number {
    return this.buf.length;
  }

  feed(chunk: Buffer): void {
    const buf = this.buf;
    if (buf.length === 0) {
      this.buf = chunk;
      return;
    }
    const size = buf.length + chunk.length;
    const backing = this.backing;
    if (backing !== undefined && buf.buffer === backing.buffer) {
      const at = buf.byteOffset - backing.byteOffset;
      if (at + size <= backing.length) {
        chunk.copy(backing, at + buf.length);
        this.buf = backing.subarray(at, at + size);
        return;
      }
    }
    // Never from node's shared pool (4 KiB and up): `buffer` identifies this memory as ours.
    const grown = Buffer.allocUnsafe(Math.max(2 * size, 4096));
    buf.copy(grown, 0);
    chunk.copy(grown, buf.length);
    this.backing = grown;
    this.buf = grown.subarray(0, size);
  }

  /**
   * The next request's head once all of it has arrived, else undefined. Throws Http1ParseError for
   * a head that is not a valid request or is larger than the limit.
   */
  readHead(): Http1Head | undefined {
    // Empty lines before a request line are ignored (RFC 9112 2.2).
    while (this.buf.length >= 2 && this.buf.readUInt16LE(0) === CRLF) {
      this.buf = this.buf.subarray(2);
      this.scanned = 0;
    }
    const end = this.buf.indexOf("\r\n\r\n", Math.max(0, this.scanned - 3), "latin1");
    // A line ended by a bare LF is refused at once, not waited on until the head times out.
    for (
      let lf = this.buf.indexOf(0x0a, this.scanned);
      lf !== -1 && (end === -1 || lf < end);
      lf = this.buf.indexOf(0x0a, lf + 1)
    ) {
      if (lf === 0 || this.buf[lf - 1] !== 0x0d) {
        throw new Http1ParseError("HPE_CR_EXPECTED", "Missing expected CR after line");
      }
    }
    if (end === -1) {
      this.scanned = this.buf.length;
      if (this.buf.length > this.maxHeadBytes) throw headerOverflow();
      return undefined;
    }
    if (end + 4 > this.maxHeadBytes) throw headerOverflow();
    const text = this.buf.toString("latin1", 0, end);
    this.buf = this.buf.subarray(end + 4);
    this.scanned = 0;
    const head = parseHead(text);
    this.body = head.chunked
      ? { kind: "chunk-size" }
      : head.contentLength !== undefined && head.contentLength > 0
        ? { kind: "length", remaining: head.contentLength }
        : { kind: "none" };
    return head;
  }

  /**
   * The body bytes of the current request that have arrived (pushed to `into`), and whether the
   * body is complete. Throws Http1ParseError for malformed chunked framing.
   */
  readBody(into: Buffer[]): boolean {
    for (;;) {
      const s = this.body;
      switch (s.kind) {
        case "none":
          return true;
        case "length":
        case "chunk-data": {
          if (this.buf.length === 0) return false;
          const n = Math.min(s.remaining, this.buf.length);
          into.push(n === this.buf.length ? this.buf : this.buf.subarray(0, n));
          this.buf = n === this.buf.length ? EMPTY : this.buf.subarray(n);
          s.remaining -= n;
          if (s.remaining > 0) return false;
          this.body = s.kind === "length" ? { kind: "none" } : { kind: "chunk-end" };
          break;
        }
        case "chunk-end": {
          if (this.buf.length < 2) return false;
          if (this.buf.readUInt16LE(0) !== CRLF) {
            throw new Http1ParseError("HPE_STRICT", "Expected LF after chunk data");
          }
          this.buf = this.buf.subarray(2);
          this.body = { kind: "chunk-size" };
          break;
        }
        case "chunk-size": {
          const line = this.takeLine(MAX_CHUNK_LINE, "chunk size");
          if (line === undefined) return false;
          const semi = line.indexOf(";");
          const digits = (semi === -1 ? line : line.slice(0, semi)).trimEnd();
          if (!HEX.test(digits)) {
            throw new Http1ParseError("HPE_INVALID_CHUNK_SIZE", "Invalid character in chunk size");
          }
          if (semi !== -1 && BAD_VALUE.test(line.slice(semi))) {
            throw new Http1ParseError("HPE_STRICT", "Invalid character in chunk extensions");
          }
          const size = Number.parseInt(digits, 16);
          this.body =
            size === 0 ? { kind: "trailers", bytes: 0 } : { kind: "chunk-data", remaining: size };
          break;
        }
        case "trailers": {
          const line = this.takeLine(MAX_CHUNK_LINE - s.bytes, "trailers");
          if (line === undefined) return false;
          if (line === "") {
            this.body = { kind: "none" };
            return true;
          }
          // Trailer fields are read and dropped, as node leaves them out of the headers.
          if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:/.test(line) || BAD_VALUE.test(line)) {
            throw new Http1ParseError("HPE_INVALID_HEADER_TOKEN", "Invalid header token");
          }
          s.bytes += line.length + 2;
          break;
        }
      }
    }
  }

  /** A CRLF-ended line without its CRLF, undefined until it has arrived. */
  private takeLine(max: number, what: string): string | undefined {
    const end = this.buf.indexOf("\r\n", 0, "latin1");
    if (end === -1) {
      if (this.buf.length > max)
        throw new Http1ParseError("HPE_STRICT", `Line of ${what} too long`);
      return undefined;
    }
    if (end > max) throw new Http1ParseError("HPE_STRICT", `Line of ${what} too long`);
    const line = this.buf.toString("latin1", 0, end);
    this.buf = this.buf.subarray(end + 2);
    if (line.includes("\n") || line.includes("\r")) {
      throw new Http1ParseError("HPE_CR_EXPECTED", "Missing expected CR after line");
    }
    return line;
  }
}

function headerOverflow(): Http1ParseError {
  return new Http1ParseError("HPE_HEADER_OVERFLOW", "Header overflow", 431);
}

function parseHead(text: string): Http1Head {
  const lines = text.split("\r\n");
  const requestLine = lines[0];
  const sp1 = requestLine.indexOf(" ");
  const sp2 = requestLine.indexOf(" ", sp1 + 1);
  const method = sp1 === -1 ? requestLine : requestLine.slice(0, sp1);
  if (sp1 === -1 || !TOKEN.test(method)) {
    throw new Http1ParseError("HPE_INVALID_METHOD", "Invalid method encountered");
  }
  const target = sp2 === -1 ? requestLine.slice(sp1 + 1) : requestLine.slice(sp1 + 1, sp2);
  if (!TARGET.test(target)) throw new Http1ParseError("HPE_INVALID_URL", "Invalid URL");
  const protocol = sp2 === -1 ? "" : requestLine.slice(sp2 + 1);
  if (protocol !== "HTTP/1.1" && protocol !== "HTTP/1.0") {
    throw new Http1ParseError("HPE_INVALID_VERSION", "Invalid HTTP version");
  }
  const version = protocol === "HTTP/1.1" ? "1.1" : "1.0";
  const headers: Record<string, string> = {};
  let contentLengths = 0;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(":");
    const name = colon === -1 ? "" : line.slice(0, colon);
    if (!TOKEN.test(name)) {
      // Also an obsolete folded line (starting with a space), or a bare CR or LF in the head.
      throw new Http1ParseError("HPE_INVALID_HEADER_TOKEN", "Invalid header token");
    }
    const value = line.slice(colon + 1).trim();
    if (BAD_VALUE.test(value)) {
      throw new Http1ParseError("HPE_INVALID_HEADER_TOKEN", "Invalid header value char");
    }
    const lower = name.toLowerCase();
    if (lower === "content-length") contentLengths++;
    addHeader(headers, lower, value);
  }
  let contentLength: number | undefined;
  const te = headers["transfer-encoding"];
  const cl = headers["content-length"];
  if (cl !== undefined) {
    if (contentLengths > 1) {
      throw new Http1ParseError("HPE_UNEXPECTED_CONTENT_LENGTH", "Duplicate Content-Length");
    }
    if (!/^\d{1,15}$/.test(cl)) {
      throw new Http1ParseError(
        "HPE_INVALID_CONTENT_LENGTH",
        "Invalid character in Content-Length",
      );
    }
    contentLength = Number(cl);
  }
  let chunked = false;
  if (te !== undefined) {
    if (cl !== undefined) {
      throw new Http1ParseError(
        "HPE_UNEXPECTED_CONTENT_LENGTH",
        "Transfer-Encoding can't be present with Content-Length",
      );
    }
    const codings = te.split(",");
    if (codings[codings.length - 1].trim().toLowerCase() !== "chunked") {
      throw new Http1ParseError(
        "HPE_INVALID_TRANSFER_ENCODING",
        "Request has invalid `Transfer-Encoding`",
      );
    }
    chunked = true;
  }
  const connection = headers.connection;
  const keepAlive =
    version === "1.1" ? !hasToken(connection, "close") : hasToken(connection, "keep-alive");
  const expect = headers.expect;
  return {
    method,
    target,
    version,
    headers,
    count: lines.length - 1,
    contentLength,
    chunked,
    keepAlive,
    expectContinue:
      version === "1.1" && expect !== undefined && expect.toLowerCase() === "100-continue",
  };
}

/** Statuses whose responses never have a body (RFC 9110 6.4.1). */
function bodyless(status: number): boolean {
  return status < 200 || status === 204 || status === 304;
}

/** A response header that cannot be written (a name that is not a token, a control character). */
export class Http1HeaderError extends Error {}

/**
 * A response's bytes: status line, `headers` (plus Content-Length, unless the status has no body,
 * and `connection: close` in place of any Connection header when `close`), then `body` unless the
 * request was HEAD. Throws Http1HeaderError for a header node would also refuse to write.
 */
export function encodeHttp1Response(
  status: number,
  headers: Readonly<Record<string, string>>,
  body: Buffer,
  head: boolean,
  close: boolean,
): Buffer {
  let text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Unknown"}\r\n`;
  let hasLength = false;
  for (const name in headers) {
    const value = String(headers[name]);
    if (!TOKEN.test(name) || BAD_VALUE.test(value)) {
      throw new Http1HeaderError(`invalid response header ${JSON.stringify(name)}`);
    }
    const lower = name.toLowerCase();
    if (lower === "content-length") hasLength = true;
    else if (lower === "connection" && close) continue;
    text += `${name}: ${value}\r\n`;
  }
  const noBody = bodyless(status);
  if (!hasLength && !noBody) text += `content-length: ${body.length}\r\n`;
  if (close) text += "connection: close\r\n";
  text += "\r\n";
  const withBody = !head && !noBody && body.length > 0;
  const headBytes = text.length;
  const out = Buffer.allocUnsafe(headBytes + (withBody ? body.length : 0));
  out.write(text, 0, "latin1");
  if (withBody) body.copy(out, headBytes);
  return out;
}

/** The interim answer inviting the body of a request that sent `Expect: 100-continue`. */
export const CONTINUE = Buffer.from("HTTP/1.1 100 Continue\r\n\r\n", "latin1");
