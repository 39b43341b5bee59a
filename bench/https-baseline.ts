// What Node's own HTTPS stack does on this machine, for scale: a hello-world `node:https` server in
// a child process (the same TLS settings as a node: TLS 1.2/1.3, a client certificate requested)
// answering a fixed 20-byte body, driven by the same client as `bench app`. Not ccf-ts: the
// ceiling any Node.js HTTPS service reaches here with this client.
//
// Run as a script, it is the server: argv = key file, cert file; prints its port.

import { readFileSync } from "node:fs";
import { createServer } from "node:https";

if (process.argv[1] === import.meta.filename) {
  const server = createServer(
    {
      key: readFileSync(process.argv[2] ?? ""),
      cert: readFileSync(process.argv[3] ?? ""),
      requestCert: true,
      rejectUnauthorized: false,
    },
    (req, res) => {
      req.resume();
      req.on("end", () => {
        res.setHeader("content-type", "text/plain");
        res.end("a twenty char value!");
      });
    },
  );
  server.listen(0, "127.0.0.1", () => {
    const address = server.address();
    process.stdout.write(`port ${typeof address === "object" && address ? address.port : 0}\n`);
  });
}
