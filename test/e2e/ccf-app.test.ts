// The @microsoft/ccf-app package (crypto.js, converters.js, kv.js), used by an app built with
// rollup (test/fixtures/apps/ccf-app-check) and deployed at genesis on a real node, called over
// HTTPS with a user's client certificate. Results are checked against CCF's documentation,
// published test vectors (RFC 8032, RFC 4231, RFC 5649, RFC 7515, RFC 7748, FIPS 180-2) and
// Node's own crypto as an independent implementation.

import "reflect-metadata";
import assert from "node:assert/strict";
import {
  constants,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  KeyObject,
  publicEncrypt,
  randomBytes,
  privateDecrypt,
  sign as nodeSign,
  verify as nodeVerify,
  webcrypto,
} from "node:crypto";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as x509 from "@peculiar/x509";
import { Agent, request } from "undici";
import { openAppNodeConfig } from "../helpers/node-config.js";
import { startNode, waitFor } from "../helpers/process.js";
import { makeMemberAndUser } from "../helpers/identities.js";

const ROOT = join(import.meta.dirname, "../..");
const BUNDLE = join(ROOT, "test/fixtures/apps/ccf-app-check/dist/bundle.json");

// ---- Published test vectors --------------------------------------------------------------

/** RFC 8032 §7.1, TEST 1: Ed25519 secret key, public key, and signature of the empty message. */
const RFC8032 = {
  secret: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
  public: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
  signature:
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
};
/** RFC 7748 §6.1: Alice's X25519 private and public keys. */
const RFC7748 = {
  secret: "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
  public: "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
};
/** RFC 7515 Appendix A.3: the ES256 example key. */
const RFC7515_P256 = {
  kty: "EC",
  crv: "P-256",
  x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
  y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
  d: "jpsQnnGQmL-YBIffH1136cLSG6-SvIz3uxYQqhCMjPs",
};
/** RFC 4231 §4.3, test case 2: HMAC-SHA-256. */
const RFC4231 = {
  key: "Jefe",
  data: "what do ya want for nothing?",
  sha256: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
};
/** RFC 5649 §6: the 192-bit KEK and its two examples. */
const RFC5649 = {
  kek: "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8",
  cases: [
    {
      key: "c37b7e6492584340bed12207808941155068f738",
      wrapped: "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
    },
    { key: "466f7250617369", wrapped: "afbeb0f07dfbf5419200f2ccb50bb24f" },
  ],
};
/** FIPS 180-2 SHA-256 examples. */
const SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// ---- Shapes of the app's answers ---------------------------------------------------------

interface Thrown {
  threw: string;
  message: string;
}
interface PemPair {
  privateKey: string;
  publicKey: string;
}
type Jwk = Record<string, string>;

interface Encoded<T> {
  value: T;
  hex: string;
  byteLength: number;
  decoded: T;
}
interface NumberCases<T = number> {
  cases: Encoded<T>[];
  rejects: string[];
}
interface ViewResult {
  hex: string;
  byteLength: number;
  decoded: number[];
}
interface ConvertersAnswer {
  bool: NumberCases<boolean> & { decode02: boolean };
  int8: NumberCases;
  uint8: NumberCases;
  int16: NumberCases;
  uint16: NumberCases;
  int32: NumberCases;
  uint32: NumberCases;
  int64: NumberCases<string>;
  uint64: NumberCases<string>;
  float32: NumberCases;
  float64: NumberCases;
  string: NumberCases<string> & { invalidUtf8CodePoints: number[] };
  json: NumberCases<unknown>;
  checkedJson: NumberCases<unknown> & { secondEntryNotChecked: string[] };
  typedArray: {
    uint8: ViewResult;
    subarray: ViewResult;
    int32: ViewResult;
    float64: ViewResult;
    decodedTypes: boolean[];
    encodeCopies: boolean;
  };
  arrayBuffer: { hex: string; encodeIsIdentity: boolean; decodeIsIdentity: boolean };
}

interface GenerateAnswer {
  aes: { byteLengths: number[]; twoKeysDiffer: boolean; rejects: string };
  rsa: { default: PemPair; e3: PemPair };
  ecdsa: { secp256r1: PemPair; secp384r1: PemPair; rejects: string };
  eddsa: { curve25519: PemPair; x25519: PemPair; rejects: string };
}

interface Signed {
  publicKey: string;
  signature: string;
  byteLength: number;
  verifies: boolean | Thrown;
  verifiesOtherData: boolean | Thrown;
}
interface SignAnswer {
  ecdsaP256: Signed;
  ecdsaP384: Signed;
  ecdsaP384Sha384: {
    publicKey: string;
    signature: string;
    byteLength: number;
    verify: boolean | Thrown;
  };
  ecdsaWrongKey: boolean;
  rsaPss: Signed;
  eddsa: Signed;
  eddsaRfc8032Empty: string;
  hmac: {
    sha256: string;
    sha384: string;
    sha512: string;
    rfc4231: string;
    verify: boolean | Thrown;
  };
  rejects: { unknownAlgorithm: string; md5: string; wrongArgCount: string };
}

type VerifyAnswer = Record<string, { genuine: boolean | Thrown; tampered: boolean | Thrown }>;

