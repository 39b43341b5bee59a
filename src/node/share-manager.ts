// Recovery material, as CCF's ShareManager keeps it: the latest ledger secret wrapped under a key
// shared out to the recovery members (public:ccf.internal.recovery_shares), the chain of earlier
// secrets (historical_encrypted_ledger_secret), and, at recovery, the way back from submitted
// shares to every ledger secret. Values are the bytes CCF writes (sorted compact JSON, base64).

import {
  combineShares,
  openGcmCipher,
  parseShare,
  type Rng,
  rsaOaepWrap,
  SHARE_LENGTH,
  type Share,
  sampleShares,
  sealGcmCipher,
  serialiseShare,
  wrappingKey,
} from "../crypto/index.js";
import { CcfError, FormatError } from "../errors.js";
import { decodeValue, encodeValue, SINGLETON_KEY, Tables, type Tx } from "../kv/index.js";
import {
  encryptPreviousSecret,
  type HistoricalSecretWrite,
  type LedgerSecret,
  walkSecretChain,
} from "../ledger/index.js";

const SECRET_LENGTH = 32;
const IV_LENGTH = 12;
/** Each wrapping key is used once, so CCF wraps the latest secret under an all-zero IV. */
const ZERO_IV = Buffer.alloc(IV_LENGTH);

interface ShareHolders {
  /** Active members with an encryption key and role Participant (or none), by ascending id. */
  participants: Array<{ id: string; encryptionKey: string }>;
  /** Active members with an encryption key and role Owner, by ascending id. */
  owners: Array<{ id: string; encryptionKey: string }>;
}

function shareHolders(tx: Tx): ShareHolders {
  const holders: ShareHolders = { participants: [], owners: [] };
  const infos = tx.map(Tables.MEMBER_INFO);
  // forEach visits keys in byte order: ascending member id, which fixes each participant's x.
  tx.map(Tables.MEMBER_ENCRYPTION_KEYS).forEach((value, key) => {
    const id = Buffer.from(key).toString("latin1");
    const rawInfo = infos.get(key);
    if (rawInfo === undefined) {
      throw new CcfError("InvalidMemberInfo", `Recovery member ${id} has no member info`);
    }
    const info = decodeValue(Tables.MEMBER_INFO, rawInfo) as {
      status?: unknown;
      recovery_role?: unknown;
    };
    if (info.status !== "Active") return;
    const encryptionKey = decodeValue(Tables.MEMBER_ENCRYPTION_KEYS, value) as string;
    const role = info.recovery_role ?? "Participant";
    if (role === "Participant") holders.participants.push({ id, encryptionKey });
    else if (role === "Owner") holders.owners.push({ id, encryptionKey });
  });
  return holders;
}

function recoveryThreshold(tx: Tx): number {
  const raw = tx.map(Tables.CONFIGURATION).get(SINGLETON_KEY);
  if (raw === undefined) {
    throw new CcfError(
      "ServiceConfigurationMissing",
      "Configuration should already be set before recovery threshold is looked up",
    );
  }
  const t = (decodeValue(Tables.CONFIGURATION, raw) as { recovery_threshold?: unknown })
    .recovery_threshold;
  return typeof t === "number" && Number.isSafeInteger(t) && t >= 0 ? t : 0;
}

/** CCF's preconditions, then the number of partial shares to draw. */
function shareCount(holders: ShareHolders, t: number): number {
  const { participants, owners } = holders;
  if (participants.length === 0 && owners.length === 0) {
    throw new CcfError(
      "NoRecoveryMembers",
      "There should be at least one active recovery member to issue recovery shares",
    );
  }
  if (t === 0) {
    throw new CcfError(
      "InvalidRecoveryThreshold",
      "Recovery threshold should be set before recovery shares are computed",
    );
  }
  if (participants.length > 0) {
    if (t > participants.length) {
      throw new CcfError(
        "InvalidRecoveryThreshold",
        `Recovery threshold ${t} should be equal to or less than the number of active recovery members ${participants.length}`,
      );
    }
    return participants.length;
  }
  if (t > 1) {
    throw new CcfError(
      "InvalidRecoveryThreshold",
      `Recovery threshold ${t} cannot be greater than 1 when the consortium consists of only active recovery owner members (${owners.length})`,
    );
  }
  // A single x = 1 share is drawn and given to nobody: owners hold the full secret.
  return 1;
}

function checkSecret(secret: LedgerSecret, what: string): void {
  if (secret.key.length !== SECRET_LENGTH) {
    throw new CcfError(
      "InvalidLedgerSecret",
      `the ${what} ledger secret is ${secret.key.length} bytes, expected ${SECRET_LENGTH}`,
    );
  }
}

