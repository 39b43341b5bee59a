import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import {
  GuestOpaque,
  GuestView,
  type HostValue,
  type Interpreter,
  JsException,
  SandboxError,
} from "../../../src/js/sandbox/index.js";
import { evaluate, sandbox } from "./fixture.js";

const bytes = (...b: number[]) => new Uint8Array(b).buffer;

describe("sandbox value conversion", () => {
  let interp: Interpreter;
  before(async () => {
    ({ interp } = await sandbox());
    interp.evalScript(
      `
      globalThis.identity = (v) => v;
      globalThis.describe = (v) => {
        const kind = (x) => x === null ? "null" : x instanceof ArrayBuffer ? "ArrayBuffer" : Array.isArray(x) ? "array" : typeof x;
        if (kind(v) === "ArrayBuffer") return ["ArrayBuffer", Array.from(new Uint8Array(v))];
        if (kind(v) === "object") return ["object", Object.getPrototypeOf(v) === Object.prototype, Object.keys(v).map((k) => [k, kind(v[k])])];
        return [kind(v), Object.is(v, -0) ? "-0" : String(v)];
      };
      `,
      "helpers.js",
    );
  });
  after(() => interp.dispose());

  describe("host to guest", () => {
    it("passes primitives with their types, -0, NaN and bigints included", () => {
      assert.deepEqual(interp.callGlobal("describe", [undefined]), ["undefined", "undefined"]);
      assert.deepEqual(interp.callGlobal("describe", [null]), ["null", "null"]);
      assert.deepEqual(interp.callGlobal("describe", [true]), ["boolean", "true"]);
      assert.deepEqual(interp.callGlobal("describe", [-0]), ["number", "-0"]);
      assert.deepEqual(interp.callGlobal("describe", [Number.NaN]), ["number", "NaN"]);
      assert.deepEqual(interp.callGlobal("describe", [2 ** 53 + 2]), [
        "number",
        "9007199254740994",
      ]);
      assert.deepEqual(interp.callGlobal("describe", [-(2n ** 70n)]), [
        "bigint",
        "-1180591620717411303424",
      ]);
      assert.deepEqual(interp.callGlobal("describe", ["h\u00e9llo \u20ac \ud83d\ude00 \ud800"]), [
        "string",
        "h\u00e9llo \u20ac \ud83d\ude00 \ud800",
      ]);
    });

    it("copies an ArrayBuffer, a Uint8Array and a Buffer slice into a guest ArrayBuffer of exactly the viewed bytes", () => {
      assert.deepEqual(interp.callGlobal("describe", [bytes(1, 2, 3)]), ["ArrayBuffer", [1, 2, 3]]);
      assert.deepEqual(interp.callGlobal("describe", [new Uint8Array([4, 5])]), [
        "ArrayBuffer",
        [4, 5],
      ]);
      const slice = Buffer.from([9, 8, 7, 6, 5]).subarray(1, 3);
      assert.deepEqual(interp.callGlobal("describe", [slice]), ["ArrayBuffer", [8, 7]]);
      assert.deepEqual(interp.callGlobal("describe", [{ nested: new Uint16Array([1]) }]), [
        "object",
        true,
        [["nested", "ArrayBuffer"]],
      ]);
    });

    it("builds plain guest objects, keeping undefined members and a __proto__ key as an own property", () => {
      const value = JSON.parse(
        '{"a": 1, "__proto__": {"polluted": true}, "2": "two"}',
      ) as HostValue;
      assert.deepEqual(interp.callGlobal("describe", [value]), [
        "object",
        true,
        [
          ["2", "string"],
          ["a", "number"],
          ["__proto__", "object"],
        ],
      ]);
      assert.equal(evaluate(interp, "({}).polluted"), undefined);
      assert.deepEqual(interp.callGlobal("describe", [{ u: undefined }]), [
        "object",
        true,
        [["u", "undefined"]],
      ]);
    });

    it("refuses what is not data: a Map, a Date, a function inside a value, a cycle", () => {
      assert.throws(() => interp.callGlobal("identity", [new Map() as never]), SandboxError);
      assert.throws(() => interp.callGlobal("identity", [new Date() as never]), SandboxError);
      assert.throws(() => interp.callGlobal("identity", [{ f: (() => 1) as never }]), SandboxError);
      const cyclic: { self?: unknown } = {};
      cyclic.self = cyclic;
      assert.throws(
        () => interp.callGlobal("identity", [cyclic as never]),
        /deeper than 1000 levels \(or cyclic\)/,
      );
      assert.equal(interp.dead, false);
    });
  });

  describe("guest to host", () => {
    it("keeps an ArrayBuffer apart from every typed array, a DataView and an object", () => {
      const out = evaluate(
        interp,
        `[new Uint8Array([1, 2]).buffer, new Uint8Array([1, 2]), new Int16Array([-1]), new Float64Array([0.5]),
          new BigInt64Array([-2n]), new Uint8ClampedArray([3]), new DataView(new Uint8Array([7]).buffer), { byteLength: 2 }]`,
      ) as unknown[];
      assert.ok(out[0] instanceof ArrayBuffer);
      assert.deepEqual(new Uint8Array(out[0]), new Uint8Array([1, 2]));
      assert.deepEqual(out[1], new GuestView("Uint8Array", new Uint8Array([1, 2])));
      assert.deepEqual(out[2], new GuestView("Int16Array", new Uint8Array([0xff, 0xff])));
      assert.deepEqual(
        out[3],
        new GuestView("Float64Array", new Uint8Array(new Float64Array([0.5]).buffer)),
      );
      assert.deepEqual(
        out[4],
        new GuestView("BigInt64Array", new Uint8Array(new BigInt64Array([-2n]).buffer)),
      );
      assert.deepEqual(out[5], new GuestView("Uint8ClampedArray", new Uint8Array([3])));
      assert.deepEqual(out[6], new GuestView("DataView", new Uint8Array([7])));
      assert.deepEqual(out[7], { byteLength: 2 });
      assert.ok(!(out[1] instanceof ArrayBuffer) && !(out[6] instanceof ArrayBuffer));
    });

    it("copies only the viewed range of a typed array or DataView", () => {
      const out = evaluate(
        interp,
        `[new Uint16Array([1, 2, 3, 4]).subarray(1, 3), new DataView(new Uint8Array([1, 2, 3, 4]).buffer, 1, 2)]`,
      );
      assert.deepEqual(out, [
        new GuestView("Uint16Array", new Uint8Array(new Uint16Array([2, 3]).buffer)),
        new GuestView("DataView", new Uint8Array([2, 3])),
      ]);
    });

    it("returns functions and symbols as opaque markers, and evaluates getters", () => {
      const out = evaluate(interp, `[() => 1, Symbol("s"), { get g() { return 5 }, f() {} }]`);
      assert.deepEqual(out, [
        new GuestOpaque("function"),
        new GuestOpaque("symbol"),
        { g: 5, f: new GuestOpaque("function") },
      ]);
    });

    it("turns other objects into their own enumerable properties, and array holes into undefined", () => {
      const out = evaluate(
        interp,
        `[new Date(5), new Map([[1, 2]]), new Error("x"), new (class { constructor() { this.a = 1 } m() {} })(),
          Object.create({ inherited: 1 }, { own: { value: 2, enumerable: true }, hidden: { value: 3 } }), [1, , 3]]`,
      );
      assert.deepEqual(out, [{}, {}, {}, { a: 1 }, { own: 2 }, [1, undefined, 3]]);
    });

    it("shares an object reached twice and refuses a cycle with a guest TypeError", () => {
      const out = evaluate(interp, `(() => { const o = { v: 1 }; return [o, { o }] })()`) as [
        unknown,
        { o: unknown },
      ];
      assert.equal(out[0], out[1].o);
      assert.throws(
        () => evaluate(interp, `(() => { const o = {}; o.o = o; return o })()`),
        (e) => e instanceof JsException && e.jsName === "TypeError" && /cyclic/.test(e.jsMessage),
      );
      assert.throws(
        () => evaluate(interp, `(() => { const o = { get x() { return o } }; return o })()`),
        (e) => e instanceof JsException && e.jsName === "TypeError",
      );
      assert.equal(interp.dead, false);
    });

    it("gives a host object a __proto__ member as an own property, not a prototype", () => {
      const out = evaluate(interp, `JSON.parse('{"__proto__": {"x": 1}}')`) as Record<
        string,
        unknown
      >;
      assert.equal(Object.getPrototypeOf(out), Object.prototype);
      assert.deepEqual(Object.getOwnPropertyDescriptor(out, "__proto__")?.value, { x: 1 });
      const viaTree = evaluate(
        interp,
        `Object.assign(JSON.parse('{"__proto__": 1}'), { get g() { return 2 } })`,
      );
      assert.deepEqual(Object.keys(viaTree as object), ["__proto__", "g"]);
    });
  });

  it("passes strings holding NUL characters whole, at the top level too", () => {
    for (const v of ["\u0000", "a\u0000b", "\u0000\ud800x"]) {
      assert.equal(interp.callGlobal("identity", [v]), v);
    }
  });

  it("round-trips any data value unchanged (host -> guest -> host)", () => {
    const leaf = fc.oneof(
      fc.constant(undefined),
      fc.constant(null),
      fc.boolean(),
      fc.double(),
      fc.integer(),
      fc.bigInt(),
      fc.string({ unit: "binary" }),
      fc.uint8Array({ maxLength: 40 }).map((u) => u.slice().buffer),
    );
    const { value } = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: "small" },
        leaf,
        fc.array(tie("value")),
        fc.dictionary(fc.string(), tie("value"), { noNullPrototype: true }),
      ),
    }));
    fc.assert(
      fc.property(value, (v) => {
        assert.deepStrictEqual(interp.callGlobal("identity", [v as HostValue]), v);
      }),
      { numRuns: 300 },
    );
  });
});
