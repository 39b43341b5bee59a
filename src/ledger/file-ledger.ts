// The ledger on disk, in CCF's chunk files. Appends are buffered and written in batches; flush()
// group-commits them with one fdatasync that every waiting caller shares. A chunk ends at the first
// signature once it has reached chunk_size (or when forced), gets its positions table, and is
// renamed `ledger_<start>-<end>`; once committed it becomes `.committed`. The directory holds only
// chunk files.

import * as fs from "node:fs";
import { join } from "node:path";
import {
  CHUNK_HEADER_SIZE,
  chunkFileName,
  parseChunk,
  parseChunkName,
  positionsTable,
} from "./chunk.js";
import { type AppendOptions, checkNextSeqno, LedgerError, type LedgerStorage } from "./storage.js";

export interface FileLedgerOptions {
  /** Bytes after which the chunk ends at the next signature (CCF's ledger.chunk_size, 5 MB). */
  chunkSize: number;
  /** Written-but-unflushed bytes that trigger a write to the file. */
  writeBatchBytes?: number;
  /** Told of each fdatasync of a chunk and how long it took, in seconds (metrics). */
  onFsync?: (seconds: number) => void;
}

interface ClosedChunk {
  start: number;
  end: number;
  committed: boolean;
  file: string;
}

interface OpenChunk {
  start: number;
  fd: number;
  file: string;
  /** File offset of each entry, index = seqno - start. */
  offsets: number[];
  sizes: number[];
  /** Bytes the file will have once pending writes land. */
  size: number;
  /** Bytes actually written to the file. */
  written: number;
}

const WRITE_BATCH_BYTES = 1 << 20;

export class FileLedger implements LedgerStorage {
  private readonly closed: ClosedChunk[] = [];
  private open: OpenChunk | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private last = 0;
  private written = 0;
  private durable = 0;
  private committed = 0;
  private syncing: Promise<void> | undefined;
  private readonly fdsToClose: number[] = [];
  private readonly layoutCache = new Map<string, Array<{ offset: number; size: number }>>();
  private appendedBytesValue = 0;
  private appendedEntriesValue = 0;

  private constructor(
    readonly dir: string,
    private readonly options: FileLedgerOptions,
  ) {}

  /**
   * Opens a ledger directory, creating it if needed. Existing chunk files are indexed so that
   * appends continue after the last entry; the open chunk must not end in a torn entry (the
   * reader reports and repairs that).
   */
  static open(dir: string, options: FileLedgerOptions): FileLedger {
    fs.mkdirSync(dir, { recursive: true });
    const ledger = new FileLedger(dir, options);
    ledger.indexExisting();
    return ledger;
  }

  get lastSeqno(): number {
    return this.last;
  }

  get durableSeqno(): number {
    return this.durable;
  }

  /** Bytes of entries appended since this ledger was opened (rolled-back ones included). */
  get appendedBytes(): number {
    return this.appendedBytesValue;
  }

  /** Entries appended since this ledger was opened (rolled-back ones included). */
  get appendedEntries(): number {
    return this.appendedEntriesValue;
  }

  append(seqno: number, entry: Buffer, options: AppendOptions): void {
    checkNextSeqno(this.last, seqno);
    const chunk = this.open ?? this.startChunk(seqno);
    chunk.offsets.push(chunk.size);
    chunk.sizes.push(entry.length);
    chunk.size += entry.length;
    this.pending.push(entry);
    this.pendingBytes += entry.length;
    this.appendedBytesValue += entry.length;
    this.appendedEntriesValue++;
    this.last = seqno;
    if (
      options.signature &&
      (chunk.size >= this.options.chunkSize || options.forceChunkAfter === true)
    ) {
      this.completeChunk(chunk);
    } else if (this.pendingBytes >= (this.options.writeBatchBytes ?? WRITE_BATCH_BYTES)) {
      this.writePending();
    }
  }

  flush(): Promise<void> {
    this.writePending();
    const target = this.written;
    if (this.durable >= target) return Promise.resolve();
    return this.syncUntil(target);
  }

