// AES-256-GCM (SP 800-38D, 12-byte IV, 16-byte tag) under one long-lived key, for ledger entries.
//
// Through node:crypto every aes-256-gcm cipher object costs ~7 µs whatever the message size: the
// key schedule and the binding's object set-up dominate an entry of a few hundred bytes. Here the
// block cipher stays in node:crypto but is set up once per key, as an AES-256-ECB cipher that is
// never finalised: one update() over a run of counter blocks returns their encryptions, so an
// entry costs a single call into node:crypto. GHASH, which needs no secret but H, runs in
// JavaScript on a table of multiples of H built once per key. Tests check every output against
// node's aes-256-gcm.
//
// The GHASH table is indexed by secret-dependent bytes, so, as with OpenSSL's table fallback for
// CPUs without carry-less multiply, which cache lines it touches depends on H and the data; the
// tag check itself is constant-time.

import { type Cipher, createCipheriv } from "node:crypto";
import { CryptoError } from "../errors.js";
import { aesGcmDecrypt, aesGcmEncrypt } from "./aes-gcm.js";

const KEY_SIZE = 32;
const IV_SIZE = 12;
const TAG_SIZE = 16;
const BLOCK_SIZE = 16;

// Counter blocks are written into a buffer kept with the key: room for the longest message this
// code encrypts itself (under NATIVE_FROM_BYTES) and its tag mask.
const SCRATCH_BLOCKS = 64;

// SP 800-38D caps the plaintext at 2^39 - 256 bits. Beyond it the 32-bit block counter would wrap
// round to J0 and reuse the tag mask as keystream.
const MAX_TEXT_BYTES = 2 ** 36 - 32;

/**
 * From this many bytes of AAD and text, node's aes-256-gcm (carry-less multiply in OpenSSL) is
 * faster despite its ~5 µs set-up per message: measured 5.7 vs 5.2 µs at 512 B of text, 19 vs
 * 6 µs at 2 KiB, 496 vs 31 µs at 64 KiB (snapshots, several MB, spent most of their time here).
 */
const NATIVE_FROM_BYTES = 512;

// A table entry is a 16-byte field element held as four big-endian words.
const ENTRY_WORDS = 4;

/**
 * REDUCE_BYTE[b]: what multiplying by x^8 folds back into the top word when the block's last byte
 * b is shifted out, since x^128 = 1 + x + x^2 + x^7 (0xe1 in the top byte, in GCM's reflected bit
 * order where bit 0 is the top bit of byte 0 and multiplying by x shifts right). Independent of H.
 */
const REDUCE_BYTE = (() => {
  const table = new Int32Array(256);
  for (let b = 0; b < 256; b++) {
    let top = 0;
    let low = b;
    for (let bit = 0; bit < 8; bit++) {
      const carry = low & 1;
      low >>>= 1;
      top = (top >>> 1) ^ (-carry & 0xe1000000);
    }
    table[b] = top;
  }
  return table;
})();

/**
 * Shoup's 8-bit table for H: entry b is the field product of H and the block whose first byte is b
 * and the rest zero. 4 KiB per key, small enough to stay in L1 between entries; measured against
 * the 64 KiB variant with one table per byte position (no shifts, but sixteen times the cache
 * lines) it was as fast on its own and no slower with other work between calls.
 */
