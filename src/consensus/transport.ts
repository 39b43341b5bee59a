// The node-to-node transport: moves opaque messages between nodes named by node id. Consensus
// encodes and decodes them; the transport only promises authenticated senders, per-pair order on
// a live connection, and bounded memory. Loss is allowed (Raft retransmits), blocking is not.

import { CcfError } from "../errors.js";
import type { NodeId } from "./types.js";

/** Per-peer state of the outbound path. */
export interface PeerStats {
  /** Messages waiting to be written to this peer. */
  queuedMessages: number;
  /** Bytes of payload waiting to be written to this peer. */
  queuedBytes: number;
  /** Whether an authenticated connection to this peer is open. */
  connected: boolean;
}

export interface TransportStats {
  /** Messages handed to the wire (written to a socket, or taken by the in-memory hub). */
  sent: number;
  /** Messages delivered to the `onMessage` handler. */
  received: number;
  /**
   * Messages discarded by this node: to an unknown peer, oldest in a full queue, larger than the
   * frame limit, queued for a peer that was removed, or received with no handler set.
   */
  dropped: number;
  /** Connections refused: certificate not endorsed by the service, or node id not a peer. */
  refusedConnections: number;
  /** Connections closed because the peer sent a malformed or oversize frame. */
  malformedFrames: number;
  /** Open authenticated connections, both directions. */
  connections: number;
  /** Configured peers by node id. */
  peers: Record<NodeId, PeerStats>;
}

/** Limits of the outbound path; every queue is bounded. */
export interface TransportBounds {
  /** Largest payload accepted (sent or received). Default `DEFAULT_MAX_FRAME_BYTES`. */
  maxFrameBytes?: number;
  /** Messages queued per peer before the oldest is dropped. Default 4096. */
  maxQueuedMessages?: number;
  /** Payload bytes queued per peer before the oldest is dropped. Default 2 × maxFrameBytes. */
  maxQueuedBytes?: number;
}

/**
 * CCF's `node_to_node_message_limit` default (2^24.5, RFC 8446 §5.5). In CCF it counts messages
 * before a channel re-keys; here it bounds one frame's payload in bytes, a limit no Raft message
 * of a sane batch size reaches.
 */
export const DEFAULT_MAX_FRAME_BYTES = 23_726_566;
export const DEFAULT_MAX_QUEUED_MESSAGES = 4096;

export interface Transport {
  /** Addresses of peers by node id (their published node_to_node addresses); replaces the set. */
  setPeers(peers: ReadonlyMap<NodeId, string>): void;
  /**
   * Queues `payload` for `to`. Never blocks and never throws: a message to an unknown peer, or one
   * over the frame limit, is dropped and counted. The caller must not mutate `payload` afterwards.
   */
  send(to: NodeId, payload: Uint8Array): void;
  /** Sets the handler called for every well-formed message from an authenticated, configured peer. */
  onMessage(handler: (from: NodeId, payload: Uint8Array) => void): void;
  stats(): TransportStats;
  /** Closes every connection and drops every queue; `send` is a counted drop afterwards. */
  close(): Promise<void>;
}

/** The transport's configuration is unusable (a bound below another, an unparsable address). */
export class TransportConfigError extends CcfError {
  constructor(message: string) {
    super("TransportConfigInvalid", message, 500);
  }
}

/** Resolved bounds, checked against each other. */
export function resolveBounds(bounds: TransportBounds = {}): Required<TransportBounds> {
  const maxFrameBytes = bounds.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  const maxQueuedMessages = bounds.maxQueuedMessages ?? DEFAULT_MAX_QUEUED_MESSAGES;
  const maxQueuedBytes = bounds.maxQueuedBytes ?? 2 * maxFrameBytes;
  for (const [name, v] of Object.entries({ maxFrameBytes, maxQueuedMessages, maxQueuedBytes })) {
    if (!Number.isSafeInteger(v) || v < 1) {
      throw new TransportConfigError(`${name} must be a positive integer, got ${v}`);
    }
  }
  if (maxFrameBytes > 0xffff_ffff) {
    throw new TransportConfigError(`maxFrameBytes ${maxFrameBytes} does not fit a u32 length`);
  }
  // Otherwise a message the frame limit allows could never be queued.
  if (maxQueuedBytes < maxFrameBytes) {
    throw new TransportConfigError(
      `maxQueuedBytes (${maxQueuedBytes}) must be at least maxFrameBytes (${maxFrameBytes})`,
    );
  }
  return { maxFrameBytes, maxQueuedMessages, maxQueuedBytes };
}

/**
 * A bounded FIFO of payloads for one peer: when a new message would exceed either bound, the
 * oldest are dropped (Raft tolerates loss; stale heartbeats are the least useful to keep).
 */
export class SendQueue {
  #items: Uint8Array[] = [];
  #head = 0;
  #bytes = 0;

  constructor(
    private readonly maxMessages: number,
    private readonly maxBytes: number,
  ) {}

  get length(): number {
    return this.#items.length - this.#head;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Appends; returns how many older messages were dropped to make room. */
  push(payload: Uint8Array): number {
    let dropped = 0;
    while (
      this.length > 0 &&
      (this.length + 1 > this.maxMessages || this.#bytes + payload.length > this.maxBytes)
    ) {
      this.shift();
      dropped++;
    }
    this.#items.push(payload);
    this.#bytes += payload.length;
    return dropped;
  }

  peek(): Uint8Array | undefined {
    return this.#items[this.#head];
  }

  shift(): Uint8Array | undefined {
    if (this.length === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = EMPTY;
    this.#head++;
    this.#bytes -= item.length;
    // Compact once the consumed prefix dominates, so shifting stays amortised O(1).
    if (this.#head > 64 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Empties the queue; returns how many messages it held. */
  clear(): number {
    const n = this.length;
    this.#items = [];
    this.#head = 0;
    this.#bytes = 0;
    return n;
  }
}

const EMPTY = new Uint8Array(0);
