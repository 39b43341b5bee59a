// Map keys are arbitrary bytes; inside the store they are held as latin1 strings, which are
// lossless for bytes and compare in the same order as the bytes (one UTF-16 unit per byte).

export type KeyString = string;

export function keyToString(key: Uint8Array): KeyString {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("latin1");
}

export function keyFromString(key: KeyString): Buffer {
  return Buffer.from(key, "latin1");
}

/** Byte-order comparison of two keys in their string form. */
export function compareKeys(a: KeyString, b: KeyString): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Index of the first element of the sorted array that is >= key. */
export function lowerBound(sorted: readonly KeyString[], key: KeyString): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
