// Issuing and re-sharing recovery shares, and recovering ledger secrets from them, on an in-memory
// store with members written as genesis writes them.

import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import {
  certificateId,
  createSelfSignedCertificate,
  EcKeyPair,
  generateRsaKeyPair,
  openGcmCipher,
  parseShare,
  rsaOaepUnwrap,
  SHARE_LENGTH,
  seededRng,
} from "../../src/crypto/index.js";
import {
  decodeValue,
  encodeValue,
  idKey,
  keyToString,
  SINGLETON_KEY,
  Store,
  Tables,
  type Tx,
} from "../../src/kv/index.js";
import type { HistoricalSecretWrite, LedgerSecret } from "../../src/ledger/index.js";
import {
  encryptedShareOf,
  historicalSecretWrite,
  issueRecoveryShares,
  recoverLedgerSecrets,
} from "../../src/node/share-manager.js";

const SINGLETON = keyToString(SINGLETON_KEY);

type Role = "Participant" | "Owner" | "NonParticipant";

interface Member {
  id: string;
  cert: string;
  encryption: { publicKeyPem: string; privateKeyPem: string };
}

interface MemberSetup {
  member: Member;
  status?: "Active" | "Accepted";
  role?: Role;
  /** Whether its encryption key is recorded (default true). */
  withKey?: boolean;
}

const MEMBERS: Member[] = [];

async function makeMember(name: string): Promise<Member> {
  const cert = await createSelfSignedCertificate(EcKeyPair.generate("secp384r1"), {
    subjectName: `CN=${name}`,
    validFrom: new Date("2025-01-01T00:00:00Z"),
    validityDays: 30,
  });
  return { id: certificateId(cert), cert, encryption: generateRsaKeyPair(2048) };
}

/** A store holding the members (as writeGenesis writes them) and the recovery threshold. */
function service(threshold: number, members: MemberSetup[]): Store {
  const store = new Store();
  const tx = store.begin();
  for (const { member, status = "Active", role, withKey = true } of members) {
    const id = idKey(member.id);
    tx.map(Tables.MEMBER_CERTS).set(id, encodeValue(Tables.MEMBER_CERTS, member.cert));
    if (withKey) {
      tx.map(Tables.MEMBER_ENCRYPTION_KEYS).set(
        id,
        encodeValue(Tables.MEMBER_ENCRYPTION_KEYS, member.encryption.publicKeyPem),
      );
    }
    const info: Record<string, unknown> = { status };
    if (role !== undefined) info.recovery_role = role;
    tx.map(Tables.MEMBER_INFO).set(id, encodeValue(Tables.MEMBER_INFO, info));
  }
  tx.map(Tables.CONFIGURATION).set(
    SINGLETON_KEY,
    encodeValue(Tables.CONFIGURATION, { recovery_threshold: threshold }),
  );
  store.commit(tx);
  return store;
}

function secret(fill: number, version: number): LedgerSecret {
  return { key: Buffer.alloc(32, fill), version };
}

/** Runs `fn` in a transaction and commits it; returns the version it committed at. */
function commit(store: Store, fn: (tx: Tx) => void): number {
  const tx = store.begin();
  fn(tx);
  return store.commit(tx).version;
}

function rawValue(store: Store, table: string): string | undefined {
  const v = store.get(table, SINGLETON);
  return v === undefined ? undefined : Buffer.from(v).toString();
}

function recoveryShares(store: Store): {
  encrypted_shares: Record<string, string>;
  previous_secret_stored_version?: number;
  wrapped_latest_ledger_secret: string;
} {
  return decodeValue(
    Tables.RECOVERY_SHARES,
    store.get(Tables.RECOVERY_SHARES, SINGLETON) as Uint8Array,
  ) as ReturnType<typeof recoveryShares>;
}

/** What a member submits: its share from the latest recovery_shares, RSA decrypted. */
function decryptedShare(store: Store, member: Member): Buffer {
  const encrypted = encryptedShareOf(store.begin(), member.id);
  assert.ok(encrypted !== undefined, `a share for ${member.id}`);
  return rsaOaepUnwrap(member.encryption.privateKeyPem, encrypted);
}

/** Every write to historical_encrypted_ledger_secret so far, as public replay collects them. */
class HistoryLog {
  readonly writes: HistoricalSecretWrite[] = [];

  /** Runs `fn` in a committed transaction, logging its historical write; returns its version. */
  commit(store: Store, fn: (tx: Tx) => void): number {
    const tx = store.begin();
    fn(tx);
    const { version, writeSet } = store.commit(tx);
    const raw = writeSet.get(Tables.HISTORICAL_ENCRYPTED_LEDGER_SECRET)?.get(SINGLETON);
    if (raw !== undefined && raw !== null) this.writes.push(historicalSecretWrite(version, raw));
    return version;
  }
}

