// Network namespaces for end-to-end tests: each node runs in a namespace of its own, plugged into a
// bridge that lives in a fourth "switch" namespace, so a test can pull a node's cable without
// touching the root namespace's configuration. The test process reaches the nodes through one
// veth from the root namespace into the switch, addressed inside the test's private /24.
// Everything is created with `ip` (iproute2) and needs root.

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ccfTsArgs, waitFor } from "./process.js";

/** Runs `ip args`, throwing with its stderr when it fails. */
function ip(...args: string[]): string {
  const r = spawnSync("ip", args, { encoding: "utf8", timeout: 10_000 });
  if (r.status !== 0) {
    throw new Error(`ip ${args.join(" ")}: ${r.error?.message ?? r.stderr.trim()}`);
  }
  return r.stdout;
}

/** Why namespaces cannot be used here, or undefined when they can (probed by creating one). */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "network namespaces need root";
  const version = spawnSync("ip", ["-V"], { encoding: "utf8" });
  if (version.status !== 0) return "iproute2's `ip` is not installed";
  const probe = `ccfts-${process.pid}-probe`;
  try {
    ip("netns", "add", probe);
  } catch (e) {
    return `ip netns add fails: ${(e as Error).message}`;
  }
  ip("netns", "del", probe);
  return undefined;
}

/** A /24 as its first three bytes, e.g. "10.77.12". */
type Subnet = string;

/** The IPv4 prefixes the root namespace already routes or holds (besides the default route). */
function rootPrefixes(): Array<{ base: number; bits: number }> {
  const out: Array<{ base: number; bits: number }> = [];
  const text = `${ip("-4", "route", "show", "table", "all")}\n${ip("-4", "-o", "addr")}`;
  for (const m of text.matchAll(/(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?/g)) {
    const bits = m[2] === undefined ? 32 : Number(m[2]);
    if (bits === 0) continue;
    out.push({ base: toInt(m[1]), bits });
  }
  return out;
}

function toInt(address: string): number {
  return address.split(".").reduce((n, b) => n * 256 + Number(b), 0);
}

function overlaps(a: { base: number; bits: number }, b: { base: number; bits: number }): boolean {
  const bits = Math.min(a.bits, b.bits);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return (a.base & mask) >>> 0 === (b.base & mask) >>> 0;
}

/** A private 10.x.y.0/24 derived from the pid, moved along until nothing in root overlaps it. */
function chooseSubnet(): Subnet {
  const used = rootPrefixes();
  const pid = process.pid;
  for (let i = 0; i < 256; i++) {
    const x = 64 + ((pid >> 8) % 128);
    const y = (pid + i) & 0xff;
    const candidate = { base: toInt(`10.${x}.${y}.0`), bits: 24 };
    if (!used.some((u) => overlaps(u, candidate))) return `10.${x}.${y}`;
  }
  throw new Error("no free 10.x.y.0/24 for the test network");
}

export interface NodeNamespace {
  /** The namespace's name (for `ip netns exec`). */
  name: string;
  /** Its address on the test network. */
  address: string;
}

export interface TestNetwork {
  nodes: NodeNamespace[];
  /** Pulls the cable of `ns` at the switch: its packets go nowhere, nothing reaches it. */
  cutLink(ns: NodeNamespace): void;
  /** Plugs it back in. */
  restoreLink(ns: NodeNamespace): void;
  /** Deletes the namespaces and links; safe to call more than once, and after a partial setup. */
  cleanup(): void;
}

/**
 * Creates `count` node namespaces (addresses .1, .2, ...), a switch namespace bridging them, and a
 * link from the root namespace into the switch (address .254) so the test process can reach them.
 */
export function createTestNetwork(count: number): TestNetwork {
  const prefix = `ccfts-${process.pid}`;
  const sw = `${prefix}-sw`;
  const rootLink = `ccfts${process.pid}`;
  const names = Array.from({ length: count }, (_, i) => `${prefix}-n${i}`);
  const created: string[] = [];
  let cleaned = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    process.removeListener("exit", cleanup);
    // Deleting a namespace deletes its veth ends, and so their peers (the root link among them).
    for (const ns of created.reverse()) spawnSync("ip", ["netns", "del", ns]);
    spawnSync("ip", ["link", "del", rootLink]);
  };
  // Also on an unexpected exit of the test process: namespaces outlive it otherwise.
  process.once("exit", cleanup);
  try {
    const subnet = chooseSubnet();
    ip("netns", "add", sw);
    created.push(sw);
    ip("-n", sw, "link", "set", "lo", "up");
    ip("-n", sw, "link", "add", "br0", "type", "bridge");
    ip("-n", sw, "link", "set", "br0", "up");
    const nodes = names.map((name, i) => {
      ip("netns", "add", name);
      created.push(name);
      ip("-n", name, "link", "set", "lo", "up");
      ip(
        "-n",
        sw,
        "link",
        "add",
        `port${i}`,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        name,
      );
      ip("-n", sw, "link", "set", `port${i}`, "master", "br0", "up");
      const address = `${subnet}.${i + 1}`;
      ip("-n", name, "addr", "add", `${address}/24`, "dev", "eth0");
      ip("-n", name, "link", "set", "eth0", "up");
      return { name, address };
    });
    ip("link", "add", rootLink, "type", "veth", "peer", "name", "uplink", "netns", sw);
    ip("-n", sw, "link", "set", "uplink", "master", "br0", "up");
    ip("addr", "add", `${subnet}.254/24`, "dev", rootLink);
    ip("link", "set", rootLink, "up");
    const port = (ns: NodeNamespace) => `port${nodes.indexOf(ns)}`;
    return {
      nodes,
      cutLink: (ns) => ip("-n", sw, "link", "set", port(ns), "down"),
      restoreLink: (ns) => ip("-n", sw, "link", "set", port(ns), "up"),
      cleanup,
    };
  } catch (e) {
    cleanup();
    throw e;
  }
}

/** A ccf-ts process whose output is collected. */
export type NodeProcess = ChildProcess & { output: () => string };

/** `ccf-ts args` as a long-running child inside namespace `ns`. */
export function startCcfTsIn(ns: NodeNamespace, args: string[], cwd: string): NodeProcess {
  // `ip netns exec` enters the namespace and execs the command: the child is the node itself.
  const child = spawn("ip", ["netns", "exec", ns.name, process.execPath, ...ccfTsArgs(...args)], {
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  return Object.assign(child, { output: () => out });
}

/**
 * `startNode` inside namespace `ns`: writes `config` to `dir/config.json`, runs `ccf-ts node` there
 * and waits for its RPC address file; returns the process and its primary interface's base URL.
 */
export async function startNodeIn(
  ns: NodeNamespace,
  dir: string,
  config: Record<string, unknown>,
): Promise<{ node: NodeProcess; base: string }> {
  const file = join(dir, "config.json");
  writeFileSync(file, JSON.stringify(config));
  const node = startCcfTsIn(ns, ["node", "--config", file], dir);
  let addresses: Record<string, string>;
  try {
    addresses = await waitFor(`the node in ${ns.name} to listen`, () => {
      if (node.exitCode !== null) throw new Error(`node exited: ${node.output()}`);
      const path = join(dir, "rpc_addresses.json");
      return existsSync(path)
        ? (JSON.parse(readFileSync(path, "utf8")) as Record<string, string>)
        : undefined;
    });
  } catch (e) {
    // Left running, it would outlive its namespace's name and keep the test process alive.
    node.kill("SIGKILL");
    throw e;
  }
  return { node, base: `https://${addresses.primary_rpc_interface}` };
}
