// Value conversion across the WASM boundary: host values into guest handles, guest values out to
// host values (see `HostValue` and `GuestValue` for the rules).

import type { QuickJSContext, QuickJSHandle } from "quickjs-emscripten";
import { decodeGuestValue, encodeHostValue, UNSUPPORTED, viewBytes } from "./bjson.js";
import { TreeKind } from "./bootstrap.js";
import type { ContextInternals } from "./engine.js";
import { LimitExceeded, SandboxError } from "./errors.js";
import {
  GuestOpaque,
  GuestView,
  type GuestValue,
  type GuestViewType,
  type HostValue,
} from "./values.js";

/**
 * A guest exception met while the host works on the guest's behalf. It owns `exception`: whoever
 * catches it either throws it back into the guest or classifies it, and disposes it.
 */
export class GuestThrow extends Error {
  constructor(readonly exception: QuickJSHandle) {
    super("guest exception");
  }
}

/** Conversions and calls across the boundary of one context. */
export class Marshal {
  private readonly ctx: number;
  /** The guest's `toTree` helper, once the bootstrap has run (only needed for unusual values). */
  toTree: (() => QuickJSHandle) | undefined;
  /** WASM memory for the argument pointers of `call`, grown on demand and reused. */
  private argv = 0;
  private argvCapacity = 0;

  constructor(
    private readonly context: QuickJSContext,
    private readonly internals: ContextInternals,
  ) {
    this.ctx = internals.ctx.value;
  }

  /**
   * Calls `fn` with `args` (borrowed) and `this` undefined; a guest exception is thrown as
   * `GuestThrow`. Re-entrant: the engine copies the argument values out of the pointer array
   * before running any guest code, so a nested call may reuse it.
   */
  call(fn: QuickJSHandle, args: readonly QuickJSHandle[]): QuickJSHandle {
    const { ffi, module, memory } = this.internals;
    const n = args.length;
    if (n > this.argvCapacity) this.reserve(n);
    const heap = module.HEAPU8;
    for (let i = 0, at = this.argv; i < n; i++, at += 4) {
      const pointer = args[i].value;
      heap[at] = pointer & 0xff;
      heap[at + 1] = (pointer >>> 8) & 0xff;
      heap[at + 2] = (pointer >>> 16) & 0xff;
      heap[at + 3] = pointer >>> 24;
    }
    const result = ffi.QTS_Call(this.ctx, fn.value, this.context.undefined.value, n, this.argv);
    return this.checked(memory.heapValueHandle(result));
  }

  /** Makes room for the argument pointers of calls with up to `n` arguments. */
  reserve(n: number): void {
    if (n <= this.argvCapacity) return;
    const { module } = this.internals;
    const grown = module._malloc(Math.max(n, 8) * 4);
    if (grown === 0) throw new LimitExceeded("memory");
    if (this.argv !== 0) module._free(this.argv);
    this.argv = grown;
    this.argvCapacity = Math.max(n, 8);
  }

  /** What `call` allocated, to be put back with `restore` after the memory is rewound. */
  state(): { argv: number; argvCapacity: number } {
    return { argv: this.argv, argvCapacity: this.argvCapacity };
  }

  restore(state: { argv: number; argvCapacity: number }): void {
    this.argv = state.argv;
    this.argvCapacity = state.argvCapacity;
  }

  /** Frees what `call` allocated. */
  free(): void {
    if (this.argv !== 0) this.internals.module._free(this.argv);
    this.argv = 0;
    this.argvCapacity = 0;
  }

  /** A new guest value for `value` (the caller disposes it). */
  toGuest(value: HostValue): QuickJSHandle {
    switch (typeof value) {
      case "undefined":
        return this.context.undefined;
      case "boolean":
        return value ? this.context.true : this.context.false;
      case "number":
        return this.context.newNumber(value);
      case "string":
        // The library's newString goes through a C string, which would end at the first NUL.
        return value.includes("\0")
          ? this.decodeIntoGuest(encodeHostValue(value))
          : this.context.newString(value);
    }
    if (value === null) return this.context.null;
    if (value instanceof ArrayBuffer) return this.newArrayBuffer(new Uint8Array(value));
    if (ArrayBuffer.isView(value)) {
      return this.newArrayBuffer(viewBytes(value));
    }
    return this.decodeIntoGuest(encodeHostValue(value));
  }

  /** `toGuest`, as the owned JSValue pointer a host function returns (0 for undefined). */
  toGuestPointer(value: HostValue): number {
    if (value === undefined) return 0;
    const handle = this.toGuest(value);
    try {
      return this.internals.ffi.QTS_DupValuePointer(this.ctx, handle.value);
    } finally {
      handle.dispose();
    }
  }

  /** The host value of the guest value at `ptr` (borrowed, not freed). */
  toHost(ptr: number): GuestValue {
    const value = this.viaBinary(ptr);
    return value === UNSUPPORTED ? this.viaTree(ptr) : value;
  }

