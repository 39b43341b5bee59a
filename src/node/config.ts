// The node configuration file: CCF's JSON (doc/host_config_schema/cchost_config.json) checked against
// one typebox schema, then normalised into `NodeConfig` with CCF's defaults filled in, sizes in bytes,
// durations in milliseconds and file paths made absolute.

import assert from "node:assert/strict";
import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { isIP, isIPv4, isIPv6 } from "node:net";
import { resolve } from "node:path";
import { type Static, type TSchema, Type } from "@sinclair/typebox";
import { Ajv, type ErrorObject } from "ajv";
import { CcfError } from "../errors.js";

export interface ConfigIssue {
  /** Field path as written in the file: `network.rpc_interfaces.primary_rpc_interface.bind_address`. */
  path: string;
  problem: string;
}

/**
 * A configuration CCF would refuse; the message has one `path: problem` line per issue. Code that
 * finds a problem later (reading a file the config names) may pass such lines as one string.
 */
export class ConfigError extends CcfError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: ConfigIssue[] | string, options?: { cause?: unknown }) {
    const list = typeof issues === "string" ? issues.split("\n").map(toIssue) : issues;
    assert(list.length > 0);
    super("InvalidConfig", list.map((i) => `${i.path}: ${i.problem}`).join("\n"), 500, options);
    this.issues = list;
  }
}

function toIssue(line: string): ConfigIssue {
  const colon = line.indexOf(": ");
  return colon < 0
    ? { path: "config", problem: line }
    : { path: line.slice(0, colon), problem: line.slice(colon + 2) };
}

// ---------------------------------------------------------------------------------------------
// Unit strings (CCF's ds/unit_strings.h): an integer, optional spaces, an optional unit in any case.

type Reading = { value: number } | { problem: string };

const BYTES_PER_UNIT = new Map([
  ["", 1],
  ["b", 1],
  ["kb", 1024],
  ["mb", 1024 ** 2],
  ["gb", 1024 ** 3],
  ["tb", 1024 ** 4],
  ["pb", 1024 ** 5],
]);

// A unit-less time string is in microseconds, as in CCF, so "1000" is one millisecond.
const MICROSECONDS_PER_UNIT = new Map([
  ["", 1],
  ["us", 1],
  ["ms", 1_000],
  ["s", 1_000_000],
  ["min", 60_000_000],
  ["h", 3_600_000_000],
]);

const UNIT_STRING = /^([0-9]+)\s*([A-Za-z]*)$/;

function readUnitString(
  s: string,
  units: Map<string, number>,
  kind: string,
  example: string,
): Reading {
  const match = UNIT_STRING.exec(s);
  const factor = match === null ? undefined : units.get((match[2] ?? "").toLowerCase());
  if (match === null || factor === undefined) {
    return { problem: `${JSON.stringify(s)} is not a ${kind} (e.g. ${example})` };
  }
  const amount = Number(match[1]) * factor;
  if (!Number.isSafeInteger(amount)) return { problem: `${JSON.stringify(s)} is too large` };
  return { value: amount };
}

function readSize(s: string | number): Reading {
  if (typeof s === "number") {
    // A number is already bytes, so parseSize(parseSize(x)) === parseSize(x).
    return Number.isSafeInteger(s) && s >= 0
      ? { value: s }
      : { problem: `${s} is not a size (a whole number of bytes)` };
  }
  return readUnitString(s, BYTES_PER_UNIT, "size", '"5MB"');
}

function readDuration(s: string | number): Reading {
  if (typeof s === "number") {
    // A number is already milliseconds, so parseDuration(parseDuration(x)) === parseDuration(x).
    return Number.isFinite(s) && s >= 0
      ? { value: s }
      : { problem: `${s} is not a duration in milliseconds` };
  }
  const reading = readUnitString(
    s,
    MICROSECONDS_PER_UNIT,
    "duration",
    '"100ms"; units us, ms, s, min, h',
  );
  return "value" in reading ? { value: reading.value / 1000 } : reading;
}

function problemOf(reading: Reading): string | undefined {
  return "problem" in reading ? reading.problem : undefined;
}

function valueOf(reading: Reading, field: string): number {
  if ("problem" in reading) throw new ConfigError([{ path: field, problem: reading.problem }]);
  return reading.value;
}

/** Bytes in a CCF size string (`"5MB"`, `"16KB"`, `"2048"`; 1024-based); a number is bytes. */
export function parseSize(s: string | number, field = "size"): number {
  return valueOf(readSize(s), field);
}

/**
 * Milliseconds in a CCF time string (`"100ms"`, `"1s"`, `"30min"`, `"1h"`, `"500us"`; a bare
 * integer string is microseconds, as in CCF); a number is milliseconds.
 */
export function parseDuration(s: string | number, field = "duration"): number {
  return valueOf(readDuration(s), field);
}

// ---------------------------------------------------------------------------------------------
// Addresses and certificate names.

const DNS_LABEL = "[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?";
const DNS_NAME = new RegExp(`^${DNS_LABEL}(?:\\.${DNS_LABEL})*\\.?$`);

function isHostName(host: string): boolean {
  // All-numeric hosts are meant as IPv4 addresses, so "300.1.1.1" is refused rather than looked up.
  if (/^[0-9.]+$/.test(host)) return isIPv4(host);
  return host.length <= 253 && DNS_NAME.test(host);
}

function readAddress(addr: string): { host: string; port: number } | string {
  const shape = 'must be "host:port"';
  let host: string;
  let port: string;
  const bracketed = /^\[([^\]]*)\]:([^:]*)$/.exec(addr);
  if (bracketed !== null) {
    host = bracketed[1] ?? "";
    port = bracketed[2] ?? "";
    if (!isIPv6(host)) return `${shape} (${JSON.stringify(host)} is not an IPv6 address)`;
  } else {
    const colon = addr.lastIndexOf(":");
    if (colon < 0) return shape;
    host = addr.slice(0, colon);
    port = addr.slice(colon + 1);
    if (host.includes(":")) return `${shape} (write an IPv6 host in brackets: "[::1]:8080")`;
    if (!isHostName(host)) return shape;
  }
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) > 65535) return `${shape} with a port in 0..65535`;
  return { host, port: Number(port) };
}

