// SHA-256 of two concatenated 32-byte digests (an interior Merkle node), on digests held as eight
// big-endian 32-bit words: the tree hashes one node per appended leaf, and through node:crypto each
// call costs 2-3 µs of binding overhead for a 64-byte input. This plain FIPS 180-4 SHA-256,
// specialised to a 64-byte message whose padding block is a constant, keeps the words in their
// Int32Array. Also a keyed HMAC-SHA256 for the commit evidence of every transaction. Tests check
// both against node:crypto.

import { hash } from "node:crypto";

const K = Int32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

const IV = Int32Array.from([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);

/** Fills w[16..63] from w[0..15] (the message schedule). */
function expandSchedule(w: Int32Array): void {
  for (let i = 16; i < 64; i++) {
    const a = w[i - 15];
    const b = w[i - 2];
    const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
    const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
  }
}

// The second block of a 64-byte message is always the same padding (0x80, zeros, bit length 512),
// so its schedule, already summed with K, is computed once.
const PADDING_KW = (() => {
  const w = new Int32Array(64);
  w[0] = 0x80000000 | 0;
  w[15] = 512;
  expandSchedule(w);
  for (let i = 0; i < 64; i++) w[i] = (w[i] + K[i]) | 0;
  return w;
})();

const schedule = new Int32Array(64);
const state = new Int32Array(8);

/** The 64 rounds over `kw` (K[i] + W[i] already summed), added into `s`. Unrolled by 8 so that the
 * eight working variables rotate by renaming instead of by moves, and with Σ0, Σ1, Ch and Maj
 * written out: as helper functions they are not reliably inlined and the hash runs twice as slow.
 * */
// biome-ignore format: one round per line is the readable layout of this function
function compress(s: Int32Array, kw: Int32Array): void {
  let a = s[0];
  let b = s[1];
  let c = s[2];
  let d = s[3];
  let e = s[4];
  let f = s[5];
  let g = s[6];
  let h = s[7];
  for (let i = 0; i < 64; i += 8) {
    h = (h + (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) + (g ^ (e & (f ^ g))) + kw[i]) | 0;
    d = (d + h) | 0;
    h = (h + (((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))) + ((a & b) | (c & (a | b)))) | 0;
    g = (g + (((d >>> 6) | (d << 26)) ^ ((d >>> 11) | (d << 21)) ^ ((d >>> 25) | (d << 7))) + (f ^ (d & (e ^ f))) + kw[i + 1]) | 0;
    c = (c + g) | 0;
    g = (g + (((h >>> 2) | (h << 30)) ^ ((h >>> 13) | (h << 19)) ^ ((h >>> 22) | (h << 10))) + ((h & a) | (b & (h | a)))) | 0;
    f = (f + (((c >>> 6) | (c << 26)) ^ ((c >>> 11) | (c << 21)) ^ ((c >>> 25) | (c << 7))) + (e ^ (c & (d ^ e))) + kw[i + 2]) | 0;
    b = (b + f) | 0;
    f = (f + (((g >>> 2) | (g << 30)) ^ ((g >>> 13) | (g << 19)) ^ ((g >>> 22) | (g << 10))) + ((g & h) | (a & (g | h)))) | 0;
    e = (e + (((b >>> 6) | (b << 26)) ^ ((b >>> 11) | (b << 21)) ^ ((b >>> 25) | (b << 7))) + (d ^ (b & (c ^ d))) + kw[i + 3]) | 0;
    a = (a + e) | 0;
    e = (e + (((f >>> 2) | (f << 30)) ^ ((f >>> 13) | (f << 19)) ^ ((f >>> 22) | (f << 10))) + ((f & g) | (h & (f | g)))) | 0;
    d = (d + (((a >>> 6) | (a << 26)) ^ ((a >>> 11) | (a << 21)) ^ ((a >>> 25) | (a << 7))) + (c ^ (a & (b ^ c))) + kw[i + 4]) | 0;
    h = (h + d) | 0;
    d = (d + (((e >>> 2) | (e << 30)) ^ ((e >>> 13) | (e << 19)) ^ ((e >>> 22) | (e << 10))) + ((e & f) | (g & (e | f)))) | 0;
    c = (c + (((h >>> 6) | (h << 26)) ^ ((h >>> 11) | (h << 21)) ^ ((h >>> 25) | (h << 7))) + (b ^ (h & (a ^ b))) + kw[i + 5]) | 0;
    g = (g + c) | 0;
    c = (c + (((d >>> 2) | (d << 30)) ^ ((d >>> 13) | (d << 19)) ^ ((d >>> 22) | (d << 10))) + ((d & e) | (f & (d | e)))) | 0;
    b = (b + (((g >>> 6) | (g << 26)) ^ ((g >>> 11) | (g << 21)) ^ ((g >>> 25) | (g << 7))) + (a ^ (g & (h ^ a))) + kw[i + 6]) | 0;
    f = (f + b) | 0;
    b = (b + (((c >>> 2) | (c << 30)) ^ ((c >>> 13) | (c << 19)) ^ ((c >>> 22) | (c << 10))) + ((c & d) | (e & (c | d)))) | 0;
    a = (a + (((f >>> 6) | (f << 26)) ^ ((f >>> 11) | (f << 21)) ^ ((f >>> 25) | (f << 7))) + (h ^ (f & (g ^ h))) + kw[i + 7]) | 0;
    e = (e + a) | 0;
    a = (a + (((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10))) + ((b & c) | (d & (b | c)))) | 0;
  }
  s[0] = (s[0] + a) | 0;
  s[1] = (s[1] + b) | 0;
  s[2] = (s[2] + c) | 0;
  s[3] = (s[3] + d) | 0;
  s[4] = (s[4] + e) | 0;
  s[5] = (s[5] + f) | 0;
  s[6] = (s[6] + g) | 0;
  s[7] = (s[7] + h) | 0;
}

/**
 * out[outAt..outAt+8) = SHA-256(left[leftAt..+8) ‖ right[rightAt..+8)), all as big-endian words.
 * The inputs are read before the output is written, so `out` may alias either input.
 */
export function hashPair(
  left: Int32Array,
  leftAt: number,
  right: Int32Array,
  rightAt: number,
  out: Int32Array,
  outAt: number,
): void {
  const w = schedule;
  for (let i = 0; i < 8; i++) {
    w[i] = left[leftAt + i];
    w[i + 8] = right[rightAt + i];
  }
  expandSchedule(w);
  for (let i = 0; i < 64; i++) w[i] = (w[i] + K[i]) | 0;
  state.set(IV);
  compress(state, w);
  compress(state, PADDING_KW);
  out.set(state, outAt);
}

/** Reads a 32-byte digest into eight big-endian words at words[at..at+8). */
export function wordsFromBytes(bytes: Uint8Array, words: Int32Array, at: number): void {
  for (let i = 0; i < 8; i++) {
    const p = 4 * i;
    words[at + i] = (bytes[p] << 24) | (bytes[p + 1] << 16) | (bytes[p + 2] << 8) | bytes[p + 3];
  }
}

/** The 32-byte digest held as eight big-endian words at words[at..at+8). */
export function bytesFromWords(words: Int32Array, at: number): Buffer {
  const out = Buffer.allocUnsafe(32);
  for (let i = 0; i < 8; i++) out.writeInt32BE(words[at + i], 4 * i);
  return out;
}

// The commit evidence HMAC of every write, in JS from the key's prepared pad states: a one-block
// message and the outer hash are one block compression each (~0.6 µs with its schedule), where
// node:crypto took two one-shot hashes and a concat (~2.5 µs). A whole short hash in JS gains
// nothing over node's one-shot hash() (measured: equal at two blocks), so only the HMAC is here.

/** MACs of messages up to this many bytes are computed in JS; longer ones by node:crypto. */
const SHORT_MESSAGE_MAX = 119; // two blocks with padding
/** Scratch for the padded tail of a message (up to two blocks). */
const tail = new Uint8Array(128);

/** Loads big-endian words of `bytes[at..at+64)` into the schedule, completes it and adds K. */
function loadBlock(bytes: Uint8Array, at: number): void {
  const w = schedule;
  for (let i = 0; i < 16; i++) {
    const p = at + 4 * i;
    w[i] = (bytes[p] << 24) | (bytes[p + 1] << 16) | (bytes[p + 2] << 8) | bytes[p + 3];
  }
  expandSchedule(w);
  for (let i = 0; i < 64; i++) w[i] = (w[i] + K[i]) | 0;
}

/**
 * Continues the hash in `s` (which has absorbed `prefixBytes`, a multiple of 64) with the
 * first `length` bytes of `tail`, and pads it: `s` then holds the digest. `length` must be at
 * most SHORT_MESSAGE_MAX.
 */
function finishShort(s: Int32Array, prefixBytes: number, length: number): void {
  const blocks = (length + 9 + 63) >>> 6;
  const end = blocks * 64;
  tail[length] = 0x80;
  tail.fill(0, length + 1, end - 4);
  const bits = (prefixBytes + length) * 8;
  tail[end - 4] = bits >>> 24;
  tail[end - 3] = bits >>> 16;
  tail[end - 2] = bits >>> 8;
  tail[end - 1] = bits;
  for (let b = 0; b < blocks; b++) {
    loadBlock(tail, 64 * b);
    compress(s, schedule);
  }
}

/**
 * HMAC-SHA256 under one key, with the states after the key's inner and outer pad blocks computed
 * once: a MAC of a short message is then two or three block compressions, without node:crypto.
 * Not re-entrant with other users of this module's scratch state (nothing here is async).
 */
export class HmacSha256 {
  private readonly innerState = new Int32Array(8);
  private readonly outerState = new Int32Array(8);
  private readonly ipad = Buffer.alloc(64);
  /** The outer pad followed by room for the inner digest (for long messages). */
  private readonly outer = Buffer.alloc(96);

  constructor(key: Uint8Array) {
    const k = key.length > 64 ? hash("sha256", key, "buffer") : key;
    for (let i = 0; i < 64; i++) {
      const b = i < k.length ? k[i] : 0;
      this.ipad[i] = b ^ 0x36;
      this.outer[i] = b ^ 0x5c;
    }
    this.innerState.set(IV);
    loadBlock(this.ipad, 0);
    compress(this.innerState, schedule);
    this.outerState.set(IV);
    loadBlock(this.outer, 0);
    compress(this.outerState, schedule);
  }

  mac(data: Uint8Array): Buffer {
    if (data.length > SHORT_MESSAGE_MAX) {
      const inner = hash("sha256", Buffer.concat([this.ipad, data], 64 + data.length), "buffer");
      inner.copy(this.outer, 64);
      return hash("sha256", this.outer, "buffer");
    }
    tail.set(data, 0);
    state.set(this.innerState);
    finishShort(state, 64, data.length);
    // The inner digest, as bytes, is the outer hash's message after the outer pad block.
    for (let i = 0; i < 8; i++) {
      const v = state[i];
      const p = 4 * i;
      tail[p] = v >>> 24;
      tail[p + 1] = v >>> 16;
      tail[p + 2] = v >>> 8;
      tail[p + 3] = v;
    }
    state.set(this.outerState);
    finishShort(state, 64, 32);
    return bytesFromWords(state, 0);
  }
}