interface WrapAnswer {
  key: string;
  rsaOaep: { wrapped: string; unwrapped: string };
  rsaOaepLabel: { wrapped: string; unwrapped: string; withoutLabel: string };
  rsaOaepGeneratedKey: string;
  nodeWrapped: string | Thrown;
  rsaOaepAesKwp: { wrapped: string; unwrapped: string };
  aesKwp: {
    rfc5649: { wrapped: string; unwrapped: string }[];
    roundTrip: string;
    wrongKek: string;
  };
  rejects: { unknownAlgorithm: string };
}

interface DigestAnswer {
  abc: string;
  empty: string;
  allBytes: string;
  sha384: string;
  sha512: string;
}

interface JwkRoundTrip {
  pub: Jwk;
  pubNoKid: Jwk;
  priv: Jwk;
  privNoKid: Jwk;
  pubOfPriv: Jwk | Thrown;
  pubPem: string;
  privPem: string;
  pubAgain: Jwk;
  privAgain: Jwk;
}
interface JwkAnswer {
  ecP256: JwkRoundTrip;
  ecP384: JwkRoundTrip;
  rsa: JwkRoundTrip;
  ed25519: JwkRoundTrip;
  x25519: JwkRoundTrip;
  generatedEcRoundTrip: boolean;
  rejects: Record<string, string>;
}

interface X509Answer {
  bundle: { ca: boolean; caAndLeaf: boolean; garbage: boolean; truncated: boolean };
  chain: {
    leafUnderCa: boolean;
    leafAndCaUnderCa: boolean;
    leafUnderOtherCa: boolean;
    leafUnderBoth: boolean;
    garbage: boolean;
  };
}

interface KvWriteAnswer {
  setReturnsTheMap: boolean;
  addReturnsTheSet: boolean;
  ownWrites: Record<string, unknown>;
}
interface KvReadAnswer {
  scores: {
    get: { alice: number | null; bob: number | null };
    missingIsUndefined: boolean;
    has: { alice: boolean; bob: boolean; zed: boolean };
    size: number;
    entries: [string, number][];
    forEachPassesTheMap: boolean;
    rawBob: string | null;
    versionOfAlice: number | null;
    versionOfZed: number | null;
  };
  events: {
    get: unknown;
    has: { one: boolean; two: boolean };
    size: number;
    entries: [string, unknown][];
    rawOne: string | null;
  };
  members: {
    has: { x: boolean; y: boolean; z: boolean };
    size: number;
    keys: string[];
    forEachPassesTheSet: boolean;
    rawX: string | null;
    versionOfY: number | null;
  };
}
interface KvDeleteAnswer {
  deleteReturnsUndefined: boolean;
  ownWrites: { hasBob: boolean; scoresSize: number; eventsSize: number };
}

// ---- Helpers -----------------------------------------------------------------------------

const b64url = (hex: string) => Buffer.from(hex, "hex").toString("base64url");
const utf8Hex = (s: string) => Buffer.from(s, "utf8").toString("hex");
const PUBLIC_PEM = /^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n?$/;
const PRIVATE_PEM = /^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n?$/;

function pemPair(privateKey: KeyObject): PemPair {
  return {
    privateKey: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicKey: createPublicKey(privateKey).export({ type: "spki", format: "pem" }).toString(),
  };
}

function jwkOf(key: KeyObject): Jwk {
  const jwk: Record<string, unknown> = { ...key.export({ format: "jwk" }) };
  const out: Jwk = {};
  for (const [k, v] of Object.entries(jwk)) if (typeof v === "string") out[k] = v;
  return out;
}

/** The public fields of a JWK (those a public-key JWK carries). */
function publicPart(jwk: Jwk): Jwk {
  const out: Jwk = {};
  for (const k of ["kty", "crv", "x", "y", "n", "e"]) {
    const v = jwk[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** A Node key generated the same way as keys of `kind`, as a PEM pair. */
function nodeKeyPair(kind: "P-256" | "P-384" | "rsa" | "ed25519"): {
  pems: PemPair;
  privateKey: KeyObject;
} {
  const k =
    kind === "rsa"
      ? generateKeyPairSync("rsa", { modulusLength: 2048 })
      : kind === "ed25519"
        ? generateKeyPairSync("ed25519")
        : generateKeyPairSync("ec", { namedCurve: kind });
  return { pems: pemPair(k.privateKey), privateKey: k.privateKey };
}

/** The key a PEM holds is the key `expected` holds (same public JWK). */
function assertSameKey(pem: string, expected: KeyObject, what: string) {
  const isPrivate = pem.includes("PRIVATE KEY");
  const actual = isPrivate ? createPrivateKey(pem) : createPublicKey(pem);
  const want = isPrivate ? expected : createPublicKey(expected);
  assert.deepEqual(jwkOf(actual), jwkOf(want), what);
}

async function makeCertificates() {
  x509.cryptoProvider.set(webcrypto);
  const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const usages: webcrypto.KeyUsage[] = ["sign", "verify"];
  const notBefore = new Date(Date.now() - 24 * 3600_000);
  const notAfter = new Date(Date.now() + 365 * 24 * 3600_000);
  const makeCa = async (name: string, serialNumber: string) => {
    const keys = await webcrypto.subtle.generateKey(alg, true, usages);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber,
      name,
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: alg,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
      ],
    });
    return { keys, cert };
  };
  const ca = await makeCa("CN=ccf-app-check CA", "01");
  const otherCa = await makeCa("CN=ccf-app-check CA", "02");
  const leafKeys = await webcrypto.subtle.generateKey(alg, true, usages);
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: "03",
    subject: "CN=ccf-app-check leaf",
    issuer: ca.cert.subject,
    notBefore,
    notAfter,
    signingKey: ca.keys.privateKey,
    publicKey: leafKeys.publicKey,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(false, undefined, true)],
  });
  const pem = (c: x509.X509Certificate) => `${c.toString("pem").replace(/\r\n/g, "\n")}\n`;
  return {
    ca: pem(ca.cert),
    otherCa: pem(otherCa.cert),
    leaf: pem(leaf),
    leafKey: KeyObject.from(leafKeys.privateKey),
  };
}