function addressProblem(addr: string): string | undefined {
  const read = readAddress(addr);
  return typeof read === "string" ? read : undefined;
}

/** Host and port of a `host:port` address; an IPv6 host loses its brackets. Port 0 is "any". */
export function splitAddress(addr: string, field = "address"): { host: string; port: number } {
  const read = readAddress(addr);
  if (typeof read === "string") throw new ConfigError([{ path: field, problem: read }]);
  return read;
}

function subjectAltNameProblem(san: string): string | undefined {
  const ip = /^iPAddress:(.*)$/.exec(san);
  if (ip !== null && isIP(ip[1] ?? "") !== 0) return undefined;
  const dns = /^dNSName:(?:\*\.)?(.*)$/.exec(san);
  if (dns !== null && isHostName(dns[1] ?? "")) return undefined;
  return `${JSON.stringify(san)} must be "iPAddress:<ip>" or "dNSName:<name>"`;
}

function regexProblem(pattern: string): string | undefined {
  try {
    new RegExp(pattern);
    return undefined;
  } catch {
    return `${JSON.stringify(pattern)} is not a regular expression`;
  }
}

// Custom JSON Schema formats, so that one ajv pass reports these alongside type errors.
const FORMATS: Record<string, (s: string) => string | undefined> = {
  "ccf-address": addressProblem,
  // CCF's own generated configs leave published_address empty to mean "same as bind_address".
  "ccf-published-address": (s) => (s === "" ? undefined : addressProblem(s)),
  "ccf-size": (s) => problemOf(readSize(s)),
  "ccf-duration": (s) => problemOf(readDuration(s)),
  "ccf-san": subjectAltNameProblem,
  "ccf-regex": regexProblem,
};

// ---------------------------------------------------------------------------------------------
// The schema. Field names, types and defaults are CCF's; objects that CCF's schema closes with
// `additionalProperties: false` are `Closed` here too. A field with a default is not `Optional`:
// ajv fills it in (useDefaults) before `required` is checked, so the static type is the filled one.

function Closed<T extends Record<string, TSchema>>(properties: T, options: object = {}) {
  return Type.Object(properties, { additionalProperties: false, ...options });
}

function OneOf<const T extends readonly string[]>(values: T, options: object = {}) {
  return Type.Unsafe<T[number]>({ type: "string", enum: [...values], ...options });
}

function NullableOneOf<const T extends readonly string[]>(values: T) {
  return Type.Unsafe<T[number] | null>({ type: ["string", "null"], enum: [...values, null] });
}

const NullableString = Type.Unsafe<string | null>({ type: ["string", "null"] });

// Sizes may also be a JSON integer (bytes), which is unambiguous; CCF itself takes only strings.
function Size(fallback?: string) {
  return Type.Unsafe<string | number>({
    type: ["string", "integer"],
    format: "ccf-size",
    minimum: 0,
    ...(fallback !== undefined && { default: fallback }),
  });
}

// Durations are strings only: a bare number would be microseconds to CCF and surprise everyone.
function Duration(fallback?: string) {
  return Type.Unsafe<string>({
    type: "string",
    format: "ccf-duration",
    ...(fallback !== undefined && { default: fallback }),
  });
}

const Address = Type.String({ format: "ccf-address" });
const PublishedAddress = Type.String({ format: "ccf-published-address" });
const Count = (fallback: number, minimum = 0) => Type.Integer({ minimum, default: fallback });
const Days = (fallback: number) => Type.Integer({ minimum: 1, default: fallback });

const HttpConfigurationSchema = Closed(
  {
    max_body_size: Size("1MB"),
    max_header_size: Size("16KB"),
    max_headers_count: Count(256, 1),
    max_concurrent_streams_count: Count(100, 1),
    initial_window_size: Size("64KB"),
    max_frame_size: Size("16KB"),
  },
  { default: {} },
);

const RedirectionResolverSchema = Closed(
  {
    kind: OneOf(["NodeByRole", "StaticAddress"]),
    target: Type.Optional(
      Type.Object({
        role: Type.Optional(OneOf(["primary", "backup"])),
        address: Type.Optional(Type.String()),
      }),
    ),
  },
  {
    if: { type: "object", required: ["kind"], properties: { kind: { const: "StaticAddress" } } },
    then: {
      required: ["target"],
      properties: { target: { type: "object", required: ["address"] } },
    },
  },
);

// CCF leaves an RPC interface open to unknown fields (its schema does not close it).
const RpcInterfaceSchema = Type.Object({
  bind_address: Address,
  published_address: Type.Optional(PublishedAddress),
  protocol: Type.String({ default: "tcp" }),
  app_protocol: OneOf(["HTTP1", "HTTP2"], { default: "HTTP1" }),
  max_open_sessions_soft: Count(1000),
  max_open_sessions_hard: Count(1010),
  http_configuration: HttpConfigurationSchema,
  endorsement: Closed(
    {
      authority: OneOf(["Node", "Service", "ACME", "Unsecured"]),
      acme_configuration: Type.Optional(Type.String()),
    },
    { default: { authority: "Service" } },
  ),
  accepted_endpoints: Type.Optional(Type.Array(Type.String({ format: "ccf-regex" }))),
  forwarding_timeout_ms: Count(3000),
  enabled_operator_features: Type.Array(OneOf(["SnapshotRead", "LedgerChunkRead"]), {
    default: [],
  }),
  redirections: Type.Optional(
    Closed({
      to_primary: Type.Optional(RedirectionResolverSchema),
      to_backup: Type.Optional(RedirectionResolverSchema),
    }),
  ),
});

// ACME was deprecated by CCF 5; accepted so older configs load, refused if an interface uses it.
const AcmeSchema = Closed({
  configurations: Type.Optional(
    Type.Record(
      Type.String(),
      Closed({
        ca_certs: Type.Optional(Type.Array(Type.String())),
        directory_url: Type.Optional(Type.String()),
        service_dns_name: Type.Optional(Type.String()),
        alternative_names: Type.Optional(Type.Array(Type.String())),
        contact: Type.Optional(Type.Array(Type.String())),
        terms_of_service_agreed: Type.Optional(Type.Boolean()),
        challenge_type: Type.Optional(Type.String()),
        challenge_server_interface: Type.Optional(Type.String()),
      }),
    ),
  ),
});

