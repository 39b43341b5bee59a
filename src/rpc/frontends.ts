// Frontend processes (CCF's `worker_threads` > 0): TLS and HTTP off the node's main thread. The
// node accepts each TCP connection of each RPC interface itself (so the session caps count every
// connection of the interface), hands it to one of its frontend processes in turn, and answers
// the requests they send over a pipe by dispatching them as an in-process RpcServer would. A
// frontend process that dies is replaced; its connections are lost with it.

import { type ChildProcess, fork } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { type AddressInfo, createServer, type Server, type Socket } from "node:net";
import type { ClientCertificate, ClientSession, EndpointRequest } from "../endpoints/types.js";
import { CcfError, HttpErrors } from "../errors.js";
import { errorResponse, type HandlerErrorListener, type RpcResponse } from "./dispatch.js";
import {
  frameWriter,
  encodeFrame,
  FRAME_REQUEST,
  FRAME_RESPONSE,
  FRAME_SESSION_END,
  type Frame,
  type FrontendControl,
  type FrontendInterface,
  type FrontendReport,
  FrameReader,
  type WireRequest,
  type WireResponse,
} from "./frontend-wire.js";
import {
  type RequestHandler,
  type RpcFrontend,
  type RpcServerOptions,
  type RpcServerStats,
  requestHandlerOf,
  serverLimits,
} from "./server.js";

export interface FrontendLog {
  warn(obj: Record<string, unknown>, msg: string): void;
}

interface Registration {
  config: FrontendInterface;
  handler: RequestHandler;
  onError: HandlerErrorListener | undefined;
  listener: Server | undefined;
  /** Connections of this interface handed out and not yet closed. */
  open: number;
  peak: number;
  closing: boolean;
  /** Called when the last frontend process has drained this interface after close. */
  drained: Set<Frontend>;
  onDrained: (() => void) | undefined;
}

interface Frontend {
  proc: ChildProcess;
  pipe: Socket;
  reader: FrameReader;
  /** The node's view of each of the process's client sessions. */
  sessions: Map<string, { session: ClientSession; cert: ClientCertificate | undefined }>;
  /** Connections handed to this process and not yet closed, by interface. */
  open: Map<string, number>;
  stats: Record<string, RpcServerStats>;
  write: (frame: Buffer) => void;
  exited: boolean;
}

const FRONTEND_MODULE = import.meta.url.endsWith(".ts")
  ? new URL("./frontend-process.ts", import.meta.url)
  : new URL("./frontend-process.js", import.meta.url);
/** Run from TypeScript sources (development, tests), the child loads them through tsx too. */
const FRONTEND_EXEC_ARGV = import.meta.url.endsWith(".ts")
  ? ["--import", import.meta.resolve("tsx")]
  : [];
const START_TIMEOUT_MS = 30_000;
/** Before a replacement is started: a process that dies at once does not make a busy loop. */
const RESPAWN_DELAY_MS = 500;

/** A frontend numbers the sessions of each of its interfaces from 1. */
function sessionKey(iface: string, session: number): string {
  return `${iface}\0${session}`;
}

function certificateOf(derBase64: string): ClientCertificate {
  const der = Buffer.from(derBase64, "base64");
  return { pem: new X509Certificate(der).toString(), der };
}

export class FrontendPool {
  readonly #log: FrontendLog | undefined;
  readonly #frontends: Frontend[] = [];
  readonly #interfaces = new Map<string, Registration>();
  #next = 0;
  #nextSessionId = 1;
  #stopped = false;

  private constructor(log: FrontendLog | undefined) {
    this.#log = log;
  }

  /** Starts `size` frontend processes; resolves once each is ready. */
  static async start(size: number, log?: FrontendLog): Promise<FrontendPool> {
    if (!Number.isSafeInteger(size) || size < 1) {
      throw new CcfError("InvalidRpcServerOptions", `worker_threads must be >= 1, got ${size}`);
    }
    const pool = new FrontendPool(log);
    try {
      for (let i = 0; i < size; i++) pool.#frontends.push(await pool.#spawn());
    } catch (e) {
      await pool.stop();
      throw e;
    }
    return pool;
  }

