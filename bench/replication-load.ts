// The shared half of the replication benchmark: a measurement window over committed writes, the
// figures drawn from it, and the children and folders to clean up whatever happens.

import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { createServer } from "node:net";

export const CONNECTIONS = 64;
export const VALUE_BYTES = 100;
/**
 * A node needs ~4 s under load before V8 has optimised its request path (writes per second of a
 * fresh node, measured: 174, 729, 1189, 1937, then ~2100-2600): windows start after 5 s, so both
 * sides are measured in their steady state.
 */
export const WARMUP_MS = Number(process.env.BENCH_WARMUP_SECONDS ?? 5) * 1000;
export const DURATION_MS = Number(process.env.BENCH_SECONDS ?? 10) * 1000;
/** How long writes sent in the window may take to commit after it ends before they are lost. */
export const DRAIN_MS = 30_000;

export interface LoadResult {
  /** Writes whose commit was observed inside the window, per second of window. */
  rate: number;
  /** Send-to-commit-observed latencies (ms) of the writes sent inside the window. */
  p50: number;
  p99: number;
  /** Writes refused (non-2xx, or the connection failed). */
  failed: number;
  /** Writes sent in the window and accepted, but not seen committed by the end of the drain. */
  uncommitted: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/**
 * The window starts after the warm-up: a commit counts towards the rate when it is observed inside
 * the window, and a write's latency is kept when it was sent inside the window.
 */
export class CommitWindow {
  readonly start: number;
  readonly end: number;
  private committedInWindow = 0;
  private readonly latencies: number[] = [];
  private accepted = 0;
  private acceptedCommitted = 0;
  failed = 0;

  constructor(now: number) {
    this.start = now + WARMUP_MS;
    this.end = this.start + DURATION_MS;
  }

  /** Whether a write sent at `t` belongs to the measured window. */
  measured(t: number): boolean {
    return t >= this.start && t < this.end;
  }

  /** A write sent at `sentAt` was accepted by the service (not yet necessarily committed). */
  accept(sentAt: number): void {
    if (this.measured(sentAt)) this.accepted++;
  }

  commit(sentAt: number, committedAt: number): void {
    if (committedAt >= this.start && committedAt < this.end) this.committedInWindow++;
    if (this.measured(sentAt)) {
      this.acceptedCommitted++;
      this.latencies.push(committedAt - sentAt);
    }
  }

  result(): LoadResult {
    const sorted = [...this.latencies].sort((a, b) => a - b);
    return {
      rate: Math.round(this.committedInWindow / (DURATION_MS / 1000)),
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      failed: this.failed,
      uncommitted: this.accepted - this.acceptedCommitted,
    };
  }
}

/** A 100-byte value, distinct per write so that no layer can deduplicate it. */
export function valueFor(i: number): string {
  return `v${i}-`.padEnd(VALUE_BYTES, "x");
}

/** A port the system has just handed out on 127.0.0.1 (never one of the sandbox's 8000-8002). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const address = server.address();
        const p = typeof address === "object" && address !== null ? address.port : 0;
        server.close(() => resolve(p));
      });
    });
    if (port < 8000 || port > 8002) return port;
  }
}

/** Children and temp folders of the current run, released on stop, failure or Ctrl+C. */
export class Resources {
  private readonly children = new Set<ChildProcess>();
  private readonly dirs = new Set<string>();

  child<T extends ChildProcess>(c: T): T {
    this.children.add(c);
    return c;
  }

  dir(d: string): string {
    this.dirs.add(d);
    return d;
  }

  /** Sends SIGTERM, then SIGKILL to whatever is still running after `graceMs`. */
  async release(graceMs = 3000): Promise<void> {
    const running = [...this.children].filter((c) => c.exitCode === null && c.signalCode === null);
    for (const c of running) c.kill("SIGTERM");
    await Promise.all(
      running.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const timer = setTimeout(() => {
              c.kill("SIGKILL");
              resolve();
            }, graceMs);
            c.once("exit", () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
    this.children.clear();
    this.releaseDirs();
  }

  /** Synchronous last resort (process exit): kills children and removes folders at once. */
  releaseNow(): void {
    for (const c of this.children) if (c.exitCode === null) c.kill("SIGKILL");
    this.children.clear();
    this.releaseDirs();
  }

  private releaseDirs(): void {
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
    this.dirs.clear();
  }
}