function buildGhashTable(h: Uint8Array): Int32Array {
  // powers[k] = H · x^k, the product with the block holding only bit k of byte 0 (0x80 >> k).
  const powers = new Int32Array(8 * ENTRY_WORDS);
  let v0 = readWord(h, 0);
  let v1 = readWord(h, 4);
  let v2 = readWord(h, 8);
  let v3 = readWord(h, 12);
  for (let k = 0; k < 8; k++) {
    const at = k * ENTRY_WORDS;
    powers[at] = v0;
    powers[at + 1] = v1;
    powers[at + 2] = v2;
    powers[at + 3] = v3;
    const carry = v3 & 1;
    v3 = (v3 >>> 1) | (v2 << 31);
    v2 = (v2 >>> 1) | (v1 << 31);
    v1 = (v1 >>> 1) | (v0 << 31);
    v0 = (v0 >>> 1) ^ (-carry & 0xe1000000);
  }
  // Multiplication distributes over XOR, so each entry is an entry with one bit fewer plus a power.
  const table = new Int32Array(256 * ENTRY_WORDS);
  for (let b = 1; b < 256; b++) {
    const lowBit = b & -b;
    const to = b * ENTRY_WORDS;
    const from = (b ^ lowBit) * ENTRY_WORDS;
    const power = (Math.clz32(lowBit) - 24) * ENTRY_WORDS;
    for (let w = 0; w < ENTRY_WORDS; w++) table[to + w] = table[from + w] ^ powers[power + w];
  }
  return table;
}

function readWord(bytes: Uint8Array, at: number): number {
  return (bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3];
}

/**
 * Absorbs the whole blocks data[at..to) into the GHASH state s (four big-endian words): for each
 * block X, s = (s ⊕ X) · H, by Horner's rule over the bytes of s ⊕ X from the last: z = z · x^8 ⊕
 * m[byte]. Unrolled: as a loop with computed shifts it took half as long again. The data is XORed
 * in a byte at a time as each index is formed, which was faster than assembling it into words.
 */
