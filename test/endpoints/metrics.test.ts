import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Endpoint, EndpointMetrics, type EndpointRequest } from "../../src/endpoints/index.js";
import { HttpErrors } from "../../src/errors.js";

const req = {} as EndpointRequest;

function endpoint(path: string, handler: Endpoint["handler"]): Endpoint {
  return { method: "GET", path, handler };
}

describe("EndpointMetrics", () => {
  it("counts calls, 4xx errors and 5xx failures, answering as the handler does", async () => {
    const m = new EndpointMetrics();
    const now = m.wrap(endpoint("/now", () => ({ status: 404 })));
    const later = m.wrap(endpoint("/later", () => Promise.resolve({ status: 503 })));
    const throws = m.wrap(
      endpoint("/throws", () => {
        throw HttpErrors.InvalidInput("bad");
      }),
    );
    const rejects = m.wrap(endpoint("/rejects", () => Promise.reject(new Error("boom"))));

    const answered = now.handler(req);
    assert.ok(!(answered instanceof Promise), "a synchronous answer stays synchronous");
    assert.equal(answered.status, 404);
    const promised = later.handler(req);
    assert.ok(promised instanceof Promise);
    assert.equal((await promised).status, 503);
    assert.throws(() => throws.handler(req), /bad/);
    await assert.rejects(Promise.resolve(rejects.handler(req)), /boom/);

    const byPath = Object.fromEntries(m.toJSON().metrics.map((c) => [c.path, c]));
    assert.deepEqual(
      ["/now", "/later", "/throws", "/rejects"].map((p) => {
        const c = byPath[p];
        return [c?.calls, c?.errors, c?.failures];
      }),
      [
        [1, 1, 0],
        [1, 0, 1],
        [1, 1, 0],
        [1, 0, 1],
      ],
    );
  });
});
