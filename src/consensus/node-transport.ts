// A node's transport: a TlsTransport on the node's own (main) thread listens and carries every
// message, and a second one in a worker thread (WorkerTransport, dialling only, on the heartbeat
// lane) carries what the node sends while an application handler holds its main thread's event
// loop: a TLS socket completes its writes on its own event loop, so a held-up thread could write
// only the first frame itself.
//
// The worker used to carry all traffic. Every message then crossed threads twice (postMessage, a
// wake-up of the other thread's loop), which cost ~30 µs of CPU per committed write across a
// 3-node service under load (~5 % of the machine; bench/RESULTS.md): now only heartbeats from a
// held-up primary do.

import { type NodeIdentity, TlsTransport, type TlsTransportOptions } from "./tls-transport.js";
import type { Transport, TransportStats } from "./transport.js";
import type { NodeId } from "./types.js";
import { WorkerTransport } from "./worker-transport.js";

export type NodeTransportOptions = Omit<TlsTransportOptions, "lane" | "listen">;

export class NodeTransport implements Transport {
  private constructor(
    private readonly main: TlsTransport,
    private readonly heldUpLane: WorkerTransport,
  ) {}

  /** Listens on `options.bindAddress` and starts the worker; resolves once both are ready. */
  static async start(options: NodeTransportOptions): Promise<NodeTransport> {
    const main = await TlsTransport.start({ ...options, lane: "main" });
    try {
      const lane = await WorkerTransport.start({ ...options, lane: "heartbeat", listen: false });
      return new NodeTransport(main, lane);
    } catch (e) {
      await main.close();
      throw e;
    }
  }

  /** The bound address, "host:port". */
  get address(): string {
    return this.main.address;
  }

  get nodeId(): NodeId {
    return this.main.nodeId;
  }

  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    this.main.setPeers(peers);
    this.heldUpLane.setPeers(peers);
  }

  send(to: NodeId, payload: Uint8Array): void {
    this.main.send(to, payload);
  }

  /**
   * `send` for a caller whose event loop is held up (inside a long application handler): the
   * worker writes it on the heartbeat lane. May overtake messages sent earlier with `send`.
   */
  sendWhileHeldUp(to: NodeId, payload: Uint8Array): void {
    this.heldUpLane.send(to, payload);
  }

  setIdentity(identity: NodeIdentity): void {
    this.main.setIdentity(identity);
    this.heldUpLane.setIdentity(identity);
  }

  onMessage(handler: (from: NodeId, payload: Uint8Array) => void): void {
    this.main.onMessage(handler);
  }

  /** The main transport's counters, with the heartbeat lane's sends, drops and connections. */
  stats(): TransportStats {
    const main = this.main.stats();
    const lane = this.heldUpLane.stats();
    return {
      ...main,
      sent: main.sent + lane.sent,
      dropped: main.dropped + lane.dropped,
      refusedConnections: main.refusedConnections + lane.refusedConnections,
      connections: main.connections + lane.connections,
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.main.close(), this.heldUpLane.close()]);
  }
}
