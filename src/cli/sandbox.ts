// `ccf-ts sandbox`: a local service in ./workspace laid out as CCF's sandbox: identities in
// `sandbox_common/`, node i's config, log and ledger in `sandbox_<i>/`. Each node is its own
// process, a child of the sandbox; Ctrl+C or SIGTERM stops them all.
//
// Node 0 starts the service; nodes 1..N-1 join it while it is still Opening (so they are trusted at
// once). Then, as CCF's sandbox does, the service is set up through governance under the chosen
// constitution: every member activates (state digest ack), member0 proposes the users, the app
// and the opening, and members vote until the proposal is accepted. `--verbose` prints each step
// as a runnable `ccf-ts cose-sign ... | curl ...` command.

import { type ChildProcess, spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, request } from "undici";
import { CcfError } from "../errors.js";
import { describeAllocator, nodeAllocator } from "../node/allocator.js";
import { PACKAGE_ROOT } from "../node/version.js";
import { constitutionFiles, DEFAULT_CONSTITUTION_DIR } from "../gov/index.js";
import { loadBundle } from "../node/bundle.js";
import { GOV_API_VERSION, GovClient, GovRequestError } from "./gov-client.js";
import { keygen } from "./keygen.js";

export interface SandboxOptions {
  nodes: number;
  workspace: string;
  port: number;
  constitution?: string[];
  /** bundle.json, or a folder (CCF's app.json + src/, or one holding bundle.json). */
  jsAppBundle?: string;
  verbose?: boolean;
  /** Transactions between snapshots (CCF's --snapshot-tx-interval; default 10000). */
  snapshotTxInterval?: number;
  /** Disaster recovery of an old service: its ledger, its identities (and snapshots). */
  recover?: { ledgerDir: string; commonDir: string; snapshotsDir?: string };
}

/** The default constitution's files, in the order CCF concatenates them. */
export const DEFAULT_CONSTITUTION = constitutionFiles(DEFAULT_CONSTITUTION_DIR);
export const DEFAULT_APP = join(PACKAGE_ROOT, "samples/apps/logging/dist/bundle.json");
/** Nodes run the same ccf-ts entry point (and Node flags) as the sandbox itself. */
function nodeCommand(): string[] {
  const entry = process.argv[1] ?? join(PACKAGE_ROOT, "bin/ccf-ts.js");
  return [...process.execArgv, entry];
}
const START_TIMEOUT_MS = 120_000;