// biome-ignore format: one byte step per line pair is the readable layout of this function
function ghashBlocks(m: Int32Array, s: Int32Array, data: Uint8Array, at: number, to: number): void {
  const reduce = REDUCE_BYTE;
  let y0 = s[0];
  let y1 = s[1];
  let y2 = s[2];
  let y3 = s[3];
  for (let p = at; p < to; p += BLOCK_SIZE) {
    let i = ((y3 & 0xff) ^ data[p + 15]) << 2;
    let z0 = m[i];
    let z1 = m[i + 1];
    let z2 = m[i + 2];
    let z3 = m[i + 3];
    let low = z3 & 0xff; z3 = (z3 >>> 8) | (z2 << 24); z2 = (z2 >>> 8) | (z1 << 24); z1 = (z1 >>> 8) | (z0 << 24); z0 = (z0 >>> 8) ^ reduce[low];
    i = (((y3 >>> 8) & 0xff) ^ data[p + 14]) << 2; z0 ^= m[i]; z1 ^= m[i + 1]; z2 ^= m[i + 2]; z3 ^= m[i + 3];
    low = z3 & 0xff; z3 = (z3 >>> 8) | (z2 << 24); z2 = (z2 >>> 8) | (z1 << 24); z1 = (z1 >>> 8) | (z0 << 24); z0 = (z0 >>> 8) ^ reduce[low];
    i = (((y3 >>> 16) & 0xff) ^ data[p + 13]) << 2; z0 ^= m[i]; z1 ^= m[i + 1]; z2 ^= m[i + 2]; z3 ^= m[i + 3];
    low = z3 & 0xff; z3 = (z3 >>> 8) | (z2 << 24); z2 = (z2 >>> 8) | (z1 << 24); z1 = (z1 >>> 8) | (z0 << 24); z0 = (z0 >>> 8) ^ reduce[low];
    i = ((y3 >>> 24) ^ data[p + 12]) << 2; z0 ^= m[i]; z1 ^= m[i + 1]; z2 ^= m[i + 2]; z3 ^= m[i + 3];
    low = z3 & 0xff; z3 = (z3 >>> 8) | (z2 << 24); z2 = (z2 >>> 8) | (z1 << 24); z1 = (z1 >>> 8) | (z0 << 24); z0 = (z0 >>> 8) ^ reduce[low];
    i = ((y2 & 0xff) ^ data[p + 11]) << 2; z0 ^= m[i]; z1 ^= m[i + 1]; z2 ^= m[i + 2]; z3 ^= m[i + 3];
    low = z3 & 0xff; z3 = (z3 >>> 8) | (z2 << 24); z2 = (z2 >>> 8) | (z1 << 24); z1 = (z1 >>> 8) | (z0 << 24); z0 = (z0 >>> 8) ^ reduce[low];
    i = (((y2 >>> 8) & 0xff) ^ data[p + 10]) << 2; z0 ^= m[i]; z1 ^= m[i + 1]; z2 ^= m[i + 2]; z3 ^= m[i + 3];
    low = z3 & 0xff; z3 = (z3 >>> 8) | (z2 << 24); z2 = (z2 >>> 8) | (z1 << 24); z1 = (z1 >>> 8) | (z0 << 24); z0 = (z0 >>> 8) ^ reduce[low];
    i = (((y2 >>> 16) & 0xff) ^ data[p + 9]) << 2; z0 ^= m[i]; z1 ^= m[i + 1]; z2 ^= m[i + 2]; z3 ^= m[i + 3];
    low = z3 & 0xff; z3 = (z3 >>> 8) | (z2 << 24); z2 = (z2 >>> 8) | (z1 << 24); z1 = (z1 >>> 8) | (z0 << 24); z0 = (z0 >>> 8) ^ reduce[low];
    i = ((y2 >>> 24) ^ data[p + 8]) << 2; z0 ^= m[i]; z1 ^= m[i + 1]; z2 ^= m[i + 2]; z3 ^= m[i + 3];
    low = z3 & 0xff; z3 = (z3 >>> 8) | (z2 << 24); z2 = (z2 >>> 8) | (z1 << 24); z1 = (z1 >>> 8) | (z0 << 24); z0 = (z0 >>> 8) ^ reduce[low];
    i = ((y1 & 0xff) ^ data[p + 7]) << 2; z0 ^= m[i]; z1 ^= m[i + 1]; z2 ^= m[i + 2]; z3 ^= m[i + 3];
    low = z3 & 0xff; z3 = (z3 >>> 8) | (z2 << 24); z2 = (z2 >>> 8) | (z1 << 24); z1 = (z1 >>> 8) | (z0 << 24); z0 = (z0 >>> 8) ^ reduce[low];
    i = (((y1 >>> 8) & 0xff) ^ data[p + 6]) << 2; z0 ^= m[i]; z1 ^= m[i + 1]; z2 ^= m[i + 2]; z3 ^= m[i + 3];
    low = z3 & 0xff; z3 = (z3 >>> 8) | (z2 << 24); z2 = (z2 >>> 8) | (z1 << 24); z1 = (z1 >>> 8) | (z0 << 24); z0 = (z0 >>> 8) ^ reduce[low];
    i = (((y1 >>> 16) & 0xff) ^ data[p + 5]) << 2; z0 ^= m[i]; z1 ^= m[i + 1]; z2 ^= m[i + 2]; z3 ^= m[i + 3];
    low = z3 & 0xff; z3 = (z3 >>> 8) | (z2 << 24); z2 = (z2 >>> 8) | (z1 << 24); z1 = (z1 >>> 8) | (z0 << 24); z0 = (z0 >>> 8) ^ reduce[low];
    i = ((y1 >>> 24) ^ data[p + 4]) << 2; z0 ^= m[i]; z1 ^= m[i + 1]; z2 ^= m[i + 2]; z3 ^= m[i + 3];
    low = z3 & 0xff; z3 = (z3 >>> 8) | (z2 << 24); z2 = (z2 >>> 8) | (z1 << 24); z1 = (z1 >>> 8) | (z0 << 24); z0 = (z0 >>> 8) ^ reduce[low];
    i = ((y0 & 0xff) ^ data[p + 3]) << 2; z0 ^= m[i]; z1 ^= m[i + 1]; z2 ^= m[i + 2]; z3 ^= m[i + 3];
    low = z3 & 0xff; z3 = (z3 >>> 8) | (z2 << 24); z2 = (z2 >>> 8) | (z1 << 24); z1 = (z1 >>> 8) | (z0 << 24); z0 = (z0 >>> 8) ^ reduce[low];
    i = (((y0 >>> 8) & 0xff) ^ data[p + 2]) << 2; z0 ^= m[i]; z1 ^= m[i + 1]; z2 ^= m[i + 2]; z3 ^= m[i + 3];
    low = z3 & 0xff; z3 = (z3 >>> 8) | (z2 << 24); z2 = (z2 >>> 8) | (z1 << 24); z1 = (z1 >>> 8) | (z0 << 24); z0 = (z0 >>> 8) ^ reduce[low];
    i = (((y0 >>> 16) & 0xff) ^ data[p + 1]) << 2; z0 ^= m[i]; z1 ^= m[i + 1]; z2 ^= m[i + 2]; z3 ^= m[i + 3];
    low = z3 & 0xff; z3 = (z3 >>> 8) | (z2 << 24); z2 = (z2 >>> 8) | (z1 << 24); z1 = (z1 >>> 8) | (z0 << 24); z0 = (z0 >>> 8) ^ reduce[low];
    i = ((y0 >>> 24) ^ data[p]) << 2; z0 ^= m[i]; z1 ^= m[i + 1]; z2 ^= m[i + 2]; z3 ^= m[i + 3];
    y0 = z0;
    y1 = z1;
    y2 = z2;
    y3 = z3;
  }
  s[0] = y0;
  s[1] = y1;
  s[2] = y2;
  s[3] = y3;
}

