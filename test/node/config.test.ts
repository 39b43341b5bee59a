// The node configuration file: CCF's configs parse with CCF's defaults, and every kind of mistake is
// reported with the field path, all at once, in file order.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CcfError } from "../../src/errors.js";
import {
  ConfigError,
  loadNodeConfig,
  type NodeConfig,
  parseDuration,
  parseNodeConfig,
  parseSize,
  splitAddress,
} from "../../src/node/config.js";

const MB = 1024 * 1024;

// Shaped like CCF's samples/config/start_config.json (a full Start config with two interfaces).
const sampleStartConfig = {
  enclave: { file: "libjs_generic.virtual.so", platform: "Virtual", type: "Release" },
  network: {
    node_to_node_interface: { bind_address: "127.0.0.1:9001" },
    rpc_interfaces: {
      primary_rpc_interface: {
        bind_address: "127.0.0.1:9000",
        published_address: "ledger.example.org:443",
        max_open_sessions_soft: 500,
        max_open_sessions_hard: 510,
      },
      operator_interface: {
        bind_address: "127.0.0.1:9002",
        published_address: "ops.example.org:9443",
        max_open_sessions_soft: 20,
        max_open_sessions_hard: 25,
        endorsement: { authority: "Node" },
      },
    },
  },
  node_certificate: {
    subject_name: "CN=Example Node",
    subject_alt_names: ["iPAddress:127.0.0.1", "dNSName:ledger.example.org"],
    curve_id: "Secp256R1",
    initial_validity_days: 3,
  },
  command: {
    type: "Start",
    service_certificate_file: "out/service.pem",
    start: {
      constitution_files: ["gov/validate.js", "gov/apply.js", "gov/resolve.js", "gov/actions.js"],
      members: [
        { certificate_file: "ids/alice_cert.pem", encryption_public_key_file: "ids/alice_enc.pem" },
      ],
      service_configuration: { recovery_threshold: 1, maximum_node_certificate_validity_days: 30 },
      initial_service_certificate_validity_days: 2,
    },
  },
  ledger: { directory: "data/ledger", read_only_directories: [], chunk_size: "2MB" },
  snapshots: { directory: "data/snapshots", tx_count: 500 },
  logging: { host_level: "Info", format: "Text" },
  consensus: { type: "CFT", message_timeout: "50ms", election_timeout: "4000ms" },
  ledger_signatures: { tx_count: 1000, delay: "1s" },
  jwt: { key_refresh_interval: "15min" },
  output_files: {
    node_certificate_file: "out/node.pem",
    pid_file: "out/node.pid",
    node_to_node_address_file: "out/node.node_address",
    rpc_addresses_file: "out/node.rpc_addresses",
  },
  tick_interval: "1ms",
  slow_io_logging_threshold: "10000us",
  client_connection_timeout: "2000ms",
  worker_threads: 0,
  memory: { circuit_size: "4MB", max_msg_size: "16MB", max_fragment_size: "64KB" },
};

function minimalConfig(): Record<string, unknown> {
  return {
    network: {
      node_to_node_interface: { bind_address: "127.0.0.1:8001" },
      rpc_interfaces: { primary_rpc_interface: { bind_address: "127.0.0.1:8000" } },
    },
    command: {
      type: "Start",
      start: { members: [{ certificate_file: "m0.pem" }], constitution_files: ["c.js"] },
    },
  };
}

/** Parses and returns the ConfigError's lines; fails if the config is accepted. */
function problems(json: unknown): string[] {
  try {
    parseNodeConfig(json, "/srv");
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.message.split("\n");
  }
  assert.fail("the config was accepted");
}

function withField(path: string, value: unknown): Record<string, unknown> {
  const config = minimalConfig();
  const keys = path.split(".");
  let node = config;
  for (const key of keys.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys.at(-1) as string] = value;
  return config;
}

