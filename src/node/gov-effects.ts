// What a constitution's `apply` can make this node do (GovEffects): open the service, force a
// ledger chunk, refresh the app's interpreters, endorse node certificates and renew the service's.
// Opening a new service issues its recovery shares and endorses its identity; opening a
// recovered one moves it to WaitingForRecoveryShares. Rekeying, re-sharing and snapshots are the
// node's (hooks).

import type { GovEffects } from "../gov/index.js";
import { decodeValue, encodeValue, SINGLETON_KEY, Tables, type Tx } from "../kv/index.js";
import { beginWaitingForShares, sameCertificate } from "./recovery.js";

const UNAVAILABLE = "is not available in this version of ccf-ts";

export interface NodeGovHooks {
  /** A new service opens: recovery shares issued, the identity self-endorsed. */
  onServiceOpen(tx: Tx, createTxId: string): void;
  /** New recovery shares for the current secret (members or threshold changed). */
  reshare(tx: Tx): void;
  /** A new ledger secret from the next transaction on, sent to every trusted node. */
  rekey(tx: Tx): void;
  /** Ask for a snapshot at the next signature. */
  triggerSnapshot?(): void;
  forceLedgerChunk(): void;
  refreshAppInterpreters(): void;
  latestLedgerSecretSeqno(): number;
  /** The service's endorsement of a node's CSR (the service key is this node's to use). */
  endorseCsr(csrPem: string, validFrom: string, validityPeriodDays: number): string;
  /** The service certificate renewed: same key and subject, the given validity. */
  generateNetworkCertificate(validFrom: string, validityPeriodDays: number): string;
  setJwtPublicSigningKeys?(tx: Tx, issuer: string, metadata: unknown, jwks: unknown): void;
  removeJwtPublicSigningKeys?(tx: Tx, issuer: string): void;
}

export function nodeGovEffects(hooks: NodeGovHooks): GovEffects {
  return {
    triggerLedgerRekey: (tx) => hooks.rekey(tx),
    triggerRecoverySharesRefresh: (tx) => hooks.reshare(tx),
    transitionServiceToOpen: (tx, previous, next) => {
      const services = tx.map(Tables.SERVICE);
      const raw = services.get(SINGLETON_KEY);
      if (raw === undefined) throw new Error("No service is set");
      const info = decodeValue(Tables.SERVICE, raw) as Record<string, unknown>;
      if (typeof info.cert !== "string" || !sameCertificate(info.cert, next)) {
        throw new Error("Next service identity does not match the service's identity");
      }
      if (info.status === "Recovering") {
        if (previous === undefined) {
          throw new Error("Opening a recovering service requires the previous service identity");
        }
        beginWaitingForShares(tx, previous);
        return;
      }
      if (info.status === "Open") throw new Error("Service is already open");
      if (info.status !== "Opening") {
        throw new Error(`Service in state ${String(info.status)} cannot be opened`);
      }
      info.previous_service_identity_version = services.getVersionOfPreviousWrite(SINGLETON_KEY);
      info.status = "Open";
      services.set(SINGLETON_KEY, encodeValue(Tables.SERVICE, info));
      hooks.onServiceOpen(
        tx,
        typeof info.current_service_create_txid === "string"
          ? info.current_service_create_txid
          : "2.1",
      );
    },
    triggerLedgerChunk: () => hooks.forceLedgerChunk(),
    triggerSnapshot: () => {
      if (hooks.triggerSnapshot === undefined) throw new Error(`Snapshots ${UNAVAILABLE}`);
      hooks.triggerSnapshot();
    },
    generateEndorsedCertificate: (_tx, csrPem, validFrom, days) =>
      hooks.endorseCsr(csrPem, validFrom, days),
    generateNetworkCertificate: (_tx, validFrom, days) =>
      hooks.generateNetworkCertificate(validFrom, days),
    getLatestLedgerSecretSeqno: () => hooks.latestLedgerSecretSeqno(),
    setJwtPublicSigningKeys: (tx, issuer, metadata, jwks) => {
      if (hooks.setJwtPublicSigningKeys === undefined) {
        throw new Error(`JWT signing keys ${UNAVAILABLE}`);
      }
      hooks.setJwtPublicSigningKeys(tx, issuer, metadata, jwks);
    },
    removeJwtPublicSigningKeys: (tx, issuer) => {
      if (hooks.removeJwtPublicSigningKeys === undefined) {
        throw new Error(`JWT signing keys ${UNAVAILABLE}`);
      }
      hooks.removeJwtPublicSigningKeys(tx, issuer);
    },
    refreshAppBytecodeCache: () => hooks.refreshAppInterpreters(),
  };
}
