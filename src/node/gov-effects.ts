// What a constitution's `apply` can make this node do (GovEffects): open the service, force a
// ledger chunk, refresh the app's interpreters, endorse node certificates and renew the service's.
// Effects owned by later work (rekeying, recovery shares, snapshots) fail the proposal with a
// message saying so.

import { certificateDer } from "../crypto/index.js";
import type { GovEffects } from "../gov/index.js";
import { decodeValue, encodeValue, SINGLETON_KEY, Tables, type Tx } from "../kv/index.js";

const UNAVAILABLE = "is not available in this version of ccf-ts";

export interface NodeGovHooks {
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

function sameCertificate(a: string, b: string): boolean {
  try {
    return certificateDer(a).equals(certificateDer(b));
  } catch {
    return false;
  }
}

export function nodeGovEffects(hooks: NodeGovHooks): GovEffects {
  return {
    triggerLedgerRekey: () => {
      throw new Error(`Ledger rekeying ${UNAVAILABLE}`);
    },
    triggerRecoverySharesRefresh: () => {
      throw new Error(`Recovery shares ${UNAVAILABLE}`);
    },
    transitionServiceToOpen: (tx, previous, next) => {
      const services = tx.map(Tables.SERVICE);
      const raw = services.get(SINGLETON_KEY);
      if (raw === undefined) throw new Error("No service is set");
      const info = decodeValue(Tables.SERVICE, raw) as Record<string, unknown>;
      if (typeof info.cert !== "string" || !sameCertificate(info.cert, next)) {
        throw new Error("Next service identity does not match the service's identity");
      }
      if (previous !== undefined) {
        throw new Error(`Opening a recovered service ${UNAVAILABLE}`);
      }
      if (info.status === "Open") throw new Error("Service is already open");
      if (info.status !== "Opening") {
        throw new Error(`Service in state ${String(info.status)} cannot be opened`);
      }
      info.status = "Open";
      services.set(SINGLETON_KEY, encodeValue(Tables.SERVICE, info));
    },
    triggerLedgerChunk: () => hooks.forceLedgerChunk(),
    triggerSnapshot: () => {
      throw new Error(`Snapshots ${UNAVAILABLE}`);
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
