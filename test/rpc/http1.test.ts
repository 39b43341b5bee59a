// The HTTP/1.1 reader and response writer of the RPC server, on their own: what they accept, what
// they refuse (with llhttp's error names), and that input split anywhere reads the same.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  encodeHttp1Response,
  type Http1Head,
  Http1HeaderError,
  Http1ParseError,
  Http1Reader,
} from "../../src/rpc/http1.js";

interface Read {
  head: Http1Head;
  body: string;
}

/** Every request in `input`, fed in pieces of `step` bytes. */
function readAll(input: string, step = input.length, max = 16 * 1024): Read[] {
  const reader = new Http1Reader(max);
  const out: Read[] = [];
  let head: Http1Head | undefined;
  let chunks: Buffer[] = [];
  const bytes = Buffer.from(input, "latin1");
  for (let at = 0; at < bytes.length; at += step) {
    reader.feed(bytes.subarray(at, Math.min(bytes.length, at + step)));
    for (;;) {
      if (head === undefined) {
        head = reader.readHead();
        if (head === undefined) break;
        chunks = [];
      }
      if (!reader.readBody(chunks)) break;
      out.push({ head, body: Buffer.concat(chunks).toString("latin1") });
      head = undefined;
    }
  }
  return out;
}

function parseError(input: string, max?: number): Http1ParseError {
  try {
    readAll(input, input.length, max);
  } catch (e) {
    assert.ok(e instanceof Http1ParseError, String(e));
    return e;
  }
  assert.fail(`accepted ${JSON.stringify(input)}`);
}

const PIPELINE =
  "\r\nPUT /app/records/a?x=1 HTTP/1.1\r\nHost: n\r\nContent-Length: 5\r\nX-A: 1\r\nx-a:  2 \r\n" +
  "Cookie: c=1\r\ncookie: d=2\r\nUser-Agent: u1\r\nUser-Agent: u2\r\n\r\nhello" +
  "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n" +
  "3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nTrailer-A: t\r\n\r\n" +
  "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" +
  "GET /last HTTP/1.0\r\n\r\n" +
  "DELETE /x HTTP/1.1\r\nConnection: Upgrade, close\r\n\r\n";

