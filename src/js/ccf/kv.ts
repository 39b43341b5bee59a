// The raw ccf.kv API: late-bound map handles over the current transaction, with CCF's permissions.

import type { Tx } from "../../kv/index.js";
import {
  deterministic,
  GuestError,
  GuestOpaque,
  type GuestValue,
  type HostValue,
  type Interpreter,
} from "../sandbox/index.js";

/** The execution context a transaction runs in, which decides what each map allows. */
export type KvContext = "app-rw" | "app-ro" | "gov-ro" | "gov-rw";

/** Where `ccf.kv` finds the transaction (and its context) at each call; undefined between requests. */
export interface KvAccess {
  current(): { tx: Tx; context: KvContext } | undefined;
  /**
   * The transaction of historical state `source` (1, 2...) of the running request: read-only
   * handles over it (CCF's historical KV). Undefined once the request is over.
   */
  historical?(source: number): Tx | undefined;
}

/** The guest global through which `installKv` hands the app runtime its map-set factory. */
export const KV_FACTORY_GLOBAL = "__ccfKvFactory";

export type KvMethod =
  | "has"
  | "get"
  | "getVersionOfPreviousWrite"
  | "set"
  | "delete"
  | "clear"
  | "forEach"
  | "size"
  | "range"
  | "forEachInRange";

export type KvPermission = "read-write" | "read-only" | "write-only" | "inaccessible";

const CONTEXT_NAMES: Record<KvContext, string> = {
  "app-rw": "application",
  "app-ro": "read-only application",
  "gov-ro": "read-only governance",
  "gov-rw": "read-write governance",
};

const READ_METHODS: ReadonlySet<KvMethod> = new Set([
  "has",
  "get",
  "getVersionOfPreviousWrite",
  "forEach",
  "size",
  "range",
  "forEachInRange",
]);

const PUBLIC_PREFIX = "public:";

/** Thrown for a map name under the reserved `ccf.` prefix that is neither `ccf.gov.` nor `ccf.internal.`. */
function reservedNameError(name: string): GuestError {
  return new GuestError("Error", `Map name '${name}' uses the reserved prefix 'ccf.'`);
}

/** CCF's `permissions_checks.h`: what a map allows in a context. Throws for a reserved name. */
export function kvPermission(name: string, context: KvContext): KvPermission {
  const isPublic = name.startsWith(PUBLIC_PREFIX);
  const base = isPublic ? name.slice(PUBLIC_PREFIX.length) : name;
  if (base.startsWith("ccf.internal.")) return isPublic ? "read-only" : "inaccessible";
  if (base.startsWith("ccf.gov.")) {
    if (!isPublic) return "inaccessible";
    return context === "gov-rw" ? "read-write" : "read-only";
  }
  if (base.startsWith("ccf.")) throw reservedNameError(name);
  switch (context) {
    case "app-rw":
      return "read-write";
    case "app-ro":
      return "read-only";
    case "gov-ro":
      return "inaccessible";
    case "gov-rw":
      return isPublic ? "write-only" : "inaccessible";
  }
}

/** Whether `permission` lets `method` run. */
export function kvMethodAllowed(permission: KvPermission, method: KvMethod): boolean {
  switch (permission) {
    case "read-write":
      return true;
    case "read-only":
      return READ_METHODS.has(method);
    case "write-only":
      return !READ_METHODS.has(method);
    case "inaccessible":
      return false;
  }
}

/** CCF's message for a method the map's permission forbids in this context. */
export function kvForbiddenMessage(method: KvMethod, name: string, context: KvContext): string {
  const permission = kvPermission(name, context);
  return (
    `Cannot call ${method} on table named ${name}. This table is ${permission} in current ` +
    `(${CONTEXT_NAMES[context]}) execution context. See ` +
    "https://microsoft.github.io/CCF/main/audit/read_write_restrictions.html for more detail."
  );
}

const HOST_GLOBAL = "__ccfKvHost";

/**
 * The guest side: `ccf.kv` is a Proxy whose every string property gives a fresh handle holding
 * only the map name; each method calls the host with its argument count, so the host checks the
 * current transaction, the permission and the arguments at call time. `forEach` gets a snapshot of
 * the entries from the host and calls back in the guest (the host cannot re-enter the guest).
 * `range` and `forEachInRange` (beyond CCF: docs/ordered-maps.md) work the same way.
 */