describe("parseNodeConfig", () => {
  it("parses a full CCF start config, converting sizes and durations and resolving paths", () => {
    const config = parseNodeConfig(sampleStartConfig, "/srv/node0");
    const primary = config.network.rpc_interfaces.primary_rpc_interface;
    const operator = config.network.rpc_interfaces.operator_interface;
    assert.ok(primary !== undefined && operator !== undefined);
    assert.equal(primary.published_address, "ledger.example.org:443");
    assert.equal(primary.max_open_sessions_soft, 500);
    assert.deepEqual(primary.endorsement, { authority: "Service" });
    assert.deepEqual(operator.endorsement, { authority: "Node" });
    assert.equal(config.network.node_to_node_interface.published_address, "127.0.0.1:9001");

    assert.equal(config.command.type, "Start");
    assert.equal(config.command.service_certificate_file, "/srv/node0/out/service.pem");
    const start = config.command.start;
    assert.ok(start !== undefined);
    assert.deepEqual(start.members, [
      {
        certificate_file: "/srv/node0/ids/alice_cert.pem",
        encryption_public_key_file: "/srv/node0/ids/alice_enc.pem",
      },
    ]);
    assert.equal(start.constitution_files[3], "/srv/node0/gov/actions.js");
    assert.deepEqual(start.service_configuration, {
      recovery_threshold: 1,
      maximum_node_certificate_validity_days: 30,
      maximum_service_certificate_validity_days: 365,
      reconfiguration_type: "OneTransaction",
      recent_cose_proposals_window_size: 100,
    });
    assert.equal(start.initial_service_certificate_validity_days, 2);

    assert.deepEqual(config.node_certificate, {
      subject_name: "CN=Example Node",
      subject_alt_names: ["iPAddress:127.0.0.1", "dNSName:ledger.example.org"],
      curve_id: "Secp256R1",
      initial_validity_days: 3,
    });
    assert.deepEqual(config.ledger, {
      directory: "/srv/node0/data/ledger",
      read_only_directories: [],
      chunk_size: 2 * MB,
    });
    assert.deepEqual(config.snapshots, { directory: "/srv/node0/data/snapshots", tx_count: 500 });
    assert.deepEqual(config.consensus, {
      message_timeout: 50,
      election_timeout: 4000,
      max_uncommitted_tx_count: 10000,
    });
    assert.deepEqual(config.ledger_signatures, {
      tx_count: 1000,
      delay: 1000,
      sign_when_idle: true,
    });
    assert.equal(config.jwt.key_refresh_interval, 15 * 60 * 1000);
    assert.deepEqual(config.output_files, {
      node_certificate_file: "/srv/node0/out/node.pem",
      pid_file: "/srv/node0/out/node.pid",
      node_to_node_address_file: "/srv/node0/out/node.node_address",
      rpc_addresses_file: "/srv/node0/out/node.rpc_addresses",
    });
    assert.equal(config.tick_interval, 1);
    assert.equal(config.slow_io_logging_threshold, 10);
    assert.deepEqual(config.memory, {
      circuit_size: 4 * MB,
      max_msg_size: 16 * MB,
      max_fragment_size: 64 * 1024,
    });
  });

  it("fills in CCF's defaults for everything a minimal config leaves out", () => {
    const config = parseNodeConfig(minimalConfig(), "/srv");
    const iface = config.network.rpc_interfaces.primary_rpc_interface;
    assert.deepEqual(iface, {
      bind_address: "127.0.0.1:8000",
      published_address: "127.0.0.1:8000",
      protocol: "tcp",
      app_protocol: "HTTP1",
      max_open_sessions_soft: 1000,
      max_open_sessions_hard: 1010,
      http_configuration: {
        max_body_size: MB,
        max_header_size: 16 * 1024,
        max_headers_count: 256,
        max_concurrent_streams_count: 100,
        initial_window_size: 64 * 1024,
        max_frame_size: 16 * 1024,
      },
      endorsement: { authority: "Service" },
      forwarding_timeout_ms: 3000,
      enabled_operator_features: [],
    });
    assert.equal(config.command.service_certificate_file, "/srv/service_cert.pem");
    assert.deepEqual(config.command.start?.service_configuration, {
      recovery_threshold: 0,
      maximum_node_certificate_validity_days: 365,
      maximum_service_certificate_validity_days: 365,
      reconfiguration_type: "OneTransaction",
      recent_cose_proposals_window_size: 100,
    });
    assert.equal(config.command.start?.initial_service_certificate_validity_days, 1);
    assert.equal(config.command.start?.service_subject_name, "CN=CCF Service");
    assert.deepEqual(config.command.start?.cose_signatures, { issuer: "", subject: "" });
    assert.deepEqual(config.node_certificate, {
      subject_name: "CN=CCF Node",
      subject_alt_names: ["iPAddress:127.0.0.1"],
      curve_id: "Secp384R1",
      initial_validity_days: 1,
    });
    assert.deepEqual(config.ledger, {
      directory: "/srv/ledger",
      read_only_directories: [],
      chunk_size: 5 * MB,
    });
    assert.deepEqual(config.snapshots, { directory: "/srv/snapshots", tx_count: 10000 });
    assert.deepEqual(config.consensus, {
      message_timeout: 100,
      election_timeout: 5000,
      max_uncommitted_tx_count: 10000,
    });
    assert.deepEqual(config.ledger_signatures, {
      tx_count: 5000,
      delay: 1000,
      sign_when_idle: true,
    });
    assert.deepEqual(config.output_files, {
      node_certificate_file: "/srv/nodecert.pem",
      pid_file: "/srv/node.pid",
    });
    assert.equal(config.jwt.key_refresh_interval, 30 * 60 * 1000);
    assert.equal(config.tick_interval, 10);
    assert.equal(config.idle_connection_timeout, 60_000);
    assert.equal(config.client_connection_timeout, 2000);
    assert.equal(config.worker_threads, 0);
    assert.equal(config.ignore_first_sigterm, false);
    assert.equal(config.historical_cache_soft_limit, 512 * MB);
    assert.deepEqual(config.logging, { host_level: "Info", format: "Text" });
    assert.equal(config.node_data_json_file, undefined);
  });

  it("accepts configs written by CCF's test harness: all three command sections, nulls, empty names", () => {
    const harness = (type: string) => ({
      ...minimalConfig(),
      network: {
        node_to_node_interface: { bind_address: "127.0.0.1:0", published_address: "" },
        rpc_interfaces: {
          primary_rpc_interface: { bind_address: "127.0.0.1:0", app_protocol: "HTTP2" },
        },
      },
      node_data_json_file: null,
      service_data_json_file: null,
      attestation: {
        snp_endorsements_servers: [],
        environment: { security_policy: null, uvm_endorsements: null },
      },
      command: {
        type,
        service_certificate_file: "service_cert.pem",
        start: {
          members: [{ certificate_file: "m0.pem", encryption_public_key_file: null }],
          constitution_files: ["constitution.js"],
          service_configuration: { recovery_threshold: 0, reconfiguration_type: "OneTransaction" },
        },
        join: {
          retry_timeout: "1000ms",
          target_rpc_address: type === "Join" ? "10.0.0.1:443" : "",
        },
        recover: { previous_service_identity_file: "previous_service_cert.pem" },
      },
      snapshots: { directory: "snapshots", tx_count: 10, read_only_directory: null },
      output_files: { node_to_node_address_file: "", rpc_addresses_file: "rpc_addresses.json" },
      node_client_interface: null,
      ignore_first_sigterm: false,
    });

    const start = parseNodeConfig(harness("Start"), "/w");
    assert.equal(start.network.node_to_node_interface.published_address, "127.0.0.1:0");
    assert.equal(start.network.rpc_interfaces.primary_rpc_interface?.app_protocol, "HTTP2");
    assert.deepEqual(start.command.start?.members, [{ certificate_file: "/w/m0.pem" }]);
    assert.equal(start.command.join, undefined, "only the section of the command type is kept");
    assert.equal(start.output_files.node_to_node_address_file, undefined);
    assert.equal(start.output_files.rpc_addresses_file, "/w/rpc_addresses.json");
    assert.equal(start.snapshots.read_only_directory, undefined);

    const joiner = parseNodeConfig(harness("Join"), "/w");
    assert.deepEqual(joiner.command.join, {
      target_rpc_address: "10.0.0.1:443",
      retry_timeout: 1000,
      follow_redirect: true,
      fetch_recent_snapshot: true,
      fetch_snapshot_max_attempts: 3,
      fetch_snapshot_retry_interval: 1000,
      fetch_snapshot_max_size: 10 * 1024 * MB,
    });

    const recovery = parseNodeConfig(harness("Recover"), "/w");
    assert.deepEqual(recovery.command.recover, {
      initial_service_certificate_validity_days: 1,
      previous_service_identity_file: "/w/previous_service_cert.pem",
    });
  });

  it("keeps unknown fields inside an RPC interface, which CCF's schema leaves open", () => {
    const config = withField("network.rpc_interfaces", {
      primary_rpc_interface: { bind_address: "127.0.0.1:8000", some_future_option: true },
    });
    assert.doesNotThrow(() => parseNodeConfig(config, "/srv"));
  });

  it("accepts IPv6 and DNS addresses and port 0", () => {
    const config = parseNodeConfig(
      withField("network.rpc_interfaces", {
        v6: { bind_address: "[::1]:0", published_address: "[2001:db8::7]:8443" },
        dns: { bind_address: "node-1.ccf.internal:443" },
      }),
      "/srv",
    );
    assert.equal(config.network.rpc_interfaces.v6?.published_address, "[2001:db8::7]:8443");
    assert.equal(config.network.rpc_interfaces.dns?.bind_address, "node-1.ccf.internal:443");
  });

  it("fills both redirection resolvers once redirections are enabled", () => {
    const config = parseNodeConfig(
      withField("network.rpc_interfaces", {
        primary_rpc_interface: {
          bind_address: "127.0.0.1:8000",
          redirections: {
            to_primary: { kind: "StaticAddress", target: { address: "lb.example.org" } },
          },
        },
      }),
      "/srv",
    );
    assert.deepEqual(config.network.rpc_interfaces.primary_rpc_interface?.redirections, {
      to_primary: { kind: "StaticAddress", target: { address: "lb.example.org" } },
      to_backup: { kind: "NodeByRole", target: { role: "backup" } },
    });
  });

  it("names the main interface's published host in the certificate when subject_alt_names is []", () => {
    const config = withField("node_certificate.subject_alt_names", []);
    const interfaces = {
      primary_rpc_interface: {
        bind_address: "0.0.0.0:8000",
        published_address: "ccf.example.org:8000",
      },
    };
    (config.network as Record<string, unknown>).rpc_interfaces = interfaces;
    const parsed: NodeConfig = parseNodeConfig(config, "/srv");
    assert.deepEqual(parsed.node_certificate.subject_alt_names, ["dNSName:ccf.example.org"]);
  });
});

