// The node's log: pino JSON lines on stdout, at CCF's log levels (trace, debug, info, fail, fatal).

import { pino, type Logger } from "pino";

export const LOG_LEVELS = ["trace", "debug", "info", "fail", "fatal"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const PINO_LEVEL: Record<LogLevel, string> = {
  trace: "trace",
  debug: "debug",
  info: "info",
  fail: "error",
  fatal: "fatal",
};

/**
 * Lines are written asynchronously (on libuv's thread pool): a synchronous write(2) per request
 * cost 4-7% of a busy node. They are gathered for up to `LINE_BATCH_MS` (or `LINE_BATCH_CHARS`)
 * and handed to the destination as one buffer (`LineBatch`): handed over one by one, or once per
 * event loop turn (a busy node's turns are short), most lines started a write of their own, and
 * each write costs a thread pool round trip and a system call. Measured with the per-request
 * "JS execution complete" line under `bench app`: switching it off saved the node 6-12 µs of CPU
 * per request; gathered, the node spends 3-7 µs less per write than with a write per line
 * (turn-end batches gained nothing). The pending batch's timer keeps the process alive, so lines
 * still leave before a process that returns exits; a crash loses up to the last 10 ms of them.
 *
 * The destination keeps the batches waiting for a write as buffers (sonic-boom's buffer mode), not
 * as one growing string: in string mode it measures the UTF-8 length of the waiting string at
 * every write, which flattens it, so each write copied everything queued before it.
 */
export function createLogger(level: LogLevel = "info", destination = 1): Logger {
  const boom = pino.destination({
    dest: destination,
    sync: false,
    minLength: 0,
    contentMode: "buffer",
  });
  // sonic-boom's types know only its string mode; in buffer mode it takes buffers.
  const batch = new LineBatch((chunk) => boom.write(chunk as unknown as string));
  const stream = {
    write: (line: string) => batch.add(line),
    flush: (cb?: (err?: Error) => void) => {
      batch.drain();
      boom.flush(cb);
    },
    flushSync: () => {
      batch.drain();
      boom.flushSync();
    },
  };
  return pino({ level: PINO_LEVEL[level], base: { pid: process.pid } }, stream);
}

/** How long a line may wait for others before its batch is handed over. */
export const LINE_BATCH_MS = 10;
/** Past this many characters waiting, a batch is handed over at once. */
export const LINE_BATCH_CHARS = 64 * 1024;

/**
 * Gathers lines and hands them to `out` as one buffer, in order: `LINE_BATCH_MS` after the first
 * line of a batch, at once when `LINE_BATCH_CHARS` wait, or on `drain()`.
 */
export class LineBatch {
  #pending: string[] = [];
  #chars = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly out: (chunk: Buffer) => void) {}

  add(line: string): void {
    this.#pending.push(line);
    this.#chars += line.length;
    if (this.#chars >= LINE_BATCH_CHARS) this.drain();
    else this.#timer ??= setTimeout(this.#due, LINE_BATCH_MS);
  }

  /** Hands over what waits, now. */
  drain(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#pending.length === 0) return;
    const text = this.#pending.length === 1 ? (this.#pending[0] ?? "") : this.#pending.join("");
    this.#pending = [];
    this.#chars = 0;
    this.out(Buffer.from(text, "utf8"));
  }

  readonly #due = (): void => {
    this.#timer = undefined;
    this.drain();
  };
}
