// What the built-in endpoints need from the node they run on. The node implements it; tests can
// implement it with fixed values.

import type { Store } from "../kv/index.js";
import type { TxId } from "../ledger/index.js";
import type { Receipt } from "../merkle/index.js";
import type { NodeMetrics } from "./prometheus.js";

/** CCF's node startup states (include/ccf/node_startup_state.h). */
export type NodeStartupState =
  | "Uninitialized"
  | "Initialized"
  | "Pending"
  | "PartOfPublicNetwork"
  | "PartOfNetwork"
  | "ReadingPublicLedger"
  | "ReadingPrivateLedger";

export type TxStatus = "Unknown" | "Pending" | "Committed" | "Invalid";

export interface Quote {
  node_id: string;
  format: string;
  /** Base64 of the quote bytes. */
  raw: string;
  endorsements: string;
  measurement: string;
}

export interface SessionMetrics {
  active: number;
  peak: number;
  interfaces: Record<
    string,
    {
      active: number;
      peak: number;
      soft_cap: number;
      hard_cap: number;
      errors: {
        parsing: number;
        request_payload_too_large: number;
        request_header_too_large: number;
      };
    }
  >;
}

export interface NodeContext {
  readonly nodeId: string;
  readonly version: { ccf_version: string; quickjs_version: string; unsafe: boolean };
  state(): NodeStartupState;
  /** The KV as this node has it (reads only). */
  readonly store: Store;
  /** The primary's node id, when known. */
  primaryId(): string | undefined;
  currentView(): number;
  /** Last transaction appended here. */
  lastTxId(): TxId;
  /** Last committed transaction. */
  commitTxId(): TxId;
  lastSignedSeqno(): number;
  startupSeqno(): number;
  /** TxIDs at which each view from `since` on started (CCF's view history). */
  viewHistory(since?: number): TxId[];
  txStatus(id: TxId): TxStatus;
  /**
   * Receipt of a committed transaction: CCF's JSON receipt, or the COSE receipt's bytes;
   * "fetching" while it is read from the ledger (answer 202, retry); undefined when it is not
   * committed (yet), or, for COSE, when the ledger has no COSE signature over it.
   */
  receipt(id: TxId, format?: "json" | "cose"): Receipt | Buffer | "fetching" | undefined;
  quote(): Quote;
  /** This node's self-signed certificate (PEM), as it was created at start. */
  selfSignedCertificate?(): string;
  /** The configuration the node started with (CCF's fields, defaults filled in). */
  startupConfig?(): unknown;
  sessionMetrics(): SessionMetrics;
  /** Whether the app / gov frontends accept requests (for /node/ready/*). */
  isReady(frontend: "app" | "gov"): boolean;
  /** What `/node/metrics/prometheus` serves; absent, only what this interface can tell. */
  readonly prometheusMetrics?: NodeMetrics;
}