describe("parseNodeConfig errors", () => {
  it("is a ConfigError with code InvalidConfig and one issue per problem", () => {
    try {
      parseNodeConfig({ command: { type: "Start" } }, "/srv");
      assert.fail("accepted");
    } catch (e) {
      assert.ok(e instanceof ConfigError && e instanceof CcfError);
      assert.equal(e.code, "InvalidConfig");
      assert.deepEqual(e.issues[0], { path: "network", problem: "is required" });
    }
  });

  it("names a missing required field", () => {
    const config = minimalConfig();
    delete (config.network as Record<string, unknown>).node_to_node_interface;
    assert.deepEqual(problems(config), ["network.node_to_node_interface: is required"]);
    assert.deepEqual(problems(withField("network.rpc_interfaces", { primary_rpc_interface: {} })), [
      "network.rpc_interfaces.primary_rpc_interface.bind_address: is required",
    ]);
  });

  it("requires at least one RPC interface", () => {
    assert.deepEqual(problems(withField("network.rpc_interfaces", {})), [
      "network.rpc_interfaces: must not be empty",
    ]);
  });

  it("names a field of the wrong type", () => {
    assert.deepEqual(problems(withField("ledger_signatures.tx_count", "5000")), [
      "ledger_signatures.tx_count: must be an integer",
    ]);
    assert.deepEqual(problems(withField("ignore_first_sigterm", "yes")), [
      "ignore_first_sigterm: must be a boolean",
    ]);
    assert.deepEqual(problems(withField("ledger", [])), ["ledger: must be an object"]);
    assert.deepEqual(problems(withField("node_data_json_file", 3)), [
      "node_data_json_file: must be a string or null",
    ]);
    assert.deepEqual(problems(withField("consensus.election_timeout", 4000)), [
      'consensus.election_timeout: must be a time string (e.g. "100ms")',
    ]);
    assert.deepEqual(problems([]), ["config: must be an object"]);
  });

  it("bounds worker_threads (frontend processes) to 0-64", () => {
    assert.equal(parseNodeConfig(withField("worker_threads", 2), "/srv").worker_threads, 2);
    for (const bad of [-1, 65]) {
      const [problem] = problems(withField("worker_threads", bad));
      assert.match(problem ?? "", /^worker_threads: must be/);
    }
  });

  it("lists the allowed values of an enum", () => {
    assert.deepEqual(problems(withField("command.type", "Begin")), [
      "command.type: must be one of Start, Join, Recover",
    ]);
    assert.deepEqual(problems(withField("node_certificate.curve_id", "Secp521R1")), [
      "node_certificate.curve_id: must be one of Secp384R1, Secp256R1",
    ]);
  });

  it("refuses addresses that are not host:port", () => {
    const path = "network.rpc_interfaces.primary_rpc_interface.bind_address";
    for (const [address, problem] of [
      ["127.0.0.1", 'must be "host:port"'],
      [":8080", 'must be "host:port"'],
      ["my host:80", 'must be "host:port"'],
      ["300.1.1.1:80", 'must be "host:port"'],
      ["127.0.0.1:http", 'must be "host:port" with a port in 0..65535'],
      ["127.0.0.1:65536", 'must be "host:port" with a port in 0..65535'],
      ["::1:8080", 'must be "host:port" (write an IPv6 host in brackets: "[::1]:8080")'],
      ["[fe80::zz]:80", 'must be "host:port" ("fe80::zz" is not an IPv6 address)'],
    ]) {
      const config = withField("network.rpc_interfaces", {
        primary_rpc_interface: { bind_address: address },
      });
      assert.deepEqual(problems(config), [`${path}: ${problem}`], address);
    }
  });

  it("checks the join target address only on Join nodes", () => {
    const join = { target_rpc_address: "None" };
    assert.deepEqual(problems(withField("command", { type: "Join", join })), [
      'command.join.target_rpc_address: must be "host:port"',
    ]);
    const start = { ...(minimalConfig().command as object), join };
    assert.doesNotThrow(() => parseNodeConfig(withField("command", start), "/srv"));
  });

  it("explains a bad size", () => {
    assert.deepEqual(problems(withField("ledger.chunk_size", "5XB")), [
      'ledger.chunk_size: "5XB" is not a size (e.g. "5MB")',
    ]);
  });

  it("explains a bad duration", () => {
    assert.deepEqual(problems(withField("ledger_signatures.delay", "2d")), [
      'ledger_signatures.delay: "2d" is not a duration (e.g. "100ms"; units us, ms, s, min, h)',
    ]);
  });

  it("refuses unknown fields at the top level and in closed sections", () => {
    assert.deepEqual(problems(withField("foo", 1)), ["foo: unknown field"]);
    assert.deepEqual(problems(withField("ledger.chunk_sise", "1MB")), [
      "ledger.chunk_sise: unknown field",
    ]);
    assert.deepEqual(
      problems(withField("command.start.members", [{ certificate_file: "m.pem", cert: "x" }])),
      ["command.start.members[0].cert: unknown field"],
    );
  });

  it("requires command.start, with members and a constitution, on a Start node", () => {
    assert.deepEqual(problems(withField("command", { type: "Start" })), [
      "command.start: is required",
    ]);
    assert.deepEqual(
      problems(withField("command.start", { members: [], constitution_files: [] })),
      [
        "command.start.members: must not be empty",
        "command.start.constitution_files: must not be empty",
      ],
    );
  });

  it("requires command.join on a Join node and the previous identity on a Recover node", () => {
    assert.deepEqual(problems(withField("command", { type: "Join" })), [
      "command.join: is required",
    ]);
    assert.deepEqual(problems(withField("command", { type: "Recover", recover: {} })), [
      "command.recover.previous_service_identity_file: is required",
    ]);
  });

  it("refuses a recovery member without an encryption key", () => {
    const members = [{ certificate_file: "m.pem", recovery_role: "Participant" }];
    assert.deepEqual(problems(withField("command.start.members", members)), [
      "command.start.members[0].encryption_public_key_file: is required when recovery_role is Participant",
    ]);
  });

  it("refuses what ccf-ts does not implement: udp, ACME and unsecured interfaces", () => {
    const path = "network.rpc_interfaces.primary_rpc_interface";
    const config = withField("network.rpc_interfaces", {
      primary_rpc_interface: {
        bind_address: "127.0.0.1:8000",
        protocol: "udp",
        endorsement: { authority: "Unsecured" },
      },
    });
    assert.deepEqual(problems(config), [
      `${path}.protocol: "udp" is not supported (ccf-ts serves tcp only)`,
      `${path}.endorsement.authority: "Unsecured" is not supported by ccf-ts (use Service or Node)`,
    ]);
  });

  it("refuses bad certificate names and endpoint patterns", () => {
    assert.deepEqual(problems(withField("node_certificate.subject_alt_names", ["IP:127.0.0.1"])), [
      'node_certificate.subject_alt_names[0]: "IP:127.0.0.1" must be "iPAddress:<ip>" or "dNSName:<name>"',
    ]);
    const config = withField("network.rpc_interfaces", {
      primary_rpc_interface: { bind_address: "127.0.0.1:8000", accepted_endpoints: ["/app/(log"] },
    });
    assert.deepEqual(problems(config), [
      'network.rpc_interfaces.primary_rpc_interface.accepted_endpoints[0]: "/app/(log" is not a regular expression',
    ]);
  });

  it("reports every problem at once, in the order the fields appear in the file", () => {
    const config = {
      tick_interval: "soon",
      network: {
        node_to_node_interface: { bind_address: "127.0.0.1" },
        rpc_interfaces: { primary_rpc_interface: { bind_address: "127.0.0.1:8000" } },
      },
      ledger: { chunk_size: "5XB", flavour: "blue" },
      command: { type: "Begin" },
    };
    assert.deepEqual(problems(config), [
      'tick_interval: "soon" is not a duration (e.g. "100ms"; units us, ms, s, min, h)',
      'network.node_to_node_interface.bind_address: must be "host:port"',
      'ledger.chunk_size: "5XB" is not a size (e.g. "5MB")',
      "ledger.flavour: unknown field",
      "command.type: must be one of Start, Join, Recover",
    ]);
  });

  it("does not change the object it is given", () => {
    const config = minimalConfig();
    const copy = structuredClone(config);
    parseNodeConfig(config, "/srv");
    assert.deepEqual(config, copy);
  });
});

