// Ledger secrets: the AES-256-GCM keys that encrypt private maps, each in force from a seqno on
// (a rekey starts a new one). They live only in memory; nothing here ever writes one to disk.

import { CcfError } from "../errors.js";

export interface LedgerSecret {
  /** 32-byte AES-256-GCM key. */
  key: Buffer;
  /** First seqno this secret encrypts. */
  version: number;
}

export class LedgerSecrets {
  private readonly secrets: LedgerSecret[] = [];

  constructor(initial: LedgerSecret[] = []) {
    for (const s of initial) this.add(s);
  }

  add(secret: LedgerSecret): void {
    if (secret.key.length !== 32)
      throw new CcfError("InvalidLedgerSecret", "a ledger secret is 32 bytes");
    const last = this.secrets[this.secrets.length - 1];
    if (last !== undefined && secret.version <= last.version) {
      throw new CcfError(
        "InvalidLedgerSecret",
        `ledger secret versions must increase (${secret.version} after ${last.version})`,
      );
    }
    this.secrets.push(secret);
  }

  /**
   * Puts back the secrets of an older ledger (a recovery: the recovered service's own secret came
   * first, the previous ones return once members' shares unwrap them). All must be older than
   * every secret held; a version already held is skipped.
   */
  addOlder(older: readonly LedgerSecret[]): void {
    const first = this.secrets[0]?.version ?? Number.POSITIVE_INFINITY;
    const fresh = older.filter((s) => s.version < first);
    const merged = new LedgerSecrets(fresh);
    for (const s of this.secrets) merged.add(s);
    this.secrets.splice(0, this.secrets.length, ...merged.secrets);
  }

  /**
   * Consensus dropped the entries after `seqno`: a secret that a dropped rekey (at version - 1)
   * brought in goes with it.
   */
  rollback(seqno: number): void {
    while (this.secrets.length > 1 && (this.secrets.at(-1) as LedgerSecret).version > seqno + 1) {
      this.secrets.pop();
    }
  }

  /** The secret that encrypts the entry at `seqno`. */
  forSeqno(seqno: number): LedgerSecret {
    for (let i = this.secrets.length - 1; i >= 0; i--) {
      const s = this.secrets[i];
      if (s.version <= seqno) return s;
    }
    throw new CcfError("NoLedgerSecret", `no ledger secret applies to seqno ${seqno}`);
  }

  latest(): LedgerSecret {
    const s = this.secrets[this.secrets.length - 1];
    if (s === undefined) throw new CcfError("NoLedgerSecret", "no ledger secret");
    return s;
  }

  get size(): number {
    return this.secrets.length;
  }

  /** Every secret, oldest first (what a joining node is given). */
  all(): readonly LedgerSecret[] {
    return [...this.secrets];
  }
}
