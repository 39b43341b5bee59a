// The thread a WorkerTransport runs its TlsTransport in: what it is given to send is written on
// this thread's event loop, while the thread that gave it (a node's main thread, inside a long
// application handler) is held up.

import { parentPort, workerData } from "node:worker_threads";
import { TlsTransport, type TlsTransportOptions } from "./tls-transport.js";
import type { WorkerRequest, WorkerReply } from "./worker-transport.js";

const port = parentPort;
if (port === null) throw new Error("transport-worker.ts runs as a worker thread");

const options = workerData as Omit<TlsTransportOptions, "log">;
const post = (reply: WorkerReply, transfer: ArrayBuffer[] = []) =>
  port.postMessage(reply, transfer);

const transport = await TlsTransport.start({
  ...options,
  log: {
    warn: (obj, msg) =>
      post({
        type: "log",
        level: "warn",
        obj: JSON.parse(JSON.stringify(obj)) as Record<string, unknown>,
        msg,
      }),
    debug: () => undefined,
  },
});
transport.onMessage((from, payload) => {
  const copy = new Uint8Array(payload);
  post({ type: "message", from, payload: copy }, [copy.buffer]);
});
post({ type: "ready", address: transport.address, nodeId: transport.nodeId });
const statsTimer = setInterval(() => post({ type: "stats", stats: transport.stats() }), 500);
statsTimer.unref();

port.on("message", (m: WorkerRequest) => {
  switch (m.type) {
    case "send":
      transport.send(m.to, m.payload);
      break;
    case "peers":
      transport.setPeers(new Map(m.peers));
      break;
    case "identity":
      transport.setIdentity(m.identity);
      break;
    case "close":
      clearInterval(statsTimer);
      void transport.close().then(() => {
        post({ type: "closed" });
        port.close();
      });
      break;
  }
});
