// The sample apps' handlers, run in-process under @microsoft/ccf-app's polyfill (a `ccf` global
// for Node: an in-memory KV with no transactions) and called with hand-made Request objects.
// The modules are the built ones, loaded from bundle.json as CCF loads them.
//
// The polyfill lacks two things the logging app uses (ccf-app-api.md §5): `ccf.pemToId` is absent
// and `ccf.rpc.setClaimsDigest` throws "Not implemented". Rather than skip prefix_cert and
// post_public's record_claim, this file installs test doubles for both before the app's modules
// are evaluated (ccf-app's endpoints.js binds ccf.rpc.setClaimsDigest once, at evaluation).
import "@microsoft/ccf-app/polyfill.js";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { after, before, describe, it, mock } from "node:test";
import { ccf } from "@microsoft/ccf-app/global.js";
import {
  type Build,
  type Handler,
  type HandlerResponse,
  buildSamples,
  fakeRequest,
  loadModule,
  statusOf,
} from "./fixture.js";

const claimsDigests: ArrayBuffer[] = [];
(ccf.rpc as { setClaimsDigest: (d: ArrayBuffer) => void }).setClaimsDigest = (d) => {
  claimsDigests.push(d);
};
/** CCF's pemToId: hex SHA-256 of the certificate's DER. */
const pemToId = (pem: string): string =>
  createHash("sha256")
    .update(Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64"))
    .digest("hex");
(ccf as unknown as { pemToId: typeof pemToId }).pemToId = pemToId;

const utf8 = (s: string): ArrayBuffer => ccf.strToBuf(s);
const text = (b: ArrayBuffer): string => ccf.bufToStr(b);
const sha256 = (s: string): Buffer => createHash("sha256").update(s).digest();

let build: Build;
let logging: Record<string, Handler>;
let basic: Record<string, Handler>;

before(async () => {
  build = buildSamples();
  assert.equal(build.status, 0, build.stderr);
  logging = (await loadModule(
    build.bundle("logging"),
    join(build.outDir, "load-logging"),
    "logging.js",
  )) as Record<string, Handler>;
  basic = (await loadModule(
    build.bundle("basic"),
    join(build.outDir, "load-basic"),
    "basic.js",
  )) as Record<string, Handler>;
});
after(() => build?.cleanup());

const USER0 = {
  policy: "user_cert",
  id: "ab".repeat(32),
  data: null,
  cert: "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n",
};

function call(fn: string, init: Parameters<typeof fakeRequest>[0] = {}): HandlerResponse {
  const handler = logging[fn];
  assert.equal(typeof handler, "function", fn);
  return handler(fakeRequest({ caller: USER0, ...init }));
}

const post = (fn: string, body: object, query = "", caller: unknown = USER0) =>
  call(fn, {
    method: "POST",
    query,
    body,
    caller,
    headers: { "content-type": "application/json" },
  });

function assertNotFound(r: HandlerResponse) {
  assert.equal(statusOf(r), 404);
  const body = r.body as { error: { code: string; message: string } };
  assert.equal(body.error.code, "ResourceNotFound");
  assert.equal(typeof body.error.message, "string");
  assert.deepEqual(Object.keys(body.error).sort(), ["code", "message"]);
}

describe("logging app", () => {
  for (const vis of ["private", "public"] as const) {
    const table = vis === "public" ? "public:records" : "records";

    describe(`${vis} records`, () => {
      it("POST then GET gives the message back; the KV holds UTF-8 bytes under String(id)", () => {
        const r = post(`post_${vis}`, { id: 1, msg: "hello wörld" });
        assert.equal(statusOf(r), 200);
        assert.equal(r.body, true);
        const got = call(`get_${vis}`, { query: "id=1" });
        assert.equal(statusOf(got), 200);
        assert.deepEqual(got.body, { msg: "hello wörld" });
        const stored = ccf.kv[table].get(utf8("1"));
        assert.ok(stored !== undefined);
        assert.equal(text(stored), "hello wörld");
        // A string id is the same key as the number.
        post(`post_${vis}`, { id: "1", msg: "again" });
        assert.deepEqual(call(`get_${vis}`, { query: "id=1" }).body, { msg: "again" });
      });

      it("GET of an absent id is 404 ResourceNotFound; a GET without id throws", () => {
        assertNotFound(call(`get_${vis}`, { query: "id=404" }));
        assert.throws(() => call(`get_${vis}`, { query: "" }));
        assert.throws(() => call(`get_${vis}`, { query: "scope=x" }));
      });

      it("a POST without id or with a non-string msg throws (500)", () => {
        assert.throws(() => post(`post_${vis}`, { msg: "no id" }));
        assert.throws(() => post(`post_${vis}`, { id: 3, msg: 42 }));
        assert.throws(() =>
          call(`post_${vis}`, { method: "POST", body: "not json", caller: USER0 }),
        );
      });

      it("DELETE twice: true, then 404", () => {
        post(`post_${vis}`, { id: 2, msg: "to delete" });
        const first = call(`delete_${vis}`, { method: "DELETE", query: "id=2" });
        assert.equal(statusOf(first), 200);
        assert.equal(first.body, true);
        assertNotFound(call(`delete_${vis}`, { method: "DELETE", query: "id=2" }));
        assertNotFound(call(`get_${vis}`, { query: "id=2" }));
      });

      it("scope selects <table>-<scope>; count and clear act on one scope", () => {
        const scope = `s${vis}`;
        for (let i = 0; i < 3; i++) post(`post_${vis}`, { id: i, msg: `m${i}` }, `scope=${scope}`);
        assert.equal(ccf.kv[`${table}-${scope}`].size, 3);
        assert.deepEqual(call(`get_${vis}`, { query: `id=2&scope=${scope}` }).body, { msg: "m2" });
        assert.deepEqual(call(`get_${vis}`, { query: `scope=${scope}&id=0` }).body, { msg: "m0" });
        assertNotFound(call(`get_${vis}`, { query: `id=2&scope=other` }));
        assert.equal(call(`count_${vis}`, { query: `scope=${scope}` }).body, 3);
        assert.equal(call(`count_${vis}`, { query: "scope=empty" }).body, 0);
        const unscoped = call(`count_${vis}`).body as number;
        assert.equal(unscoped, ccf.kv[table].size);

        const cleared = call(`clear_${vis}`, { method: "DELETE", query: `scope=${scope}` });
        assert.equal(cleared.body, true);
        assert.equal(call(`count_${vis}`, { query: `scope=${scope}` }).body, 0);
        assertNotFound(call(`get_${vis}`, { query: `id=0&scope=${scope}` }));
        // The unscoped table is untouched.
        assert.equal(call(`count_${vis}`).body, unscoped);
        assert.equal(call(`clear_${vis}`, { method: "DELETE" }).body, true);
        assert.equal(call(`count_${vis}`).body, 0);
      });
    });
  }

  it("post_public with record_claim sets SHA-256(msg) as the claims digest", () => {
    claimsDigests.length = 0;
    post("post_public", { id: 10, msg: "no claim" });
    post("post_public", { id: 10, msg: "claimed", record_claim: false });
    assert.equal(claimsDigests.length, 0);
    post("post_public", { id: 11, msg: "claimed", record_claim: true });
    assert.equal(claimsDigests.length, 1);
    assert.deepEqual(Buffer.from(claimsDigests[0]), sha256("claimed"));
    assert.deepEqual(call("get_public", { query: "id=11" }).body, { msg: "claimed" });
  });

  it("admin_only: 403 unless the caller's user data has isAdmin: true", () => {
    for (const data of [null, undefined, {}, { isAdmin: false }, { isAdmin: "true" }]) {
      const r = post("post_private_admin_only", { id: 20, msg: "x" }, "", { ...USER0, data });
      assert.equal(statusOf(r), 403, JSON.stringify(data));
      assert.equal(r.body, "Only admins may access this endpoint");
    }
    assertNotFound(call("get_private", { query: "id=20" }));
    const admin = { ...USER0, data: { isAdmin: true } };
    const r = post("post_private_admin_only", { id: 20, msg: "by admin" }, "", admin);
    assert.equal(statusOf(r), 200);
    assert.deepEqual(call("get_private", { query: "id=20" }).body, { msg: "by admin" });
  });

  it("anonymous: post_private works for a no_auth caller", () => {
    const r = post("post_private", { id: 21, msg: "anon" }, "", { policy: "no_auth" });
    assert.equal(r.body, true);
    assert.deepEqual(call("get_private", { query: "id=21" }).body, { msg: "anon" });
  });

  it("prefix_cert stores '<pemToId(cert)>: msg'", () => {
    const r = post("post_private_prefix_cert", { id: 22, msg: "signed" });
    assert.equal(r.body, true);
    const expected = `${pemToId(USER0.cert)}: signed`;
    assert.deepEqual(call("get_private", { query: "id=22" }).body, { msg: expected });
    // A caller without a certificate (jwt) makes it throw, as CCF's does.
    assert.throws(() =>
      post("post_private_prefix_cert", { id: 23, msg: "x" }, "", { policy: "jwt" }),
    );
  });

  it("raw_text: 415 unless content-type is text/plain; stores the raw body under params.id", () => {
    const wrong: Record<string, string>[] = [
      {},
      { "content-type": "application/json" },
      { "content-type": "text/plain; charset=utf-8" },
    ];
    for (const headers of wrong) {
      const r = call("post_private_raw_text", {
        method: "POST",
        params: { id: "30" },
        headers,
        body: "raw",
      });
      assert.equal(statusOf(r), 415, JSON.stringify(headers));
      assert.equal(typeof r.body, "string");
    }
    assertNotFound(call("get_private", { query: "id=30" }));
    const r = call("post_private_raw_text", {
      method: "POST",
      params: { id: "30" },
      headers: { "content-type": "text/plain" },
      body: "This message is not in JSON",
    });
    assert.equal(statusOf(r), 200);
    assert.equal(r.body, true);
    assert.deepEqual(call("get_private", { query: "id=30" }).body, {
      msg: "This message is not in JSON",
    });
    // With a scope.
    call("post_private_raw_text", {
      method: "POST",
      params: { id: "31" },
      query: "scope=raw",
      headers: { "content-type": "text/plain" },
      body: "scoped",
    });
    assert.equal(text(ccf.kv["records-raw"].get(utf8("31")) as ArrayBuffer), "scoped");
  });

  describe("custom_auth", () => {
    const auth = (headers: Record<string, string>) =>
      call("custom_auth", { headers, caller: { policy: "no_auth" } });

    it("401 with a reason when the headers are missing or unacceptable", () => {
      const refused: Record<string, string>[] = [
        {},
        { "x-custom-auth-name": "Bob" },
        { "x-custom-auth-age": "42" },
        { "x-custom-auth-name": "", "x-custom-auth-age": "42" },
        { "x-custom-auth-name": "Bob", "x-custom-auth-age": "12" },
        { "x-custom-auth-name": "Bob", "x-custom-auth-age": "old" },
      ];
      for (const headers of refused) {
        const r = auth(headers);
        assert.equal(statusOf(r), 401, JSON.stringify(headers));
        assert.equal(typeof r.body, "string");
        assert.ok((r.body as string).length > 0);
      }
    });

    it("200 with {name, age, description} for an acceptable caller", () => {
      const r = auth({ "x-custom-auth-name": "Alice", "x-custom-auth-age": "42" });
      assert.equal(statusOf(r), 200);
      const body = r.body as { name: string; age: number; description: string };
      assert.equal(body.name, "Alice");
      assert.equal(body.age, 42);
      assert.equal(typeof body.description, "string");
      assert.equal(
        statusOf(auth({ "x-custom-auth-name": "Teen", "x-custom-auth-age": "16" })),
        200,
      );
    });

    it("throws (500) when x-custom-auth-explode is present", () => {
      assert.throws(() => auth({ "x-custom-auth-explode": "Boom goes the dynamite" }), /Boom/);
    });
  });

  it("multi_auth describes each kind of caller differently, and logs it", () => {
    const logged = mock.method(console, "log", () => {});
    try {
      const jwt = {
        policy: "jwt",
        jwt: { keyIssuer: "https://issuer", header: { alg: "RS256" }, payload: { sub: "alice" } },
      };
      const cose = {
        policy: "user_cose_sign1",
        id: "cd".repeat(32),
        data: {},
        cert: USER0.cert,
        cose: { content: new ArrayBuffer(5) },
      };
      const callers = [
        USER0,
        { ...USER0, policy: "member_cert", id: "ef".repeat(32) },
        { policy: "any_cert", cert: USER0.cert },
        jwt,
        cose,
        { policy: "no_auth" },
        {
          policy: ["user_cert", "jwt", "user_cose_sign1"],
          user_cert: USER0,
          jwt,
          user_cose_sign1: cose,
        },
      ];
      const texts = callers.map((caller) => {
        const r = call("multi_auth", { method: "POST", caller });
        assert.equal(statusOf(r), 200);
        assert.equal(typeof r.body, "string");
        return r.body as string;
      });
      assert.equal(new Set(texts).size, texts.length, "every identity gets its own description");
      assert.match(texts[0], new RegExp(USER0.id));
      assert.match(texts[3], /https:\/\/issuer/);
      assert.match(texts[3], /alice/);
      assert.match(texts[4], /5 bytes/);
      assert.match(texts[6], /user_cert[\s\S]*jwt[\s\S]*user_cose_sign1/);
      assert.equal(logged.mock.callCount(), callers.length);
      assert.equal(logged.mock.calls[0]?.arguments[0], texts[0]);
    } finally {
      logged.mock.restore();
    }
  });
});

describe("basic app", () => {
  const b = (fn: string, init: Parameters<typeof fakeRequest>[0]) => {
    const handler = basic[fn];
    assert.equal(typeof handler, "function", fn);
    return handler(fakeRequest({ caller: USER0, ...init }));
  };

  it("PUT stores the raw body (204); GET gives the same bytes back as text/plain", () => {
    const bytes = new Uint8Array([0x68, 0x69, 0x00, 0xff, 0xfe]);
    const put = b("put_record", { method: "PUT", params: { key: "k1" }, body: bytes });
    assert.equal(statusOf(put), 204);
    assert.equal(put.body, undefined);
    const stored = ccf.kv["basic.records"].get(utf8("k1"));
    assert.ok(stored !== undefined);
    assert.deepEqual(new Uint8Array(stored), bytes);
    const got = b("get_record", { params: { key: "k1" } });
    assert.equal(statusOf(got), 200);
    assert.ok(got.body instanceof ArrayBuffer);
    assert.deepEqual(new Uint8Array(got.body), bytes);
    assert.equal(got.headers?.["content-type"], "text/plain");
  });

  it("GET of an absent key is 404", () => {
    assert.equal(statusOf(b("get_record", { params: { key: "absent" } })), 404);
  });

  it("POST /records stores every key of a JSON object as UTF-8 (204)", () => {
    const r = b("post_records", { method: "POST", body: { a: "alpha", b: "béta", "k/1": "" } });
    assert.equal(statusOf(r), 204);
    for (const [k, v] of [
      ["a", "alpha"],
      ["b", "béta"],
      ["k/1", ""],
    ] as const) {
      const got = b("get_record", { params: { key: k } });
      assert.equal(statusOf(got), 200, k);
      assert.equal(text(got.body as ArrayBuffer), v);
    }
  });

  it("POST /records rejects a body that is not an object of strings, storing nothing", () => {
    for (const body of [[1, 2], { x: "ok", y: 3 }, "str"]) {
      const r = b("post_records", { method: "POST", body: JSON.stringify(body) });
      assert.equal(statusOf(r), 400, JSON.stringify(body));
    }
    assert.equal(statusOf(b("get_record", { params: { key: "x" } })), 404);
  });
});