describe("HTTP/1.1 reader", () => {
  it("reads pipelined requests the same whichever way the bytes are split", () => {
    const whole = readAll(PIPELINE);
    for (const step of [1, 2, 3, 7, 64])
      assert.deepEqual(readAll(PIPELINE, step), whole, `step ${step}`);
    assert.equal(whole.length, 5);
    const [put, post, get10, last, del] = whole;
    assert.equal(put.head.method, "PUT");
    assert.equal(put.head.target, "/app/records/a?x=1");
    assert.equal(put.head.version, "1.1");
    assert.equal(put.body, "hello");
    // Names lower-cased, repeats joined as node joins them (first only for user-agent).
    assert.deepEqual(put.head.headers, {
      host: "n",
      "content-length": "5",
      "x-a": "1, 2",
      cookie: "c=1; d=2",
      "user-agent": "u1",
    });
    assert.equal(put.head.count, 8);
    assert.equal(put.head.keepAlive, true);
    assert.equal(put.head.expectContinue, false);
    assert.equal(post.body, "abc0123456789");
    assert.equal(post.head.chunked, true);
    assert.equal(post.head.expectContinue, true);
    assert.equal(get10.head.keepAlive, true);
    assert.equal(get10.body, "");
    assert.equal(last.head.keepAlive, false);
    assert.equal(del.head.keepAlive, false);
  });

  it("keeps body bytes already read intact while later input is appended", () => {
    const big = `x-big: ${"b".repeat(10_000)}`;
    const input = Buffer.from(
      `POST /a HTTP/1.1\r\n${big}\r\ncontent-length: 6\r\n\r\nabcdef` +
        "POST /b HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n2\r\nxy\r\n1\r\nz\r\n0\r\n\r\n" +
        "GET /c HTTP/1.1\r\n\r\n",
      "latin1",
    );
    // Small steps: heads and chunk-size lines grow in place, and body bytes handed out are views
    // of that memory; every view must still hold its bytes once all the input is in.
    for (const step of [1, 2, 3, 5, 7]) {
      const reader = new Http1Reader(64 * 1024);
      const bodies: Buffer[][] = [];
      const bigs: number[] = [];
      let current: Buffer[] | undefined;
      for (let i = 0; i < input.length; i += step) {
        reader.feed(input.subarray(i, i + step));
        for (;;) {
          if (current === undefined) {
            const head = reader.readHead();
            if (head === undefined) break;
            bigs.push(head.headers["x-big"]?.length ?? 0);
            current = [];
          }
          if (!reader.readBody(current)) break;
          bodies.push(current);
          current = undefined;
        }
      }
      assert.deepEqual(
        bodies.map((b) => Buffer.concat(b).toString()),
        ["abcdef", "xyz", ""],
        `step ${step}`,
      );
      assert.deepEqual(bigs, [10_000, 0, 0]);
    }
  });

  it("refuses malformed requests with llhttp's error names", () => {
    const cases: Array<[string, string]> = [
      ["\x00\x01 garbage\r\n\r\n", "HPE_INVALID_METHOD"],
      ["GET\r\n\r\n", "HPE_INVALID_METHOD"],
      ["GET /a b HTTP/1.1\r\n\r\n", "HPE_INVALID_VERSION"],
      ["GET / HTTP/2.0\r\n\r\n", "HPE_INVALID_VERSION"],
      ["GET /\x01 HTTP/1.1\r\n\r\n", "HPE_INVALID_URL"],
      ["GET / HTTP/1.1\r\nbad name: v\r\n\r\n", "HPE_INVALID_HEADER_TOKEN"],
      ["GET / HTTP/1.1\r\nnocolon\r\n\r\n", "HPE_INVALID_HEADER_TOKEN"],
      ["GET / HTTP/1.1\r\na: 1\r\n folded\r\n\r\n", "HPE_INVALID_HEADER_TOKEN"],
      ["GET / HTTP/1.1\r\na: 1\nb: 2\r\n\r\n", "HPE_CR_EXPECTED"],
      ["GET / HTTP/1.1\nhost: x\n", "HPE_CR_EXPECTED"],
      ["GET / HTTP/1.1\r\na: x\x7fy\r\n\r\n", "HPE_INVALID_HEADER_TOKEN"],
      [
        "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        "HPE_UNEXPECTED_CONTENT_LENGTH",
      ],
      ["POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "HPE_INVALID_CONTENT_LENGTH"],
      ["POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", "HPE_INVALID_CONTENT_LENGTH"],
      [
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HPE_UNEXPECTED_CONTENT_LENGTH",
      ],
      [
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "HPE_INVALID_TRANSFER_ENCODING",
      ],
      ["POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "HPE_INVALID_CHUNK_SIZE"],
      ["POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", "HPE_STRICT"],
      ["POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n", "HPE_CR_EXPECTED"],
    ];
    for (const [input, code] of cases) {
      assert.equal(parseError(input).code, code, JSON.stringify(input));
    }
  });

  it("refuses a head over the size limit (431), ended or not", () => {
    const big = `GET / HTTP/1.1\r\nx: ${"a".repeat(200)}`;
    assert.equal(parseError(`${big}\r\n\r\n`, 100).status, 431);
    assert.equal(parseError(big, 100).status, 431);
    // At the limit, it is read.
    const exact = "GET / HTTP/1.1\r\n\r\n";
    assert.equal(readAll(exact, exact.length, exact.length).length, 1);
    assert.equal(parseError(exact, exact.length - 1).code, "HPE_HEADER_OVERFLOW");
  });
});

describe("HTTP/1.1 responses", () => {
  const text = (b: Buffer) => b.toString("latin1");

  it("adds Content-Length, and leaves the body out for HEAD and bodyless statuses", () => {
    const body = Buffer.from("héllo");
    assert.equal(
      text(encodeHttp1Response(200, { "content-type": "text/plain" }, body, false, false)),
      `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${text(body)}`,
    );
    assert.equal(
      text(encodeHttp1Response(200, {}, body, true, false)),
      `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n`,
    );
    assert.equal(
      text(encodeHttp1Response(204, { "x-ms-ccf-transaction-id": "2.3" }, body, false, false)),
      "HTTP/1.1 204 No Content\r\nx-ms-ccf-transaction-id: 2.3\r\n\r\n",
    );
  });

  it("says connection: close in place of any Connection header when closing", () => {
    assert.equal(
      text(encodeHttp1Response(503, { connection: "keep-alive" }, Buffer.alloc(0), false, true)),
      "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    );
  });

  it("refuses headers that would corrupt the response", () => {
    const bad: Array<Record<string, string>> = [
      { "x-bad": "a\r\nb" },
      { "bad name": "v" },
      { "x-wide": "\u0100" },
    ];
    for (const headers of bad) {
      assert.throws(
        () => encodeHttp1Response(200, headers, Buffer.alloc(0), false, false),
        Http1HeaderError,
      );
    }
  });
});
