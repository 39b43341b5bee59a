// A TlsTransport in a worker thread of its own, behind the Transport interface. `send` only posts
// to the worker, which a thread whose event loop is held up can still do: a node's main thread
// sends consensus heartbeats from inside a long application handler this way (NodeTransport's
// heartbeat lane).

import { Worker } from "node:worker_threads";
import type { NodeIdentity, TlsTransportOptions } from "./tls-transport.js";
import type { Transport, TransportStats } from "./transport.js";
import type { NodeId } from "./types.js";

export type WorkerRequest =
  | { type: "send"; to: NodeId; payload: Uint8Array }
  | { type: "peers"; peers: Array<[NodeId, string]> }
  | { type: "identity"; identity: NodeIdentity }
  | { type: "close" };

export type WorkerReply =
  | { type: "ready"; address: string; nodeId: NodeId }
  | { type: "message"; from: NodeId; payload: Uint8Array }
  | { type: "stats"; stats: TransportStats }
  | { type: "log"; level: "warn"; obj: Record<string, unknown>; msg: string }
  | { type: "closed" };

const EMPTY_STATS: TransportStats = {
  sent: 0,
  received: 0,
  dropped: 0,
  refusedConnections: 0,
  malformedFrames: 0,
  connections: 0,
  peers: {},
};

export class WorkerTransport implements Transport {
  readonly address: string;
  readonly nodeId: NodeId;
  private handler: ((from: NodeId, payload: Uint8Array) => void) | undefined;
  private lastStats: TransportStats = EMPTY_STATS;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly worker: Worker,
    ready: { address: string; nodeId: NodeId },
    log: TlsTransportOptions["log"],
  ) {
    this.address = ready.address;
    this.nodeId = ready.nodeId;
    worker.on("message", (m: WorkerReply) => {
      if (m.type === "message") this.handler?.(m.from, m.payload);
      else if (m.type === "stats") this.lastStats = m.stats;
      else if (m.type === "log") log?.warn(m.obj, m.msg);
    });
  }

  /** Starts the worker and its listener; resolves once it listens. */
  static async start(options: TlsTransportOptions): Promise<WorkerTransport> {
    const { log, ...data } = options;
    // The worker runs this module's sibling, with the same loader flags (tsx in development).
    // Compiled, the worker runs the sibling .js file. Run from TypeScript sources (tsx, in
    // development and tests), a worker does not inherit the loader: it registers tsx itself.
    const fromSources = import.meta.url.endsWith(".ts");
    const worker = fromSources
      ? new Worker(
          `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(
            new URL("./transport-worker.ts", import.meta.url).href,
          )}); });`,
          { eval: true, workerData: data },
        )
      : new Worker(new URL("./transport-worker.js", import.meta.url), { workerData: data });
    const ready = await new Promise<{ address: string; nodeId: NodeId }>((resolve, reject) => {
      const onMessage = (m: WorkerReply) => {
        if (m.type !== "ready") return;
        worker.off("message", onMessage);
        worker.off("error", reject);
        resolve(m);
      };
      worker.on("message", onMessage);
      worker.once("error", reject);
    });
    return new WorkerTransport(worker, ready, log);
  }

  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    this.post({ type: "peers", peers: [...peers] });
  }

  send(to: NodeId, payload: Uint8Array): void {
    this.post({ type: "send", to, payload });
  }

  setIdentity(identity: NodeIdentity): void {
    this.post({ type: "identity", identity });
  }

  onMessage(handler: (from: NodeId, payload: Uint8Array) => void): void {
    this.handler = handler;
  }

  /** The worker's counters as of its last report (every 500 ms). */
  stats(): TransportStats {
    return this.lastStats;
  }

  close(): Promise<void> {
    if (this.closing === undefined) {
      this.closing = new Promise<void>((resolve) => {
        this.worker.once("exit", () => resolve());
        this.post({ type: "close" });
      });
    }
    return this.closing;
  }

  private post(m: WorkerRequest): void {
    if (this.closing !== undefined) return;
    this.worker.postMessage(m);
  }
}
