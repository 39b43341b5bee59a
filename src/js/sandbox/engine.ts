// The QuickJS WASM module shared by every interpreter of the process, its replacement when a guest
// breaks it, and the one view into quickjs-emscripten internals the hot path needs.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { isMainThread, resourceLimits } from "node:worker_threads";
import {
  type HostRefId,
  newQuickJSWASMModule,
  newVariant,
  type QuickJSContext,
  type QuickJSHandle,
  type QuickJSWASMModule,
  RELEASE_SYNC,
} from "quickjs-emscripten";

/**
 * One instance of the WASM module. Interpreters share its linear memory (at most 2 GiB, never
 * returned to the OS while the module lives), so the sum of live interpreters' heaps is bounded
 * by that too.
 *
 * QuickJS's own heap limit (`setMemoryLimit`) cannot bound bytes in this build: without
 * `malloc_usable_size` under Emscripten it counts every allocation as 8 bytes, so a guest can
 * allocate a 1 MiB ArrayBuffer for the price of 8. The engine therefore also watches the one
 * place big allocations must pass, the growth of the WASM memory: while an entry point runs,
 * growth beyond its budget is refused, which makes the allocation fail inside the engine (a
 * clean "out of memory").
 */
export interface Engine {
  readonly module: QuickJSWASMModule;
  /** Set once an exception unwound through WASM frames: the module can no longer be trusted. */
  poisoned: boolean;
  /**
   * Bytes the WASM memory may still grow by (one more chunk while positive): set by the running
   * entry point, unbounded between entry points.
   */
  growthBudget: number;
  /**
   * The last growth attempt was refused (a later successful one clears it): the running entry
   * point is out of memory.
   */
  growthRefused: boolean;
  /** The WASM memory's size now, in bytes. */
  memoryBytes(): number;
  /** The WASM memory's bytes now (a new view after each growth). */
  memoryView(): Uint8Array;
  /** Only one interpreter runs on it, so its memory may be captured and restored whole. */
  readonly isolated: boolean;
}

/** The part of `WebAssembly.Memory` used here (its types are not in this project's libraries). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
const WasmMemoryConstructor = (
  globalThis as unknown as {
    WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => WasmMemory };
  }
).WebAssembly.Memory;
const PAGE_BYTES = 65536;
/** What the build declares: 16 MiB to start, 2 GiB at most. */
const INITIAL_PAGES = 256;
const MAXIMUM_PAGES = 32768;

async function instantiate(isolated = false): Promise<Engine> {
  const memory = new WasmMemoryConstructor({ initial: INITIAL_PAGES, maximum: MAXIMUM_PAGES });
  const state = { growthBudget: Number.POSITIVE_INFINITY, growthRefused: false };
  const grow = memory.grow.bind(memory);
  // Emscripten grows through this method when malloc runs out; a throw makes that malloc fail.
  // It grows in chunks (about 5-20% of the memory) bigger than the allocation, so the budget is
  // checked before a chunk, not against it: an entry point overshoots by one chunk at most.
  memory.grow = (pages: number): number => {
    const bytes = pages * PAGE_BYTES;
    if (state.growthBudget <= 0) {
      state.growthRefused = true;
      throw new RangeError("the running interpreter's heap budget is exhausted");
    }
    const previous = grow(pages);
    state.growthBudget -= bytes;
    state.growthRefused = false;
    return previous;
  };
  const module = await newQuickJSWASMModule(newVariant(RELEASE_SYNC, { wasmMemory: memory }));
  return Object.assign(state, {
    module,
    poisoned: false,
    memoryBytes: () => memory.buffer.byteLength,
    memoryView: () => new Uint8Array(memory.buffer),
    isolated,
  });
}

let loading: Promise<Engine> | undefined;
/** What `loading` resolved to, known synchronously so that poisoning it takes effect at once. */
let loaded: Engine | undefined;

