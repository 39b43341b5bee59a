// Endpoints and the responses they must produce, shared by the inject and socket tests so that both
// paths are held to one contract.
import type { Endpoint, EndpointRequest } from "../../src/endpoints/types.js";
import { HttpError, HttpErrors } from "../../src/errors.js";

/** Endpoints under /t/..., one per behaviour of the response encoding and error mapping. */
/** Lets a test hold `/t/slow` in flight: it knows when the request arrived and decides when it ends. */
export interface SlowGate {
  arrived: Promise<void>;
  release(): void;
}

export function slowGate(): SlowGate & { markArrived(): void; released: Promise<void> } {
  let markArrived = () => {};
  let release = () => {};
  const arrived = new Promise<void>((r) => {
    markArrived = r;
  });
  const released = new Promise<void>((r) => {
    release = r;
  });
  return { arrived, released, markArrived: () => markArrived(), release: () => release() };
}

export function sampleEndpoints(gate?: ReturnType<typeof slowGate>): Endpoint[] {
  return [
    {
      method: "GET",
      path: "/t/json",
      handler: () => ({ status: 200, body: { hello: "world", n: 1 } }),
    },
    { method: "GET", path: "/t/text", handler: () => ({ status: 200, body: "héllo" }) },
    {
      method: "GET",
      path: "/t/binary",
      handler: () => ({ status: 200, body: Buffer.from([0, 1, 2, 255]) }),
    },
    {
      method: "GET",
      path: "/t/typed",
      handler: () => ({
        status: 201,
        headers: { "Content-Type": "application/cbor", "X-Custom": "yes" },
        body: Buffer.from([0xa0]),
      }),
    },
    { method: "GET", path: "/t/empty", handler: () => ({ status: 200 }) },
    { method: "GET", path: "/t/no-content", handler: () => ({ status: 204, body: "dropped" }) },
    {
      method: "POST",
      path: "/t/echo",
      handler: (req) => ({
        status: 200,
        headers: { "x-body-length": String(req.body.length) },
        body: req.body,
      }),
    },
    {
      method: "GET",
      path: "/t/items/{id}",
      handler: (req) => ({ status: 200, body: { id: req.params.id, query: req.query } }),
    },
    { method: "DELETE", path: "/t/items/{id}", handler: () => ({ status: 204 }) },
    {
      method: "GET",
      path: "/t/forbidden",
      handler: () => {
        throw HttpErrors.AuthorizationFailed("Not allowed.");
      },
    },
    {
      method: "GET",
      path: "/t/unauthenticated",
      handler: () =>
        Promise.reject(
          HttpErrors.InvalidAuthenticationInfo("Invalid authentication credentials.", [
            { auth_policy: "user_cert", code: "InvalidAuthenticationInfo", message: "no cert" },
          ]),
        ),
    },
    {
      method: "GET",
      path: "/t/retry",
      handler: () => {
        throw new HttpError(503, "NodeCannotHandleRequest", "Later.", {
          headers: { "Retry-After": "3" },
        });
      },
    },
    {
      method: "GET",
      path: "/t/throw",
      handler: () => {
        throw new Error("secret detail");
      },
    },
    {
      method: "GET",
      path: "/t/reject",
      handler: async () => {
        await new Promise((r) => setTimeout(r, 5));
        throw new Error("secret detail");
      },
    },
    { method: "GET", path: "/t/bad-status", handler: () => ({ status: 42 }) },
    { method: "GET", path: "/t/bigint", handler: () => ({ status: 200, body: { n: 10n } }) },
    {
      method: "GET",
      path: "/t/bad-header",
      handler: () => ({ status: 200, headers: { "x-bad": "a\r\nb" }, body: "x" }),
    },
    {
      method: "GET",
      path: "/t/slow",
      handler: async () => {
        if (gate === undefined) await new Promise((r) => setTimeout(r, 50));
        else {
          gate.markArrived();
          await gate.released;
        }
        return { status: 200, body: "slow" };
      },
    },
    {
      method: "GET",
      path: "/t/whoami",
      handler: (req: EndpointRequest) => ({
        status: 200,
        body: {
          method: req.method,
          path: req.path,
          query: req.query,
          httpVersion: req.httpVersion,
          hostname: req.hostname,
          cert: req.clientCert?.pem ?? null,
          derLength: req.clientCert?.der.length ?? null,
          userAgent: req.headers["user-agent"] ?? null,
          custom: req.headers["x-custom"] ?? null,
        },
      }),
    },
  ];
}

export interface Case {
  name: string;
  method: string;
  path: string;
  body?: string;
  status: number;
  /** Exact content-type, or undefined when there must be none. */
  contentType: string | undefined;
  /** Exact body text (latin1 for binary), or a JSON value compared structurally. */
  text?: string;
  json?: unknown;
  headers?: Record<string, string>;
  /** The handler failed in a way onError must hear about. */
  reported?: boolean;
}

const JSON_TYPE = "application/json";
const INTERNAL = { error: { code: "InternalError", message: "Internal error" } };

