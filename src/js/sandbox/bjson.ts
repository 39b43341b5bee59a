// QuickJS's binary object format (JS_WriteObject / JS_ReadObject, version 5 in the
// quickjs-emscripten 0.32.0 build), the subset that carries data: moving a whole value across the
// WASM boundary this way costs two engine calls instead of one per property.
//
// Layout: a version byte; the atom table (count, then each property name as a string); one value.
// Integers are LEB128; a string is LEB128(length << 1 | wide) then Latin-1 bytes, or UTF-16LE
// code units when wide. Every object, array, typed array and ArrayBuffer gets the next index in
// the order it is first written, and a later occurrence of it is written as a reference to that
// index. The layout was read off what the engine writes; `test/js/sandbox/bjson.test.ts` pins it.

import { SandboxError } from "./errors.js";
import { GuestView, type GuestValue, type GuestViewType, type HostValue } from "./values.js";

const VERSION = 5;

const Tag = {
  Null: 1,
  Undefined: 2,
  False: 3,
  True: 4,
  Int32: 5,
  Float64: 6,
  String: 7,
  Object: 8,
  Array: 9,
  BigInt: 10,
  TypedArray: 14,
  ArrayBuffer: 15,
  ObjectReference: 19,
} as const;

/** QuickJS's typed-array classes in class-id order: the byte after the TypedArray tag. */
const TYPED_ARRAYS: ReadonlyArray<{ type: GuestViewType; size: number }> = [
  { type: "Uint8ClampedArray", size: 1 },
  { type: "Int8Array", size: 1 },
  { type: "Uint8Array", size: 1 },
  { type: "Int16Array", size: 2 },
  { type: "Uint16Array", size: 2 },
  { type: "Int32Array", size: 4 },
  { type: "Uint32Array", size: 4 },
  { type: "BigInt64Array", size: 8 },
  { type: "BigUint64Array", size: 8 },
  { type: "Float16Array", size: 2 },
  { type: "Float32Array", size: 4 },
  { type: "Float64Array", size: 8 },
];

/** Host values nest at most this deep: the engine reads them recursively on its own stack. */
export const MAX_HOST_DEPTH = 1000;

/** The bytes use a part of the format outside this subset (Date, boxed primitive, cycle...). */
export const UNSUPPORTED: unique symbol = Symbol("unsupported");

// ---------------------------------------------------------------------------------------------
// Writing (host -> guest)

const SCRATCH_BYTES = 4096;
const SCRATCH_LIMIT_BYTES = 1024 * 1024;

/** Any UTF-16 code unit above Latin-1: such a string is written wide. */
const WIDE_CHAR = /[^\u0000-\u00ff]/;
/** From this length a string's Latin-1 bytes are written by node (native) rather than per char. */
const NATIVE_STRING_MIN = 32;

class Writer {
  bytes = new Uint8Array(SCRATCH_BYTES);
  view = new DataView(this.bytes.buffer);
  /** `bytes` as a Buffer, for node's native Latin-1 writer. */
  buffer = Buffer.from(this.bytes.buffer);
  length = 0;

  /** Empties the writer, dropping a buffer a large value grew so it is not kept forever. */
  reset(): void {
    this.length = 0;
    if (this.bytes.length > SCRATCH_LIMIT_BYTES) {
      this.bytes = new Uint8Array(SCRATCH_BYTES);
      this.view = new DataView(this.bytes.buffer);
      this.buffer = Buffer.from(this.bytes.buffer);
    }
  }

  reserve(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
    this.view = new DataView(grown.buffer);
    this.buffer = Buffer.from(grown.buffer);
  }

  byte(b: number): void {
    this.reserve(1);
    this.bytes[this.length++] = b;
  }

  leb(n: number): void {
    this.reserve(5);
    // Division, not shifts: lengths reach 2^32 - 1, past the 32-bit signed range of `>>`.
    while (n >= 0x80) {
      this.bytes[this.length++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.bytes[this.length++] = n;
  }

  raw(src: Uint8Array): void {
    this.reserve(src.length);
    this.bytes.set(src, this.length);
    this.length += src.length;
  }

  string(s: string): void {
    const n = s.length;
    if (n >= NATIVE_STRING_MIN) {
      // Long strings (a caller's certificate PEM in every request): scanned and copied natively.
      const wide = WIDE_CHAR.test(s);
      if (!wide) {
        this.leb(n * 2);
        this.reserve(n);
        this.buffer.write(s, this.length, n, "latin1");
        this.length += n;
        return;
      }
      this.leb(n * 2 + 1);
      this.writeWide(s);
      return;
    }
    // Short strings: written as Latin-1 in one pass, rewritten wide if a code unit needs it (the
    // length prefix is as long either way: only its low bit differs).
    const start = this.length;
    this.leb(n * 2);
    this.reserve(n);
    const bytes = this.bytes;
    const at = this.length;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 0xff) {
        this.length = start;
        this.leb(n * 2 + 1);
        this.writeWide(s);
        return;
      }
      bytes[at + i] = c;
    }
    this.length = at + n;
  }

