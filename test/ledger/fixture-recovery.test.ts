// Disaster recovery of ledgers CCF 6 wrote, with the members' keys: each member's share is RSA
// decrypted, the shares combined, the latest ledger secret unwrapped and the secret chain walked;
// the secrets found must then decrypt and authenticate every entry of the ledger.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  certificateId,
  openGcmCipher,
  parseShare,
  rsaOaepUnwrap,
  SHARE_LENGTH,
} from "../../src/crypto/index.js";
import { decodeValue, keyToString, SINGLETON_KEY, Tables } from "../../src/kv/index.js";
import {
  type HistoricalSecretWrite,
  type LedgerSecret,
  LedgerSecrets,
  readLedger,
  walkSecretChain,
} from "../../src/ledger/index.js";
import {
  encryptedShareOf,
  historicalSecretWrite,
  recoverLedgerSecrets,
} from "../../src/node/share-manager.js";

const FIXTURES = join(import.meta.dirname, "../../../shared/fixtures/ccf-ledgers");
const SINGLETON = keyToString(SINGLETON_KEY);

interface RecoveryMaterial {
  /** The latest recovery_shares value, decoded, and the seqno that wrote it. */
  recoveryShares: unknown;
  sharesSeqno: number;
  history: HistoricalSecretWrite[];
  /** Private-domain ciphertext length by seqno, for entries that have one. */
  privateEntries: number[];
}

/** Reads what public recovery finds: the committed chunks' public domains only. */
function recoveryMaterial(service: string): RecoveryMaterial {
  const material: RecoveryMaterial = {
    recoveryShares: undefined,
    sharesSeqno: 0,
    history: [],
    privateEntries: [],
  };
  readLedger(join(FIXTURES, service, "ledger"), {
    committedOnly: true,
    onEntry: (e) => {
      const shares = e.writeSet.get(Tables.RECOVERY_SHARES)?.get(SINGLETON);
      if (shares !== undefined && shares !== null) {
        material.recoveryShares = decodeValue(Tables.RECOVERY_SHARES, shares);
        material.sharesSeqno = e.seqno;
      }
      const historical = e.writeSet.get(Tables.HISTORICAL_ENCRYPTED_LEDGER_SECRET)?.get(SINGLETON);
      if (historical !== undefined && historical !== null) {
        material.history.push(historicalSecretWrite(e.seqno, historical));
      }
      if (e.entry.privateCiphertext.length > 0) material.privateEntries.push(e.seqno);
    },
  });
  return material;
}

function common(service: string, file: string): string {
  return readFileSync(join(FIXTURES, service, "common", file), "utf8");
}

function memberId(service: string, member: number): string {
  return certificateId(common(service, `member${member}_cert.pem`));
}

/** The member's raw share: its entry in recovery_shares, RSA-OAEP decrypted with its key. */
function decryptShare(service: string, material: RecoveryMaterial, member: number): Buffer {
  const encrypted = (material.recoveryShares as { encrypted_shares: Record<string, string> })
    .encrypted_shares[memberId(service, member)];
  assert.ok(encrypted !== undefined, `member${member} has a share`);
  const ciphertext = Buffer.from(encrypted, "base64");
  assert.equal(ciphertext.length, 256);
  return rsaOaepUnwrap(common(service, `member${member}_enc_privk.pem`), ciphertext);
}

function versions(secrets: LedgerSecret[]): number[] {
  return secrets.map((s) => s.version);
}