  read(seqno: number): Buffer | undefined {
    if (seqno < 1 || seqno > this.last) return undefined;
    const open = this.open;
    if (open !== undefined && seqno >= open.start) {
      const i = seqno - open.start;
      const offset = open.offsets[i];
      const size = open.sizes[i];
      if (offset >= open.written) return this.readPending(open, offset, size);
      const out = Buffer.allocUnsafe(size);
      fs.readSync(open.fd, out, 0, size, offset);
      return out;
    }
    const chunk = this.closedChunkOf(seqno);
    if (chunk === undefined) return undefined;
    const path = join(this.dir, chunk.file);
    let layout = this.layoutCache.get(chunk.file);
    if (layout === undefined) layout = this.cacheLayout(chunk.file, fs.readFileSync(path));
    const e = layout[seqno - chunk.start];
    if (e === undefined) return undefined;
    const fd = fs.openSync(path, "r");
    try {
      const out = Buffer.allocUnsafe(e.size);
      fs.readSync(fd, out, 0, e.size, e.offset);
      return out;
    } finally {
      fs.closeSync(fd);
    }
  }

  async readAsync(seqno: number): Promise<Buffer | undefined> {
    try {
      return await this.readClosedAsync(seqno);
    } catch (e) {
      // The chunk was renamed (committed) under us: once more with its new name.
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      return await this.readClosedAsync(seqno);
    }
  }

  private async readClosedAsync(seqno: number): Promise<Buffer | undefined> {
    if (seqno < 1 || seqno > this.last) return undefined;
    if (this.open !== undefined && seqno >= this.open.start) return this.read(seqno);
    const chunk = this.closedChunkOf(seqno);
    if (chunk === undefined) return undefined;
    const layout = this.layoutCache.get(chunk.file);
    const path = join(this.dir, chunk.file);
    if (layout === undefined) {
      // The positions table is at the end of the chunk: read it all once, keep its layout.
      const bytes = await fs.promises.readFile(path);
      const e = this.cacheLayout(chunk.file, bytes)[seqno - chunk.start];
      return e === undefined ? undefined : Buffer.from(bytes.subarray(e.offset, e.offset + e.size));
    }
    const e = layout[seqno - chunk.start];
    if (e === undefined) return undefined;
    const fh = await fs.promises.open(path, "r");
    try {
      const out = Buffer.allocUnsafe(e.size);
      await fh.read(out, 0, e.size, e.offset);
      return out;
    } finally {
      await fh.close();
    }
  }

  private closedChunkOf(seqno: number): ClosedChunk | undefined {
    return this.closed.find((c) => c.start <= seqno && seqno <= c.end);
  }

  private cacheLayout(file: string, bytes: Buffer): Array<{ offset: number; size: number }> {
    const layout = parseChunk(bytes).entries;
    if (this.layoutCache.size > 16) this.layoutCache.clear();
    this.layoutCache.set(file, layout);
    return layout;
  }

  truncate(seqno: number): void {
    if (seqno >= this.last) return;
    if (seqno < this.committed) {
      throw new LedgerError(
        "LedgerTruncateCommitted",
        `cannot truncate to ${seqno}: committed up to ${this.committed}`,
      );
    }
    this.writePending();
    const open = this.open;
    if (open !== undefined && seqno < open.start) {
      this.retireFd(open.fd);
      fs.unlinkSync(join(this.dir, open.file));
      this.open = undefined;
    }
    while (this.closed.length > 0 && this.closed[this.closed.length - 1].start > seqno) {
      const c = this.closed.pop() as ClosedChunk;
      fs.unlinkSync(join(this.dir, c.file));
    }
    const tail = this.closed[this.closed.length - 1];
    if (this.open === undefined && tail !== undefined && tail.end > seqno) {
      this.closed.pop();
      this.reopen(tail);
    }
    const cur = this.open;
    if (cur !== undefined && seqno >= cur.start) {
      const keep = seqno - cur.start + 1;
      const newSize = keep < cur.offsets.length ? cur.offsets[keep] : cur.size;
      cur.offsets.length = keep;
      cur.sizes.length = keep;
      cur.size = newSize;
      cur.written = Math.min(cur.written, newSize);
      fs.ftruncateSync(cur.fd, newSize);
      this.fdatasyncSync(cur.fd);
    }
    this.last = seqno;
    this.written = Math.min(this.written, seqno);
    this.durable = Math.min(this.durable, seqno);
    this.syncDir();
  }

