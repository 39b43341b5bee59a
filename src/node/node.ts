// One ccf-ts node process: from a validated config, it creates its identity, starts the service
// (genesis), opens its ledger, serves its RPC interfaces and signs on a timer. Commit comes from
// consensus (CCF's Raft, through the ConsensusHost): a signature on a majority of disks. Until
// joining exists a service has one node, its own majority.

import { createPublicKey } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import {
  createCertificateSigningRequest,
  createEndorsedCertificate,
  createServiceCertificate,
  endorseCertificateSigningRequest,
  certificateInfo,
  renewServiceCertificate,
  verifyCertificateIssued,
  EcKeyPair,
  systemRng,
} from "../crypto/index.js";
import {
  commonEndpoints,
  type Endpoint,
  EndpointMetrics,
  type EndpointRequest,
  type EndpointResponse,
  govMemberWriteEndpoints,
  govReadEndpoints,
  historicalRetry,
  type NodeContext,
  type NodeStartupState,
  nodeEndpoints,
  nodeEntries,
  parseTxId,
  type Quote,
  type SessionMetrics,
  TX_ID_HEADER,
  type TxStatus,
  txIdString,
} from "../endpoints/index.js";
import {
  encodeMessage,
  type LocalView,
  type LogEntry,
  type RaftOptions,
  NotPrimaryError,
  Raft,
  TooManyPendingTransactionsError,
  NodeTransport,
  txStatus as consensusTxStatus,
  viewAt,
} from "../consensus/index.js";
import { CcfError, ConflictError, HttpError, HttpErrors } from "../errors.js";
import {
  applyRefreshedJwtKeys,
  ConstitutionRunner,
  JwtKeysError,
  Proposals,
  removeJwtPublicSigningKeys,
  setJwtPublicSigningKeys,
} from "../gov/index.js";
import {
  decodeValue,
  idKey,
  keyToString,
  MapsWatch,
  SINGLETON_KEY,
  Store,
  Tables,
  type Tx,
  type WriteSet,
} from "../kv/index.js";
import {
  type CommitResult,
  decodeEntry,
  FileLedger,
  type LedgerSecret,
  LedgerReplica,
  MAX_ATTEMPTS,
  LedgerSecrets,
  systemClock,
  type TxId,
  TxPipeline,
} from "../ledger/index.js";
import { MerkleTree, type Receipt } from "../merkle/index.js";
import { buildCoseReceipt } from "../audit/index.js";
import { type AppEndpoint, type AppResult, JsApp, readAppEndpoints } from "../js/index.js";
import { Forwarder, forwardingHook, NODE_CHANNEL, type NodeRole } from "../rpc/forwarding.js";
import {
  authenticate,
  dispatch,
  FrontendPool,
  Router,
  type RpcFrontend,
  RpcServer,
  type RpcServerOptions,
} from "../rpc/index.js";
import { type NodeConfig, splitAddress, startupConfigOf } from "./config.js";
import { loadBundle } from "./bundle.js";
import { ConsensusHost } from "./consensus-host.js";
import { writeGenesis } from "./genesis.js";
import { admitJoiner, requestJoin, secretsFrom, serviceKeyFrom } from "./join.js";
import { nodeGovEffects } from "./gov-effects.js";
import { renewedCertificates } from "./certificates.js";
import { JwtKeyRefresher } from "./jwt-refresh.js";
import { HistoricalState, HistoricalStates } from "./historical.js";
import {
  deleteRetiredNodeEndpoint,
  recordRetirements,
  retirementPhase,
  type RetirementCandidate,
  retirementCandidates,
  retirementsIn,
} from "./retirement.js";
import { createNodeIdentity, type NodeIdentity } from "./identity.js";
import { readConfigFile, writeFileAtomically } from "./files.js";
import { PACKAGE_ROOT, VERSION } from "./version.js";
import { encryptedShareOf, issueRecoveryShares } from "./share-manager.js";
import {
  broadcastLedgerSecrets,
  clearSubmittedShares,
  findRecoverySnapshot,
  gatherLedgerChunks,
  ledgerSecretsFor,
  type PublicRecovery,
  recordSubmittedShare,
  replayPrivateLedger,
  replayPublicLedger,
  secretsFromSubmittedShares,
  writeEndOfRecovery,
  writeRecoveryGenesis,
  writeSelfEndorsement,
} from "./recovery.js";
import { govRecoveryEndpoints } from "../endpoints/gov-recovery.js";
import { FORWARDED_INTERFACE, NodeMetrics } from "../endpoints/prometheus.js";
import { consoleEndpoints } from "../endpoints/console.js";
import { snapshotEndpoints } from "../endpoints/snapshot.js";
import { type PreparedSnapshot, Snapshotter } from "./snapshotter.js";
import {
  fetchLatestSnapshot,
  loadSnapshot,
  installLoadedSnapshot,
  viewStartsOf,
} from "./snapshot-fetch.js";
import { SNAPSHOT_EVIDENCE_KEY } from "../ledger/index.js";

const SINGLETON_KEY_STRING = keyToString(SINGLETON_KEY);

/** A recovering service's state on its first node, from public replay to the end of recovery. */
interface RecoveryState {
  replay: PublicRecovery;
  previousServiceCert: string;
  /** The recovered service's own secret (from L+1). */
  secret: LedgerSecret;
  /** Set once shares reached the threshold: the old secrets, oldest first. */
  recovered?: LedgerSecret[];
  privateReplay?: Promise<void>;
}

const FIRST_VIEW = 2;
/** Tables whose change means the app's endpoints must be read again. */
const APP_TABLES = [
  Tables.ENDPOINTS,
  Tables.MODULES,
  Tables.JS_RUNTIME_OPTIONS,
  Tables.INTERPRETER_FLUSH,
];
/** The fields of a nodes.info record this file reads. */
interface NodeRecord {
  status?: string;
  retired_committed?: boolean;
  node_to_node_interface?: { published_address?: string };
  rpc_interfaces?: Record<string, { published_address?: string }>;
}

/** Beyond CCF: a write with this header set (`true`, `1`) is answered once committed. */
const WAIT_FOR_COMMIT_HEADER = "x-ccf-ts-wait-for-commit";
// Below the forwarding timeout, so that a forwarded write gets this answer rather than a timeout.
const WAIT_FOR_COMMIT_TIMEOUT_MS = 2500;

function wantsCommit(value: string | undefined): boolean {
  return value !== undefined && value !== "" && value !== "false" && value !== "0";
}

/** How long a backup waits for the primary's answer to a forwarded request, by default. */
const FORWARDING_TIMEOUT_MS = 3000;
/** How long a joining node keeps asking to be admitted before giving up. */
const JOIN_DEADLINE_MS = 10 * 60_000;

interface Interface {
  name: string;
  server: RpcFrontend;
  address: string;
  softCap: number;
  hardCap: number;
}

export class Node implements NodeContext {
  readonly nodeId: string;
  readonly version = { ccf_version: `ccf-ts-${VERSION}`, quickjs_version: "", unsafe: false };
  readonly store = new Store();
  private readonly tree = new MerkleTree();
  private readonly router = new Router();
  private readonly metrics = new EndpointMetrics();
  /** What `/node/metrics/prometheus` serves (see docs/metrics.md). */
  readonly prometheusMetrics: NodeMetrics = new NodeMetrics(this, {
    role: () => this.host?.raft.role,
    peers: () => Object.entries(this.transport?.stats().peers ?? {}),
    transport: () => this.transport?.stats(),
    forwarding: () => this.forwarder.stats(),
    replication: () => {
      const raft = this.host?.raft;
      if (raft?.role !== "Primary") return undefined;
      return { lastIdx: raft.lastIdx, match: raft.matchIndexes() };
    },
    ledger: () => ({
      bytes: this.storage?.appendedBytes ?? 0,
      entries: this.storage?.appendedEntries ?? 0,
    }),
  });
  private readonly interfaces: Interface[] = [];
  /** With `worker_threads` > 0: the processes that run TLS and HTTP for the RPC interfaces. */
  private frontends: FrontendPool | undefined;
  /** Seqno of the last signature this node wrote as primary. */
  private lastSignatureSeqno = 0;
  private nodeState: NodeStartupState = "Initialized";
  private commitSeqno = 0;
  private host!: ConsensusHost;
  private commitWaiters: Array<{ seqno: number; resolve: () => void }> = [];
  private storage!: FileLedger;
  private transport: NodeTransport | undefined;
  /** Carries requests that must run on the primary to it, and runs those forwarded here. */
  private readonly forwarder: Forwarder;
  private serviceCertPem = "";
  /** The service-endorsed certificate this node serves and signs with (renewed by governance). */
  private nodeCertPem = "";
  private csrPem = "";
  private serviceKey!: EcKeyPair;
  private secrets!: LedgerSecrets;
  private peersKey = "";
  private lastKeepAlive = 0;
  /** The app's endpoints are read again when these tables change (checked every tick). */
  private readonly appTablesWatch = new MapsWatch(this.store, APP_TABLES);
  /** The trusted set of the last configuration proposed (sorted ids, comma-separated). */
  private configurationKey = "";
  private app!: JsApp;
  /** Committed transactions read back from the ledger: receipts and historical queries. */
  private readonly historical: HistoricalStates;
  private ticker: NodeJS.Timeout | undefined;
  private jwtRefresher: JwtKeyRefresher | undefined;
  private stopped = false;

  private constructor(
    private readonly config: NodeConfig,
    private readonly identity: NodeIdentity,
    private readonly log: Logger,
  ) {
    this.nodeId = identity.nodeId;
    this.historical = new HistoricalStates({
      storage: () => this.storage,
      secrets: () => this.secrets,
      tree: this.tree,
      commitSeqno: () => this.commitSeqno,
      signatureAtOrAfter: (seqno) => this.signatureAtOrAfter(seqno),
      now: () => Date.now(),
      onError: (err, seqno) =>
        this.log.error({ err, seqno }, "historical entry could not be read from the ledger"),
      serviceEndorsements: (cert) => this.serviceEndorsementsFor(cert),
    });
    const role = () => (this.host?.raft.role === "Primary" ? "primary" : "backup");
    const forwardedObserver = this.prometheusMetrics.httpObserver(FORWARDED_INTERFACE);
    // A request forwarded here runs through the same checks (a backup refuses to forward it on).
    const forwardedHook = forwardingHook({
      role,
      primary: () => this.host?.raft.leader,
      view: () => this.host?.raft.term,
    });
    this.forwarder = new Forwarder({
      selfId: this.nodeId,
      send: (to, bytes) => this.transport?.send(to, bytes),
      primary: () => this.host?.raft.leader,
      view: () => this.host?.raft.term,
      handle: (req) =>
        dispatch(
          this.router,
          req,
          (err, r) => this.log.error({ err, path: r.path }, "forwarded request failed"),
          { beforeHandler: forwardedHook, observe: forwardedObserver },
        ),
      timeoutMs: FORWARDING_TIMEOUT_MS,
    });
  }

