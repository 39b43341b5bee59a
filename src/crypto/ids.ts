// CCF's identifiers: member and user ids hash the certificate, node ids hash the public key.
import { createPublicKey, type KeyObject } from "node:crypto";
import { sha256 } from "./hash.js";
import { publicKeyFromPem } from "./keys.js";
import { certificateDer } from "./x509.js";

/** Hex SHA-256 of the certificate DER: CCF's member and user id. */
export function certificateId(pem: string): string {
  return sha256(certificateDer(pem)).toString("hex");
}

/** Hex SHA-256 of the SubjectPublicKeyInfo DER: CCF's node id. Takes a PEM key or cert, a KeyObject, or SPKI DER. */
export function nodeIdFromPublicKey(key: KeyObject | string | Uint8Array): string {
  let spki: Uint8Array;
  if (typeof key === "string") {
    spki = publicKeyFromPem(key).export({ type: "spki", format: "der" });
  } else if (key instanceof Uint8Array) {
    spki = key;
  } else {
    // A private KeyObject cannot export SPKI directly.
    const pub = key.type === "private" ? createPublicKey(key) : key;
    spki = pub.export({ type: "spki", format: "der" });
  }
  return sha256(spki).toString("hex");
}
