// AES-256-GCM with caller-chosen IV and additional data: CCF's ledger encryption (12-byte IV, 16-byte tag).
import { createCipheriv, createDecipheriv } from "node:crypto";
import { CryptoError } from "../errors.js";

const KEY_SIZE = 32;
const IV_SIZE = 12;
const TAG_SIZE = 16;

function checkSizes(key: Uint8Array, iv: Uint8Array): void {
  if (key.length !== KEY_SIZE) {
    throw new CryptoError(
      "InvalidKey",
      `AES-256-GCM key must be ${KEY_SIZE} bytes, got ${key.length}`,
    );
  }
  if (iv.length !== IV_SIZE) {
    throw new CryptoError("InvalidIv", `AES-GCM IV must be ${IV_SIZE} bytes, got ${iv.length}`);
  }
}

export function aesGcmEncrypt(
  key: Uint8Array,
  iv: Uint8Array,
  plaintext: Uint8Array,
  aad?: Uint8Array,
): { ciphertext: Buffer; tag: Buffer } {
  checkSizes(key, iv);
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_SIZE });
  if (aad !== undefined) cipher.setAAD(aad);
  const ciphertext = cipher.update(plaintext);
  // GCM is a stream mode: final() emits nothing, so the single update() buffer is the whole output.
  cipher.final();
  return { ciphertext, tag: cipher.getAuthTag() };
}

/** Throws CryptoError("DecryptionFailed") if the tag does not verify (wrong key, IV, AAD or data). */
export function aesGcmDecrypt(
  key: Uint8Array,
  iv: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
  aad?: Uint8Array,
): Buffer {
  checkSizes(key, iv);
  if (tag.length !== TAG_SIZE) {
    throw new CryptoError(
      "DecryptionFailed",
      `AES-GCM tag must be ${TAG_SIZE} bytes, got ${tag.length}`,
    );
  }
  const decipher = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_SIZE });
  decipher.setAuthTag(tag);
  if (aad !== undefined) decipher.setAAD(aad);
  const plaintext = decipher.update(ciphertext);
  try {
    decipher.final();
  } catch (e) {
    throw new CryptoError("DecryptionFailed", "AES-GCM authentication failed", { cause: e });
  }
  return plaintext;
}
