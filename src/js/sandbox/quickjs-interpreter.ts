// The QuickJS implementation of `Interpreter`: one runtime and context each, with CCF's limits,
// ES modules from a `ModuleSource`, host functions, and the failure handling that keeps a
// misbehaving guest from taking the process (or the shared WASM module) down with it.

import {
  type QuickJSContext,
  type QuickJSHandle,
  type QuickJSRuntime,
  Scope,
} from "quickjs-emscripten";
import {
  BOOTSTRAP_FILENAME,
  ENVIRONMENT_SOURCE,
  HELPER_SOURCES,
  type HelperName,
} from "./bootstrap.js";
import {
  type ContextInternals,
  captureMemory,
  createIsolatedEngine,
  type Engine,
  effectiveStackLimit,
  internalsOf,
  isEngineBreakage,
  isNativeStackOverflow,
  loadEngine,
  loadedEngine,
  type MemoryImage,
  poisonEngine,
  restoreMemory,
} from "./engine.js";
import { GuestError, JsException, LimitExceeded, SandboxError } from "./errors.js";
import type {
  CallOptions,
  Definition,
  HostFunction,
  Interpreter,
  InterpreterOptions,
  Limits,
  LogLevel,
  RewindableInterpreter,
} from "./interpreter.js";
import { isDeterministic } from "./interpreter.js";
import { GuestThrow, Marshal } from "./marshal.js";
import { resolveModuleName, stripLeadingSlashes } from "./module-names.js";
import type { GuestValue, HostValue } from "./values.js";

/** A new interpreter on the process's shared engine (which loads on first use). */
export async function createInterpreter(options: InterpreterOptions): Promise<Interpreter> {
  for (;;) {
    const engine = await loadEngine();
    // Another interpreter may have broken the engine while this one waited for it.
    if (!engine.poisoned) return new QuickJsInterpreter(engine, options);
  }
}

/**
 * A new interpreter at once, for a host function running inside another one: the engine is
 * loaded then (its caller runs on it). Throws `SandboxError` if it is not.
 */
export function createInterpreterNow(options: InterpreterOptions): Interpreter {
  const engine = loadedEngine();
  if (engine === undefined) throw new SandboxError("the JS engine is not loaded");
  return new QuickJsInterpreter(engine, options);
}

/**
 * A new interpreter on an engine of its own, whose state can be checkpointed and rewound. Its
 * engine (~16 MiB of address space) is dropped with it.
 */
export async function createRewindableInterpreter(
  options: InterpreterOptions,
): Promise<RewindableInterpreter> {
  return new QuickJsInterpreter(await createIsolatedEngine(), options);
}

/** Long-lived handles, freed in reverse order; a rewind forgets those made after the checkpoint. */
class OwnedHandles {
  private readonly handles: QuickJSHandle[] = [];
  get count(): number {
    return this.handles.length;
  }
  manage(handle: QuickJSHandle): QuickJSHandle {
    this.handles.push(handle);
    return handle;
  }
  /** Drops (without freeing: their memory was rewound) the handles made after the first `n`. */
  forgetAfter(n: number): void {
    this.handles.length = n;
  }
  dispose(): void {
    for (let i = this.handles.length - 1; i >= 0; i--) this.handles[i]?.dispose();
    this.handles.length = 0;
  }
}

/** quickjs-emscripten's context caches these handles on first use (see `checkpoint`). */
const CONTEXT_CACHES = [
  "_undefined",
  "_null",
  "_false",
  "_true",
  "_global",
  "_BigInt",
  "_Symbol",
  "_SymbolIterator",
  "_SymbolAsyncIterator",
] as const;

/** The interpreter's host-side state that belongs with a memory image. */
interface Checkpoint {
  image: MemoryImage;
  owned: number;
  helpers: Map<HelperName, QuickJSHandle>;
  namespaces: Map<string, QuickJSHandle>;
  exportFunctions: Map<string, QuickJSHandle>;
  marshal: { argv: number; argvCapacity: number };
  caches: unknown[];
  untrustedTime: boolean;
  heapAtLastCheck: number;
  checkInterval: number;
}

interface HostEntry {
  readonly name: string;
  readonly fn: HostFunction;
  /** Installed by `define` and not `deterministic`: counted in `hostCalls`. */
  readonly counted: boolean;
}

const LOG_LEVELS: ReadonlySet<string> = new Set<LogLevel>(["log", "info", "warn", "error"]);