  /** The writer: this node's pipeline while it is primary. */
  private get pipeline(): TxPipeline {
    const p = this.host.pipeline;
    if (p === undefined) {
      throw HttpErrors.NodeCannotHandleRequest("This node is not the primary and cannot write");
    }
    return p;
  }

  /** Starts a new service (command type Start) with this node as its first, trusted node. */
  static async start(config: NodeConfig, log: Logger): Promise<Node> {
    const now = new Date();
    const identity = await createNodeIdentity({
      curve: config.node_certificate.curve_id === "Secp256R1" ? "secp256r1" : "secp384r1",
      subjectName: config.node_certificate.subject_name,
      subjectAltNames: config.node_certificate.subject_alt_names,
      validityDays: config.node_certificate.initial_validity_days,
      version: VERSION,
      now,
      ...(config.attestation.virtual_measurement === undefined
        ? {}
        : { measurement: config.attestation.virtual_measurement }),
    });
    const node = new Node(config, identity, log);
    try {
      mkdirSync(config.snapshots.directory, { recursive: true });
      if (config.command.type === "Join") await node.joinService(now);
      else if (config.command.type === "Recover") await node.recoverService(now);
      else await node.startService(now);
    } catch (e) {
      // Whatever the failed start opened (listeners, the node-to-node worker, timers, the
      // ledger) would keep the process alive after the error is reported.
      await node.abandon();
      throw e;
    }
    return node;
  }

  /** Closes what a start that failed part-way opened; never throws. */
  private async abandon(): Promise<void> {
    this.stopped = true;
    // Best effort: the start's own error is the one reported.
    await this.close(false, async (step) => {
      try {
        await step();
      } catch {
        // carry on with the next resource
      }
    });
  }

  /**
   * Closes the node's resources in order (timers, listeners, forwarding, node-to-node transport,
   * consensus, once its pending work has settled when `settle`, ledger), each through `run`.
   * Those a failed start never opened are skipped.
   */
  private async close(settle: boolean, run: (step: () => unknown) => Promise<void>): Promise<void> {
    if (this.ticker !== undefined) clearInterval(this.ticker);
    await run(() => this.jwtRefresher?.stop());
    await Promise.all(this.interfaces.map((i) => run(() => i.server.close())));
    await run(() => this.frontends?.stop());
    await run(() => this.forwarder.close());
    await run(() => this.transport?.close());
    const host = this.host as ConsensusHost | undefined;
    if (settle) await run(() => host?.settled());
    await run(() => host?.stop());
    await run(() => (this.storage as FileLedger | undefined)?.close());
  }

  /**
   * Joins an existing service (command type Join): serves with its self-signed certificate, asks
   * the target node to admit it until it is trusted, then takes the service identity, ledger
   * secrets and its endorsed certificate from the answer and catches up through replication.
   */
  private async joinService(now: Date): Promise<void> {
    const config = this.config;
    const join = config.command.join;
    if (join === undefined) throw new CcfError("InvalidConfig", "command.join is required");
    const serviceCertPem = readConfigFile(
      config.command.service_certificate_file,
      "command.service_certificate_file",
    ) as string;
    this.openLedger(true);
    const snapshotPath = await this.fetchStartupSnapshot(join, serviceCertPem);
    await this.createCsr();
    this.createApp();
    const n2nAddress = await this.listenAll(this.identity.selfSignedCert, serviceCertPem);
    this.writeAddressFiles(n2nAddress);
    this.nodeState = "Pending";
    // Until it is part of the network a joining node answers only where it stands.
    this.router.setEndpoints("node", [
      {
        method: "GET",
        path: "/node/state",
        handler: () => ({
          status: 200,
          body: {
            node_id: this.nodeId,
            state: this.nodeState,
            last_signed_seqno: 0,
            startup_seqno: 0,
            stop_notice: false,
          },
        }),
      },
    ]);
    const answer = await requestJoin({
      target: join.target_rpc_address,
      serviceCertPem,
      body: {
        node_info: this.nodeInfoRecord(n2nAddress, "Pending"),
        subject_name: this.identity.subjectName,
        subject_alt_names: config.node_certificate.subject_alt_names,
      },
      retryMs: Math.max(100, join.retry_timeout),
      deadline: Date.now() + JOIN_DEADLINE_MS,
      stopped: () => this.stopped,
      onPending: () => this.log.info("join: pending until governance trusts this node"),
    });
    const info = answer.network_info;
    const secrets = new LedgerSecrets(secretsFrom(info));
    const endorsedCert = info.endorsed_certificate;
    const start =
      snapshotPath === undefined
        ? undefined
        : this.startFromSnapshot(snapshotPath, info.service_certificate, secrets);
    this.createHost(secrets, serviceKeyFrom(info), endorsedCert, false, undefined, start);
    this.serviceCertPem = info.service_certificate;
    for (const i of this.interfaces) {
      i.server.setCertificate(this.identity.key.privateKeyPem, endorsedCert);
    }
    this.transport?.setIdentity({
      certPem: endorsedCert,
      keyPem: this.identity.key.privateKeyPem,
      serviceCertPem: info.service_certificate,
    });
    this.seedPeers = new Map(Object.entries(info.nodes));
    this.peersWatch.invalidate();
    this.transport?.setPeers(this.seedPeers);
    this.log.info({ node_id: this.nodeId, now: now.toISOString() }, "joined the service");
    this.goLive(info.service_certificate, n2nAddress);
  }

  /**
   * CCF's joiner asks its target for the latest committed snapshot (command.join.
   * fetch_recent_snapshot) so that it replicates only what follows it. Failing that, it joins
   * from the start of the ledger.
   */
  private async fetchStartupSnapshot(
    join: NonNullable<NodeConfig["command"]["join"]>,
    serviceCertPem: string,
  ): Promise<string | undefined> {
    if (!join.fetch_recent_snapshot) return undefined;
    for (let attempt = 1; attempt <= join.fetch_snapshot_max_attempts; attempt++) {
      try {
        const path = await fetchLatestSnapshot({
          target: join.target_rpc_address,
          serviceCertPem,
          destDir: this.config.snapshots.directory,
          maxSize: join.fetch_snapshot_max_size,
        });
        if (path !== undefined) this.log.info({ path }, "join: fetched a snapshot");
        return path;
      } catch (err) {
        this.log.warn({ err, attempt }, "join: the snapshot could not be fetched");
        await new Promise((r) => setTimeout(r, join.fetch_snapshot_retry_interval));
      }
    }
    return undefined;
  }

  /**
   * Puts the store and the tree in a verified snapshot's state (its receipt checked against the
   * service certificate); consensus then starts after it and the ledger holds only what follows.
   */
  private startFromSnapshot(
    path: string,
    serviceCertPem: string,
    secrets: LedgerSecrets,
  ): NonNullable<RaftOptions["start"]> {
    const loaded = loadSnapshot(path, serviceCertPem, secrets);
    const parsed = loaded.parsed;
    installLoadedSnapshot(loaded, this.store, this.tree);
    this.storage.startAfter(loaded.seqno);
    const views = viewStartsOf(parsed.viewHistory, loaded.seqno);
    const term = views.at(-1)?.view ?? 2;
    this.commitSeqno = loaded.seqno;
    this.lastSignatureSeqno = loaded.seqno;
    this.startupSeqnoValue = loaded.seqno;
    this.log.info({ seqno: loaded.seqno, path }, "join: starting from the snapshot");
    return {
      idx: loaded.seqno,
      term,
      views,
      configuration: this.trustedNodes(),
    };
  }

  private startupSeqnoValue = 0;

  /** The CSR in this node's nodes.info record, for governance to endorse (renewals, trust). */
  private async createCsr(): Promise<void> {
    this.csrPem = await createCertificateSigningRequest(this.identity.key, {
      subjectName: this.identity.subjectName,
      sans: this.identity.sans,
    });
  }

  /** Opens the ledger directory, which must be empty: a node identity never restarts. */
  private openLedger(joining: boolean): void {
    const config = this.config;
    this.storage = FileLedger.open(config.ledger.directory, {
      chunkSize: config.ledger.chunk_size,
      onFsync: (seconds) => this.prometheusMetrics.fsync(seconds),
    });
    if (this.storage.lastSeqno !== 0) {
      throw new CcfError(
        "InvalidConfig",
        `ledger.directory ${config.ledger.directory} already holds a ledger: a ${
          joining ? "joining node" : "new service"
        } needs an empty one`,
      );
    }
  }