const NetworkSchema = Closed({
  node_to_node_interface: Closed({
    bind_address: Address,
    published_address: Type.Optional(PublishedAddress),
  }),
  rpc_interfaces: Type.Record(Type.String(), RpcInterfaceSchema, { minProperties: 1 }),
  acme: Type.Optional(AcmeSchema),
});

const RECOVERY_ROLES = ["NonParticipant", "Participant", "Owner"] as const;

const MemberSchema = Closed({
  certificate_file: Type.String(),
  encryption_public_key_file: Type.Optional(NullableString),
  data_json_file: Type.Optional(NullableString),
  recovery_role: Type.Optional(NullableOneOf(RECOVERY_ROLES)),
});

const StartSchema = Closed({
  members: Type.Array(MemberSchema),
  constitution_files: Type.Array(Type.String()),
  service_configuration: Closed(
    {
      // 0 means "as many as there are recovery members"; genesis resolves it, as CCF does.
      recovery_threshold: Type.Integer({ minimum: 0 }),
      maximum_node_certificate_validity_days: Days(365),
      maximum_service_certificate_validity_days: Days(365),
      reconfiguration_type: OneOf(["OneTransaction", "TwoTransaction"], {
        default: "OneTransaction",
      }),
      recent_cose_proposals_window_size: Count(100, 1),
    },
    { default: { recovery_threshold: 0 } },
  ),
  initial_service_certificate_validity_days: Days(1),
  service_subject_name: Type.String({ default: "CN=CCF Service" }),
  cose_signatures: Closed(
    { issuer: Type.String(), subject: Type.String() },
    { default: { issuer: "", subject: "" } },
  ),
  // Beyond CCF (a ccf-ts start-config extension): users, a JS app bundle and an open service in
  // the genesis transaction, so a sandbox serves its app without governance round trips.
  users: Type.Optional(
    Type.Array(
      Closed({ certificate_file: Type.String(), data_json_file: Type.Optional(NullableString) }),
    ),
  ),
  js_app_bundle: Type.Optional(Type.String()),
  open_service: Type.Optional(Type.Boolean()),
});

const JoinSchema = Closed({
  // Checked as an address only on Join nodes: CCF's test harness writes a placeholder elsewhere.
  target_rpc_address: Type.String(),
  retry_timeout: Duration("1000ms"),
  follow_redirect: Type.Boolean({ default: true }),
  fetch_recent_snapshot: Type.Boolean({ default: true }),
  fetch_snapshot_max_attempts: Count(3),
  fetch_snapshot_retry_interval: Duration("1000ms"),
  fetch_snapshot_max_size: Size("10GB"),
  host_data_transparent_statement_path: Type.Optional(Type.String()),
});

const RecoverSchema = Closed({
  initial_service_certificate_validity_days: Days(1),
  previous_service_identity_file: Type.Optional(Type.String()),
  previous_sealed_ledger_secret_location: Type.Optional(Type.String()),
  constitution_files: Type.Optional(Type.Array(Type.String())),
});

// What each command type additionally requires of its own section. CCF's schema has the same
// if/then shape, and like CCF the sections of other types may be present (its test harness writes
// all three) and are only type-checked.
function whenType(type: string, then: object) {
  return {
    if: { type: "object", required: ["type"], properties: { type: { const: type } } },
    then: { type: "object", ...then },
  };
}

const CommandSchema = Type.Object(
  {
    type: OneOf(["Start", "Join", "Recover"]),
    service_certificate_file: Type.String({ default: "service_cert.pem" }),
    start: Type.Optional(StartSchema),
    join: Type.Optional(JoinSchema),
    recover: Type.Optional(RecoverSchema),
  },
  {
    allOf: [
      whenType("Start", {
        required: ["start"],
        properties: {
          start: {
            type: "object",
            properties: {
              members: { type: "array", minItems: 1 },
              constitution_files: { type: "array", minItems: 1 },
            },
          },
        },
      }),
      whenType("Join", {
        required: ["join"],
        properties: {
          join: {
            type: "object",
            properties: { target_rpc_address: { type: "string", format: "ccf-address" } },
          },
        },
      }),
      // CCF 6 refuses to recover without the previous service certificate.
      whenType("Recover", {
        required: ["recover"],
        properties: { recover: { type: "object", required: ["previous_service_identity_file"] } },
      }),
    ],
  },
);

const AttestationSchema = Closed(
  {
    // Open objects: the fields of an endorsement server vary between CCF versions.
    snp_endorsements_servers: Type.Optional(
      Type.Array(
        Type.Object({
          type: Type.Optional(OneOf(["Azure", "AMD", "THIM"])),
          url: Type.Optional(Type.String()),
        }),
      ),
    ),
    environment: Type.Optional(Type.Record(Type.String(), NullableString)),
    snp_security_policy_file: Type.Optional(NullableString),
    snp_uvm_endorsements_file: Type.Optional(NullableString),
    snp_endorsements_file: Type.Optional(NullableString),
    // ccf-ts: the measurement this node's virtual quote reports, instead of CCF's fixed one. Models
    // a code update in virtual mode (governance allows it with add_virtual_measurement).
    virtual_measurement: Type.Optional(Type.String({ minLength: 1 })),
  },
  { default: {} },
);

