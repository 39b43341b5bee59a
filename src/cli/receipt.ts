// `ccf-ts receipt verify <RECEIPT> [--service-cert FILE]`: checks a JSON or COSE receipt offline,
// as CCF's `ccf.receipt` / `ccf.cose` Python helpers do, and says why one does not verify.

import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { verifyReceiptBytes } from "../audit/index.js";
import { CcfError } from "../errors.js";

function readInput(path: string, what: string): Buffer {
  try {
    return path === "-" ? readFileSync(0) : readFileSync(path);
  } catch (e) {
    throw new CcfError(
      "InvalidArgument",
      `${what} ${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
    );
  }
}

export function registerReceipt(program: Command): void {
  const receipt = program.command("receipt").description("transaction receipts, offline");
  receipt
    .command("verify")
    .description(
      "verify a JSON receipt (GET /app/receipt) or a COSE receipt; exit 1 with the reason if it does not verify",
    )
    .argument("<receipt>", "receipt file, or - for stdin")
    .option(
      "--service-cert <file>",
      "service certificate (PEM): the node certificate must chain to it; required for COSE",
    )
    .action((file: string, opts: { serviceCert?: string }) => {
      const input = readInput(file, "receipt");
      const serviceCertPem =
        opts.serviceCert === undefined
          ? undefined
          : readInput(opts.serviceCert, "--service-cert").toString("utf8");
      const result = verifyReceiptBytes(
        input,
        serviceCertPem === undefined ? {} : { serviceCertPem },
      );
      if (!result.ok)
        throw new CcfError("ReceiptNotVerified", `receipt not verified: ${result.reason}`);
      process.stdout.write(`receipt verified (${result.kind}), root ${result.root}\n`);
    });
}
