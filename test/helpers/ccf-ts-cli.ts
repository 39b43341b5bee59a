// Runs the ccf-ts command from the TypeScript sources (tests spawn this, so they never depend on
// a stale build): `node --import tsx test/helpers/ccf-ts-cli.ts <args>`.
import { main } from "../../src/cli/main.js";

process.exitCode = await main(process.argv.slice(2));