describe("recovery of cose_flipflop_service (CCF 6, one member, threshold 1)", () => {
  const service = "cose_flipflop_service";
  const material = recoveryMaterial(service);

  it("finds recovery_shares at 13 with one share and a 60-byte wrapped secret under a zero IV", () => {
    assert.equal(material.sharesSeqno, 13);
    const value = material.recoveryShares as {
      encrypted_shares: Record<string, string>;
      wrapped_latest_ledger_secret: string;
    };
    assert.deepEqual(Object.keys(value.encrypted_shares), [memberId(service, 0)]);
    const wrapped = Buffer.from(value.wrapped_latest_ledger_secret, "base64");
    assert.equal(wrapped.length, 60);
    assert.deepEqual(wrapped.subarray(16, 28), Buffer.alloc(12));
    assert.deepEqual(material.history, [{ seqno: 13, value: { next_version: 1 } }]);
  });

  it("decrypts member0's share to 44 bytes with x = 1", () => {
    const raw = decryptShare(service, material, 0);
    assert.equal(raw.length, SHARE_LENGTH);
    assert.equal(parseShare(raw).x, 1);
  });

  it("recovers one ledger secret, valid from seqno 1", () => {
    const secrets = recoverLedgerSecrets({
      submitted: [decryptShare(service, material, 0)],
      threshold: 1,
      recoveryShares: material.recoveryShares,
      history: material.history,
    });
    assert.deepEqual(versions(secrets), [1]);
    assert.equal(secrets[0].key.length, 32);
  });

  it("decrypts the ledger with it: every GCM tag verifies, 13 private records say 42 = hello", () => {
    const secrets = recoverLedgerSecrets({
      submitted: [decryptShare(service, material, 0)],
      threshold: 1,
      recoveryShares: material.recoveryShares,
      history: material.history,
    });
    const records: Array<[number, string, string]> = [];
    const report = readLedger(join(FIXTURES, service, "ledger"), {
      secrets: new LedgerSecrets(secrets),
      onEntry: (e) => {
        e.writeSet.get("records")?.forEach((v, k) => {
          records.push([e.seqno, k, Buffer.from(v ?? []).toString()]);
        });
      },
    });
    assert.equal(report.entries, 46);
    assert.deepEqual(
      records,
      material.privateEntries.map((s) => [s, "42", "hello"]),
    );
    assert.equal(records.length, 13);
  });

  it("refuses a corrupted share: the unwrap fails", () => {
    const raw = decryptShare(service, material, 0);
    raw[10] ^= 1;
    assert.throws(
      () =>
        recoverLedgerSecrets({
          submitted: [raw],
          threshold: 1,
          recoveryShares: material.recoveryShares,
          history: material.history,
        }),
      { name: "CcfError", code: "LedgerSecretUnwrapFailed" },
    );
  });

  it("refuses a share that is not 44 bytes (the pre-4.x 113-byte format)", () => {
    assert.throws(
      () =>
        recoverLedgerSecrets({
          submitted: [Buffer.alloc(113)],
          threshold: 1,
          recoveryShares: material.recoveryShares,
          history: material.history,
        }),
      { code: "InvalidRecoveryShare", message: /113 bytes/ },
    );
  });
});