describe("loadNodeConfig", () => {
  it("reads a file, resolving relative paths against the base directory", () => {
    const dir = mkdtempSync(join(tmpdir(), "ccf-ts-config-"));
    try {
      const file = join(dir, "config.json");
      writeFileSync(file, JSON.stringify(minimalConfig()));
      const config = loadNodeConfig(file, "/srv/n1");
      assert.equal(config.ledger.directory, "/srv/n1/ledger");
      assert.equal(loadNodeConfig(file).ledger.directory, join(process.cwd(), "ledger"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("names a missing file", () => {
    const file = join(tmpdir(), "ccf-ts-no-such-config.json");
    assert.throws(() => loadNodeConfig(file), {
      name: "ConfigError",
      message: `${file}: no such file`,
    });
  });

  it("gives the line and column of invalid JSON", () => {
    const dir = mkdtempSync(join(tmpdir(), "ccf-ts-config-"));
    try {
      const file = join(dir, "config.json");
      writeFileSync(file, '{\n  "network": {},\n  "command": { "type": "Start", }\n}\n');
      assert.throws(
        () => loadNodeConfig(file),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError);
          assert.match(e.message, new RegExp(`^${file}: invalid JSON at line 3, column 33: `));
          return true;
        },
      );
      writeFileSync(file, '{"network": ');
      assert.throws(() => loadNodeConfig(file), {
        message: `${file}: invalid JSON at line 1, column 13: Unexpected end of JSON input`,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("parseSize", () => {
  it("reads CCF size strings, 1024-based", () => {
    for (const [input, bytes] of [
      ["0", 0],
      ["2048", 2048],
      ["12B", 12],
      ["3KB", 3 * 1024],
      ["3 KB", 3 * 1024],
      ["3kb", 3 * 1024],
      ["5MB", 5 * MB],
      ["1024KB", MB],
      ["10GB", 10 * 1024 * MB],
      ["2TB", 2 * 1024 ** 4],
      ["1PB", 1024 ** 5],
      [4096, 4096],
    ] as const) {
      assert.equal(parseSize(input), bytes, String(input));
    }
  });

  it("refuses malformed, fractional, negative and oversized values, naming the field", () => {
    for (const [input, problem] of [
      ["", '"" is not a size (e.g. "5MB")'],
      ["MB", '"MB" is not a size (e.g. "5MB")'],
      ["5XB", '"5XB" is not a size (e.g. "5MB")'],
      ["1.5MB", '"1.5MB" is not a size (e.g. "5MB")'],
      ["-1", '"-1" is not a size (e.g. "5MB")'],
      ["5ms", '"5ms" is not a size (e.g. "5MB")'],
      ["99999999PB", '"99999999PB" is too large'],
      [1.5, "1.5 is not a size (a whole number of bytes)"],
      [-1, "-1 is not a size (a whole number of bytes)"],
    ] as const) {
      assert.throws(() => parseSize(input, "ledger.chunk_size"), {
        name: "ConfigError",
        message: `ledger.chunk_size: ${problem}`,
      });
    }
  });
});

describe("parseDuration", () => {
  it("reads CCF time strings into milliseconds", () => {
    for (const [input, ms] of [
      ["100ms", 100],
      ["1000ms", 1000],
      ["1s", 1000],
      ["3 s", 3000],
      ["30min", 30 * 60_000],
      ["1h", 3_600_000],
      ["500us", 0.5],
      ["10000us", 10],
      ["2000", 2], // a unit-less time string is microseconds, as in CCF
      ["0", 0],
      [250, 250], // a number is already milliseconds
    ] as const) {
      assert.equal(parseDuration(input), ms, String(input));
    }
  });

  it("refuses units CCF does not know, naming the field", () => {
    for (const input of ["2d", "1 week", "ms", "1.5s", "5MB", ""]) {
      assert.throws(() => parseDuration(input, "tick_interval"), {
        name: "ConfigError",
        message: `tick_interval: ${JSON.stringify(input)} is not a duration (e.g. "100ms"; units us, ms, s, min, h)`,
      });
    }
    assert.throws(() => parseDuration(-5), /-5 is not a duration in milliseconds/);
  });
});

describe("splitAddress", () => {
  it("splits host and port, removing IPv6 brackets", () => {
    assert.deepEqual(splitAddress("127.0.0.1:8080"), { host: "127.0.0.1", port: 8080 });
    assert.deepEqual(splitAddress("localhost:0"), { host: "localhost", port: 0 });
    assert.deepEqual(splitAddress("[::1]:443"), { host: "::1", port: 443 });
    assert.deepEqual(splitAddress("ccf.example.org:65535"), {
      host: "ccf.example.org",
      port: 65535,
    });
  });

  it("throws a ConfigError naming the field for anything else", () => {
    assert.throws(() => splitAddress("127.0.0.1", "command.join.target_rpc_address"), {
      name: "ConfigError",
      message: 'command.join.target_rpc_address: must be "host:port"',
    });
  });
});