function installScript(exposeFactory: boolean): string {
  return `(() => {
  "use strict";
  const host = globalThis.${HOST_GLOBAL};
  delete globalThis.${HOST_GLOBAL};
  if (typeof globalThis.ccf !== "object" || globalThis.ccf === null) globalThis.ccf = {};
  const call = host.call;
  // The per-key methods pass their arguments as one array: one conversion across the boundary
  // instead of one per argument (~3 µs less per call).
  const packed = host.callPacked;
  const checkName = host.checkName;
  // source 0 is the running transaction; others are historical states of the request.
  // As CCF's map handles: the methods live on a prototype, so a handle is one object (apps take
  // one per request: ccf.kv[name], ccf-app's typedKv), not ten closures.
  class KvMap {
    #source;
    #name;
    constructor(source, name) {
      this.#source = source;
      this.#name = name;
    }
    has(key) { return packed([this.#source, "has", this.#name, arguments.length, key]); }
    get(key) { return packed([this.#source, "get", this.#name, arguments.length, key]); }
    getVersionOfPreviousWrite(key) { return packed([this.#source, "getVersionOfPreviousWrite", this.#name, arguments.length, key]); }
    set(key, value) { packed([this.#source, "set", this.#name, arguments.length, key, value]); return this; }
    delete(key) { packed([this.#source, "delete", this.#name, arguments.length, key]); }
    clear() { call(this.#source, "clear", this.#name, arguments.length); }
    forEach(callback) {
      const entries = call(this.#source, "forEach", this.#name, arguments.length, callback);
      for (let i = 0; i < entries.length; i += 2) callback(entries[i + 1], entries[i], this);
    }
    get size() { return call(this.#source, "size", this.#name, 0); }
    range(from, to, options) {
      const flat = call(this.#source, "range", this.#name, arguments.length, from, to, options);
      const entries = [];
      for (let i = 0; i < flat.length; i += 2) entries.push([flat[i], flat[i + 1]]);
      return entries;
    }
    forEachInRange(from, to, callback) {
      const flat = call(this.#source, "forEachInRange", this.#name, arguments.length, from, to, callback);
      for (let i = 0; i < flat.length; i += 2) callback(flat[i + 1], flat[i], this);
    }
  }
  const makeKv = (source) => {
    const handle = (name) => new KvMap(source, name);
    return new Proxy(Object.create(null), {
      get(_target, property) {
        if (typeof property !== "string") return undefined;
        checkName(property);
        return handle(property);
      },
      set() { return false; },
      defineProperty() { return false; },
      deleteProperty() { return false; },
    });
  };
  Object.defineProperty(globalThis.ccf, "kv", { value: makeKv(0), writable: true, enumerable: true, configurable: true });
  ${exposeFactory ? `globalThis.${KV_FACTORY_GLOBAL} = makeKv;` : ""}
})();`;
}

function arrayBuffer(value: GuestValue): Uint8Array {
  if (!(value instanceof ArrayBuffer)) {
    throw new GuestError("TypeError", "Argument must be an ArrayBuffer");
  }
  return new Uint8Array(value);
}

function expectArgs(count: number, expected: number): void {
  if (count !== expected) {
    throw new GuestError("TypeError", `Passed ${count} arguments, but expected ${expected}`);
  }
}

const METHODS: ReadonlySet<string> = new Set<KvMethod>([
  "has",
  "get",
  "getVersionOfPreviousWrite",
  "set",
  "delete",
  "clear",
  "forEach",
  "size",
  "range",
  "forEachInRange",
]);

/** A range bound: an ArrayBuffer, or undefined / null for unbounded. */
function rangeBound(value: GuestValue, which: "from" | "to"): Uint8Array | undefined {
  if (value === undefined || value === null) return undefined;
  if (!(value instanceof ArrayBuffer)) {
    throw new GuestError(
      "TypeError",
      `Range bound '${which}' must be an ArrayBuffer, or undefined for unbounded`,
    );
  }
  return new Uint8Array(value);
}

/** `range`'s options: `{ reverse?: boolean, limit?: number }` (a non-negative integer), or undefined. */
function rangeOptions(value: GuestValue): { reverse?: boolean; limit?: number } {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value) || value instanceof ArrayBuffer) {
    throw new GuestError("TypeError", "Range options must be an object");
  }
  const options: { reverse?: boolean; limit?: number } = {};
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined) continue;
    if (key === "reverse") {
      if (typeof v !== "boolean") {
        throw new GuestError("TypeError", "Range option 'reverse' must be a boolean");
      }
      options.reverse = v;
    } else if (key === "limit") {
      if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
        throw new GuestError("TypeError", "Range option 'limit' must be a non-negative integer");
      }
      options.limit = v;
    } else {
      throw new GuestError(
        "TypeError",
        `Unknown range option '${key}' (expected 'reverse' or 'limit')`,
      );
    }
  }
  return options;
}

/**
 * Entries as the guest takes them: flat [key0, value0, key1, value1, ...]. The stored bytes
 * themselves: going into the guest copies each into an ArrayBuffer of its own.
 */
function flatEntries(entries: Array<[Uint8Array, Uint8Array]>): Uint8Array[] {
  const flat: Uint8Array[] = [];
  for (const [key, value] of entries) flat.push(key, value);
  return flat;
}