export async function runSandbox(opts: SandboxOptions): Promise<number> {
  if (!Number.isInteger(opts.nodes) || opts.nodes < 1 || opts.nodes > 9) {
    throw new CcfError("InvalidArgument", `--nodes ${opts.nodes}: between 1 and 9 nodes`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    throw new CcfError("InvalidArgument", `--port ${opts.port} is not a port number`);
  }
  const constitutions = (opts.constitution ?? DEFAULT_CONSTITUTION).map((f) => resolve(f));
  for (const f of constitutions) {
    if (!existsSync(f)) throw new CcfError("InvalidArgument", `--constitution ${f}: no such file`);
  }
  const bundle = resolve(opts.jsAppBundle ?? DEFAULT_APP);
  const allocator = nodeAllocator();
  if (!existsSync(bundle)) {
    throw new CcfError(
      "InvalidArgument",
      opts.jsAppBundle === undefined
        ? `the sample app is not built (${bundle}): run npm ci or npm run build:samples`
        : `--js-app-bundle ${bundle}: no such file or folder`,
    );
  }
  const workspace = resolve(opts.workspace);
  const common = join(workspace, "sandbox_common");
  const recover =
    opts.recover === undefined ? undefined : checkRecoverDirs(opts.recover, workspace);
  rmSync(workspace, { recursive: true, force: true });
  mkdirSync(common, { recursive: true });
  if (recover === undefined) {
    for (let i = 0; i < 3; i++) {
      await keygen({ name: `member${i}`, genEncKey: true, dir: common, validityDays: 90 });
      await keygen({ name: `user${i}`, dir: common, validityDays: 90 });
    }
  } else {
    copyIdentities(recover.commonDir, common);
  }

  const children: ChildProcess[] = [];
  const exits: Array<Promise<number>> = [];
  const stopAll = () => {
    for (const c of children) stopChild(c);
  };
  process.on("SIGINT", stopAll);
  process.on("SIGTERM", stopAll);

  const addresses: string[] = [];
  const startNode = async (i: number): Promise<string | undefined> => {
    const dir = join(workspace, `sandbox_${i}`);
    mkdirSync(dir, { recursive: true });
    const port = opts.port === 0 ? 0 : opts.port + i;
    const command =
      i === 0 && recover !== undefined
        ? {
            type: "Recover",
            service_certificate_file: join(common, "service_cert.pem"),
            recover: {
              previous_service_identity_file: join(recover.commonDir, "service_cert.pem"),
              initial_service_certificate_validity_days: 90,
            },
          }
        : i === 0
          ? {
              type: "Start",
              service_certificate_file: join(common, "service_cert.pem"),
              start: {
                members: [0, 1, 2].map((m) => ({
                  certificate_file: join(common, `member${m}_cert.pem`),
                  encryption_public_key_file: join(common, `member${m}_enc_pubk.pem`),
                })),
                constitution_files: constitutions,
                service_configuration: { recovery_threshold: 1 },
                initial_service_certificate_validity_days: 90,
              },
            }
          : {
              type: "Join",
              service_certificate_file: join(common, "service_cert.pem"),
              join: { target_rpc_address: addresses[0], retry_timeout: "200ms" },
            };
    const config = {
      network: {
        node_to_node_interface: { bind_address: "127.0.0.1:0" },
        rpc_interfaces: { primary_rpc_interface: { bind_address: `127.0.0.1:${port}` } },
      },
      node_certificate: { subject_alt_names: ["iPAddress:127.0.0.1"], initial_validity_days: 90 },
      command,
      ledger: { directory: `${i}.ledger` },
      snapshots: {
        directory: "snapshots",
        ...(opts.snapshotTxInterval === undefined ? {} : { tx_count: opts.snapshotTxInterval }),
        ...(i === 0 && recover?.snapshotsDir !== undefined
          ? { read_only_directory: recover.snapshotsDir }
          : {}),
      },
      ledger_signatures: { tx_count: 5000, delay: "100ms" },
      output_files: {
        node_certificate_file: `${i}.pem`,
        pid_file: "node.pid",
        rpc_addresses_file: `${i}.rpc_addresses.json`,
        node_to_node_address_file: `${i}.node_address.json`,
      },
    };
    if (i === 0 && recover !== undefined) {
      // As CCF's sandbox does, the recovering node works on a copy of the old ledger (open
      // chunk included) in its own ledger directory; the old one is left as it was.
      const ledger = join(dir, `${i}.ledger`);
      mkdirSync(ledger, { recursive: true });
      for (const f of readdirSync(recover.ledgerDir)) {
        if (/^ledger_\d+(-\d+)?(\.committed)?$/.test(f)) {
          copyFileSync(join(recover.ledgerDir, f), join(ledger, f));
        }
      }
    }
    const configPath = join(dir, `${i}.config.json`);
    writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`);
    const logFd = openSync(join(dir, "out"), "a");
    const child = spawn(
      process.execPath,
      [
        ...nodeCommand(),
        "node",
        "--config",
        configPath,
        "--log-level",
        opts.verbose === true ? "debug" : "info",
      ],
      { cwd: dir, stdio: ["ignore", logFd, logFd], env: allocator.env },
    );
    children.push(child);
    const exited = new Promise<number>((res) =>
      child.once("exit", (code, signal) =>
        res(code ?? (signal === "SIGTERM" || signal === "SIGINT" ? 0 : 1)),
      ),
    );
    exits.push(exited);
    // A long ledger takes a while to replay: show the recovering node's progress.
    const progress =
      i === 0 && recover !== undefined ? showReplayProgress(join(dir, "out")) : undefined;
    const address = await waitForNode(dir, i, join(common, "service_cert.pem"), exited);
    if (progress !== undefined) clearInterval(progress);
    if (address === undefined) {
      process.stderr.write(`ccf-ts sandbox: node ${i} did not start; see ${join(dir, "out")}\n`);
      return undefined;
    }
    addresses.push(address);
    void exited.then((code) => {
      process.stdout.write(`node ${i} exited (${code})\n`);
    });
    return address;
  };
  const fail = async (): Promise<number> => {
    stopAll();
    await Promise.all(exits);
    return 1;
  };
  // A recovered service opens before other nodes join it (they are then trusted by governance).
  for (let i = 0; i < (recover === undefined ? opts.nodes : 1); i++) {
    if ((await startNode(i)) === undefined) return fail();
  }
  try {
    if (recover === undefined) {
      await setUpThroughGovernance(
        `https://${addresses[0]}`,
        common,
        bundle,
        opts.verbose === true,
      );
    } else {
      await recoverThroughGovernance(`https://${addresses[0]}`, common, recover, bundle);
      // Nodes join from the recovered service's first snapshot (its ledger may begin with one).
      if (opts.nodes > 1) await waitForSnapshot(`https://${addresses[0]}`, common);
      for (let i = 1; i < opts.nodes; i++) {
        const joined = startNode(i);
        await trustPendingNode(`https://${addresses[0]}`, common);
        if ((await joined) === undefined) return fail();
      }
    }
  } catch (e) {
    process.stderr.write(
      `ccf-ts sandbox: setting up the service through governance failed: ${
        e instanceof Error ? e.message : String(e)
      }\n`,
    );
    stopAll();
    await Promise.all(exits);
    return 1;
  }
  const nodesWord = opts.nodes === 1 ? "node" : "nodes";
  process.stdout.write(
    [
      `Started a network of ${opts.nodes} ${nodesWord} in ${workspace}, app ${bundle}`,
      ...addresses.map(
        (a, i) =>
          `  node ${i}: https://${a} (log: ${join(workspace, `sandbox_${i}`, "out")}, ledger: ${join(workspace, `sandbox_${i}`, `${i}.ledger`)})`,
      ),
      `  memory allocator: ${describeAllocator(allocator)}`,
      `Identities and the service certificate are in ${common}:`,
      ...identityListing(common),
      `Try: curl --cacert ${join(common, "service_cert.pem")} https://${addresses[0]}/node/network`,
      "Press Ctrl+C to stop.",
      "",
    ].join("\n"),
  );
  // One node dying does not stop the others (the sandbox reports it); all gone, the sandbox ends.
  const codes = await Promise.all(exits);
  return codes.every((c) => c === 0) ? 0 : 1;
}

