// The identities most end-to-end tests start a service with, and clients presenting them.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Agent } from "undici";
import { runCcfTs } from "./process.js";

/** `ccf-ts keygen` for member0 (with an encryption key) and user0, into `dir`. */
export function makeMemberAndUser(dir: string): void {
  for (const args of [
    ["--name", "member0", "--gen-enc-key"],
    ["--name", "user0"],
  ]) {
    const r = runCcfTs(["keygen", ...args], dir);
    assert.equal(r.status, 0, r.stderr);
  }
}

/** An HTTPS client presenting `name`'s certificate from `dir`, trusting the service's. */
export function clientAgent(dir: string, serviceCertPem: string, name = "user0"): Agent {
  return new Agent({
    connect: {
      ca: serviceCertPem,
      cert: readFileSync(join(dir, `${name}_cert.pem`), "utf8"),
      key: readFileSync(join(dir, `${name}_privk.pem`), "utf8"),
    },
  });
}
