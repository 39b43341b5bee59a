// Typings for ccf-ts's ordered range scans on raw KV maps (beyond CCF; docs/ordered-maps.md).
//
// @microsoft/ccf-app is unchanged: this file augments its `KvMap` interface. Bring it into an
// app's compilation (`import type { KvRangeOptions } from "<path>/ordered-kv.js";` in a module of
// the app, or tsconfig "include") and every `ccf.kv[name]` map, `rawKv[name]` and historical
// `state.kv[name]` is typed with `range` and `forEachInRange`. The methods exist only on ccf-ts
// nodes, not on CCF.

/** How `KvMap.range` walks its range. */
export interface KvRangeOptions {
  /** Walk from the top of the range down (descending key order). Default false. */
  reverse?: boolean;
  /**
   * Return at most this many entries (a non-negative integer). Only the part of the range up to
   * and including the last entry returned joins the transaction's read set.
   */
  limit?: number;
}

/** A range bound: an ArrayBuffer key, or undefined (or null) for unbounded. */
export type KvRangeBound = ArrayBuffer | null | undefined;

declare module "@microsoft/ccf-app/global.js" {
  interface KvMap {
    /**
     * The entries with from <= key < to, in key byte order (unsigned, lexicographic: a prefix sorts
     * before its extensions), this transaction's own writes included; descending with
     * `options.reverse`. from >= to gives no entries. The scanned range joins the transaction's
     * read set: a concurrent write of any key in it (an update, a removal, or a new key) makes the
     * transaction conflict and run again; a write outside it does not.
     */
    range(
      from?: KvRangeBound,
      to?: KvRangeBound,
      options?: KvRangeOptions,
    ): Array<[key: ArrayBuffer, value: ArrayBuffer]>;
    /** Calls `callback` for each entry of [from, to), in key byte order, like `forEach`. */
    forEachInRange(
      from: KvRangeBound,
      to: KvRangeBound,
      callback: (value: ArrayBuffer, key: ArrayBuffer, kvmap: KvMap) => void,
    ): void;
  }
}
