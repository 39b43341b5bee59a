// CCF's native JS runtime quirks (ccf-app-api.md §1.9 and §7 "Known quirks"): where the native
// runtime and @microsoft/ccf-app's .d.ts disagree, the runtime follows the native behaviour; the
// quirks the logging app and the constitution hit are reproduced or tolerated as CCF does.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import type { EndpointRequest } from "../../src/endpoints/types.js";
import { JsApp, readAppEndpoints } from "../../src/js/app.js";
import { Store, Tables } from "../../src/kv/index.js";
import { authenticate, type Caller } from "../../src/rpc/auth.js";

const CCF_APP_DIR = dirname(
  createRequire(import.meta.url).resolve("@microsoft/ccf-app/converters.js"),
);

const APP = `
import * as ccfapp from "./node_modules/@microsoft/ccf-app/converters.js";

const attempt = (fn) => {
  try { return { value: fn() }; } catch (e) { return { error: e.name, message: e.message }; }
};

export function globals() {
  return { body: {
    pemToId: typeof ccf.pemToId,
    tcbHexToPolicy: typeof ccf.tcbHexToPolicy,
    validateConstitution: typeof ccf.gov?.validateConstitution,
    host: typeof ccf.host,
    // Governance effects exist only in a constitution's apply.
    setJwtPublicSigningKeys: typeof ccf.setJwtPublicSigningKeys,
    removeJwtPublicSigningKeys: typeof ccf.removeJwtPublicSigningKeys,
    refreshAppBytecodeCache: typeof ccf.refreshAppBytecodeCache,
    node: typeof ccf.node,
    network: typeof ccf.network,
    // Deprecated top-level crypto aliases: native 6.x does not install them; a superset is harmless.
    aliases: ["generateAesKey", "generateRsaKeyPair", "generateEcdsaKeyPair", "wrapKey", "digest",
      "isValidX509CertBundle", "isValidX509CertChain"].map((n) => typeof ccf[n]),
  } };
}

export function snp() {
  return { body: {
    global: typeof snp_attestation,
    onCcf: typeof ccf.snp_attestation,
    verify: attempt(() => snp_attestation.verifySnpAttestation(new ArrayBuffer(1), new ArrayBuffer(1))),
  } };
}

export function caller(request) {
  return { body: { isNull: request.caller === null, type: typeof request.caller } };
}

export function sha256Only() {
  const data = ccf.strToBuf("abc");
  return { body: {
    sha256: attempt(() => ccf.crypto.digest("SHA-256", data).byteLength),
    sha384: attempt(() => ccf.crypto.digest("SHA-384", data)),
    sha512: attempt(() => ccf.crypto.digest("SHA-512", data)),
  } };
}

export function kvDelete() {
  const m = ccf.kv["public:records"];
  m.set(ccf.strToBuf("k"), ccf.strToBuf("v"));
  const present = m.delete(ccf.strToBuf("k"));
  const absent = m.delete(ccf.strToBuf("k"));
  const set = m.set(ccf.strToBuf("k2"), ccf.strToBuf("v"));
  return { body: {
    present: present === undefined ? "undefined" : String(present),
    absent: absent === undefined ? "undefined" : String(absent),
    setReturnsMap: set === m,
  } };
}

export function oneArgSet() {
  // The constitution's members.acks.set(k), reached when no signature exists yet.
  const m = ccf.kv["public:records"];
  return { body: attempt(() => m.set(ccf.strToBuf("k"))) };
}

export function lenientBufToStr() {
  const bytes = new Uint8Array([0x61, 0xff, 0xfe, 0x62, 0xc3]);
  const s = ccf.bufToStr(bytes.buffer);
  return { body: { codes: Array.from(s).map((c) => c.codePointAt(0)) } };
}

export function hostDataDigest() {
  // The constitution's add_snp_host_data compares bufToStr of raw SHA-256 bytes on both sides.
  const digest = ccf.crypto.digest("SHA-256", ccf.strToBuf("policy"));
  const hex = Array.from(new Uint8Array(digest)).map((b) => b.toString(16).padStart(2, "0")).join("");
  const fromHex = new Uint8Array(hex.match(/../g).map((h) => parseInt(h, 16))).buffer;
  return { body: { equal: ccf.bufToStr(digest) === ccf.bufToStr(fromHex) } };
}

export function uint8() {
  const buf = ccfapp.uint8.encode(255);
  return { body: { length: buf.byteLength, decoded: ccfapp.uint8.decode(buf) } };
}

export function historical() {
  // The logging app pre-fetches its next page with a 3-argument getStateRange: a TypeError, as
  // natively (its 4-argument call fails here only because this app has no historical cache).
  return { body: {
    three: attempt(() => ccf.historical.getStateRange(1, 2, 3)),
    four: attempt(() => ccf.historical.getStateRange(1, 2, 3, 4)),
  } };
}
`;

const FUNCTIONS = [
  "globals",
  "caller",
  "sha256Only",
  "kvDelete",
  "oneArgSet",
  "lenientBufToStr",
  "hostDataDigest",
  "uint8",
  "historical",
  "snp",
];