/**
 * Extra heap allowed while describing an exception: a guest that filled its heap and kept the
 * memory (in a global) would otherwise make the description itself fail.
 */
const DESCRIBE_HEADROOM_BYTES = 1024 * 1024;

/**
 * The heap is measured (a walk of every object: ~0.1 ms for a small heap, milliseconds for a big
 * one) after an entry point that grew the WASM memory, and otherwise once the guest has run for
 * this many times the last measurement's cost: at most 4% of the time. Between measurements a
 * guest can use free memory of the shared WASM module (left by others) beyond its limit unseen.
 */
const CHECK_COST_FACTOR = 25;

class QuickJsInterpreter implements RewindableInterpreter {
  private readonly limits: Limits;
  private readonly context: QuickJSContext;
  private readonly runtime: QuickJSRuntime;
  private readonly internals: ContextInternals;
  private readonly marshal: Marshal;
  /** Long-lived handles (helpers, module namespaces, exports), freed before the context. */
  private readonly owned = new OwnedHandles();
  /** The environment's switch for untrusted time, and the intrinsics the helpers are built from. */
  private readonly setUntrustedTime: QuickJSHandle;
  private readonly intrinsics: QuickJSHandle;
  /** The bootstrap's helpers, compiled on first use. */
  private readonly helpers = new Map<HelperName, QuickJSHandle>();
  private readonly namespaces = new Map<string, QuickJSHandle>();
  private readonly exportFunctions = new Map<string, QuickJSHandle>();
  /** Global functions looked up by `prepareCall` (rewindable interpreters only). */
  private readonly preparedGlobals = new Map<string, QuickJSHandle>();
  /** The engine knows a host function by the function object it registered; this maps it back. */
  private readonly hostFunctions = new WeakMap<object, HostEntry>();
  /** Entropy draws and clock reads by the guest: state a checkpoint would freeze. */
  private nondeterministicReads = 0;
  private definedHostCalls = 0;
  private checkpointState: Checkpoint | undefined;
  /** The last import the engine resolved, to name the importer of a missing module. */
  private lastImport: { name: string; importer: string } | undefined;

  private deadline = Number.POSITIVE_INFINITY;
  /** When `onLongRun` was last called (or the entry point began). */
  private lastLongRunCall = 0;
  private busy = false;
  private timedOut = false;
  /** Makes the interrupt handler stop the guest at its next check. */
  private abortRequested = false;
  /** The first failure of the current entry point that the guest must not be able to catch. */
  private failure: { error: unknown } | undefined;
  private killed = false;
  private disposed = false;
  private untrustedTime = false;
  /** False until the environment is installed: a failing bootstrap cannot describe errors. */
  private bootstrapped = false;
  /** The heap as last measured, and the guest time since then (see `CHECK_COST_FACTOR`). */
  private heapAtLastCheck = 0;
  private executedSinceCheck = 0;
  /** Until the first measurement sets the pace, assume a small heap's (~0.1 ms). */
  private checkInterval = CHECK_COST_FACTOR * 0.1;

  constructor(
    private readonly engine: Engine,
    private readonly options: InterpreterOptions,
  ) {
    this.limits = validLimits(options.limits);
    this.context = engine.module.newContext();
    this.runtime = this.context.runtime;
    this.internals = internalsOf(this.context);
    this.marshal = new Marshal(this.context, this.internals);
    try {
      this.runtime.setMemoryLimit(this.limits.maxHeapBytes);
      this.runtime.setMaxStackSize(effectiveStackLimit(this.limits.maxStackBytes));
      this.runtime.setInterruptHandler(() => this.shouldInterrupt());
      this.runtime.setModuleLoader(
        (name) => this.loadModuleSource(name),
        (base, specifier) => this.resolveImport(base, specifier),
      );
      this.installHostCallDispatcher();
      [this.setUntrustedTime, this.intrinsics] = this.enter(() => this.installEnvironment());
      this.marshal.toTree = () => this.helper("toTree");
      this.bootstrapped = true;
    } catch (error) {
      this.free();
      throw error;
    }
  }

  get hostCalls(): number {
    return this.definedHostCalls;
  }

  get dead(): boolean {
    return this.killed || this.disposed || this.engine.poisoned;
  }

