#!/usr/bin/env node
// The ccf-ts command. Plain JavaScript so that Node runs it directly after `npm ci`; the commands
// themselves live in the compiled TypeScript under dist/.
import { readFileSync } from "node:fs";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
const args = process.argv.slice(2);
const help = `ccf-ts ${pkg.version}: a TypeScript implementation of the Confidential Consortium Framework

Usage: ccf-ts <command> [options]

Commands:
  sandbox      start a local network with the sample logging app (npm start)
  node         run one node from a CCF config file
  keygen       generate a member or user identity
  cose-sign    sign a governance message (CCF's ccf_cose_sign1) to stdout
  gov          propose, vote, withdraw, ack, show: member governance in one step
  ledger       verify a ledger offline (ledger verify), print its transactions (ledger read)
  receipt      verify a JSON or COSE receipt offline (receipt verify)
  app          run a JS app's unit tests in-process (app test)

Run \`ccf-ts <command> --help\` for a command's options.

Options:
  --version    print the version
  --help       print this help
`;

if (args.length === 0 || args[0] === "--help" || args[0] === "-h" || args[0] === "help") {
  process.stdout.write(help);
} else if (args[0] === "--version" || args[0] === "-V") {
  process.stdout.write(`${pkg.version}\n`);
} else {
  const { main } = await import("../dist/src/cli/main.js");
  process.exitCode = await main(args);
}