  private async startService(now: Date): Promise<void> {
    const config = this.config;
    const start = config.command.start;
    if (start === undefined) throw new CcfError("InvalidConfig", "command.start is required");
    const { serviceKey, serviceCert, endorsedCert } = await this.newServiceIdentity(
      now,
      start.service_subject_name,
      start.initial_service_certificate_validity_days,
    );
    this.openLedger(false);
    await this.createCsr();
    this.serviceCertPem = serviceCert;
    const secrets = new LedgerSecrets([{ key: Buffer.from(systemRng.bytes(32)), version: 1 }]);
    this.createHost(secrets, serviceKey, endorsedCert, true);
    this.host.startAsBootstrapPrimary();
    this.configurationKey = this.nodeId;

    this.createApp();

    const n2nAddress = await this.listenAll(endorsedCert, serviceCert);
    const nodeInfo = this.nodeInfoRecord(n2nAddress, "Trusted");
    const serviceConfig: Record<string, unknown> = {
      maximum_node_certificate_validity_days:
        start.service_configuration.maximum_node_certificate_validity_days,
      maximum_service_certificate_validity_days:
        start.service_configuration.maximum_service_certificate_validity_days,
      // 0 means "every recovery member", as CCF resolves it at genesis.
      recovery_threshold:
        start.service_configuration.recovery_threshold === 0
          ? Math.max(
              1,
              start.members.filter((m) => m.encryption_public_key_file !== undefined).length,
            )
          : start.service_configuration.recovery_threshold,
    };
    if (start.service_configuration.recent_cose_proposals_window_size !== 100) {
      serviceConfig.recent_cose_proposals_window_size =
        start.service_configuration.recent_cose_proposals_window_size;
    }
    const members = start.members.map((m, i) => {
      const field = `command.start.members[${i}]`;
      const member: Parameters<typeof writeGenesis>[1]["members"][number] = {
        cert: readConfigFile(m.certificate_file, `${field}.certificate_file`) as string,
      };
      if (m.encryption_public_key_file !== undefined) {
        member.encryptionPublicKey = readConfigFile(
          m.encryption_public_key_file,
          `${field}.encryption_public_key_file`,
        ) as string;
      }
      if (m.data_json_file !== undefined) {
        member.memberData = readConfigFile(m.data_json_file, `${field}.data_json_file`, true);
      }
      if (m.recovery_role !== undefined) member.recoveryRole = m.recovery_role;
      return member;
    });
    const constitution = start.constitution_files
      .map((f, i) => readConfigFile(f, `command.start.constitution_files[${i}]`) as string)
      .join("\n");
    const serviceData =
      config.service_data_json_file === undefined
        ? undefined
        : readConfigFile(config.service_data_json_file, "service_data_json_file", true);

    const users = (start.users ?? []).map((u, i) => ({
      cert: readConfigFile(
        u.certificate_file,
        `command.start.users[${i}].certificate_file`,
      ) as string,
      ...(u.data_json_file === undefined
        ? {}
        : {
            userData: readConfigFile(
              u.data_json_file,
              `command.start.users[${i}].data_json_file`,
              true,
            ),
          }),
    }));
    const app =
      start.js_app_bundle === undefined
        ? undefined
        : loadBundle(start.js_app_bundle, "command.start.js_app_bundle");
    this.pipeline.execute((tx) =>
      writeGenesis(tx, {
        users,
        ...(app === undefined ? {} : { app }),
        open: start.open_service === true,
        serviceCert,
        ...(serviceData === undefined ? {} : { serviceData }),
        createTxId: `${FIRST_VIEW}.1`,
        members,
        configuration: serviceConfig,
        constitution,
        node: this.firstNodeRecord(nodeInfo, endorsedCert),
      }),
    );
    await this.waitForSeqnoCommitted(this.pipeline.emitSignature().seqno);

    this.goLive(serviceCert, n2nAddress);
  }

  /** A service identity (key, self-signed certificate) and this node's certificate endorsed by it. */
  private async newServiceIdentity(
    now: Date,
    subjectName: string,
    validityDays: number,
  ): Promise<{ serviceKey: EcKeyPair; serviceCert: string; endorsedCert: string }> {
    const serviceKey = EcKeyPair.generate("secp384r1");
    const serviceCert = await createServiceCertificate(serviceKey, {
      subjectName,
      validFrom: now,
      validityDays,
    });
    const endorsedCert = await createEndorsedCertificate({
      subjectPublicKey: this.identity.key.publicKey,
      subjectName: this.identity.subjectName,
      sans: this.identity.sans,
      issuerKey: serviceKey,
      issuerCertPem: serviceCert,
      validFrom: now,
      validityDays: this.config.node_certificate.initial_validity_days,
    });
    return { serviceKey, serviceCert, endorsedCert };
  }

  /** This node as a service's first transaction records it (genesis, recovery genesis). */
  private firstNodeRecord(info: Record<string, unknown>, endorsedCert: string) {
    return {
      id: this.nodeId,
      info,
      endorsedCert,
      hostData: this.identity.hostData,
      measurement: this.identity.measurement,
    };
  }

  /**
   * Disaster recovery (command type Recover): a new service identity over the old ledger. The
   * public domain is replayed and verified, cut at its last signature L, and the recovery genesis
   * (L+1, view V+2) puts the service in Recovering; members then open it for their shares.
   */
  private async recoverService(now: Date): Promise<void> {
    const config = this.config;
    const recover = config.command.recover;
    if (recover === undefined) throw new CcfError("InvalidConfig", "command.recover is required");
    const previousServiceCert = readConfigFile(
      recover.previous_service_identity_file,
      "command.recover.previous_service_identity_file",
    ) as string;
    this.nodeState = "ReadingPublicLedger";
    const copied = gatherLedgerChunks(config.ledger.directory, config.ledger.read_only_directories);
    this.storage = FileLedger.open(config.ledger.directory, {
      chunkSize: config.ledger.chunk_size,
      onFsync: (seconds) => this.prometheusMetrics.fsync(seconds),
    });
    if (this.storage.lastSeqno === 0) {
      throw new CcfError(
        "InvalidConfig",
        `no ledger to recover in ${[config.ledger.directory, ...config.ledger.read_only_directories].join(", ")}`,
      );
    }
    this.log.info(
      { entries: this.storage.lastSeqno, copied_chunks: copied },
      "recovery: replaying the public ledger",
    );
    const snapshot = findRecoverySnapshot(
      [config.snapshots.directory, config.snapshots.read_only_directory].filter(
        (d): d is string => d !== undefined,
      ),
      previousServiceCert,
      (msg, err) => this.log.warn({ err }, `recovery: ${msg}`),
    );
    if (snapshot !== undefined) {
      this.log.info({ seqno: snapshot.seqno, path: snapshot.path }, "recovery: from a snapshot");
    }
    const replay = replayPublicLedger(config.ledger.directory, this.storage, {
      store: this.store,
      tree: this.tree,
      serviceCert: previousServiceCert,
      ...(snapshot === undefined ? {} : { snapshot }),
      onProgress: (seqno) => this.log.info({ seqno }, "recovery: public replay progress"),
    });
    const L = replay.lastSignedSeqno;
    const firstView = replay.lastSignedView + 2;
    this.log.info(
      { last_signed_seqno: L, last_view: replay.lastSignedView },
      "recovery: public ledger replayed",
    );
    // The new identity keeps the previous one's subject, as CCF's does.
    const { serviceKey, serviceCert, endorsedCert } = await this.newServiceIdentity(
      now,
      certificateInfo(previousServiceCert).subject,
      recover.initial_service_certificate_validity_days,
    );
    await this.createCsr();
    this.serviceCertPem = serviceCert;
    const secret: LedgerSecret = { key: Buffer.from(systemRng.bytes(32)), version: L + 1 };
    this.recovery = { replay, previousServiceCert, secret };
    this.lastSignatureSeqno = L;
    this.commitSeqno = L;
    this.createHost(new LedgerSecrets([secret]), serviceKey, endorsedCert, true, {
      base: replay.base,
      entries: replay.entries,
      commitIdx: L,
      firstView,
    });
    this.startupSeqnoValue = replay.base.seqno;
    this.host.startAsBootstrapPrimary();
    this.configurationKey = this.nodeId;
    this.createApp();
    const n2nAddress = await this.listenAll(endorsedCert, serviceCert);
    const nodeInfo = this.nodeInfoRecord(n2nAddress, "Trusted");
    this.pipeline.execute((tx) =>
      writeRecoveryGenesis(tx, {
        serviceCert,
        previousServiceCert,
        replay,
        view: firstView,
        node: this.firstNodeRecord(nodeInfo, endorsedCert),
      }),
    );
    await this.waitForSeqnoCommitted(this.pipeline.emitSignature().seqno);
    this.goLive(serviceCert, n2nAddress);
    this.nodeState = "PartOfPublicNetwork";
    this.log.info({ txid: `${firstView}.${L + 1}` }, "recovery: service Recovering");
  }

  private recovery: RecoveryState | undefined;
  /** nodes.info's version when the primary last compared the trusted nodes with consensus's. */
  private nodesVersionSeen = -1;
  /** Rekeys written by this primary whose secret it has yet to take (see onAppend). */
  private pendingRekeys = 0;

  /**
   * A rekey or a recovery sends ledger secrets to the trusted nodes (encrypted_ledger_secrets):
   * this node takes what is addressed to it. A rekey's secret (version null) encrypts from the
   * next seqno; a recovery's come with their versions.
   */
  private learnLedgerSecrets(seqno: number, writeSet: WriteSet): void {
    const value = writeSet.get(Tables.ENCRYPTED_LEDGER_SECRETS)?.get(SINGLETON_KEY_STRING);
    if (value === undefined || value === null) return;
    let mine: Array<{ key: Buffer; version: number | null }>;
    try {
      mine = ledgerSecretsFor(value, this.nodeId, this.identity.encryptionKey.privateKeyPem);
    } catch (err) {
      this.log.error({ err, seqno }, "ledger secrets sent to this node could not be read");
      return;
    }
    const older: LedgerSecret[] = [];
    for (const s of mine) {
      if (s.version === null) this.secrets.add({ key: s.key, version: seqno + 1 });
      else older.push({ key: s.key, version: s.version });
    }
    if (older.length > 0) this.secrets.addOlder(older);
  }

  /** Governance opened a new service: recovery shares for its secret, its identity endorsed. */
  private onServiceOpen(tx: Tx, createTxId: string): void {
    issueRecoveryShares(tx, systemRng, {
      latest: this.secrets.latest(),
      history: { nextVersion: this.secrets.latest().version },
    });
    writeSelfEndorsement(tx, this.serviceKey, createTxId, Math.floor(Date.now() / 1000));
  }

  private serviceStatusIn(tx: Tx): string | undefined {
    const raw = tx.map(Tables.SERVICE).get(SINGLETON_KEY);
    if (raw === undefined) return undefined;
    return (decodeValue(Tables.SERVICE, raw) as { status?: string }).status;
  }

  /** New shares for the current secret, once the service is open (before, opening issues them). */
  private reshare(tx: Tx): void {
    if (this.serviceStatusIn(tx) !== "Open") return;
    issueRecoveryShares(tx, systemRng, { latest: this.secrets.latest() });
  }

  /**
   * CCF's rekey: a new secret, sent RSA-wrapped to every trusted node, takes over from the next
   * seqno; the current one is chained under it and, once the service is open, shares re-issued.
   */
  private rekey(tx: Tx): void {
    const current = this.secrets.latest();
    const next: LedgerSecret = { key: Buffer.from(systemRng.bytes(32)), version: 0 };
    broadcastLedgerSecrets(tx, [{ secret: next, version: null }]);
    if (this.serviceStatusIn(tx) === "Open") {
      issueRecoveryShares(tx, systemRng, { latest: next, history: { previous: current } });
    }
    this.pendingRekeys++;
  }

