// The `user_cose_sign1` authentication policy: request bodies that are COSE Sign1 envelopes
// signed by a registered user, and what an app handler then sees.

import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import {
  COSE_HEADER,
  type CoseHeaders,
  certificateId,
  coseSign1Sign,
  createSelfSignedCertificate,
  EcKeyPair,
} from "../../src/crypto/index.js";
import type { EndpointRequest } from "../../src/endpoints/types.js";
import { HttpError } from "../../src/errors.js";
import { JsApp, readAppEndpoints } from "../../src/js/app.js";
import { encodeValue, idKey, Store, Tables } from "../../src/kv/index.js";
import { authenticate, type Caller } from "../../src/rpc/auth.js";

interface User {
  key: EcKeyPair;
  cert: string;
  id: string;
}

async function user(name: string, curve: "secp256r1" | "secp384r1" = "secp384r1"): Promise<User> {
  const key = EcKeyPair.generate(curve);
  const cert = await createSelfSignedCertificate(key, {
    subjectName: `CN=${name}`,
    validFrom: new Date(),
    validityDays: 30,
  });
  return { key, cert, id: certificateId(cert) };
}

function register(store: Store, u: User, userData?: unknown): void {
  const tx = store.begin();
  tx.map(Tables.USER_CERTS).set(idKey(u.id), encodeValue(Tables.USER_CERTS, u.cert));
  if (userData !== undefined) {
    tx.map(Tables.USER_INFO).set(
      idKey(u.id),
      encodeValue(Tables.USER_INFO, { user_data: userData }),
    );
  }
  store.commit(tx);
}

/** A user request as CCF's Python client signs it: kid, ccf.msg.type, ccf.msg.created_at. */
function signed(
  u: User,
  payload: string,
  extra: Array<[number | string, unknown]> = [],
  kid: string = u.id,
): Buffer {
  const headers: CoseHeaders = new Map<number | string, unknown>([
    [COSE_HEADER.kid, Buffer.from(kid)],
    ["ccf.msg.type", "user_request"],
    ["ccf.msg.created_at", 1_700_000_000],
    ...extra,
  ]);
  return coseSign1Sign({ key: u.key, protectedHeaders: headers, payload: Buffer.from(payload) });
}

function request(body: Buffer, contentType: string | null = "application/cose"): EndpointRequest {
  return {
    method: "POST",
    path: "/app/cose",
    query: "",
    params: {},
    headers: contentType === null ? {} : { "content-type": contentType },
    body,
    clientCert: undefined,
    httpVersion: "1.1",
    hostname: "",
  };
}

function refusal(store: Store, req: EndpointRequest): string {
  try {
    authenticate(["user_cose_sign1"], req, store.begin());
  } catch (e) {
    assert.ok(e instanceof HttpError);
    assert.equal(e.status, 401);
    assert.equal(e.headers?.["www-authenticate"], 'COSE-SIGN1 realm="Signed request access"');
    return e.details?.[0]?.message ?? "";
  }
  assert.fail("the request was accepted");
}

