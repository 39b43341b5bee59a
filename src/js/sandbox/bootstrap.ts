// The guest-side half of the sandbox: CCF's `Date`, `Math.random` and `console`, installed first in
// every interpreter, and private helpers the host compiles on first use and keeps handles to.
//
// Compiling is the main cost of a fresh interpreter (this QuickJS build compiles only a few KB per
// ms, less in one big scope), so only what must exist before guest code runs is compiled eagerly.

/** Node kinds of the tagged tree `toTree` builds when the binary format cannot carry a value. */
export const TreeKind = {
  Primitive: 0,
  Array: 1,
  Object: 2,
  Buffer: 3,
  View: 4,
  Opaque: 5,
} as const;

/** The file name of all bootstrap code in guest stack traces, which the host strips again. */
export const BOOTSTRAP_FILENAME = "<ccf-ts sandbox>";

/** Guest values nest at most this deep when converted by `toTree`. */
const MAX_TREE_DEPTH = 1000;

/**
 * Evaluates to a function of the private host functions `(log, random, now)` that installs the
 * globals and returns `[setUntrustedTime, intrinsics]`. `intrinsics` holds the built-ins the
 * helpers below use, captured before any guest code runs, so that a guest replacing
 * `Object.keys` or a prototype getter later cannot subvert them.
 */
export const ENVIRONMENT_SOURCE = String.raw`(function (hostLog, hostRandom, hostNow) {
  "use strict";
  const O = Object, R = Reflect, D = Date, S = String, Bytes = Uint8Array;
  const hidden = (value) => ({ value, writable: true, enumerable: false, configurable: true });
  const getter = (proto, name) => O.getOwnPropertyDescriptor(proto, name).get;
  const Typed = O.getPrototypeOf(Bytes.prototype);
  const I = {
    __proto__: null, defineProperty: O.defineProperty, getOwnPropertyDescriptor: O.getOwnPropertyDescriptor, keys: O.keys,
    apply: R.apply, hasOwn: O.prototype.hasOwnProperty, isArray: Array.isArray, isView: ArrayBuffer.isView, String: S,
    Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError, InternalError, Bytes, Set,
    setHas: Set.prototype.has, setAdd: Set.prototype.add, setDelete: Set.prototype.delete,
    indexOf: S.prototype.indexOf, slice: S.prototype.slice, join: Array.prototype.join,
    bufferByteLength: getter(ArrayBuffer.prototype, "byteLength"), typedTag: getter(Typed, Symbol.toStringTag),
    typedBuffer: getter(Typed, "buffer"), typedOffset: getter(Typed, "byteOffset"), typedLength: getter(Typed, "byteLength"),
    viewBuffer: getter(DataView.prototype, "buffer"), viewOffset: getter(DataView.prototype, "byteOffset"),
    viewLength: getter(DataView.prototype, "byteLength"), typedSet: Typed.set, hidden,
  };

  // Date: the epoch until the embedder enables untrusted time, then the host's clock.
  let untrusted = false;
  const time = () => (untrusted ? hostNow() : 0);
  const toString = D.prototype.toString;
  const Shim = function Date(...args) {
    if (new.target === undefined) return R.apply(toString, new D(time()), []);
    return R.construct(D, args.length === 0 ? [time()] : args, new.target);
  };
  O.defineProperty(Shim, "length", { value: 7, configurable: true });
  O.defineProperty(Shim, "prototype", { value: D.prototype, writable: false });
  O.defineProperty(Shim, "now", hidden(function now() { return time(); }));
  O.defineProperty(Shim, "parse", hidden(D.parse));
  O.defineProperty(Shim, "UTC", hidden(D.UTC));
  O.defineProperty(D.prototype, "constructor", hidden(Shim));
  O.defineProperty(globalThis, "Date", hidden(Shim));

  // Math.random: the first 53 bits of each 7 bytes of host entropy (big-endian), over 2^53.
  let pool, used = 252;
  O.defineProperty(Math, "random", hidden(function random() {
    if (used === 252) { pool = new Bytes(hostRandom(252)); used = 0; }
    const p = pool, i = used;
    used = i + 7;
    // 48 bits from six bytes and the top 5 of the seventh: an integer below 2^53, exact in a double.
    return ((((((p[i] * 256 + p[i + 1]) * 256 + p[i + 2]) * 256 + p[i + 3]) * 256 + p[i + 4]) * 256 + p[i + 5]) * 32 + (p[i + 6] >>> 3)) / 9007199254740992;
  }));

  // console: as CCF prints arguments, space-separated, objects other than Errors as JSON.
  const stringify = JSON.stringify;
  const text = (a) => {
    if (typeof a === "string") return a;
    if (a !== null && typeof a === "object" && !(a instanceof I.Error)) {
      let s;
      try { s = stringify(a); } catch {}
      if (s !== undefined) return s;
    }
    return S(a);
  };
  const print = (level) => ({ [level](...args) {
    let out = "";
    for (let i = 0; i < args.length; i++) out = i === 0 ? text(args[i]) : out + " " + text(args[i]);
    hostLog(level, out);
  } })[level];
  const console = {};
  for (const level of ["log", "info", "warn", "error"]) O.defineProperty(console, level, hidden(print(level)));
  O.defineProperty(globalThis, "console", hidden(console));

  return [(enabled) => { untrusted = enabled === true; }, I];
})`;