  /** A member's share on a service waiting for shares; at the threshold, the secrets come back. */
  private recordRecoveryShare(tx: Tx, memberId: string, share: Buffer): EndpointResponse {
    const status = this.serviceStatusIn(tx);
    if (status !== "WaitingForRecoveryShares" || this.recovery === undefined) {
      throw new HttpError(
        403,
        "ServiceNotWaitingForRecoveryShares",
        "Service is not waiting for recovery shares",
      );
    }
    const recovery = this.recovery;
    if (recovery.recovered !== undefined) {
      throw new HttpError(
        403,
        "NodeAlreadyRecovering",
        "Node is already recovering private ledger",
      );
    }
    const s = recordSubmittedShare(tx, memberId, share, recovery.secret, systemRng);
    let message = s.fullKeySubmitted
      ? "Full recovery key successfully submitted"
      : `${s.submittedCount}/${s.recoveryThreshold} recovery shares successfully submitted`;
    if (s.fullKeySubmitted || s.submittedCount >= s.recoveryThreshold) {
      let secrets: LedgerSecret[];
      try {
        secrets = secretsFromSubmittedShares(
          tx,
          recovery.secret,
          s.recoveryThreshold,
          recovery.replay.history,
        );
      } catch (err) {
        this.log.warn({ err }, "recovery: the submitted shares do not recover the ledger secrets");
        clearSubmittedShares(tx);
        return {
          status: 500,
          headers: { "content-type": "application/json" },
          body: {
            error: { code: "InternalError", message: "Failed to initiate private recovery." },
          },
        };
      }
      const history = recovery.replay.history;
      broadcastLedgerSecrets(
        tx,
        secrets.map((secret) => ({ secret, version: secret.version })),
      );
      message += "\nEnd of recovery procedure initiated";
      const response = shareResponse(message, s);
      this.recoveryStarts.set(response, { secrets, lastHistorical: history.at(-1)?.seqno });
      return response;
    }
    return shareResponse(message, s);
  }

  /** Share submissions that reached the threshold, until their transaction commits. */
  private readonly recoveryStarts = new WeakMap<
    EndpointResponse,
    { secrets: LedgerSecret[]; lastHistorical: number | undefined }
  >();

  /** The submission that reached the threshold is written: the private recovery starts. */
  private startPrivateRecovery(response: EndpointResponse): void {
    const start = this.recoveryStarts.get(response);
    const recovery = this.recovery;
    if (start === undefined || recovery === undefined || recovery.recovered !== undefined) return;
    recovery.recovered = start.secrets;
    recovery.privateReplay = this.finishRecovery(start.lastHistorical).catch((err: unknown) => {
      this.log.error({ err }, "recovery: private recovery failed");
      recovery.recovered = undefined;
    });
  }

  /**
   * Private recovery: once the share submission committed, the old ledger's private domain is
   * decrypted and replayed (every GCM tag must verify), its maps join the store, and the
   * end-of-recovery transaction opens the service.
   */
  private async finishRecovery(previousStoredVersion: number | undefined): Promise<void> {
    const recovery = this.recovery;
    if (recovery?.recovered === undefined) return;
    await this.waitForSeqnoCommitted(this.pipeline.lastSeqno);
    this.nodeState = "ReadingPrivateLedger";
    const L = recovery.replay.lastSignedSeqno;
    const old = new LedgerSecrets(recovery.recovered);
    this.log.info({ entries: L }, "recovery: replaying the private ledger");
    const snapshot = recovery.replay.snapshotPath;
    const maps = replayPrivateLedger(
      this.storage,
      L,
      old,
      (seqno) => this.log.info({ seqno }, "recovery: private replay progress"),
      snapshot === undefined ? undefined : { seqno: recovery.replay.base.seqno, path: snapshot },
    );
    this.store.addReplayedMaps(maps);
    this.secrets.addOlder(recovery.recovered);
    const previous = recovery.recovered.at(-1) as LedgerSecret;
    await this.pipeline.executeAsync((tx) => {
      writeEndOfRecovery(tx, {
        latest: recovery.secret,
        previous,
        ...(previousStoredVersion === undefined ? {} : { previousStoredVersion }),
        replay: recovery.replay,
        serviceKey: this.serviceKey,
        previousServiceCert: recovery.previousServiceCert,
        rng: systemRng,
        iat: Math.floor(Date.now() / 1000),
      });
      return Promise.resolve();
    });
    this.refreshAppIfChanged(true);
    this.nodeState = "PartOfNetwork";
    this.recovery = undefined;
    // As CCF: a snapshot of the recovered service, which nodes joining it start from.
    this.snapshotter.requestSnapshot();
    this.log.info("recovery: private ledger recovered, service open");
  }

