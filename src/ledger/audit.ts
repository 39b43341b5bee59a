// What an offline audit checks beyond the Merkle tree and the signatures over it: the service's
// status moves only as CCF allows, every governance message kept in `cose_history` is signed by a
// member whose certificate the state held at that point, and (when the auditor names one) the
// service identity the ledger ends with is the expected one. Pure: it reports a fault, the reader
// throws it with the file and seqno.

import type { KeyObject } from "node:crypto";
import {
  COSE_HEADER,
  coseSign1Decode,
  coseSign1Verify,
  nodeIdFromPublicKey,
  publicKeyFromPem,
} from "../crypto/index.js";
import {
  decodeValue,
  keyToString,
  SINGLETON_KEY,
  type Store,
  Tables,
  type WriteSet,
} from "../kv/index.js";

export interface AuditFault {
  code: string;
  detail: string;
}

const SINGLETON = keyToString(SINGLETON_KEY);

export const SERVICE_STATUSES = ["Opening", "Open", "WaitingForRecoveryShares", "Recovering"];

/**
 * CCF's service status graph (python/src/ccf/ledger.py and the inventory §1.4): a new genesis
 * (Opening) or a recovery genesis (Recovering) may follow any status; otherwise only these moves.
 */
const NEXT_STATUS: Record<string, readonly string[]> = {
  Opening: ["Open", "WaitingForRecoveryShares"],
  Recovering: ["WaitingForRecoveryShares"],
  WaitingForRecoveryShares: ["Open"],
  Open: [],
};

/** Why moving from `from` to `to` is not allowed, or undefined when it is. */
export function serviceTransitionFault(from: string | undefined, to: unknown): string | undefined {
  if (typeof to !== "string" || !SERVICE_STATUSES.includes(to)) {
    return `service status ${JSON.stringify(to)} is not a service status`;
  }
  if (from === undefined || from === to || to === "Opening" || to === "Recovering")
    return undefined;
  if (NEXT_STATUS[from]?.includes(to) === true) return undefined;
  return `service status cannot move from ${from} to ${to}`;
}

/** A parsed public key and the id of its SPKI, cached by PEM: the same few certificates recur. */
export class KeyCache {
  private readonly keys = new Map<string, { key: KeyObject; id: string }>();

  get(pem: string): { key: KeyObject; id: string } {
    let k = this.keys.get(pem);
    if (k === undefined) {
      const key = publicKeyFromPem(pem);
      k = { key, id: nodeIdFromPublicKey(key) };
      this.keys.set(pem, k);
    }
    return k;
  }
}

/** State the audit follows through the ledger, and its per-transaction checks. */
export class GovernanceAudit {
  /** The service's status after the last transaction checked. */
  status: string | undefined;
  /** The service certificate after the last transaction checked, and where it was recorded. */
  service: { cert: string; seqno: number; file: string } | undefined;
  /** Governance messages (cose_history records) whose signatures verified. */
  governanceMessages = 0;

  constructor(readonly keys: KeyCache) {}

  /** Starts from a state (a snapshot's): its service status and certificate. */
  startFrom(store: Store, seqno: number, file: string): void {
    const raw = store.get(Tables.SERVICE, SINGLETON);
    if (raw === undefined) return;
    const info = decodeValue(Tables.SERVICE, raw) as { status?: unknown; cert?: unknown };
    if (typeof info.status === "string") this.status = info.status;
    if (typeof info.cert === "string") this.service = { cert: info.cert, seqno, file };
  }

  /**
   * Checks one transaction's writes against the state before it (`store`), then follows them.
   * Returns the first fault.
   */
  check(file: string, seqno: number, writeSet: WriteSet, store: Store): AuditFault | undefined {
    const history = writeSet.get(Tables.COSE_HISTORY);
    if (history !== undefined) {
      for (const [memberKey, value] of history) {
        if (value === null) continue;
        const fault = this.checkGovernanceMessage(memberKey, value, store);
        if (fault !== undefined) return fault;
        this.governanceMessages++;
      }
    }
    const service = writeSet.get(Tables.SERVICE);
    if (service !== undefined && service.size > 0) {
      const raw = service.get(SINGLETON);
      if (raw === undefined || raw === null) {
        return { code: "LedgerBadServiceInfo", detail: "the service info is removed" };
      }
      let info: { status?: unknown; cert?: unknown };
      try {
        info = decodeValue(Tables.SERVICE, raw) as typeof info;
      } catch (e) {
        return { code: "LedgerBadServiceInfo", detail: (e as Error).message };
      }
      const fault = serviceTransitionFault(this.status, info.status);
      if (fault !== undefined) return { code: "LedgerBadServiceTransition", detail: fault };
      if (typeof info.cert !== "string") {
        return { code: "LedgerBadServiceInfo", detail: "the service info has no certificate" };
      }
      this.status = info.status as string;
      this.service = { cert: info.cert, seqno, file };
    }
    return undefined;
  }

  /** A cose_history record: the member's last signed governance message, by that member. */
  private checkGovernanceMessage(
    memberKey: string,
    value: Uint8Array,
    store: Store,
  ): AuditFault | undefined {
    const memberId = Buffer.from(memberKey, "latin1").toString();
    const bad = (detail: string): AuditFault => ({
      code: "LedgerBadGovernanceMessage",
      detail: `governance message of member ${memberId}: ${detail}`,
    });
    const certBytes = store.get(Tables.MEMBER_CERTS, memberKey);
    if (certBytes === undefined) return bad("no such member in members.certs");
    let cose: ReturnType<typeof coseSign1Decode>;
    try {
      cose = coseSign1Decode(
        Buffer.from(decodeValue(Tables.COSE_HISTORY, value) as string, "base64"),
      );
    } catch (e) {
      return bad(`unreadable (${(e as Error).message})`);
    }
    const kid = cose.protectedHeaders.get(COSE_HEADER.kid);
    if (!(kid instanceof Uint8Array) || Buffer.from(kid).toString() !== memberId) {
      return bad("its kid is not the member's id");
    }
    const cert = decodeValue(Tables.MEMBER_CERTS, certBytes) as string;
    let key: KeyObject;
    try {
      key = this.keys.get(cert).key;
    } catch {
      return bad("the member's certificate is unreadable");
    }
    if (!coseSign1Verify(cose, key)) return bad("its signature does not verify");
    return undefined;
  }

  /** Whether the ledger ends under the expected service identity (compared by public key). */
  identityFault(expectedCertPem: string): AuditFault | undefined {
    let expected: string;
    try {
      expected = this.keys.get(expectedCertPem).id;
    } catch (e) {
      return { code: "InvalidArgument", detail: `service certificate: ${(e as Error).message}` };
    }
    if (this.service === undefined) {
      return { code: "LedgerWrongService", detail: "the ledger records no service identity" };
    }
    const recorded = this.keys.get(this.service.cert).id;
    if (recorded !== expected) {
      return {
        code: "LedgerWrongService",
        detail: `the service identity recorded here (key ${recorded.slice(0, 16)}…) is not the given service certificate's (key ${expected.slice(0, 16)}…): a ledger of another service`,
      };
    }
    return undefined;
  }
}
