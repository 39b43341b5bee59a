// Router: exact paths before templates, template specificity, CCF's raw matching (no trailing-slash
// folding), allowed methods for 405, and groups replaced at run time.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Endpoint } from "../../src/endpoints/types.js";
import { CcfError } from "../../src/errors.js";
import { Router } from "../../src/rpc/index.js";

function ep(method: string, path: string): Endpoint {
  return { method, path, handler: () => ({ status: 200, body: `${method} ${path}` }) };
}

function routed(router: Router, method: string, path: string) {
  const m = router.match(method, path);
  if (m === undefined || !("endpoint" in m)) return m;
  return { path: m.endpoint.path, params: m.params };
}

describe("Router", () => {
  it("matches exact paths per method", () => {
    const router = new Router();
    router.setEndpoints("node", [ep("GET", "/node/state"), ep("POST", "/node/state")]);
    assert.deepEqual(routed(router, "GET", "/node/state"), { path: "/node/state", params: {} });
    const post = router.match("POST", "/node/state");
    assert.ok(post !== undefined && "endpoint" in post && post.endpoint.method === "POST");
    assert.equal(router.match("GET", "/node/other"), undefined);
  });

  it("fills {param} segments from the raw path, without decoding", () => {
    const router = new Router();
    router.setEndpoints("app", [ep("GET", "/log/{scope}/entries/{id}")]);
    assert.deepEqual(routed(router, "GET", "/log/private/entries/a%2Fb"), {
      path: "/log/{scope}/entries/{id}",
      params: { scope: "private", id: "a%2Fb" },
    });
  });

  it("matches a parameter followed by literal text in its segment, as CCF's {id}:withdraw", () => {
    const router = new Router();
    router.setEndpoints("gov", [
      ep("POST", "/proposals/{id}:withdraw"),
      ep("POST", "/proposals/{id}"),
      ep("POST", "/proposals:create"),
    ]);
    assert.deepEqual(routed(router, "POST", "/proposals/abc:withdraw"), {
      path: "/proposals/{id}:withdraw",
      params: { id: "abc" },
    });
    assert.deepEqual(routed(router, "POST", "/proposals/abc"), {
      path: "/proposals/{id}",
      params: { id: "abc" },
    });
    assert.deepEqual(routed(router, "POST", "/proposals:create"), {
      path: "/proposals:create",
      params: {},
    });
    // The parameter itself may not be empty.
    assert.deepEqual(routed(router, "POST", "/proposals/:withdraw"), {
      path: "/proposals/{id}",
      params: { id: ":withdraw" },
    });
  });

  it("does not let a parameter match an empty segment or span a slash", () => {
    const router = new Router();
    router.setEndpoints("app", [ep("GET", "/users/{id}")]);
    assert.equal(router.match("GET", "/users/"), undefined);
    assert.equal(router.match("GET", "/users/a/b"), undefined);
  });

  it("treats a trailing slash as a different path, as CCF does", () => {
    const router = new Router();
    router.setEndpoints("node", [ep("GET", "/node/commit")]);
    assert.equal(router.match("GET", "/node/commit/"), undefined);
  });

  it("prefers an exact path over a template that also matches", () => {
    const router = new Router();
    router.setEndpoints("app", [ep("GET", "/users/{id}"), ep("GET", "/users/me")]);
    assert.deepEqual(routed(router, "GET", "/users/me"), { path: "/users/me", params: {} });
    assert.deepEqual(routed(router, "GET", "/users/42"), {
      path: "/users/{id}",
      params: { id: "42" },
    });
  });

  it("prefers the template with more literal segments, then the earlier literal", () => {
    const router = new Router();
    router.setEndpoints("app", [
      ep("GET", "/{a}/{b}/{c}"),
      ep("GET", "/x/{b}/{c}"),
      ep("GET", "/x/{b}/z"),
      ep("GET", "/{a}/y/{c}"),
    ]);
    assert.equal((routed(router, "GET", "/x/y/z") as { path: string }).path, "/x/{b}/z");
    assert.equal((routed(router, "GET", "/x/y/w") as { path: string }).path, "/x/{b}/{c}");
    assert.equal((routed(router, "GET", "/q/y/w") as { path: string }).path, "/{a}/y/{c}");
    assert.equal((routed(router, "GET", "/q/r/w") as { path: string }).path, "/{a}/{b}/{c}");
  });

  it("uses a template for a method the exact path lacks", () => {
    const router = new Router();
    router.setEndpoints("app", [ep("GET", "/items/new"), ep("POST", "/items/{id}")]);
    assert.deepEqual(routed(router, "POST", "/items/new"), {
      path: "/items/{id}",
      params: { id: "new" },
    });
  });

  it("lists the methods of every matching route, in CCF's (llhttp) order, for a wrong method", () => {
    const router = new Router();
    router.setEndpoints("app", [
      ep("PATCH", "/items/{id}"),
      ep("POST", "/items/{id}"),
      ep("GET", "/items/7"),
      ep("DELETE", "/items/{id}"),
      ep("PUT", "/other/{id}"),
    ]);
    assert.deepEqual(router.match("PUT", "/items/7"), {
      allowed: ["DELETE", "GET", "POST", "PATCH"],
    });
    assert.deepEqual(router.match("GET", "/items/8"), { allowed: ["DELETE", "POST", "PATCH"] });
  });

  it("replaces one group's endpoints without touching the others", () => {
    const router = new Router();
    router.setEndpoints("node", [ep("GET", "/node/state")]);
    router.setEndpoints("app", [ep("GET", "/log/v1")]);
    router.setEndpoints("app", [ep("GET", "/log/v2")]);
    assert.equal(router.match("GET", "/log/v1"), undefined);
    assert.ok(router.match("GET", "/log/v2"));
    assert.ok(router.match("GET", "/node/state"));
    router.setEndpoints("app", []);
    assert.equal(router.match("GET", "/log/v2"), undefined);
    assert.deepEqual(
      router.endpoints("node").map((e) => e.path),
      ["/node/state"],
    );
  });

  it("normalises endpoint methods to upper case", () => {
    const router = new Router();
    router.setEndpoints("app", [ep("get", "/a")]);
    assert.ok(router.match("GET", "/a"));
  });

  it("refuses the same method and path twice, across groups too, and keeps the old routes", () => {
    const router = new Router();
    router.setEndpoints("node", [ep("GET", "/a"), ep("GET", "/t/{x}")]);
    assert.throws(() => router.setEndpoints("app", [ep("GET", "/a")]), {
      name: "CcfError",
      code: "DuplicateEndpoint",
    });
    assert.throws(() => router.setEndpoints("app", [ep("GET", "/t/{y}")]), {
      code: "DuplicateEndpoint",
    });
    assert.ok(router.match("GET", "/a"));
    assert.deepEqual(router.endpoints("app"), []);
  });

  it("refuses malformed paths", () => {
    const router = new Router();
    for (const path of ["a/b", "/a/{x", "/a/x}", "/a/pre{x}", "/a/{x}/{x}"]) {
      assert.throws(
        () => router.setEndpoints("app", [ep("GET", path)]),
        (e: unknown) => e instanceof CcfError && e.code === "InvalidEndpointPath",
        path,
      );
    }
  });
});