  /** UTF-16LE code units (the engine's wide strings). */
  private writeWide(s: string): void {
    const n = s.length;
    this.reserve(n * 2);
    for (let i = 0; i < n; i++) this.view.setUint16(this.length + i * 2, s.charCodeAt(i), true);
    this.length += n * 2;
  }
}

// Reused across calls: allocating two writers per value was an eighth of a call's cost.
const bodyWriter = new Writer();
const outWriter = new Writer();

/**
 * Property names and their index in the atom table of the value being encoded: a name's slot is
 * current when its `call` is this encoding's. Kept across calls (a request's names are the same
 * every time) instead of a Map per call; emptied when it holds more than MAX_ATOM_SLOTS names, so
 * that names from peers' data cannot grow it without bound. With the one-pass short strings this
 * took a request's encoding from ~4.4 to ~2.9 µs.
 */
interface AtomSlot {
  call: number;
  index: number;
}
const atomSlots = new Map<string, AtomSlot>();
/** This encoding's atom table, in index order (index i + 1 is atomNames[i]; 0 means no atom). */
const atomNames: string[] = [];
let encodeCall = 0;
export const MAX_ATOM_SLOTS = 4096;

/**
 * Encodes a host value in the engine's binary format (see `HostValue` for what is accepted). The
 * result is a view of a scratch buffer, valid until the next call.
 */
export function encodeHostValue(value: HostValue): Uint8Array {
  const body = bodyWriter;
  const out = outWriter;
  body.reset();
  out.reset();
  encodeCall++;
  atomNames.length = 0;
  if (atomSlots.size > MAX_ATOM_SLOTS) atomSlots.clear();
  writeValue(body, value, 0);
  out.byte(VERSION);
  out.leb(atomNames.length);
  for (let i = 0; i < atomNames.length; i++) out.string(atomNames[i]);
  out.raw(body.bytes.subarray(0, body.length));
  return out.bytes.subarray(0, out.length);
}

/** The atom-table index of `key` in this encoding, adding it to the table on first use. */
function atomIndex(key: string): number {
  let slot = atomSlots.get(key);
  if (slot === undefined) {
    slot = { call: 0, index: 0 };
    atomSlots.set(key, slot);
  }
  if (slot.call !== encodeCall) {
    slot.call = encodeCall;
    atomNames.push(key);
    slot.index = atomNames.length;
  }
  return slot.index;
}

function writeValue(w: Writer, v: HostValue, depth: number): void {
  switch (typeof v) {
    case "string":
      w.byte(Tag.String);
      w.string(v);
      return;
    case "object":
      break;
    case "undefined":
      w.byte(Tag.Undefined);
      return;
    case "boolean":
      w.byte(v ? Tag.True : Tag.False);
      return;
    case "number":
      if (Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff && !Object.is(v, -0)) {
        w.byte(Tag.Int32);
        w.leb(((v << 1) ^ (v >> 31)) >>> 0); // zigzag
      } else {
        w.byte(Tag.Float64);
        w.reserve(8);
        w.view.setFloat64(w.length, v, true);
        w.length += 8;
      }
      return;
    case "bigint":
      w.byte(Tag.BigInt);
      writeBigInt(w, v);
      return;
    default:
      throw new SandboxError(`a ${typeof v} cannot be passed to the guest`);
  }
  if (v === null) {
    w.byte(Tag.Null);
    return;
  }
  if (depth >= MAX_HOST_DEPTH) {
    throw new SandboxError(
      `a value nested deeper than ${MAX_HOST_DEPTH} levels (or cyclic) cannot enter the guest`,
    );
  }
  const proto: unknown = Object.getPrototypeOf(v);
  if (proto === Object.prototype || proto === null) {
    const record = v as { readonly [key: string]: HostValue };
    const keys = Object.keys(record);
    w.byte(Tag.Object);
    w.leb(keys.length);
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      // Names always go in the table; the engine turns "1" back into an index key when it reads it.
      w.leb(atomIndex(key) * 2);
      writeValue(w, record[key], depth + 1);
    }
    return;
  }
  if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) {
    const bytes = v instanceof ArrayBuffer ? new Uint8Array(v) : viewBytes(v);
    w.byte(Tag.ArrayBuffer);
    w.leb(bytes.length);
    w.leb(0xffffffff); // no maximum: not resizable
    w.raw(bytes);
    return;
  }
  if (Array.isArray(v)) {
    const items = v as readonly HostValue[];
    w.byte(Tag.Array);
    w.leb(items.length);
    for (let i = 0; i < items.length; i++) writeValue(w, items[i], depth + 1);
    return;
  }
  const name = (v as object).constructor?.name ?? "object";
  throw new SandboxError(
    `a ${name} cannot be passed to the guest (only plain objects, arrays and bytes)`,
  );
}

