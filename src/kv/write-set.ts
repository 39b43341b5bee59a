// A transaction's effect: for each map it touched, the keys it wrote (a value) or removed (null).
// This is what is serialised into a ledger entry and replayed on every node.

import type { KeyString } from "./keys.js";

/** Writes of one map: key → new value, or null for a removal. */
export type MapWrites = Map<KeyString, Uint8Array | null>;

/** Writes of a transaction by map name. */
export type WriteSet = Map<string, MapWrites>;

export const PUBLIC_PREFIX = "public:";

export function isPublicMap(name: string): boolean {
  return name.startsWith(PUBLIC_PREFIX);
}

/** Map names in the order CCF serialises them (byte order of the name). */
export function sortedMapNames(ws: WriteSet): string[] {
  return [...ws.keys()].sort();
}

export function writeSetIsEmpty(ws: WriteSet): boolean {
  for (const w of ws.values()) if (w.size > 0) return false;
  return true;
}