export const CASES: Case[] = [
  {
    name: "JSON body",
    method: "GET",
    path: "/t/json",
    status: 200,
    contentType: JSON_TYPE,
    text: '{"hello":"world","n":1}',
  },
  {
    name: "string body as UTF-8 text",
    method: "GET",
    path: "/t/text",
    status: 200,
    contentType: "text/plain; charset=utf-8",
    text: Buffer.from("héllo").toString("latin1"),
  },
  {
    name: "Buffer body as bytes",
    method: "GET",
    path: "/t/binary",
    status: 200,
    contentType: "application/octet-stream",
    text: "\x00\x01\x02\xff",
  },
  {
    name: "handler's own content type and headers",
    method: "GET",
    path: "/t/typed",
    status: 201,
    contentType: "application/cbor",
    text: "\xa0",
    headers: { "x-custom": "yes" },
  },
  {
    name: "no body",
    method: "GET",
    path: "/t/empty",
    status: 200,
    contentType: undefined,
    text: "",
    headers: { "content-length": "0" },
  },
  {
    name: "204 drops the body",
    method: "GET",
    path: "/t/no-content",
    status: 204,
    contentType: undefined,
    text: "",
  },
  {
    name: "request body reaches the handler",
    method: "POST",
    path: "/t/echo",
    body: "some bytes",
    status: 200,
    contentType: "application/octet-stream",
    text: "some bytes",
    headers: { "x-body-length": "10" },
  },
  {
    name: "template params and raw query",
    method: "GET",
    path: "/t/items/a%20b?x=1&y=%2F",
    status: 200,
    contentType: JSON_TYPE,
    json: { id: "a%20b", query: "x=1&y=%2F" },
  },
  {
    name: "unknown path: CCF's 404 body",
    method: "GET",
    path: "/x",
    status: 404,
    contentType: JSON_TYPE,
    text: '{"error":{"code":"ResourceNotFound","message":"Unknown path: /x."}}',
  },
  {
    name: "unknown path under a frontend prefix is named without it, as CCF",
    method: "GET",
    path: "/node/nothing",
    status: 404,
    contentType: JSON_TYPE,
    json: { error: { code: "ResourceNotFound", message: "Unknown path: /nothing." } },
  },
  {
    name: "trailing slash is another path",
    method: "GET",
    path: "/t/json/",
    status: 404,
    contentType: JSON_TYPE,
    json: { error: { code: "ResourceNotFound", message: "Unknown path: /t/json/." } },
  },
  {
    name: "wrong method: 405 with Allow",
    method: "PUT",
    path: "/t/items/7",
    status: 405,
    contentType: JSON_TYPE,
    json: {
      error: {
        code: "UnsupportedHttpVerb",
        message: "Allowed methods for '/t/items/7' are: OPTIONS, DELETE, GET.",
      },
    },
    headers: { allow: "OPTIONS, DELETE, GET" },
  },
  {
    name: "OPTIONS on a known path: 204 with Allow",
    method: "OPTIONS",
    path: "/t/json",
    status: 204,
    contentType: undefined,
    text: "",
    headers: { allow: "OPTIONS, GET" },
  },
  {
    name: "HttpError thrown",
    method: "GET",
    path: "/t/forbidden",
    status: 403,
    contentType: JSON_TYPE,
    text: '{"error":{"code":"AuthorizationFailed","message":"Not allowed."}}',
  },
  {
    name: "HttpError rejected, with details",
    method: "GET",
    path: "/t/unauthenticated",
    status: 401,
    contentType: JSON_TYPE,
    json: {
      error: {
        code: "InvalidAuthenticationInfo",
        message: "Invalid authentication credentials.",
        details: [
          { auth_policy: "user_cert", code: "InvalidAuthenticationInfo", message: "no cert" },
        ],
      },
    },
  },
  {
    name: "HttpError's headers",
    method: "GET",
    path: "/t/retry",
    status: 503,
    contentType: JSON_TYPE,
    json: { error: { code: "NodeCannotHandleRequest", message: "Later." } },
    headers: { "retry-after": "3" },
  },
  {
    name: "synchronous throw: 500 without details",
    method: "GET",
    path: "/t/throw",
    status: 500,
    contentType: JSON_TYPE,
    json: INTERNAL,
    reported: true,
  },
  {
    name: "asynchronous rejection: 500",
    method: "GET",
    path: "/t/reject",
    status: 500,
    contentType: JSON_TYPE,
    json: INTERNAL,
    reported: true,
  },
  {
    name: "invalid status: 500",
    method: "GET",
    path: "/t/bad-status",
    status: 500,
    contentType: JSON_TYPE,
    json: INTERNAL,
    reported: true,
  },
  {
    name: "body that is not JSON-serialisable: 500",
    method: "GET",
    path: "/t/bigint",
    status: 500,
    contentType: JSON_TYPE,
    json: INTERNAL,
    reported: true,
  },
  {
    name: "header value with CRLF: 500",
    method: "GET",
    path: "/t/bad-header",
    status: 500,
    contentType: JSON_TYPE,
    json: INTERNAL,
    reported: true,
  },
];
