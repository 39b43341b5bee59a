// The key-value store: named maps of byte keys to byte values, each entry stamped with the
// version (seqno) of the transaction that last wrote it. Transactions read a consistent version and
// commit optimistically; committed-but-not-yet-durable versions keep an undo log so consensus can
// roll them back, and compaction forgets it.

import { ConflictError } from "../errors.js";
import { type KeyString, lowerBound } from "./keys.js";
import { Tx } from "./tx.js";
import type { WriteSet } from "./write-set.js";

/** One key's latest state. A removal leaves a tombstone (value null) until compaction. */
export interface Entry {
  value: Uint8Array | null;
  version: number;
}

export class MapState {
  readonly entries = new Map<KeyString, Entry>();
  /** Version of the last write or removal in this map. */
  version = 0;
  /** Highest version whose tombstones were dropped: older readers can no longer tell "absent". */
  tombstonesDroppedAt = 0;
  /** Number of live (non-tombstone) entries. */
  size = 0;
  /**
   * Bumped by every change to `entries` (writes, rollbacks, dropped tombstones): whoever derives
   * something from a map (the node's peer list, every 10 ms tick) re-derives it only when this moved.
   */
  generation = 0;
  private sorted: KeyString[] | undefined;

  /** Keys of live entries in byte order (cached until the key set changes). */
  sortedKeys(): readonly KeyString[] {
    if (this.sorted === undefined) {
      const keys: KeyString[] = [];
      for (const [k, e] of this.entries) if (e.value !== null) keys.push(k);
      keys.sort();
      this.sorted = keys;
    }
    return this.sorted;
  }

  /** Live keys k with from <= k < to (either bound optional), in byte order. */
  keysInRange(from?: KeyString, to?: KeyString): readonly KeyString[] {
    const keys = this.sortedKeys();
    const start = from === undefined ? 0 : lowerBound(keys, from);
    const end = to === undefined ? keys.length : lowerBound(keys, to);
    return keys.slice(start, Math.max(start, end));
  }

  set(key: KeyString, value: Uint8Array | null, version: number): Entry | undefined {
    const prev = this.entries.get(key);
    const wasLive = prev !== undefined && prev.value !== null;
    const isLive = value !== null;
    if (wasLive !== isLive) {
      this.size += isLive ? 1 : -1;
      this.sorted = undefined;
    }
    this.entries.set(key, { value, version });
    this.version = version;
    this.generation++;
    return prev;
  }

  restore(key: KeyString, prev: Entry | undefined): void {
    const cur = this.entries.get(key);
    const wasLive = cur !== undefined && cur.value !== null;
    const isLive = prev !== undefined && prev.value !== null;
    if (wasLive !== isLive) {
      this.size += isLive ? 1 : -1;
      this.sorted = undefined;
    }
    if (prev === undefined) this.entries.delete(key);
    else this.entries.set(key, prev);
    this.generation++;
  }
}

interface UndoRecord {
  version: number;
  changes: Array<{ map: string; key: KeyString; prev: Entry | undefined }>;
  mapVersions: Array<{ map: string; prev: number }>;
}

export interface CommitOptions {
  /** Version to commit at; defaults to the store's version + 1. */
  version?: number;
}

export class Store {
  private readonly maps = new Map<string, MapState>();
  private readonly undo: UndoRecord[] = [];
  private current = 0;
  private compacted = 0;

  /** Version of the last applied transaction. */
  get version(): number {
    return this.current;
  }

  /** Version up to which rollback is no longer possible. */
  get compactedVersion(): number {
    return this.compacted;
  }

  /** A transaction reading the store as of its current version. */
  begin(): Tx {
    return new Tx(this, this.current);
  }

  mapState(name: string): MapState | undefined {
    return this.maps.get(name);
  }

  mapNames(): string[] {
    return [...this.maps.keys()].sort();
  }

  /**
   * Whether a key k with from <= k < to (a bound left out is unbounded) of the map was written (set
   * or removed) by a version after `since`: what a range scan read at `since` conflicts with. From
   * the undo log, which holds every version after the compacted one; for an older `since`, from the
   * entries' versions, conservatively true once tombstones written after `since` were dropped (a
   * removal in the range can no longer be told from one outside it).
   */
  writtenInRange(
    name: string,
    from: KeyString | undefined,
    to: KeyString | undefined,
    since: number,
  ): boolean {
    const state = this.maps.get(name);
    if (state === undefined || state.version <= since) return false;
    const inRange = (k: KeyString) =>
      (from === undefined || k >= from) && (to === undefined || k < to);
    if (since >= this.compacted) {
      for (let i = this.undo.length - 1; i >= 0; i--) {
        const record = this.undo[i];
        if (record.version <= since) break;
        for (const c of record.changes) if (c.map === name && inRange(c.key)) return true;
      }
      return false;
    }
    if (state.tombstonesDroppedAt > since) return true;
    for (const [k, e] of state.entries) if (e.version > since && inRange(k)) return true;
    return false;
  }

  /** Latest committed value of a key, outside any transaction. */
  get(map: string, key: KeyString): Uint8Array | undefined {
    const e = this.maps.get(map)?.entries.get(key);
    return e?.value ?? undefined;
  }

  /**
   * Checks the transaction's reads against what has committed since it began and, if none of them
   * changed, applies its writes at the next version. Throws ConflictError otherwise.
   */
  commit(tx: Tx, options: CommitOptions = {}): { version: number; writeSet: WriteSet } {
    tx.checkStillValid();
    const version = options.version ?? this.current + 1;
    const writeSet = tx.writeSet();
    this.apply(writeSet, version);
    return { version, writeSet };
  }