/** One call of a handle method, as the guest passes it: method, map name, argument count, arguments. */
function kvCall(access: KvAccess, args: GuestValue[]): HostValue {
  const [source, method, name, count, ...rest] = args;
  if (
    typeof source !== "number" ||
    typeof method !== "string" ||
    !METHODS.has(method) ||
    typeof name !== "string"
  ) {
    throw new GuestError("Error", "Invalid kv call");
  }
  const m = method as KvMethod;
  const argc = typeof count === "number" ? count : 0;
  const current = access.current();
  if (current === undefined) {
    throw new GuestError(
      "Error",
      `Cannot call ${m} on table named ${name}: no transaction in progress`,
    );
  }
  const { context } = current;
  const permission = kvPermission(name, context);
  let tx = current.tx;
  if (source !== 0) {
    // As CCF: a map illegal in this context stays illegal; every other one is read-only.
    const historical = access.historical?.(source);
    if (historical === undefined) {
      throw new GuestError(
        "Error",
        `Cannot call ${m} on table named ${name}: the historical state is no longer available`,
      );
    }
    if (permission !== "inaccessible" && !READ_METHODS.has(m)) {
      throw new GuestError(
        "TypeError",
        `Cannot call ${m} on table named ${name}. All tables are read-only during historical transaction.`,
      );
    }
    tx = historical;
  }
  if (!kvMethodAllowed(permission, m)) {
    throw new GuestError("TypeError", kvForbiddenMessage(m, name, context));
  }
  const map = tx.map(name);
  switch (m) {
    case "has":
      expectArgs(argc, 1);
      return map.has(arrayBuffer(rest[0]));
    case "get": {
      expectArgs(argc, 1);
      // The stored bytes themselves: going into the guest copies them (into a new ArrayBuffer).
      return map.get(arrayBuffer(rest[0]));
    }
    case "getVersionOfPreviousWrite":
      expectArgs(argc, 1);
      return map.getVersionOfPreviousWrite(arrayBuffer(rest[0]));
    case "set": {
      expectArgs(argc, 2);
      const key = arrayBuffer(rest[0]);
      const value = arrayBuffer(rest[1]);
      map.set(key, value);
      return undefined;
    }
    case "delete":
      expectArgs(argc, 1);
      map.delete(arrayBuffer(rest[0]));
      return undefined;
    case "clear":
      expectArgs(argc, 0);
      map.clear();
      return undefined;
    case "forEach": {
      expectArgs(argc, 1);
      const callback = rest[0];
      if (!(callback instanceof GuestOpaque) || callback.type !== "function") {
        throw new GuestError("TypeError", "Argument must be a function");
      }
      // Flat [key0, value0, key1, value1, ...]: each becomes its own guest ArrayBuffer.
      const entries: Uint8Array[] = [];
      map.forEach((value, key) => entries.push(key, value));
      return entries;
    }
    case "size":
      return map.size;
    case "range": {
      if (argc > 3) {
        throw new GuestError("TypeError", `Passed ${argc} arguments, but expected at most 3`);
      }
      const from = rangeBound(rest[0], "from");
      const to = rangeBound(rest[1], "to");
      return flatEntries(map.range(from, to, rangeOptions(rest[2])));
    }
    case "forEachInRange": {
      expectArgs(argc, 3);
      const from = rangeBound(rest[0], "from");
      const to = rangeBound(rest[1], "to");
      const callback = rest[2];
      if (!(callback instanceof GuestOpaque) || callback.type !== "function") {
        throw new GuestError("TypeError", "Argument must be a function");
      }
      return flatEntries(map.range(from, to));
    }
  }
}

/**
 * Installs `ccf.kv` (keeping other `ccf` members). Handles resolve `access.current()` at every
 * call, so one captured at module scope keeps working in later requests with new transactions.
 */
export function installKv(
  interp: Interpreter,
  access: KvAccess,
  options: { exposeFactory?: boolean } = {},
): void {
  interp.define(HOST_GLOBAL, {
    call: (...args: GuestValue[]) => kvCall(access, args),
    callPacked: (args: GuestValue) => kvCall(access, Array.isArray(args) ? args : []),
    // Pure: a module may take a handle at its top level (ccf-app's typedKv) and still be
    // evaluated ahead of requests.
    checkName: deterministic((name) => {
      if (typeof name === "string") {
        const base = name.startsWith(PUBLIC_PREFIX) ? name.slice(PUBLIC_PREFIX.length) : name;
        if (
          base.startsWith("ccf.") &&
          !base.startsWith("ccf.gov.") &&
          !base.startsWith("ccf.internal.")
        ) {
          throw reservedNameError(name);
        }
      }
      return undefined;
    }),
  });
  interp.evalScript(installScript(options.exposeFactory === true), "ccf-kv.js");
}
