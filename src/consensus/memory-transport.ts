// An in-process transport for tests and simulation: transports attached to one hub reach each other
// by address, with no timers and no sockets. Delivery happens on `hub.flush()` (or, if asked, on a
// microtask after a send) in a fixed order, so a seeded run replays exactly.

import {
  resolveBounds,
  SendQueue,
  type Transport,
  type TransportBounds,
  TransportConfigError,
  type TransportStats,
} from "./transport.js";
import type { NodeId } from "./types.js";

export interface MemoryHubOptions {
  /**
   * "manual" (default): nothing moves until `flush()`. "microtask": a send schedules a flush on a
   * microtask, for code that expects delivery without a driver.
   */
  delivery?: "manual" | "microtask";
}

/** Connects `MemoryTransport`s; the stand-in for the network. */
export class MemoryHub {
  readonly #byAddress = new Map<string, MemoryTransport>();
  /** Attach order, which is also the delivery order: deterministic by construction. */
  readonly #transports: MemoryTransport[] = [];
  readonly #delivery: "manual" | "microtask";
  #scheduled = false;

  constructor(options: MemoryHubOptions = {}) {
    this.#delivery = options.delivery ?? "manual";
  }

  /** A transport for `nodeId`, reachable at `address` (default: the node id itself). */
  attach(nodeId: NodeId, address: string = nodeId, bounds?: TransportBounds): MemoryTransport {
    if (this.#byAddress.has(address)) {
      throw new TransportConfigError(`address ${address} is already in use on this hub`);
    }
    const t = new MemoryTransport(this, nodeId, address, resolveBounds(bounds));
    this.#byAddress.set(address, t);
    this.#transports.push(t);
    return t;
  }

  /**
   * Delivers every message queued at the time of the call between pairs that can reach each
   * other (the receiver is attached at that address, has that node id, and lists the sender as a
   * peer). Messages sent by handlers during the flush wait for the next one. Returns the number
   * delivered. A handler that throws propagates: in simulation that is a bug to see, not hide.
   */
  flush(): number {
    let delivered = 0;
    for (const sender of [...this.#transports]) delivered += sender.deliverQueued();
    return delivered;
  }

  /** Messages waiting in any queue (deliverable or not). */
  get pending(): number {
    let n = 0;
    for (const t of this.#transports) n += t.queuedTotal();
    return n;
  }

  /** @internal */
  lookup(address: string): MemoryTransport | undefined {
    return this.#byAddress.get(address);
  }

  /** @internal */
  detach(t: MemoryTransport): void {
    if (this.#byAddress.get(t.address) === t) this.#byAddress.delete(t.address);
    const i = this.#transports.indexOf(t);
    if (i >= 0) this.#transports.splice(i, 1);
  }

  /** @internal */
  sent(): void {
    if (this.#delivery !== "microtask" || this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.flush();
    });
  }
}

export class MemoryTransport implements Transport {
  #peers = new Map<NodeId, { address: string; queue: SendQueue }>();
  #handler: ((from: NodeId, payload: Uint8Array) => void) | undefined;
  #closed = false;
  #sent = 0;
  #received = 0;
  #dropped = 0;

  /** @internal Made by `MemoryHub.attach`. */
  constructor(
    private readonly hub: MemoryHub,
    readonly nodeId: NodeId,
    readonly address: string,
    private readonly bounds: Required<TransportBounds>,
  ) {}

  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    if (this.#closed) return;
    const next = new Map<NodeId, { address: string; queue: SendQueue }>();
    for (const [id, address] of peers) {
      const current = this.#peers.get(id);
      // A peer that moved keeps its queue: the messages are still for that node.
      next.set(id, {
        address,
        queue:
          current?.queue ??
          new SendQueue(this.bounds.maxQueuedMessages, this.bounds.maxQueuedBytes),
      });
    }
    for (const [id, p] of this.#peers) if (!next.has(id)) this.#dropped += p.queue.clear();
    this.#peers = next;
  }

  send(to: NodeId, payload: Uint8Array): void {
    const peer = this.#peers.get(to);
    if (this.#closed || peer === undefined || payload.length > this.bounds.maxFrameBytes) {
      this.#dropped++;
      return;
    }
    // Copied, as bytes on a wire would be: neither side can alias the other's buffer.
    this.#dropped += peer.queue.push(Uint8Array.from(payload));
    this.hub.sent();
  }

  onMessage(handler: (from: NodeId, payload: Uint8Array) => void): void {
    this.#handler = handler;
  }

  stats(): TransportStats {
    const peers: TransportStats["peers"] = {};
    let connections = 0;
    for (const [id, p] of this.#peers) {
      const connected = this.#reachable(id, p.address) !== undefined;
      if (connected) connections++;
      peers[id] = { queuedMessages: p.queue.length, queuedBytes: p.queue.bytes, connected };
    }
    return {
      sent: this.#sent,
      received: this.#received,
      dropped: this.#dropped,
      refusedConnections: 0,
      malformedFrames: 0,
      connections,
      peers,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#peers.values()) this.#dropped += p.queue.clear();
    this.#handler = undefined;
    this.hub.detach(this);
    await Promise.resolve();
  }

  /** @internal Moves what is queued now to reachable receivers; returns how many arrived. */
  deliverQueued(): number {
    let delivered = 0;
    for (const [to, p] of [...this.#peers]) {
      const receiver = this.#reachable(to, p.address);
      if (receiver === undefined) continue;
      for (let n = p.queue.length; n > 0; n--) {
        const payload = p.queue.shift();
        if (payload === undefined) break;
        this.#sent++;
        if (receiver.receive(this.nodeId, payload)) delivered++;
      }
    }
    return delivered;
  }

  /** @internal */
  queuedTotal(): number {
    let n = 0;
    for (const p of this.#peers.values()) n += p.queue.length;
    return n;
  }

  /** @internal */
  receive(from: NodeId, payload: Uint8Array): boolean {
    // Checked again per message: a handler earlier in this flush may have changed the peer set.
    if (this.#closed || !this.#peers.has(from)) return false;
    if (this.#handler === undefined) {
      this.#dropped++;
      return false;
    }
    this.#received++;
    this.#handler(from, payload);
    return true;
  }

  /**
   * The receiver at `address` if the pair can talk, as the TLS transport's handshake decides: it is
   * the node we meant (same id), and it lists us as a peer.
   */
  #reachable(to: NodeId, address: string): MemoryTransport | undefined {
    if (this.#closed) return undefined;
    const receiver = this.hub.lookup(address);
    if (receiver === undefined || receiver.nodeId !== to || !receiver.#peers.has(this.nodeId)) {
      return undefined;
    }
    return receiver;
  }
}