describe("user_cose_sign1 policy", () => {
  let alice: User;
  let bob: User;
  let store: Store;
  before(async () => {
    alice = await user("alice");
    bob = await user("bob", "secp256r1");
    store = new Store();
    register(store, alice, { role: "admin" });
    register(store, bob);
  });

  it("gives CCF's caller: cose.content, id, user data and cert", () => {
    const caller = authenticate(
      ["user_cose_sign1"],
      request(signed(alice, "hello")),
      store.begin(),
    ) as Caller;
    const content = (caller.cose as { content: ArrayBuffer }).content;
    assert.ok(content instanceof ArrayBuffer);
    assert.equal(Buffer.from(content).toString(), "hello");
    assert.deepEqual(Object.keys(caller), ["cose", "policy", "id", "data", "cert"]);
    assert.equal(caller.policy, "user_cose_sign1");
    assert.equal(caller.id, alice.id);
    assert.deepEqual(caller.data, { role: "admin" });
    assert.equal(caller.cert, alice.cert);
  });

  it("accepts P-256 signers and users without data (data is null)", () => {
    const caller = authenticate(["user_cose_sign1"], request(signed(bob, "x")), store.begin());
    assert.equal((caller as Caller).data, null);
  });

  it("does not require the ccf.msg headers", () => {
    const body = coseSign1Sign({
      key: alice.key,
      protectedHeaders: new Map([[COSE_HEADER.kid, Buffer.from(alice.id)]]),
      payload: Buffer.from("bare"),
    });
    assert.equal(
      (authenticate(["user_cose_sign1"], request(body), store.begin()) as Caller).id,
      alice.id,
    );
  });

  it("refuses with CCF's reasons", async () => {
    assert.equal(refusal(store, request(signed(alice, "x"), null)), "Missing content-type header");
    assert.equal(
      refusal(store, request(signed(alice, "x"), "application/json")),
      "Content type is not set to application/cose",
    );
    const stranger = await user("stranger");
    assert.equal(refusal(store, request(signed(stranger, "x"))), "Signer is not a known user");
    // Alice's kid on Bob's signature.
    assert.equal(
      refusal(store, request(signed(stranger, "x", [], alice.id))),
      "Failed to validate COSE Sign1",
    );
  });

  it("answers a malformed envelope or header with 400", () => {
    const bad = (body: Buffer, message: string) =>
      assert.throws(
        () => authenticate(["user_cose_sign1"], request(body), store.begin()),
        (e: unknown) => e instanceof HttpError && e.status === 400 && e.message === message,
      );
    bad(Buffer.from("not cbor at all"), "Failed to parse COSE_Sign1 outer array");
    bad(
      signed(alice, "x", [["ccf.msg.created_at", -5]]),
      "Header parameter created_at must be positive",
    );
    bad(
      signed(alice, "x", [["ccf.msg.type", 7]]),
      "Failed to decode protected header: ccf.msg.type has an unexpected type",
    );
    const noKid = coseSign1Sign({
      key: alice.key,
      protectedHeaders: new Map(),
      payload: Buffer.from("x"),
    });
    bad(noKid, "Missing kid in protected header");
  });

  it("falls back to the next policy when the body is not COSE", () => {
    const caller = authenticate(
      ["user_cose_sign1", "no_auth"],
      request(Buffer.from("{}"), "application/json"),
      store.begin(),
    );
    assert.deepEqual(caller, { policy: "no_auth" });
  });
});

describe("user_cose_sign1 in a JS app", () => {
  it("passes the payload as caller.cose.content; the body stays the envelope, as in CCF", async () => {
    const alice = await user("alice");
    const store = new Store();
    register(store, alice, "d");
    const tx = store.begin();
    tx.map(Tables.MODULES).set(
      Buffer.from("/app.js"),
      Buffer.from(`export function cose(request) {
        const c = request.caller;
        return { body: {
          content: ccf.bufToStr(c.cose.content),
          isBuffer: c.cose.content instanceof ArrayBuffer,
          bodyBytes: request.body.arrayBuffer().byteLength,
          policy: c.policy, id: c.id, data: c.data, hasCert: c.cert.startsWith("-----BEGIN"),
        } };
      }`),
    );
    tx.map(Tables.ENDPOINTS).set(
      Buffer.from("POST /cose"),
      Buffer.from(
        JSON.stringify({
          js_module: "/app.js",
          js_function: "cose",
          authn_policies: ["user_cose_sign1"],
          mode: "readonly",
          forwarding_required: "never",
          openapi: {},
        }),
      ),
    );
    store.commit(tx);
    const envelope = signed(alice, "payload text");
    const req = request(envelope);
    const appTx = store.begin();
    const [endpoint] = readAppEndpoints(appTx);
    assert.ok(endpoint);
    const caller = authenticate(endpoint.authnPolicies, req, appTx);
    const app = new JsApp({
      log: () => {},
      consensus: {
        lastCommitted: () => ({ view: 1, seqno: 1 }),
        statusFor: () => "Unknown",
        viewFor: () => undefined,
      },
    });
    const result = await app.execute(endpoint, req, caller, appTx);
    assert.equal(result.response.status, 200);
    assert.deepEqual(JSON.parse(String(result.response.body)), {
      content: "payload text",
      isBuffer: true,
      bodyBytes: envelope.length,
      policy: "user_cose_sign1",
      id: alice.id,
      data: "d",
      hasCert: true,
    });
  });
});