  private waitForSeqnoCommitted(seqno: number): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.commitSeqno >= seqno) resolve();
      else this.commitWaiters.push({ seqno, resolve });
    });
  }

  /** Consensus over this node's store, tree and ledger; `bootstrap` for a service's first node. */
  private createHost(
    secrets: LedgerSecrets,
    serviceKey: EcKeyPair,
    endorsedCert: string,
    bootstrap: boolean,
    recovered?: {
      base: PublicRecovery["base"];
      entries: LogEntry[];
      commitIdx: number;
      firstView: number;
    },
    fromSnapshot?: RaftOptions["start"],
  ): void {
    const snapshotStart = fromSnapshot?.idx ?? recovered?.base.seqno;
    this.secrets = secrets;
    this.serviceKey = serviceKey;
    this.nodeCertPem = endorsedCert;
    this.snapshotter = new Snapshotter({
      dir: this.config.snapshots.directory,
      txCount: this.config.snapshots.tx_count,
      store: this.store,
      tree: this.tree,
      secrets: () => this.secrets,
      viewHistory: () => this.host.raft.viewHistory(),
      startSeqno: snapshotStart ?? 0,
      log: (msg, err) => this.log.warn({ err }, `snapshot: ${msg}`),
    });
    const ticks = (ms: number) =>
      Math.max(1, Math.round(ms / Math.max(1, this.config.tick_interval)));
    const electionTicks = ticks(this.config.consensus.election_timeout);
    const raft = new Raft({
      id: this.nodeId,
      ...(bootstrap
        ? {
            bootstrap: {
              configuration: [this.nodeId],
              primary: this.nodeId,
              ...(recovered === undefined ? {} : { term: recovered.firstView }),
            },
          }
        : {}),
      ...(fromSnapshot === undefined ? {} : { start: fromSnapshot }),
      ...(recovered === undefined
        ? {}
        : {
            start: {
              idx: recovered.base.seqno,
              term: recovered.base.view,
              views: recovered.base.views,
              entries: recovered.entries,
              commitIdx: recovered.commitIdx,
            },
          }),
      heartbeatTicks: ticks(this.config.consensus.message_timeout),
      electionTimeoutTicks: electionTicks,
      chooseElectionTimeout: () =>
        Math.ceil(electionTicks / 2) + Math.floor(Math.random() * Math.ceil(electionTicks / 2)),
      maxUncommittedTxCount: this.config.consensus.max_uncommitted_tx_count,
      maxEntriesPerMessage: 1000,
      // A node cut off for a while (paused, partitioned) must not depose a live primary on return.
      preVote: true,
      // Old committed entries leave memory (see ConsensusHost): a peer far behind gets them from here.
      readEntryData: (idx) => this.storage.read(idx),
    });
    const replica = new LedgerReplica({
      store: this.store,
      tree: this.tree,
      storage: this.storage,
      secrets,
      onApplied: (seqno, writeSet) => {
        this.learnLedgerSecrets(seqno, writeSet);
        if (writeSet.get(Tables.SIGNATURES)?.has(SINGLETON_KEY_STRING) === true) {
          this.snapshotter.recordCommittable(seqno);
        }
      },
    });
    this.host = new ConsensusHost({
      raft,
      replica,
      tree: this.tree,
      storage: this.storage,
      transport: {
        send: (to, payload) => this.sendConsensus(to, payload),
      },
      configurationOf: () => {
        // A transaction that changed the set of trusted nodes starts a new configuration. Only
        // one that wrote nodes.info can have (decoding every record per transaction cost ~5% of a
        // busy primary).
        const nodesVersion = this.store.mapState(Tables.NODES)?.version ?? 0;
        if (nodesVersion === this.nodesVersionSeen) return undefined;
        this.nodesVersionSeen = nodesVersion;
        const trusted = this.trustedNodes();
        const key = trusted.join(",");
        if (key === this.configurationKey) return undefined;
        this.configurationKey = key;
        return trusted;
      },
      openPipeline: (view, onAppend) => {
        // A new primary proposes configurations relative to the latest one consensus has.
        this.configurationKey = [...(raft.activeConfigurations().at(-1)?.nodes ?? [])]
          .sort()
          .join(",");
        this.nodesVersionSeen = -1;
        return new TxPipeline({
          store: this.store,
          storage: this.storage,
          tree: this.tree,
          secrets,
          node: { nodeId: this.nodeId, key: this.identity.key, certPem: this.nodeCertPem },
          service: {
            key: serviceKey,
            issuer: this.config.command.start?.cose_signatures.issuer,
            subject: this.config.command.start?.cose_signatures.subject,
          },
          view,
          signatures: {
            txCount: this.config.ledger_signatures.tx_count,
            delayMs: this.config.ledger_signatures.delay,
            whenIdle: this.config.ledger_signatures.sign_when_idle,
          },
          clock: systemClock,
          onSignature: (_seqno, seconds) => this.prometheusMetrics.signature(seconds),
          // A snapshot due at a signature ends the ledger chunk there (CCF).
          chunkAfterSignature: (seqno) => this.snapshotter.dueAt(seqno),
          onAppend: (seqno, v, entry, signature) => {
            if (signature) {
              this.lastSignatureSeqno = seqno;
              this.snapshotter.recordCommittable(seqno);
            } else if (this.pendingRekeys > 0) {
              const ws = decodeEntry(entry).writeSet;
              if (ws.has(Tables.ENCRYPTED_LEDGER_SECRETS)) {
                this.pendingRekeys--;
                this.learnLedgerSecrets(seqno, ws);
              }
            }
            onAppend(seqno, v, entry, signature);
          },
        });
      },
      onCommit: (seqno) => this.onCommit(seqno),
      beforeCommit: (seqno) => {
        const p = this.snapshotter.commit(seqno, raft.role === "Primary");
        if (p !== undefined) {
          // Handled where it is awaited (advanceSnapshots); a failure before then is not unhandled.
          p.catch(() => undefined);
          this.preparedSnapshots.push(p);
        }
      },
      onRollback: (seqno) => {
        // Points at once (the replacing entries are applied next); files once writes in flight end.
        this.snapshotter.rollbackPoints(seqno);
        this.snapshotWork = this.snapshotWork.then(() => this.snapshotter.rollback(seqno));
      },
      onRoleChange: (role, view, leader) =>
        this.log.info({ role, view, leader: leader ?? null }, "consensus role changed"),
      onFatal: (err) => {
        this.log.fatal({ err }, "consensus failed; the node stops");
        void this.stop();
      },
    });
  }

  private createApp(): void {
    this.app = new JsApp({
      onLongRun: () => this.keepAlive(),
      onRun: (endpoint, seconds) => this.prometheusMetrics.sandboxApp(endpoint, seconds),
      log: (level, message) => {
        this.guestLog("app", level, message);
      },
      consensus: {
        lastCommitted: () => this.commitTxId(),
        statusFor: (view, seqno) => this.txStatus({ view, seqno }),
        viewFor: (seqno) => this.viewOf(seqno),
      },
      history: {
        range: (handle, start, end, expiry) => this.historical.range(handle, start, end, expiry),
        drop: (handle) => this.historical.drop(handle),
      },
    });
  }

  /** Serves every RPC interface with `cert`, and the node-to-node interface; returns the latter. */
  private async listenAll(cert: string, serviceCertPem: string): Promise<string> {
    if (this.config.worker_threads > 0) {
      this.frontends = await FrontendPool.start(this.config.worker_threads, {
        warn: (obj, msg) => this.log.warn(obj, msg),
      });
    }
    // Listen first: the node's own record carries the addresses it serves on.
    for (const [name, iface] of Object.entries(this.config.network.rpc_interfaces)) {
      const options: RpcServerOptions = {
        key: this.identity.key.privateKeyPem,
        cert,
        router: this.router,
        beforeHandler: forwardingHook({
          role: () => (this.host?.raft.role === "Primary" ? "primary" : "backup"),
          primary: () => this.host?.raft.leader,
          view: () => this.host?.raft.term,
          forwarder: this.forwarder,
          ...(iface.redirections === undefined ? {} : { redirections: iface.redirections }),
          addressOf: (role) => this.addressOf(name, role),
          forwardingTimeoutMs: iface.forwarding_timeout_ms,
        }),
        maxOpenSessionsSoft: iface.max_open_sessions_soft,
        maxOpenSessionsHard: iface.max_open_sessions_hard,
        maxBodySize: iface.http_configuration.max_body_size,
        maxHeaderSize: iface.http_configuration.max_header_size,
        maxHeadersCount: iface.http_configuration.max_headers_count,
        observe: this.prometheusMetrics.httpObserver(name),
        onError: (err, req) => this.log.error({ err, path: req.path }, "request failed"),
      };
      const server =
        this.frontends === undefined ? new RpcServer(options) : this.frontends.serve(name, options);
      const bind = splitAddress(iface.bind_address);
      const bound = await server.listen(bind.host, bind.port);
      this.interfaces.push({
        name,
        server,
        address: `${bound.host.includes(":") ? `[${bound.host}]` : bound.host}:${bound.port}`,
        softCap: iface.max_open_sessions_soft,
        hardCap: iface.max_open_sessions_hard,
      });
    }
    return this.listenNodeToNode(cert, serviceCertPem);
  }

  /** This node's `public:ccf.gov.nodes.info` record. */
  private nodeInfoRecord(n2nAddress: string, status: string): Record<string, unknown> {
    const rpcInfo: Record<string, unknown> = {};
    for (const [name, iface] of Object.entries(this.config.network.rpc_interfaces)) {
      const bound = this.interfaces.find((i) => i.name === name)?.address ?? iface.bind_address;
      const published = publishedAddress(iface.published_address, iface.bind_address, bound);
      rpcInfo[name] = {
        app_protocol: iface.app_protocol,
        bind_address: bound,
        endorsement: iface.endorsement,
        forwarding_timeout_ms: iface.forwarding_timeout_ms,
        http_configuration: {
          max_body_size: String(iface.http_configuration.max_body_size),
          max_header_size: String(iface.http_configuration.max_header_size),
          max_headers_count: iface.http_configuration.max_headers_count,
        },
        max_open_sessions_hard: iface.max_open_sessions_hard,
        max_open_sessions_soft: iface.max_open_sessions_soft,
        protocol: "tcp",
        published_address: published,
      };
    }
    const n2nPublished = publishedAddress(
      this.config.network.node_to_node_interface.published_address,
      this.config.network.node_to_node_interface.bind_address,
      n2nAddress,
    );
    const nodeInfo: Record<string, unknown> = {
      certificate_signing_request: this.csrPem,
      code_digest: Buffer.from(this.identity.measurement).toString("hex"),
      encryption_pub_key: this.identity.encryptionKey.publicKeyPem,
      node_to_node_interface: { bind_address: n2nAddress, published_address: n2nPublished },
      public_key: this.identity.key.publicKeyPem,
      quote_info: { endorsements: "", format: "Insecure_Virtual", quote: this.identity.quote },
      rpc_interfaces: rpcInfo,
      status,
    };
    if (this.config.node_data_json_file !== undefined) {
      nodeInfo.node_data = readConfigFile(
        this.config.node_data_json_file,
        "node_data_json_file",
        true,
      );
    }
    return nodeInfo;
  }

  /** Where this node listens, for operators and tools (a joining node writes them at once). */
  private writeAddressFiles(n2nAddress: string): void {
    if (this.config.output_files.rpc_addresses_file !== undefined) {
      const addresses: Record<string, string> = {};
      for (const i of this.interfaces) addresses[i.name] = i.address;
      writeFileAtomically(this.config.output_files.rpc_addresses_file, JSON.stringify(addresses));
    }
    if (this.config.output_files.node_to_node_address_file !== undefined) {
      writeFileAtomically(
        this.config.output_files.node_to_node_address_file,
        JSON.stringify({ node_to_node_interface: n2nAddress }),
      );
    }
  }

  /** Output files, endpoints and the ticker: the node is part of the network. */
  private goLive(serviceCert: string, n2nAddress: string): void {
    writeFileAtomically(this.config.command.service_certificate_file, serviceCert);
    writeFileAtomically(
      this.config.output_files.node_certificate_file,
      this.identity.selfSignedCert,
    );
    writeFileAtomically(this.config.output_files.pid_file, String(process.pid));
    this.writeAddressFiles(n2nAddress);

    const joinEndpoint: Endpoint = {
      method: "POST",
      path: "/node/join",
      forwarding: "always",
      handler: async (req) => {
        let body: unknown;
        try {
          body = JSON.parse(req.body.toString("utf8"));
        } catch {
          throw HttpErrors.InvalidInput("The join request is not JSON");
        }
        const res = await this.pipeline.executeAsync((tx) =>
          admitJoiner(tx, body, {
            serviceKey: this.serviceKey,
            serviceCert: this.serviceCertPem,
            secrets: this.secrets,
            now: new Date(),
            validityDays: this.config.node_certificate.initial_validity_days,
          }),
        );
        return { status: 200, headers: { "content-type": "application/json" }, body: res.result };
      },
    };
    const consensusEndpoint: Endpoint = {
      method: "GET",
      path: "/node/consensus",
      handler: () => ({
        status: 200,
        headers: { "content-type": "application/json" },
        body: { details: this.consensusDetails() },
      }),
    };
    this.nodeGroup = [
      joinEndpoint,
      consensusEndpoint,
      deleteRetiredNodeEndpoint({
        store: this.store,
        commitSeqno: () => this.commitSeqno,
        write: async (fn) =>
          (await this.pipeline.executeAsync((tx) => Promise.resolve(fn(tx)))).result,
      }),
      ...snapshotEndpoints({
        snapshotDir: this.config.snapshots.directory,
        selfAddress: () => this.interfaces[0]?.address,
        primaryAddress: () => {
          const leader = this.host.raft.leader;
          if (leader === undefined || leader === this.nodeId) return undefined;
          return this.addressOf("primary_rpc_interface", "primary");
        },
      }),
      ...nodeEndpoints(this),
      ...consoleEndpoints(this, {
        consoleDir: join(PACKAGE_ROOT, "console"),
        ledgerDir: this.config.ledger.directory,
      }),
      ...commonEndpoints("/node", "CCF Node API", this, this.metrics, () => this.nodeGroup),
    ].map((e) => this.metrics.wrap(e));
    this.appGroup = commonEndpoints(
      "/app",
      "CCF Application API",
      this,
      this.metrics,
      () => this.appGroup,
    ).map((e) => this.metrics.wrap(e));
    const proposals = new Proposals(
      new ConstitutionRunner({
        effects: nodeGovEffects({
          onServiceOpen: (tx, createTxId) => this.onServiceOpen(tx, createTxId),
          reshare: (tx) => this.reshare(tx),
          rekey: (tx) => this.rekey(tx),
          forceLedgerChunk: () => this.pipeline.forceChunkAtNextSignature(),
          triggerSnapshot: () => this.snapshotter.requestSnapshot(),
          refreshAppInterpreters: () => this.app.flush(),
          latestLedgerSecretSeqno: () => this.secrets.latest().version,
          endorseCsr: (csrPem, validFrom, validityDays) =>
            endorseCertificateSigningRequest({
              csrPem,
              issuerKey: this.serviceKey,
              issuerCertPem: this.serviceCertPem,
              validFrom,
              validityDays,
            }),
          generateNetworkCertificate: (validFrom, validityDays) =>
            renewServiceCertificate({
              key: this.serviceKey,
              certPem: this.serviceCertPem,
              validFrom,
              validityDays,
            }),
          setJwtPublicSigningKeys: (tx, issuer, metadata, jwks) =>
            jwtEffect(() => setJwtPublicSigningKeys(tx, issuer, metadata, jwks)),
          removeJwtPublicSigningKeys: (tx, issuer) =>
            jwtEffect(() => removeJwtPublicSigningKeys(tx, issuer)),
        }),
        log: (level, message) => {
          this.guestLog("gov", level, message);
        },
        onRun: (fn, seconds) => this.prometheusMetrics.sandboxConstitution(fn, seconds),
      }),
    );
    this.govGroup = [
      ...govReadEndpoints(this),
      ...govMemberWriteEndpoints({
        proposals,
        transact: (fn) => this.runGovWrite(fn),
        rootAt: (seqno) => {
          // The tree is flushed behind commit: a transaction that read before the flush point
          // runs again, at a newer version.
          if (seqno < this.tree.minIndex) {
            throw new ConflictError(`the Merkle root at ${seqno} is no longer held`);
          }
          return this.pipeline.tree.rootAt(seqno);
        },
        // CCF re-shares when a recovery member becomes active on an open service.
        onMemberActive: (tx, memberId) => {
          if (isRecoveryMember(tx, memberId)) this.reshare(tx);
        },
      }).map((e): Endpoint => ({ ...e, forwarding: "always", redirection: "to_primary" })),
      ...govRecoveryEndpoints({
        read: () => this.store.begin(),
        encryptedShare: (tx, memberId) => encryptedShareOf(tx, memberId),
        submit: async (fn) => {
          this.admitWrite();
          const res = await this.pipeline.executeAsync(fn, { apply: () => true });
          if (res.wrote) this.startPrivateRecovery(res.result);
          return res.result;
        },
        recordShare: (tx, memberId, share) => this.recordRecoveryShare(tx, memberId, share),
      }),
      ...commonEndpoints("/gov", "CCF Governance API", this, this.metrics, () => this.govGroup),
    ].map((e) => this.metrics.wrap(e));
    this.jwtRefresher = new JwtKeyRefresher({
      readTx: () => this.store.begin(),
      apply: (issuer, jwks) => {
        this.pipeline.execute((tx) => applyRefreshedJwtKeys(tx, issuer, jwks));
      },
      log: (level, message) => this.log[level === "fail" ? "warn" : level]({ tag: "jwt" }, message),
    });
    this.jwtRefresher.start(this.config.jwt.key_refresh_interval);
    const jwtMetrics: Endpoint = {
      method: "GET",
      path: "/node/jwt_keys/refresh/metrics",
      handler: () => ({ status: 200, body: this.jwtRefresher?.metrics() }),
    };
    this.nodeGroup.push(this.metrics.wrap(jwtMetrics));
    this.router.setEndpoints("node", this.nodeGroup);
    this.refreshAppIfChanged(true);
    this.router.setEndpoints("gov", this.govGroup);
    this.nodeState = "PartOfNetwork";
    this.ticker = setInterval(() => this.tick(), Math.max(1, this.config.tick_interval));
    this.log.info(
      {
        node_id: this.nodeId,
        rpc: this.interfaces.map((i) => i.address),
        node_to_node: n2nAddress,
      },
      "service started",
    );
  }

  private nodeGroup: Endpoint[] = [];
  private appGroup: Endpoint[] = [];
  private govGroup: Endpoint[] = [];

  /**
   * The `/app` group: the application's endpoints from `public:ccf.gov.endpoints` (they win over
   * built-in ones with the same method and path, as in CCF), then the common ones.
   */
  private refreshAppEndpoints(): void {
    let appEndpoints: AppEndpoint[] = [];
    try {
      appEndpoints = readAppEndpoints(this.store.begin());
    } catch (err) {
      this.log.error({ err }, "application endpoints unreadable");
    }
    this.app.flush();
    this.app
      .prewarm(appEndpoints, this.store.begin())
      .catch((err: unknown) => this.log.warn({ err }, "application interpreters not prewarmed"));
    const taken = new Set(appEndpoints.map((e) => `${e.method} ${e.path}`));
    const common = commonEndpoints(
      "/app",
      "CCF Application API",
      this,
      this.metrics,
      () => this.appGroup,
    ).filter((e) => !taken.has(`${e.method} ${e.path}`));
    const fromApp: Endpoint[] = appEndpoints.map((ep) => ({
      method: ep.method,
      path: ep.path,
      openapi: ep.openapi,
      forwarding: forwardingOf(ep.forwardingRequired),
      redirection: redirectionOf(ep.redirectionStrategy),
      handler: (req) => this.runAppEndpoint(ep, req),
    }));
    this.appGroup = [...fromApp, ...common].map((e) => this.metrics.wrap(e));
    this.router.setEndpoints("app", this.appGroup);
  }

  /**
   * A governance write: the handler's writes are kept on 2xx; the reply carries the TxID. What a
   * proposal applied may change the app (set_js_app...), so its endpoints are read again.
   */
  private async runGovWrite(fn: (tx: Tx) => Promise<EndpointResponse>): Promise<EndpointResponse> {
    this.admitWrite();
    const res = await this.pipeline.executeAsync(fn, {
      apply: (r) => r.status >= 200 && r.status < 300,
    });
    if (!res.wrote) return res.result;
    this.refreshAppIfChanged();
    return {
      ...res.result,
      headers: { ...(res.result.headers ?? {}), [TX_ID_HEADER]: txIdString(res.txId) },
    };
  }

  /**
   * Runs a handler in a transaction: through the pipeline on the primary; on a backup in a
   * transaction that must not write (what writes is forwarded to the primary before it gets here).
   */
  private transact<T>(
    fn: (tx: Tx) => T | Promise<T>,
    options: { apply?: (r: T) => boolean; claimsDigest?: (r: T) => Uint8Array | undefined },
  ): CommitResult<T> | Promise<CommitResult<T>> {
    const pipeline = this.host.pipeline;
    if (pipeline !== undefined) return pipeline.executeMaybeAsync(fn, options);
    return this.transactOnBackup(fn, options);
  }

  private async transactOnBackup<T>(
    fn: (tx: Tx) => T | Promise<T>,
    options: { apply?: (r: T) => boolean },
  ): Promise<CommitResult<T>> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const tx = this.store.begin();
      let result: T;
      try {
        result = await fn(tx);
        tx.checkStillValid();
      } catch (e) {
        if (e instanceof ConflictError) continue;
        throw e;
      }
      if (tx.hasWrites() && (options.apply?.(result) ?? true)) {
        throw HttpErrors.NodeCannotHandleRequest(
          "This node is a backup and cannot write: send writes to the primary",
        );
      }
      const seqno = tx.readVersion;
      return { result, txId: { view: this.viewOf(seqno) ?? FIRST_VIEW, seqno }, wrote: false };
    }
    throw HttpErrors.TransactionCommitAttemptsExceedLimit(
      `Transaction continued to conflict after ${MAX_ATTEMPTS} attempts. Retry later.`,
    );
  }

  /**
   * An app endpoint: authenticates, runs the handler in a transaction, commits on success; the
   * reply carries the TxID. Without a promise when nothing needs to wait (the handler runs in a
   * built template and no commit is awaited).
   */
  private runAppEndpoint(
    ep: AppEndpoint,
    req: EndpointRequest,
  ): EndpointResponse | Promise<EndpointResponse> {
    if (this.nodeState !== "PartOfNetwork") {
      throw HttpErrors.FrontendNotOpen(
        "The application is not open: the service is recovering its private ledger",
      );
    }
    if (ep.mode === "readwrite") this.admitWrite();
    let historical: HistoricalState | undefined;
    if (ep.mode === "historical") {
      // As CCF: the caller is authenticated before the transaction id is looked at (an
      // unauthenticated caller must not start ledger reads, nor learn about transaction ids).
      authenticate(ep.authnPolicies, req, this.store.begin());
      const found = this.historicalTarget(req);
      if (!(found instanceof HistoricalState)) return found;
      historical = found;
    }
    const res = this.transact(
      (tx) => this.app.execute(ep, req, authenticate(ep.authnPolicies, req, tx), tx, historical),
      { apply: (r) => r.applyWrites, claimsDigest: (r) => r.claimsDigest },
    );
    return res instanceof Promise
      ? res.then((r) => this.appResponse(r, req))
      : this.appResponse(res, req);
  }

  /** The app's response with its TxID, once committed if the caller asked to wait for that. */
  private appResponse(
    res: CommitResult<AppResult>,
    req: EndpointRequest,
  ): EndpointResponse | Promise<EndpointResponse> {
    const response = res.result.response;
    if (response.status < 200 || response.status >= 300) return response;
    const withTxId = (): EndpointResponse => {
      // The app made this response for this request alone: it gets its TxID in place (object
      // spreads with a computed key were ~2 % of a busy node's main thread).
      const headers = response.headers ?? {};
      headers[TX_ID_HEADER] = txIdString(res.txId);
      response.headers = headers;
      return response;
    };
    if (res.wrote && wantsCommit(req.headers[WAIT_FOR_COMMIT_HEADER])) {
      return this.waitForCommit(res.txId).then(withTxId);
    }
    return withTxId();
  }

  /**
   * Beyond CCF: resolves once `id` is Committed; 503 TransactionInvalid if a view change dropped it
   * (it did not happen: retry), 504 CommitTimeout if it is still pending after the deadline (it may
   * yet commit: ask `/app/tx`).
   */
  private async waitForCommit(id: TxId): Promise<void> {
    if (this.commitSeqno < id.seqno) {
      let timer: NodeJS.Timeout | undefined;
      const committed = await new Promise<boolean>((resolve) => {
        const waiter = { seqno: id.seqno, resolve: () => resolve(true) };
        this.commitWaiters.push(waiter);
        timer = setTimeout(() => {
          this.commitWaiters = this.commitWaiters.filter((w) => w !== waiter);
          resolve(false);
        }, WAIT_FOR_COMMIT_TIMEOUT_MS);
      });
      clearTimeout(timer);
      if (!committed) {
        throw new HttpError(
          504,
          "CommitTimeout",
          `Transaction ${txIdString(id)} was not committed within ${WAIT_FOR_COMMIT_TIMEOUT_MS} ms; it may still be: ask /app/tx`,
        );
      }
    }
    if (this.txStatus(id) !== "Committed") {
      throw new HttpError(
        503,
        "TransactionInvalid",
        `Transaction ${txIdString(id)} was dropped by a change of primary and did not happen. Retry.`,
      );
    }
  }

  /**
   * The state a historical endpoint asks for in `x-ms-ccf-transaction-id`, or CCF's answer when
   * there is none to give: 400 (header missing or malformed), 404 (not committed, invalid), 202
   * (being read from the ledger).
   */
  private historicalTarget(req: EndpointRequest): HistoricalState | EndpointResponse {
    const header = req.headers[TX_ID_HEADER];
    if (header === undefined) {
      throw HttpErrors.MissingRequiredHeader(
        `Historical query is missing '${TX_ID_HEADER}' header.`,
      );
    }
    const id = parseTxId(header);
    if (id === undefined) {
      throw HttpErrors.InvalidHeaderValue(
        `The value '${header}' in header '${TX_ID_HEADER}' could not be converted to a valid Tx ID.`,
      );
    }
    const status = this.txStatus(id);
    if (status !== "Committed") {
      const message = `Only committed transactions can be queried. Transaction ${txIdString(id)} is ${status}`;
      if (status === "Invalid") throw HttpErrors.TransactionInvalid(message);
      const e = HttpErrors.TransactionPendingOrUnknown(message);
      return {
        status: e.status,
        headers: { "cache-control": "no-cache", "content-type": "application/json" },
        body: e.toJSON(),
      };
    }
    const state = this.historical.get(id.seqno);
    return state === "fetching" ? historicalRetry(id) : state;
  }

  /** The first signature transaction at or after `seqno` in this node's log. */
  private signatureAtOrAfter(seqno: number): number | undefined {
    const raft = this.host?.raft;
    if (raft === undefined) return undefined;
    return raft.signatureAtOrAfter(seqno);
  }

  /**
   * CCF's back-pressure on the primary: no new write while `consensus.max_uncommitted_tx_count`
   * transactions await commit (503 TooManyPendingTransactions), nor on a retiring primary. A backup
   * passes: what it would write is forwarded before this point.
   */
  private admitWrite(): void {
    if (this.host?.pipeline === undefined) return;
    try {
      this.host.raft.checkCanAcceptTransaction();
    } catch (e) {
      if (e instanceof TooManyPendingTransactionsError) {
        throw new HttpError(503, "TooManyPendingTransactions", e.message);
      }
      if (e instanceof NotPrimaryError) throw HttpErrors.NodeCannotHandleRequest(e.message);
      throw e;
    }
  }

  /** Addresses the RPC interfaces listen on, by interface name. */
  rpcAddresses(): Record<string, string> {
    return Object.fromEntries(this.interfaces.map((i) => [i.name, i.address]));
  }

  /**
   * The node-to-node transport: mutual TLS with service-endorsed certificates. Frames carry a
   * channel byte first (consensus, and later request forwarding).
   */
  private async listenNodeToNode(certPem: string, serviceCertPem: string): Promise<string> {
    this.peersWatch.invalidate();
    this.transport = await NodeTransport.start({
      bindAddress: this.config.network.node_to_node_interface.bind_address,
      identity: { certPem, keyPem: this.identity.key.privateKeyPem, serviceCertPem },
      log: {
        warn: (obj, msg) => this.log.warn({ tag: "n2n", ...obj }, msg),
        debug: (obj, msg) => this.log.debug({ tag: "n2n", ...obj }, msg),
      },
    });
    this.transport.onMessage((from, payload) => {
      if (payload.length === 0) return;
      if (payload[0] === NODE_CHANNEL.consensus) {
        try {
          this.host?.receive(from, payload.subarray(1));
        } catch (err) {
          this.log.fatal({ err, from }, "consensus refused a message; the node stops");
          void this.stop();
        }
      } else if (payload[0] === NODE_CHANNEL.forwarding) this.forwarder.onFrame(from, payload);
    });
    return this.transport.address;
  }

  /**
   * The nodes the join answer named: reachable until this node's store has their records (a node
   * joining a recovered service first replays the old ledger, whose nodes are all gone).
   */
  private seedPeers = new Map<string, string>();

  /** The peer list is rebuilt when nodes.info changes (or the seeds or the transport: invalidated). */
  private readonly peersWatch = new MapsWatch(this.store, [Tables.NODES]);

  /**
   * Peers are the other nodes of nodes.info with their published node-to-node addresses (and the
   * seed peers not yet among them). Called every tick: decoding every record each time was ~1 % of
   * a core per node, so the list is rebuilt only when nodes.info, the seeds or the transport changed.
   */
  private refreshPeers(): void {
    if (this.transport === undefined || !this.peersWatch.changed()) return;
    const peers = new Map<string, string>();
    const records = this.nodeRecords();
    for (const [id, address] of this.seedPeers) {
      if (!records.some((r) => r.id === id)) peers.set(id, address);
    }
    for (const { id, info } of records) {
      const address = info.node_to_node_interface?.published_address;
      // Retired nodes stay reachable until an operator deletes their records: consensus keeps
      // telling a retiring node the commit index for a while, so that it learns it is retired.
      if (id !== this.nodeId && address !== undefined) {
        peers.set(id, address);
      }
    }
    const key = [...peers].map(([k, v]) => `${k}=${v}`).join(",");
    if (key === this.peersKey) return;
    this.peersKey = key;
    this.transport.setPeers(peers);
  }

  /** CCF's `/node/consensus` details, from this node's consensus state. */
  private consensusDetails(): Record<string, unknown> {
    const raft = this.host.raft;
    const leadership: Record<string, string> = {
      Primary: "Leader",
      Backup: "Follower",
      Candidate: "Candidate",
      PreVoteCandidate: "PreVoteCandidate",
    };
    return {
      configs: raft.activeConfigurations().map((c) => ({
        idx: c.idx,
        nodes: Object.fromEntries(c.nodes.map((n) => [n, {}])),
      })),
      acks: {},
      membership_state: raft.retired ? "Retired" : "Active",
      leadership_state: leadership[raft.role] ?? "None",
      retirement_phase: retirementPhase(this.store, this.commitSeqno, this.nodeId, raft.retired),
      primary_id: raft.leader ?? null,
      current_view: raft.term,
      ticking: !this.stopped,
      learners: {},
    };
  }

  /** The published address of interface `name` on the primary, or on some backup. */
  private addressOf(name: string, role: NodeRole): string | undefined {
    const primary = this.host?.raft.leader;
    for (const { id, info } of this.nodeRecords()) {
      if ((role === "primary") !== (id === primary)) continue;
      const address = info.rpc_interfaces?.[name]?.published_address;
      if (info.status === "Trusted" && address !== undefined) return address;
    }
    return undefined;
  }

  /** The trusted nodes of the service as the store has it now: consensus's configuration. */
  private trustedNodes(): string[] {
    return this.nodeRecords()
      .filter((n) => n.info.status === "Trusted")
      .map((n) => n.id);
  }

  /** The nodes.info records as this node's store has them now, by node id order. */
  private nodeRecords(): Array<{ id: string; info: NodeRecord }> {
    return nodeEntries<NodeRecord>(this.store);
  }

  /**
   * Re-reads the app's endpoints when a transaction changed them or its modules, wherever it ran:
   * here (a governance write) or on the primary (replicated to this node).
   */
  private refreshAppIfChanged(force = false): void {
    if (!this.appTablesWatch.changed() && !force) return;
    this.refreshAppEndpoints();
  }

  private tick(): void {
    if (this.stopped) return;
    this.refreshPeers();
    if (this.nodeState === "PartOfNetwork") this.refreshAppIfChanged();
    this.host.tick();
    try {
      this.recordRetirements();
      this.host.pipeline?.tick();
    } catch (err) {
      this.log.error({ err }, "signature failed");
    }
  }

  /** nodes.info's retirement candidates, read again when nodes.info changes (checked every tick). */
  private retirementCandidates: RetirementCandidate[] = [];
  private readonly retirementsWatch = new MapsWatch(this.store, [Tables.NODES]);

  /** On the primary: nodes whose retirement committed get `retired_committed` (CCF's last phase). */
  private recordRetirements(): void {
    const pipeline = this.host.pipeline;
    if (pipeline === undefined) return;
    if (this.retirementsWatch.changed())
      this.retirementCandidates = retirementCandidates(this.store);
    if (this.retirementCandidates.length === 0) return;
    const ids = retirementsIn(this.retirementCandidates, this.commitSeqno);
    if (ids.length > 0) pipeline.execute((tx) => recordRetirements(tx, ids));
  }

  /**
   * Called from inside a long application handler (the event loop is held up): a primary posts
   * heartbeats to its backups through the transport's own thread, so that a slow handler does not
   * make them elect a new primary. Nothing else moves until the handler returns.
   */
  private keepAlive(): void {
    const now = performance.now();
    if (now - this.lastKeepAlive < this.config.consensus.message_timeout) return;
    this.lastKeepAlive = now;
    if (this.host?.raft.role !== "Primary") return;
    for (const out of this.host.raft.heartbeats()) {
      this.sendConsensus(out.to, encodeMessage(out.message), true);
    }
  }

  /** A guest's `console.*` line in the node's log, tagged with where the guest runs. */
  private guestLog(tag: "app" | "gov", level: string, message: string): void {
    if (level === "error") this.log.error({ tag }, message);
    else if (level === "warn") this.log.warn({ tag }, message);
    else this.log.info({ tag }, message);
  }

  /**
   * A consensus message to another node, on the consensus channel of the transport; `heldUp` when
   * called from inside a long handler, whose event loop cannot write it.
   */
  private sendConsensus(to: string, payload: Uint8Array, heldUp = false): void {
    const frame = Buffer.allocUnsafe(payload.length + 1);
    frame[0] = NODE_CHANNEL.consensus;
    frame.set(payload, 1);
    if (heldUp) this.transport?.sendWhileHeldUp(to, frame);
    else this.transport?.send(to, frame);
  }

  /** Consensus committed up to a signature: history before it is final. */
  private snapshotter!: Snapshotter;
  /** Snapshots captured at a commit, being serialised. */
  private preparedSnapshots: Array<Promise<PreparedSnapshot>> = [];
  /** Snapshot file work, one step at a time. */
  private snapshotWork: Promise<void> = Promise.resolve();

  /**
   * After a commit: the primary writes the evidence of each snapshot captured at this commit (its
   * claims digest is the snapshot's digest) and the pending file; snapshots whose evidence a
   * committed signature now covers get their receipt and become `.committed`.
   */
  private advanceSnapshots(commit: number): void {
    const prepared = this.preparedSnapshots;
    this.preparedSnapshots = [];
    this.snapshotWork = this.snapshotWork
      .then(async () => {
        for (const preparing of prepared) {
          let p: PreparedSnapshot;
          try {
            p = await preparing;
          } catch (err) {
            this.log.warn({ err }, "snapshot: not serialised");
            continue;
          }
          const pipeline = this.host.pipeline;
          if (pipeline === undefined) {
            this.snapshotter.abandon(p);
            continue;
          }
          let evidence: number;
          try {
            evidence = pipeline.execute(
              (tx) => tx.map(Tables.SNAPSHOT_EVIDENCE).set(SNAPSHOT_EVIDENCE_KEY, p.evidenceValue),
              { claimsDigest: p.digest },
            ).txId.seqno;
          } catch (err) {
            this.log.warn({ err, seqno: p.seqno }, "snapshot: evidence not written");
            this.snapshotter.abandon(p);
            continue;
          }
          const pending = await this.snapshotter.writePending(p, evidence);
          this.log.info(
            { seqno: p.seqno, evidence, entries: p.entries, reused: p.reused, file: pending.path },
            "snapshot written",
          );
        }
        await this.snapshotter.onCommit(commit, (evidenceSeqno) => {
          const view = this.viewOf(evidenceSeqno);
          if (view === undefined) return undefined;
          const r = this.receipt({ view, seqno: evidenceSeqno });
          return typeof r === "object" && !Buffer.isBuffer(r) ? r : undefined;
        });
      })
      .catch((err: unknown) => this.log.error({ err }, "snapshot: writing failed"));
  }

  /** The current identity's endorsement of the previous one (a CA certificate), once made. */
  private previousIdentityEndorsement:
    | { previous: string; serviceCert: string; endorsement?: string }
    | undefined;

  /**
   * CCF's service_endorsements: a receipt signed by a node of the previous service identity
   * carries a certificate of that identity's key issued by the current one, so it verifies
   * against the current service certificate. (One recovery back: older identities are not
   * followed.)
   */
  private serviceEndorsementsFor(nodeCertPem: string): string[] | undefined {
    if (verifyCertificateIssued(nodeCertPem, this.serviceCertPem)) return undefined;
    const made = this.previousIdentityEndorsed();
    if (made === undefined || !verifyCertificateIssued(nodeCertPem, made.previous))
      return undefined;
    if (made.endorsement === undefined) {
      // Never a receipt without the endorsement it needs: the caller comes back in a moment.
      throw new HttpError(
        503,
        "ServiceEndorsementPending",
        "The endorsement of the previous service identity is being prepared: retry shortly",
        { headers: { "retry-after": "1" } },
      );
    }
    return [made.endorsement];
  }

  /**
   * The current identity's endorsement of the previous one (a recovered service), started as soon
   * as the previous identity is known (at each commit) so receipts rarely wait for it.
   */
  private previousIdentityEndorsed(): { previous: string; endorsement?: string } | undefined {
    const raw = this.store.get(Tables.PREVIOUS_SERVICE_IDENTITY, SINGLETON_KEY_STRING);
    if (raw === undefined) return undefined;
    const previous = decodeValue(Tables.PREVIOUS_SERVICE_IDENTITY, raw) as string;
    const known = this.previousIdentityEndorsement;
    if (known?.previous === previous && known.serviceCert === this.serviceCertPem) return known;
    const made: { previous: string; serviceCert: string; endorsement?: string } = {
      previous,
      serviceCert: this.serviceCertPem,
    };
    this.previousIdentityEndorsement = made;
    const info = certificateInfo(this.serviceCertPem);
    createEndorsedCertificate({
      subjectPublicKey: createPublicKey(previous),
      subjectName: certificateInfo(previous).subject,
      issuerKey: this.serviceKey,
      issuerCertPem: this.serviceCertPem,
      validFrom: info.validFrom,
      validityDays: Math.max(
        1,
        Math.round((info.validTo.getTime() - info.validFrom.getTime()) / 86_400_000),
      ),
      ca: true,
    })
      .then((pem) => {
        made.endorsement = pem;
        this.historical.dropAll();
      })
      .catch((err: unknown) =>
        this.log.error({ err }, "the previous service identity could not be endorsed"),
      );
    return made;
  }

  private onCommit(seqno: number): void {
    this.commitSeqno = seqno;
    if (this.serviceKey !== undefined) this.previousIdentityEndorsed();
    this.advanceSnapshots(seqno);
    this.adoptRenewedCertificates();
    const due = this.commitWaiters.filter((w) => w.seqno <= seqno);
    this.commitWaiters = this.commitWaiters.filter((w) => w.seqno > seqno);
    for (const w of due) w.resolve();
  }

  /**
   * Serves the certificates governance renewed once the renewal is committed: this node's on every
   * RPC interface, node-to-node and in its signatures; the service's to check peers against.
   */
  private adoptRenewedCertificates(): void {
    const renewed = renewedCertificates(
      this.store,
      this.commitSeqno,
      { nodeId: this.nodeId, publicKeyDer: this.identity.key.publicKeyDer },
      { node: this.nodeCertPem, service: this.serviceCertPem },
    );
    if (renewed.node === undefined && renewed.service === undefined) return;
    const keyPem = this.identity.key.privateKeyPem;
    if (renewed.node !== undefined) {
      this.nodeCertPem = renewed.node;
      for (const i of this.interfaces) i.server.setCertificate(keyPem, renewed.node);
      this.host.pipeline?.setNodeCertificate(renewed.node);
    }
    if (renewed.service !== undefined) this.serviceCertPem = renewed.service;
    this.transport?.setIdentity({
      certPem: this.nodeCertPem,
      keyPem,
      serviceCertPem: this.serviceCertPem,
    });
    this.log.info(
      { node: renewed.node !== undefined, service: renewed.service !== undefined },
      "serving renewed certificates",
    );
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.close(true, async (step) => {
      await step();
    });
    this.log.info("node stopped");
  }

  // NodeContext

  state(): NodeStartupState {
    return this.nodeState;
  }

  primaryId(): string | undefined {
    return this.nodeState === "PartOfNetwork" ? this.host.raft.leader : undefined;
  }

  currentView(): number {
    return this.host.raft.term;
  }

  lastTxId(): TxId {
    const seqno = this.store.version;
    return { view: this.viewOf(seqno) ?? this.host.raft.term, seqno };
  }

  commitTxId(): TxId {
    return { view: this.viewOf(this.commitSeqno) ?? FIRST_VIEW, seqno: this.commitSeqno };
  }

  lastSignedSeqno(): number {
    return this.lastSignatureSeqno;
  }

  startupSeqno(): number {
    return this.startupSeqnoValue;
  }

  /** The view a local seqno was written in, as consensus knows it. */
  private viewOf(seqno: number): number | undefined {
    return viewAt(this.localView(), seqno);
  }

  viewHistory(since = 1): TxId[] {
    return this.localView()
      .viewHistory.filter((v) => v.view >= since)
      .map((v) => ({ view: v.view, seqno: v.seqno }));
  }

  txStatus(id: TxId): TxStatus {
    return consensusTxStatus(this.localView(), id);
  }

  /**
   * What this node knows of its log for CCF's status rules: consensus's view history, plus the
   * primary's own entries not yet handed to consensus (appended, awaiting their flush).
   */
  private localView(): LocalView {
    const raft = this.host.raft;
    const history = raft.viewHistory();
    const last = this.store.version;
    if (last > raft.lastIdx && history.at(-1)?.view !== raft.term) {
      history.push({ view: raft.term, seqno: raft.lastIdx + 1 });
    }
    return { viewHistory: history, lastSeqno: last, commitSeqno: this.commitSeqno };
  }

  receipt(id: TxId, format: "json" | "cose" = "json"): Receipt | Buffer | "fetching" | undefined {
    if (this.txStatus(id) !== "Committed") return undefined;
    let state: HistoricalState | "fetching";
    try {
      state = this.historical.get(id.seqno);
    } catch (e) {
      if (e instanceof CcfError && e.code === "TransactionPendingOrUnknown") return undefined;
      throw e;
    }
    if (state === "fetching") return state;
    if (format === "json") return state.receipt;
    const cose = state.cose;
    return cose === undefined ? undefined : buildCoseReceipt(cose.signature, cose.proof, cose);
  }

  selfSignedCertificate(): string {
    return this.identity.selfSignedCert;
  }

  startupConfig(): unknown {
    return startupConfigOf(this.config);
  }

  quote(): Quote {
    return {
      node_id: this.nodeId,
      format: "Insecure_Virtual",
      raw: this.identity.quote,
      endorsements: "",
      measurement: this.identity.measurement,
    };
  }

  sessionMetrics(): SessionMetrics {
    const out: SessionMetrics = { active: 0, peak: 0, interfaces: {} };
    for (const i of this.interfaces) {
      const stats = i.server.stats();
      out.active += stats.active;
      out.peak += stats.peak;
      out.interfaces[i.name] = {
        active: stats.active,
        peak: stats.peak,
        soft_cap: i.softCap,
        hard_cap: i.hardCap,
        errors: {
          parsing: stats.errors.parsing,
          request_payload_too_large: stats.errors.requestPayloadTooLarge,
          request_header_too_large: stats.errors.requestHeaderTooLarge,
        },
      };
    }
    return out;
  }

  isReady(frontend: "app" | "gov"): boolean {
    if (this.nodeState === "PartOfNetwork") return true;
    return frontend === "gov" && this.nodeState === "PartOfPublicNetwork";
  }

  /** The service's status as the KV has it. */
  serviceStatus(): string | undefined {
    const raw = this.store.get(Tables.SERVICE, keyToString(SINGLETON_KEY));
    return raw === undefined
      ? undefined
      : (decodeValue(Tables.SERVICE, raw) as { status: string }).status;
  }
}