// ---- The tests ---------------------------------------------------------------------------

describe("@microsoft/ccf-app crypto, converters and typed KV, from a rollup-built app on a node", () => {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-ccf-app-"));
  let node: Awaited<ReturnType<typeof startNode>>["node"];
  let base: string;
  let user: Agent;

  async function call<T>(method: "GET" | "POST", path: string, body?: unknown) {
    const res = await request(`${base}/app${path}`, {
      dispatcher: user,
      method,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
    });
    const text = await res.body.text();
    assert.equal(res.statusCode, 200, `${method} ${path}: ${text}`);
    return { headers: res.headers, body: JSON.parse(text) as T };
  }

  before(async () => {
    assert.ok(existsSync(BUNDLE), `the test app is built by npm ci (build:samples): ${BUNDLE}`);
    makeMemberAndUser(dir);
    const config = openAppNodeConfig(dir, BUNDLE, { tx_count: 10, delay: "50ms" });
    ({ node, base } = await startNode(dir, config));
    user = new Agent({
      connect: {
        ca: readFileSync(join(dir, "service_cert.pem"), "utf8"),
        cert: readFileSync(join(dir, "user0_cert.pem"), "utf8"),
        key: readFileSync(join(dir, "user0_privk.pem"), "utf8"),
      },
    });
    // The app answers once the service is open with it deployed.
    await waitFor("the app to answer", async () => {
      const res = await request(`${base}/app/crypto/digest`, { dispatcher: user });
      await res.body.text();
      return res.statusCode === 200 ? true : undefined;
    });
  });

  after(async () => {
    await user?.close();
    if (node?.exitCode === null) node.kill("SIGTERM");
  });

  describe("converters.js", () => {
    let c: ConvertersAnswer;
    before(async () => {
      c = (await call<ConvertersAnswer>("GET", "/converters")).body;
    });

    const bytes = <T>(r: NumberCases<T>) => r.cases.map((x) => [x.hex, x.byteLength]);
    const roundTrips = <T>(r: NumberCases<T>) => {
      for (const x of r.cases) assert.deepEqual(x.decoded, x.value);
    };

    it("bool: 1 byte, 01 for true and 00 for false; only 01 decodes as true; rejects a non-boolean", () => {
      assert.deepEqual(bytes(c.bool), [
        ["01", 1],
        ["00", 1],
      ]);
      roundTrips(c.bool);
      assert.equal(c.bool.decode02, false);
      assert.deepEqual(c.bool.rejects, ["TypeError"]);
    });

    it("int8, int16, uint16, int32, uint32: little-endian two's complement of the documented width, range- and integer-checked", () => {
      assert.deepEqual(bytes(c.int8), [
        ["ce", 1],
        ["80", 1],
        ["7f", 1],
        ["00", 1],
      ]);
      assert.deepEqual(c.int8.rejects, ["RangeError", "RangeError", "TypeError", "TypeError"]);
      assert.deepEqual(bytes(c.int16), [
        ["18fc", 2],
        ["0080", 2],
        ["ff7f", 2],
      ]);
      assert.deepEqual(c.int16.rejects, ["RangeError", "RangeError", "TypeError"]);
      assert.deepEqual(bytes(c.uint16), [
        ["50c3", 2],
        ["ffff", 2],
        ["0000", 2],
      ]);
      assert.deepEqual(c.uint16.rejects, ["RangeError", "RangeError"]);
      assert.deepEqual(bytes(c.int32), [
        ["b03cffff", 4],
        ["00000080", 4],
        ["ffffff7f", 4],
      ]);
      assert.deepEqual(c.int32.rejects, ["RangeError", "RangeError", "TypeError"]);
      assert.deepEqual(bytes(c.uint32), [
        ["50c30000", 4],
        ["ffffffff", 4],
        ["00000000", 4],
      ]);
      assert.deepEqual(c.uint32.rejects, ["RangeError", "RangeError", "TypeError"]);
      for (const r of [c.int8, c.int16, c.uint16, c.int32, c.uint32]) roundTrips(r);
    });

    it("uint8: the value in byte 0 of a 2-byte buffer, as @microsoft/ccf-app 6.0.1 writes it (its docs say 1 byte)", () => {
      // ccf-app 6.0.1's Uint8Converter allocates new ArrayBuffer(2) (ccf-app-api.md §3.3): the
      // app bundles that code, so a real CCF node stores the same 2 bytes.
      assert.deepEqual(bytes(c.uint8), [
        ["ff00", 2],
        ["0000", 2],
        ["2a00", 2],
      ]);
      roundTrips(c.uint8);
      assert.deepEqual(c.uint8.rejects, ["RangeError", "RangeError", "TypeError"]);
    });

    it("int64 and uint64: 8 bytes little-endian, bigint in and out, beyond 2^53; a number is rejected", () => {
      assert.deepEqual(bytes(c.int64), [
        ["0100000000002000", 8],
        ["ffffffffffffffff", 8],
        ["0000000000000080", 8],
      ]);
      assert.deepEqual(
        c.int64.cases.map((x) => x.decoded),
        ["9007199254740993", "-1", "-9223372036854775808"],
      );
      assert.deepEqual(c.int64.rejects, ["TypeError"]);
      assert.deepEqual(bytes(c.uint64), [
        ["0100000000002000", 8],
        ["ffffffffffffffff", 8],
      ]);
      assert.deepEqual(
        c.uint64.cases.map((x) => x.decoded),
        ["9007199254740993", "18446744073709551615"],
      );
      assert.deepEqual(c.uint64.rejects, ["TypeError"]);
    });

    it("float32 and float64: IEEE 754 little-endian; float32 decodes to the nearest single", () => {
      assert.deepEqual(bytes(c.float32), [
        ["25064940", 4],
        ["000000bf", 4],
        ["f9021550", 4],
      ]);
      assert.deepEqual(
        c.float32.cases.map((x) => x.decoded),
        [Math.fround(3.141), -0.5, Math.fround(1e10)],
      );
      assert.deepEqual(c.float32.rejects, ["TypeError"]);
      assert.deepEqual(bytes(c.float64), [
        ["54e3a59bc4200940", 8],
        ["000000000000e0bf", 8],
        ["ffffffffffffef7f", 8],
      ]);
      roundTrips(c.float64);
      assert.deepEqual(c.float64.rejects, ["TypeError"]);
    });

    it("string: UTF-8 both ways; invalid UTF-8 decodes leniently to U+FFFD; rejects a non-string", () => {
      const texts = ["my-string", "h\u00e9llo \u20ac \u{1f600}"];
      assert.deepEqual(
        bytes(c.string),
        texts.map((t) => [utf8Hex(t), Buffer.byteLength(t)]),
      );
      assert.equal(c.string.cases[0]?.hex, "6d792d737472696e67");
      roundTrips(c.string);
      assert.deepEqual(c.string.invalidUtf8CodePoints, [0x61, 0xfffd, 0x62]);
      assert.deepEqual(c.string.rejects, ["TypeError"]);
    });

    it("json: the UTF-8 of JSON.stringify, parsed back; undefined cannot be encoded; bad JSON is a SyntaxError", () => {
      assert.deepEqual(
        bytes(c.json),
        ['{"name":"John","age":42}', '[1,"two",null,{"three":true}]', '"text"'].map((t) => [
          utf8Hex(t),
          t.length,
        ]),
      );
      roundTrips(c.json);
      assert.notEqual(c.json.rejects[0], "none", "json().encode(undefined) throws");
      assert.equal(c.json.rejects[1], "SyntaxError");
    });

    it("checkedJson: encodes like json, and throws TypeError for a Map or a Date", () => {
      assert.deepEqual(bytes(c.checkedJson), [
        [
          utf8Hex('{"name":"John","nested":[1,{"a":null}]}'),
          '{"name":"John","nested":[1,{"a":null}]}'.length,
        ],
      ]);
      roundTrips(c.checkedJson);
      assert.deepEqual(c.checkedJson.rejects, ["TypeError", "TypeError", "TypeError", "TypeError"]);
    });

    it("checkedJson in @microsoft/ccf-app 6.0.1 misses a Map or Date after the first entry (a package bug, bundled into the app)", () => {
      // checkJsonSafe recurses with Array.prototype.every over a callback returning undefined,
      // which stops after the first element. The same bundled code runs on a real CCF node.
      assert.deepEqual(c.checkedJson.secondEntryNotChecked, ["none", "none"]);
    });

    it("typedArray: copies exactly the view's bytes (a subarray too) and decodes to the same class", () => {
      assert.deepEqual(c.typedArray.uint8, { hex: "2a", byteLength: 1, decoded: [42] });
      assert.deepEqual(c.typedArray.subarray, { hex: "0203", byteLength: 2, decoded: [2, 3] });
      assert.deepEqual(c.typedArray.int32, {
        hex: "01000000ffffffffffffff7f",
        byteLength: 12,
        decoded: [1, -1, 2147483647],
      });
      assert.deepEqual(c.typedArray.float64, {
        hex: "54e3a59bc4200940000000000000e0bf",
        byteLength: 16,
        decoded: [3.141, -0.5],
      });
      assert.deepEqual(c.typedArray.decodedTypes, [true, true, true]);
      assert.equal(c.typedArray.encodeCopies, true);
    });

    it("arrayBuffer: the identity, without a copy", () => {
      assert.deepEqual(c.arrayBuffer, {
        hex: "070809",
        encodeIsIdentity: true,
        decodeIsIdentity: true,
      });
    });
  });

  describe("kv.js typed maps, across requests", () => {
    let writeSeqno: number;
    let afterWrite: KvReadAnswer;

    before(async () => {
      const written = await call<KvWriteAnswer>("POST", "/kv/write");
      assert.deepEqual(written.body, {
        setReturnsTheMap: true,
        addReturnsTheSet: true,
        ownWrites: { bob: 300, hasCarol: true, scoresSize: 3, eventsSize: 2, membersSize: 2 },
      });
      const txid = String(written.headers["x-ms-ccf-transaction-id"]);
      assert.match(txid, /^\d+\.\d+$/);
      writeSeqno = Number(txid.split(".")[1]);
      afterWrite = (await call<KvReadAnswer>("GET", "/kv/read")).body;
    });

    it("a typedKv(string, uint32) map reads back what an earlier request set: get, has, size, forEach", () => {
      const s = afterWrite.scores;
      assert.deepEqual(s.get, { alice: 7, bob: 300 });
      assert.equal(s.missingIsUndefined, true);
      assert.deepEqual(s.has, { alice: true, bob: true, zed: false });
      assert.equal(s.size, 3);
      assert.deepEqual(
        [...s.entries].sort(([a], [b]) => a.localeCompare(b)),
        [
          ["alice", 7],
          ["bob", 300],
          ["carol", 70000],
        ],
      );
      assert.equal(s.forEachPassesTheMap, true);
    });

    it("stores the converters' bytes: the uint32 value little-endian, a typedKvSet member as 8 zero bytes, json as its UTF-8", () => {
      assert.equal(afterWrite.scores.rawBob, "2c010000");
      assert.equal(afterWrite.members.rawX, "0000000000000000");
      assert.equal(afterWrite.events.rawOne, utf8Hex('{"kind":"start","at":10}'));
    });

    it("a public typedKv(int64, json) map keys by bigint beyond 2^53", () => {
      const e = afterWrite.events;
      assert.deepEqual(e.get, { kind: "stop", at: 20 });
      assert.deepEqual(e.has, { one: true, two: false });
      assert.equal(e.size, 2);
      assert.deepEqual(
        [...e.entries].sort(([a], [b]) => a.length - b.length),
        [
          ["1", { kind: "start", at: 10 }],
          [(2n ** 60n).toString(), { kind: "stop", at: 20 }],
        ],
      );
    });

    it("a typedKvSet reads back its members", () => {
      const m = afterWrite.members;
      assert.deepEqual(m.has, { x: true, y: true, z: false });
      assert.equal(m.size, 2);
      assert.deepEqual([...m.keys].sort(), ["x", "y"]);
      assert.equal(m.forEachPassesTheSet, true);
    });

    it("getVersionOfPreviousWrite is the seqno of the writing transaction, and undefined for a key never written", () => {
      assert.equal(afterWrite.scores.versionOfAlice, writeSeqno);
      assert.equal(afterWrite.members.versionOfY, writeSeqno);
      assert.equal(afterWrite.scores.versionOfZed, null);
    });

    it("delete and clear persist to the next request; delete returns undefined", async () => {
      const deleted = (await call<KvDeleteAnswer>("POST", "/kv/delete")).body;
      assert.deepEqual(deleted, {
        deleteReturnsUndefined: true,
        ownWrites: { hasBob: false, scoresSize: 2, eventsSize: 0 },
      });
      const r = (await call<KvReadAnswer>("GET", "/kv/read")).body;
      assert.deepEqual(r.scores.has, { alice: true, bob: false, zed: false });
      assert.equal(r.scores.get.bob, null);
      assert.equal(r.scores.size, 2);
      assert.deepEqual(
        [...r.scores.entries].sort(([a], [b]) => a.localeCompare(b)),
        [
          ["alice", 7],
          ["carol", 70000],
        ],
      );
      assert.equal(r.scores.rawBob, null);
      assert.equal(r.events.size, 0);
      assert.deepEqual(r.events.entries, []);
      assert.deepEqual(r.members.has, { x: false, y: true, z: false });
      assert.deepEqual(r.members.keys, ["y"]);
    });
  });

  describe("crypto.js", () => {
    it("generates AES keys of 16/24/32 bytes and RSA, ECDSA (P-256, P-384), Ed25519 and X25519 PEM key pairs; rejects other sizes and curves with RangeError", async () => {
      const g = (await call<GenerateAnswer>("GET", "/crypto/generate")).body;
      assert.deepEqual(g.aes, {
        byteLengths: [16, 24, 32],
        twoKeysDiffer: true,
        rejects: "RangeError",
      });
      const check = (p: PemPair, type: string, details: Record<string, unknown>) => {
        assert.match(p.publicKey, PUBLIC_PEM);
        assert.match(p.privateKey, PRIVATE_PEM);
        const priv = createPrivateKey(p.privateKey);
        assert.equal(priv.asymmetricKeyType, type);
        const actual: Record<string, unknown> = { ...priv.asymmetricKeyDetails };
        for (const [k, v] of Object.entries(details)) assert.equal(actual[k], v, `${type} ${k}`);
        assertSameKey(p.publicKey, priv, `${type}: the public key is the private key's`);
      };
      check(g.rsa.default, "rsa", { modulusLength: 2048, publicExponent: 65537n });
      check(g.rsa.e3, "rsa", { modulusLength: 2048, publicExponent: 3n });
      check(g.ecdsa.secp256r1, "ec", { namedCurve: "prime256v1" });
      check(g.ecdsa.secp384r1, "ec", { namedCurve: "secp384r1" });
      assert.equal(g.ecdsa.rejects, "RangeError");
      check(g.eddsa.curve25519, "ed25519", {});
      check(g.eddsa.x25519, "x25519", {});
      assert.equal(g.eddsa.rejects, "RangeError");
    });

    it("signs with ECDSA (P1363 r||s), RSA-PSS, EdDSA and HMAC; Node verifies the signatures and the app verifies its own", async () => {
      const data = "the data to sign";
      const ed = createPrivateKey({
        key: { kty: "OKP", crv: "Ed25519", d: b64url(RFC8032.secret), x: b64url(RFC8032.public) },
        format: "jwk",
      });
      const s = (
        await call<SignAnswer>("POST", "/crypto/sign", {
          data,
          ed25519Rfc8032Pem: ed.export({ type: "pkcs8", format: "pem" }).toString(),
          hmacRfc4231: { key: RFC4231.key, data: RFC4231.data },
        })
      ).body;
      const bytes = Buffer.from(data);
      const sig = (h: string) => Buffer.from(h, "hex");

      for (const [name, r, len] of [
        ["ECDSA P-256", s.ecdsaP256, 64],
        ["ECDSA P-384", s.ecdsaP384, 96],
        ["RSA-PSS", s.rsaPss, 256],
        ["EdDSA", s.eddsa, 64],
      ] as const) {
        assert.equal(r.byteLength, len, name);
        assert.equal(r.verifies, true, `${name}: the app verifies its signature`);
        assert.equal(r.verifiesOtherData, false, `${name}: not over other data`);
      }
      const ecKey = (pem: string) => ({
        key: createPublicKey(pem),
        dsaEncoding: "ieee-p1363" as const,
      });
      assert.ok(
        nodeVerify("sha256", bytes, ecKey(s.ecdsaP256.publicKey), sig(s.ecdsaP256.signature)),
      );
      assert.ok(
        nodeVerify("sha256", bytes, ecKey(s.ecdsaP384.publicKey), sig(s.ecdsaP384.signature)),
      );
      assert.ok(
        nodeVerify(
          "sha256",
          bytes,
          {
            key: createPublicKey(s.rsaPss.publicKey),
            padding: constants.RSA_PKCS1_PSS_PADDING,
            saltLength: 32,
          },
          sig(s.rsaPss.signature),
        ),
      );
      assert.ok(
        nodeVerify(null, bytes, createPublicKey(s.eddsa.publicKey), sig(s.eddsa.signature)),
      );
      // ECDSA with SHA-384 signs; verifying it is SHA-256 only (ccf-app-api.md §1.9.4).
      assert.equal(s.ecdsaP384Sha384.byteLength, 96);
      assert.ok(
        nodeVerify(
          "sha384",
          bytes,
          ecKey(s.ecdsaP384Sha384.publicKey),
          sig(s.ecdsaP384Sha384.signature),
        ),
      );
      assert.equal((s.ecdsaP384Sha384.verify as Thrown).threw, "RangeError");
      assert.equal(s.ecdsaWrongKey, false);

      // Ed25519 is deterministic: RFC 8032's signature of the empty message.
      assert.equal(s.eddsaRfc8032Empty, RFC8032.signature);

      // HMAC keys on the key string's bytes; verifySignature has no HMAC.
      assert.equal(s.hmac.rfc4231, RFC4231.sha256);
      assert.equal(s.hmac.sha256, createHmac("sha256", "secret").update(bytes).digest("hex"));
      assert.equal(s.hmac.sha384, createHmac("sha384", "secret").update(bytes).digest("hex"));
      assert.equal(s.hmac.sha512, createHmac("sha512", "secret").update(bytes).digest("hex"));
      assert.equal(typeof (s.hmac.verify as Thrown).threw, "string", "HMAC verify throws");

      assert.deepEqual(s.rejects, {
        unknownAlgorithm: "RangeError",
        md5: "RangeError",
        wrongArgCount: "TypeError",
      });
    });

    it("verifies Node's ECDSA (P1363), RSA-PSS and Ed25519 signatures, by PEM key and by X.509 certificate; false for other data or another key", async () => {
      const data = "signed by node";
      const bytes = Buffer.from(data);
      const ec = nodeKeyPair("P-256");
      const rsa = nodeKeyPair("rsa");
      const ed = nodeKeyPair("ed25519");
      const other = nodeKeyPair("P-256");
      const certs = await makeCertificates();
      const p1363 = (key: KeyObject) =>
        nodeSign("sha256", bytes, { key, dsaEncoding: "ieee-p1363" }).toString("hex");
      const ecdsa = { name: "ECDSA", hash: "SHA-256" };
      const v = (
        await call<VerifyAnswer>("POST", "/crypto/verify", {
          data,
          cases: {
            ecdsa: { algorithm: ecdsa, key: ec.pems.publicKey, signature: p1363(ec.privateKey) },
            rsaPss: {
              algorithm: { name: "RSA-PSS", hash: "SHA-256", saltLength: 32 },
              key: rsa.pems.publicKey,
              signature: nodeSign("sha256", bytes, {
                key: rsa.privateKey,
                padding: constants.RSA_PKCS1_PSS_PADDING,
                saltLength: 32,
              }).toString("hex"),
            },
            eddsa: {
              algorithm: { name: "EdDSA" },
              key: ed.pems.publicKey,
              signature: nodeSign(null, bytes, ed.privateKey).toString("hex"),
            },
            cert: { algorithm: ecdsa, key: certs.leaf, signature: p1363(certs.leafKey) },
            otherKey: {
              algorithm: ecdsa,
              key: other.pems.publicKey,
              signature: p1363(ec.privateKey),
            },
            sha384: {
              algorithm: { name: "ECDSA", hash: "SHA-384" },
              key: ec.pems.publicKey,
              signature: nodeSign("sha384", bytes, {
                key: ec.privateKey,
                dsaEncoding: "ieee-p1363",
              }).toString("hex"),
            },
          },
        })
      ).body;
      for (const name of ["ecdsa", "rsaPss", "eddsa", "cert"]) {
        assert.deepEqual(v[name], { genuine: true, tampered: false }, name);
      }
      assert.deepEqual(v.otherKey, { genuine: false, tampered: false });
      assert.equal((v.sha384?.genuine as Thrown).threw, "RangeError");
    });

    it("wraps and unwraps keys: RFC 5649's AES-KWP vectors, RSA-OAEP (SHA-256, with and without label) and RSA-OAEP-AES-KWP, interoperating with Node", async () => {
      const rsa = nodeKeyPair("rsa");
      const label = "a label";
      const nodeKey = randomBytes(32);
      const w = (
        await call<WrapAnswer>("POST", "/crypto/wrap", {
          rfc5649: { kek: RFC5649.kek, keys: RFC5649.cases.map((c) => c.key) },
          rsaPublicKey: rsa.pems.publicKey,
          rsaPrivateKey: rsa.pems.privateKey,
          label,
          nodeWrapped: publicEncrypt(
            {
              key: rsa.pems.publicKey,
              oaepHash: "sha256",
              oaepLabel: Buffer.from(label),
              padding: constants.RSA_PKCS1_OAEP_PADDING,
            },
            nodeKey,
          ).toString("hex"),
        })
      ).body;
      assert.equal(w.key.length, 64);
      assert.deepEqual(
        w.aesKwp.rfc5649,
        RFC5649.cases.map((c) => ({ wrapped: c.wrapped, unwrapped: c.key })),
      );
      assert.equal(w.aesKwp.roundTrip, w.key);
      assert.notEqual(w.aesKwp.wrongKek, "none", "unwrapping under another KEK throws");

      const oaep = (wrapped: string, oaepLabel?: string) =>
        privateDecrypt(
          {
            key: rsa.privateKey,
            oaepHash: "sha256",
            padding: constants.RSA_PKCS1_OAEP_PADDING,
            ...(oaepLabel === undefined ? {} : { oaepLabel: Buffer.from(oaepLabel) }),
          },
          Buffer.from(wrapped, "hex"),
        ).toString("hex");
      assert.equal(w.rsaOaep.unwrapped, w.key);
      assert.equal(oaep(w.rsaOaep.wrapped), w.key);
      assert.equal(w.rsaOaepLabel.unwrapped, w.key);
      assert.equal(oaep(w.rsaOaepLabel.wrapped, label), w.key);
      assert.notEqual(w.rsaOaepLabel.withoutLabel, "none", "the label is bound to the wrap");
      assert.equal(w.rsaOaepGeneratedKey, w.key);
      assert.equal(w.nodeWrapped, nodeKey.toString("hex"));

      // RSA-OAEP-AES-KWP: RSA-OAEP(ephemeral AES-256 key) || AES-KWP(ephemeral, key).
      assert.equal(w.rsaOaepAesKwp.unwrapped, w.key);
      const hybrid = Buffer.from(w.rsaOaepAesKwp.wrapped, "hex");
      const ephemeral = Buffer.from(oaep(hybrid.subarray(0, 256).toString("hex"), label), "hex");
      assert.equal(ephemeral.length, 32);
      const kwp = createDecipheriv("id-aes256-wrap-pad", ephemeral, Buffer.from("a65959a6", "hex"));
      const inner = Buffer.concat([kwp.update(hybrid.subarray(256)), kwp.final()]);
      assert.equal(inner.toString("hex"), w.key);

      assert.equal(w.rejects.unknownAlgorithm, "RangeError");
    });

    it("digest: SHA-256 as FIPS 180-2 gives it; SHA-384 and SHA-512 are RangeErrors, as natively", async () => {
      const d = (await call<DigestAnswer>("GET", "/crypto/digest")).body;
      const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      assert.deepEqual(d, {
        abc: SHA256_ABC,
        empty: SHA256_EMPTY,
        allBytes: createHash("sha256").update(all).digest("hex"),
        sha384: "RangeError",
        sha512: "RangeError",
      });
    });

    describe("PEM <-> JWK", () => {
      let j: JwkAnswer;
      const p256 = createPrivateKey({ key: RFC7515_P256, format: "jwk" });
      const p384 = nodeKeyPair("P-384").privateKey;
      const rsa = nodeKeyPair("rsa").privateKey;
      const ed25519 = createPrivateKey({
        key: { kty: "OKP", crv: "Ed25519", d: b64url(RFC8032.secret), x: b64url(RFC8032.public) },
        format: "jwk",
      });
      const x25519 = createPrivateKey({
        key: { kty: "OKP", crv: "X25519", d: b64url(RFC7748.secret), x: b64url(RFC7748.public) },
        format: "jwk",
      });

      before(async () => {
        j = (
          await call<JwkAnswer>("POST", "/crypto/jwk", {
            ecP256: pemPair(p256),
            ecP384: pemPair(p384),
            rsa: pemPair(rsa),
            ed25519: pemPair(ed25519),
            x25519: pemPair(x25519),
          })
        ).body;
      });

      /** CCF's JWK of a key: exactly these fields, kid only when given. */
      const checkFamily = (r: JwkRoundTrip, key: KeyObject, expectedPrivate: Jwk, what: string) => {
        const expectedPublic = publicPart(expectedPrivate);
        assert.deepEqual(r.pub, { ...expectedPublic, kid: "kid-pub" }, `${what} public JWK`);
        assert.deepEqual(r.pubNoKid, expectedPublic, `${what} public JWK without kid`);
        assert.deepEqual(r.priv, { ...expectedPrivate, kid: "kid-priv" }, `${what} private JWK`);
        assert.deepEqual(r.privNoKid, expectedPrivate, `${what} private JWK without kid`);
        assert.match(r.pubPem, PUBLIC_PEM, `${what} public PEM`);
        assert.match(r.privPem, PRIVATE_PEM, `${what} private PEM`);
        assertSameKey(r.pubPem, key, `${what}: jwkToPem gives back the public key`);
        assertSameKey(r.privPem, key, `${what}: jwkToPem gives back the private key`);
        assert.deepEqual(r.pubAgain, r.pub, `${what}: public round trip`);
        assert.deepEqual(r.privAgain, r.priv, `${what}: private round trip`);
      };

      it("EC: pubPemToJwk/pemToJwk give RFC 7515's P-256 JWK fields; pubJwkToPem/jwkToPem give the key back", () => {
        checkFamily(j.ecP256, p256, RFC7515_P256, "P-256");
      });

      it("EC P-384: the JWK Node derives from the same PEM, and back", () => {
        const want = jwkOf(p384);
        assert.equal(want.crv, "P-384");
        checkFamily(j.ecP384, p384, want, "P-384");
        assert.equal(j.generatedEcRoundTrip, true, "a generated key round-trips in the app");
      });

      it("RSA: pubRsaPemToJwk/rsaPemToJwk give n, e (and d, p, q, dp, dq, qi); pubRsaJwkToPem/rsaJwkToPem give the key back", () => {
        const want = jwkOf(rsa);
        assert.deepEqual(Object.keys(want).sort(), [
          "d",
          "dp",
          "dq",
          "e",
          "kty",
          "n",
          "p",
          "q",
          "qi",
        ]);
        checkFamily(j.rsa, rsa, want, "RSA");
      });

      it("EdDSA: pubEddsaPemToJwk/eddsaPemToJwk give RFC 8032's Ed25519 and RFC 7748's X25519 keys as OKP JWKs, and back", () => {
        checkFamily(
          j.ed25519,
          ed25519,
          { kty: "OKP", crv: "Ed25519", x: b64url(RFC8032.public), d: b64url(RFC8032.secret) },
          "Ed25519",
        );
        checkFamily(
          j.x25519,
          x25519,
          { kty: "OKP", crv: "X25519", x: b64url(RFC7748.public), d: b64url(RFC7748.secret) },
          "X25519",
        );
      });

      it("rejects with InternalError a PEM of the wrong key type or kind, a non-PEM, and JWKs with an unknown curve, the wrong kty or a missing field", () => {
        // Crypto failures are InternalErrors (ccf-app-api.md §1.3).
        assert.deepEqual(j.rejects, {
          rsaPemAsEc: "InternalError",
          ecPemAsRsa: "InternalError",
          ecPemAsEddsa: "InternalError",
          notPem: "InternalError",
          unknownCurve: "InternalError",
          wrongKty: "InternalError",
          eddsaMissingX: "InternalError",
        });
        // pubPemToJwk reads a public key PEM only (CCF's make_public_key): not a private one.
        assert.equal((j.ecP256.pubOfPriv as Thrown).threw, "InternalError");
      });
    });

    it("isValidX509CertBundle and isValidX509CertChain: true for well-formed bundles and a chain to the trusted CA, false otherwise", async () => {
      const certs = await makeCertificates();
      const x = (
        await call<X509Answer>("POST", "/crypto/x509", {
          ca: certs.ca,
          leaf: certs.leaf,
          otherCa: certs.otherCa,
        })
      ).body;
      assert.deepEqual(x, {
        bundle: { ca: true, caAndLeaf: true, garbage: false, truncated: false },
        chain: {
          leafUnderCa: true,
          leafAndCaUnderCa: true,
          leafUnderOtherCa: false,
          leafUnderBoth: true,
          garbage: false,
        },
      });
    });
  });
});
