// The values that cross the sandbox boundary: what the host hands in, and what comes back out.

/**
 * A host value going into the guest (arguments, host-function results, `define`d constants).
 * Copied in: an ArrayBuffer or any view of one (Uint8Array, Buffer, DataView...) becomes a new
 * guest `ArrayBuffer` holding exactly the viewed bytes; arrays and plain objects (prototype
 * `Object.prototype` or `null`) are copied recursively, own enumerable keys only. Anything else
 * (a Map, a Date, a class instance, a function inside a value) is refused.
 */
export type HostValue =
  | undefined
  | null
  | boolean
  | number
  | bigint
  | string
  | ArrayBuffer
  | ArrayBufferView
  | readonly HostValue[]
  | { readonly [key: string]: HostValue };

/** The guest's typed-array and DataView types, by their constructor names. */
export type GuestViewType =
  | "Int8Array"
  | "Uint8Array"
  | "Uint8ClampedArray"
  | "Int16Array"
  | "Uint16Array"
  | "Int32Array"
  | "Uint32Array"
  | "BigInt64Array"
  | "BigUint64Array"
  | "Float16Array"
  | "Float32Array"
  | "Float64Array"
  | "DataView";

/**
 * A guest typed array or DataView, kept apart from a guest `ArrayBuffer` (which arrives as a host
 * `ArrayBuffer`) because CCF's native functions accept one and refuse the other. `bytes` is a copy
 * of the viewed range only (byteOffset and byteLength honoured).
 */
export class GuestView {
  constructor(
    readonly type: GuestViewType,
    readonly bytes: Uint8Array,
  ) {}
}

/** A guest function or symbol: only its kind crosses, so a host function can refuse it by type. */
export class GuestOpaque {
  constructor(readonly type: "function" | "symbol") {}
}

/**
 * A guest value as the host sees it (host-function arguments, results of calls). Primitives keep
 * their type (`undefined` stays `undefined`; NaN, -0 and bigints survive). A guest `ArrayBuffer`
 * is a host `ArrayBuffer` (a copy); typed arrays and DataViews are `GuestView`s; functions and
 * symbols are `GuestOpaque`s. Arrays are dense (holes read as `undefined`). Every other object,
 * whatever its class (Date, Map, Error, class instance, Proxy), becomes a plain object of its own
 * enumerable string-keyed properties, getters evaluated, as `Object.keys` lists them. An object
 * reached twice may come out shared; a cycle is refused with a guest `TypeError`.
 */
export type GuestValue =
  | undefined
  | null
  | boolean
  | number
  | bigint
  | string
  | ArrayBuffer
  | GuestView
  | GuestOpaque
  | GuestValue[]
  | { [key: string]: GuestValue };
