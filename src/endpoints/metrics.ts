// Per-endpoint call counters, served as CCF's `/api/metrics` ({"metrics": [{path, method, calls,
// errors, failures, retries}]}): errors are 4xx answers, failures 5xx answers or exceptions.

import { HttpError } from "../errors.js";
import type { Endpoint, EndpointResponse } from "./types.js";

interface Counters {
  path: string;
  method: string;
  calls: number;
  errors: number;
  failures: number;
  retries: number;
}

export class EndpointMetrics {
  private readonly counters = new Map<string, Counters>();

  /** The endpoint with its calls counted. */
  wrap(endpoint: Endpoint, reportedPath = endpoint.path): Endpoint {
    const key = `${endpoint.method} ${reportedPath}`;
    let c = this.counters.get(key);
    if (c === undefined) {
      c = {
        path: reportedPath,
        method: endpoint.method,
        calls: 0,
        errors: 0,
        failures: 0,
        retries: 0,
      };
      this.counters.set(key, c);
    }
    const counters = c;
    const count = (status: number): void => {
      if (status >= 500) counters.failures++;
      else if (status >= 400) counters.errors++;
    };
    const counted = (res: EndpointResponse): EndpointResponse => {
      count(res.status);
      return res;
    };
    const failed = (e: unknown): never => {
      count(e instanceof HttpError ? e.status : 500);
      throw e;
    };
    return {
      ...endpoint,
      // As the handler answers: at once, or through a promise.
      handler: (req) => {
        counters.calls++;
        let out: EndpointResponse | Promise<EndpointResponse>;
        try {
          out = endpoint.handler(req);
        } catch (e) {
          return failed(e);
        }
        return out instanceof Promise ? out.then(counted, failed) : counted(out);
      },
    };
  }

  /** Counts a retry of an endpoint's transaction (conflicts). */
  retried(method: string, path: string, n = 1): void {
    const c = this.counters.get(`${method} ${path}`);
    if (c !== undefined) c.retries += n;
  }

  toJSON(): { metrics: Counters[] } {
    return { metrics: [...this.counters.values()].map((c) => ({ ...c })) };
  }
}
