// `ccf-ts cose-sign`: CCF's `ccf_cose_sign1` tool. Signs a governance message with a member's key
// and writes the raw COSE_Sign1 to stdout, so that it pipes into
// `curl --data-binary @- -H 'content-type: application/cose'`.

import { readFileSync } from "node:fs";
import { type Command, Option } from "commander";
import { CcfError } from "../errors.js";
import { GOV_MSG_TYPES, GOV_MSG_TYPES_WITH_PROPOSAL_ID, signGovMessage } from "../gov/index.js";

export interface CoseSignOptions {
  content: string;
  signingCert: string;
  signingKey: string;
  msgType: string;
  createdAt: string;
  proposalId?: string;
}

function usageError(message: string): CcfError {
  return new CcfError("InvalidArgument", message);
}

const ISO_8601 =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?(Z|[+-]\d{2}(?::?\d{2}(?::?\d{2}(?:\.\d{1,6})?)?)?)?)?$/;

function offsetSeconds(tz: string): number {
  if (tz === "Z") return 0;
  const sign = tz[0] === "-" ? -1 : 1;
  const digits = tz.slice(1).replace(/:/g, "");
  const h = Number(digits.slice(0, 2));
  const m = Number(digits.slice(2, 4) || "0");
  const s = Number(digits.slice(4) || "0");
  if (h > 23 || m > 59 || s >= 60) throw new RangeError("offset out of range");
  return sign * (h * 3600 + m * 60 + s);
}

/**
 * `--ccf-gov-msg-created_at`: integer seconds since the epoch, or an ISO-8601 time as Python's
 * `datetime.fromisoformat` reads it (CCF's tool): a time without an offset is local time, and
 * fractions of a second are dropped, as `int(created_at.timestamp())` does.
 */
export function parseCreatedAt(value: string): number {
  const text = value.trim();
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (!Number.isSafeInteger(n)) throw usageError(`--ccf-gov-msg-created_at ${value}: too large`);
    return n;
  }
  const m = ISO_8601.exec(text);
  const bad = () =>
    usageError(
      `--ccf-gov-msg-created_at ${JSON.stringify(value)}: not an ISO-8601 time (e.g. 2025-05-14T10:38:30+00:00) nor integer epoch seconds`,
    );
  if (m === null) throw bad();
  const [, y, mo, d, h = "0", mi = "0", s = "0", frac = "", tz] = m;
  const parts = [Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)] as const;
  const fraction = frac === "" ? 0 : Number(`0.${frac}`);
  let offset = 0;
  if (tz !== undefined) {
    try {
      offset = offsetSeconds(tz);
    } catch {
      throw bad();
    }
  }
  const ms = tz === undefined ? new Date(...parts).getTime() : Date.UTC(...parts) - offset * 1000;
  // Date rolls 2025-02-30 over into March; Python refuses it, and so do we.
  const check = tz === undefined ? new Date(...parts) : new Date(Date.UTC(...parts));
  const fields =
    tz === undefined
      ? [check.getFullYear(), check.getMonth(), check.getDate(), check.getHours()]
      : [check.getUTCFullYear(), check.getUTCMonth(), check.getUTCDate(), check.getUTCHours()];
  if (Number.isNaN(ms) || fields.some((f, i) => f !== parts[i]) || parts[4] > 59 || parts[5] > 59) {
    throw bad();
  }
  return Math.trunc(ms / 1000 + fraction);
}

function readInput(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const reason = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw usageError(`${what} ${path}: cannot read (${reason})`);
  }
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
  }
  return Buffer.concat(chunks);
}

/** Builds the message; every bad input is a CcfError naming the flag at fault. */
export async function coseSign(opts: CoseSignOptions): Promise<Buffer> {
  if (
    (GOV_MSG_TYPES_WITH_PROPOSAL_ID as readonly string[]).includes(opts.msgType) &&
    opts.proposalId === undefined
  ) {
    throw usageError(
      `--ccf-gov-msg-type ${opts.msgType} requires --ccf-gov-msg-proposal_id (the proposal it acts on)`,
    );
  }
  const createdAt = parseCreatedAt(opts.createdAt);
  const signingCertPem = readInput(opts.signingCert, "--signing-cert").toString("utf8");
  const signingKeyPem = readInput(opts.signingKey, "--signing-key").toString("utf8");
  const content = opts.content === "-" ? await readStdin() : readInput(opts.content, "--content");
  try {
    return signGovMessage({
      signingKeyPem,
      signingCertPem,
      msgType: opts.msgType,
      createdAt,
      ...(opts.proposalId === undefined ? {} : { proposalId: opts.proposalId }),
      content,
    });
  } catch (e) {
    if (e instanceof CcfError) {
      throw usageError(
        `cannot sign with --signing-key ${opts.signingKey} and --signing-cert ${opts.signingCert}: ${e.message}`,
      );
    }
    throw e;
  }
}

interface RawFlags {
  content?: string;
  signingCert?: string;
  signingKey?: string;
  ccfGovMsgType?: string;
  ccfGovMsgCreated_at?: string;
  ccfGovMsgCreatedAt?: string;
  ccfGovMsgProposal_id?: string;
  ccfGovMsgProposalId?: string;
}

/** Registers `cose-sign` with CCF's flag names (both the `_` and `-` spellings CCF's tool takes). */
export function registerCoseSign(program: Command): void {
  program
    .command("cose-sign")
    .description(
      "sign a governance message (COSE Sign1, as CCF's ccf_cose_sign1) and write it to stdout",
    )
    .option("--content <file>", "content to sign, or '-' for stdin")
    .option("--signing-cert <file>", "member certificate (PEM)")
    .option("--signing-key <file>", "member private key (PEM)")
    .addOption(
      new Option("--ccf-gov-msg-type <type>", "ccf.gov.msg.type protected header").choices(
        GOV_MSG_TYPES,
      ),
    )
    .option(
      "--ccf-gov-msg-created_at <time>",
      "ccf.gov.msg.created_at: ISO-8601 time (e.g. `date -Is`) or integer epoch seconds",
    )
    .addOption(new Option("--ccf-gov-msg-created-at <time>").hideHelp())
    .option("--ccf-gov-msg-proposal_id <id>", "ccf.gov.msg.proposal_id (ballot, withdrawal)")
    .addOption(new Option("--ccf-gov-msg-proposal-id <id>").hideHelp())
    .action(async (flags: RawFlags) => {
      const createdAt = flags.ccfGovMsgCreated_at ?? flags.ccfGovMsgCreatedAt;
      const proposalId = flags.ccfGovMsgProposal_id ?? flags.ccfGovMsgProposalId;
      const missing = [
        flags.content === undefined ? "--content" : undefined,
        flags.signingCert === undefined ? "--signing-cert" : undefined,
        flags.signingKey === undefined ? "--signing-key" : undefined,
        flags.ccfGovMsgType === undefined ? "--ccf-gov-msg-type" : undefined,
        createdAt === undefined ? "--ccf-gov-msg-created_at" : undefined,
      ].filter((f) => f !== undefined);
      if (missing.length > 0) throw usageError(`cose-sign: missing ${missing.join(", ")}`);
      const message = await coseSign({
        content: flags.content as string,
        signingCert: flags.signingCert as string,
        signingKey: flags.signingKey as string,
        msgType: flags.ccfGovMsgType as string,
        createdAt: createdAt as string,
        ...(proposalId === undefined ? {} : { proposalId }),
      });
      process.stdout.write(message);
    });
}