  define(path: string, value: Definition): void {
    const segments = path.split(".");
    if (segments.some((s) => s === "")) throw new SandboxError(`invalid global path '${path}'`);
    this.enter(() =>
      Scope.withScope((scope) => {
        const name = segments[segments.length - 1];
        const target = scope.manage(this.marshal.toGuest(segments));
        const installed = scope.manage(this.definitionToGuest(value, name));
        this.callChecked(this.helper("install"), [target, installed]).dispose();
      }),
    );
  }

  evalScript(source: string, filename: string): void {
    this.enter(() => {
      const result = this.context.evalCode(source, filename, { type: "global" });
      if (result.error) throw new GuestThrow(result.error);
      result.value.dispose();
    });
  }

  callExport(
    moduleName: string,
    exportName: string,
    args: readonly HostValue[],
    options: CallOptions = {},
  ): GuestValue {
    return this.enter(() => {
      const fn = this.exportFunction(stripLeadingSlashes(moduleName), exportName);
      const discard = options.discard === true && this.checkpointState !== undefined;
      if (options.via === undefined) return this.invoke(fn, [], args, discard);
      // Only a rewound interpreter has prepared globals: the guest cannot have replaced them
      // since they were looked up, as every use starts from the captured state.
      const prepared = this.preparedGlobals.get(options.via);
      if (prepared !== undefined) return this.invoke(prepared, [fn], args, discard);
      const via = this.globalFunction(options.via);
      try {
        return this.invoke(via, [fn], args);
      } finally {
        via.dispose();
      }
    });
  }

  prepareCall(moduleName: string, exportName: string, via?: string): boolean {
    if (this.checkpointState !== undefined) {
      throw new SandboxError("calls are prepared before the checkpoint");
    }
    return this.enter(() => {
      try {
        this.exportFunction(stripLeadingSlashes(moduleName), exportName);
        if (via !== undefined && !this.preparedGlobals.has(via)) {
          this.preparedGlobals.set(via, this.owned.manage(this.globalFunction(via)));
        }
        return true;
      } catch (e) {
        if (e instanceof SandboxError) return false;
        throw e;
      }
    });
  }

  callGlobal(name: string, args: readonly HostValue[]): GuestValue {
    return this.enter(() => {
      const fn = this.globalFunction(name);
      try {
        return this.invoke(fn, [], args);
      } finally {
        fn.dispose();
      }
    });
  }

  setUntrustedDateTime(enabled: boolean): boolean {
    this.assertAlive();
    const previous = this.untrustedTime;
    // It only sets a flag in a closure: safe outside an entry point, or inside one.
    const flag = enabled ? this.context.true : this.context.false;
    this.callChecked(this.setUntrustedTime, [flag]).dispose();
    this.untrustedTime = enabled;
    return previous;
  }

  importModule(moduleName: string): void {
    this.enter(() => {
      this.namespace(stripLeadingSlashes(moduleName));
    });
  }

  checkpoint(): void {
    this.assertAlive();
    if (this.busy) throw new SandboxError("an interpreter cannot be checkpointed while it runs");
    if (!this.engine.isolated) {
      throw new SandboxError("only an interpreter on an engine of its own can be checkpointed");
    }
    if (this.nondeterministicReads > 0) {
      throw new SandboxError(
        "the interpreter cannot be checkpointed: its setup drew entropy or read the clock",
      );
    }
    // Make the context create its cached handles now, so that none is created after the
    // checkpoint (a rewind would free its memory while the context still used it).
    const c = this.context;
    void [c.undefined, c.null, c.true, c.false, c.global];
    c.newBigInt(0n).dispose();
    c.getWellKnownSymbol("iterator").dispose();
    c.getWellKnownSymbol("asyncIterator").dispose();
    this.marshal.reserve(16);
    // An allocation bigger than any free block comes from above every live allocation: its
    // address bounds the heap that must be captured. Freed at once, it only grew the memory.
    const module = this.internals.module;
    const sentinel = module._malloc(this.engine.memoryBytes());
    if (sentinel === 0) throw new SandboxError("the interpreter cannot be checkpointed: no memory");
    module._free(sentinel);
    const caches = this.contextCaches();
    this.checkpointState = {
      image: captureMemory(this.engine, sentinel + 64),
      owned: this.owned.count,
      helpers: new Map(this.helpers),
      namespaces: new Map(this.namespaces),
      exportFunctions: new Map(this.exportFunctions),
      marshal: this.marshal.state(),
      caches,
      untrustedTime: this.untrustedTime,
      heapAtLastCheck: this.heapAtLastCheck,
      checkInterval: this.checkInterval,
    };
  }

