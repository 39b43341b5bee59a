// Turns one EndpointRequest into the response a client sees: routing, the handler call, error mapping
// and body encoding. The server and inject() both go through here, so their behaviour cannot differ.
import { validateHeaderName, validateHeaderValue } from "node:http";
import type { Endpoint, EndpointRequest, EndpointResponse } from "../endpoints/types.js";
import { HttpError, HttpErrors } from "../errors.js";
import type { RouteMatch, Router } from "./router.js";

/** A response ready for the wire: lower-case header names, the body as bytes. */
export interface RpcResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /**
   * End the client session once this is sent (CCF's `terminate_session`, after
   * SessionConsistencyLost): its later requests could otherwise miss its earlier writes.
   */
  closeSession?: boolean;
}

/**
 * Runs once the endpoint is known and before its handler (so before any authentication): a response
 * answers the request instead of the handler (a forward to the primary, a redirect), undefined
 * lets the handler run. Must not throw; a thrown error or rejection is treated as the handler's.
 */
export type BeforeHandler = (
  endpoint: Endpoint,
  req: EndpointRequest,
) => RpcResponse | Promise<RpcResponse | undefined> | undefined;

/**
 * Told of every answered request (metrics): the endpoint routing chose (undefined when no route
 * matched the path and method), the status sent, and the seconds from routing to the response
 * being ready. Must be cheap; a throw is ignored.
 */
export type RequestObserver = (
  endpoint: Endpoint | undefined,
  req: EndpointRequest,
  status: number,
  seconds: number,
) => void;

/** Optional stages of dispatch; with none, dispatch is exactly routing plus the handler. */
export interface DispatchHooks {
  beforeHandler?: BeforeHandler;
  observe?: RequestObserver;
}

/** Told about every exception a handler throws that is not an HttpError (the client sees a 500). */
export type HandlerErrorListener = (err: unknown, req: EndpointRequest) => void;

const EMPTY = Buffer.alloc(0);

// Connection-level headers: meaningless from an endpoint, and forbidden in HTTP/2 (node throws on
// them). content-length is always computed from the body.
const TRANSPORT_HEADERS = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "content-length",
]);

/**
 * The path as CCF names it in its 404 and 405 messages: CCF strips a frontend prefix
 * (`/app`, `/gov`, `/node`) before matching, so `/node/x` is reported as `/x`.
 */
export function frontendPath(path: string): string {
  const second = path.indexOf("/", 1);
  if (second > 1 && path.charCodeAt(0) === 47 /* '/' */) {
    const actor = path.slice(1, second);
    if (actor === "app" || actor === "gov" || actor === "node") return path.slice(second);
  }
  return path;
}

/** The OData error body `{"error": {"code", "message"}}` with the error's status and headers. */
export function errorResponse(err: HttpError): RpcResponse {
  const body = Buffer.from(JSON.stringify(err.toJSON()));
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "content-length": String(body.length),
  };
  if (err.headers !== undefined) {
    for (const name in err.headers) headers[name.toLowerCase()] = err.headers[name];
  }
  return { status: err.status, headers, body };
}

/** A handler's response as bytes with its content type; throws if it cannot be sent. */
export function encodeResponse(res: EndpointResponse, method: string): RpcResponse {
  if (res === null || typeof res !== "object") {
    throw new TypeError(`endpoint handler returned ${res === null ? "null" : typeof res}`);
  }
  const status = res.status;
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new TypeError(`endpoint handler returned invalid status ${String(status)}`);
  }
  const headers: Record<string, string> = {};
  if (res.headers !== undefined && res.headers !== null) {
    for (const name in res.headers) {
      const lower = name.toLowerCase();
      if (TRANSPORT_HEADERS.has(lower)) continue;
      const raw: unknown = res.headers[name];
      const value = typeof raw === "string" ? raw : String(raw);
      // Checked here rather than left to node's writeHead, so a bad header is a 500 from inject too.
      validateHeaderName(lower);
      validateHeaderValue(lower, value);
      headers[lower] = value;
    }
  }
  let body: Buffer;
  let contentType: string | undefined;
  const value = res.body;
  if (value === undefined) {
    body = EMPTY;
  } else if (Buffer.isBuffer(value)) {
    body = value;
    contentType = "application/octet-stream";
  } else if (typeof value === "string") {
    body = Buffer.from(value, "utf8");
    contentType = "text/plain; charset=utf-8";
  } else if (value instanceof Uint8Array) {
    // Raw bytes from a sandbox or a typed-array API: bytes, not a JSON object of indices.
    body = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    contentType = "application/octet-stream";
  } else if (value instanceof ArrayBuffer) {
    body = Buffer.from(value);
    contentType = "application/octet-stream";
  } else {
    const json = JSON.stringify(value);
    if (json === undefined)
      throw new TypeError(`endpoint response body is not JSON: ${typeof value}`);
    body = Buffer.from(json, "utf8");
    contentType = "application/json";
  }
  if (status === 204 || status === 304) {
    // These carry no content (RFC 9110): node would drop it on HTTP/1.1, so drop it everywhere.
    return { status, headers, body: EMPTY };
  }
  if (contentType !== undefined && headers["content-type"] === undefined) {
    headers["content-type"] = contentType;
  }
  // A HEAD response announces the GET body's length but carries none.
  const head = method === "HEAD";
  const length = head && res.headContentLength !== undefined ? res.headContentLength : body.length;
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new TypeError(`endpoint handler returned invalid content length ${String(length)}`);
  }
  headers["content-length"] = String(length);
  return { status, headers, body: head ? EMPTY : body };
}