function byId(members: Member[]): Member[] {
  return [...members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

describe("recovery shares", () => {
  before(async () => {
    for (let i = 0; i < 5; i++) MEMBERS.push(await makeMember(`member${i}`));
  });

  it("issues for a new service: one share per active participant, x by ascending member id", () => {
    const members = MEMBERS.slice(0, 3);
    const store = service(
      2,
      members.map((member) => ({ member })),
    );
    const latest = secret(1, 1);
    const log = new HistoryLog();
    log.commit(store, (tx) =>
      issueRecoveryShares(tx, seededRng(1), { latest, history: { nextVersion: 1 } }),
    );

    assert.equal(rawValue(store, Tables.HISTORICAL_ENCRYPTED_LEDGER_SECRET), '{"next_version":1}');
    const text = rawValue(store, Tables.RECOVERY_SHARES) ?? "";
    const value = recoveryShares(store);
    // CCF's bytes: compact, sorted keys, no previous_secret_stored_version until it is known.
    assert.match(text, /^\{"encrypted_shares":\{"[0-9a-f]{64}":"[A-Za-z0-9+/]+={0,2}",/);
    assert.match(text, /,"wrapped_latest_ledger_secret":"[A-Za-z0-9+/]{80}"\}$/);
    assert.equal(text, JSON.stringify(value));
    assert.deepEqual(
      Object.keys(value.encrypted_shares),
      byId(members).map((m) => m.id),
    );
    const wrapped = Buffer.from(value.wrapped_latest_ledger_secret, "base64");
    assert.equal(wrapped.length, 60);
    assert.deepEqual(wrapped.subarray(16, 28), Buffer.alloc(12));
    for (const [i, m] of byId(members).entries()) {
      const raw = decryptedShare(store, m);
      assert.equal(raw.length, SHARE_LENGTH);
      assert.equal(parseShare(raw).x, i + 1);
      assert.equal(Buffer.from(value.encrypted_shares[m.id], "base64").length, 256);
    }

    const history = log.writes;
    for (const pair of [
      [0, 1],
      [2, 0],
      [1, 2],
    ]) {
      const recovered = recoverLedgerSecrets({
        submitted: pair.map((i) => decryptedShare(store, members[i])),
        threshold: 2,
        recoveryShares: value,
        history,
      });
      assert.deepEqual(recovered, [latest]);
    }
    assert.throws(
      () =>
        recoverLedgerSecrets({
          submitted: [decryptedShare(store, members[0])],
          threshold: 2,
          recoveryShares: value,
          history,
        }),
      { name: "CcfError", code: "InsufficientRecoveryShares", message: /only 1 recovery shares/ },
    );
    assert.throws(
      () =>
        recoverLedgerSecrets({
          submitted: [decryptedShare(store, members[0])],
          threshold: 0,
          recoveryShares: value,
          history,
        }),
      { code: "InvalidRecoveryThreshold" },
    );
  });

  it("gives no share to accepted members, members without a key or NonParticipants", () => {
    const [a, b, c, d] = MEMBERS;
    const store = service(1, [
      { member: a },
      { member: b, status: "Accepted" },
      { member: c, withKey: false },
      { member: d, role: "NonParticipant" },
    ]);
    commit(store, (tx) => issueRecoveryShares(tx, seededRng(2), { latest: secret(2, 1) }));
    assert.deepEqual(Object.keys(recoveryShares(store).encrypted_shares), [a.id]);
    assert.equal(parseShare(decryptedShare(store, a)).x, 1);
  });

  it("re-shares: new shares and wrapping, the same secret, no historical write", () => {
    const members = MEMBERS.slice(0, 3);
    const store = service(
      2,
      members.map((member) => ({ member })),
    );
    const latest = secret(3, 1);
    const log = new HistoryLog();
    log.commit(store, (tx) =>
      issueRecoveryShares(tx, seededRng(3), { latest, history: { nextVersion: 1 } }),
    );
    const history = log.writes;
    const before = recoveryShares(store);
    const oldShares = members.map((m) => decryptedShare(store, m));

    const tx = store.begin();
    issueRecoveryShares(tx, seededRng(4), { latest });
    assert.deepEqual(
      [...tx.writeSet().keys()].filter((t) => (tx.writeSet().get(t)?.size ?? 0) > 0),
      [Tables.RECOVERY_SHARES],
    );
    store.commit(tx);

    const after = recoveryShares(store);
    assert.notEqual(after.wrapped_latest_ledger_secret, before.wrapped_latest_ledger_secret);
    const newShares = members.map((m) => decryptedShare(store, m));
    for (let i = 0; i < 3; i++) assert.notDeepEqual(newShares[i], oldShares[i]);
    assert.deepEqual(
      recoverLedgerSecrets({
        submitted: newShares.slice(1),
        threshold: 2,
        recoveryShares: after,
        history,
      }),
      [latest],
    );
    // The old shares no longer unwrap anything.
    assert.throws(
      () =>
        recoverLedgerSecrets({
          submitted: oldShares.slice(1),
          threshold: 2,
          recoveryShares: after,
          history,
        }),
      { code: "LedgerSecretUnwrapFailed" },
    );
  });

  it("keeps the chain across a rekey and an end of recovery, and walks it back", () => {
    const [a, b] = MEMBERS;
    const store = service(1, [{ member: a }, { member: b }]);
    const log = new HistoryLog();
    const first = secret(4, 1);

    const opened = log.commit(store, (tx) =>
      issueRecoveryShares(tx, seededRng(5), { latest: first, history: { nextVersion: 1 } }),
    );

    // Rekey: the new secret applies from the seqno after the rekey transaction.
    const rekeyAt = log.commit(store, (tx) =>
      issueRecoveryShares(tx, seededRng(6), {
        latest: secret(5, 0),
        history: { previous: first },
      }),
    );
    const second = { key: Buffer.alloc(32, 5), version: rekeyAt + 1 };
    const rekeyText = rawValue(store, Tables.HISTORICAL_ENCRYPTED_LEDGER_SECRET) ?? "";
    assert.match(
      rekeyText,
      new RegExp(
        `^\\{"previous_ledger_secret":\\{"encrypted_data":"[A-Za-z0-9+/]{80}","previous_secret_stored_version":${opened},"version":1\\}\\}$`,
      ),
    );

    // End of a recovery to L = 20: the recovered service's secret applies from 21.
    const third = secret(6, 21);
    const recoveredAt = log.commit(store, (tx) =>
      issueRecoveryShares(tx, seededRng(7), {
        latest: third,
        latestPreviousStoredVersion: rekeyAt,
        history: { previous: second, nextVersion: 21, previousStoredVersion: 99 },
      }),
    );
    const endText = rawValue(store, Tables.HISTORICAL_ENCRYPTED_LEDGER_SECRET) ?? "";
    assert.match(
      endText,
      new RegExp(
        `^\\{"next_version":21,"previous_ledger_secret":\\{"encrypted_data":"[A-Za-z0-9+/]{80}","previous_secret_stored_version":99,"version":${second.version}\\}\\}$`,
      ),
    );
    assert.equal(recoveryShares(store).previous_secret_stored_version, rekeyAt);
    assert.match(
      rawValue(store, Tables.RECOVERY_SHARES) ?? "",
      /,"previous_secret_stored_version":\d+,"wrapped_latest/,
    );

    assert.deepEqual(
      log.writes.map((w) => w.seqno),
      [opened, rekeyAt, recoveredAt],
    );
    const recovered = recoverLedgerSecrets({
      submitted: [decryptedShare(store, b)],
      threshold: 1,
      recoveryShares: recoveryShares(store),
      history: log.writes,
    });
    assert.deepEqual(recovered, [first, second, third]);
    // The previous secret is stored under the newer one with a random IV.
    const data = Buffer.from(
      log.writes[1].value.previous_ledger_secret?.encrypted_data ?? "",
      "base64",
    );
    assert.deepEqual(openGcmCipher(second.key, data), first.key);
    assert.notDeepEqual(data.subarray(16, 28), Buffer.alloc(12));
  });

  it("gives Owners the full x = 0 share, which recovers on its own", () => {
    const [owner1, p1, p2, owner2] = MEMBERS;
    const store = service(2, [
      { member: owner1, role: "Owner" },
      { member: p1 },
      { member: p2, role: "Participant" },
      { member: owner2, role: "Owner" },
    ]);
    const latest = secret(7, 1);
    const log = new HistoryLog();
    log.commit(store, (tx) =>
      issueRecoveryShares(tx, seededRng(8), { latest, history: { nextVersion: 1 } }),
    );
    assert.deepEqual(
      Object.keys(recoveryShares(store).encrypted_shares),
      byId([owner1, p1, p2, owner2]).map((m) => m.id),
    );
    const full = decryptedShare(store, owner1);
    assert.equal(parseShare(full).x, 0);
    assert.deepEqual(decryptedShare(store, owner2), full);
    assert.deepEqual(
      byId([p1, p2]).map((m) => parseShare(decryptedShare(store, m)).x),
      [1, 2],
    );
    const history = log.writes;
    // A full share is used at once, whatever the threshold and wherever it comes.
    assert.deepEqual(
      recoverLedgerSecrets({
        submitted: [decryptedShare(store, p1), full],
        threshold: 2,
        recoveryShares: recoveryShares(store),
        history,
      }),
      [latest],
    );
  });

  it("accepts Owners only with threshold 1", () => {
    const [owner] = MEMBERS;
    const store = service(1, [{ member: owner, role: "Owner" }]);
    const latest = secret(8, 1);
    commit(store, (tx) => issueRecoveryShares(tx, seededRng(9), { latest }));
    assert.equal(parseShare(decryptedShare(store, owner)).x, 0);

    const two = service(2, [{ member: owner, role: "Owner" }]);
    const tx = two.begin();
    assert.throws(() => issueRecoveryShares(tx, seededRng(9), { latest }), {
      name: "CcfError",
      code: "InvalidRecoveryThreshold",
      message:
        "Recovery threshold 2 cannot be greater than 1 when the consortium consists of only active recovery owner members (1)",
    });
  });

  it("refuses a threshold above the participants, zero, or no share holders, writing nothing", () => {
    const [a, b, c] = MEMBERS;
    const cases: Array<[Store, string, RegExp]> = [
      [
        service(3, [{ member: a }, { member: b }, { member: c, role: "Owner" }]),
        "InvalidRecoveryThreshold",
        /^Recovery threshold 3 should be equal to or less than the number of active recovery members 2$/,
      ],
      [service(0, [{ member: a }]), "InvalidRecoveryThreshold", /should be set/],
      [
        service(1, [
          { member: a, status: "Accepted" },
          { member: b, role: "NonParticipant" },
        ]),
        "NoRecoveryMembers",
        /at least one active recovery member/,
      ],
    ];
    for (const [store, code, message] of cases) {
      const tx = store.begin();
      assert.throws(
        () =>
          issueRecoveryShares(tx, seededRng(10), {
            latest: secret(9, 2),
            history: { previous: secret(8, 1) },
          }),
        { name: "CcfError", code, message },
      );
      assert.equal(tx.hasWrites(), false);
    }
  });

  it("refuses a member with an encryption key but no member info", () => {
    const [a, b] = MEMBERS;
    const store = service(1, [{ member: a }]);
    commit(store, (tx) =>
      tx
        .map(Tables.MEMBER_ENCRYPTION_KEYS)
        .set(idKey(b.id), encodeValue(Tables.MEMBER_ENCRYPTION_KEYS, b.encryption.publicKeyPem)),
    );
    const tx = store.begin();
    assert.throws(() => issueRecoveryShares(tx, seededRng(11), { latest: secret(1, 1) }), {
      code: "InvalidMemberInfo",
      message: `Recovery member ${b.id} has no member info`,
    });
    assert.equal(tx.hasWrites(), false);
  });

  it("wraps the same secret identically for the same seed", () => {
    const [a] = MEMBERS;
    const wrap = (seed: number) => {
      const store = service(1, [{ member: a }]);
      commit(store, (tx) => issueRecoveryShares(tx, seededRng(seed), { latest: secret(1, 1) }));
      return recoveryShares(store).wrapped_latest_ledger_secret;
    };
    assert.equal(wrap(12), wrap(12));
    assert.notEqual(wrap(12), wrap(13));
  });

  it("answers undefined for a member without a share, or before any shares exist", () => {
    const [a, b] = MEMBERS;
    const store = service(1, [{ member: a }]);
    assert.equal(encryptedShareOf(store.begin(), a.id), undefined);
    commit(store, (tx) => issueRecoveryShares(tx, seededRng(14), { latest: secret(1, 1) }));
    assert.ok(encryptedShareOf(store.begin(), a.id) !== undefined);
    assert.equal(encryptedShareOf(store.begin(), b.id), undefined);
  });

  it("decodes historical writes strictly", () => {
    const enc = (v: unknown) => Buffer.from(JSON.stringify(v));
    assert.deepEqual(historicalSecretWrite(5, enc({})), { seqno: 5, value: {} });
    assert.deepEqual(
      historicalSecretWrite(5, enc({ next_version: 3, previous_ledger_secret: null })),
      { seqno: 5, value: { next_version: 3 } },
    );
    for (const bad of [
      [],
      { next_version: "1" },
      { previous_ledger_secret: { version: 1 } },
      { previous_ledger_secret: { encrypted_data: "", version: -1 } },
    ]) {
      assert.throws(() => historicalSecretWrite(5, enc(bad)), {
        name: "FormatError",
        message: /seqno 5/,
      });
    }
  });
});