describe("recovery of double_sealed_service (CCF 6, recovered once, duplicated end of recovery)", () => {
  const service = "double_sealed_service";
  const material = recoveryMaterial(service);
  const raw = [0, 1, 2].map((m) => decryptShare(service, material, m));

  it("uses the latest recovery_shares (503) and three historical writes (18, 498, 503)", () => {
    assert.equal(material.sharesSeqno, 503);
    assert.equal(
      (material.recoveryShares as { previous_secret_stored_version?: number })
        .previous_secret_stored_version,
      498,
    );
    assert.deepEqual(
      material.history.map((h) => [
        h.seqno,
        h.value.next_version,
        h.value.previous_ledger_secret?.version,
        h.value.previous_ledger_secret?.previous_secret_stored_version,
      ]),
      [
        [18, 1, undefined, undefined],
        [498, 484, 1, 18],
        [503, 484, 1, 498],
      ],
    );
  });

  it("gives member1, member2 and member0 x = 1, 2, 3 (ascending member id), with equal y (t = 1)", () => {
    assert.deepEqual(
      raw.map((r) => parseShare(r).x),
      [3, 1, 2],
    );
    const ys = raw.map((r) => parseShare(r).y);
    assert.deepEqual(ys[1], ys[0]);
    assert.deepEqual(ys[2], ys[0]);
  });

  it("recovers secrets valid from 1 and 484 with any one member's share", () => {
    for (const share of raw) {
      const secrets = recoverLedgerSecrets({
        submitted: [share],
        threshold: 1,
        recoveryShares: material.recoveryShares,
        history: material.history,
      });
      assert.deepEqual(versions(secrets), [1, 484]);
    }
  });

  it("needs the skip rule: the 498 write does not decrypt under the version-1 secret", () => {
    const [first, second] = recoverLedgerSecrets({
      submitted: [raw[1]],
      threshold: 1,
      recoveryShares: material.recoveryShares,
      history: material.history,
    });
    const at498 = material.history.find((h) => h.seqno === 498);
    const data = Buffer.from(at498?.value.previous_ledger_secret?.encrypted_data ?? "", "base64");
    assert.equal(data.length, 60);
    assert.throws(() => openGcmCipher(first.key, data), { code: "DecryptionFailed" });
    // It stores the same version-1 secret as 503, under the version-484 secret.
    assert.deepEqual(openGcmCipher(second.key, data), first.key);
    // A walk that only sees 498 and 503 as distinct versions would fail at 498.
    const renumbered = material.history.map((h) =>
      h.seqno === 498 && h.value.previous_ledger_secret !== undefined
        ? {
            ...h,
            value: {
              ...h.value,
              previous_ledger_secret: { ...h.value.previous_ledger_secret, version: 2 },
            },
          }
        : h,
    );
    assert.throws(() => walkSecretChain(second.key, renumbered), {
      code: "LedgerSecretDecryptionFailed",
      message: /seqno 498/,
    });
  });

  it("decrypts the whole ledger with them: all 509 GCM tags verify, open chunk included", () => {
    const secrets = recoverLedgerSecrets({
      submitted: [raw[0]],
      threshold: 1,
      recoveryShares: material.recoveryShares,
      history: material.history,
    });
    const report = readLedger(join(FIXTURES, service, "ledger"), {
      secrets: new LedgerSecrets(secrets),
    });
    assert.equal(report.entries, 509);
    // The first secret alone fails at the recovery genesis.
    assert.throws(
      () =>
        readLedger(join(FIXTURES, service, "ledger"), {
          committedOnly: true,
          verify: false,
          secrets: new LedgerSecrets([secrets[0]]),
        }),
      { code: "LedgerDecryptionFailed", message: /seqno 484/ },
    );
  });

  it("uses only the first t shares: a junk share first breaks recovery, last does not", () => {
    const junk = Buffer.alloc(SHARE_LENGTH);
    junk.writeUInt32LE(7, 0);
    junk.fill(0x55, 4);
    const recover = (submitted: Buffer[]) =>
      recoverLedgerSecrets({
        submitted,
        threshold: 1,
        recoveryShares: material.recoveryShares,
        history: material.history,
      });
    assert.deepEqual(versions(recover([raw[0], junk])), [1, 484]);
    assert.throws(() => recover([junk, raw[0]]), { code: "LedgerSecretUnwrapFailed" });
  });

  it("serves each member's encrypted share from the rebuilt state", () => {
    const report = readLedger(join(FIXTURES, service, "ledger"), {
      committedOnly: true,
      verify: false,
    });
    const tx = report.store.begin();
    for (const m of [0, 1, 2]) {
      const encrypted = encryptedShareOf(tx, memberId(service, m));
      assert.ok(encrypted !== undefined);
      assert.deepEqual(
        rsaOaepUnwrap(common(service, `member${m}_enc_privk.pem`), encrypted),
        raw[m],
      );
    }
    assert.equal(encryptedShareOf(tx, "00".repeat(32)), undefined);
  });
});
