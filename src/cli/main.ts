// Entry point of the `ccf-ts` command's subcommands (bin/ccf-ts.js handles --help and --version).

import { Command, CommanderError } from "commander";
import { CcfError } from "../errors.js";
import { registerAppTest } from "./app-test.js";
import { registerCoseSign } from "./cose-sign.js";
import { registerGov } from "./gov.js";
import { registerLedger } from "./ledger.js";
import { registerReceipt } from "./receipt.js";

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function parseIntArg(flag: string, value: string): number {
  if (!/^\d+$/.test(value))
    throw new CcfError("InvalidArgument", `${flag} ${value}: not a whole number`);
  return Number(value);
}

export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const program = new Command("ccf-ts").exitOverride().configureOutput({
    writeErr: (s) => process.stderr.write(s),
  });
  program
    .command("sandbox")
    .description("start a local network with its identities in a workspace")
    .option("--nodes <n>", "number of nodes", "3")
    .option("--workspace <dir>", "workspace directory", "workspace")
    .option("--port <p>", "port of node 0 (node i listens on p+i)", "8000")
    .option(
      "--constitution <file>",
      "constitution file (repeatable, concatenated in order)",
      collect,
      [],
    )
    .option(
      "--js-app-bundle <path>",
      "app: bundle.json or a folder (app.json + src/); default: the logging sample",
    )
    .option("--verbose", "debug logging in the nodes")
    .option("--snapshot-tx-interval <n>", "transactions between snapshots (default 10000)")
    .option("--recover", "disaster recovery of a service from its ledger (and snapshots)")
    .option("--ledger-dir <dir>", "with --recover: the old service's ledger directory")
    .option("--common-dir <dir>", "with --recover: the old workspace's sandbox_common")
    .option("--snapshots-dir <dir>", "with --recover: the old service's snapshots")
    .action(
      async (opts: {
        nodes: string;
        workspace: string;
        port: string;
        constitution: string[];
        jsAppBundle?: string;
        verbose?: boolean;
        recover?: boolean;
        ledgerDir?: string;
        commonDir?: string;
        snapshotsDir?: string;
        snapshotTxInterval?: string;
      }) => {
        const { runSandbox } = await import("./sandbox.js");
        let recover: { ledgerDir: string; commonDir: string; snapshotsDir?: string } | undefined;
        if (opts.recover === true) {
          if (opts.ledgerDir === undefined || opts.commonDir === undefined) {
            throw new CcfError("InvalidArgument", "--recover needs --ledger-dir and --common-dir");
          }
          recover = {
            ledgerDir: opts.ledgerDir,
            commonDir: opts.commonDir,
            ...(opts.snapshotsDir === undefined ? {} : { snapshotsDir: opts.snapshotsDir }),
          };
        } else if (opts.ledgerDir !== undefined || opts.commonDir !== undefined) {
          throw new CcfError("InvalidArgument", "--ledger-dir and --common-dir go with --recover");
        }
        exitCode = await runSandbox({
          ...(opts.snapshotTxInterval === undefined
            ? {}
            : {
                snapshotTxInterval: parseIntArg("--snapshot-tx-interval", opts.snapshotTxInterval),
              }),
          ...(recover === undefined ? {} : { recover }),
          nodes: parseIntArg("--nodes", opts.nodes),
          workspace: opts.workspace,
          port: parseIntArg("--port", opts.port),
          ...(opts.constitution.length > 0 ? { constitution: opts.constitution } : {}),
          ...(opts.jsAppBundle === undefined ? {} : { jsAppBundle: opts.jsAppBundle }),
          verbose: opts.verbose === true,
        });
      },
    );
  program
    .command("node")
    .description("run one node from a CCF configuration file")
    .requiredOption("--config <file>", "configuration file (CCF's format)")
    .option("--log-level <level>", "trace, debug, info, fail or fatal", "info")
    .option("--check", "only validate the configuration")
    .action(async (opts: { config: string; logLevel: string; check?: boolean }) => {
      const { runNodeCommand } = await import("../node/main.js");
      exitCode = await runNodeCommand({
        config: opts.config,
        logLevel: opts.logLevel,
        check: opts.check === true,
      });
    });
  program
    .command("keygen")
    .description("generate an identity: NAME_cert.pem and NAME_privk.pem (P-384)")
    .requiredOption("--name <name>", "identity name")
    .option("--gen-enc-key", "also an RSA-2048 encryption key pair (recovery members)")
    .action(async (opts: { name: string; genEncKey?: boolean }) => {
      const { keygen } = await import("./keygen.js");
      for (const f of await keygen({ name: opts.name, genEncKey: opts.genEncKey === true })) {
        process.stdout.write(`${f}\n`);
      }
    });
  registerLedger(program);
  registerCoseSign(program);
  registerGov(program);
  registerReceipt(program);
  registerAppTest(program, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(argv, { from: "user" });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof CcfError) {
      process.stderr.write(`ccf-ts: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
