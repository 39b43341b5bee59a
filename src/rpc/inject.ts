// Runs a request through the front end's routing, error mapping and encoding without a socket, for
// fast in-process endpoint tests (as fastify's inject).
import type { EndpointRequest } from "../endpoints/types.js";
import { dispatch, type HandlerErrorListener, type RpcResponse } from "./dispatch.js";
import type { Router } from "./router.js";

export type InjectRequest = Partial<EndpointRequest> & { method: string; path: string };

/**
 * Answers `req` as the server would. Fields left out default to a plain HTTP/1.1 request to
 * "localhost" with no body and no client certificate; `path` may carry a `?query`, which is split
 * off as the server does. Transport limits (body size, session caps) are not applied.
 */
export async function inject(
  router: Router,
  req: InjectRequest,
  onError?: HandlerErrorListener,
): Promise<RpcResponse> {
  let path = req.path;
  let query = req.query ?? "";
  const q = path.indexOf("?");
  if (q !== -1) {
    if (req.query === undefined) query = path.slice(q + 1);
    path = path.slice(0, q);
  }
  const headers: Record<string, string> = {};
  for (const name in req.headers) headers[name.toLowerCase()] = req.headers[name];
  const request: EndpointRequest = {
    method: req.method,
    path,
    query,
    params: {},
    headers,
    body: req.body ?? Buffer.alloc(0),
    clientCert: req.clientCert,
    httpVersion: req.httpVersion ?? "1.1",
    hostname: req.hostname ?? "localhost",
  };
  return dispatch(router, request, onError);
}