function checkIv(iv: Uint8Array): void {
  if (iv.length !== IV_SIZE) {
    throw new CryptoError("InvalidIv", `AES-GCM IV must be ${IV_SIZE} bytes, got ${iv.length}`);
  }
}

function checkTextLength(length: number): void {
  if (length > MAX_TEXT_BYTES) {
    throw new CryptoError("InvalidLength", `AES-GCM text may not exceed ${MAX_TEXT_BYTES} bytes`);
  }
}

/** One AES-256-GCM key, prepared for many encryptions and decryptions (see the file comment). */
export class AesGcmKey {
  private readonly ecb: Cipher;
  private readonly table: Int32Array;
  private readonly counters = new Uint8Array(SCRATCH_BLOCKS * BLOCK_SIZE);
  // counterViews[n] is the first n blocks of `counters`: update() takes no length, and a fresh
  // subarray per call would be a measurable share of the cost of a short entry.
  private readonly counterViews: Uint8Array[] = [];
  private readonly state = new Int32Array(4);
  private readonly block = new Uint8Array(BLOCK_SIZE);
  private readonly expectedTag = new Uint8Array(TAG_SIZE);
  /** The key, for node's aes-256-gcm on long messages. */
  private readonly key: Buffer;
  /** Keystreams computed by `prepare`, taken in order by `decrypt`. */
  private ahead: Ahead | undefined;

  constructor(key: Uint8Array) {
    if (key.length !== KEY_SIZE) {
      throw new CryptoError(
        "InvalidKey",
        `AES-256-GCM key must be ${KEY_SIZE} bytes, got ${key.length}`,
      );
    }
    // Never finalised: with padding off, ECB encryption returns every whole block from update(),
    // so the one object serves every message under this key.
    this.key = Buffer.from(key);
    this.ecb = createCipheriv("aes-256-ecb", key, null);
    this.ecb.setAutoPadding(false);
    this.table = buildGhashTable(this.ecb.update(new Uint8Array(BLOCK_SIZE)));
    for (let n = 0; n <= SCRATCH_BLOCKS; n++) {
      this.counterViews.push(this.counters.subarray(0, n * BLOCK_SIZE));
    }
  }

  encrypt(
    iv: Uint8Array,
    plaintext: Uint8Array,
    aad?: Uint8Array,
  ): { ciphertext: Buffer; tag: Buffer } {
    checkIv(iv);
    const n = plaintext.length;
    checkTextLength(n);
    if (n + (aad?.length ?? 0) >= NATIVE_FROM_BYTES)
      return aesGcmEncrypt(this.key, iv, plaintext, aad);
    const blocks = Math.ceil(n / BLOCK_SIZE);
    const out = this.keystream(iv, blocks);
    for (let i = 0; i < n; i++) out[i] ^= plaintext[i];
    const tag = Buffer.allocUnsafe(TAG_SIZE);
    this.computeTag(aad, out, n, out, blocks * BLOCK_SIZE, tag);
    // The ciphertext is a view of `out`; wiping the rest keeps E(K, J0) (with the tag it gives a
    // GHASH value, a polynomial in H whose roots reveal H) and unused keystream out of its buffer.
    wipeFrom(out, n);
    return { ciphertext: out.subarray(0, n), tag };
  }

