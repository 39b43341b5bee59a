// Ordered range scans on raw ccf.kv maps (beyond CCF: docs/ordered-maps.md): map.range and
// map.forEachInRange over a real Store/Tx, their argument checks, permissions, read sets and
// historical (read-only) maps.

import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import {
  installConverters,
  installKv,
  KV_FACTORY_GLOBAL,
  type KvContext,
} from "../../../src/js/ccf/index.js";
import { ConflictError } from "../../../src/errors.js";
import { Store, type Tx } from "../../../src/kv/index.js";
import { type Interpreter, JsException } from "../../../src/js/sandbox/index.js";
import { evaluate, sandbox } from "../sandbox/fixture.js";

const latin1 = (s: string): Uint8Array => Buffer.from(s, "latin1");

function throwsGuest(fn: () => unknown, name: string, message?: RegExp | string): void {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof JsException, String(e));
    assert.equal(e.jsName, name, e.message);
    if (typeof message === "string") assert.equal(e.jsMessage, message);
    else if (message !== undefined) assert.match(e.jsMessage, message);
    return true;
  });
}

describe("ccf.kv ordered range scans", () => {
  let interp: Interpreter;
  let store: Store;
  let current: { tx: Tx; context: KvContext } | undefined;
  let historical: Tx | undefined;

  /** Runs `fn` as one "request": a new Tx in `context`, committed afterwards if `commit`. */
  function request<T>(context: KvContext, fn: () => T, commit = true): T {
    current = { tx: store.begin(), context };
    try {
      const result = fn();
      if (commit) store.commit(current.tx);
      return result;
    } finally {
      current = undefined;
    }
  }

  /** Commits keys (value = "v:" + key) into map `name`, outside the guest. */
  function seed(name: string, keys: string[]): void {
    const tx = store.begin();
    for (const k of keys) tx.map(name).set(latin1(k), latin1(`v:${k}`));
    store.commit(tx);
  }

  before(async () => {
    interp = (await sandbox()).interp;
    installConverters(interp);
    installKv(
      interp,
      { current: () => current, historical: (source) => (source === 1 ? historical : undefined) },
      { exposeFactory: true },
    );
    // b(s): a latin1 string as an ArrayBuffer (one byte per char); s(buf): back.
    interp.evalScript(
      `globalThis.b = (str) => { const u = new Uint8Array(str.length); for (let i = 0; i < str.length; i++) u[i] = str.charCodeAt(i); return u.buffer; };
       globalThis.s = (buf) => String.fromCharCode(...new Uint8Array(buf));
       globalThis.pairs = (entries) => entries.map(([k, v]) => s(k) + "=" + s(v));
       globalThis.hist = ${KV_FACTORY_GLOBAL}(1);`,
      "helpers.js",
    );
  });
  after(() => interp.dispose());
  beforeEach(() => {
    store = new Store();
    current = undefined;
    historical = undefined;
  });

  it("range: [from, to) in unsigned byte order, undefined or null unbounded, from >= to empty", () => {
    seed("m", ["\u0080", "\u007f", "a", "ab", "", "b", "\u00ff", "\u0000b"]);
    request("app-ro", () => {
      assert.deepEqual(
        evaluate(
          interp,
          `(() => {
            const m = ccf.kv.m;
            const keys = (e) => e.map(([k]) => s(k));
            return {
              all: keys(m.range()),
              nulls: keys(m.range(null, null)),
              ab: pairs(m.range(b("a"), b("b"))),
              fromAb: keys(m.range(b("ab"))),
              below80: keys(m.range(undefined, b("\\x80"))),
              same: m.range(b("a"), b("a")),
              inverted: m.range(b("b"), b("a")),
              isArray: Array.isArray(m.range()) && m.range().every((e) => Array.isArray(e) && e.length === 2 && e[0] instanceof ArrayBuffer && e[1] instanceof ArrayBuffer),
            };
          })()`,
        ),
        {
          all: ["", "\u0000b", "a", "ab", "b", "\u007f", "\u0080", "\u00ff"],
          nulls: ["", "\u0000b", "a", "ab", "b", "\u007f", "\u0080", "\u00ff"],
          ab: ["a=v:a", "ab=v:ab"],
          fromAb: ["ab", "b", "\u007f", "\u0080", "\u00ff"],
          below80: ["", "\u0000b", "a", "ab", "b", "\u007f"],
          same: [],
          inverted: [],
          isArray: true,
        },
      );
    });
  });

  it("range options: reverse and limit, and the transaction's own writes merged in order", () => {
    seed("m", ["a", "c", "e", "g"]);
    request("app-rw", () => {
      assert.deepEqual(
        evaluate(
          interp,
          `(() => {
            const m = ccf.kv.m;
            m.set(b("d"), b("own")); m.delete(b("e")); m.set(b("c"), b("new"));
            return [
              pairs(m.range(b("b"), b("h"))),
              pairs(m.range(b("b"), b("h"), { reverse: true })),
              pairs(m.range(undefined, undefined, { limit: 2 })),
              pairs(m.range(undefined, undefined, { reverse: true, limit: 1 })),
              pairs(m.range(undefined, undefined, { limit: 0 })),
              pairs(m.range(b("a"), undefined, {})),
              pairs(m.range(b("a"), undefined, { reverse: undefined, limit: undefined })),
            ];
          })()`,
        ),
        [
          ["c=new", "d=own", "g=v:g"],
          ["g=v:g", "d=own", "c=new"],
          ["a=v:a", "c=new"],
          ["g=v:g"],
          [],
          ["a=v:a", "c=new", "d=own", "g=v:g"],
          ["a=v:a", "c=new", "d=own", "g=v:g"],
        ],
      );
    });
  });

  it("forEachInRange: callback(value, key, map) in byte order, over [from, to)", () => {
    seed("m", ["a", "b", "c", "d", "\u00ff"]);
    request("app-ro", () => {
      assert.deepEqual(
        evaluate(
          interp,
          `(() => {
            const m = ccf.kv.m;
            const seen = [];
            const r = m.forEachInRange(b("b"), b("d"), (v, k, map) => seen.push([s(k), s(v), map === m]));
            const all = [];
            m.forEachInRange(undefined, undefined, (_v, k) => all.push(s(k)));
            let none = 0;
            m.forEachInRange(b("x"), b("c"), () => none++);
            return [r, seen, all, none];
          })()`,
        ),
        [
          undefined,
          [
            ["b", "v:b", true],
            ["c", "v:c", true],
          ],
          ["a", "b", "c", "d", "\u00ff"],
          0,
        ],
      );
    });
  });

  it("forEachInRange propagates an exception thrown by its callback", () => {
    seed("m", ["a"]);
    request("app-ro", () =>
      throwsGuest(
        () =>
          evaluate(
            interp,
            `ccf.kv.m.forEachInRange(undefined, undefined, () => { throw new RangeError("stop"); })`,
          ),
        "RangeError",
        "stop",
      ),
    );
  });

  it("refuses bad arguments with a TypeError naming the problem, and changes nothing", () => {
    seed("m", ["a"]);
    const version = store.version;
    request(
      "app-rw",
      () => {
        const refused: Array<[string, string]> = [
          [
            `m.range(new Uint8Array(1))`,
            "Range bound 'from' must be an ArrayBuffer, or undefined for unbounded",
          ],
          [
            `m.range(b("a"), "z")`,
            "Range bound 'to' must be an ArrayBuffer, or undefined for unbounded",
          ],
          [`m.range(undefined, undefined, 5)`, "Range options must be an object"],
          [`m.range(undefined, undefined, [1])`, "Range options must be an object"],
          [
            `m.range(undefined, undefined, { limit: -1 })`,
            "Range option 'limit' must be a non-negative integer",
          ],
          [
            `m.range(undefined, undefined, { limit: 1.5 })`,
            "Range option 'limit' must be a non-negative integer",
          ],
          [
            `m.range(undefined, undefined, { limit: "2" })`,
            "Range option 'limit' must be a non-negative integer",
          ],
          [
            `m.range(undefined, undefined, { reverse: 1 })`,
            "Range option 'reverse' must be a boolean",
          ],
          [
            `m.range(undefined, undefined, { revers: true })`,
            "Unknown range option 'revers' (expected 'reverse' or 'limit')",
          ],
          [`m.range(undefined, undefined, {}, 4)`, "Passed 4 arguments, but expected at most 3"],
          [`m.forEachInRange(undefined, undefined)`, "Passed 2 arguments, but expected 3"],
          [`m.forEachInRange(undefined, undefined, 5)`, "Argument must be a function"],
          [
            `m.forEachInRange(1, undefined, () => {})`,
            "Range bound 'from' must be an ArrayBuffer, or undefined for unbounded",
          ],
        ];
        for (const [code, message] of refused) {
          throwsGuest(
            () =>
              evaluate(
                interp,
                `(() => { const m = ccf.kv.m; m.set(b("new"), b("x")); ${code}; })()`,
              ),
            "TypeError",
            message,
          );
        }
      },
      false,
    );
    assert.equal(store.version, version);
    assert.deepEqual(store.begin().map("m").range().length, 1);
  });

  it("is a read in CCF's permission matrix: allowed read-only, refused write-only or inaccessible", () => {
    const cases: Array<[string, KvContext, "ok" | "read-only" | "write-only" | "inaccessible"]> = [
      ["records", "app-rw", "ok"],
      ["records", "app-ro", "ok"],
      ["records", "gov-ro", "inaccessible"],
      ["public:records", "gov-rw", "write-only"],
      ["public:ccf.gov.members", "app-rw", "ok"],
      ["public:ccf.gov.members", "gov-ro", "ok"],
      ["public:ccf.internal.tree", "gov-ro", "ok"],
      ["ccf.internal.priv", "app-rw", "inaccessible"],
      ["ccf.gov.priv", "gov-rw", "inaccessible"],
    ];
    const contextNames: Record<KvContext, string> = {
      "app-rw": "application",
      "app-ro": "read-only application",
      "gov-ro": "read-only governance",
      "gov-rw": "read-write governance",
    };
    for (const [name, context, access] of cases) {
      request(
        context,
        () => {
          for (const [method, code] of [
            ["range", `m.range()`],
            ["forEachInRange", `m.forEachInRange(undefined, undefined, () => {})`],
          ]) {
            const expr = `(() => { const m = ccf.kv[${JSON.stringify(name)}]; ${code}; return "ok"; })()`;
            if (access === "ok") {
              assert.equal(evaluate(interp, expr), "ok", `${method} on ${name} in ${context}`);
            } else {
              throwsGuest(
                () => evaluate(interp, expr),
                "TypeError",
                `Cannot call ${method} on table named ${name}. This table is ${access} in current ` +
                  `(${contextNames[context]}) execution context. See ` +
                  "https://microsoft.github.io/CCF/main/audit/read_write_restrictions.html for more detail.",
              );
            }
          }
        },
        false,
      );
    }
  });

  it("puts the scanned range in the read set: a phantom in it conflicts, a write outside does not", () => {
    const scan = (key: string) => {
      store = new Store();
      seed("m", ["a", "e"]);
      current = { tx: store.begin(), context: "app-rw" };
      const tx = current.tx;
      try {
        assert.deepEqual(
          evaluate(
            interp,
            `(() => { const m = ccf.kv.m; const r = m.range(b("b"), b("d")); m.set(b("count"), b(String(r.length))); return r.length; })()`,
          ),
          0,
        );
      } finally {
        current = undefined;
      }
      const other = store.begin();
      other.map("m").set(latin1(key), latin1("x"));
      store.commit(other);
      try {
        store.commit(tx);
        return "committed";
      } catch (e) {
        if (e instanceof ConflictError) return "conflict";
        throw e;
      }
    };
    assert.equal(scan("c"), "conflict");
    assert.equal(scan("d"), "committed");
    assert.equal(scan("a\u00ff"), "committed");
    assert.equal(scan("b"), "conflict");
  });

  it("works on historical state maps, read-only, with illegal maps still illegal", () => {
    const hstore = new Store();
    const htx = hstore.begin();
    for (const k of ["k2", "k1", "k3"]) htx.map("records").set(latin1(k), latin1(`h:${k}`));
    hstore.commit(htx);
    historical = hstore.begin();
    request("app-ro", () => {
      assert.deepEqual(
        evaluate(
          interp,
          `(() => {
            const m = hist.records;
            const seen = [];
            m.forEachInRange(b("k2"), undefined, (v, k) => seen.push(s(k) + "=" + s(v)));
            return [pairs(m.range(undefined, b("k3"))), pairs(m.range(undefined, undefined, { reverse: true, limit: 1 })), seen];
          })()`,
        ),
        [["k1=h:k1", "k2=h:k2"], ["k3=h:k3"], ["k2=h:k2", "k3=h:k3"]],
      );
      throwsGuest(
        () => evaluate(interp, `hist.records.set(b("k"), b("v"))`),
        "TypeError",
        /All tables are read-only during historical transaction/,
      );
      throwsGuest(
        () => evaluate(interp, `hist["ccf.internal.priv"].range()`),
        "TypeError",
        /^Cannot call range on table named ccf\.internal\.priv\. This table is inaccessible/,
      );
    });
  });
});