  /** Applies a write set at a version without conflict checks (replication, ledger replay). */
  apply(writeSet: WriteSet, version: number): void {
    if (version <= this.current) {
      throw new ConflictError(
        `version ${version} is not after the store's version ${this.current}`,
      );
    }
    const record: UndoRecord = { version, changes: [], mapVersions: [] };
    for (const [name, writes] of writeSet) {
      if (writes.size === 0) continue;
      let state = this.maps.get(name);
      if (state === undefined) {
        state = new MapState();
        this.maps.set(name, state);
      }
      record.mapVersions.push({ map: name, prev: state.version });
      for (const [key, value] of writes) {
        const prev = state.set(key, value, version);
        record.changes.push({ map: name, key, prev });
      }
    }
    this.undo.push(record);
    this.current = version;
  }

  /** Undoes every version after `version` (consensus dropping an uncommitted suffix). */
  rollback(version: number): void {
    if (version < this.compacted) {
      throw new ConflictError(`cannot roll back to ${version}: compacted up to ${this.compacted}`);
    }
    while (this.undo.length > 0) {
      const record = this.undo[this.undo.length - 1];
      if (record.version <= version) break;
      this.undo.pop();
      for (let i = record.changes.length - 1; i >= 0; i--) {
        const c = record.changes[i];
        (this.maps.get(c.map) as MapState).restore(c.key, c.prev);
      }
      for (const mv of record.mapVersions) (this.maps.get(mv.map) as MapState).version = mv.prev;
    }
    this.current = Math.max(version, this.compacted);
  }

  /** Forgets undo information up to `version` and drops tombstones written at or before it. */
  compact(version: number): void {
    const upTo = Math.min(version, this.current);
    let n = 0;
    for (const record of this.undo) {
      if (record.version > upTo) break;
      n++;
      for (const c of record.changes) {
        const state = this.maps.get(c.map) as MapState;
        const e = state.entries.get(c.key);
        if (e !== undefined && e.value === null && e.version === record.version) {
          state.entries.delete(c.key);
          state.generation++;
          state.tombstonesDroppedAt = record.version;
        }
      }
    }
    this.undo.splice(0, n);
    this.compacted = Math.max(this.compacted, upTo);
  }

  /**
   * How the state at `version` differs from the current one, from the undo log: for each map changed
   * since, its version then and, for every key changed since, its entry then (undefined: absent).
   * Throws ConflictError if `version` is compacted away or not yet reached.
   */
  changesSince(
    version: number,
  ): Map<string, { version: number; entries: Map<KeyString, Entry | undefined> }> {
    if (version < this.compacted || version > this.current) {
      throw new ConflictError(
        `no state at version ${version}: the store holds versions ${this.compacted} to ${this.current}`,
      );
    }
    const out = new Map<string, { version: number; entries: Map<KeyString, Entry | undefined> }>();
    // Newest record first, so the oldest change after `version` is the one that stays.
    for (let i = this.undo.length - 1; i >= 0; i--) {
      const record = this.undo[i];
      if (record.version <= version) break;
      for (const mv of record.mapVersions) {
        let m = out.get(mv.map);
        if (m === undefined) {
          m = { version: mv.prev, entries: new Map() };
          out.set(mv.map, m);
        }
        m.version = mv.prev;
      }
      for (const c of record.changes) {
        (out.get(c.map) as { entries: Map<KeyString, Entry | undefined> }).entries.set(
          c.key,
          c.prev,
        );
      }
    }
    return out;
  }

  /**
   * Puts a fresh store in a snapshot's state: each map with its version and its entries, each entry
   * with the version that wrote it. Throws ConflictError if the store already holds anything.
   */
  install(
    version: number,
    maps: Iterable<{ name: string; version: number; entries: Iterable<[KeyString, Entry]> }>,
  ): void {
    if (this.current !== 0 || this.maps.size > 0 || this.undo.length > 0) {
      throw new ConflictError("a snapshot can only be installed in an empty store");
    }
    for (const m of maps) {
      const state = new MapState();
      for (const [key, entry] of m.entries) state.set(key, entry.value, entry.version);
      state.version = m.version;
      // Deletions before the snapshot are not known: no reader may ask about them.
      state.tombstonesDroppedAt = version;
      this.maps.set(m.name, state);
    }
    this.current = version;
    this.compacted = version;
  }

  /** Starts the store at a version with no history (snapshot install, recovery). */
  resetVersion(version: number): void {
    if (this.undo.length > 0)
      throw new ConflictError("cannot reset a store with uncompacted history");
    this.current = version;
    this.compacted = version;
  }

  /**
   * Adds maps replayed from an older ledger (the private maps of a recovered service, decrypted
   * once the ledger secrets are back): each must be absent or empty here, and every entry's version
   * must be at or below the compacted version (they are history, not new transactions).
   */
  addReplayedMaps(maps: ReadonlyMap<string, MapState>): void {
    for (const [name, state] of maps) {
      const here = this.maps.get(name);
      if (here !== undefined && here.entries.size > 0) {
        throw new ConflictError(`map ${name} already holds entries: replayed maps cannot merge`);
      }
      if (state.version > this.compacted) {
        throw new ConflictError(
          `replayed map ${name} at version ${state.version} is past the compacted version ${this.compacted}`,
        );
      }
    }
    for (const [name, state] of maps) this.maps.set(name, state);
  }
}