  /** Throws CryptoError("DecryptionFailed") unless the tag verifies (wrong key, IV, AAD, data). */
  decrypt(iv: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, aad?: Uint8Array): Buffer {
    checkIv(iv);
    if (tag.length !== TAG_SIZE) {
      throw new CryptoError(
        "DecryptionFailed",
        `AES-GCM tag must be ${TAG_SIZE} bytes, got ${tag.length}`,
      );
    }
    const n = ciphertext.length;
    checkTextLength(n);
    if (n + (aad?.length ?? 0) >= NATIVE_FROM_BYTES) {
      return aesGcmDecrypt(this.key, iv, ciphertext, tag, aad);
    }
    const blocks = Math.ceil(n / BLOCK_SIZE);
    const out = this.takeAhead(iv, blocks) ?? this.keystream(iv, blocks);
    const expected = this.expectedTag;
    this.computeTag(aad, ciphertext, n, out, blocks * BLOCK_SIZE, expected);
    // No early exit: the time taken must not say how many leading tag bytes were right.
    let difference = 0;
    for (let i = 0; i < TAG_SIZE; i++) difference |= expected[i] ^ tag[i];
    if (difference !== 0) {
      throw new CryptoError("DecryptionFailed", "AES-GCM authentication failed");
    }
    for (let i = 0; i < n; i++) out[i] ^= ciphertext[i];
    wipeFrom(out, n);
    return out.subarray(0, n);
  }

  /**
   * Computes, in one call into node:crypto, the keystreams of messages about to be decrypted in
   * this order (a batch of replicated ledger entries): that call's fixed cost, ~1.5 µs, is most of
   * a short message's keystream. `decrypt` takes them while its IVs and sizes follow the list
   * (messages long enough for node's own cipher are left out of it); a decryption that does not
   * follow it drops what is left, wiped.
   */
  prepare(
    messages: ReadonlyArray<{ iv: Uint8Array; textLength: number; aadLength: number }>,
  ): void {
    this.dropAhead();
    const ivs: Uint8Array[] = [];
    const sizes: number[] = [];
    let total = 0;
    for (const m of messages) {
      if (m.iv.length !== IV_SIZE || m.textLength + m.aadLength >= NATIVE_FROM_BYTES) continue;
      const blocks = Math.ceil(m.textLength / BLOCK_SIZE);
      ivs.push(m.iv);
      sizes.push(blocks);
      total += blocks + 1;
    }
    if (ivs.length < 2) return;
    const input = new Uint8Array(total * BLOCK_SIZE);
    let at = 0;
    for (let i = 0; i < ivs.length; i++) {
      writeCounters(input, at, ivs[i], sizes[i]);
      at += (sizes[i] + 1) * BLOCK_SIZE;
    }
    this.ahead = { ivs, blocks: sizes, stream: this.ecb.update(input), offset: 0, next: 0 };
  }

  /** The next prepared keystream if it is for `iv` and `blocks`; otherwise drops them all. */
  private takeAhead(iv: Uint8Array, blocks: number): Buffer | undefined {
    const a = this.ahead;
    if (a === undefined) return undefined;
    const i = a.next;
    if (a.blocks[i] !== blocks || !sameBytes(a.ivs[i], iv)) {
      this.dropAhead();
      return undefined;
    }
    const size = (blocks + 1) * BLOCK_SIZE;
    const out = a.stream.subarray(a.offset, a.offset + size);
    a.offset += size;
    a.next++;
    if (a.next === a.ivs.length) this.ahead = undefined;
    return out;
  }

