// Tests for the ccf converters installed into a sandbox: strToBuf, bufToStr, JSON helpers, pemToId.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  certificateId,
  createSelfSignedCertificate,
  EcKeyPair,
} from "../../../src/crypto/index.js";
import { installConverters } from "../../../src/js/ccf/index.js";
import { type Interpreter, JsException } from "../../../src/js/sandbox/index.js";
import { evaluate, sandbox } from "../sandbox/fixture.js";

function throwsGuest(fn: () => unknown, name: string, message?: RegExp | string): void {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof JsException, String(e));
    assert.equal(e.jsName, name);
    if (typeof message === "string") assert.equal(e.jsMessage, message);
    else if (message !== undefined) assert.match(e.jsMessage, message);
    return true;
  });
}

describe("ccf converters", () => {
  let interp: Interpreter;
  before(async () => {
    interp = (await sandbox()).interp;
    interp.define("ccf.other", 7);
    installConverters(interp);
  });
  after(() => interp.dispose());

  it("installs the functions on ccf, keeping other members and leaving no helper global", () => {
    assert.deepEqual(
      evaluate(
        interp,
        `[ccf.other, typeof ccf.strToBuf, typeof ccf.bufToStr, typeof ccf.jsonCompatibleToBuf,
          typeof ccf.bufToJsonCompatible, typeof ccf.pemToId, typeof globalThis.__ccfConvertersHost]`,
      ),
      [7, "function", "function", "function", "function", "function", "undefined"],
    );
  });

  it("strToBuf encodes UTF-8 into an ArrayBuffer", () => {
    assert.deepEqual(
      evaluate(
        interp,
        `(() => { const b = ccf.strToBuf("h\\u00e9\\u20ac"); return [b instanceof ArrayBuffer, Array.from(new Uint8Array(b))]; })()`,
      ),
      [true, [0x68, 0xc3, 0xa9, 0xe2, 0x82, 0xac]],
    );
    assert.deepEqual(evaluate(interp, `ccf.strToBuf("").byteLength`), 0);
  });

  it("strToBuf refuses a non-string with a TypeError (no coercion)", () => {
    for (const arg of ["1", "undefined", "null", "{}", "new String('x')", "[]"]) {
      throwsGuest(
        () => evaluate(interp, `ccf.strToBuf(${arg})`),
        "TypeError",
        "Argument must be a string",
      );
    }
  });

  it("bufToStr decodes UTF-8 and round-trips strToBuf", () => {
    assert.equal(
      evaluate(interp, `ccf.bufToStr(ccf.strToBuf("h\\u00e9llo \\u{1F600}"))`),
      "h\u00e9llo \u{1F600}",
    );
    assert.equal(evaluate(interp, `ccf.bufToStr(new ArrayBuffer(0))`), "");
  });

  it("bufToStr is lenient: invalid UTF-8 becomes U+FFFD instead of throwing", () => {
    assert.equal(
      evaluate(interp, `ccf.bufToStr(new Uint8Array([0x61, 0xff, 0x62, 0xc3]).buffer)`),
      "a\ufffdb\ufffd",
    );
  });

  it("bufToStr refuses anything but an ArrayBuffer with a TypeError", () => {
    for (const arg of [
      "'abc'",
      "new Uint8Array(2)",
      "new DataView(new ArrayBuffer(1))",
      "undefined",
      "{}",
    ]) {
      throwsGuest(
        () => evaluate(interp, `ccf.bufToStr(${arg})`),
        "TypeError",
        "Argument must be an ArrayBuffer",
      );
    }
  });

  it("jsonCompatibleToBuf stringifies in the guest, honouring toJSON", () => {
    assert.equal(
      evaluate(
        interp,
        `ccf.bufToStr(ccf.jsonCompatibleToBuf({ a: [1, "x", null], b: { toJSON() { return 5; } }, c: undefined }))`,
      ),
      '{"a":[1,"x",null],"b":5}',
    );
    assert.equal(evaluate(interp, `ccf.bufToStr(ccf.jsonCompatibleToBuf("s"))`), '"s"');
  });

  it("jsonCompatibleToBuf(undefined) throws a TypeError", () => {
    throwsGuest(() => evaluate(interp, `ccf.jsonCompatibleToBuf(undefined)`), "TypeError");
    throwsGuest(() => evaluate(interp, `ccf.jsonCompatibleToBuf(() => 1)`), "TypeError");
  });

  it("bufToJsonCompatible parses JSON, with a SyntaxError on bad JSON", () => {
    assert.deepEqual(
      evaluate(interp, `ccf.bufToJsonCompatible(ccf.strToBuf('{"k":[1,2,{"x":true}]}'))`),
      {
        k: [1, 2, { x: true }],
      },
    );
    assert.deepEqual(
      evaluate(
        interp,
        `ccf.bufToJsonCompatible(ccf.jsonCompatibleToBuf({ n: 1.5, s: "\\u00e9" }))`,
      ),
      { n: 1.5, s: "\u00e9" },
    );
    throwsGuest(
      () => evaluate(interp, `ccf.bufToJsonCompatible(ccf.strToBuf("{oops"))`),
      "SyntaxError",
    );
    throwsGuest(() => evaluate(interp, `ccf.bufToJsonCompatible(new Uint8Array(1))`), "TypeError");
  });

  it("pemToId is the hex SHA-256 of the certificate DER, as certificateId", async () => {
    const key = EcKeyPair.generate("secp384r1");
    const pem = await createSelfSignedCertificate(key, {
      subjectName: "CN=member0",
      validFrom: new Date("2025-01-01T00:00:00Z"),
      validityDays: 365,
    });
    interp.define("testPem", pem);
    const id = evaluate(interp, `ccf.pemToId(testPem)`);
    assert.equal(id, certificateId(pem));
    assert.match(id, /^[0-9a-f]{64}$/);
  });

  it("pemToId throws on a bad PEM or a non-string", () => {
    throwsGuest(() => evaluate(interp, `ccf.pemToId("not a certificate")`), "InternalError");
    throwsGuest(() => evaluate(interp, `ccf.pemToId(5)`), "TypeError");
    assert.equal(interp.dead, false);
  });
});
