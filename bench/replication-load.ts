// The shared half of the replication benchmark: a measurement window over committed writes, the
// figures drawn from it, and the children and folders to clean up whatever happens.

import { type ChildProcess, spawnSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
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
  /**
   * CPU time per write committed in the window, in µs: of the servers' processes (and their
   * children: frontends) and of this process (the load generator). Absent where /proc is not.
   */
  cpu?: { servers: number; loadGenerator: number };
}

/** Clock ticks per second of /proc's CPU times. */
let clockTicks: number | undefined;

/**
 * CPU time (µs) of `pids` and (unless `descendants` is false) all their descendants, from /proc;
 * undefined without it.
 */
export function processTreeCpu(pids: number[], descendants = true): number | undefined {
  try {
    clockTicks ??= Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout) || 100;
    const stats = new Map<number, { ppid: number; ticks: number }>();
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${name}/stat`, "utf8");
      } catch {
        continue; // gone meanwhile
      }
      // Fields after the command (which may hold spaces): state ppid ... utime(14) stime(15).
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      stats.set(Number(name), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
    }
    const tree = new Set(pids);
    for (let grew = descendants; grew; ) {
      grew = false;
      for (const [pid, s] of stats) {
        if (!tree.has(pid) && tree.has(s.ppid)) {
          tree.add(pid);
          grew = true;
        }
      }
    }
    let ticks = 0;
    for (const pid of tree) ticks += stats.get(pid)?.ticks ?? 0;
    return (ticks * 1e6) / clockTicks;
  } catch {
    return undefined;
  }
}

/** CPU used over the measured window by the servers (`pids()`, with descendants) and this process. */
class WindowCpu {
  private start: { servers: number | undefined; self: NodeJS.CpuUsage } | undefined;
  private used: { servers: number | undefined; self: number } | undefined;

  constructor(pids: () => number[], startAt: number, endAt: number) {
    const now = performance.now();
    setTimeout(() => {
      this.start = { servers: processTreeCpu(pids()), self: process.cpuUsage() };
    }, startAt - now).unref();
    setTimeout(() => {
      if (this.start === undefined) return;
      const servers = processTreeCpu(pids());
      const self = process.cpuUsage(this.start.self);
      this.used = {
        servers:
          servers === undefined || this.start.servers === undefined
            ? undefined
            : servers - this.start.servers,
        self: self.user + self.system,
      };
    }, endAt - now).unref();
  }

  perWrite(writes: number): LoadResult["cpu"] {
    if (this.used?.servers === undefined || writes === 0) return undefined;
    return { servers: this.used.servers / writes, loadGenerator: this.used.self / writes };
  }
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
  private readonly cpu: WindowCpu | undefined;

  /** `servers`: the pids whose CPU per committed write is measured over the window. */
  constructor(now: number, servers?: () => number[]) {
    this.start = now + WARMUP_MS;
    this.end = this.start + DURATION_MS;
    if (servers !== undefined) this.cpu = new WindowCpu(servers, this.start, this.end);
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
    const cpu = this.cpu?.perWrite(this.committedInWindow);
    return {
      rate: Math.round(this.committedInWindow / (DURATION_MS / 1000)),
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      failed: this.failed,
      uncommitted: this.accepted - this.acceptedCommitted,
      ...(cpu === undefined ? {} : { cpu }),
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

  /** The pids of the children still running. */
  pids(): number[] {
    const out: number[] = [];
    for (const c of this.children) {
      if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) out.push(c.pid);
    }
    return out;
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
