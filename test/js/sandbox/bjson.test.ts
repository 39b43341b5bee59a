import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { QuickJSContext } from "quickjs-emscripten";
import {
  decodeGuestValue,
  encodeHostValue,
  MAX_ATOM_SLOTS,
  UNSUPPORTED,
} from "../../../src/js/sandbox/bjson.js";
import { loadEngine } from "../../../src/js/sandbox/engine.js";
import { GuestView, type HostValue } from "../../../src/js/sandbox/index.js";

/** What the engine itself writes for the guest value `expression`. */
function engineBytes(context: QuickJSContext, expression: string): Uint8Array {
  const value = context.unwrapResult(context.evalCode(`(${expression})`));
  const encoded = context.encodeBinaryJSON(value);
  const bytes = context.getArrayBuffer(encoded);
  const copy = bytes.value.slice();
  bytes.dispose();
  encoded.dispose();
  value.dispose();
  return copy;
}

describe("QuickJS binary object format", () => {
  let context: QuickJSContext;
  before(async () => {
    context = (await loadEngine()).module.newContext();
  });
  after(() => context.dispose());

  it("writes data exactly as the engine does", () => {
    const cases: Array<[HostValue, string]> = [
      [null, "null"],
      [undefined, "undefined"],
      [true, "true"],
      [-5, "-5"],
      [2147483647, "2147483647"],
      [-2147483647, "-2147483647"],
      [1.5, "1.5"],
      [-0, "-0"],
      ["h\u00e9", '"h\\u00e9"'],
      ["\u20ac", '"\\u20ac"'],
      // A short string turns wide after Latin-1 characters: rewritten wide from the start.
      ["ab\u00e9\u20acd", '"ab\\u00e9\\u20acd"'],
      [255n, "255n"],
      [-256n, "-256n"],
      [2n ** 64n, "2n ** 64n"],
      [[1, [true], "x"], '[1, [true], "x"]'],
      [{ length: 1, name: { length: 2 } }, "{ length: 1, name: { length: 2 } }"],
      [new Uint8Array([1, 2, 3]).buffer, "new Uint8Array([1, 2, 3]).buffer"],
      // Strings from 32 chars are written natively: Latin-1, NUL, wide and lone surrogates.
      ["x".repeat(31), '"x".repeat(31)'],
      ["x".repeat(32), '"x".repeat(32)'],
      ["\u00ff\u0000é".repeat(40), '"\\u00ff\\u0000\\u00e9".repeat(40)'],
      ["a".repeat(40) + "\u20ac", '"a".repeat(40) + "\\u20ac"'],
      ["\ud800".repeat(33), '"\\ud800".repeat(33)'],
      [
        { pem: "-----BEGIN CERTIFICATE-----\n".repeat(30) },
        '{ pem: "-----BEGIN CERTIFICATE-----\\n".repeat(30) }',
      ],
    ];
    for (const [host, guest] of cases) {
      assert.deepEqual(encodeHostValue(host), engineBytes(context, guest), guest);
    }
  });

  it("numbers each encoding's property names afresh, however many names came before", () => {
    // Names are remembered across encodings (see MAX_ATOM_SLOTS): a name seen before gets this
    // encoding's index, in this encoding's order, and past the bound the memory is emptied.
    const cases: Array<[HostValue, string]> = [
      [{ b: 1, a: { b: 2 } }, "{ b: 1, a: { b: 2 } }"],
      [{ a: 1, c: 2, b: 3 }, "{ a: 1, c: 2, b: 3 }"],
      [{ c: { a: [{ c: 1 }] } }, "{ c: { a: [{ c: 1 }] } }"],
    ];
    const check = () => {
      for (const [host, guest] of cases) {
        assert.deepEqual(encodeHostValue(host), engineBytes(context, guest), guest);
      }
    };
    check();
    for (let i = 0; i < MAX_ATOM_SLOTS + 10; i++) encodeHostValue({ [`k${i}`]: i, a: 0 });
    check();
    const many = Object.fromEntries(
      Array.from({ length: MAX_ATOM_SLOTS + 10 }, (_, i) => [`n${i}`, i]),
    );
    const names = Object.keys(many);
    const decoded = decodeGuestValue(encodeHostValue(many)) as Record<string, number>;
    assert.deepEqual(Object.keys(decoded), names);
    assert.equal(decoded[`n${MAX_ATOM_SLOTS + 9}`], MAX_ATOM_SLOTS + 9);
    check();
  });

  it("reads what the engine writes, typed arrays and shared references included", () => {
    const read = (expression: string) => decodeGuestValue(engineBytes(context, expression));
    assert.deepEqual(read(`{ "2": 1, b: [undefined, -0, 10n], c: "\u20ac" }`), {
      2: 1,
      b: [undefined, -0, 10n],
      c: "\u20ac",
    });
    assert.deepEqual(
      read("new Int16Array([1, 2, 3]).subarray(1)"),
      new GuestView("Int16Array", new Uint8Array([2, 0, 3, 0])),
    );
    assert.deepEqual(
      read("new Float16Array([1])"),
      new GuestView("Float16Array", new Uint8Array([0, 0x3c])),
    );
    const [a, b] = read("(() => { const o = { x: 1 }; return [o, o] })()") as [object, object];
    assert.equal(a, b);
    const [buffer, view] = read(
      "(() => { const u = new Uint8Array([5, 6]); return [u.buffer, u] })()",
    ) as [ArrayBuffer, GuestView];
    assert.deepEqual(new Uint8Array(buffer), new Uint8Array([5, 6]));
    assert.deepEqual(view, new GuestView("Uint8Array", new Uint8Array([5, 6])));
  });

  it("reads short strings right however many there are, the same ones coming back as before", () => {
    // Short strings come from a cache of those read before: thousands of distinct ones, many
    // sharing a slot, each read twice, and strings that differ only by one byte or their length.
    const names = Array.from({ length: 3000 }, (_, i) => `k${i}`);
    names.push("", "a", "ab", "ba", "\u00ff\u00fe", "x".repeat(24), "x".repeat(25), "x".repeat(23));
    for (let round = 0; round < 2; round++) {
      for (const name of names) {
        const bytes = encodeHostValue({ [name]: name, list: [name, `${name}!`] });
        assert.deepEqual(decodeGuestValue(bytes), { [name]: name, list: [name, `${name}!`] });
      }
    }
    // Small and larger ArrayBuffers are copies of their own, whatever becomes of the source bytes.
    for (const size of [0, 1, 64, 65, 4096]) {
      const source = encodeHostValue(new Uint8Array(size).fill(7).buffer).slice();
      const decoded = decodeGuestValue(source) as ArrayBuffer;
      source.fill(0);
      assert.deepEqual(new Uint8Array(decoded), new Uint8Array(size).fill(7), `${size} bytes`);
    }
  });

  it("declines what it does not carry: cycles, dates, boxed primitives", () => {
    assert.equal(
      decodeGuestValue(engineBytes(context, "(() => { const o = {}; o.o = o; return o })()")),
      UNSUPPORTED,
    );
    assert.equal(decodeGuestValue(engineBytes(context, "new Date(0)")), UNSUPPORTED);
    assert.equal(decodeGuestValue(engineBytes(context, "new Number(1)")), UNSUPPORTED);
    assert.equal(decodeGuestValue(new Uint8Array([5, 0, 8, 3])), UNSUPPORTED, "truncated");
    assert.equal(decodeGuestValue(new Uint8Array([4, 0, 1])), UNSUPPORTED, "another version");
  });
});