  commit(seqno: number): void {
    this.committed = Math.max(this.committed, Math.min(seqno, this.last));
    let renamed = false;
    for (const c of this.closed) {
      if (!c.committed && c.end <= this.committed && c.end <= this.durable) {
        const file = chunkFileName(c.start, c.end, true);
        fs.renameSync(join(this.dir, c.file), join(this.dir, file));
        this.layoutCache.delete(c.file);
        c.file = file;
        c.committed = true;
        renamed = true;
      }
    }
    if (renamed) this.syncDir();
  }

  async close(): Promise<void> {
    await this.flush();
    if (this.syncing !== undefined) await this.syncing;
    if (this.open !== undefined) {
      fs.closeSync(this.open.fd);
      this.open = undefined;
    }
    for (const fd of this.fdsToClose.splice(0)) fs.closeSync(fd);
  }

  /**
   * Ends the open chunk now, so the next entry starts a new one (CCF's FORCE_LEDGER_CHUNK_BEFORE,
   * set on a recovery's first transaction). The open chunk must end with a signature.
   */
  completeOpenChunk(): void {
    if (this.open !== undefined && this.open.offsets.length > 0) this.completeChunk(this.open);
  }

  /**
   * Starts an empty ledger after `seqno` (a node that starts from a snapshot at `seqno` holds no
   * entry up to it): the first append is seqno + 1.
   */
  startAfter(seqno: number): void {
    if (this.last !== 0 || this.open !== undefined || this.closed.length > 0) {
      throw new LedgerError("LedgerNotEmpty", "only an empty ledger can start after a snapshot");
    }
    this.last = seqno;
    this.written = seqno;
    this.durable = seqno;
    this.committed = seqno;
  }

  /** Chunk files in seqno order (for tools and tests). */
  files(): string[] {
    const out = this.closed.map((c) => c.file);
    if (this.open !== undefined) out.push(this.open.file);
    return out;
  }

  private startChunk(start: number): OpenChunk {
    const file = chunkFileName(start);
    const fd = fs.openSync(join(this.dir, file), "w+");
    fs.writeSync(fd, Buffer.alloc(CHUNK_HEADER_SIZE), 0, CHUNK_HEADER_SIZE, 0);
    this.open = {
      start,
      fd,
      file,
      offsets: [],
      sizes: [],
      size: CHUNK_HEADER_SIZE,
      written: CHUNK_HEADER_SIZE,
    };
    this.syncDir();
    return this.open;
  }

  /** Ends the open chunk: positions table, table offset in the header, synced, renamed. */
  private completeChunk(chunk: OpenChunk): void {
    this.writePending();
    const table = positionsTable(chunk.offsets);
    fs.writeSync(chunk.fd, table, 0, table.length, chunk.size);
    const header = Buffer.alloc(CHUNK_HEADER_SIZE);
    header.writeBigUInt64LE(BigInt(chunk.size), 0);
    fs.writeSync(chunk.fd, header, 0, CHUNK_HEADER_SIZE, 0);
    this.fdatasyncSync(chunk.fd);
    const end = chunk.start + chunk.offsets.length - 1;
    const file = chunkFileName(chunk.start, end);
    fs.renameSync(join(this.dir, chunk.file), join(this.dir, file));
    this.syncDir();
    this.retireFd(chunk.fd);
    this.closed.push({ start: chunk.start, end, committed: false, file });
    this.open = undefined;
    this.durable = Math.max(this.durable, end);
    this.commit(this.committed);
  }

  /** Turns a complete (uncommitted) chunk back into an open one so it can be truncated. */
  private reopen(c: ClosedChunk): void {
    const path = join(this.dir, c.file);
    const buf = fs.readFileSync(path);
    const layout = parseChunk(buf);
    const last = layout.entries[layout.entries.length - 1];
    const size = last === undefined ? CHUNK_HEADER_SIZE : last.offset + last.size;
    const file = chunkFileName(c.start);
    fs.renameSync(path, join(this.dir, file));
    this.layoutCache.delete(c.file);
    const fd = fs.openSync(join(this.dir, file), "r+");
    fs.ftruncateSync(fd, size);
    fs.writeSync(fd, Buffer.alloc(CHUNK_HEADER_SIZE), 0, CHUNK_HEADER_SIZE, 0);
    this.open = {
      start: c.start,
      fd,
      file,
      offsets: layout.entries.map((e) => e.offset),
      sizes: layout.entries.map((e) => e.size),
      size,
      written: size,
    };
  }

