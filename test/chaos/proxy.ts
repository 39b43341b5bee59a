// A TCP proxy in front of each node's node-to-node port, through which the fault harness cuts or
// slows links between chosen pairs of nodes.
//
// Each node publishes its proxy's address as its node-to-node address, so every connection to a
// node goes through that node's proxy. The transport's connections carry messages one way (dialer
// to listener), so a link "from A to B" is exactly the connections A dials to B's proxy. The proxy
// learns which node dialed from the kernel: the accepted socket's peer port is a socket owned by
// one node process (/proc/net/tcp gives its inode, /proc/<pid>/fd which process holds it).
// Linux only, like the rest of the harness.

import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import * as net from "node:net";

export interface LinkRules {
  /** True when messages from `from` to `to` must not pass (the connection is cut). */
  blocked(from: string, to: string): boolean;
  /** Extra one-way delay on messages from `from` to `to`, in ms (0: none). */
  delayMs(from: string, to: string): number;
}

interface Piped {
  from: string;
  client: net.Socket;
  upstream: net.Socket;
}

/** The pid of the process holding the local TCP socket bound to 127.0.0.1:`port`, if any. */
export function pidOfLocalPort(port: number, pids: number[]): number | undefined {
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const local = cols[1];
      const localPort = Number.parseInt(local.slice(local.lastIndexOf(":") + 1), 16);
      if (localPort === port) inodes.add(cols[9]);
    }
  }
  if (inodes.size === 0) return undefined;
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m !== null && inodes.has(m[1])) return pid;
    }
  }
  return undefined;
}

/** The proxy in front of one node (`name`): forwards to its real node-to-node port. */
export class LinkProxy {
  private server: net.Server;
  private readonly piped = new Set<Piped>();
  private target: number | undefined;
  /** Connections whose dialer could not be identified (they are refused). */
  unidentified = 0;
  /** Connections cut or refused by a rule. */
  cut = 0;

  constructor(
    readonly name: string,
    private readonly rules: LinkRules,
    /** The node names and pids that may dial (read at each connection). */
    private readonly dialers: () => Array<{ name: string; pid: number }>,
  ) {
    this.server = net.createServer((c) => this.accept(c));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", () => resolve());
    });
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Where the node really listens (known once it has started). */
  setTarget(port: number): void {
    this.target = port;
  }

  /** Cuts every open connection a rule now blocks (called when the rules change). */
  enforce(): void {
    for (const p of this.piped) {
      if (this.rules.blocked(p.from, this.name)) {
        this.cut++;
        p.client.destroy();
        p.upstream.destroy();
        this.piped.delete(p);
      }
    }
  }

  async close(): Promise<void> {
    for (const p of this.piped) {
      p.client.destroy();
      p.upstream.destroy();
    }
    this.piped.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    client.on("error", () => undefined);
    const dialers = this.dialers();
    const pid = pidOfLocalPort(
      client.remotePort ?? -1,
      dialers.map((d) => d.pid),
    );
    const from = dialers.find((d) => d.pid === pid)?.name;
    if (from === undefined) {
      this.unidentified++;
      client.destroy();
      return;
    }
    if (this.target === undefined || this.rules.blocked(from, this.name)) {
      this.cut++;
      client.destroy();
      return;
    }
    const upstream = net.connect(this.target, "127.0.0.1");
    upstream.on("error", () => undefined);
    const p: Piped = { from, client, upstream };
    this.piped.add(p);
    const end = () => {
      this.piped.delete(p);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end);
    upstream.on("close", end);
    // Messages flow dialer -> listener (delayed by the rules); the listener's one admission byte
    // and TLS records flow back undelayed.
    this.forward(client, upstream, () => this.rules.delayMs(from, this.name));
    upstream.pipe(client);
  }

  /** Copies `src` to `dst` in order, each chunk held back by the delay in force when it came. */
  private forward(src: net.Socket, dst: net.Socket, delay: () => number): void {
    // Chunks wait in arrival order; one timer releases those that are due. A chunk never passes
    // one that came before it (a reordered TLS stream would be a fault we did not mean to inject).
    const waiting: Array<{ at: number; chunk: Buffer }> = [];
    let timer: NodeJS.Timeout | undefined;
    let ended = false;
    const release = () => {
      timer = undefined;
      const now = Date.now();
      while (waiting.length > 0 && waiting[0].at <= now) {
        const { chunk } = waiting.shift() as { chunk: Buffer };
        if (!dst.destroyed) dst.write(chunk);
      }
      if (waiting.length > 0) timer = setTimeout(release, waiting[0].at - now);
      else if (ended) dst.end();
    };
    src.on("data", (chunk: Buffer) => {
      const ms = delay();
      if (ms <= 0 && waiting.length === 0) {
        dst.write(chunk);
        return;
      }
      const last = waiting.length > 0 ? waiting[waiting.length - 1].at : 0;
      waiting.push({ at: Math.max(last, Date.now() + ms), chunk });
      if (timer === undefined) timer = setTimeout(release, Math.max(0, waiting[0].at - Date.now()));
    });
    src.on("end", () => {
      ended = true;
      if (waiting.length === 0) dst.end();
    });
    src.on("close", () => clearTimeout(timer));
  }
}
