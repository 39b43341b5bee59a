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
 */
export function createLogger(level: LogLevel = "info", destination = 1): Logger {
  return pino(
    { level: PINO_LEVEL[level], base: { pid: process.pid } },
    pino.destination({ dest: destination, sync: false, minLength: 0 }),
  );
}
