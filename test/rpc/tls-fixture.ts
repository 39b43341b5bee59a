// Certificates, a running RpcServer on 127.0.0.1:0 and clients (undici, node:http2, raw TLS) for
// the front end's socket tests.
import http2 from "node:http2";
import type { Readable } from "node:stream";
import tls from "node:tls";
import { Agent, request } from "undici";
import {
  createEndorsedCertificate,
  createSelfSignedCertificate,
  createServiceCertificate,
  EcKeyPair,
} from "../../src/crypto/index.js";
import type { Endpoint } from "../../src/endpoints/types.js";
import {
  FrontendPool,
  Router,
  type RpcFrontend,
  RpcServer,
  type RpcServerOptions,
} from "../../src/rpc/index.js";

export interface Identity {
  key: EcKeyPair;
  cert: string;
}

const validFrom = new Date(Date.now() - 3600_000);

export async function selfSigned(subjectName: string): Promise<Identity> {
  const key = EcKeyPair.generate();
  const cert = await createSelfSignedCertificate(key, {
    subjectName,
    validFrom,
    validityDays: 1,
    sans: [{ type: "ip", value: "127.0.0.1" }],
  });
  return { key, cert };
}

/** A service CA and a node certificate it endorses, as a node serves once trusted. */
export async function serviceEndorsed(): Promise<{ service: Identity; node: Identity }> {
  const serviceKey = EcKeyPair.generate();
  const serviceCert = await createServiceCertificate(serviceKey, { validFrom, validityDays: 1 });
  const nodeKey = EcKeyPair.generate();
  const nodeCert = await createEndorsedCertificate({
    subjectPublicKey: nodeKey.publicKeyPem,
    subjectName: "CN=CCF Node",
    sans: [{ type: "ip", value: "127.0.0.1" }],
    issuerKey: serviceKey,
    issuerCertPem: serviceCert,
    validFrom,
    validityDays: 1,
  });
  return {
    service: { key: serviceKey, cert: serviceCert },
    node: { key: nodeKey, cert: nodeCert },
  };
}

export interface RunningServer {
  server: RpcFrontend;
  router: Router;
  port: number;
  base: string;
  /** The server's own certificate, to trust in clients. */
  ca: string;
  stop(): Promise<void>;
}

/**
 * Where a test's server runs TLS and HTTP: in the test's process (RpcServer), or in frontend
 * processes that hand requests back to it (a node with `worker_threads`: FrontendPool).
 */
export type ServerMode = "in-process" | "frontend processes";
export const SERVER_MODES: ServerMode[] = ["in-process", "frontend processes"];

let servedInterfaces = 0;

export async function startServer(
  identity: Identity,
  endpoints: Endpoint[],
  opts: Partial<Omit<RpcServerOptions, "router" | "key" | "cert">> = {},
  mode: ServerMode = "in-process",
): Promise<RunningServer> {
  const router = new Router();
  router.setEndpoints("app", endpoints);
  const options: RpcServerOptions = {
    key: identity.key.privateKeyPem,
    cert: identity.cert,
    router,
    maxOpenSessionsSoft: 100,
    maxOpenSessionsHard: 110,
    maxBodySize: 1024 * 1024,
    ...opts,
  };
  const pool = mode === "frontend processes" ? await FrontendPool.start(2) : undefined;
  const server =
    pool === undefined
      ? new RpcServer(options)
      : pool.serve(`test_interface_${servedInterfaces++}`, options);
  const { port } = await server.listen("127.0.0.1", 0);
  return {
    server,
    router,
    port,
    base: `https://127.0.0.1:${port}`,
    ca: identity.cert,
    stop: async () => {
      await server.close();
      await pool?.stop();
    },
  };
}

export type Protocol = "HTTP/1.1" | "HTTP/2";
export const PROTOCOLS: Protocol[] = ["HTTP/1.1", "HTTP/2"];

/** An undici client speaking `protocol`, trusting `ca`, presenting `client` if given. */
export function agent(protocol: Protocol, ca: string, client?: Identity): Agent {
  return new Agent({
    allowH2: protocol === "HTTP/2",
    connect: {
      ca,
      rejectUnauthorized: true,
      ...(client === undefined ? {} : { cert: client.cert, key: client.key.privateKeyPem }),
    },
  });
}

export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export async function call(
  dispatcher: Agent,
  url: string,
  init: {
    method?: string;
    body?: string | Buffer | Readable;
    headers?: Record<string, string>;
    signal?: AbortSignal;
  } = {},
): Promise<Reply> {
  const res = await request(url, { dispatcher, ...init });
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return { status: res.statusCode, headers, body: Buffer.from(await res.body.arrayBuffer()) };
}

/** Opens a TLS connection offering `alpn` and resolves once the handshake is done. */
export function tlsConnect(port: number, alpn: string[]): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      { host: "127.0.0.1", port, rejectUnauthorized: false, ALPNProtocols: alpn },
      () => resolve(socket),
    );
    socket.once("error", reject);
  });
}

/** Everything the server sends on `socket` until it closes the connection. */
export function readUntilClosed(socket: tls.TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.on("error", () => {});
    socket.on("close", () => resolve(Buffer.concat(chunks).toString("latin1")));
  });
}

/** One HTTP/2 request on an open session: status and body, or the stream's error. */
export function h2Request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer,
): Promise<{ status: number; text: string } | { error: Error }> {
  return new Promise((resolve) => {
    const stream = session.request(headers);
    let status = 0;
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      status = Number(h[":status"]);
    });
    stream.on("data", (d: Buffer) => chunks.push(d));
    stream.on("end", () => resolve({ status, text: Buffer.concat(chunks).toString() }));
    stream.on("error", (error: Error) => resolve({ error }));
    stream.end(body);
  });
}

/** Polls until `predicate` holds (sessions close asynchronously on the server side). */
export async function eventually(predicate: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
