// A node's identity at start: its key pair and id, its self-signed certificate, its RSA key for
// receiving ledger secrets, and its virtual attestation ("Insecure_Virtual": there is no TEE here,
// and the quote says so).

import {
  createSelfSignedCertificate,
  EcKeyPair,
  generateRsaKeyPair,
  nodeIdFromPublicKey,
  parseSubjectAltName,
  type SubjectAltName,
  sha256,
  toHex,
} from "../crypto/index.js";
import { encodeJson } from "../kv/index.js";

/** CCF's virtual measurement string: what a virtual node reports instead of a TEE measurement. */
export const VIRTUAL_MEASUREMENT = "Insecure hard-coded virtual measurement v1";

/** Stand-in for the hash of the node binary in a virtual quote: the ccf-ts version. */
export function virtualHostData(version: string): string {
  return toHex(sha256(Buffer.from(`ccf-ts ${version}`)));
}

export interface NodeIdentity {
  key: EcKeyPair;
  nodeId: string;
  sans: SubjectAltName[];
  subjectName: string;
  selfSignedCert: string;
  encryptionKey: { publicKeyPem: string; privateKeyPem: string };
  /** Base64 of the virtual quote's JSON bytes, as `nodes.info.quote_info.quote`. */
  quote: string;
  hostData: string;
  /** The measurement the virtual quote reports. */
  measurement: string;
}

export async function createNodeIdentity(args: {
  curve: "secp384r1" | "secp256r1";
  subjectName: string;
  subjectAltNames: string[];
  validityDays: number;
  version: string;
  now: Date;
  /** Reported instead of CCF's virtual measurement (a code update, in virtual mode). */
  measurement?: string;
}): Promise<NodeIdentity> {
  const measurement = args.measurement ?? VIRTUAL_MEASUREMENT;
  const key = EcKeyPair.generate(args.curve);
  const nodeId = nodeIdFromPublicKey(key.publicKey);
  const sans = args.subjectAltNames.map(parseSubjectAltName);
  const selfSignedCert = await createSelfSignedCertificate(key, {
    subjectName: args.subjectName,
    validFrom: args.now,
    validityDays: args.validityDays,
    sans,
  });
  const hostData = virtualHostData(args.version);
  const quoteJson = encodeJson({
    host_data: hostData,
    measurement,
    report_data: sha256(key.publicKeyDer).toString("base64"),
  });
  return {
    key,
    nodeId,
    sans,
    subjectName: args.subjectName,
    selfSignedCert,
    encryptionKey: generateRsaKeyPair(2048),
    quote: Buffer.from(quoteJson).toString("base64"),
    hostData,
    measurement,
  };
}