function makeApp(): { store: Store; app: JsApp } {
  const store = new Store();
  const tx = store.begin();
  const modules: Record<string, string> = {
    "app.js": APP,
    "node_modules/@microsoft/ccf-app/converters.js": readFileSync(
      join(CCF_APP_DIR, "converters.js"),
      "utf8",
    ),
    "node_modules/@microsoft/ccf-app/global.js": readFileSync(
      join(CCF_APP_DIR, "global.js"),
      "utf8",
    ),
  };
  for (const [name, src] of Object.entries(modules)) {
    tx.map(Tables.MODULES).set(Buffer.from(`/${name}`), Buffer.from(src));
  }
  for (const fn of FUNCTIONS) {
    tx.map(Tables.ENDPOINTS).set(
      Buffer.from(`POST /${fn}`),
      Buffer.from(
        JSON.stringify({
          js_module: "/app.js",
          js_function: fn,
          // Native CCF gives `caller: null` for an empty policy list.
          authn_policies: fn === "caller" ? [] : ["no_auth"],
          mode: "readwrite",
          forwarding_required: "never",
          openapi: {},
        }),
      ),
    );
  }
  store.commit(tx);
  const app = new JsApp({
    log: () => {},
    consensus: {
      lastCommitted: () => ({ view: 1, seqno: 1 }),
      statusFor: () => "Unknown",
      viewFor: () => undefined,
    },
  });
  return { store, app };
}

async function call(name: string): Promise<Record<string, unknown>> {
  const { store, app } = makeApp();
  const tx = store.begin();
  const endpoint = readAppEndpoints(tx).find((e) => e.path === `/app/${name}`);
  assert.ok(endpoint);
  const req: EndpointRequest = {
    method: "POST",
    path: `/app/${name}`,
    query: "",
    params: {},
    headers: {},
    body: Buffer.alloc(0),
    clientCert: undefined,
    httpVersion: "1.1",
    hostname: "",
  };
  const caller: Caller | null = authenticate(endpoint.authnPolicies, req, tx);
  const result = await app.execute(endpoint, req, caller, tx);
  assert.equal(result.response.status, 200, String(result.response.body));
  return JSON.parse(String(result.response.body)) as Record<string, unknown>;
}

describe("CCF native runtime quirks (§1.9)", () => {
  it("1: installs the helpers the .d.ts omits, and no governance effects in apps", async () => {
    const g = await call("globals");
    assert.equal(g.pemToId, "function");
    assert.equal(g.tcbHexToPolicy, "function");
    assert.equal(g.validateConstitution, "function");
    assert.equal(g.host, "object");
    assert.equal(g.setJwtPublicSigningKeys, "undefined");
    assert.equal(g.removeJwtPublicSigningKeys, "undefined");
    assert.equal(g.refreshAppBytecodeCache, "undefined");
    assert.equal(g.node, "undefined");
    assert.equal(g.network, "undefined");
  });

  it("2: tolerates the deprecated top-level crypto aliases (absent natively, harmless if present)", async () => {
    const g = await call("globals");
    for (const t of g.aliases as string[]) assert.ok(t === "undefined" || t === "function", t);
  });

  it("3: gives caller null, not undefined, when authn_policies is empty", async () => {
    assert.deepEqual(await call("caller"), { isNull: true, type: "object" });
  });

  it("4: digests with SHA-256 only", async () => {
    const r = (await call("sha256Only")) as Record<string, { value?: number; error?: string }>;
    assert.deepEqual(r.sha256, { value: 32 });
    assert.ok(r.sha384?.error !== undefined);
    assert.ok(r.sha512?.error !== undefined);
  });

  it("7: KvMap.delete returns undefined (set returns the map)", async () => {
    assert.deepEqual(await call("kvDelete"), {
      present: "undefined",
      absent: "undefined",
      setReturnsMap: true,
    });
  });

  it("8: bufToStr is lenient: bad UTF-8 becomes U+FFFD, never a throw", async () => {
    const r = (await call("lenientBufToStr")) as { codes: number[] };
    assert.equal(r.codes[0], 0x61);
    assert.ok(r.codes.includes(0xfffd));
    assert.ok(r.codes.includes(0x62));
  });

  it("8: so add_snp_host_data's bufToStr comparison of raw digests works", async () => {
    assert.deepEqual(await call("hostDataDigest"), { equal: true });
  });
});

describe("quirks ccf-ts cannot reproduce, tolerated", () => {
  it("6: snp_attestation is a global (not on ccf) whose verification is unavailable", async () => {
    // The native result spells `plaform_info`; ccf-ts has no SNP verification to spell it in.
    const r = (await call("snp")) as {
      global: string;
      onCcf: string;
      verify: { message?: string };
    };
    assert.equal(r.global, "object");
    assert.equal(r.onCcf, "undefined");
    assert.equal(
      r.verify.message,
      "snp_attestation.verifySnpAttestation is not available in this version of ccf-ts",
    );
  });
});

describe("known quirks of the workloads (§7)", () => {
  it("19: a 3-argument getStateRange (the logging app's page pre-fetch) throws a TypeError, as natively", async () => {
    const r = (await call("historical")) as Record<string, { error?: string; message?: string }>;
    assert.equal(r.three?.error, "TypeError");
    assert.equal(r.three?.message, "Passed 3 arguments, but expected 4");
    assert.equal(r.four?.message, "Failed to get state cache");
  });

  it("20: a one-argument KvMap.set throws a TypeError, as natively", async () => {
    const r = (await call("oneArgSet")) as { error?: string };
    assert.equal(r.error, "TypeError");
  });

  it("22: ccf-app 6.0.1's uint8 converter (2-byte buffers) runs unmodified", async () => {
    assert.deepEqual(await call("uint8"), { length: 2, decoded: 255 });
  });
});
