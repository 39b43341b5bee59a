// The node-to-node transport on mutually authenticated TLS. Each node listens on its node_to_node
// address with its node certificate and dials one persistent connection to every peer.
//
// Connection model: a connection carries messages one way only, from the dialer to the listener.
// So each pair holds two connections (A→B dialed by A, B→A dialed by B); no tie-breaking is needed
// when both dial at once, and a node's view of "can I reach B" is exactly its own outbound socket.
// Both ends present node certificates and accept only certificates issued by the service identity
// (CCF: node certificates are endorsed by the service). The peer's node id is the SHA-256 of its
// certificate's public key: the listener accepts only configured peers, the dialer accepts only the
// node it meant to reach (an address can be reused by another node).
//
// The listener admits a dialer by writing one byte, ACCEPT_BYTE, after checking its certificate;
// the dialer writes nothing before it. Under TLS 1.3 the dialer's handshake completes before the
// listener has judged the dialer's certificate, so without this a refused dialer would write into
// a connection about to be closed and lose those messages while believing them sent.
//
// Lanes: a node may dial a peer twice, each connection naming its lane in TLS ALPN: the main lane
// carries its messages, the heartbeat lane (dialled from a worker thread, see NodeTransport) only
// the heartbeats it sends while its main thread is held up. The listener keeps the newest inbound
// connection per peer and lane, and delivers both lanes' frames alike; a dialer that names no lane
// is on the main lane. Messages on different lanes may arrive out of order, which Raft tolerates
// (an empty AppendEntries truncates nothing that matches).
//
// Frame: [0xCF magic+version][u32 big-endian payload length][payload]. A bad magic or a length over
// `maxFrameBytes` closes that connection only; the peer's dialer reconnects.

import type { AddressInfo, Socket } from "node:net";
import * as tls from "node:tls";
import { nodeIdFromPublicKey } from "../crypto/index.js";
import { FormatError } from "../errors.js";
import {
  resolveBounds,
  SendQueue,
  type Transport,
  type TransportBounds,
  TransportConfigError,
  type TransportStats,
} from "./transport.js";
import type { NodeId } from "./types.js";

export const FRAME_MAGIC = 0xcf;
export const FRAME_HEADER_BYTES = 5;
/** The listener's only byte on a connection: "you are admitted, send". */
export const ACCEPT_BYTE = 0xac;

/** The ALPN protocol name of each lane (see the file comment). */
export const LANES = { main: "ccf-ts-n2n", heartbeat: "ccf-ts-n2n-heartbeat" } as const;
export type Lane = keyof typeof LANES;

/** A frame that cannot be decoded: the connection it arrived on is closed. */
export class FrameError extends FormatError {}

/** The 5-byte header for a payload of `length` bytes. */
export function encodeFrameHeader(length: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  h[0] = FRAME_MAGIC;
  h.writeUInt32BE(length, 1);
  return h;
}

/** Header and payload as one buffer (for tests and for callers that want a single write). */
export function encodeFrame(payload: Uint8Array): Buffer {
  return Buffer.concat([encodeFrameHeader(payload.length), payload]);
}

/**
 * Reassembles frames from a byte stream split at arbitrary points. A frame's body is copied once
 * into a buffer of its declared size (no re-concatenation of a growing buffer), and the declared
 * size is checked before anything is allocated. After an error the decoder stays failed.
 */
export class FrameDecoder {
  readonly #header = Buffer.alloc(FRAME_HEADER_BYTES);
  #headerFilled = 0;
  #body: Buffer | undefined;
  #bodyFilled = 0;
  #error: FrameError | undefined;

  constructor(private readonly maxFrameBytes: number) {}

