// Entry point of the `ccf-ts` command's subcommands (bin/ccf-ts.js handles --help and --version).

import { Command, CommanderError } from "commander";
import { CcfError } from "../errors.js";
import { LedgerSecrets, readLedger } from "../ledger/index.js";

function notYet(name: string): () => never {
  return () => {
    throw new CcfError("NotAvailable", `'ccf-ts ${name}' is not available yet in this version`);
  };
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command("ccf-ts").exitOverride().configureOutput({
    writeErr: (s) => process.stderr.write(s),
  });
  program
    .command("sandbox")
    .description("start a local network (not yet available)")
    .allowUnknownOption()
    .action(notYet("sandbox"));
  program
    .command("node")
    .description("run one node (not yet available)")
    .allowUnknownOption()
    .action(notYet("node"));
  program
    .command("keygen")
    .description("generate an identity (not yet available)")
    .allowUnknownOption()
    .action(notYet("keygen"));
  program
    .command("ledger")
    .description("read and verify a ledger directory offline, as CCF's read_ledger.py does")
    .argument("<dirs...>", "ledger directories")
    .option("--committed-only", "read only .committed chunks")
    .option("--insecure-skip-verification", "parse without checking signatures and Merkle roots")
    .option("--secret <hex>", "ledger secret (hex) to decrypt private domains")
    .action(
      (
        dirs: string[],
        opts: { committedOnly?: boolean; insecureSkipVerification?: boolean; secret?: string },
      ) => {
        const secrets =
          opts.secret === undefined
            ? undefined
            : new LedgerSecrets([{ key: Buffer.from(opts.secret, "hex"), version: 1 }]);
        const report = readLedger(dirs, {
          committedOnly: opts.committedOnly === true,
          verify: opts.insecureSkipVerification !== true,
          ...(secrets === undefined ? {} : { secrets }),
        });
        const out = process.stdout;
        out.write(`chunks: ${report.files.length}\n`);
        out.write(`transactions: ${report.entries}\n`);
        out.write(`last txid: ${report.lastView}.${report.lastSeqno}\n`);
        out.write(`signatures: ${report.signatures}\n`);
        out.write(`cose signatures: ${report.coseSignatures}\n`);
        out.write(`last signed seqno: ${report.lastSignedSeqno}\n`);
        if (report.lastSignedRoot !== undefined)
          out.write(`last signed root: ${report.lastSignedRoot}\n`);
        if (report.unsignedTail > 0) out.write(`unsigned tail: ${report.unsignedTail}\n`);
        if (report.tornTail !== undefined) {
          out.write(
            `torn entry: ${report.tornTail.file} at byte ${report.tornTail.offset} (${report.tornTail.bytes} bytes)\n`,
          );
        }
        out.write(opts.insecureSkipVerification === true ? "not verified\n" : "verified\n");
      },
    );
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof CcfError) {
      process.stderr.write(`ccf-ts: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