/**
 * The current engine, instantiated on first use (~10-30 ms) and then shared. A module of our own
 * rather than `getQuickJS()`'s singleton, so replacing a poisoned one affects only the sandbox.
 */
export function loadEngine(): Promise<Engine> {
  if (loading === undefined) {
    const attempt = instantiate().then((engine) => {
      if (loading === attempt) loaded = engine;
      return engine;
    });
    loading = attempt;
    // A failed load must not stick: the next caller tries again.
    attempt.catch(() => {
      if (loading === attempt) loading = undefined;
    });
  }
  return loading;
}

/**
 * An engine of its own for one interpreter whose memory will be captured and restored
 * (`captureMemory`): ~16 MiB of address space and ~10-30 ms to instantiate.
 */
export function createIsolatedEngine(): Promise<Engine> {
  return instantiate(true);
}

/**
 * Where the build's C stack ends (its initial stack pointer, the module's only global): the stack
 * lies just below, from `STACK_HIGH - 5 MiB`, and the heap starts here. Read from the WASM file
 * once, with the end of its initialised data; undefined if it cannot be read, and then captures
 * simply include the whole stack.
 */
const LAYOUT = readLayout();
const STACK_HIGH: number | undefined = LAYOUT?.stackHigh;
/** The build's C stack (`-sSTACK_SIZE`): between entry points it holds nothing. */
const STACK_BYTES = 5 * 1024 * 1024;
/**
 * Where captures stop below the stack. The stack's low end, `STACK_HIGH - 5 MiB`, when the WASM
 * file confirms the layout (its initialised data ends below that, zero-initialised statics
 * following up to the stack); otherwise less than 5 MiB of stack is left out, as a safety margin.
 * Copying the dead stack would cost ~1 MiB per rewind, most of a small module's rewind time.
 */
const CAPTURE_GAP_FROM: number | undefined =
  LAYOUT === undefined
    ? undefined
    : LAYOUT.dataEnd !== undefined && LAYOUT.dataEnd <= LAYOUT.stackHigh - STACK_BYTES
      ? LAYOUT.stackHigh - STACK_BYTES
      : LAYOUT.stackHigh - 4 * 1024 * 1024;

function readLayout(): { stackHigh: number; dataEnd: number | undefined } | undefined {
  try {
    const pkg = createRequire(import.meta.url).resolve("@jitl/quickjs-wasmfile-release-sync");
    const wasm = readFileSync(join(dirname(pkg), "emscripten-module.wasm"));
    const stackHigh = firstGlobalI32(wasm);
    return stackHigh === undefined ? undefined : { stackHigh, dataEnd: dataSegmentsEnd(wasm) };
  } catch {
    return undefined;
  }
}

/** Reads WASM's unsigned LEB128 at `at`; returns the value and the offset after it. */
function readUleb(wasm: Uint8Array, at: number): [number, number] {
  let result = 0;
  let shift = 0;
  for (;;) {
    const byte = wasm[at++];
    if (byte === undefined) throw new RangeError("truncated WASM file");
    result += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if ((byte & 0x80) === 0) return [result, at];
  }
}

/** The init value of a WASM binary's first global if it is a mutable i32 constant. */
export function firstGlobalI32(wasm: Uint8Array): number | undefined {
  let at = 8;
  const uleb = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const byte = wasm[at++];
      result += (byte & 0x7f) * 2 ** shift;
      shift += 7;
      if ((byte & 0x80) === 0) return result;
    }
  };
  while (at < wasm.length) {
    const id = wasm[at++];
    const size = uleb();
    const end = at + size;
    if (id === 6) {
      if (uleb() === 0) return undefined;
      const [type, mutable, opcode] = [wasm[at], wasm[at + 1], wasm[at + 2]];
      if (type !== 0x7f || mutable !== 1 || opcode !== 0x41) return undefined;
      at += 3;
      // A signed LEB128 i32; a stack pointer is positive and below 2^31.
      let value = 0;
      let shift = 0;
      let byte: number;
      do {
        byte = wasm[at++];
        value += (byte & 0x7f) * 2 ** shift;
        shift += 7;
      } while (byte & 0x80);
      return (byte & 0x40) === 0 ? value : undefined;
    }
    at = end;
  }
  return undefined;
}

