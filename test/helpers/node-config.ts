// The start configuration (CCF's format) of a one-node service in a folder, as the end-to-end
// tests and the app benchmark run it: member0 with its encryption key, the minimal constitution,
// ports chosen by the system, and output files in the folder.

import { join } from "node:path";

const ROOT = join(import.meta.dirname, "../..");
export const MINIMAL_CONSTITUTION = join(ROOT, "samples/constitutions/minimal/constitution.js");

export interface SingleNodeOptions {
  /** Extra `command.start` fields (users, js_app_bundle, open_service...). */
  start?: Record<string, unknown>;
  /** Extra fields of `primary_rpc_interface`. */
  rpcInterface?: Record<string, unknown>;
  /** Extra `ledger` fields. */
  ledger?: Record<string, unknown>;
  signatures: { tx_count: number; delay: string };
}

export function singleNodeConfig(dir: string, o: SingleNodeOptions): Record<string, unknown> {
  return {
    network: {
      node_to_node_interface: { bind_address: "127.0.0.1:0" },
      rpc_interfaces: { primary_rpc_interface: { bind_address: "127.0.0.1:0", ...o.rpcInterface } },
    },
    command: {
      type: "Start",
      service_certificate_file: join(dir, "service_cert.pem"),
      start: {
        members: [
          {
            certificate_file: join(dir, "member0_cert.pem"),
            encryption_public_key_file: join(dir, "member0_enc_pubk.pem"),
          },
        ],
        constitution_files: [MINIMAL_CONSTITUTION],
        service_configuration: { recovery_threshold: 1 },
        ...o.start,
      },
    },
    ledger: { directory: join(dir, "ledger"), ...o.ledger },
    ledger_signatures: o.signatures,
    output_files: {
      node_certificate_file: join(dir, "nodecert.pem"),
      pid_file: join(dir, "node.pid"),
      rpc_addresses_file: join(dir, "rpc_addresses.json"),
      node_to_node_address_file: join(dir, "node_address.json"),
    },
  };
}

/**
 * The one-node service most end-to-end tests run: user0 (from `dir`), an app bundle, opened at
 * genesis (ccf-ts's sandbox convenience).
 */
export function openAppNodeConfig(
  dir: string,
  bundle: string,
  signatures: SingleNodeOptions["signatures"],
): Record<string, unknown> {
  return singleNodeConfig(dir, {
    start: {
      users: [{ certificate_file: join(dir, "user0_cert.pem") }],
      js_app_bundle: bundle,
      open_service: true,
    },
    signatures,
  });
}

/** `command` of a node that joins the service through the node at `targetBase` (https://host:port). */
export function joinCommand(serviceCertFile: string, targetBase: string): Record<string, unknown> {
  return {
    type: "Join",
    service_certificate_file: serviceCertFile,
    join: { target_rpc_address: targetBase.replace("https://", ""), retry_timeout: "200ms" },
  };
}