/** The helpers, each a function of the intrinsics that returns it. */
export const HELPER_SOURCES = {
  /** `makeError(name, message)`: a real instance of the guest's error type `name`, minus bootstrap frames. */
  makeError: String.raw`(function (I) {
    "use strict";
    const types = { __proto__: null, Error: I.Error, TypeError: I.TypeError, RangeError: I.RangeError, SyntaxError: I.SyntaxError,
      ReferenceError: I.ReferenceError, EvalError: I.EvalError, URIError: I.URIError, InternalError: I.InternalError };
    const ownFrames = (stack) => {
      let out = "";
      for (let start = 0; start < stack.length; ) {
        let end = I.apply(I.indexOf, stack, ["\n", start]);
        if (end < 0) end = stack.length - 1;
        const line = I.apply(I.slice, stack, [start, end + 1]);
        if (I.apply(I.indexOf, line, [${JSON.stringify(BOOTSTRAP_FILENAME)}]) < 0) out += line;
        start = end + 1;
      }
      return out;
    };
    return (name, message) => {
      const known = I.apply(I.hasOwn, types, [name]);
      const error = new (known ? types[name] : I.Error)(message);
      if (!known) I.defineProperty(error, "name", I.hidden(name));
      const stack = I.getOwnPropertyDescriptor(error, "stack");
      if (stack !== undefined && typeof stack.value === "string") I.defineProperty(error, "stack", I.hidden(ownFrames(stack.value)));
      return error;
    };
  })`,

  /** `describeError(e)`: what the host reports of an exception, `[name, message, stack, String(e)]`. */
  describeError: String.raw`(function (I) {
    "use strict";
    return (e) => {
      let text;
      try { text = I.String(e); } catch { text = "(exception not convertible to a string)"; }
      if (e === null || (typeof e !== "object" && typeof e !== "function")) return ["", text, undefined, text];
      let name = "", message = "", stack;
      try { const n = e.name; if (n !== undefined) name = I.String(n); } catch {}
      try { const m = e.message; if (m !== undefined) message = I.String(m); } catch {}
      try { const s = e.stack; if (typeof s === "string") stack = s; } catch {}
      return [name, message, stack, text];
    };
  })`,

  /**
   * `toTree(value)`: the slow path of guest-to-host conversion, for what the binary format
   * refuses (functions, getters, DataViews, Maps, Proxies...): a tree of [kind, payload] nodes.
   */
  toTree: String.raw`(function (I) {
    "use strict";
    const isBuffer = (v) => { try { I.apply(I.bufferByteLength, v, []); return true; } catch { return false; } };
    const view = (v) => {
      let type = I.apply(I.typedTag, v, []), buffer, offset, length;
      if (type === undefined) {
        type = "DataView";
        buffer = I.apply(I.viewBuffer, v, []); offset = I.apply(I.viewOffset, v, []); length = I.apply(I.viewLength, v, []);
      } else {
        buffer = I.apply(I.typedBuffer, v, []); offset = I.apply(I.typedOffset, v, []); length = I.apply(I.typedLength, v, []);
      }
      const copy = new I.Bytes(length);
      I.apply(I.typedSet, copy, [new I.Bytes(buffer, offset, length)]);
      return [${TreeKind.View}, type, I.apply(I.typedBuffer, copy, [])];
    };
    const node = (value, depth, ancestors) => {
      const type = typeof value;
      if (type === "function" || type === "symbol") return [${TreeKind.Opaque}, type];
      if (type !== "object" || value === null) return [${TreeKind.Primitive}, value];
      if (isBuffer(value)) return [${TreeKind.Buffer}, value];
      if (I.isView(value)) return view(value);
      if (depth >= ${MAX_TREE_DEPTH}) throw new I.RangeError("a value nested deeper than ${MAX_TREE_DEPTH} levels cannot be passed to the host");
      if (I.apply(I.setHas, ancestors, [value])) throw new I.TypeError("a cyclic value cannot be passed to the host");
      I.apply(I.setAdd, ancestors, [value]);
      try {
        const items = [];
        if (I.isArray(value)) {
          const length = value.length;
          for (let i = 0; i < length; i++) items[i] = node(value[i], depth + 1, ancestors);
          return [${TreeKind.Array}, items];
        }
        const names = I.keys(value);
        for (let i = 0; i < names.length; i++) {
          items[2 * i] = names[i];
          items[2 * i + 1] = node(value[names[i]], depth + 1, ancestors);
        }
        return [${TreeKind.Object}, items];
      } finally {
        I.apply(I.setDelete, ancestors, [value]);
      }
    };
    return (value) => node(value, 0, new I.Set());
  })`,

  /** `install(path, value)`: `define`, as a plain data property, creating parents, running no setter. */
  install: String.raw`(function (I) {
    "use strict";
    const data = (value) => ({ value, writable: true, enumerable: true, configurable: true });
    return (path, value) => {
      let target = globalThis;
      for (let i = 0; i < path.length - 1; i++) {
        const name = path[i];
        let next = target[name];
        if (next === undefined) {
          next = {};
          I.defineProperty(target, name, data(next));
        } else if (next === null || (typeof next !== "object" && typeof next !== "function")) {
          throw new I.TypeError("cannot define " + I.apply(I.join, path, ["."]) + ": " + name + " is not an object");
        }
        target = next;
      }
      I.defineProperty(target, path[path.length - 1], data(value));
    };
  })`,

  /** `object(names, ...values)`: a plain object of data properties, running no setter. */
  object: String.raw`(function (I) {
    "use strict";
    return (names, ...values) => {
      const result = {};
      for (let i = 0; i < names.length; i++) {
        I.defineProperty(result, names[i], { value: values[i], writable: true, enumerable: true, configurable: true });
      }
      return result;
    };
  })`,
} as const;

export type HelperName = keyof typeof HELPER_SOURCES;
