// `ccf-ts ledger verify` and `ccf-ts ledger read`: the offline audit of a ledger directory, as
// CCF's read_ledger.py does, and a dump of its public transactions as JSON lines.

import { readFileSync, writeSync } from "node:fs";
import type { Command } from "commander";
import { CcfError } from "../errors.js";
import { decodeValue, keyFromString, Store, type WriteSet } from "../kv/index.js";
import { MerkleTree } from "../merkle/index.js";
import { installLoadedSnapshot, loadSnapshot } from "../node/snapshot-fetch.js";
import { type LedgerEntry, type LedgerReport, LedgerSecrets, readLedger } from "../ledger/index.js";

interface VerifyFlags {
  serviceCert?: string;
  snapshot?: string;
  committedOnly?: boolean;
  secret?: string;
  progress?: boolean;
}

interface ReadFlags {
  committedOnly?: boolean;
  secret?: string;
  tables?: string;
  insecureSkipVerification?: boolean;
}

const PROGRESS_INTERVAL_MS = 1000;

export function registerLedger(program: Command): void {
  const ledger = program
    .command("ledger")
    .description("audit a ledger offline (`ledger DIR...` is `ledger verify DIR...`)");
  ledger
    .command("verify", { isDefault: true })
    .description(
      "verify ledger directories: chunk order, entry order and views, the Merkle tree, every node " +
        "and COSE signature and its signer's trust, service status transitions and the members' " +
        "signatures on governance messages; an unsigned tail and a torn last entry (a copy of a " +
        "running node's ledger) are reported, not fatal",
    )
    .argument("<dirs...>", "ledger directories")
    .option("--service-cert <file>", "the ledger must end under this service identity (PEM)")
    .option(
      "--snapshot <file>",
      "a ledger that starts after a snapshot (a node that joined from one): start from this " +
        "committed snapshot, its receipt checked against --service-cert",
    )
    .option("--committed-only", "read only .committed chunks")
    .option("--secret <hex>", "ledger secret (hex): also decrypt private domains, check GCM tags")
    .option("--progress", "report progress on stderr every second (default when it is a TTY)")
    .action((dirs: string[], flags: VerifyFlags) => verifyCommand(dirs, flags));
  ledger
    .command("read")
    .description(
      "print each transaction as a JSON line: " +
        '{"seqno","view","txid","tables":{"<table>":{"<key>":<value>|null}}} (null: removed). ' +
        "Built-in tables (public:ccf.*) have their values decoded as CCF stores them (JSON, " +
        "text; raw bytes as hex) and their keys as text, or hex when not printable; other " +
        "tables' keys and values are hex. Public domains only unless --secret is given",
    )
    .argument("<dirs...>", "ledger directories")
    .option("--tables <regex>", "only tables whose name matches; skip transactions with none")
    .option("--committed-only", "read only .committed chunks")
    .option("--secret <hex>", "ledger secret (hex) to decrypt private domains")
    .option("--insecure-skip-verification", "print without checking signatures and Merkle roots")
    .action((dirs: string[], flags: ReadFlags) => readCommand(dirs, flags));
}

function secretsFrom(hex: string | undefined): LedgerSecrets | undefined {
  if (hex === undefined) return undefined;
  if (!/^([0-9a-fA-F]{2})+$/.test(hex) || hex.length !== 64) {
    throw new CcfError("InvalidArgument", "--secret: expected 32 bytes in hex");
  }
  return new LedgerSecrets([{ key: Buffer.from(hex, "hex"), version: 1 }]);
}

