// The sandbox contract: one isolated JS interpreter (QuickJS runtime and context), CCF's limits.

import type { GuestValue, HostValue } from "./values.js";

/** Per-interpreter limits, as CCF's `js_runtime_options`. */
export interface Limits {
  /**
   * The guest heap, in bytes, as QuickJS counts its live objects, strings and buffers. QuickJS's
   * own limit cannot count bytes in this WASM build (see `Engine`), so it is enforced by refusing
   * the shared WASM memory growth beyond it during a call, and by measuring the heap after calls
   * that grew it and every few milliseconds of guest time otherwise. A guest can briefly exceed it
   * inside memory the module already has free; it cannot grow the process's memory much past it.
   */
  maxHeapBytes: number;
  /**
   * The guest stack, in bytes. Honoured up to what the host thread's own stack can carry (about a
   * fifth of it: QuickJS runs on V8's stack too), so on Node's default 984 KiB stack it is ~196 KiB
   * (about 1000 nested JS calls); start Node with a larger `--stack-size` to get CCF's 1 MiB.
   */
  maxStackBytes: number;
  /**
   * Each entry point (module evaluation, call, conversions, promise jobs), in milliseconds.
   * QuickJS checks the clock every ~10,000 function calls or loop iterations, so a loop whose
   * every iteration spends long inside one built-in (building megabyte strings, say) overruns it.
   */
  maxExecutionTimeMs: number;
}

/** CCF's defaults: 100 MiB heap, 1 MiB stack, 5 s per call. */
export const CCF_DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxHeapBytes: 100 * 1024 * 1024,
  maxStackBytes: 1024 * 1024,
  maxExecutionTimeMs: 5000,
});

/** Where ES module sources come from (the KV's `public:ccf.gov.modules`, in production). */
export interface ModuleSource {
  /**
   * The source of module `name`, or `undefined` if there is none. `name` is normalised and has no
   * leading "/": "endpoints/log.js", "node_modules/@microsoft/ccf-app/kv.js", "_virtual/x.js".
   */
  load(name: string): string | undefined;
}

/**
 * A host function callable from the guest. It receives the guest's arguments converted to host
 * values; its result is copied into the guest (returning nothing gives `undefined`). Throwing a
 * `GuestError` throws that error type in the guest; throwing anything else aborts the whole guest
 * call, and the entry point rethrows it.
 */
export type HostFunction = (...args: GuestValue[]) => HostValue | void;

const DETERMINISTIC = new WeakSet<HostFunction>();

/**
 * Marks a host function whose result depends only on its arguments (no request state, clock or
 * entropy): its calls are not counted in `Interpreter.hostCalls`.
 */
export function deterministic<F extends HostFunction>(fn: F): F {
  DETERMINISTIC.add(fn);
  return fn;
}

export function isDeterministic(fn: HostFunction): boolean {
  return DETERMINISTIC.has(fn);
}

/** What `define` installs: a value, a host function, or an object of them (nested freely). */
export type Definition = HostValue | HostFunction | { readonly [key: string]: Definition };

export type LogLevel = "log" | "info" | "warn" | "error";

export interface InterpreterOptions {
  limits: Limits;
  modules: ModuleSource;
  /** `console.log/info/warn/error`: arguments joined by spaces, objects (not Errors) as JSON. */
  log: (level: LogLevel, message: string) => void;
  /** Cryptographically secure bytes; `Math.random` takes 7 a call from a pool refilled here. */
  randomBytes: (n: number) => Uint8Array;
  /** The clock behind `Date` once untrusted time is on (ms since the epoch); default `Date.now`. */
  clock?: () => number;
  /**
   * Called every `longRunIntervalMs` (default 50) while one entry point keeps running, from
   * inside it: the host's chance to do urgent work that cannot wait for the guest (a node posts
   * consensus heartbeats to its transport thread). Must not call back into this interpreter;
   * what it throws is ignored.
   */
  onLongRun?: () => void;
  longRunIntervalMs?: number;
}

