// The chain of ledger secrets a ledger carries: each write to historical_encrypted_ledger_secret
// stores the secret before the current one, encrypted under the current one, so the latest secret
// (unwrapped from the recovery shares) decrypts every earlier one, newest to oldest.

import { openGcmCipher, sealGcmCipher } from "../crypto/index.js";
import { CcfError } from "../errors.js";
import type { LedgerSecret } from "./secrets.js";

const SECRET_LENGTH = 32;

/** One write to public:ccf.internal.historical_encrypted_ledger_secret, with its seqno. */
export interface HistoricalSecretWrite {
  seqno: number;
  value: {
    /** Seqno from which the encrypting (newer) secret applies; absent means seqno + 1. */
    next_version?: number;
    previous_ledger_secret?: {
      /** Base64 GcmCipher (tag ‖ IV ‖ ciphertext) of the previous secret. */
      encrypted_data: string;
      /** Seqno from which the previous secret applies. */
      version: number;
      /** Seqno of the write to this table before this one. */
      previous_secret_stored_version?: number;
    };
  };
}

/**
 * Recovers every secret from the latest one and the table's writes in ledger order, oldest
 * first. As CCF (6.0.17): the latest secret applies from the last write's next_version; going
 * back, a write whose previous version is already known is skipped without changing the key (two
 * end-of-recovery transactions can store the same secret twice), and the walk stops at the first
 * write that holds no previous secret.
 */
export function walkSecretChain(
  latestKey: Buffer,
  history: HistoricalSecretWrite[],
): LedgerSecret[] {
  const last = history[history.length - 1];
  if (last === undefined) {
    throw new CcfError("NoLedgerSecretHistory", "the ledger holds no historical ledger secrets");
  }
  for (let i = 1; i < history.length; i++) {
    if (history[i].seqno <= history[i - 1].seqno) {
      throw new CcfError(
        "InvalidLedgerSecretHistory",
        `historical ledger secret writes out of order: seqno ${history[i].seqno} after ${history[i - 1].seqno}`,
      );
    }
  }
  const byVersion = new Map<number, Buffer>();
  byVersion.set(last.value.next_version ?? last.seqno + 1, latestKey);
  let key = latestKey;
  for (let i = history.length - 1; i >= 0; i--) {
    const { seqno, value } = history[i];
    const previous = value.previous_ledger_secret;
    if (previous === undefined) break;
    if (byVersion.has(previous.version)) continue;
    let secret: Buffer;
    try {
      secret = openGcmCipher(key, Buffer.from(previous.encrypted_data, "base64"));
    } catch (e) {
      throw new CcfError(
        "LedgerSecretDecryptionFailed",
        `cannot decrypt the ledger secret of version ${previous.version} stored at seqno ${seqno}: ${(e as Error).message}`,
        500,
        { cause: e },
      );
    }
    if (secret.length !== SECRET_LENGTH) {
      throw new CcfError(
        "InvalidLedgerSecret",
        `the ledger secret stored at seqno ${seqno} is ${secret.length} bytes, expected ${SECRET_LENGTH}`,
      );
    }
    byVersion.set(previous.version, secret);
    key = secret;
  }
  return [...byVersion].sort(([a], [b]) => a - b).map(([version, k]) => ({ key: k, version }));
}

/** The encrypted_data of a historical write: `previous` under `newerKey`, base64 (60 bytes). */
export function encryptPreviousSecret(newerKey: Buffer, previous: Buffer, iv: Uint8Array): string {
  return sealGcmCipher(newerKey, previous, iv).toString("base64");
}
