// `ccf-ts gov propose|vote|withdraw|ack|submit-share|show`: a member's governance in one step each (sign with
// the member's key, send, print the service's answer as JSON). Run from a sandbox workspace's
// `sandbox_common` folder, the defaults (member0, service_cert.pem, https://127.0.0.1:8000) fit.

import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { CcfError } from "../errors.js";
import { GovClient, GovRequestError } from "./gov-client.js";

interface GovFlags {
  url: string;
  cacert: string;
  member: string;
  signingCert?: string;
  signingKey?: string;
}

function usage(message: string): CcfError {
  return new CcfError("InvalidArgument", message);
}

function readText(path: string, what: string): string {
  try {
    return path === "-" ? readFileSync(0, "utf8") : readFileSync(path, "utf8");
  } catch (e) {
    throw usage(`${what} ${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

function client(flags: GovFlags): GovClient {
  const cert = flags.signingCert ?? `${flags.member}_cert.pem`;
  const key = flags.signingKey ?? `${flags.member}_privk.pem`;
  return new GovClient(flags.url, readText(flags.cacert, "--cacert"), {
    certPem: readText(cert, "--signing-cert"),
    keyPem: readText(key, "--signing-key"),
  });
}

const ACCEPT = "export function vote(proposal, proposerId) { return true; }";
const REJECT = "export function vote(proposal, proposerId) { return false; }";

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Runs `body` with a client; a refusal by the service is reported as its CCF error. */
async function withClient(flags: GovFlags, body: (c: GovClient) => Promise<void>): Promise<void> {
  const c = client(flags);
  try {
    await body(c);
  } catch (e) {
    if (e instanceof GovRequestError) throw new CcfError(e.code, e.message);
    throw e;
  } finally {
    await c.close();
  }
}

export function registerGov(program: Command): void {
  const gov = program
    .command("gov")
    .description("member governance: propose, vote, withdraw, ack, show")
    .option(
      "--url <url>",
      "a node's RPC address",
      process.env.CCF_TS_URL ?? "https://127.0.0.1:8000",
    )
    .option("--cacert <file>", "the service certificate", "service_cert.pem")
    .option("--member <name>", "sign as NAME_cert.pem / NAME_privk.pem", "member0")
    .option("--signing-cert <file>", "member certificate (instead of --member)")
    .option("--signing-key <file>", "member private key (instead of --member)");
  const flags = () => gov.opts<GovFlags>();

  gov
    .command("propose <proposal>")
    .description('submit a proposal ({"actions": [...]} from a file, or - for stdin)')
    .option("--vote", "also vote for it (a ballot that returns true), in the same step")
    .action(async (file: string, o: { vote?: boolean }) => {
      const proposal = readText(file, "proposal");
      try {
        JSON.parse(proposal);
      } catch {
        throw usage(`proposal ${file}: not JSON`);
      }
      await withClient(flags(), async (c) => {
        const proposed = await c.propose(proposal);
        if (o.vote !== true || proposed.proposalState !== "Open") {
          print(proposed);
          return;
        }
        print(await c.vote(proposed.proposalId, ACCEPT));
      });
    });

  gov
    .command("vote <proposalId>")
    .description("vote on a proposal: --accept (default), --reject or --ballot FILE")
    .option("--accept", "a ballot that returns true")
    .option("--reject", "a ballot that returns false")
    .option("--ballot <file>", "a ballot module exporting vote(proposal, proposerId)")
    .action(
      async (proposalId: string, o: { accept?: boolean; reject?: boolean; ballot?: string }) => {
        const chosen = [o.accept, o.reject, o.ballot].filter((x) => x !== undefined).length;
        if (chosen > 1) throw usage("vote: give only one of --accept, --reject, --ballot");
        const ballot =
          o.ballot !== undefined
            ? readText(o.ballot, "--ballot")
            : o.reject === true
              ? REJECT
              : ACCEPT;
        await withClient(flags(), async (c) => print(await c.vote(proposalId, ballot)));
      },
    );

  gov
    .command("withdraw <proposalId>")
    .description("withdraw a proposal you made")
    .action(async (proposalId: string) => {
      await withClient(flags(), async (c) => print((await c.withdraw(proposalId)) ?? {}));
    });

  gov
    .command("ack")
    .description("activate the member: acknowledge the service's current state digest")
    .action(async () => {
      await withClient(flags(), async (c) => {
        await c.activate();
        print({ memberId: c.memberId, status: "Active" });
      });
    });

  gov
    .command("submit-share")
    .description(
      "recovery: fetch the member's encrypted share, decrypt it with its encryption key, submit it",
    )
    .option(
      "--encryption-key <file>",
      "the member's RSA private key (default: MEMBER_enc_privk.pem)",
    )
    .action(async (o: { encryptionKey?: string }) => {
      const f = flags();
      const key = readText(o.encryptionKey ?? `${f.member}_enc_privk.pem`, "--encryption-key");
      await withClient(f, async (c) => print(await c.submitShare(key)));
    });

  gov
    .command("show [proposalId]")
    .description("list proposals, or show one")
    .action(async (proposalId: string | undefined) => {
      await withClient(flags(), async (c) => {
        const path =
          proposalId === undefined
            ? "/gov/members/proposals"
            : `/gov/members/proposals/${proposalId}`;
        const res = await c.get(path);
        if (res.status !== 200) throw new GovRequestError(res, "show");
        print(res.body);
      });
    });
}