/** A published address defaults to the bound one; a port 0 there means "the port we got". */
function publishedAddress(
  published: string | undefined,
  bindConfig: string,
  bound: string,
): string {
  if (published === undefined || published === bindConfig) return bound;
  const p = splitAddress(published);
  if (p.port !== 0) return published;
  return `${p.host.includes(":") ? `[${p.host}]` : p.host}:${splitAddress(bound).port}`;
}

/** A JWT table effect from `apply`: its failure fails the proposal with CCF's message. */
function jwtEffect(body: () => void): void {
  try {
    body();
  } catch (e) {
    if (e instanceof JwtKeysError) throw new Error(e.jsMessage);
    throw e;
  }
}

function forwardingOf(value: string): "always" | "sometimes" | "never" {
  return value === "never" || value === "sometimes" ? value : "always";
}

function redirectionOf(value: string): "none" | "to_primary" | "to_backup" {
  return value === "none" || value === "to_backup" ? value : "to_primary";
}

function shareResponse(
  message: string,
  s: { submittedCount: number; recoveryThreshold: number; fullKeySubmitted: boolean },
): EndpointResponse {
  return {
    status: 200,
    headers: { "content-type": "application/json" },
    body: {
      message,
      submittedCount: s.submittedCount,
      recoveryThreshold: s.recoveryThreshold,
      fullKeySubmitted: s.fullKeySubmitted,
    },
  };
}

/** A member that holds a recovery share once active: it has an encryption key and takes part. */
function isRecoveryMember(tx: Tx, memberId: string): boolean {
  if (tx.map(Tables.MEMBER_ENCRYPTION_KEYS).get(idKey(memberId)) === undefined) return false;
  const raw = tx.map(Tables.MEMBER_INFO).get(idKey(memberId));
  if (raw === undefined) return false;
  const role = (decodeValue(Tables.MEMBER_INFO, raw) as { recovery_role?: unknown }).recovery_role;
  return role !== "NonParticipant";
}