function verifyCommand(dirs: string[], flags: VerifyFlags): void {
  let serviceCert: string | undefined;
  if (flags.serviceCert !== undefined) {
    try {
      serviceCert = readFileSync(flags.serviceCert, "utf8");
    } catch (e) {
      throw new CcfError(
        "InvalidArgument",
        `--service-cert ${flags.serviceCert}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      );
    }
  }
  const secrets = secretsFrom(flags.secret);
  const progress =
    flags.progress === true || process.stderr.isTTY === true ? progressReporter() : undefined;
  let start: { from: number; into: { store: Store; tree: MerkleTree } } | undefined;
  if (flags.snapshot !== undefined) {
    if (serviceCert === undefined) {
      throw new CcfError(
        "InvalidArgument",
        "--snapshot needs --service-cert: the snapshot's receipt is checked against it",
      );
    }
    const snap = loadSnapshot(flags.snapshot, serviceCert, secrets);
    start = { from: snap.seqno, into: { store: new Store(), tree: new MerkleTree() } };
    installLoadedSnapshot(snap, start.into.store, start.into.tree);
  }
  const report = readLedger(dirs, {
    committedOnly: flags.committedOnly === true,
    ...(secrets === undefined ? {} : { secrets }),
    ...(serviceCert === undefined ? {} : { serviceCert }),
    ...(progress === undefined ? {} : { onEntry: progress }),
    ...(start ?? {}),
  });
  if (start !== undefined) process.stdout.write(`from snapshot at seqno: ${start.from}\n`);
  printReport(report);
  process.stdout.write(
    report.unsignedTail > 0 ? `verified up to seqno ${report.lastSignedSeqno}\n` : "verified\n",
  );
}

function printReport(report: LedgerReport): void {
  const out = process.stdout;
  out.write(`chunks: ${report.files.length}\n`);
  out.write(`transactions: ${report.entries}\n`);
  out.write(`last txid: ${report.lastView}.${report.lastSeqno}\n`);
  out.write(`signatures: ${report.signatures}\n`);
  out.write(`cose signatures: ${report.coseSignatures}\n`);
  out.write(`governance messages: ${report.governanceMessages}\n`);
  if (report.serviceStatus !== undefined) out.write(`service status: ${report.serviceStatus}\n`);
  out.write(`last signed seqno: ${report.lastSignedSeqno}\n`);
  if (report.lastSignedRoot !== undefined)
    out.write(`last signed root: ${report.lastSignedRoot}\n`);
  if (report.unsignedTail > 0) out.write(`unsigned tail: ${report.unsignedTail}\n`);
  if (report.tornTail !== undefined) {
    out.write(
      `torn entry: ${report.tornTail.file} at byte ${report.tornTail.offset} (${report.tornTail.bytes} bytes)\n`,
    );
  }
}

/** Every ~second: the seqno reached and the rate since the last line. Checked every 1024 entries. */
function progressReporter(): (e: LedgerEntry) => void {
  let last = Date.now();
  let lastSeqno = 0;
  return (e) => {
    if ((e.seqno & 1023) !== 0) return;
    const now = Date.now();
    if (now - last < PROGRESS_INTERVAL_MS) return;
    const rate = Math.round(((e.seqno - lastSeqno) * 1000) / (now - last));
    process.stderr.write(`seqno ${e.seqno} (${e.file}), ${rate} tx/s\n`);
    last = now;
    lastSeqno = e.seqno;
  };
}

function readCommand(dirs: string[], flags: ReadFlags): void {
  let filter: RegExp | undefined;
  if (flags.tables !== undefined) {
    try {
      filter = new RegExp(flags.tables);
    } catch (e) {
      throw new CcfError("InvalidArgument", `--tables: ${(e as Error).message}`);
    }
  }
  const secrets = secretsFrom(flags.secret);
  const lines: string[] = [];
  const flush = () => {
    if (lines.length > 0) writeOut(`${lines.join("\n")}\n`);
    lines.length = 0;
  };
  try {
    readLedger(dirs, {
      committedOnly: flags.committedOnly === true,
      verify: flags.insecureSkipVerification !== true,
      ...(secrets === undefined ? {} : { secrets }),
      onEntry: (e) => {
        const tables = tablesJson(e.writeSet, filter);
        if (tables === undefined) return;
        lines.push(
          JSON.stringify({ seqno: e.seqno, view: e.view, txid: `${e.view}.${e.seqno}`, tables }),
        );
        if (lines.length >= 256) flush();
      },
    });
    flush();
  } catch (e) {
    if (e instanceof ReaderGone) return;
    // what was read before a fault is printed before the fault is reported
    if (e instanceof CcfError) flushQuietly(flush);
    throw e;
  }
}

/** The reader of stdout went away (`| head`): stop reading the ledger. */
class ReaderGone extends Error {}

function writeOut(text: string): void {
  try {
    writeSync(1, text);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EPIPE") throw new ReaderGone();
    throw e;
  }
}

function flushQuietly(flush: () => void): void {
  try {
    flush();
  } catch (e) {
    if (!(e instanceof ReaderGone)) throw e;
  }
}

/** The transaction's writes as JSON, or undefined when a filter leaves none. */
function tablesJson(
  writeSet: WriteSet,
  filter: RegExp | undefined,
): Record<string, Record<string, unknown>> | undefined {
  // Null prototypes: a key such as "__proto__" is data here.
  const out: Record<string, Record<string, unknown>> = Object.create(null) as Record<string, never>;
  let matched = false;
  for (const name of [...writeSet.keys()].sort()) {
    if (filter !== undefined && !filter.test(name)) continue;
    const writes = writeSet.get(name);
    if (writes === undefined || writes.size === 0) continue;
    const builtin = name.startsWith("public:ccf.");
    const table: Record<string, unknown> = Object.create(null) as Record<string, never>;
    for (const [key, value] of writes) {
      const k = keyFromString(key);
      table[builtin ? printableOrHex(k) : k.toString("hex")] =
        value === null
          ? null
          : builtin
            ? builtinValue(name, value)
            : Buffer.from(value).toString("hex");
    }
    out[name] = table;
    matched = true;
  }
  return filter !== undefined && !matched ? undefined : out;
}

function builtinValue(table: string, value: Uint8Array): unknown {
  try {
    const v = decodeValue(table, value);
    return v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v;
  } catch {
    return Buffer.from(value).toString("hex");
  }
}

/** Keys of built-in tables are ids, names and paths; the singleton key (8 zero bytes) is not text. */
function printableOrHex(bytes: Buffer): string {
  for (const b of bytes) if (b < 0x20 || b > 0x7e) return bytes.toString("hex");
  return bytes.toString("latin1");
}
