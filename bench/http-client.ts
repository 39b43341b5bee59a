// The benchmarks' HTTP requests, through undici's `dispatch` rather than `request`.
//
// `request` wraps every response in a Readable stream and its promise plumbing: ~3-5 µs of CPU
// per request on this machine (measured with `bench app`'s load: 31 -> 26-28 µs per request in
// the load generator). The load generator shares the machine's two cores with the servers it
// measures, so what it spends is taken from them; every benchmark (ccf-ts, etcd, the hello-world
// ceiling) uses this same client, so the comparisons stay like for like.

import type { IncomingHttpHeaders } from "node:http";
import type { Dispatcher } from "undici";

export interface BenchRequest {
  method: "GET" | "PUT" | "POST";
  path: string;
  body?: string;
  headers?: Record<string, string>;
}

export interface BenchReply {
  status: number;
  /** Lower-case header names. */
  headers: IncomingHttpHeaders;
  body: Buffer;
}

const EMPTY = Buffer.alloc(0);

/** Sends one request on `dispatcher` (a Pool) and resolves with the whole response. */
export function send(dispatcher: Dispatcher, req: BenchRequest): Promise<BenchReply> {
  return new Promise((resolve, reject) => {
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    let chunks: Buffer[] | undefined;
    const handler: Dispatcher.DispatchHandler = {
      // undici tells its handler interfaces apart by this method
      onRequestStart() {},
      onResponseStart(_controller, statusCode, responseHeaders) {
        status = statusCode;
        headers = responseHeaders;
      },
      onResponseData(_controller, chunk) {
        (chunks ??= []).push(chunk);
      },
      onResponseEnd() {
        const body =
          chunks === undefined ? EMPTY : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
        resolve({ status, headers, body: body ?? EMPTY });
      },
      onResponseError(_controller, error) {
        reject(error);
      },
    };
    dispatcher.dispatch(
      { method: req.method, path: req.path, body: req.body, headers: req.headers },
      handler,
    );
  });
}
