// RSA key pairs and RSA-OAEP key wrapping for members' recovery-share encryption keys.
import { constants, generateKeyPairSync, privateDecrypt, publicEncrypt } from "node:crypto";
import { CryptoError } from "../errors.js";

/** SPKI / PKCS#8 PEM, the formats CCF's keygenerator writes with --gen-enc-key. */
export function generateRsaKeyPair(bits = 2048): { publicKeyPem: string; privateKeyPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", {
    modulusLength: bits,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  return { publicKeyPem: publicKey, privateKeyPem: privateKey };
}

// CCF sets both the OAEP digest and the MGF1 digest to SHA-256, with no label; OpenSSL uses the
// OAEP digest for MGF1 unless told otherwise, which is what node:crypto relies on.
const OAEP = { padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" } as const;

export function rsaOaepWrap(publicKeyPem: string, data: Uint8Array): Buffer {
  try {
    return publicEncrypt({ key: publicKeyPem, ...OAEP }, data);
  } catch (e) {
    throw new CryptoError("EncryptionFailed", "RSA-OAEP wrap failed", { cause: e });
  }
}

/** Throws CryptoError("DecryptionFailed") on a wrong key or corrupted input. */
export function rsaOaepUnwrap(privateKeyPem: string, data: Uint8Array): Buffer {
  try {
    return privateDecrypt({ key: privateKeyPem, ...OAEP }, data);
  } catch (e) {
    throw new CryptoError("DecryptionFailed", "RSA-OAEP unwrap failed", { cause: e });
  }
}