  rewind(): void {
    this.assertAlive();
    if (this.busy) throw new SandboxError("an interpreter cannot be rewound while it runs");
    const cp = this.checkpointState;
    if (cp === undefined) throw new SandboxError("the interpreter was never checkpointed");
    const caches = this.contextCaches();
    if (caches.some((h, i) => h !== cp.caches[i])) {
      // A cached handle made after the checkpoint would point into rewound memory.
      this.killed = true;
      throw new SandboxError("the interpreter cannot be rewound: unexpected library state");
    }
    restoreMemory(this.engine, cp.image);
    this.owned.forgetAfter(cp.owned);
    restoreCache(this.helpers, cp.helpers);
    restoreCache(this.namespaces, cp.namespaces);
    restoreCache(this.exportFunctions, cp.exportFunctions);
    this.marshal.restore(cp.marshal);
    this.untrustedTime = cp.untrustedTime;
    this.heapAtLastCheck = cp.heapAtLastCheck;
    this.checkInterval = cp.checkInterval;
    this.executedSinceCheck = 0;
    this.lastImport = undefined;
  }

  private contextCaches(): unknown[] {
    const fields = this.context as unknown as Record<string, unknown>;
    return CONTEXT_CACHES.map((name) => fields[name]);
  }

  heapUsed(): number {
    this.assertAlive();
    return this.measureHeap();
  }

  dispose(): void {
    if (this.disposed) return;
    if (this.busy) throw new SandboxError("an interpreter cannot be disposed while it runs");
    this.free();
  }

  // -------------------------------------------------------------------------------------------
  // Entry points, limits and failures

  /**
   * Runs `body` as one entry point: under the deadline, then the guest's queued promise jobs,
   * then the verdict. A failure recorded while the guest ran (a host function's error, a broken
   * engine) wins over whatever the guest made of it, since the guest could have caught it.
   */
  private enter<T>(body: () => T): T {
    this.assertAlive();
    if (this.busy) {
      throw new SandboxError(
        "the interpreter is already running: a host function must not call back into it",
      );
    }
    const engine = this.engine;
    // Saved for another interpreter's entry point, whose host function may be running this one.
    const outer = { budget: engine.growthBudget, refused: engine.growthRefused };
    const memoryAtStart = engine.memoryBytes();
    const startedAt = performance.now();
    this.busy = true;
    this.timedOut = false;
    this.abortRequested = false;
    this.failure = undefined;
    this.deadline = startedAt + this.limits.maxExecutionTimeMs;
    this.lastLongRunCall = startedAt;
    engine.growthBudget = Math.max(0, this.limits.maxHeapBytes - this.heapAtLastCheck);
    engine.growthRefused = false;
    try {
      const result = body();
      this.drainJobs();
      const failure = this.recordedFailure();
      if (failure !== undefined) throw failure.error;
      if (this.timedOut) throw new LimitExceeded("time");
      if (engine.growthRefused) throw new LimitExceeded("memory");
      this.executedSinceCheck += performance.now() - startedAt;
      if (engine.memoryBytes() > memoryAtStart || this.executedSinceCheck > this.checkInterval)
        this.checkHeap();
      return result;
    } catch (thrown) {
      throw this.settle(thrown);
    } finally {
      engine.growthBudget = outer.budget;
      engine.growthRefused = outer.refused;
      this.busy = false;
      this.abortRequested = false;
      this.deadline = Number.POSITIVE_INFINITY;
    }
  }

  /** Read through a method: host functions set it behind the type checker's back, mid-call. */
  private recordedFailure(): { error: unknown } | undefined {
    return this.failure;
  }

  /** Measures the heap and throws `LimitExceeded` if it is over the limit. */
  private checkHeap(): void {
    const started = performance.now();
    const used = this.measureHeap();
    this.checkInterval = CHECK_COST_FACTOR * (performance.now() - started);
    this.executedSinceCheck = 0;
    this.heapAtLastCheck = used;
    if (used > this.limits.maxHeapBytes) throw new LimitExceeded("memory");
  }

  /** QuickJS's count of the bytes its live objects, strings, shapes, atoms and buffers hold. */
  private measureHeap(): number {
    const usage = this.runtime.computeMemoryUsage();
    try {
      const size = this.context.getProp(usage, "memory_used_size");
      try {
        return this.context.getNumber(size);
      } finally {
        size.dispose();
      }
    } finally {
      usage.dispose();
    }
  }