function failure(err: unknown, req: EndpointRequest, onError?: HandlerErrorListener): RpcResponse {
  if (err instanceof HttpError) return errorResponse(err);
  if (onError !== undefined) {
    try {
      onError(err, req);
    } catch {
      // A failing logger must not turn one bad request into a crashed server.
    }
  }
  return errorResponse(HttpErrors.InternalError("Internal error"));
}

function encode(res: EndpointResponse, req: EndpointRequest, onError?: HandlerErrorListener) {
  try {
    return encodeResponse(res, req.method);
  } catch (err) {
    return failure(err, req, onError);
  }
}

function isThenable(value: unknown): value is PromiseLike<EndpointResponse> {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

/**
 * Routes `req` (filling `req.params`), runs the handler and encodes what it returns. Synchronous
 * handlers get a synchronous answer (no promise on the hot path). Never throws and never rejects:
 * an HttpError becomes its own response, anything else a 500 reported to `onError`.
 */
export function dispatch(
  router: Router,
  req: EndpointRequest,
  onError?: HandlerErrorListener,
  hooks?: DispatchHooks,
): RpcResponse | Promise<RpcResponse> {
  const observe = hooks?.observe;
  const started = observe === undefined ? 0 : performance.now();
  const match = router.match(req.method, req.path);
  const out = answer(match, req, onError, hooks);
  if (observe === undefined) return out;
  const endpoint = match !== undefined && "endpoint" in match ? match.endpoint : undefined;
  if (out instanceof Promise) {
    return out.then((res) => {
      observed(observe, endpoint, req, res.status, started);
      return res;
    });
  }
  observed(observe, endpoint, req, out.status, started);
  return out;
}

function observed(
  observe: RequestObserver,
  endpoint: Endpoint | undefined,
  req: EndpointRequest,
  status: number,
  started: number,
): void {
  try {
    observe(endpoint, req, status, (performance.now() - started) / 1000);
  } catch {
    // Metrics must never change an answer.
  }
}

/** The answer to a routed request: 404, 405 / OPTIONS, or the endpoint's (after beforeHandler). */
function answer(
  match: RouteMatch | undefined,
  req: EndpointRequest,
  onError: HandlerErrorListener | undefined,
  hooks: DispatchHooks | undefined,
): RpcResponse | Promise<RpcResponse> {
  if (match === undefined) {
    return errorResponse(HttpErrors.ResourceNotFound(`Unknown path: ${frontendPath(req.path)}.`));
  }
  if (!("endpoint" in match)) {
    // As CCF: OPTIONS is always allowed on a known path, listed first, and answered 204.
    const allowed = ["OPTIONS", ...match.allowed.filter((m) => m !== "OPTIONS")];
    const allow = allowed.join(", ");
    if (req.method === "OPTIONS") return { status: 204, headers: { allow }, body: EMPTY };
    return errorResponse(
      HttpErrors.UnsupportedHttpVerb(
        `Allowed methods for '${frontendPath(req.path)}' are: ${allow}.`,
        allowed,
      ),
    );
  }
  req.params = match.params;
  const endpoint = match.endpoint;
  const before = hooks?.beforeHandler;
  if (before === undefined) return run(endpoint, req, onError);
  let early: RpcResponse | Promise<RpcResponse | undefined> | undefined;
  try {
    early = before(endpoint, req);
  } catch (err) {
    return failure(err, req, onError);
  }
  if (early instanceof Promise) {
    return early.then(
      (res) => res ?? run(endpoint, req, onError),
      (err: unknown) => failure(err, req, onError),
    );
  }
  return early ?? run(endpoint, req, onError);
}

function run(
  endpoint: Endpoint,
  req: EndpointRequest,
  onError?: HandlerErrorListener,
): RpcResponse | Promise<RpcResponse> {
  let result: EndpointResponse | Promise<EndpointResponse>;
  try {
    result = endpoint.handler(req);
  } catch (err) {
    return failure(err, req, onError);
  }
  if (isThenable(result)) {
    return Promise.resolve(result).then(
      (res) => encode(res, req, onError),
      (err: unknown) => failure(err, req, onError),
    );
  }
  return encode(result, req, onError);
}