const ConfigSchema = Closed({
  // CCF 5 and earlier name the enclave library here; ccf-ts has none, so it is only type-checked.
  enclave: Type.Optional(
    Closed({
      file: Type.Optional(Type.String()),
      platform: Type.Optional(OneOf(["SGX", "SNP", "Virtual"])),
      type: Type.Optional(OneOf(["Release", "Debug", "Virtual"])),
    }),
  ),
  network: NetworkSchema,
  command: CommandSchema,
  node_certificate: Closed(
    {
      subject_name: Type.String({ default: "CN=CCF Node" }),
      // ccf-ts's default (CONTRACT.md); an explicit [] gets CCF's behaviour (see normalise).
      subject_alt_names: Type.Array(Type.String({ format: "ccf-san" }), {
        default: ["iPAddress:127.0.0.1"],
      }),
      curve_id: OneOf(["Secp384R1", "Secp256R1"], { default: "Secp384R1" }),
      initial_validity_days: Days(1),
    },
    { default: {} },
  ),
  node_data_json_file: Type.Optional(NullableString),
  service_data_json_file: Type.Optional(NullableString),
  attestation: AttestationSchema,
  ledger: Closed(
    {
      directory: Type.String({ default: "ledger" }),
      read_only_directories: Type.Array(Type.String(), { default: [] }),
      chunk_size: Size("5MB"),
      max_transaction_size: Type.Optional(Size()),
    },
    { default: {} },
  ),
  snapshots: Closed(
    {
      directory: Type.String({ default: "snapshots" }),
      tx_count: Count(10_000, 1),
      read_only_directory: Type.Optional(NullableString),
      min_tx_count: Type.Optional(Type.Integer({ minimum: 0 })),
      time_interval: Type.Optional(Duration()),
      backup_fetch: Type.Optional(
        Closed({
          enabled: Type.Optional(Type.Boolean()),
          max_attempts: Type.Optional(Type.Integer({ minimum: 0 })),
          retry_interval: Type.Optional(Duration()),
          target_rpc_interface: Type.Optional(Type.String()),
          max_size: Type.Optional(Size()),
        }),
      ),
    },
    { default: {} },
  ),
  logging: Closed(
    {
      host_level: OneOf(["Trace", "Debug", "Info", "Fail", "Fatal"], { default: "Info" }),
      format: OneOf(["Text", "Json"], { default: "Text" }),
    },
    { default: {} },
  ),
  consensus: Closed(
    {
      type: OneOf(["CFT"], { default: "CFT" }),
      message_timeout: Duration("100ms"),
      election_timeout: Duration("5000ms"),
      max_uncommitted_tx_count: Count(10_000),
    },
    { default: {} },
  ),
  ledger_signatures: Closed(
    {
      tx_count: Count(5000, 1),
      delay: Duration("1000ms"),
      // ccf-ts: also sign as soon as the primary is idle (a tick with no new transaction), so that
      // commit latency at low load is a tick, not `delay`; under load tx_count and delay apply.
      sign_when_idle: Type.Boolean({ default: true }),
    },
    { default: {} },
  ),
  jwt: Closed(
    {
      key_refresh_interval: Duration("30min"),
      key_refresh_max_response_size: Type.Optional(Size()),
    },
    { default: {} },
  ),
  output_files: Closed(
    {
      node_certificate_file: Type.String({ default: "nodecert.pem" }),
      pid_file: Type.String({ default: "node.pid" }),
      node_to_node_address_file: Type.Optional(Type.String()),
      rpc_addresses_file: Type.Optional(Type.String()),
      sealed_ledger_secret_location: Type.Optional(Type.String()),
    },
    { default: {} },
  ),
  tick_interval: Duration("10ms"),
  slow_io_logging_threshold: Duration("10ms"),
  node_client_interface: Type.Optional(
    Type.Unsafe<string | null>({ type: ["string", "null"], format: "ccf-address" }),
  ),
  client_connection_timeout: Duration("2000ms"),
  // null keeps idle connections open for ever.
  idle_connection_timeout: Type.Unsafe<string | null>({
    type: ["string", "null"],
    format: "ccf-duration",
    default: "60s",
  }),
  // ccf-ts: the number of frontend processes running TLS and HTTP for the RPC interfaces.
  worker_threads: Type.Integer({ minimum: 0, maximum: 64, default: 0 }),
  ignore_first_sigterm: Type.Boolean({ default: false }),
  node_to_node_message_limit: Count(23_726_566, 1),
  historical_cache_soft_limit: Size("512MB"),
  memory: Closed(
    { circuit_size: Size("4MB"), max_msg_size: Size("16MB"), max_fragment_size: Size("64KB") },
    { default: {} },
  ),
  // Added by later CCF versions: type-checked so their configs load, not used by ccf-ts.
  pending_node_timeout: Type.Optional(Duration()),
  files_cleanup: Type.Optional(
    Closed({
      max_snapshots: Type.Optional(Type.Integer({ minimum: 0 })),
      max_committed_ledger_chunks: Type.Optional(Type.Integer({ minimum: 0 })),
      interval: Type.Optional(Duration()),
    }),
  ),
  identity_history_fetch: Type.Optional(
    Closed({
      max_attempts: Type.Optional(Type.Integer({ minimum: 0 })),
      retry_interval: Type.Optional(Duration()),
    }),
  ),
  sealing_recovery: Type.Optional(Type.Object({})),
});

/** The file's content once ajv has checked its types and filled in CCF's defaults. */
type CheckedConfig = Static<typeof ConfigSchema>;

const ajv = new Ajv({ allErrors: true, useDefaults: true, verbose: true, allowUnionTypes: true });
for (const [name, problem] of Object.entries(FORMATS)) {
  ajv.addFormat(name, { type: "string", validate: (s: string) => problem(s) === undefined });
}
const checkConfig = ajv.compile<CheckedConfig>(ConfigSchema);

// ---------------------------------------------------------------------------------------------
// The normalised configuration.

export interface HttpConfiguration {
  max_body_size: number;
  max_header_size: number;
  max_headers_count: number;
  max_concurrent_streams_count: number;
  initial_window_size: number;
  max_frame_size: number;
}

export type RedirectionResolver =
  | { kind: "NodeByRole"; target: { role: "primary" | "backup" } }
  | { kind: "StaticAddress"; target: { address: string } };

export interface RpcInterface {
  bind_address: string;
  /** Defaults to bind_address. */
  published_address: string;
  protocol: "tcp";
  app_protocol: "HTTP1" | "HTTP2";
  /** Beyond this many sessions, new requests get 503. */
  max_open_sessions_soft: number;
  /** Beyond this many sessions, new connections are dropped. */
  max_open_sessions_hard: number;
  http_configuration: HttpConfiguration;
  /** Service: present the service-endorsed node certificate; Node: the self-signed one. */
  endorsement: { authority: "Service" | "Node" };
  /** Regular expressions for the paths served here; absent means all. */
  accepted_endpoints?: string[];
  forwarding_timeout_ms: number;
  enabled_operator_features: Array<"SnapshotRead" | "LedgerChunkRead">;
  /** Present when the interface answers with redirects instead of forwarding. */
  redirections?: { to_primary: RedirectionResolver; to_backup: RedirectionResolver };
}