  push(chunk: Uint8Array): { frames: Uint8Array[]; error?: FrameError } {
    const frames: Uint8Array[] = [];
    if (this.#error !== undefined) return { frames, error: this.#error };
    let at = 0;
    while (at < chunk.length) {
      if (this.#body === undefined) {
        const n = Math.min(FRAME_HEADER_BYTES - this.#headerFilled, chunk.length - at);
        this.#header.set(chunk.subarray(at, at + n), this.#headerFilled);
        this.#headerFilled += n;
        at += n;
        if (this.#headerFilled < FRAME_HEADER_BYTES) break;
        const magic = this.#header[0];
        const length = this.#header.readUInt32BE(1);
        if (magic !== FRAME_MAGIC) {
          this.#error = new FrameError(
            "MalformedFrame",
            `bad frame magic 0x${magic.toString(16)} (expected 0x${FRAME_MAGIC.toString(16)})`,
          );
          return { frames, error: this.#error };
        }
        if (length > this.maxFrameBytes) {
          this.#error = new FrameError(
            "FrameTooLarge",
            `frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`,
          );
          return { frames, error: this.#error };
        }
        this.#headerFilled = 0;
        this.#body = Buffer.allocUnsafe(length);
        this.#bodyFilled = 0;
      }
      const body = this.#body;
      const n = Math.min(body.length - this.#bodyFilled, chunk.length - at);
      body.set(chunk.subarray(at, at + n), this.#bodyFilled);
      this.#bodyFilled += n;
      at += n;
      if (this.#bodyFilled === body.length) {
        frames.push(body);
        this.#body = undefined;
      }
    }
    return { frames };
  }
}

/** The certificate and key this node presents, and the service certificate peers must chain to. */
export interface NodeIdentity {
  certPem: string;
  keyPem: string;
  /** The service identity that endorses node certificates; unchanged if omitted on `setIdentity`. */
  serviceCertPem?: string;
}

/** A pino-compatible logger, reduced to what the transport uses. */
export interface TransportLog {
  warn(obj: Record<string, unknown>, msg: string): void;
  debug(obj: Record<string, unknown>, msg: string): void;
}

export interface TlsTransportOptions extends TransportBounds {
  /** "host:port" to listen on; port 0 picks a free port (see `address`). */
  bindAddress: string;
  /** Whether to listen on `bindAddress` (default true); a transport that does not only dials. */
  listen?: boolean;
  /** The lane this transport dials on (default "main"). */
  lane?: Lane;
  identity: NodeIdentity & { serviceCertPem: string };
  /** First reconnection delay (default 50 ms); doubles per failed attempt up to `maxBackoffMs`. */
  minBackoffMs?: number;
  /** Longest reconnection delay (default 2000 ms). */
  maxBackoffMs?: number;
  /** A dial not admitted by the listener by then is abandoned (default 5000 ms). */
  connectTimeoutMs?: number;
  /** Inbound TLS handshakes that take longer are dropped (default 5000 ms). */
  handshakeTimeoutMs?: number;
  /** Inbound sockets open at once, authenticated or not (default 256). */
  maxInboundConnections?: number;
  log?: TransportLog;
}

interface Peer {
  readonly id: NodeId;
  address: string;
  readonly queue: SendQueue;
  /** The current outbound connection (dialing or established). */
  conn: Outbound | undefined;
  timer: NodeJS.Timeout | undefined;
  backoffMs: number;
  removed: boolean;
}

interface Outbound {
  readonly socket: tls.TLSSocket;
  established: boolean;
  establishedAt: number;
}

const silentLog: TransportLog = { warn: () => {}, debug: () => {} };

export class TlsTransport implements Transport {
  readonly #server: tls.Server | undefined;
  readonly #lane: string;
  readonly #bounds: Required<TransportBounds>;
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #connectTimeoutMs: number;
  readonly #log: TransportLog;
  #identity: Required<NodeIdentity>;
  #nodeId: NodeId;
  #clientContext: tls.SecureContext;
  #peers = new Map<NodeId, Peer>();
  /** The newest inbound connection per peer and lane (`inboundKey`); an older one is closed. */
  readonly #inbound = new Map<string, tls.TLSSocket>();
  /** Every accepted TCP socket, mid-handshake included, so `close` need not wait for timeouts. */
  readonly #sockets = new Set<Socket>();
  #handler: ((from: NodeId, payload: Uint8Array) => void) | undefined;
  #closed = false;
  #sent = 0;
  #received = 0;
  #dropped = 0;
  #refused = 0;
  #malformed = 0;

  private constructor(options: TlsTransportOptions) {
    this.#bounds = resolveBounds(options);
    this.#minBackoffMs = options.minBackoffMs ?? 50;
    this.#maxBackoffMs = Math.max(options.maxBackoffMs ?? 2000, this.#minBackoffMs);
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 5000;
    this.#log = options.log ?? silentLog;
    this.#identity = { ...options.identity };
    this.#nodeId = identityNodeId(this.#identity);
    this.#clientContext = secureContext(this.#identity);
    this.#lane = LANES[options.lane ?? "main"];
    if (options.listen === false) return;
    const server = tls.createServer(
      {
        ...contextOptions(this.#identity),
        requestCert: true,
        rejectUnauthorized: true,
        handshakeTimeout: options.handshakeTimeoutMs ?? 5000,
        ALPNProtocols: [LANES.main, LANES.heartbeat],
      },
      (socket) => this.#accept(socket),
    );
    this.#server = server;
    server.maxConnections = options.maxInboundConnections ?? 256;
    server.on("connection", (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once("close", () => this.#sockets.delete(socket));
    });
    // A handshake that fails (certificate not endorsed by the service, garbage, timeout).
    server.on("tlsClientError", (err) => {
      this.#refused++;
      this.#log.debug({ err }, "node-to-node handshake refused");
    });
  }

  /** Listens on `options.bindAddress` (unless told not to) and returns the transport once bound. */
  static async start(options: TlsTransportOptions): Promise<TlsTransport> {
    const t = new TlsTransport(options);
    const server = t.#server;
    if (server === undefined) return t;
    const { host, port } = parseAddress(options.bindAddress);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", (err) => t.#log.warn({ err }, "node-to-node listener error"));
    return t;
  }

  /** The bound address, "host:port" ("[v6]:port" for IPv6); "" for a transport that only dials. */
  get address(): string {
    if (this.#server === undefined) return "";
    const a = this.#server.address() as AddressInfo;
    return `${a.address.includes(":") ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /** This node's id, from the public key of the certificate it presents. */
  get nodeId(): NodeId {
    return this.#nodeId;
  }

  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    if (this.#closed) return;
    for (const [id, peer] of this.#peers) {
      if (peers.has(id)) continue;
      peer.removed = true;
      this.#dropped += peer.queue.clear();
      this.#hangUp(peer);
      for (const lane of Object.values(LANES)) {
        this.#inbound.get(inboundKey(id, lane))?.destroy();
        this.#inbound.delete(inboundKey(id, lane));
      }
    }
    const next = new Map<NodeId, Peer>();
    for (const [id, address] of peers) {
      let peer = this.#peers.get(id);
      if (peer === undefined) {
        peer = {
          id,
          address,
          queue: new SendQueue(this.#bounds.maxQueuedMessages, this.#bounds.maxQueuedBytes),
          conn: undefined,
          timer: undefined,
          backoffMs: this.#minBackoffMs,
          removed: false,
        };
        next.set(id, peer);
        this.#dial(peer);
      } else {
        next.set(id, peer);
        if (peer.address !== address) {
          // Queued messages are for the node, not the address: they follow it.
          peer.address = address;
          this.#hangUp(peer);
          peer.backoffMs = this.#minBackoffMs;
          this.#dial(peer);
        }
      }
    }
    this.#peers = next;
  }

  send(to: NodeId, payload: Uint8Array): void {
    const peer = this.#peers.get(to);
    if (this.#closed || peer === undefined || payload.length > this.#bounds.maxFrameBytes) {
      this.#dropped++;
      return;
    }
    this.#dropped += peer.queue.push(payload);
    this.#pump(peer);
  }

  onMessage(handler: (from: NodeId, payload: Uint8Array) => void): void {
    this.#handler = handler;
  }

  /**
   * Changes the certificate presented from now on (a joining node moves from its self-signed to
   * its endorsed certificate; certificates are renewed) and, if given, the service certificate
   * peers must chain to. Outbound connections are re-dialled at once so peers see the new one.
   */
  setIdentity(identity: NodeIdentity): void {
    if (this.#closed) return;
    const next: Required<NodeIdentity> = {
      certPem: identity.certPem,
      keyPem: identity.keyPem,
      serviceCertPem: identity.serviceCertPem ?? this.#identity.serviceCertPem,
    };
    const context = secureContext(next);
    const nodeId = identityNodeId(next);
    this.#server?.setSecureContext(contextOptions(next));
    const caChanged = next.serviceCertPem !== this.#identity.serviceCertPem;
    this.#identity = next;
    this.#nodeId = nodeId;
    this.#clientContext = context;
    if (caChanged) {
      // Inbound peers were admitted under the old service identity.
      for (const s of this.#inbound.values()) s.destroy();
      this.#inbound.clear();
    }
    for (const peer of this.#peers.values()) {
      this.#hangUp(peer);
      peer.backoffMs = this.#minBackoffMs;
      this.#dial(peer);
    }
  }

  stats(): TransportStats {
    const peers: TransportStats["peers"] = {};
    let connections = this.#inbound.size;
    for (const [id, p] of this.#peers) {
      const connected = p.conn?.established === true;
      if (connected) connections++;
      peers[id] = { queuedMessages: p.queue.length, queuedBytes: p.queue.bytes, connected };
    }
    return {
      sent: this.#sent,
      received: this.#received,
      dropped: this.#dropped,
      refusedConnections: this.#refused,
      malformedFrames: this.#malformed,
      connections,
      peers,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#handler = undefined;
    for (const peer of this.#peers.values()) {
      peer.removed = true;
      this.#dropped += peer.queue.clear();
      this.#hangUp(peer);
    }
    for (const s of this.#inbound.values()) s.destroy();
    this.#inbound.clear();
    for (const s of this.#sockets) s.destroy();
    const server = this.#server;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #accept(socket: tls.TLSSocket): void {
    socket.on("error", (err) => this.#log.debug({ err }, "inbound node-to-node socket error"));
    if (this.#closed) {
      socket.destroy();
      return;
    }
    // Any node the service endorsed may connect (TLS checked the endorsement), as in CCF, not
    // only configured peers: a node still catching up does not yet know of nodes that joined
    // after the point it has replicated to, and must hear from them (the primary among them).
    const from = peerNodeId(socket);
    if (from === undefined) {
      this.#refused++;
      this.#log.warn({}, "node-to-node connection without a node certificate");
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    // The peer re-dialled (its old connection died without us noticing): the newest one wins.
    const key = inboundKey(
      from,
      socket.alpnProtocol === LANES.heartbeat ? LANES.heartbeat : LANES.main,
    );
    this.#inbound.get(key)?.destroy();
    this.#inbound.set(key, socket);
    socket.on("close", () => {
      if (this.#inbound.get(key) === socket) this.#inbound.delete(key);
    });
    socket.write(Buffer.of(ACCEPT_BYTE));
    const decoder = new FrameDecoder(this.#bounds.maxFrameBytes);
    socket.on("data", (chunk: Buffer) => {
      const { frames, error } = decoder.push(chunk);
      for (const frame of frames) {
        if (socket.destroyed) break;
        this.#deliver(from, frame);
      }
      if (error !== undefined && !socket.destroyed) {
        this.#malformed++;
        this.#log.warn({ nodeId: from, err: error }, "closing node-to-node connection");
        socket.destroy();
      }
    });
  }

  #deliver(from: NodeId, payload: Uint8Array): void {
    const handler = this.#handler;
    if (handler === undefined) {
      this.#dropped++;
      return;
    }
    this.#received++;
    try {
      handler(from, payload);
    } catch (err) {
      // A throwing handler is a bug upstream; it must not take the socket or the process down.
      this.#log.warn({ err, nodeId: from }, "node-to-node message handler threw");
    }
  }

  #dial(peer: Peer): void {
    if (this.#closed || peer.removed || peer.conn !== undefined) return;
    clearTimeout(peer.timer);
    peer.timer = undefined;
    let host: string;
    let port: number;
    try {
      ({ host, port } = parseAddress(peer.address));
    } catch (err) {
      // A bad published address (it comes from the KV) leaves the peer unreachable, not us dead.
      this.#log.warn({ err, nodeId: peer.id, address: peer.address }, "unusable peer address");
      return;
    }
    const socket = tls.connect({
      host,
      port,
      secureContext: this.#clientContext,
      minVersion: "TLSv1.2",
      ALPNProtocols: [this.#lane],
      // Identity is the node id checked below, not a host name.
      checkServerIdentity: () => undefined,
    });
    const conn: Outbound = { socket, established: false, establishedAt: 0 };
    peer.conn = conn;
    socket.setTimeout(this.#connectTimeoutMs, () => socket.destroy());
    socket.on("error", (err) =>
      this.#log.debug({ err, nodeId: peer.id }, "outbound node-to-node socket error"),
    );
    socket.on("secureConnect", () => {
      if (peer.conn !== conn) {
        socket.destroy();
        return;
      }
      const id = peerNodeId(socket);
      if (id !== peer.id) {
        this.#refused++;
        this.#log.warn(
          { expected: peer.id, got: id, address: peer.address },
          "node-to-node peer presented another node's certificate",
        );
        socket.destroy();
        return;
      }
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 10_000);
    });
    socket.on("drain", () => this.#pump(peer));
    // The listener sends exactly one byte, its admission; anything else is a protocol error.
    socket.on("data", (chunk: Buffer) => {
      if (!conn.established && chunk.length === 1 && chunk[0] === ACCEPT_BYTE) {
        socket.setTimeout(0);
        conn.established = true;
        conn.establishedAt = performance.now();
        this.#pump(peer);
        return;
      }
      this.#malformed++;
      this.#log.warn({ nodeId: peer.id }, "unexpected bytes from a node-to-node listener");
      socket.destroy();
    });
    socket.on("close", () => {
      if (peer.conn !== conn) return;
      peer.conn = undefined;
      // A connection that lived long enough was healthy: reconnect quickly. One that died young
      // (refused, handshake failure, peer down) keeps backing off.
      if (conn.established && performance.now() - conn.establishedAt >= this.#maxBackoffMs) {
        peer.backoffMs = this.#minBackoffMs;
      }
      this.#scheduleDial(peer);
    });
  }

  #scheduleDial(peer: Peer): void {
    if (this.#closed || peer.removed || peer.timer !== undefined) return;
    const delay = peer.backoffMs;
    peer.backoffMs = Math.min(peer.backoffMs * 2, this.#maxBackoffMs);
    peer.timer = setTimeout(() => {
      peer.timer = undefined;
      this.#dial(peer);
    }, delay);
    peer.timer.unref();
  }

  /** Closes the outbound connection without scheduling a redial (the caller decides). */
  #hangUp(peer: Peer): void {
    clearTimeout(peer.timer);
    peer.timer = undefined;
    const conn = peer.conn;
    peer.conn = undefined;
    conn?.socket.destroy();
  }

  /**
   * Writes queued messages while the socket accepts them without buffering past its high-water
   * mark; the rest wait in the bounded queue, where overflow drops the oldest.
   */
  #pump(peer: Peer): void {
    const conn = peer.conn;
    if (conn === undefined || !conn.established) return;
    const socket = conn.socket;
    if (socket.destroyed || !socket.writable) return;
    socket.cork();
    while (!socket.writableNeedDrain) {
      const payload = peer.queue.shift();
      if (payload === undefined) break;
      socket.write(encodeFrameHeader(payload.length));
      socket.write(payload);
      this.#sent++;
    }
    socket.uncork();
  }
}

function inboundKey(from: NodeId, lane: string): string {
  return `${from}\0${lane}`;
}

function contextOptions(identity: Required<NodeIdentity>): tls.SecureContextOptions {
  return {
    cert: identity.certPem,
    key: identity.keyPem,
    ca: identity.serviceCertPem,
    minVersion: "TLSv1.2",
  };
}

function secureContext(identity: Required<NodeIdentity>): tls.SecureContext {
  try {
    return tls.createSecureContext(contextOptions(identity));
  } catch (err) {
    throw new TransportConfigError(
      `unusable node-to-node identity: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

function identityNodeId(identity: Required<NodeIdentity>): NodeId {
  try {
    return nodeIdFromPublicKey(identity.certPem);
  } catch (err) {
    throw new TransportConfigError(
      `unusable node certificate: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

/** The node id of the certificate the other end presented, if any. */
function peerNodeId(socket: tls.TLSSocket): NodeId | undefined {
  const cert = socket.getPeerX509Certificate();
  return cert === undefined ? undefined : nodeIdFromPublicKey(cert.publicKey);
}

/** "host:port" or "[v6]:port"; port 0 is allowed (for listening). */
export function parseAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  const port = m === null ? Number.NaN : Number(m[3]);
  if (m === null || port > 65535) {
    throw new TransportConfigError(`not a host:port address: ${JSON.stringify(address)}`);
  }
  return { host: m[1] ?? m[2], port };
}