  /** An RPC interface served by the pool: what RpcServer offers, with the same options. */
  serve(name: string, opts: RpcServerOptions): RpcFrontend {
    if (this.#interfaces.has(name)) {
      throw new CcfError("InvalidRpcServerOptions", `interface ${name} is already served`);
    }
    const handler = requestHandlerOf(opts);
    const reg: Registration = {
      // Checked here, as an in-process RpcServer checks them: a frontend would only crash on them.
      config: {
        name,
        key: opts.key,
        cert: opts.cert,
        ...serverLimits(opts),
        ...(opts.appProtocol === undefined ? {} : { appProtocol: opts.appProtocol }),
      },
      handler,
      onError: opts.onError,
      listener: undefined,
      open: 0,
      peak: 0,
      closing: false,
      drained: new Set(),
      onDrained: undefined,
    };
    this.#interfaces.set(name, reg);
    for (const f of this.#frontends) this.#control(f, { t: "iface", iface: reg.config });
    return {
      listen: (host, port) => this.#listen(reg, host, port),
      setCertificate: (key, cert) => {
        reg.config = { ...reg.config, key, cert };
        for (const f of this.#frontends) this.#control(f, { t: "cert", iface: name, key, cert });
      },
      get openSessions() {
        return reg.open;
      },
      stats: () => {
        const errors = { parsing: 0, requestPayloadTooLarge: 0, requestHeaderTooLarge: 0 };
        for (const f of this.#frontends) {
          const e = f.stats[name]?.errors;
          if (e === undefined) continue;
          errors.parsing += e.parsing;
          errors.requestPayloadTooLarge += e.requestPayloadTooLarge;
          errors.requestHeaderTooLarge += e.requestHeaderTooLarge;
        }
        return { active: reg.open, peak: reg.peak, errors };
      },
      close: () => this.#closeInterface(reg),
    };
  }

  /** Client sessions the node holds state for (each ends when its connection closes). */
  get sessions(): number {
    let n = 0;
    for (const f of this.#frontends) n += f.sessions.size;
    return n;
  }

  /** Closes every interface still open, then ends the frontend processes. */
  async stop(): Promise<void> {
    await Promise.all([...this.#interfaces.values()].map((r) => this.#closeInterface(r)));
    this.#stopped = true;
    await Promise.all(
      this.#frontends.map(
        (f) =>
          new Promise<void>((resolve) => {
            if (f.exited) {
              resolve();
              return;
            }
            f.proc.once("exit", () => resolve());
            f.proc.kill("SIGTERM");
          }),
      ),
    );
  }

  #spawn(): Promise<Frontend> {
    const proc = fork(FRONTEND_MODULE, [], {
      execArgv: FRONTEND_EXEC_ARGV,
      stdio: ["ignore", "inherit", "inherit", "pipe", "ipc"],
      serialization: "json",
    });
    const pipe = proc.stdio[3] as Socket;
    const f: Frontend = {
      proc,
      pipe,
      reader: new FrameReader(),
      sessions: new Map(),
      open: new Map(),
      stats: {},
      write: () => undefined,
      exited: false,
    };
    f.write = frameWriter(
      (bytes) => pipe.write(bytes),
      () => f.exited,
    );
    pipe.on("data", (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = f.reader.push(chunk);
      } catch (e) {
        this.#log?.warn({ err: e }, "frontend process sent a malformed frame: restarting it");
        proc.kill("SIGKILL");
        return;
      }
      for (const frame of frames) this.#onFrame(f, frame);
    });
    pipe.on("error", () => undefined);
    proc.on("message", (m: FrontendReport) => this.#onReport(f, m));
    proc.once("exit", (code, signal) => this.#onExit(f, code, signal));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill("SIGKILL");
        reject(new Error("a frontend process did not start"));
      }, START_TIMEOUT_MS);
      const onMessage = (m: { t: string }) => {
        if (m.t !== "ready") return;
        clearTimeout(timer);
        proc.off("message", onMessage);
        proc.off("exit", onExit);
        for (const reg of this.#interfaces.values()) {
          if (!reg.closing) this.#control(f, { t: "iface", iface: reg.config });
        }
        resolve(f);
      };
      const onExit = (code: number | null) => {
        clearTimeout(timer);
        reject(new Error(`a frontend process exited (${code}) before it was ready`));
      };
      proc.on("message", onMessage);
      proc.once("exit", onExit);
    });
  }