/**
 * The end of a WASM binary's active data segments (the highest `offset + length`), or undefined
 * if a segment is not the plain kind (memory 0, `i32.const` offset) this build uses.
 */
export function dataSegmentsEnd(wasm: Uint8Array): number | undefined {
  let at = 8;
  while (at < wasm.length) {
    const id = wasm[at++];
    let size: number;
    [size, at] = readUleb(wasm, at);
    const end = at + size;
    if (id === 11) {
      let count: number;
      [count, at] = readUleb(wasm, at);
      let max = 0;
      for (let i = 0; i < count; i++) {
        let flags: number;
        [flags, at] = readUleb(wasm, at);
        if (flags !== 0 || wasm[at] !== 0x41) return undefined;
        let offset: number;
        [offset, at] = readUleb(wasm, at + 1); // a positive i32 below 2^31 reads the same signed
        if (wasm[at] !== 0x0b) return undefined;
        let length: number;
        [length, at] = readUleb(wasm, at + 1);
        at += length;
        max = Math.max(max, offset + length);
      }
      return max;
    }
    at = end;
  }
  return undefined;
}

/** The bytes of an isolated engine's memory that hold its state between entry points. */
export interface MemoryImage {
  readonly segments: ReadonlyArray<{ readonly start: number; readonly bytes: Uint8Array }>;
}

/**
 * Copies the state of `engine`'s memory below `heapEnd` (an address above every live
 * allocation): static data and the heap, without most of the C stack, which holds nothing
 * between entry points. Memory above `heapEnd` is free, so what a later call leaves there
 * needs no restoring.
 */
export function captureMemory(engine: Engine, heapEnd: number): MemoryImage {
  if (!engine.isolated) throw new Error("only an isolated engine's memory can be captured");
  const view = engine.memoryView();
  const end = Math.min(heapEnd, view.length);
  const skipFrom = CAPTURE_GAP_FROM ?? end;
  const ranges: Array<[number, number]> =
    STACK_HIGH !== undefined && skipFrom > 0 && STACK_HIGH < end
      ? [
          [0, skipFrom],
          [STACK_HIGH, end],
        ]
      : [[0, end]];
  return {
    segments: ranges.map(([start, stop]) => ({ start, bytes: view.slice(start, stop) })),
  };
}

/** Puts `image` back: the engine's state is then what it was when the image was captured. */
export function restoreMemory(engine: Engine, image: MemoryImage): void {
  const view = engine.memoryView();
  for (const { start, bytes } of image.segments) view.set(bytes, start);
}

/** The current engine if it is loaded and usable, without waiting: for host functions that need a
 * second interpreter synchronously (ccf.gov.validateConstitution). */
export function loadedEngine(): Engine | undefined {
  return loaded !== undefined && !loaded.poisoned ? loaded : undefined;
}

/**
 * Marks `engine` unusable (every interpreter on it is then dead) and makes the next
 * `loadEngine()` instantiate a fresh module. Its interpreters are dropped without being freed:
 * freeing walks structures the failure may have left half-updated, and an abort inside the module
 * would throw from every later call.
 */
export function poisonEngine(engine: Engine): void {
  engine.poisoned = true;
  if (engine === loaded) {
    loading = undefined;
    loaded = undefined;
  }
}

/**
 * True when `error` is V8 running out of native stack, or WASM trapping: either unwinds WASM
 * frames without running their epilogues, which leaves the module's stack pointer and the
 * interpreter's structures inconsistent.
 */
export function isEngineBreakage(error: unknown): boolean {
  // `WebAssembly.RuntimeError` by name: the global is not in this project's type libraries.
  return isNativeStackOverflow(error) || (error instanceof Error && error.name === "RuntimeError");
}