export interface MemberConfig {
  certificate_file: string;
  encryption_public_key_file?: string;
  data_json_file?: string;
  recovery_role?: "NonParticipant" | "Participant" | "Owner";
}

export interface StartCommand {
  members: MemberConfig[];
  constitution_files: string[];
  service_configuration: {
    recovery_threshold: number;
    maximum_node_certificate_validity_days: number;
    maximum_service_certificate_validity_days: number;
    reconfiguration_type: "OneTransaction" | "TwoTransaction";
    recent_cose_proposals_window_size: number;
  };
  initial_service_certificate_validity_days: number;
  service_subject_name: string;
  cose_signatures: { issuer: string; subject: string };
  /** Beyond CCF: users added at genesis. */
  users?: Array<{ certificate_file: string; data_json_file?: string }>;
  /** Beyond CCF: a bundle.json (or a folder holding one) deployed at genesis. */
  js_app_bundle?: string;
  /** Beyond CCF: the genesis transaction opens the service. */
  open_service?: boolean;
}

export interface JoinCommand {
  target_rpc_address: string;
  retry_timeout: number;
  follow_redirect: boolean;
  fetch_recent_snapshot: boolean;
  fetch_snapshot_max_attempts: number;
  fetch_snapshot_retry_interval: number;
  fetch_snapshot_max_size: number;
  host_data_transparent_statement_path?: string;
}

export interface RecoverCommand {
  initial_service_certificate_validity_days: number;
  previous_service_identity_file: string;
  previous_sealed_ledger_secret_location?: string;
  constitution_files?: string[];
}

/** Only the section of `type` is kept, and it is always present: `start` when type is Start. */
export interface NodeCommand {
  type: "Start" | "Join" | "Recover";
  service_certificate_file: string;
  start?: StartCommand;
  join?: JoinCommand;
  recover?: RecoverCommand;
}

/** A node's configuration: CCF's fields and defaults, sizes in bytes, durations in ms. */
export interface NodeConfig {
  network: {
    node_to_node_interface: { bind_address: string; published_address: string };
    rpc_interfaces: Record<string, RpcInterface>;
  };
  command: NodeCommand;
  node_certificate: {
    subject_name: string;
    /** `iPAddress:<ip>` or `dNSName:<name>`. */
    subject_alt_names: string[];
    curve_id: "Secp384R1" | "Secp256R1";
    initial_validity_days: number;
  };
  node_data_json_file?: string;
  service_data_json_file?: string;
  ledger: { directory: string; read_only_directories: string[]; chunk_size: number };
  snapshots: { directory: string; tx_count: number; read_only_directory?: string };
  consensus: {
    message_timeout: number;
    election_timeout: number;
    max_uncommitted_tx_count: number;
  };
  ledger_signatures: { tx_count: number; delay: number; sign_when_idle: boolean };
  jwt: { key_refresh_interval: number };
  output_files: {
    node_certificate_file: string;
    pid_file: string;
    node_to_node_address_file?: string;
    rpc_addresses_file?: string;
    sealed_ledger_secret_location?: string;
  };
  tick_interval: number;
  slow_io_logging_threshold: number;
  node_client_interface?: string;
  client_connection_timeout: number;
  /** Absent: idle connections are never closed. */
  idle_connection_timeout?: number;
  worker_threads: number;
  ignore_first_sigterm: boolean;
  node_to_node_message_limit: number;
  historical_cache_soft_limit: number;
  logging: { host_level: "Trace" | "Debug" | "Info" | "Fail" | "Fatal"; format: "Text" | "Json" };
  memory: { circuit_size: number; max_msg_size: number; max_fragment_size: number };
  /** SEV-SNP only; kept as written. */
  attestation: Static<typeof AttestationSchema>;
}

// ---------------------------------------------------------------------------------------------
// Parsing.

type PathSegment = string | number;

function formatPath(path: readonly PathSegment[]): string {
  if (path.length === 0) return "config";
  return path.map((s, i) => (typeof s === "number" ? `[${s}]` : i === 0 ? s : `.${s}`)).join("");
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function child(value: unknown, key: PathSegment): unknown {
  if (Array.isArray(value) && typeof key === "number") return value[key];
  if (isRecord(value) && typeof key === "string") return value[key];
  return undefined;
}

/** Turns ajv's JSON pointer into segments, array positions as numbers. */
function pointerToPath(pointer: string, data: unknown): PathSegment[] {
  const path: PathSegment[] = [];
  let value = data;
  for (const raw of pointer.split("/").slice(1)) {
    const key = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    const segment = Array.isArray(value) ? Number(key) : key;
    path.push(segment);
    value = child(value, segment);
  }
  return path;
}

function describeTypes(types: string[]): string {
  const names: Record<string, string> = {
    string: "a string",
    integer: "an integer",
    number: "a number",
    boolean: "a boolean",
    object: "an object",
    array: "an array",
    null: "null",
  };
  return types.map((t) => names[t] ?? t).join(" or ");
}

interface PathIssue {
  path: PathSegment[];
  problem: string;
}

function issueFromAjv(e: ErrorObject, data: unknown): PathIssue | undefined {
  const path = pointerToPath(e.instancePath, data);
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case "if":
      // The failing `then` keyword reports the actual problem.
      return undefined;
    case "required":
      return { path: [...path, String(params.missingProperty)], problem: "is required" };
    case "additionalProperties":
      return { path: [...path, String(params.additionalProperty)], problem: "unknown field" };
    case "type": {
      const format = (e.parentSchema as { format?: string } | undefined)?.format;
      if (format === "ccf-duration")
        return { path, problem: 'must be a time string (e.g. "100ms")' };
      const types = [params.type].flat().map(String).join(",").split(",");
      return { path, problem: `must be ${describeTypes(types)}` };
    }
    case "enum": {
      const allowed = (params.allowedValues as unknown[]).filter((v) => v !== null).map(String);
      return { path, problem: `must be one of ${allowed.join(", ")}` };
    }
    case "format": {
      const problem = FORMATS[String(params.format)]?.(String(e.data));
      return { path, problem: problem ?? e.message ?? "is malformed" };
    }
    case "minimum":
      return { path, problem: `must be at least ${String(params.limit)}` };
    case "minItems":
    case "minProperties":
      return { path, problem: "must not be empty" };
    default:
      return { path, problem: e.message ?? `fails ${e.keyword}` };
  }
}