  #control(f: Frontend, m: FrontendControl): void {
    if (!f.exited && f.proc.connected) f.proc.send(m);
  }

  #listen(reg: Registration, host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const listener = createServer({ pauseOnConnect: true }, (socket) =>
        this.#accept(reg, socket),
      );
      listener.on("error", () => undefined);
      listener.once("error", reject);
      listener.listen({ host, port }, () => {
        listener.removeListener("error", reject);
        reg.listener = listener;
        const address = listener.address() as AddressInfo;
        resolve({ host: address.address, port: address.port });
      });
    });
  }

  #accept(reg: Registration, socket: Socket): void {
    socket.on("error", () => undefined);
    const { maxOpenSessionsSoft: soft, maxOpenSessionsHard: hard } = reg.config;
    const f = this.#pick();
    // As an in-process RpcServer: past the hard cap a connection is closed before any TLS work,
    // past the soft cap it gets one 503 SessionCapExhausted.
    if (reg.closing || f === undefined || reg.open >= hard) {
      socket.destroy();
      return;
    }
    const capped = reg.open >= soft;
    reg.open++;
    if (reg.open > reg.peak) reg.peak = reg.open;
    const name = reg.config.name;
    f.open.set(name, (f.open.get(name) ?? 0) + 1);
    const handedOver = (err: Error | null): void => {
      if (err === null) return;
      // Not delivered (the process is going away): no "closed" report will come for it.
      socket.destroy();
      if (!f.exited) this.#closed(f, name);
    };
    if (f.proc.connected) f.proc.send({ t: "conn", iface: name, capped }, socket, handedOver);
    else handedOver(new Error("frontend process disconnected"));
  }

  #pick(): Frontend | undefined {
    for (let i = 0; i < this.#frontends.length; i++) {
      const f = this.#frontends[this.#next++ % this.#frontends.length];
      if (!f.exited) return f;
    }
    return undefined;
  }

  #closed(f: Frontend, iface: string, n = 1): void {
    const reg = this.#interfaces.get(iface);
    if (reg === undefined) return;
    reg.open -= n;
    f.open.set(iface, (f.open.get(iface) ?? 0) - n);
  }

  #onReport(f: Frontend, m: FrontendReport): void {
    switch (m.t) {
      case "closed":
        this.#closed(f, m.iface);
        return;
      case "stats":
        f.stats = m.stats;
        return;
      case "drained": {
        const reg = this.#interfaces.get(m.iface);
        if (reg === undefined) return;
        reg.drained.delete(f);
        if (reg.drained.size === 0) reg.onDrained?.();
        return;
      }
      default:
        return;
    }
  }

  #onFrame(f: Frontend, frame: Frame): void {
    if (frame.kind === FRAME_SESSION_END) {
      const end = frame.head as { iface: string; session: number };
      f.sessions.delete(sessionKey(end.iface, end.session));
      return;
    }
    if (frame.kind !== FRAME_REQUEST) return;
    const r = frame.head as WireRequest;
    const reg = this.#interfaces.get(r.iface);
    if (reg === undefined) return;
    const key = sessionKey(r.iface, r.session);
    let s = f.sessions.get(key);
    if (s === undefined) {
      // A session's first request carries its certificate; any later one without an entry here
      // is served as having none (authentication then fails closed).
      let cert: ClientCertificate | undefined;
      try {
        cert = r.cert === undefined ? undefined : certificateOf(r.cert);
      } catch {
        cert = undefined;
      }
      s = { session: { id: this.#nextSessionId++ }, cert };
      f.sessions.set(key, s);
    }
    const request: EndpointRequest = {
      method: r.method,
      path: r.path,
      query: r.query,
      params: {},
      headers: r.headers,
      body: frame.body,
      clientCert: s.cert,
      httpVersion: r.httpVersion,
      hostname: r.hostname,
      session: s.session,
    };
    const reply = (res: RpcResponse): void => {
      const head: WireResponse = { id: r.id, status: res.status, headers: res.headers };
      if (res.closeSession === true) head.closeSession = true;
      let frame: Buffer;
      try {
        frame = encodeFrame(FRAME_RESPONSE, head, res.body);
      } catch (err) {
        // A body past what a frame can carry (4 GiB): the client gets an error, not silence.
        reg.onError?.(err, request);
        const { status, headers, body } = errorResponse(
          HttpErrors.InternalError("The response is too large to send"),
        );
        frame = encodeFrame(FRAME_RESPONSE, { id: r.id, status, headers }, body);
      }
      f.write(frame);
    };
    const out = reg.handler(request);
    if (out instanceof Promise) out.then(reply, (err: unknown) => reg.onError?.(err, request));
    else reply(out);
  }

  #onExit(f: Frontend, code: number | null, signal: NodeJS.Signals | null): void {
    f.exited = true;
    const at = this.#frontends.indexOf(f);
    // One that never got ready is #spawn's to report.
    if (at === -1) return;
    // Its connections died with it.
    for (const [iface, n] of f.open) if (n > 0) this.#closed(f, iface, n);
    for (const reg of this.#interfaces.values()) {
      if (reg.drained.delete(f) && reg.drained.size === 0) reg.onDrained?.();
    }
    if (this.#stopped) return;
    this.#log?.warn({ code, signal }, "a frontend process exited: starting another");
    const respawn = setTimeout(() => {
      if (this.#stopped) return;
      this.#spawn().then(
        (replacement) => {
          if (this.#stopped) replacement.proc.kill("SIGTERM");
          else this.#frontends[at] = replacement;
        },
        (err: unknown) => {
          this.#log?.warn({ err }, "could not start a frontend process");
          // Retried as if it had exited again.
          this.#onExit(f, null, null);
        },
      );
    }, RESPAWN_DELAY_MS);
    respawn.unref();
  }

  #closeInterface(reg: Registration): Promise<void> {
    if (reg.closing) {
      return reg.drained.size === 0
        ? Promise.resolve()
        : new Promise((resolve) => {
            const previous = reg.onDrained;
            reg.onDrained = () => {
              previous?.();
              resolve();
            };
          });
    }
    reg.closing = true;
    const listenerClosed = new Promise<void>((resolve) => {
      if (reg.listener === undefined) resolve();
      else reg.listener.close(() => resolve());
    });
    const live = this.#frontends.filter((f) => !f.exited);
    for (const f of live) reg.drained.add(f);
    const drained = new Promise<void>((resolve) => {
      if (reg.drained.size === 0) resolve();
      else reg.onDrained = resolve;
    });
    for (const f of live) this.#control(f, { t: "close", iface: reg.config.name });
    return Promise.all([listenerClosed, drained]).then(() => undefined);
  }
}