export interface CallOptions {
  /**
   * The name of a global function (defined by `evalScript`) to call as `via(exportFn, ...args)`
   * instead of calling the export directly, so a prelude can build the request object and
   * normalise the response inside the guest, with guest semantics (`JSON.stringify`, `toJSON`).
   */
  via?: string;
  /**
   * The interpreter's state is rewound before its next use: the values made for this call (the
   * arguments, the result) are left to the rewind instead of being freed one by one, which walks
   * every object of the request in the engine (~1 µs per app request). Honoured only by a
   * checkpointed rewindable interpreter; any other frees them as usual.
   */
  discard?: boolean;
}

/**
 * One interpreter. Every entry point runs under the time limit; a limit hit throws
 * `LimitExceeded` and leaves the interpreter `dead`. A guest exception throws `JsException` and
 * leaves it usable. Entry points are not re-entrant: a host function must not call back into the
 * interpreter that called it (except `setUntrustedDateTime` and `heapUsed`).
 *
 * As in CCF, a guest may catch its own stack overflow, or an out-of-memory error QuickJS raises
 * for too many small allocations, and carry on; memory refused beyond the heap limit, a timeout
 * and a failed host function cannot be caught.
 *
 * Differences from CCF worth knowing: promise jobs the guest queued run before an entry point
 * returns (CCF never awaits a returned promise either, but a reused interpreter must not
 * accumulate jobs); an export is looked up once per interpreter, so reassigning an exported `let`
 * after evaluation is not seen.
 */
export interface Interpreter {
  /** True once a limit was hit, a host function failed, or the engine broke: discard it. */
  readonly dead: boolean;

  /**
   * Calls the guest made of host functions installed by `define`, since it was created, except
   * those marked `deterministic`.
   */
  readonly hostCalls: number;

  /**
   * Installs `value` at a dotted global path ("ccf", "ccf.kv"), creating missing parent objects.
   * Host functions become real guest functions made by the engine (no host object is reachable
   * through them); values are copied in. Replaces what was at the path.
   */
  define(path: string, value: Definition): void;

  /** Runs script (not module) code in the global scope, e.g. a prelude defining helpers. */
  evalScript(source: string, filename: string): void;

  /**
   * Calls export `exportName` of module `moduleName` with `args`, evaluating the module (and its
   * imports, through the `ModuleSource`) on first use. Each module is evaluated once per
   * interpreter, so two importers share its classes. A missing export, or one that is not a
   * function, throws `SandboxError` with CCF's message; a missing module is a guest exception.
   */
  callExport(
    moduleName: string,
    exportName: string,
    args: readonly HostValue[],
    options?: CallOptions,
  ): GuestValue;

  /** Calls a global function (e.g. one a prelude defined). */
  callGlobal(name: string, args: readonly HostValue[]): GuestValue;

  /** Evaluates module `moduleName` (and its imports) if it was not yet, without calling anything. */
  importModule(moduleName: string): void;

  /**
   * CCF's `enableUntrustedDateTime`: while false (the default), `Date.now()` and `new Date()` give
   * the epoch (0). Returns the previous setting.
   */
  setUntrustedDateTime(enabled: boolean): boolean;

  /** Bytes the interpreter's heap holds now (QuickJS's own accounting), for monitoring. */
  heapUsed(): number;

  /** Frees the interpreter. Idempotent. */
  dispose(): void;
}

/**
 * An interpreter on an engine of its own whose state can be captured once (`checkpoint`) and
 * put back before each use (`rewind`): every use then starts from the same state, as a fresh
 * interpreter that ran the same setup would, for the price of a memory copy (~0.1-0.3 ms)
 * instead of a new interpreter and the evaluation of the app's modules (milliseconds).
 *
 * Only deterministic setup can be captured: `checkpoint` refuses if the guest drew entropy
 * (`Math.random`) or read the clock, since every rewound use would repeat those values.
 */
export interface RewindableInterpreter extends Interpreter {
  /**
   * Before `checkpoint`: looks up export `exportName` of `moduleName` (evaluating the module)
   * and global function `via` once, so that calls after each rewind start from handles in the
   * captured state instead of looking them up again. Returns false, changing nothing a call
   * would see, if either is missing or not a function (the call then reports it).
   */
  prepareCall(moduleName: string, exportName: string, via?: string): boolean;
  /** Captures the state now. Throws `SandboxError` if it cannot be captured (see above). */
  checkpoint(): void;
  /** Puts the captured state back. Throws `SandboxError` if dead or never checkpointed. */
  rewind(): void;
}