export function isNativeStackOverflow(error: unknown): boolean {
  return error instanceof RangeError && error.message.includes("call stack size");
}

const KIB = 1024;
/** V8's default stack limit on 64-bit platforms (`--stack-size=984`). */
const V8_DEFAULT_STACK_BYTES = 984 * KIB;
/** The WASM build's own C stack is 5 MiB; QuickJS's limit must stay inside it. */
const SHADOW_STACK_CAP = 4 * 1024 * KIB;

/**
 * The QuickJS stack limit to set for a requested one. QuickJS measures its stack in the WASM
 * module's linear memory, but each of its frames also takes V8's native stack, ~2-3.5 times as
 * much for ordinary JS recursion (measured on this build). If V8's stack runs out first the
 * module is broken, so the limit is capped at a fifth of the thread's native stack, leaving room
 * for the host frames below the call. Recursion inside C (JSON.stringify or the parser on deeply
 * nested input) takes far more native stack per QuickJS byte and can still exhaust it; that case
 * is caught as an engine breakage and reported as the stack limit.
 */
export function effectiveStackLimit(requested: number): number {
  const cap = Math.min(Math.floor(nativeStackBytes() / 5), SHADOW_STACK_CAP);
  return requested > 0 ? Math.min(requested, cap) : cap;
}

function nativeStackBytes(): number {
  if (!isMainThread && resourceLimits.stackSizeMb !== undefined) {
    return Math.floor(resourceLimits.stackSizeMb * 1024 * KIB);
  }
  for (const arg of process.execArgv) {
    const match = /^--stack[-_]size=(\d+)$/.exec(arg);
    if (match?.[1] !== undefined) return Number(match[1]) * KIB;
  }
  return V8_DEFAULT_STACK_BYTES;
}

/**
 * The members of quickjs-emscripten 0.32.0's `QuickJSContext` (pinned in package.json) that its
 * typings keep private and the hot path needs: the FFI, for the binary-object calls and for
 * clearing the exception a failed call leaves pending, and the context's host-call dispatcher,
 * which we replace with a synchronous one (the library's runs every host call through a generator
 * built for asyncify, about 6 us of the ~8 us a call took). Calls into the guest also go to the FFI
 * directly, with an argument array allocated once instead of per call.
 */
export interface ContextInternals {
  readonly ctx: { readonly value: number };
  readonly ffi: {
    QTS_ResolveException(ctx: number, maybeException: number): number;
    QTS_FreeValuePointer(ctx: number, value: number): void;
    QTS_DupValuePointer(ctx: number, value: number): number;
    QTS_Throw(ctx: number, error: number): number;
    QTS_ArgvGetJSValueConstPointer(argv: number, index: number): number;
    QTS_Call(
      ctx: number,
      fn: number,
      thisValue: number,
      argc: number,
      argvPointers: number,
    ): number;
    QTS_bjson_encode(ctx: number, value: number): number;
    QTS_bjson_decode(ctx: number, data: number): number;
    QTS_GetArrayBuffer(ctx: number, value: number): number;
    QTS_GetArrayBufferLength(ctx: number, value: number): number;
    QTS_NewArrayBuffer(ctx: number, buffer: number, length: number): number;
  };
  readonly module: {
    readonly HEAPU8: Uint8Array;
    _malloc(size: number): number;
    _free(ptr: number): void;
  };
  readonly memory: { heapValueHandle(ptr: number): QuickJSHandle };
  readonly cToHostCallbacks: { callFunction: HostCallDispatcher };
}

/** Called by the engine for each host-function call: an owned JSValue pointer, 0 for undefined. */
export type HostCallDispatcher = (
  ctx: number,
  thisPtr: number,
  argc: number,
  argv: number,
  fnId: HostRefId,
) => number;

export function internalsOf(context: QuickJSContext): ContextInternals {
  // The engine boundary: these members exist at run time but are private in the typings.
  return context as unknown as ContextInternals;
}