/** Little-endian two's complement in the fewest bytes (0n is no bytes), as the engine writes it. */
function writeBigInt(w: Writer, v: bigint): void {
  const bytes: number[] = [];
  if (v !== 0n) {
    let x = v;
    let done = false;
    while (!done) {
      const b = Number(x & 0xffn);
      bytes.push(b);
      x >>= 8n;
      // Done once the rest is all sign bits and this byte's top bit already shows that sign
      // (a positive value whose top byte is >= 0x80 needs one more, zero, byte).
      done = (x === 0n && (b & 0x80) === 0) || (x === -1n && (b & 0x80) !== 0);
    }
  }
  w.leb(bytes.length);
  w.raw(Uint8Array.from(bytes));
}

// ---------------------------------------------------------------------------------------------
// Reading (guest -> host)

class Unsupported extends Error {}

/** Scratch space for reading a float64 without a DataView per value decoded. */
const float64Bytes = new Uint8Array(8);
const float64View = new DataView(float64Bytes.buffer);

class Reader {
  pos = 0;
  atoms: string[] = [];
  /** Decoded objects by index; `IN_PROGRESS` marks ones still being read (a reference to one
   * is a cycle). */
  objects: unknown[] = [];

  constructor(readonly bytes: Uint8Array) {}

  float64(): number {
    float64Bytes.set(this.take(8));
    return float64View.getFloat64(0, true);
  }

  byte(): number {
    if (this.pos >= this.bytes.length) throw new Unsupported("truncated");
    return this.bytes[this.pos++];
  }

  leb(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 5; i++) {
      const b = this.byte();
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return result;
      scale *= 0x80;
    }
    throw new Unsupported("overlong integer");
  }

  take(n: number): Uint8Array {
    if (this.pos + n > this.bytes.length) throw new Unsupported("truncated");
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  string(): string {
    const header = this.leb();
    const n = Math.floor(header / 2);
    if (header % 2 === 1) {
      const units = this.take(n * 2);
      return Buffer.from(units.buffer, units.byteOffset, units.byteLength).toString("utf16le");
    }
    const at = this.pos;
    if (at + n > this.bytes.length) throw new Unsupported("truncated");
    this.pos = at + n;
    if (n <= SHORT_STRING_MAX) return shortString(this.bytes, at, n);
    const { buffer, byteOffset } = this.bytes;
    return Buffer.from(buffer, byteOffset + at, n).toString("latin1");
  }
}

/**
 * Short Latin-1 strings decoded before, by a hash of their bytes: the same property names and
 * values ("headers", "content-type", "status", a map's name...) come out of the guest with every
 * request. Reusing the string saves building it char by char, and V8 looking it up in its string
 * table again when it becomes a property key (together ~1 µs of the ~1.4 a response took).
 * Direct-mapped: a slot holds the last string that hashed to it.
 */
const SHORT_STRING_MAX = 24;
const SHORT_STRING_SLOTS = 512;
const shortStrings = Array.from(
  { length: SHORT_STRING_SLOTS },
  (): { bytes: Uint8Array; value: string } | undefined => undefined,
);

function shortString(bytes: Uint8Array, at: number, n: number): string {
  let h = n;
  for (let i = 0; i < n; i++) h = (Math.imul(h, 31) + bytes[at + i]) | 0;
  const slot = (h ^ (h >>> 9)) & (SHORT_STRING_SLOTS - 1);
  const cached = shortStrings[slot];
  if (cached !== undefined && cached.bytes.length === n) {
    const c = cached.bytes;
    let same = true;
    for (let i = 0; i < n; i++) {
      if (c[i] !== bytes[at + i]) {
        same = false;
        break;
      }
    }
    if (same) return cached.value;
  }
  let value = "";
  for (let i = 0; i < n; i++) value += String.fromCharCode(bytes[at + i]);
  shortStrings[slot] = { bytes: bytes.slice(at, at + n), value };
  return value;
}

/**
 * The bytes of a typed array or DataView. A Uint8Array (a Buffer too) is used as it is: taking
 * `.buffer` of a small one, which V8 keeps on its own heap, allocates a backing store and copies
 * it there (~3 % of a node's main thread under `bench app` reads, most of it from here and
 * `Marshal.toGuest`).
 */