  /** What an entry point throws for `thrown`, and whether the interpreter survives it. */
  private settle(thrown: unknown): unknown {
    let error = thrown instanceof GuestThrow ? this.classify(thrown.exception) : thrown;
    if (this.failure !== undefined) error = this.failure.error;
    if (isEngineBreakage(error)) {
      poisonEngine(this.engine);
      return isNativeStackOverflow(error)
        ? new LimitExceeded("stack", { cause: error })
        : new SandboxError("the JS engine failed; every interpreter on it is dead", {
            cause: error,
          });
    }
    // A guest exception leaves the guest consistent, as does misuse caught before the guest ran.
    if (
      this.failure === undefined &&
      (error instanceof JsException || error instanceof SandboxError)
    ) {
      return error;
    }
    // A limit, or a host failure that stopped the guest mid-call: its state is suspect.
    this.killed = true;
    return error;
  }

  /** What a guest exception means: a limit, a recorded failure, or the guest's own exception. */
  private classify(exception: QuickJSHandle): unknown {
    try {
      if (this.failure !== undefined) return this.failure.error;
      if (this.timedOut) return new LimitExceeded("time");
      if (this.engine.growthRefused) return new LimitExceeded("memory");
      const described = this.describe(exception);
      if (this.timedOut) return new LimitExceeded("time");
      // Describing needs almost no memory; failing even with headroom means the heap is full.
      if (described === undefined) return new LimitExceeded("memory");
      const [name, message, stack, text] = described;
      if (name === "InternalError" && message === "out of memory")
        return new LimitExceeded("memory");
      // QuickJS's own stack check ("SyntaxError" from the parser and JSON.parse).
      if ((name === "InternalError" || name === "SyntaxError") && message === "stack overflow") {
        return new LimitExceeded("stack");
      }
      // An interrupt we did not ask for: the handler itself failed, for want of native stack.
      if (name === "InternalError" && message === "interrupted") return new LimitExceeded("stack");
      return new JsException(text, name, message, stack);
    } finally {
      exception.dispose();
    }
  }

  private describe(
    exception: QuickJSHandle,
  ): [string, string, string | undefined, string] | undefined {
    if (!this.bootstrapped) return undefined;
    this.runtime.setMemoryLimit(this.limits.maxHeapBytes + DESCRIBE_HEADROOM_BYTES);
    this.engine.growthBudget += DESCRIBE_HEADROOM_BYTES;
    try {
      const result = this.marshal.call(this.helper("describeError"), [exception]);
      try {
        const [name, message, stack, text] = this.marshal.toHost(result.value) as GuestValue[];
        if (typeof name !== "string" || typeof message !== "string" || typeof text !== "string") {
          throw new SandboxError("unexpected exception description");
        }
        return [name, message, typeof stack === "string" ? stack : undefined, text];
      } finally {
        result.dispose();
      }
    } catch (error) {
      if (!(error instanceof GuestThrow)) throw error;
      error.exception.dispose();
      return undefined;
    } finally {
      this.runtime.setMemoryLimit(this.limits.maxHeapBytes);
    }
  }

  /**
   * Runs the promise jobs the guest queued. A job's own exception is an unhandled rejection,
   * dropped as CCF drops it.
   */
  private drainJobs(): void {
    while (this.runtime.hasPendingJob()) {
      const result = this.runtime.executePendingJobs();
      if (result.error) {
        const error = this.classify(result.error);
        if (!(error instanceof JsException)) throw error;
      }
    }
  }

  private shouldInterrupt(): boolean {
    if (this.abortRequested) return true;
    const onLongRun = this.options.onLongRun;
    if (onLongRun !== undefined) {
      const now = performance.now();
      if (now - this.lastLongRunCall >= (this.options.longRunIntervalMs ?? 50)) {
        this.lastLongRunCall = now;
        try {
          onLongRun();
        } catch {
          // The host's own business: the guest goes on.
        }
      }
    }
    if (this.engine.growthRefused) {
      // The guest may have caught the "out of memory" the refusal caused; it must still stop.
      this.recordFailure(new LimitExceeded("memory"));
      return true;
    }
    if (performance.now() > this.deadline) {
      this.timedOut = true;
      return true;
    }
    return false;
  }

