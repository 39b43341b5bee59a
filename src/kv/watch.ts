// Whether some of a store's maps changed since the last look: for data derived from them (the
// node's peer list, its app endpoints) that is checked often and rebuilt only on change.

import type { MapState, Store } from "./store.js";

export class MapsWatch {
  /** Each map's state object and generation at the last look; undefined: look again. */
  private seen: Array<{ state: MapState | undefined; generation: number }> | undefined;

  constructor(
    private readonly store: Store,
    private readonly names: readonly string[],
  ) {}

  /**
   * True on the first call, after `invalidate`, and whenever one of the maps was written, rolled
   * back or replaced (snapshot install, replayed maps) since the previous call; false otherwise.
   */
  changed(): boolean {
    const seen = this.seen;
    if (seen !== undefined) {
      let same = true;
      for (let i = 0; same && i < this.names.length; i++) {
        const state = this.store.mapState(this.names[i]);
        same = seen[i]?.state === state && seen[i]?.generation === (state?.generation ?? 0);
      }
      if (same) return false;
    }
    this.seen = this.names.map((name) => {
      const state = this.store.mapState(name);
      return { state, generation: state?.generation ?? 0 };
    });
    return true;
  }

  /** Makes the next `changed` true: something else the derived data depends on changed. */
  invalidate(): void {
    this.seen = undefined;
  }
}