export function viewBytes(v: ArrayBufferView): Uint8Array {
  return v instanceof Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

const IN_PROGRESS: unique symbol = Symbol("in progress");

/**
 * Decodes what the engine wrote for a guest value. Returns `UNSUPPORTED` when the value needs
 * more than this subset (the caller then converts it another way).
 */
export function decodeGuestValue(bytes: Uint8Array): GuestValue | typeof UNSUPPORTED {
  const r = new Reader(bytes);
  try {
    if (r.byte() !== VERSION) throw new Unsupported("version");
    const atomCount = r.leb();
    for (let i = 0; i < atomCount; i++) r.atoms.push(r.string());
    const value = readValue(r, 0);
    if (r.pos !== bytes.length) throw new Unsupported("trailing bytes");
    return value;
  } catch (error) {
    if (error instanceof Unsupported) return UNSUPPORTED;
    throw error;
  }
}

/** Up to this many bytes an ArrayBuffer's contents are copied by a loop. */
const SMALL_COPY_MAX = 64;

/** The engine's own recursion bounds nesting far below this; it only keeps bad input finite. */
const MAX_GUEST_DEPTH = 100_000;

function readValue(r: Reader, depth: number): GuestValue {
  if (depth > MAX_GUEST_DEPTH) throw new Unsupported("too deep");
  const tag = r.byte();
  switch (tag) {
    case Tag.Null:
      return null;
    case Tag.Undefined:
      return undefined;
    case Tag.False:
      return false;
    case Tag.True:
      return true;
    case Tag.Int32: {
      const z = r.leb();
      return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
    }
    case Tag.Float64:
      return r.float64();
    case Tag.String:
      return r.string();
    case Tag.BigInt:
      return readBigInt(r.take(r.leb()));
    case Tag.Object: {
      const index = r.objects.push(IN_PROGRESS) - 1;
      const obj: { [key: string]: GuestValue } = {};
      const count = r.leb();
      for (let i = 0; i < count; i++) {
        const key = readAtom(r);
        const value = readValue(r, depth + 1);
        // A plain assignment of "__proto__" would set the prototype instead of a property.
        if (key === "__proto__") {
          Object.defineProperty(obj, key, {
            value,
            writable: true,
            enumerable: true,
            configurable: true,
          });
        } else {
          obj[key] = value;
        }
      }
      r.objects[index] = obj;
      return obj;
    }
    case Tag.Array: {
      const index = r.objects.push(IN_PROGRESS) - 1;
      const length = r.leb();
      const items: GuestValue[] = [];
      for (let i = 0; i < length; i++) items.push(readValue(r, depth + 1));
      r.objects[index] = items;
      return items;
    }
    case Tag.TypedArray: {
      const kind = TYPED_ARRAYS[r.byte()];
      if (kind === undefined) throw new Unsupported("typed array type");
      const length = r.leb();
      const byteOffset = r.leb();
      const index = r.objects.push(IN_PROGRESS) - 1;
      const buffer = readValue(r, depth + 1);
      if (!(buffer instanceof ArrayBuffer) || byteOffset + length * kind.size > buffer.byteLength) {
        throw new Unsupported("typed array buffer");
      }
      const view = new GuestView(
        kind.type,
        new Uint8Array(buffer.slice(byteOffset, byteOffset + length * kind.size)),
      );
      r.objects[index] = view;
      return view;
    }
    case Tag.ArrayBuffer: {
      const byteLength = r.leb();
      r.leb(); // maximum length (resizable buffers): irrelevant to a copy
      // An ArrayBuffer first, then its bytes: a small Uint8Array lives on V8's heap, and asking
      // it for its `.buffer` would allocate and copy once more. Small ones are copied by a loop
      // rather than through a view of the source made for the purpose.
      const at = r.pos;
      if (at + byteLength > r.bytes.length) throw new Unsupported("truncated");
      r.pos = at + byteLength;
      const copy = new ArrayBuffer(byteLength);
      const into = new Uint8Array(copy);
      if (byteLength <= SMALL_COPY_MAX) {
        for (let i = 0; i < byteLength; i++) into[i] = r.bytes[at + i];
      } else {
        into.set(r.bytes.subarray(at, at + byteLength));
      }
      r.objects.push(copy);
      return copy;
    }
    case Tag.ObjectReference: {
      const target = r.objects[r.leb()];
      if (target === undefined || target === IN_PROGRESS) throw new Unsupported("cycle");
      return target as GuestValue;
    }
    default:
      throw new Unsupported(`tag ${tag}`);
  }
}

function readAtom(r: Reader): string {
  const v = r.leb();
  if (v % 2 === 1) return String((v - 1) / 2); // an integer key, stored inline
  const name = r.atoms[v / 2 - 1];
  if (name === undefined) throw new Unsupported("atom index");
  return name;
}

function readBigInt(bytes: Uint8Array): bigint {
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]);
  const top = bytes[bytes.length - 1];
  if (top !== undefined && top & 0x80) v -= 1n << BigInt(bytes.length * 8);
  return v;
}
