// The certificates a node serves, as governance last committed them. Renewals
// (set_node_certificate_validity, set_all_nodes_certificate_validity,
// set_service_certificate_validity) reach every node through the KV; a node switches to a renewed
// certificate only once the transaction that wrote it is committed.

import { certificateDer, certificateInfo } from "../crypto/index.js";
import { decodeValue, keyToString, SINGLETON_KEY, type Store, Tables } from "../kv/index.js";

export interface ServedCertificates {
  /** This node's service-endorsed certificate (`nodes.endorsed_certificates`). */
  node: string;
  /** The service certificate (`service.info`'s `cert`). */
  service: string;
}

/**
 * The value of `key` if its latest write is committed. While a newer write is uncommitted the
 * answer is undefined: the caller keeps what it has until that write commits or is rolled back.
 */
function committedValue(
  store: Store,
  table: string,
  key: Uint8Array,
  commitSeqno: number,
): Uint8Array | undefined {
  const entry = store.mapState(table)?.entries.get(keyToString(key));
  if (entry === undefined || entry.value === null || entry.version > commitSeqno) return undefined;
  return entry.value;
}

function sameCertificate(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return certificateDer(a).equals(certificateDer(b));
  } catch {
    return false;
  }
}

function publicKeyOf(pem: string): Buffer {
  try {
    return certificateInfo(pem).publicKeyDer;
  } catch {
    return Buffer.alloc(0);
  }
}

function certifiesKey(pem: string, publicKeyDer: Buffer): boolean {
  try {
    return certificateInfo(pem).publicKeyDer.equals(publicKeyDer);
  } catch {
    return false;
  }
}

/**
 * The certificates, among those `current` holds, that a committed renewal replaced: empty when
 * nothing changed. A node certificate for another key is ignored: the node could not serve it.
 */
export function renewedCertificates(
  store: Store,
  commitSeqno: number,
  self: { nodeId: string; publicKeyDer: Buffer },
  current: ServedCertificates,
): Partial<ServedCertificates> {
  const out: Partial<ServedCertificates> = {};
  const endorsed = committedValue(
    store,
    Tables.NODE_ENDORSED_CERTIFICATES,
    Buffer.from(self.nodeId, "utf8"),
    commitSeqno,
  );
  if (endorsed !== undefined) {
    const pem = decodeValue(Tables.NODE_ENDORSED_CERTIFICATES, endorsed);
    if (
      typeof pem === "string" &&
      !sameCertificate(pem, current.node) &&
      certifiesKey(pem, self.publicKeyDer)
    ) {
      out.node = pem;
    }
  }
  const service = committedValue(store, Tables.SERVICE, SINGLETON_KEY, commitSeqno);
  if (service !== undefined) {
    const pem = (decodeValue(Tables.SERVICE, service) as { cert?: unknown }).cert;
    // A renewal keeps the service key. Another key is another service: the one a recovered
    // ledger's older entries name (a node replaying them must keep the current identity).
    if (
      typeof pem === "string" &&
      !sameCertificate(pem, current.service) &&
      certifiesKey(pem, publicKeyOf(current.service))
    ) {
      out.service = pem;
    }
  }
  return out;
}
