// Tests for raw ccf.kv: round trips through a real Store/Tx, late binding, strict arguments, permissions.

import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { installConverters, installKv, type KvContext } from "../../../src/js/ccf/index.js";
import { Store, type Tx } from "../../../src/kv/index.js";
import { type Interpreter, JsException } from "../../../src/js/sandbox/index.js";
import { evaluate, sandbox } from "../sandbox/fixture.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined): string | undefined =>
  b === undefined ? undefined : new TextDecoder().decode(b);

function throwsGuest(fn: () => unknown, name: string, message?: RegExp | string): void {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof JsException, String(e));
    assert.equal(e.jsName, name, e.message);
    if (typeof message === "string") assert.equal(e.jsMessage, message);
    else if (message !== undefined) assert.match(e.jsMessage, message);
    return true;
  });
}

const APP_MODULE = `
const records = ccf.kv.records;
export function put(k, v) { records.set(ccf.strToBuf(k), ccf.strToBuf(v)); return records.size; }
export function read(k) { const v = records.get(ccf.strToBuf(k)); return v === undefined ? null : ccf.bufToStr(v); }
`;

describe("ccf.kv", () => {
  let interp: Interpreter;
  let store: Store;
  let current: { tx: Tx; context: KvContext } | undefined;

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

  before(async () => {
    interp = (await sandbox({ "app.js": APP_MODULE })).interp;
    installConverters(interp);
    installKv(interp, { current: () => current });
    interp.evalScript(
      `globalThis.b = (s) => ccf.strToBuf(s); globalThis.s = (buf) => buf === undefined ? undefined : ccf.bufToStr(buf);`,
      "helpers.js",
    );
  });
  after(() => interp.dispose());
  beforeEach(() => {
    store = new Store();
    current = undefined;
  });

  it("installs ccf.kv beside the converters and leaves no helper global", () => {
    assert.deepEqual(
      evaluate(
        interp,
        `[typeof ccf.kv, typeof ccf.strToBuf, typeof globalThis.__ccfKvHost, typeof ccf.kv.anything.get]`,
      ),
      ["object", "function", "undefined", "function"],
    );
  });

  it("a handle is one object whose methods are on a prototype (as CCF's): no own keys, and a method detached from its handle throws", () => {
    request("app-rw", () => {
      assert.deepEqual(
        evaluate(
          interp,
          `(() => {
            const m = ccf.kv.records;
            m.set(b("k"), b("v"));
            const get = m.get;
            let detached = "no error";
            try { get(b("k")); } catch (e) { detached = e.name; }
            const other = ccf.kv.records;
            return [Object.keys(m).length, typeof m.get, s(other.get(b("k"))), other.get === m.get, detached];
          })()`,
        ),
        [0, "function", "v", true, "TypeError"],
      );
    });
  });

  it("set then get/has/size/forEach/delete/clear, within one transaction and across commits", () => {
    request("app-rw", () => {
      assert.deepEqual(
        evaluate(
          interp,
          `(() => {
            const m = ccf.kv.records;
            const chained = m.set(b("a"), b("1")).set(b("b"), b("2")) === m;
            const seen = [];
            m.forEach((v, k, map) => seen.push([s(k), s(v), map === m]));
            seen.sort();
            return [chained, m.has(b("a")), m.has(b("zz")), s(m.get(b("b"))), m.get(b("zz")), m.size, seen];
          })()`,
        ),
        [
          true,
          true,
          false,
          "2",
          undefined,
          2,
          [
            ["a", "1", true],
            ["b", "2", true],
          ],
        ],
      );
    });
    assert.equal(dec(store.begin().map("records").get(enc("a"))), "1");

    request("app-rw", () => {
      assert.deepEqual(
        evaluate(
          interp,
          `(() => {
            const m = ccf.kv.records;
            const before = [s(m.get(b("a"))), m.size];
            const deleted = m.delete(b("a"));
            return [before, deleted, m.has(b("a")), m.size, ccf.kv.records.size];
          })()`,
        ),
        [["1", 2], undefined, false, 1, 1],
      );
    });
    assert.equal(store.begin().map("records").get(enc("a")), undefined);
    assert.equal(dec(store.begin().map("records").get(enc("b"))), "2");

    request("app-rw", () => {
      assert.deepEqual(
        evaluate(
          interp,
          `(() => { const m = ccf.kv.records; m.set(b("c"), b("3")); const r = m.clear(); return [r, m.size, m.has(b("b"))]; })()`,
        ),
        [undefined, 0, false],
      );
    });
    assert.equal(store.begin().map("records").size, 0);
  });

  it("reads a map that does not exist as empty", () => {
    request("app-rw", () => {
      assert.deepEqual(
        evaluate(
          interp,
          `(() => { const m = ccf.kv["never.written"]; let n = 0; m.forEach(() => n++); return [m.size, m.has(b("x")), m.get(b("x")), n]; })()`,
        ),
        [0, false, undefined, 0],
      );
    });
  });

  it("get returns a copy: mutating it does not change the stored value", () => {
    request("app-rw", () => {
      evaluate(interp, `ccf.kv.m.set(b("k"), b("abc"))`);
      assert.equal(
        evaluate(
          interp,
          `(() => { const v = ccf.kv.m.get(b("k")); new Uint8Array(v)[0] = 0x7a; return s(ccf.kv.m.get(b("k"))); })()`,
        ),
        "abc",
      );
    });
  });

  it("a handle captured in one request works in the next with a new Tx", () => {
    request("app-rw", () => {
      assert.equal(interp.callExport("app.js", "put", ["x", "one"]), 1);
    });
    request("app-rw", () => {
      assert.equal(interp.callExport("app.js", "read", ["x"]), "one");
      assert.equal(interp.callExport("app.js", "put", ["y", "two"]), 2);
    });
    // Not committed: the next request does not see it.
    request(
      "app-rw",
      () => {
        interp.callExport("app.js", "put", ["z", "three"]);
      },
      false,
    );
    request("app-rw", () => {
      assert.equal(interp.callExport("app.js", "read", ["z"]), null);
      assert.equal(interp.callExport("app.js", "read", ["y"]), "two");
    });
    // The same for a handle kept in a global.
    request("app-rw", () => interp.evalScript(`globalThis.kept = ccf.kv.records;`, "keep.js"));
    request("app-rw", () => assert.equal(evaluate(interp, `s(kept.get(b("x")))`), "one"));
  });

  it("throws a clear Error when no transaction is in progress", () => {
    interp.evalScript(`globalThis.idle = ccf.kv.records;`, "idle.js");
    throwsGuest(() => evaluate(interp, `idle.get(b("x"))`), "Error", /no transaction in progress/);
    throwsGuest(() => evaluate(interp, `idle.size`), "Error", /no transaction in progress/);
    assert.equal(interp.dead, false);
  });

  it("getVersionOfPreviousWrite gives the committed version, ignoring this tx's own writes", () => {
    request("app-rw", () => evaluate(interp, `ccf.kv.v.set(b("k"), b("1"))`));
    const first = store.version;
    request("app-rw", () => evaluate(interp, `ccf.kv.other.set(b("k"), b("1"))`));
    request("app-rw", () => {
      assert.deepEqual(
        evaluate(
          interp,
          `(() => { const m = ccf.kv.v; const before = m.getVersionOfPreviousWrite(b("k")); m.set(b("k"), b("2")); m.set(b("n"), b("2"));
             return [before, m.getVersionOfPreviousWrite(b("k")), m.getVersionOfPreviousWrite(b("n")), m.getVersionOfPreviousWrite(b("absent"))]; })()`,
        ),
        [first, first, undefined, undefined],
      );
    });
    const second = store.version;
    request("app-rw", () => {
      assert.equal(evaluate(interp, `ccf.kv.v.getVersionOfPreviousWrite(b("k"))`), second);
      evaluate(interp, `ccf.kv.v.delete(b("k"))`);
    });
    request("app-rw", () =>
      assert.equal(evaluate(interp, `ccf.kv.v.getVersionOfPreviousWrite(b("k"))`), undefined),
    );
  });

  it("accepts only ArrayBuffer keys and values: a Uint8Array is refused", () => {
    request("app-rw", () => {
      const refused = [
        `ccf.kv.m.set(new Uint8Array(1), b("v"))`,
        `ccf.kv.m.set(b("k"), new Uint8Array(1))`,
        `ccf.kv.m.set("k", b("v"))`,
        `ccf.kv.m.get(new Uint8Array(1))`,
        `ccf.kv.m.get(new DataView(new ArrayBuffer(1)))`,
        `ccf.kv.m.has("k")`,
        `ccf.kv.m.delete(new Uint8Array(1))`,
        `ccf.kv.m.getVersionOfPreviousWrite(undefined)`,
      ];
      for (const expr of refused) {
        throwsGuest(() => evaluate(interp, expr), "TypeError", "Argument must be an ArrayBuffer");
      }
      throwsGuest(
        () => evaluate(interp, `ccf.kv.m.set(b("k"))`),
        "TypeError",
        "Passed 1 arguments, but expected 2",
      );
      throwsGuest(
        () => evaluate(interp, `ccf.kv.m.set(b("k"), b("v"), b("w"))`),
        "TypeError",
        "Passed 3 arguments, but expected 2",
      );
      throwsGuest(
        () => evaluate(interp, `ccf.kv.m.clear(b("k"))`),
        "TypeError",
        "Passed 1 arguments, but expected 0",
      );
      throwsGuest(() => evaluate(interp, `ccf.kv.m.forEach(5)`), "TypeError");
      assert.equal(evaluate(interp, `ccf.kv.m.size`), 0);
    });
  });

  it("propagates an exception thrown by a forEach callback", () => {
    request("app-rw", () => {
      evaluate(interp, `ccf.kv.m.set(b("k"), b("v"))`);
      throwsGuest(
        () => evaluate(interp, `ccf.kv.m.forEach(() => { throw new RangeError("stop"); })`),
        "RangeError",
        "stop",
      );
    });
  });

  it("refuses reserved ccf. map names that are neither gov nor internal", () => {
    request("app-rw", () => {
      throwsGuest(() => evaluate(interp, `ccf.kv["ccf.foo"]`), "Error", /reserved/);
      throwsGuest(() => evaluate(interp, `ccf.kv["public:ccf.foo"]`), "Error", /reserved/);
    });
  });

  describe("permissions", () => {
    type Access = "rw" | "ro" | "wo" | "none";
    const names = [
      "records",
      "public:records",
      "public:ccf.gov.members",
      "public:ccf.internal.tree",
      "ccf.gov.priv",
      "ccf.internal.priv",
    ];
    const contexts: KvContext[] = ["app-rw", "app-ro", "gov-ro", "gov-rw"];
    // The §3.1 table: rows are map names, columns contexts.
    const table: Record<string, Access[]> = {
      records: ["rw", "ro", "none", "none"],
      "public:records": ["rw", "ro", "none", "wo"],
      "public:ccf.gov.members": ["ro", "ro", "ro", "rw"],
      "public:ccf.internal.tree": ["ro", "ro", "ro", "ro"],
      "ccf.gov.priv": ["none", "none", "none", "none"],
      "ccf.internal.priv": ["none", "none", "none", "none"],
    };
    const contextNames: Record<KvContext, string> = {
      "app-rw": "application",
      "app-ro": "read-only application",
      "gov-ro": "read-only governance",
      "gov-rw": "read-write governance",
    };
    const accessNames: Record<Exclude<Access, "rw">, string> = {
      ro: "read-only",
      wo: "write-only",
      none: "inaccessible",
    };
    const calls: Array<[string, boolean, string]> = [
      // method, is a read, guest call on handle `m`
      ["has", true, `m.has(b("k"))`],
      ["get", true, `m.get(b("k"))`],
      ["getVersionOfPreviousWrite", true, `m.getVersionOfPreviousWrite(b("k"))`],
      ["forEach", true, `m.forEach(() => {})`],
      ["size", true, `m.size`],
      ["set", false, `m.set(b("k"), b("v"))`],
      ["delete", false, `m.delete(b("k"))`],
      ["clear", false, `m.clear()`],
    ];

    for (const name of names) {
      for (const [ci, context] of contexts.entries()) {
        const access = table[name][ci];
        it(`${name} in ${context} is ${access}`, () => {
          request(
            context,
            () => {
              for (const [method, isRead, code] of calls) {
                const allowed =
                  access === "rw" || (access === "ro" && isRead) || (access === "wo" && !isRead);
                const expr = `(() => { const m = ccf.kv[${JSON.stringify(name)}]; ${code}; return "ok"; })()`;
                if (allowed) {
                  assert.equal(evaluate(interp, expr), "ok", `${method} on ${name} in ${context}`);
                } else {
                  const message =
                    `Cannot call ${method} on table named ${name}. This table is ${accessNames[access]} ` +
                    `in current (${contextNames[context]}) execution context. See ` +
                    "https://microsoft.github.io/CCF/main/audit/read_write_restrictions.html for more detail.";
                  throwsGuest(() => evaluate(interp, expr), "TypeError", message);
                }
              }
            },
            false,
          );
        });
      }
    }

    it("checks permission before arguments, and at call time against the current context", () => {
      interp.evalScript(`globalThis.gov = ccf.kv["public:ccf.gov.members"];`, "gov.js");
      request("app-rw", () =>
        throwsGuest(
          () => evaluate(interp, `gov.set(1)`),
          "TypeError",
          /^Cannot call set on table named public:ccf\.gov\.members\. This table is read-only in current \(application\)/,
        ),
      );
      request("gov-rw", () => {
        assert.equal(evaluate(interp, `gov.set(b("m"), b("x")) === gov`), true);
        assert.equal(evaluate(interp, `s(gov.get(b("m")))`), "x");
      });
      request("gov-ro", () => assert.equal(evaluate(interp, `s(gov.get(b("m")))`), "x"));
    });
  });
});