  /** Remembers a failure the guest must not swallow, and stops the guest at its next check. */
  private recordFailure(error: unknown): void {
    // The first failure wins, except that a broken engine must always be known.
    if (
      this.failure === undefined ||
      (isEngineBreakage(error) && !isEngineBreakage(this.failure.error))
    ) {
      this.failure = { error };
    }
    this.abortRequested = true;
  }

  private assertAlive(): void {
    if (this.disposed) throw new SandboxError("the interpreter was disposed");
    if (this.dead) {
      throw new SandboxError(
        "the interpreter is dead (a limit was hit, a host function failed or the engine broke)",
      );
    }
  }

  private free(): void {
    this.disposed = true;
    // A poisoned engine is left alone: see `poisonEngine`. An isolated one goes with its
    // interpreter: nothing in it needs freeing (and after a rewind the library's bookkeeping no
    // longer matches the memory).
    if (this.engine.poisoned || this.engine.isolated) return;
    try {
      this.owned.dispose();
      this.marshal.free();
      this.context.dispose();
    } catch (error) {
      poisonEngine(this.engine);
      throw new SandboxError("freeing the interpreter failed; the JS engine was replaced", {
        cause: error,
      });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Guest plumbing

  private installEnvironment(): [QuickJSHandle, QuickJSHandle] {
    return Scope.withScope((scope) => {
      const install = scope.manage(this.evalGlobal(ENVIRONMENT_SOURCE, BOOTSTRAP_FILENAME));
      const log = scope.manage(
        this.newHostFunction("log", (level, message) => this.guestLog(level, message)),
      );
      const random = scope.manage(this.newHostFunction("random", (n) => this.guestRandom(n)));
      const now = scope.manage(
        this.newHostFunction("now", () => {
          this.nondeterministicReads++;
          return (this.options.clock ?? Date.now)();
        }),
      );
      const result = scope.manage(this.callChecked(install, [log, random, now]));
      return [
        this.owned.manage(this.getProp(result, "0")),
        this.owned.manage(this.getProp(result, "1")),
      ];
    });
  }

  /** Helper `name`, compiled and built from the intrinsics on first use. */
  private helper(name: HelperName): QuickJSHandle {
    const cached = this.helpers.get(name);
    if (cached !== undefined) return cached;
    const factory = this.evalGlobal(HELPER_SOURCES[name], BOOTSTRAP_FILENAME);
    try {
      const helper = this.owned.manage(this.callChecked(factory, [this.intrinsics]));
      this.helpers.set(name, helper);
      return helper;
    } finally {
      factory.dispose();
    }
  }

  private evalGlobal(source: string, filename: string): QuickJSHandle {
    const result = this.context.evalCode(source, filename, { type: "global", strict: true });
    if (result.error) throw new GuestThrow(result.error);
    return result.value;
  }

  private guestLog(level: GuestValue, message: GuestValue): undefined {
    if (typeof level !== "string" || !LOG_LEVELS.has(level) || typeof message !== "string") {
      throw new SandboxError("malformed console call from the sandbox bootstrap");
    }
    this.options.log(level as LogLevel, message);
    return undefined;
  }

  private guestRandom(n: GuestValue): Uint8Array {
    this.nondeterministicReads++;
    if (typeof n !== "number")
      throw new SandboxError("malformed entropy request from the sandbox bootstrap");
    const bytes = this.options.randomBytes(n);
    if (!(bytes instanceof Uint8Array) || bytes.length !== n) {
      throw new SandboxError(`randomBytes(${n}) must return ${n} bytes`);
    }
    return bytes;
  }

  /** Calls `fn` with `args` (not disposed here); a guest exception is thrown as `GuestThrow`. */
  private callChecked(fn: QuickJSHandle, args: QuickJSHandle[]): QuickJSHandle {
    return this.marshal.call(fn, args);
  }

  private getProp(target: QuickJSHandle, key: string): QuickJSHandle {
    // A getter can throw; the library's getProp would hand back the exception marker as a value.
    return this.marshal.checked(this.context.getProp(target, key));
  }

  /** Calls `fn(...leading, ...args)` and converts its result. */
  private invoke(
    fn: QuickJSHandle,
    leading: QuickJSHandle[],
    args: readonly HostValue[],
    discard = false,
  ): GuestValue {
    if (discard) {
      // Left to the rewind (see CallOptions.discard), even when a conversion or the call throws.
      const handles = [...leading];
      for (const arg of args) handles.push(this.marshal.toGuest(arg));
      return this.marshal.toHost(this.callChecked(fn, handles).value);
    }
    return Scope.withScope((scope) => {
      const handles = [...leading];
      for (const arg of args) handles.push(scope.manage(this.marshal.toGuest(arg)));
      const result = scope.manage(this.callChecked(fn, handles));
      return this.marshal.toHost(result.value);
    });
  }

  private globalFunction(name: string): QuickJSHandle {
    const fn = this.getProp(this.context.global, name);
    if (this.context.typeof(fn) !== "function") {
      fn.dispose();
      throw new SandboxError(`global '${name}' is not a function`);
    }
    return fn;
  }

  // -------------------------------------------------------------------------------------------
  // Modules

  private exportFunction(moduleName: string, exportName: string): QuickJSHandle {
    const key = `${moduleName}\0${exportName}`;
    const cached = this.exportFunctions.get(key);
    if (cached !== undefined) return cached;
    const fn = this.getProp(this.namespace(moduleName), exportName);
    const type = this.context.typeof(fn);
    if (type !== "function") {
      fn.dispose();
      throw new SandboxError(
        type === "undefined"
          ? `Failed to find export '${exportName}' in module '${moduleName}'`
          : `Export '${exportName}' of module '${moduleName}' is not a function`,
      );
    }
    this.exportFunctions.set(key, this.owned.manage(fn));
    return fn;
  }

  /**
   * The namespace of module `name`, evaluating it on first use. It is imported by a one-line
   * entry module rather than evaluated directly, so that it goes through the loader like every
   * import and QuickJS's module cache keeps exactly one instance of it.
   */
  private namespace(name: string): QuickJSHandle {
    const cached = this.namespaces.get(name);
    if (cached !== undefined) return cached;
    const entry = `import * as m from ${JSON.stringify(name)};\nexport { m };\n`;
    const evaluated = this.context.evalCode(entry, `<entry:${name}>`, { type: "module" });
    if (evaluated.error) throw new GuestThrow(evaluated.error);
    const entryNamespace = this.settleModule(evaluated.value, name);
    try {
      const namespace = this.owned.manage(this.getProp(entryNamespace, "m"));
      this.namespaces.set(name, namespace);
      return namespace;
    } finally {
      entryNamespace.dispose();
    }
  }

  /** The entry module's namespace: at once, or (with top-level await) once its promise settles. */
  private settleModule(result: QuickJSHandle, name: string): QuickJSHandle {
    let state = this.context.getPromiseState(result);
    if (state.type === "fulfilled" && state.notAPromise) return result;
    try {
      if (state.type === "pending") {
        this.drainJobs();
        state = this.context.getPromiseState(result);
      }
      if (state.type === "fulfilled") return state.value;
      if (state.type === "rejected") throw new GuestThrow(state.error);
      throw new SandboxError(
        `module '${name}' did not finish evaluating: a top-level await never settled`,
      );
    } finally {
      result.dispose();
    }
  }

  private resolveImport(base: string, specifier: string): string {
    const name = resolveModuleName(base, specifier);
    // The engine loads a module right after resolving it, so one remembered import is enough.
    this.lastImport = { name, importer: base };
    return name;
  }

  private loadModuleSource(name: string): string | { error: Error } {
    let source: unknown;
    try {
      source = this.options.modules.load(name);
    } catch (error) {
      this.recordFailure(error);
      return { error: new Error(`Cannot load module '${name}'`) };
    }
    if (typeof source === "string") return source;
    if (source !== undefined) {
      this.recordFailure(
        new SandboxError(`ModuleSource.load('${name}') returned a ${typeof source}`),
      );
    }
    const importer = this.lastImport?.name === name ? this.lastImport.importer : undefined;
    const by =
      importer === undefined || importer.startsWith("<entry:")
        ? ""
        : ` (imported by '${importer}')`;
    return { error: new Error(`Cannot find module '${name}'${by}`) };
  }

  // -------------------------------------------------------------------------------------------
  // Host functions

  private definitionToGuest(value: Definition, name: string): QuickJSHandle {
    if (typeof value === "function") {
      return this.newHostFunction(name, value, !isDeterministic(value));
    }
    if (!isNamespace(value)) return this.marshal.toGuest(value);
    return Scope.withScope((scope) => {
      const names = Object.keys(value);
      const members = names.map((key) => scope.manage(this.definitionToGuest(value[key], key)));
      const keys = scope.manage(this.marshal.toGuest(names));
      return this.callChecked(this.helper("object"), [keys, ...members]);
    });
  }

  private newHostFunction(name: string, fn: HostFunction, counted = false): QuickJSHandle {
    // The engine calls back with the id of this marker; `hostFunctions` maps it to the function.
    const marker = () => undefined;
    this.hostFunctions.set(marker, { name, fn, counted });
    return this.context.newFunction(name, marker);
  }

  /** Routes the engine's calls of our host functions to `callHost`, any other to the library. */
  private installHostCallDispatcher(): void {
    const callbacks = this.internals.cToHostCallbacks;
    const library = callbacks.callFunction;
    callbacks.callFunction = (ctx, thisPtr, argc, argv, fnId) => {
      const entry = this.hostFunctions.get(this.runtime.hostRefs.get(fnId));
      return entry === undefined
        ? library(ctx, thisPtr, argc, argv, fnId)
        : this.callHost(entry, argc, argv);
    };
  }

  /** One guest call of a host function: an owned JSValue pointer, or the exception marker. */
  private callHost(entry: HostEntry, argc: number, argv: number): number {
    if (entry.counted) this.definedHostCalls++;
    try {
      const args = new Array<GuestValue>(argc);
      for (let i = 0; i < argc; i++) {
        args[i] = this.marshal.toHost(this.internals.ffi.QTS_ArgvGetJSValueConstPointer(argv, i));
      }
      let result: HostValue | void;
      try {
        result = entry.fn(...args);
      } catch (error) {
        if (error instanceof GuestError)
          return this.throwGuestError(error.errorName, error.message);
        return this.abortGuest(error);
      }
      // A `void` result is `undefined` at run time.
      return this.marshal.toGuestPointer(result as HostValue);
    } catch (error) {
      if (error instanceof GuestThrow) return this.throwIntoGuest(error.exception);
      return this.abortGuest(error);
    }
  }

  private throwGuestError(name: string, message: string): number {
    const handles = [this.context.newString(name), this.context.newString(message)];
    let exception: QuickJSHandle;
    try {
      exception = this.callChecked(this.helper("makeError"), handles);
    } catch (error) {
      // Making the error failed (out of memory, say): that failure is what the guest gets.
      if (!(error instanceof GuestThrow)) throw error;
      exception = error.exception;
    } finally {
      for (const h of handles) h.dispose();
    }
    return this.throwIntoGuest(exception);
  }

  private throwIntoGuest(exception: QuickJSHandle): number {
    try {
      return this.internals.ffi.QTS_Throw(this.internals.ctx.value, exception.value);
    } finally {
      exception.dispose();
    }
  }

  /**
   * A host function failed other than with a `GuestError` (a bug, a KV conflict, a broken
   * engine): the failure is recorded for the entry point to rethrow, and the guest is stopped.
   */
  private abortGuest(error: unknown): number {
    this.recordFailure(error);
    try {
      return this.throwGuestError("InternalError", "host function failed");
    } catch (secondary) {
      // Only the engine breaking gets here; the interrupt stops the guest.
      this.recordFailure(secondary);
      return 0;
    }
  }
}

/**
 * Puts back a cache of handles as it was at the checkpoint. The caches only gain entries (each on
 * a miss, never replaced or removed while the interpreter lives), so one of the checkpoint's size
 * is unchanged; rebuilding it anyway cost a Map's worth of garbage per request.
 */
function restoreCache<K, V>(cache: Map<K, V>, saved: ReadonlyMap<K, V>): void {
  if (cache.size === saved.size) return;
  cache.clear();
  for (const [k, v] of saved) cache.set(k, v);
}

function isNamespace(value: Definition): value is { readonly [key: string]: Definition } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  return Object.values(value).some((member) => typeof member === "function" || isNamespace(member));
}

function validLimits(limits: Limits): Limits {
  for (const key of ["maxHeapBytes", "maxStackBytes", "maxExecutionTimeMs"] as const) {
    const v = limits[key];
    // Only the time limit may be infinite: the engine takes the others as integers.
    const finite = key === "maxExecutionTimeMs" || Number.isFinite(v);
    if (typeof v !== "number" || !(v > 0) || !finite) {
      throw new SandboxError(`limits.${key} must be a positive number`);
    }
  }
  return { ...limits };
}
