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
 * Lines are written asynchronously (on libuv's thread pool, several lines per write when busy):
 * a synchronous write(2) per request cost 4-7% of a busy node. They still leave within an event
 * loop turn, and the process drains them before it exits.
 *
 * The destination keeps the lines waiting for a write as buffers (sonic-boom's buffer mode), not
 * as one growing string: in string mode it measures the UTF-8 length of the waiting string at
 * every line, which flattens it, so each line copied everything queued before it (~5 KB per line
 * under load, the primary's largest allocation; 4-6 µs a line against 2-4 µs in buffer mode).
 */
export function createLogger(level: LogLevel = "info", destination = 1): Logger {
  const boom = pino.destination({
    dest: destination,
    sync: false,
    minLength: 0,
    contentMode: "buffer",
  });
  const stream = {
    // sonic-boom's types know only its string mode; in buffer mode it takes buffers.
    write: (line: string) => boom.write(Buffer.from(line, "utf8") as unknown as string),
    flush: (cb?: (err?: Error) => void) => boom.flush(cb),
    flushSync: () => boom.flushSync(),
  };
  return pino({ level: PINO_LEVEL[level], base: { pid: process.pid } }, stream);
}