function stopChild(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
}

/** Waits until node 0 reports its address and answers as part of the network. */
/**
 * The primary RPC address in a node's rpc_addresses file, or undefined while the file cannot be
 * read as one (a node of another build might still be writing it).
 */
function primaryAddress(text: string): string | undefined {
  try {
    const address = (JSON.parse(text) as Record<string, unknown> | null)?.primary_rpc_interface;
    return typeof address === "string" ? address : undefined;
  } catch {
    return undefined;
  }
}

async function waitForNode(
  dir: string,
  index: number,
  serviceCert: string,
  exited: Promise<number>,
): Promise<string | undefined> {
  let done = false;
  void exited.then(() => {
    done = true;
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  const addressFile = join(dir, `${index}.rpc_addresses.json`);
  while (!done && Date.now() < deadline) {
    if (existsSync(addressFile) && existsSync(serviceCert)) {
      const address = primaryAddress(readFileSync(addressFile, "utf8"));
      if (
        address !== undefined &&
        (await isPartOfNetwork(address, readFileSync(serviceCert, "utf8")))
      )
        return address;
    }
    await sleep(100);
  }
  return undefined;
}

async function isPartOfNetwork(address: string, ca: string): Promise<boolean> {
  const agent = new Agent({ connect: { ca } });
  try {
    const res = await request(`https://${address}/node/state`, { dispatcher: agent });
    const body = (await res.body.json()) as { state?: string };
    return body.state === "PartOfNetwork" || body.state === "PartOfPublicNetwork";
  } catch {
    return false;
  } finally {
    await agent.close();
  }
}

const MEMBERS = [0, 1, 2];

/**
 * What CCF's sandbox does after the first node starts, as signed governance requests: each member
 * acks the state digest (Accepted -> Active); member0 proposes set_user for every user, set_js_app
 * and transition_service_to_open; members vote yes until it is Accepted.
 */
async function setUpThroughGovernance(
  url: string,
  common: string,
  bundlePath: string,
  verbose: boolean,
): Promise<void> {
  const serviceCert = readFileSync(join(common, "service_cert.pem"), "utf8");
  const clients = MEMBERS.map(
    (i) =>
      new GovClient(url, serviceCert, {
        certPem: readFileSync(join(common, `member${i}_cert.pem`), "utf8"),
        keyPem: readFileSync(join(common, `member${i}_privk.pem`), "utf8"),
      }),
  );
  const steps = join(common, "governance");
  mkdirSync(steps, { recursive: true });
  const show = (what: string, command: string) => {
    if (verbose) process.stdout.write(`# ${what}\n${command}\n`);
  };
  try {
    for (const [i, c] of clients.entries()) {
      const base = `/gov/members/state-digests/${c.memberId}`;
      show(
        `member${i}: fetch the state digest to acknowledge`,
        coseCurl(
          url,
          i,
          "state_digest",
          "/dev/null",
          `${base}:update`,
          undefined,
          `member${i}_digest.json`,
        ),
      );
      show(
        `member${i}: acknowledge it (Accepted -> Active)`,
        coseCurl(url, i, "ack", `member${i}_digest.json`, `${base}:ack`),
      );
      await retryWhileNoSignature(() => c.activate());
    }
    const proposal = {
      actions: [
        ...[0, 1, 2].map((i) => ({
          name: "set_user",
          args: { cert: readFileSync(join(common, `user${i}_cert.pem`), "utf8") },
        })),
        { name: "set_js_app", args: { bundle: loadBundle(bundlePath) } },
        { name: "transition_service_to_open", args: { next_service_identity: serviceCert } },
      ],
    };
    const proposalFile = join(steps, "open_service.json");
    writeFileSync(proposalFile, `${JSON.stringify(proposal, null, 2)}\n`);
    show(
      "member0: propose the users, the app and opening the service",
      coseCurl(url, 0, "proposal", "governance/open_service.json", "/gov/members/proposals:create"),
    );
    const [proposer] = clients as [GovClient];
    let state = await proposer.propose(proposal);
    const ballotFile = join(steps, "vote_yes.json");
    writeFileSync(
      ballotFile,
      `${JSON.stringify({ ballot: "export function vote(proposal, proposerId) { return true; }" })}\n`,
    );
    for (const [i, c] of clients.entries()) {
      if (state.proposalState !== "Open") break;
      show(
        `member${i}: vote yes`,
        coseCurl(
          url,
          i,
          "ballot",
          "governance/vote_yes.json",
          `/gov/members/proposals/${state.proposalId}/ballots/${c.memberId}:submit`,
          state.proposalId,
        ),
      );
      state = await c.vote(
        state.proposalId,
        "export function vote(proposal, proposerId) { return true; }",
      );
    }
    if (state.proposalState !== "Accepted") {
      throw new CcfError(
        "ProposalNotAccepted",
        `the set-up proposal is ${state.proposalState}${
          state.failure === undefined ? "" : `: ${state.failure.reason}`
        }`,
      );
    }
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/** Until the first signature is written, a member has no state digest to acknowledge. */
async function retryWhileNoSignature(step: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    try {
      return await step();
    } catch (e) {
      const noSignatureYet =
        e instanceof GovRequestError && /no signatures to ack yet/.test(e.message);
      if (!noSignatureYet || Date.now() > deadline) throw e;
      await sleep(100);
    }
  }
}

/** The shell command a person would run from sandbox_common for one signed governance request. */
function coseCurl(
  url: string,
  member: number,
  msgType: string,
  content: string,
  path: string,
  proposalId?: string,
  output?: string,
): string {
  return [
    `node ${join(PACKAGE_ROOT, "bin/ccf-ts.js")} cose-sign --content ${content}`,
    ` --signing-cert member${member}_cert.pem`,
    ` --signing-key member${member}_privk.pem --ccf-gov-msg-type ${msgType}`,
    " --ccf-gov-msg-created_at $(date -Is)",
    proposalId === undefined ? "" : ` --ccf-gov-msg-proposal_id ${proposalId}`,
    ` | curl -s "${url}${path}?api-version=${GOV_API_VERSION}" --cacert service_cert.pem`,
    " -H 'content-type: application/cose' --data-binary @-",
    output === undefined ? "" : ` -o ${output}`,
  ].join("");
}

/** The --recover folders, checked before the workspace is touched. */
function checkRecoverDirs(
  r: { ledgerDir: string; commonDir: string; snapshotsDir?: string },
  workspace: string,
): { ledgerDir: string; commonDir: string; snapshotsDir?: string } {
  const out: { ledgerDir: string; commonDir: string; snapshotsDir?: string } = {
    ledgerDir: resolve(r.ledgerDir),
    commonDir: resolve(r.commonDir),
  };
  if (r.snapshotsDir !== undefined) out.snapshotsDir = resolve(r.snapshotsDir);
  for (const [flag, dir] of [
    ["--ledger-dir", out.ledgerDir],
    ["--common-dir", out.commonDir],
    ...(out.snapshotsDir === undefined ? [] : [["--snapshots-dir", out.snapshotsDir]]),
  ] as Array<[string, string]>) {
    if (!existsSync(dir)) throw new CcfError("InvalidArgument", `${flag} ${dir}: no such folder`);
    if (dir === workspace || dir.startsWith(`${workspace}/`)) {
      throw new CcfError(
        "InvalidArgument",
        `${flag} ${dir} is inside --workspace ${workspace}, which the sandbox clears: use another workspace`,
      );
    }
  }
  if (!existsSync(join(out.commonDir, "service_cert.pem"))) {
    throw new CcfError(
      "InvalidArgument",
      `--common-dir ${out.commonDir} holds no service_cert.pem (the previous service identity)`,
    );
  }
  return out;
}

/** Member and user identities of the old workspace (not its service certificate). */
function copyIdentities(from: string, to: string): void {
  for (const f of readdirSync(from)) {
    if (/^(member|user)\d+_(cert|privk|enc_pubk|enc_privk)\.pem$/.test(f)) {
      copyFileSync(join(from, f), join(to, f));
    }
  }
}

function memberNames(common: string): string[] {
  return readdirSync(common)
    .map((f) => /^(member\d+)_cert\.pem$/.exec(f)?.[1])
    .filter((n): n is string => n !== undefined)
    .sort();
}

function memberClient(url: string, common: string, name: string, ca: string): GovClient {
  return new GovClient(url, ca, {
    certPem: readFileSync(join(common, `${name}_cert.pem`), "utf8"),
    keyPem: readFileSync(join(common, `${name}_privk.pem`), "utf8"),
  });
}

/** Proposes as the first member that may, and votes yes with each member until it is decided. */
async function proposeAndAccept(clients: GovClient[], proposal: unknown): Promise<void> {
  let state: Awaited<ReturnType<GovClient["propose"]>> | undefined;
  let lastError: unknown;
  for (const c of clients) {
    try {
      state = await c.propose(proposal);
      break;
    } catch (e) {
      lastError = e;
    }
  }
  if (state === undefined) throw lastError;
  for (const c of clients) {
    if (state.proposalState !== "Open") break;
    try {
      state = await c.vote(
        state.proposalId,
        "export function vote(proposal, proposerId) { return true; }",
      );
    } catch {
      // A member that may not vote (not active) is skipped.
    }
  }
  if (state.proposalState !== "Accepted") {
    throw new CcfError(
      "ProposalNotAccepted",
      `proposal ${state.proposalId} is ${state.proposalState}${
        state.failure === undefined ? "" : `: ${state.failure.reason}`
      }`,
    );
  }
}

async function serviceStatus(url: string, ca: string): Promise<string | undefined> {
  const agent = new Agent({ connect: { ca } });
  try {
    const res = await request(`${url}/node/network`, { dispatcher: agent });
    return ((await res.body.json()) as { service_status?: string }).service_status;
  } catch {
    return undefined;
  } finally {
    await agent.close();
  }
}

/**
 * CCF's recovery steps, as its members would run them: open the recovered service with the
 * previous identity (WaitingForRecoveryShares), then each recovery member fetches, decrypts and
 * submits its share until the threshold starts the private recovery; then wait until it is Open.
 * Users whose certificates expired are replaced, and the app deployed if the service has none.
 */
async function recoverThroughGovernance(
  url: string,
  common: string,
  recover: { commonDir: string },
  bundlePath: string,
): Promise<void> {
  const serviceCert = readFileSync(join(common, "service_cert.pem"), "utf8");
  const previous = readFileSync(join(recover.commonDir, "service_cert.pem"), "utf8");
  const names = memberNames(common);
  const clients = names.map((n) => memberClient(url, common, n, serviceCert));
  try {
    process.stdout.write("Recovery: public ledger replayed; opening for recovery shares\n");
    await proposeAndAccept(clients, {
      actions: [
        {
          name: "transition_service_to_open",
          args: { previous_service_identity: previous, next_service_identity: serviceCert },
        },
      ],
    });
    let started = false;
    for (const [i, c] of clients.entries()) {
      const key = join(common, `${names[i]}_enc_privk.pem`);
      if (!existsSync(key)) continue;
      let answer: Awaited<ReturnType<GovClient["submitShare"]>>;
      try {
        answer = await c.submitShare(readFileSync(key, "utf8"));
      } catch (e) {
        process.stdout.write(`Recovery: ${names[i]} could not submit a share (${String(e)})\n`);
        continue;
      }
      process.stdout.write(`Recovery: ${names[i]}: ${answer.message.split("\n")[0]}\n`);
      if (answer.message.includes("End of recovery procedure initiated")) {
        started = true;
        break;
      }
    }
    if (!started)
      throw new CcfError("RecoveryFailed", "the members' shares did not reach the threshold");
    const deadline = Date.now() + START_TIMEOUT_MS;
    while ((await serviceStatus(url, serviceCert)) !== "Open") {
      if (Date.now() > deadline) throw new CcfError("RecoveryFailed", "the service did not open");
      await sleep(100);
    }
    process.stdout.write("Recovery: private ledger recovered, service Open\n");
    const actions: unknown[] = [];
    for (const f of readdirSync(common)) {
      const m = /^(user\d+)_cert\.pem$/.exec(f);
      if (m === null) continue;
      const cert = readFileSync(join(common, f), "utf8");
      if (new Date(new X509Certificate(cert).validTo).getTime() > Date.now()) continue;
      // An expired user cannot connect (TLS checks validity): a fresh identity replaces it
      // (keygen refuses to overwrite, so the expired copies go first).
      rmSync(join(common, f), { force: true });
      rmSync(join(common, `${m[1]}_privk.pem`), { force: true });
      await keygen({ name: m[1], dir: common, validityDays: 90 });
      actions.push({
        name: "set_user",
        args: { cert: readFileSync(join(common, f), "utf8") },
      });
    }
    if (!existsSync(join(common, "user0_cert.pem"))) {
      await keygen({ name: "user0", dir: common, validityDays: 90 });
      actions.push({
        name: "set_user",
        args: { cert: readFileSync(join(common, "user0_cert.pem"), "utf8") },
      });
    }
    if (!(await hasApp(url, serviceCert))) {
      actions.push({ name: "set_js_app", args: { bundle: loadBundle(bundlePath) } });
    }
    if (actions.length > 0) await proposeAndAccept(clients, { actions });
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

async function hasApp(url: string, ca: string): Promise<boolean> {
  const agent = new Agent({ connect: { ca } });
  try {
    const res = await request(`${url}/gov/service/javascript-app?api-version=${GOV_API_VERSION}`, {
      dispatcher: agent,
    });
    const body = (await res.body.json()) as { endpoints?: Record<string, unknown> };
    return Object.keys(body.endpoints ?? {}).length > 0;
  } catch {
    return false;
  } finally {
    await agent.close();
  }
}

/** A node that joined the open service is Pending: members trust it. */
async function trustPendingNode(url: string, common: string): Promise<void> {
  const ca = readFileSync(join(common, "service_cert.pem"), "utf8");
  const agent = new Agent({ connect: { ca } });
  const deadline = Date.now() + START_TIMEOUT_MS;
  let pending: string | undefined;
  try {
    while (pending === undefined) {
      if (Date.now() > deadline) throw new CcfError("JoinFailed", "no node asked to join");
      const res = await request(`${url}/node/network/nodes`, { dispatcher: agent });
      const body = (await res.body.json()) as {
        nodes?: Array<{ node_id: string; status: string }>;
      };
      pending = body.nodes?.find((n) => n.status === "Pending")?.node_id;
      if (pending === undefined) await sleep(100);
    }
  } finally {
    await agent.close();
  }
  const clients = memberNames(common).map((n) => memberClient(url, common, n, ca));
  try {
    await proposeAndAccept(clients, {
      actions: [
        {
          name: "transition_node_to_trusted",
          args: {
            node_id: pending,
            // CCF's X.509 time format: YYYYMMDDhhmmssZ.
            valid_from: `${new Date().toISOString().replace(/[-:T]/g, "").slice(0, 14)}Z`,
          },
        },
      ],
    });
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/** Until the node serves a committed snapshot (HEAD /node/snapshot redirects to it). */
async function waitForSnapshot(url: string, common: string): Promise<void> {
  const agent = new Agent({
    connect: { ca: readFileSync(join(common, "service_cert.pem"), "utf8") },
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  try {
    for (;;) {
      const res = await request(`${url}/node/snapshot`, { dispatcher: agent, method: "HEAD" });
      await res.body.dump();
      if (res.statusCode === 308) return;
      if (Date.now() > deadline) throw new CcfError("RecoveryFailed", "no snapshot was written");
      await sleep(100);
    }
  } finally {
    await agent.close();
  }
}

/** Prints the replay progress lines a recovering node logs, as they come. */
function showReplayProgress(logFile: string): NodeJS.Timeout {
  let printed = 0;
  return setInterval(() => {
    let lines: string[];
    try {
      lines = readFileSync(logFile, "utf8").split("\n");
    } catch {
      return;
    }
    const progress = lines.filter((l) => l.includes("recovery: public replay progress"));
    for (const l of progress.slice(printed)) {
      const seqno = /"seqno":(\d+)/.exec(l)?.[1];
      if (seqno !== undefined)
        process.stdout.write(`Recovery: public ledger replayed up to ${seqno}\n`);
    }
    printed = progress.length;
  }, 500);
}

/** The identity files of a workspace, grouped as CCF's sandbox prints them. */
function identityListing(common: string): string[] {
  const files = readdirSync(common);
  const indices = (prefix: string, suffix: string) =>
    files
      .map((f) => new RegExp(`^${prefix}(\\d+)${suffix}$`).exec(f)?.[1])
      .filter((x) => x !== undefined)
      .sort();
  const members = indices("member", "_cert\\.pem");
  const encrypted = indices("member", "_enc_pubk\\.pem");
  const users = indices("user", "_cert\\.pem");
  const group = (xs: string[]) => (xs.length === 1 ? xs[0] : `{${xs.join(",")}}`);
  const parts = ["service_cert.pem"];
  if (members.length > 0) parts.push(`member${group(members)}_{cert,privk}.pem`);
  if (encrypted.length > 0) parts.push(`member${group(encrypted)}_enc_{pubk,privk}.pem`);
  if (users.length > 0) parts.push(`user${group(users)}_{cert,privk}.pem`);
  return [`  ${parts.join(", ")}`];
}