/** Rules that span fields, or that ccf-ts adds because it implements less than CCF. */
function crossFieldIssues(data: unknown): PathIssue[] {
  const issues: PathIssue[] = [];
  const interfaces = child(child(data, "network"), "rpc_interfaces");
  for (const [name, iface] of Object.entries(isRecord(interfaces) ? interfaces : {})) {
    const at = ["network", "rpc_interfaces", name];
    const protocol = child(iface, "protocol");
    if (typeof protocol === "string" && protocol.toLowerCase() !== "tcp") {
      issues.push({
        path: [...at, "protocol"],
        problem: `${JSON.stringify(protocol)} is not supported (ccf-ts serves tcp only)`,
      });
    }
    const authority = child(child(iface, "endorsement"), "authority");
    if (authority === "ACME" || authority === "Unsecured") {
      issues.push({
        path: [...at, "endorsement", "authority"],
        problem: `"${authority}" is not supported by ccf-ts (use Service or Node)`,
      });
    }
    const soft = child(iface, "max_open_sessions_soft");
    const hard = child(iface, "max_open_sessions_hard");
    if (typeof soft === "number" && typeof hard === "number" && hard < soft) {
      issues.push({
        path: [...at, "max_open_sessions_hard"],
        problem: `must be at least max_open_sessions_soft (${soft})`,
      });
    }
  }
  const command = child(data, "command");
  const members = child(child(command, "start"), "members");
  if (child(command, "type") === "Start" && Array.isArray(members)) {
    members.forEach((member, i) => {
      const role = child(member, "recovery_role");
      // CCF refuses these at genesis: a recovery share needs a key to be encrypted to.
      if (
        (role === "Participant" || role === "Owner") &&
        typeof child(member, "encryption_public_key_file") !== "string"
      ) {
        issues.push({
          path: ["command", "start", "members", i, "encryption_public_key_file"],
          problem: `is required when recovery_role is ${role}`,
        });
      }
    });
  }
  return issues;
}

/** Orders issues as their fields appear in the file; an absent field sorts with its parent. */
function inFileOrder(issues: PathIssue[], json: unknown): PathIssue[] {
  const rank = new Map<string, number>();
  const visit = (value: unknown, path: PathSegment[]) => {
    rank.set(formatPath(path), rank.size);
    if (Array.isArray(value)) value.forEach((v, i) => visit(v, [...path, i]));
    else if (isRecord(value)) for (const [k, v] of Object.entries(value)) visit(v, [...path, k]);
  };
  visit(json, []);
  const rankOf = (path: PathSegment[]) => {
    for (let n = path.length; n > 0; n--) {
      const r = rank.get(formatPath(path.slice(0, n)));
      if (r !== undefined) return r;
    }
    return 0;
  };
  return issues
    .map((issue, order) => ({ issue, order, rank: rankOf(issue.path) }))
    .sort((a, b) => a.rank - b.rank || a.order - b.order)
    .map((x) => x.issue);
}

/**
 * Checks a parsed configuration file and normalises it. Relative file paths are resolved against
 * `baseDir` (CCF resolves them against its working directory). Throws ConfigError listing every
 * problem found, in the order the fields appear in the file.
 */
export function parseNodeConfig(json: unknown, baseDir: string): NodeConfig {
  const data: unknown = structuredClone(json);
  const valid = checkConfig(data);
  const found = [
    ...(checkConfig.errors ?? []).flatMap((e) => issueFromAjv(e, data) ?? []),
    ...crossFieldIssues(data),
  ];
  if (!valid || found.length > 0) {
    const seen = new Set<string>();
    const issues = inFileOrder(found, json)
      .map((i) => ({ path: formatPath(i.path), problem: i.problem }))
      .filter((i) => {
        const key = `${i.path}\n${i.problem}`;
        return seen.has(key) ? false : (seen.add(key), true);
      });
    throw new ConfigError(issues);
  }
  const config = normalise(data, baseDir);
  startupConfigs.set(config, data);
  return config;
}

/** The configurations as written (CCF's fields and units), defaults filled in, by parsed config. */
const startupConfigs = new WeakMap<NodeConfig, unknown>();

/**
 * The configuration `config` was parsed from, in CCF's own fields and units with every default
 * filled in (what CCF's `GET /node/config` shows); undefined for a config built another way.
 */
export function startupConfigOf(config: NodeConfig): unknown {
  return startupConfigs.get(config);
}

/** Reads and parses a configuration file (see parseNodeConfig). */
export function loadNodeConfig(path: string, baseDir = process.cwd()): NodeConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const problem = code === "ENOENT" ? "no such file" : `cannot be read (${String(e)})`;
    throw new ConfigError([{ path, problem }], { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text.replace(/^\uFEFF/, ""));
  } catch (e) {
    throw new ConfigError([{ path, problem: describeJsonError(text, e) }], { cause: e });
  }
  return parseNodeConfig(json, baseDir);
}

// V8 gives an offset ("... in JSON at position 14") or none (input ended); people want a line.
function describeJsonError(text: string, e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  const position = /at position (\d+)/.exec(message);
  const offset = position === null ? text.length : Number(position[1]);
  const before = text.slice(0, offset).split("\n");
  const line = before.length;
  const column = (before.at(-1)?.length ?? 0) + 1;
  const reason = message.replace(/ in JSON at position \d+.*$/, "");
  return `invalid JSON at line ${line}, column ${column}: ${reason}`;
}

// ---------------------------------------------------------------------------------------------
// Normalisation of a checked configuration.

