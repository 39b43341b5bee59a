// SipHash-2-4 (Aumasson and Bernstein), the low 32 bits of its 64-bit output: the order of a CCF
// snapshot's entries. Each 64-bit word is two 32-bit halves held in locals, so a hash allocates
// nothing (a snapshot hashes every key of the store: ~0.1 µs per short key, against ~1.2 µs for
// the earlier version that kept the state in a fresh Uint32Array and called a function per step).

/** A 64-bit key as its two little-endian 32-bit words: [high, low]. */
export type SipKeyWord = readonly [number, number];

/** Room for the bytes of a latin1 key, grown on demand (one per process: hashing is synchronous). */
let scratch = new Uint8Array(256);

/** `sipHash24Low32` of a latin1 string's bytes (each char code is one byte). */
export function sipHash24Low32OfLatin1(s: string, k0: SipKeyWord, k1: SipKeyWord): number {
  if (s.length > scratch.length) scratch = new Uint8Array(Math.max(s.length, scratch.length * 2));
  for (let i = 0; i < s.length; i++) scratch[i] = s.charCodeAt(i);
  return sipHash24Low32(scratch, k0, k1, s.length);
}

/**
 * The low 32 bits of SipHash-2-4 of the first `length` bytes of `data` (all of it by default) under
 * the key (k0, k1).
 */
export function sipHash24Low32(
  data: Uint8Array,
  k0: SipKeyWord,
  k1: SipKeyWord,
  length = data.length,
): number {
  // v0..v3, each as (h)igh and (l)ow halves.
  let v0h = (k0[0] ^ 0x736f6d65) >>> 0;
  let v0l = (k0[1] ^ 0x70736575) >>> 0;
  let v1h = (k1[0] ^ 0x646f7261) >>> 0;
  let v1l = (k1[1] ^ 0x6e646f6d) >>> 0;
  let v2h = (k0[0] ^ 0x6c796765) >>> 0;
  let v2l = (k0[1] ^ 0x6e657261) >>> 0;
  let v3h = (k1[0] ^ 0x74656462) >>> 0;
  let v3l = (k1[1] ^ 0x79746573) >>> 0;
  const full = length - (length % 8);
  // Blocks of 8 bytes, then the last block (the remaining bytes, the length's low byte on top),
  // then the finalisation: `i` runs past `full` once for the last block.
  let rounds = 2;
  let mh = 0;
  let ml = 0;
  for (let i = 0; ; i += 8) {
    if (i < full) {
      ml = (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)) >>> 0;
      mh = (data[i + 4] | (data[i + 5] << 8) | (data[i + 6] << 16) | (data[i + 7] << 24)) >>> 0;
    } else if (i === full) {
      ml = 0;
      mh = (length & 0xff) << 24;
      for (let j = full; j < length; j++) {
        const shift = (j - full) * 8;
        if (shift < 32) ml |= data[j] << shift;
        else mh |= data[j] << (shift - 32);
      }
      ml >>>= 0;
      mh >>>= 0;
    } else {
      // Finalisation: v2 ^= 0xff, four rounds, no message word.
      v2l = (v2l ^ 0xff) >>> 0;
      rounds = 4;
      mh = 0;
      ml = 0;
    }
    v3h = (v3h ^ mh) >>> 0;
    v3l = (v3l ^ ml) >>> 0;
    for (let r = 0; r < rounds; r++) {
      let lo: number;
      let th: number;
      let tl: number;
      // v0 += v1; v1 = rotl(v1, 13) ^ v0; v0 = rotl(v0, 32)
      lo = v0l + v1l;
      v0h = (v0h + v1h + (lo > 0xffffffff ? 1 : 0)) >>> 0;
      v0l = lo >>> 0;
      th = ((v1h << 13) | (v1l >>> 19)) >>> 0;
      tl = ((v1l << 13) | (v1h >>> 19)) >>> 0;
      v1h = (th ^ v0h) >>> 0;
      v1l = (tl ^ v0l) >>> 0;
      th = v0h;
      v0h = v0l;
      v0l = th;
      // v2 += v3; v3 = rotl(v3, 16) ^ v2
      lo = v2l + v3l;
      v2h = (v2h + v3h + (lo > 0xffffffff ? 1 : 0)) >>> 0;
      v2l = lo >>> 0;
      th = ((v3h << 16) | (v3l >>> 16)) >>> 0;
      tl = ((v3l << 16) | (v3h >>> 16)) >>> 0;
      v3h = (th ^ v2h) >>> 0;
      v3l = (tl ^ v2l) >>> 0;
      // v0 += v3; v3 = rotl(v3, 21) ^ v0
      lo = v0l + v3l;
      v0h = (v0h + v3h + (lo > 0xffffffff ? 1 : 0)) >>> 0;
      v0l = lo >>> 0;
      th = ((v3h << 21) | (v3l >>> 11)) >>> 0;
      tl = ((v3l << 21) | (v3h >>> 11)) >>> 0;
      v3h = (th ^ v0h) >>> 0;
      v3l = (tl ^ v0l) >>> 0;
      // v2 += v1; v1 = rotl(v1, 17) ^ v2; v2 = rotl(v2, 32)
      lo = v2l + v1l;
      v2h = (v2h + v1h + (lo > 0xffffffff ? 1 : 0)) >>> 0;
      v2l = lo >>> 0;
      th = ((v1h << 17) | (v1l >>> 15)) >>> 0;
      tl = ((v1l << 17) | (v1h >>> 15)) >>> 0;
      v1h = (th ^ v2h) >>> 0;
      v1l = (tl ^ v2l) >>> 0;
      th = v2h;
      v2h = v2l;
      v2l = th;
    }
    if (i > full) break;
    v0h = (v0h ^ mh) >>> 0;
    v0l = (v0l ^ ml) >>> 0;
  }
  return (v0l ^ v1l ^ v2l ^ v3l) >>> 0;
}