/**
 * Writes fresh recovery shares for `latest`: a new random sharing of a new wrapping key, the
 * latest secret wrapped under it, and each share holder's share RSA-OAEP encrypted to its key
 * (participants get x = 1.. by ascending member id, owners the full x = 0 share).
 *
 * With `history` this is CCF's "issue" (service opening, rekey, end of recovery) and also writes
 * historical_encrypted_ledger_secret: `{next_version}` when there is no previous secret, else the
 * previous secret encrypted under the latest one. Without it, a "re-share" (members or threshold
 * changed). Every check runs before the first write.
 */
export function issueRecoveryShares(
  tx: Tx,
  rng: Rng,
  args: {
    latest: LedgerSecret;
    /** Seqno of the historical write that stores the secret before `latest`, once known. */
    latestPreviousStoredVersion?: number;
    history?: {
      previous?: LedgerSecret;
      /** Seqno from which `latest` applies; omitted on a rekey (the reader takes seqno + 1). */
      nextVersion?: number;
      /** Defaults to the version of the table's previous write, as CCF. */
      previousStoredVersion?: number;
    };
  },
): void {
  const { latest, history } = args;
  checkSecret(latest, "latest");
  if (history?.previous !== undefined) checkSecret(history.previous, "previous");
  const holders = shareHolders(tx);
  const t = recoveryThreshold(tx);
  const n = shareCount(holders, t);

  const { secret, shares } = sampleShares(rng, n, t);
  const wrapped = sealGcmCipher(wrappingKey(secret), latest.key, ZERO_IV);
  const encryptedShares: Record<string, string> = {};
  holders.participants.forEach((m, i) => {
    encryptedShares[m.id] = rsaOaepWrap(m.encryptionKey, serialiseShare(shares[i])).toString(
      "base64",
    );
  });
  const fullShare = serialiseShare(secret);
  for (const m of holders.owners) {
    encryptedShares[m.id] = rsaOaepWrap(m.encryptionKey, fullShare).toString("base64");
  }
  const recoveryShares = {
    encrypted_shares: encryptedShares,
    previous_secret_stored_version: args.latestPreviousStoredVersion,
    wrapped_latest_ledger_secret: wrapped.toString("base64"),
  };

  let historical: HistoricalSecretWrite["value"] | undefined;
  if (history !== undefined) {
    const historicalTable = tx.map(Tables.HISTORICAL_ENCRYPTED_LEDGER_SECRET);
    historical = { next_version: history.nextVersion };
    if (history.previous !== undefined) {
      historical.previous_ledger_secret = {
        encrypted_data: encryptPreviousSecret(
          latest.key,
          history.previous.key,
          rng.bytes(IV_LENGTH),
        ),
        previous_secret_stored_version:
          history.previousStoredVersion ?? historicalTable.getVersionOfPreviousWrite(SINGLETON_KEY),
        version: history.previous.version,
      };
    }
  }

  tx.map(Tables.RECOVERY_SHARES).set(
    SINGLETON_KEY,
    encodeValue(Tables.RECOVERY_SHARES, recoveryShares),
  );
  if (historical !== undefined) {
    tx.map(Tables.HISTORICAL_ENCRYPTED_LEDGER_SECRET).set(
      SINGLETON_KEY,
      encodeValue(Tables.HISTORICAL_ENCRYPTED_LEDGER_SECRET, historical),
    );
  }
}

/** The RSA-OAEP encrypted share the latest recovery_shares holds for a member, if any. */
export function encryptedShareOf(tx: Tx, memberId: string): Buffer | undefined {
  const raw = tx.map(Tables.RECOVERY_SHARES).get(SINGLETON_KEY);
  if (raw === undefined) return undefined;
  const shares = (decodeValue(Tables.RECOVERY_SHARES, raw) as { encrypted_shares?: unknown })
    .encrypted_shares;
  if (shares === null || typeof shares !== "object") return undefined;
  const share = (shares as Record<string, unknown>)[memberId];
  return typeof share === "string" ? Buffer.from(share, "base64") : undefined;
}

function wrappedLatestSecret(recoveryShares: unknown): Buffer {
  const wrapped =
    recoveryShares !== null && typeof recoveryShares === "object"
      ? (recoveryShares as { wrapped_latest_ledger_secret?: unknown }).wrapped_latest_ledger_secret
      : undefined;
  if (typeof wrapped !== "string") {
    throw new CcfError(
      "InvalidRecoveryShares",
      "recovery_shares holds no wrapped_latest_ledger_secret",
    );
  }
  return Buffer.from(wrapped, "base64");
}