function normalise(c: CheckedConfig, baseDir: string): NodeConfig {
  const path = (p: string) => resolve(baseDir, p);
  const optionalPath = (p: string | null | undefined) =>
    p === null || p === undefined || p === "" ? undefined : path(p);
  const size = (v: string | number, field: string) => parseSize(v, field);
  const ms = (v: string, field: string) => parseDuration(v, field);

  const rpcInterfaces: Record<string, RpcInterface> = {};
  for (const [name, raw] of Object.entries(c.network.rpc_interfaces)) {
    const at = `network.rpc_interfaces.${name}`;
    const http = raw.http_configuration;
    const iface: RpcInterface = {
      bind_address: raw.bind_address,
      published_address: raw.published_address || raw.bind_address,
      protocol: "tcp",
      app_protocol: raw.app_protocol,
      max_open_sessions_soft: raw.max_open_sessions_soft,
      max_open_sessions_hard: raw.max_open_sessions_hard,
      http_configuration: {
        max_body_size: size(http.max_body_size, `${at}.http_configuration.max_body_size`),
        max_header_size: size(http.max_header_size, `${at}.http_configuration.max_header_size`),
        max_headers_count: http.max_headers_count,
        max_concurrent_streams_count: http.max_concurrent_streams_count,
        initial_window_size: size(
          http.initial_window_size,
          `${at}.http_configuration.initial_window_size`,
        ),
        max_frame_size: size(http.max_frame_size, `${at}.http_configuration.max_frame_size`),
      },
      // crossFieldIssues has refused ACME and Unsecured.
      endorsement: { authority: raw.endorsement.authority === "Node" ? "Node" : "Service" },
      forwarding_timeout_ms: raw.forwarding_timeout_ms,
      enabled_operator_features: raw.enabled_operator_features,
    };
    if (raw.accepted_endpoints !== undefined) iface.accepted_endpoints = raw.accepted_endpoints;
    if (raw.redirections !== undefined) {
      iface.redirections = {
        to_primary: redirectionResolver(raw.redirections.to_primary, "primary"),
        to_backup: redirectionResolver(raw.redirections.to_backup, "backup"),
      };
    }
    rpcInterfaces[name] = iface;
  }

  const n2n = c.network.node_to_node_interface;
  const config: NodeConfig = {
    network: {
      node_to_node_interface: {
        bind_address: n2n.bind_address,
        published_address: n2n.published_address || n2n.bind_address,
      },
      rpc_interfaces: rpcInterfaces,
    },
    command: normaliseCommand(c.command, path),
    node_certificate: {
      subject_name: c.node_certificate.subject_name,
      subject_alt_names:
        c.node_certificate.subject_alt_names.length > 0
          ? c.node_certificate.subject_alt_names
          : defaultSubjectAltNames(rpcInterfaces),
      curve_id: c.node_certificate.curve_id,
      initial_validity_days: c.node_certificate.initial_validity_days,
    },
    ledger: {
      directory: path(c.ledger.directory),
      read_only_directories: c.ledger.read_only_directories.map(path),
      chunk_size: size(c.ledger.chunk_size, "ledger.chunk_size"),
    },
    snapshots: { directory: path(c.snapshots.directory), tx_count: c.snapshots.tx_count },
    consensus: {
      message_timeout: ms(c.consensus.message_timeout, "consensus.message_timeout"),
      election_timeout: ms(c.consensus.election_timeout, "consensus.election_timeout"),
      max_uncommitted_tx_count: c.consensus.max_uncommitted_tx_count,
    },
    ledger_signatures: {
      tx_count: c.ledger_signatures.tx_count,
      delay: ms(c.ledger_signatures.delay, "ledger_signatures.delay"),
      sign_when_idle: c.ledger_signatures.sign_when_idle,
    },
    jwt: { key_refresh_interval: ms(c.jwt.key_refresh_interval, "jwt.key_refresh_interval") },
    output_files: {
      node_certificate_file: path(c.output_files.node_certificate_file),
      pid_file: path(c.output_files.pid_file),
    },
    tick_interval: ms(c.tick_interval, "tick_interval"),
    slow_io_logging_threshold: ms(c.slow_io_logging_threshold, "slow_io_logging_threshold"),
    client_connection_timeout: ms(c.client_connection_timeout, "client_connection_timeout"),
    worker_threads: c.worker_threads,
    ignore_first_sigterm: c.ignore_first_sigterm,
    node_to_node_message_limit: c.node_to_node_message_limit,
    historical_cache_soft_limit: size(c.historical_cache_soft_limit, "historical_cache_soft_limit"),
    logging: { host_level: c.logging.host_level, format: c.logging.format },
    memory: {
      circuit_size: size(c.memory.circuit_size, "memory.circuit_size"),
      max_msg_size: size(c.memory.max_msg_size, "memory.max_msg_size"),
      max_fragment_size: size(c.memory.max_fragment_size, "memory.max_fragment_size"),
    },
    attestation: c.attestation,
  };

  // Optional fields are set only when present, so a config compares equal to one written out.
  const nodeData = optionalPath(c.node_data_json_file);
  if (nodeData !== undefined) config.node_data_json_file = nodeData;
  const serviceData = optionalPath(c.service_data_json_file);
  if (serviceData !== undefined) config.service_data_json_file = serviceData;
  const readOnlySnapshots = optionalPath(c.snapshots.read_only_directory);
  if (readOnlySnapshots !== undefined) config.snapshots.read_only_directory = readOnlySnapshots;
  // CCF writes no address file when the name is empty.
  const n2nFile = optionalPath(c.output_files.node_to_node_address_file);
  if (n2nFile !== undefined) config.output_files.node_to_node_address_file = n2nFile;
  const rpcFile = optionalPath(c.output_files.rpc_addresses_file);
  if (rpcFile !== undefined) config.output_files.rpc_addresses_file = rpcFile;
  const sealed = optionalPath(c.output_files.sealed_ledger_secret_location);
  if (sealed !== undefined) config.output_files.sealed_ledger_secret_location = sealed;
  if (typeof c.node_client_interface === "string") {
    config.node_client_interface = c.node_client_interface;
  }
  if (c.idle_connection_timeout !== null) {
    config.idle_connection_timeout = ms(c.idle_connection_timeout, "idle_connection_timeout");
  }
  return config;
}

type CheckedResolver = Static<typeof RedirectionResolverSchema>;

function redirectionResolver(
  raw: CheckedResolver | undefined,
  role: "primary" | "backup",
): RedirectionResolver {
  if (raw?.kind === "StaticAddress") {
    const address = raw.target?.address;
    assert(address !== undefined, "the schema requires target.address for StaticAddress");
    return { kind: "StaticAddress", target: { address } };
  }
  return { kind: "NodeByRole", target: { role: raw?.target?.role ?? role } };
}

