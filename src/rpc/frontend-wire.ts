// What a node and its frontend processes (`worker_threads` > 0) say to each other about requests,
// over a pipe of their own: frames of [u32 length of the rest][u8 kind][u32 length of a JSON
// head][head][raw bytes]. A request's or response's body is the raw bytes, never re-encoded.
//
// Control messages (configuration, connections, certificates, stats, close) go over node's IPC
// channel instead (FrontendControl, FrontendReport).
//
// Frontend → node: a request (its session, and on a session's first request its client
// certificate) and the end of a session. Node → frontend: the response to a request.

import type { RpcServerStats } from "./server.js";

/** What the node sends its frontend processes over node's IPC channel (with a socket for "conn"). */
export type FrontendControl =
  | { t: "iface"; iface: FrontendInterface }
  | { t: "conn"; iface: string; capped: boolean }
  | { t: "cert"; iface: string; key: string; cert: string }
  | { t: "close"; iface: string };

/** What a frontend process sends back over the IPC channel. */
export type FrontendReport =
  | { t: "ready" }
  | { t: "closed"; iface: string }
  | { t: "stats"; stats: Record<string, RpcServerStats> }
  | { t: "drained"; iface: string };

export interface FrontendInterface {
  name: string;
  key: string;
  cert: string;
  maxOpenSessionsSoft: number;
  maxOpenSessionsHard: number;
  maxBodySize: number;
  maxHeaderSize: number;
  maxHeadersCount: number;
  appProtocol?: "HTTP1" | "HTTP2";
}

/** Frame kinds. */
export const FRAME_REQUEST = 1;
export const FRAME_SESSION_END = 2;
export const FRAME_RESPONSE = 3;

export interface WireRequest {
  /** Unique among the frontend process's requests in flight. */
  id: number;
  /** The RPC interface (config name) the request came on. */
  iface: string;
  /** The frontend process's id for the client session (numbered per interface). */
  session: number;
  /** The client certificate (DER, base64), sent with a session's first request only. */
  cert?: string;
  /** True when the session presented no client certificate (sent with its first request). */
  noCert?: boolean;
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  httpVersion: string;
  hostname: string;
}

export interface WireResponse {
  id: number;
  status: number;
  headers: Record<string, string>;
  closeSession?: boolean;
}

export interface Frame {
  kind: number;
  /** Parsed JSON head. */
  head: unknown;
  /** The raw bytes after the head (its own memory). */
  body: Buffer;
}

const EMPTY = Buffer.alloc(0);

export function encodeFrame(kind: number, head: unknown, body: Uint8Array = EMPTY): Buffer {
  const json = JSON.stringify(head);
  const jsonLength = Buffer.byteLength(json);
  const out = Buffer.allocUnsafe(9 + jsonLength + body.length);
  out.writeUInt32LE(5 + jsonLength + body.length, 0);
  out[4] = kind;
  out.writeUInt32LE(jsonLength, 5);
  out.write(json, 9, "utf8");
  out.set(body, 9 + jsonLength);
  return out;
}

/** Cuts a byte stream into frames. */
export class FrameReader {
  /** The start of a frame still incomplete, as it came: concatenated only once it is whole. */
  #chunks: Buffer[] = [];
  #buffered = 0;

  /** Takes a chunk; returns the frames it completed. Throws on a malformed stream. */
  push(chunk: Buffer): Frame[] {
    let all = chunk;
    if (this.#chunks.length > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      if (this.#buffered < 4) return [];
      let first = this.#chunks[0];
      if (first.length < 4) {
        first = Buffer.concat(this.#chunks);
        this.#chunks = [first];
      }
      if (this.#buffered < 4 + first.readUInt32LE(0)) return [];
      all = this.#chunks.length === 1 ? first : Buffer.concat(this.#chunks);
      this.#chunks = [];
      this.#buffered = 0;
    }
    const frames: Frame[] = [];
    // Frames are read at offsets into the chunk: no view of it per frame.
    let at = 0;
    while (all.length - at >= 4) {
      const length = all.readUInt32LE(at);
      if (length < 5) throw new Error(`bad frame length ${length}`);
      const end = at + 4 + length;
      if (end > all.length) break;
      const kind = all[at + 4];
      const jsonLength = all.readUInt32LE(at + 5);
      if (5 + jsonLength > length) throw new Error("bad frame head length");
      const bodyAt = at + 9 + jsonLength;
      frames.push({
        kind,
        head: JSON.parse(all.toString("utf8", at + 9, bodyAt)) as unknown,
        // Its own copy: a small body kept as a view would keep the whole chunk alive.
        body: bodyAt === end ? EMPTY : Buffer.from(all.subarray(bodyAt, end)),
      });
      at = end;
    }
    if (at < all.length) {
      this.#chunks = [all.subarray(at)];
      this.#buffered = all.length - at;
    }
    return frames;
  }
}

/**
 * Frames written through the returned function in the same microtask checkpoint leave together in
 * one `write`, queued behind the microtasks already pending; nothing waits for a later event loop
 * turn. On the node's side, the requests that one read of the pipe brings are answered at once
 * (their handlers run without awaiting when nothing needs to wait), so their responses leave in
 * one write when the read has been handled. Written one by one, each response woke the frontend
 * for itself: with the synchronous request path that cost the frontends ~4 µs and the client ~3
 * µs more per request; gathered, one node under `bench app` served ~5 % more reads. Gathering per
 * event loop turn (`setImmediate`) instead held every response of a turn until the turn's last
 * request had run, which cost 3-7 % of the writes. `write` is not called once `closed()`.
 */
export function frameWriter(
  write: (bytes: Buffer) => void,
  closed: () => boolean = () => false,
): (frame: Buffer) => void {
  let queued: Buffer[] = [];
  const flush = (): void => {
    const frames = queued;
    queued = [];
    if (!closed()) write(frames.length === 1 ? frames[0] : Buffer.concat(frames));
  };
  return (frame) => {
    if (queued.length === 0) queueMicrotask(flush);
    queued.push(frame);
  };
}