/** The full secret: an x = 0 share as is, else the first `threshold` partial shares combined. */
function combineSubmitted(submitted: Buffer[], threshold: number): Share {
  const partial: Share[] = [];
  for (const bytes of submitted) {
    if (bytes.length !== SHARE_LENGTH) {
      throw new CcfError(
        "InvalidRecoveryShare",
        `Error combining recovery shares: decrypted share of ${bytes.length} bytes is not a ${SHARE_LENGTH}-byte long new-style share`,
      );
    }
    const share = parseShare(bytes);
    if (share.x === 0) return share;
    partial.push(share);
  }
  if (!Number.isSafeInteger(threshold) || threshold < 1) {
    throw new CcfError(
      "InvalidRecoveryThreshold",
      `Error combining recovery shares: recovery threshold ${threshold} is not a positive integer`,
    );
  }
  if (partial.length < threshold) {
    throw new CcfError(
      "InsufficientRecoveryShares",
      `Error combining recovery shares: only ${partial.length} recovery shares were submitted but recovery threshold is ${threshold}`,
    );
  }
  try {
    return combineShares(partial, threshold);
  } catch (e) {
    throw new CcfError(
      "InvalidRecoveryShare",
      `Error combining recovery shares: ${(e as Error).message}`,
      500,
      { cause: e },
    );
  }
}

/**
 * CCF's private recovery start (6.0.17): combine the submitted raw shares, unwrap the latest ledger
 * secret from the decoded recovery_shares value, and walk the historical writes (ledger order)
 * back to the first secret. Returns every secret, oldest first. Nothing authenticates the shares:
 * wrong ones show as a failed unwrap.
 */
export function recoverLedgerSecrets(args: {
  submitted: Buffer[];
  threshold: number;
  recoveryShares: unknown;
  history: HistoricalSecretWrite[];
}): LedgerSecret[] {
  const wrapped = wrappedLatestSecret(args.recoveryShares);
  const secret = combineSubmitted(args.submitted, args.threshold);
  let latest: Buffer;
  try {
    latest = openGcmCipher(wrappingKey(secret), wrapped);
  } catch (e) {
    throw new CcfError(
      "LedgerSecretUnwrapFailed",
      "the submitted recovery shares do not unwrap the latest ledger secret (wrong or corrupted shares)",
      500,
      { cause: e },
    );
  }
  if (latest.length !== SECRET_LENGTH) {
    throw new CcfError(
      "InvalidLedgerSecret",
      `the unwrapped latest ledger secret is ${latest.length} bytes, expected ${SECRET_LENGTH}`,
    );
  }
  return walkSecretChain(latest, args.history);
}

function optionalSeqno(v: unknown, field: string, seqno: number): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new FormatError(
      "InvalidValue",
      `historical_encrypted_ledger_secret at seqno ${seqno}: ${field} is not a seqno`,
    );
  }
  return v;
}

/** Decodes a stored historical_encrypted_ledger_secret value written at `seqno`. */
export function historicalSecretWrite(seqno: number, raw: Uint8Array): HistoricalSecretWrite {
  const v = decodeValue(Tables.HISTORICAL_ENCRYPTED_LEDGER_SECRET, raw);
  const bad = (detail: string): FormatError =>
    new FormatError(
      "InvalidValue",
      `historical_encrypted_ledger_secret at seqno ${seqno}: ${detail}`,
    );
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw bad("not an object");
  const o = v as { next_version?: unknown; previous_ledger_secret?: unknown };
  const value: HistoricalSecretWrite["value"] = {};
  const next = optionalSeqno(o.next_version, "next_version", seqno);
  if (next !== undefined) value.next_version = next;
  const p = o.previous_ledger_secret;
  if (p !== undefined && p !== null) {
    if (typeof p !== "object" || Array.isArray(p)) {
      throw bad("previous_ledger_secret is not an object");
    }
    const prev = p as {
      encrypted_data?: unknown;
      version?: unknown;
      previous_secret_stored_version?: unknown;
    };
    if (typeof prev.encrypted_data !== "string") throw bad("encrypted_data is not a string");
    const version = optionalSeqno(prev.version, "version", seqno);
    if (version === undefined) throw bad("previous_ledger_secret has no version");
    value.previous_ledger_secret = { encrypted_data: prev.encrypted_data, version };
    const stored = optionalSeqno(
      prev.previous_secret_stored_version,
      "previous_secret_stored_version",
      seqno,
    );
    if (stored !== undefined) value.previous_ledger_secret.previous_secret_stored_version = stored;
  }
  return { seqno, value };
}