// CCF's rule when subject_alt_names is empty: name the main interface's published host.
function defaultSubjectAltNames(interfaces: Record<string, RpcInterface>): string[] {
  const main = interfaces.primary_rpc_interface ?? Object.values(interfaces)[0];
  assert(main !== undefined, "the schema requires at least one RPC interface");
  const { host } = splitAddress(main.published_address);
  return [isIP(host) !== 0 ? `iPAddress:${host}` : `dNSName:${host}`];
}

function normaliseCommand(c: CheckedConfig["command"], path: (p: string) => string): NodeCommand {
  const service_certificate_file = path(c.service_certificate_file);
  switch (c.type) {
    case "Start": {
      const s = c.start;
      assert(s !== undefined, "the schema requires command.start for Start");
      return {
        type: "Start",
        service_certificate_file,
        start: {
          members: s.members.map((m) => {
            const member: MemberConfig = { certificate_file: path(m.certificate_file) };
            if (typeof m.encryption_public_key_file === "string") {
              member.encryption_public_key_file = path(m.encryption_public_key_file);
            }
            if (typeof m.data_json_file === "string")
              member.data_json_file = path(m.data_json_file);
            if (typeof m.recovery_role === "string") member.recovery_role = m.recovery_role;
            return member;
          }),
          constitution_files: s.constitution_files.map(path),
          service_configuration: { ...s.service_configuration },
          initial_service_certificate_validity_days: s.initial_service_certificate_validity_days,
          service_subject_name: s.service_subject_name,
          cose_signatures: { ...s.cose_signatures },
          ...(s.users === undefined
            ? {}
            : {
                users: s.users.map((u) => ({
                  certificate_file: path(u.certificate_file),
                  ...(typeof u.data_json_file === "string"
                    ? { data_json_file: path(u.data_json_file) }
                    : {}),
                })),
              }),
          ...(s.js_app_bundle === undefined ? {} : { js_app_bundle: path(s.js_app_bundle) }),
          ...(s.open_service === undefined ? {} : { open_service: s.open_service }),
        },
      };
    }
    case "Join": {
      const j = c.join;
      assert(j !== undefined, "the schema requires command.join for Join");
      const join: JoinCommand = {
        target_rpc_address: j.target_rpc_address,
        retry_timeout: parseDuration(j.retry_timeout, "command.join.retry_timeout"),
        follow_redirect: j.follow_redirect,
        fetch_recent_snapshot: j.fetch_recent_snapshot,
        fetch_snapshot_max_attempts: j.fetch_snapshot_max_attempts,
        fetch_snapshot_retry_interval: parseDuration(
          j.fetch_snapshot_retry_interval,
          "command.join.fetch_snapshot_retry_interval",
        ),
        fetch_snapshot_max_size: parseSize(
          j.fetch_snapshot_max_size,
          "command.join.fetch_snapshot_max_size",
        ),
      };
      if (j.host_data_transparent_statement_path !== undefined) {
        join.host_data_transparent_statement_path = path(j.host_data_transparent_statement_path);
      }
      return { type: "Join", service_certificate_file, join };
    }
    case "Recover": {
      const r = c.recover;
      const identity = r?.previous_service_identity_file;
      assert(r !== undefined && identity !== undefined, "the schema requires command.recover");
      const recover: RecoverCommand = {
        initial_service_certificate_validity_days: r.initial_service_certificate_validity_days,
        previous_service_identity_file: path(identity),
      };
      if (r.previous_sealed_ledger_secret_location !== undefined) {
        recover.previous_sealed_ledger_secret_location = path(
          r.previous_sealed_ledger_secret_location,
        );
      }
      if (r.constitution_files !== undefined) {
        recover.constitution_files = r.constitution_files.map(path);
      }
      return { type: "Recover", service_certificate_file, recover };
    }
  }
}

/**
 * The files a node reads at start that are missing or unreadable, named by their field (what
 * `ccf-ts node --check` reports beyond the schema): members' and users' certificates, keys and
 * data, constitution files, the app bundle, the service certificate a joiner or a recovery reads,
 * the previous service identity, node and service data, and the read-only ledger directories.
 */
export function inputFileIssues(config: NodeConfig): ConfigIssue[] {
  const inputs: Array<{ path: string; file: string; directory?: boolean }> = [];
  const cmd = config.command;
  const add = (path: string, file: string | undefined, directory = false) => {
    if (file !== undefined) inputs.push({ path, file, directory });
  };
  if (cmd.start !== undefined) {
    cmd.start.members.forEach((m, i) => {
      add(`command.start.members[${i}].certificate_file`, m.certificate_file);
      add(`command.start.members[${i}].encryption_public_key_file`, m.encryption_public_key_file);
      add(`command.start.members[${i}].data_json_file`, m.data_json_file);
    });
    cmd.start.users?.forEach((u, i) => {
      add(`command.start.users[${i}].certificate_file`, u.certificate_file);
      add(`command.start.users[${i}].data_json_file`, u.data_json_file);
    });
    cmd.start.constitution_files.forEach((f, i) =>
      add(`command.start.constitution_files[${i}]`, f),
    );
    add("command.start.js_app_bundle", cmd.start.js_app_bundle);
  } else {
    // A joiner and a recovering node read the service certificate; a starting node writes it.
    add("command.service_certificate_file", cmd.service_certificate_file);
  }
  if (cmd.recover !== undefined) {
    add(
      "command.recover.previous_service_identity_file",
      cmd.recover.previous_service_identity_file,
    );
    cmd.recover.constitution_files?.forEach((f, i) =>
      add(`command.recover.constitution_files[${i}]`, f),
    );
  }
  add("node_data_json_file", config.node_data_json_file);
  add("service_data_json_file", config.service_data_json_file);
  config.ledger.read_only_directories.forEach((d, i) =>
    add(`ledger.read_only_directories[${i}]`, d, true),
  );
  const issues: ConfigIssue[] = [];
  for (const input of inputs) {
    let problem: string | undefined;
    try {
      const stat = statSync(input.file);
      if (input.directory && !stat.isDirectory()) problem = "is not a directory";
      else accessSync(input.file, constants.R_OK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      problem = code === "ENOENT" ? "no such file or directory" : `cannot be read (${code})`;
    }
    if (problem !== undefined)
      issues.push({ path: input.path, problem: `${input.file}: ${problem}` });
  }
  return issues;
}
