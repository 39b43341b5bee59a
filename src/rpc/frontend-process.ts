// A node's frontend process (`worker_threads` > 0): the node accepts each TCP connection and
// hands it here; this process runs TLS and HTTP (an RpcServer per RPC interface, as the node would
// in its own process) and sends each parsed request to the node over a pipe (fd 3), which
// dispatches it and sends back the response. Control messages (configuration, connections,
// certificates, stats, close) come over node's IPC channel.

import { Socket } from "node:net";
import type { ClientSession, EndpointRequest } from "../endpoints/types.js";
import type { RpcResponse } from "./dispatch.js";
import {
  frameWriter,
  encodeFrame,
  FRAME_REQUEST,
  FRAME_RESPONSE,
  FRAME_SESSION_END,
  type FrontendControl,
  type FrontendInterface,
  type FrontendReport,
  FrameReader,
  type WireRequest,
  type WireResponse,
} from "./frontend-wire.js";
import { RpcServer, type RpcServerStats } from "./server.js";

const STATS_INTERVAL_MS = 500;

function send(m: FrontendReport): void {
  process.send?.(m);
}

if (process.send === undefined) throw new Error("frontend-process runs as a node's child process");

const pipe = new Socket({ fd: 3, readable: true, writable: true });
const servers = new Map<string, RpcServer>();
const pending = new Map<number, (r: RpcResponse) => void>();
/** Sessions whose certificate the node has been sent. */
const announced = new WeakSet<ClientSession>();
let nextRequestId = 1;

const write = frameWriter((bytes) => pipe.write(bytes));

function forward(iface: string, request: EndpointRequest): Promise<RpcResponse> {
  const id = nextRequestId++;
  const session = request.session as ClientSession;
  const head: WireRequest = {
    id,
    iface,
    session: session.id,
    method: request.method,
    path: request.path,
    query: request.query,
    headers: request.headers,
    httpVersion: request.httpVersion,
    hostname: request.hostname,
  };
  if (!announced.has(session)) {
    announced.add(session);
    if (request.clientCert === undefined) head.noCert = true;
    else head.cert = request.clientCert.der.toString("base64");
  }
  write(encodeFrame(FRAME_REQUEST, head, request.body));
  return new Promise((resolve) => pending.set(id, resolve));
}

const reader = new FrameReader();
pipe.on("data", (chunk: Buffer) => {
  for (const frame of reader.push(chunk)) {
    if (frame.kind !== FRAME_RESPONSE) continue;
    const r = frame.head as WireResponse;
    const resolve = pending.get(r.id);
    if (resolve === undefined) continue;
    pending.delete(r.id);
    resolve({
      status: r.status,
      headers: r.headers,
      body: frame.body,
      ...(r.closeSession === true ? { closeSession: true } : {}),
    });
  }
});
// The node is gone: nothing here can be answered any more.
pipe.on("error", () => process.exit(1));
pipe.on("end", () => process.exit(1));
process.on("disconnect", () => process.exit(1));

function addInterface(i: FrontendInterface): void {
  void servers.get(i.name)?.close();
  servers.set(
    i.name,
    new RpcServer({
      key: i.key,
      cert: i.cert,
      handler: (request) => forward(i.name, request),
      onSessionEnd: (session) => {
        if (announced.has(session)) {
          write(encodeFrame(FRAME_SESSION_END, { iface: i.name, session: session.id }));
        }
      },
      maxOpenSessionsSoft: i.maxOpenSessionsSoft,
      maxOpenSessionsHard: i.maxOpenSessionsHard,
      maxBodySize: i.maxBodySize,
      maxHeaderSize: i.maxHeaderSize,
      maxHeadersCount: i.maxHeadersCount,
      ...(i.appProtocol === undefined ? {} : { appProtocol: i.appProtocol }),
    }),
  );
}

const statsTimer = setInterval(() => {
  const stats: Record<string, RpcServerStats> = {};
  for (const [name, server] of servers) stats[name] = server.stats();
  send({ t: "stats", stats });
}, STATS_INTERVAL_MS);
statsTimer.unref();

process.on("message", (m: FrontendControl, handle: unknown) => {
  switch (m.t) {
    case "iface":
      addInterface(m.iface);
      return;
    case "conn": {
      const socket = handle as Socket | undefined;
      if (socket === undefined) return;
      // Counted by the node when it handed the connection over: reported back once it closes.
      socket.once("close", () => send({ t: "closed", iface: m.iface }));
      const server = servers.get(m.iface);
      if (server === undefined) socket.destroy();
      else server.adopt(socket, m.capped);
      return;
    }
    case "cert":
      servers.get(m.iface)?.setCertificate(m.key, m.cert);
      return;
    case "close": {
      const server = servers.get(m.iface);
      void (server === undefined ? Promise.resolve() : server.close()).then(() =>
        // After the last responses' frames (queued for this turn).
        setImmediate(() => send({ t: "drained", iface: m.iface })),
      );
      return;
    }
  }
});
send({ t: "ready" });