  private writePending(): void {
    const open = this.open;
    if (this.pending.length === 0 || open === undefined) return;
    const bufs = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    const data = bufs.length === 1 ? bufs[0] : Buffer.concat(bufs);
    let done = 0;
    while (done < data.length) {
      done += fs.writeSync(open.fd, data, done, data.length - done, open.written + done);
    }
    open.written += data.length;
    this.written = open.start + open.offsets.length - 1;
  }

  private readPending(open: OpenChunk, offset: number, size: number): Buffer {
    let at = open.written;
    for (const b of this.pending) {
      if (offset < at + b.length) return Buffer.from(b.subarray(offset - at, offset - at + size));
      at += b.length;
    }
    throw new LedgerError(
      "LedgerReadFailed",
      `entry at offset ${offset} of ${open.file} is missing`,
    );
  }

  private syncUntil(target: number): Promise<void> {
    const run = async (): Promise<void> => {
      if (this.syncing !== undefined) await this.syncing;
      if (this.durable >= target) return;
      const open = this.open;
      const upTo = this.written;
      if (open !== undefined) {
        const onFsync = this.options.onFsync;
        const started = onFsync === undefined ? 0 : performance.now();
        const p = new Promise<void>((resolve, reject) => {
          fs.fdatasync(open.fd, (err) => {
            if (err) {
              reject(err);
              return;
            }
            resolve();
            onFsync?.((performance.now() - started) / 1000);
          });
        });
        this.syncing = p;
        try {
          await p;
        } finally {
          this.syncing = undefined;
          for (const fd of this.fdsToClose.splice(0)) fs.closeSync(fd);
        }
      }
      this.durable = Math.max(this.durable, Math.min(upTo, this.last));
    };
    return run();
  }

  private fdatasyncSync(fd: number): void {
    const onFsync = this.options.onFsync;
    if (onFsync === undefined) {
      fs.fdatasyncSync(fd);
      return;
    }
    const started = performance.now();
    fs.fdatasyncSync(fd);
    onFsync((performance.now() - started) / 1000);
  }

  private retireFd(fd: number): void {
    if (this.syncing === undefined) fs.closeSync(fd);
    else this.fdsToClose.push(fd);
  }

  private syncDir(): void {
    const fd = fs.openSync(this.dir, "r");
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  private indexExisting(): void {
    const names = fs
      .readdirSync(this.dir)
      .map((f) => ({ f, n: parseChunkName(f) }))
      .filter((x) => x.n !== undefined && !x.n.ignored && !x.n.recovery)
      .sort((a, b) => (a.n?.start ?? 0) - (b.n?.start ?? 0));
    for (const { f, n } of names) {
      if (n === undefined) continue;
      // A ledger may begin after seqno 1 (a node that started from a snapshot holds no earlier
      // entry): the first chunk sets where it starts.
      if (this.last === 0 && this.closed.length === 0 && this.open === undefined && n.start > 1) {
        this.last = n.start - 1;
        this.committed = n.start - 1;
      }
      if (n.start !== this.last + 1) {
        throw new LedgerError(
          "LedgerGap",
          `chunk ${f} starts at ${n.start}, expected ${this.last + 1}`,
        );
      }
      if (n.end !== undefined) {
        this.closed.push({ start: n.start, end: n.end, committed: n.committed, file: f });
        this.last = n.end;
        if (n.committed) this.committed = n.end;
        continue;
      }
      const buf = fs.readFileSync(join(this.dir, f));
      const layout = parseChunk(buf);
      if (layout.tornTail !== undefined) {
        throw new LedgerError(
          "LedgerTornEntry",
          `${f} ends in a torn entry at byte ${layout.tornTail.offset}`,
        );
      }
      const fd = fs.openSync(join(this.dir, f), "r+");
      this.open = {
        start: n.start,
        fd,
        file: f,
        offsets: layout.entries.map((e) => e.offset),
        sizes: layout.entries.map((e) => e.size),
        size: buf.length,
        written: buf.length,
      };
      this.last = n.start + layout.entries.length - 1;
    }
    this.written = this.last;
    this.durable = this.last;
  }
}