  /** The fast path: the engine writes the whole value in its binary format, one call. */
  private viaBinary(ptr: number): GuestValue | typeof UNSUPPORTED {
    const { ffi, module } = this.internals;
    const encoded = ffi.QTS_bjson_encode(this.ctx, ptr);
    const exception = ffi.QTS_ResolveException(this.ctx, encoded);
    if (exception !== 0) {
      // The format refuses the value (a function, a getter, a DataView, a Map...) or the engine ran
      // out of memory or stack writing it: the tree path converts it, or meets the limit itself.
      ffi.QTS_FreeValuePointer(this.ctx, exception);
      ffi.QTS_FreeValuePointer(this.ctx, encoded);
      return UNSUPPORTED;
    }
    try {
      const length = ffi.QTS_GetArrayBufferLength(this.ctx, encoded);
      const data = ffi.QTS_GetArrayBuffer(this.ctx, encoded);
      // A copy made with the module's malloc: failing means the whole WASM memory is exhausted.
      if (data === 0) throw new LimitExceeded("memory");
      try {
        // Decoded in place: nothing below calls into the engine, so WASM memory cannot move.
        return decodeGuestValue(module.HEAPU8.subarray(data, data + length));
      } finally {
        module._free(data);
      }
    } finally {
      ffi.QTS_FreeValuePointer(this.ctx, encoded);
    }
  }

  /** The slow path: the guest's `toTree` rewrites the value into nodes the format carries. */
  private viaTree(ptr: number): GuestValue {
    if (this.toTree === undefined)
      throw new SandboxError("a value the sandbox bootstrap cannot convert");
    const { ffi, memory } = this.internals;
    const argument = memory.heapValueHandle(ffi.QTS_DupValuePointer(this.ctx, ptr));
    let result: QuickJSHandle;
    try {
      result = this.call(this.toTree(), [argument]);
    } finally {
      argument.dispose();
    }
    try {
      const tree = this.viaBinary(result.value);
      if (tree === UNSUPPORTED)
        throw new SandboxError("the sandbox's conversion tree is not encodable");
      return fromTree(tree);
    } finally {
      result.dispose();
    }
  }

  private newArrayBuffer(bytes: Uint8Array): QuickJSHandle {
    const { ffi, module, memory } = this.internals;
    // The engine takes ownership of the block and frees it with the ArrayBuffer.
    const block = module._malloc(Math.max(bytes.length, 1));
    if (block === 0) throw new LimitExceeded("memory");
    module.HEAPU8.set(bytes, block);
    return this.checked(
      memory.heapValueHandle(ffi.QTS_NewArrayBuffer(this.ctx, block, bytes.length)),
    );
  }

  private decodeIntoGuest(bytes: Uint8Array): QuickJSHandle {
    const data = this.newArrayBuffer(bytes);
    try {
      return this.checked(
        this.internals.memory.heapValueHandle(
          this.internals.ffi.QTS_bjson_decode(this.ctx, data.value),
        ),
      );
    } finally {
      data.dispose();
    }
  }

  /** `handle`, unless it is the engine's exception marker: then the pending exception, thrown. */
  checked(handle: QuickJSHandle): QuickJSHandle {
    const exception = this.internals.ffi.QTS_ResolveException(this.ctx, handle.value);
    if (exception === 0) return handle;
    handle.dispose();
    throw new GuestThrow(this.internals.memory.heapValueHandle(exception));
  }
}

const VIEW_TYPES: ReadonlySet<string> = new Set<GuestViewType>([
  "Int8Array",
  "Uint8Array",
  "Uint8ClampedArray",
  "Int16Array",
  "Uint16Array",
  "Int32Array",
  "Uint32Array",
  "BigInt64Array",
  "BigUint64Array",
  "Float16Array",
  "Float32Array",
  "Float64Array",
  "DataView",
]);

/** Rebuilds a value from the bootstrap's `toTree` nodes: `[kind, payload...]`. */
function fromTree(node: GuestValue): GuestValue {
  if (!Array.isArray(node)) throw malformedTree();
  const [kind, payload, extra] = node;
  switch (kind) {
    case TreeKind.Primitive:
      return payload;
    case TreeKind.Array:
      if (!Array.isArray(payload)) throw malformedTree();
      return payload.map(fromTree);
    case TreeKind.Object: {
      if (!Array.isArray(payload)) throw malformedTree();
      const obj: { [key: string]: GuestValue } = {};
      for (let i = 0; i + 1 < payload.length; i += 2) {
        const key = payload[i];
        if (typeof key !== "string") throw malformedTree();
        Object.defineProperty(obj, key, {
          value: fromTree(payload[i + 1]),
          writable: true,
          enumerable: true,
          configurable: true,
        });
      }
      return obj;
    }
    case TreeKind.Buffer:
      if (!(payload instanceof ArrayBuffer)) throw malformedTree();
      return payload;
    case TreeKind.View:
      if (
        typeof payload !== "string" ||
        !VIEW_TYPES.has(payload) ||
        !(extra instanceof ArrayBuffer)
      ) {
        throw malformedTree();
      }
      return new GuestView(payload as GuestViewType, new Uint8Array(extra));
    case TreeKind.Opaque:
      if (payload !== "function" && payload !== "symbol") throw malformedTree();
      return new GuestOpaque(payload);
    default:
      throw malformedTree();
  }
}

function malformedTree(): SandboxError {
  return new SandboxError("malformed conversion tree from the sandbox bootstrap");
}