  /** Drops (and wipes) the keystreams `prepare` computed and `decrypt` has not taken. */
  dropAhead(): void {
    const a = this.ahead;
    if (a === undefined) return;
    a.stream.fill(0, a.offset);
    this.ahead = undefined;
  }

  /**
   * E(K, inc32^1(J0)) … E(K, inc32^blocks(J0)), then E(K, J0), from one update(): the keystream for
   * `blocks` blocks followed by the tag mask. J0 is IV ‖ 0^31 ‖ 1, as the IV is 96 bits.
   */
  private keystream(iv: Uint8Array, blocks: number): Buffer {
    writeCounters(this.counters, 0, iv, blocks);
    return this.ecb.update(this.counterViews[blocks + 1]);
  }

  /** GHASH_H(aad, text[0..length)) ⊕ mask[maskAt..+16), written to `tag`. */
  private computeTag(
    aad: Uint8Array | undefined,
    text: Uint8Array,
    length: number,
    mask: Uint8Array,
    maskAt: number,
    tag: Uint8Array,
  ): void {
    const s = this.state;
    s.fill(0);
    const aadLength = aad === undefined ? 0 : aad.length;
    if (aad !== undefined) this.absorbPadded(aad, aadLength);
    this.absorbPadded(text, length);
    // The final block: both lengths in bits, as 64-bit big-endian integers.
    const lengths = this.block;
    writeBitLength(lengths, 0, aadLength);
    writeBitLength(lengths, 8, length);
    ghashBlocks(this.table, s, lengths, 0, BLOCK_SIZE);
    for (let w = 0; w < 4; w++) {
      const word = s[w];
      const at = 4 * w;
      tag[at] = (word >>> 24) ^ mask[maskAt + at];
      tag[at + 1] = (word >>> 16) ^ mask[maskAt + at + 1];
      tag[at + 2] = (word >>> 8) ^ mask[maskAt + at + 2];
      tag[at + 3] = word ^ mask[maskAt + at + 3];
    }
  }

  /** Absorbs data[0..length), its last partial block padded with zeros. */
  private absorbPadded(data: Uint8Array, length: number): void {
    const rest = length % BLOCK_SIZE;
    const whole = length - rest;
    ghashBlocks(this.table, this.state, data, 0, whole);
    if (rest === 0) return;
    const last = this.block;
    last.fill(0);
    for (let i = 0; i < rest; i++) last[i] = data[whole + i];
    ghashBlocks(this.table, this.state, last, 0, BLOCK_SIZE);
  }
}

interface Ahead {
  ivs: Uint8Array[];
  /** Keystream blocks of each message (its tag mask follows them in `stream`). */
  blocks: number[];
  stream: Buffer;
  /** Where the next message's keystream starts in `stream`. */
  offset: number;
  next: number;
}

/** The counter blocks `keystream` encrypts for one message, written at `at`. */
function writeCounters(input: Uint8Array, at: number, iv: Uint8Array, blocks: number): void {
  for (let b = 0; b <= blocks; b++) {
    const o = at + b * BLOCK_SIZE;
    for (let i = 0; i < IV_SIZE; i++) input[o + i] = iv[i];
    const counter = b === blocks ? 1 : b + 2;
    input[o + 12] = counter >>> 24;
    input[o + 13] = counter >>> 16;
    input[o + 14] = counter >>> 8;
    input[o + 15] = counter;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function writeBitLength(out: Uint8Array, at: number, bytes: number): void {
  const high = Math.floor(bytes / 2 ** 29);
  const low = (bytes * 8) >>> 0;
  out[at] = high >>> 24;
  out[at + 1] = high >>> 16;
  out[at + 2] = high >>> 8;
  out[at + 3] = high;
  out[at + 4] = low >>> 24;
  out[at + 5] = low >>> 16;
  out[at + 6] = low >>> 8;
  out[at + 7] = low;
}

/** Zeroes bytes[from..]; a loop, as Buffer#fill's argument checks cost twice that for few bytes. */
function wipeFrom(bytes: Uint8Array, from: number): void {
  for (let i = from; i < bytes.length; i++) bytes[i] = 0;
}
