// CCF's recovery secret sharing: threshold recovery, the 44-byte share format, the wrapping key
// derivation and the tag ‖ IV ‖ ciphertext GCM layout. The bytes are pinned against CCF's own
// ledgers in test/ledger/fixture-recovery.test.ts.

import assert from "node:assert/strict";
import { createCipheriv, createHmac, hkdfSync } from "node:crypto";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  combineShares,
  openGcmCipher,
  parseShare,
  type Rng,
  sampleShares,
  SHARE_LENGTH,
  SHARE_LIMBS,
  SHARE_PRIME,
  type Share,
  sealGcmCipher,
  seededRng,
  serialiseShare,
  wrappingKey,
} from "../../src/crypto/index.js";

/** Picks `k` distinct indices in [0, n) in a random order, from fast-check's seed. */
function pick(n: number, k: number, seed: number): number[] {
  const indices = Array.from({ length: n }, (_, i) => i);
  let s = seed >>> 0;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [indices[i], indices[j]] = [indices[j], indices[i]];
  }
  return indices.slice(0, k);
}

const sharing = fc
  .record({ n: fc.integer({ min: 1, max: 12 }), seed: fc.integer(), order: fc.integer() })
  .chain(({ n, seed, order }) =>
    fc.record({
      n: fc.constant(n),
      t: fc.integer({ min: 1, max: n }),
      seed: fc.constant(seed),
      order: fc.constant(order),
    }),
  );

/** An Rng that serves the given bytes, then fails. */
function scriptedRng(bytes: number[]): Rng {
  let at = 0;
  return {
    bytes(n) {
      assert.ok(at + n <= bytes.length, "scripted randomness exhausted");
      const out = Uint8Array.from(bytes.slice(at, at + n));
      at += n;
      return out;
    },
  };
}

describe("CCF recovery secret sharing", () => {
  it("recovers the secret from any t of the n shares, in any order", () => {
    fc.assert(
      fc.property(sharing, ({ n, t, seed, order }) => {
        const { secret, shares } = sampleShares(seededRng(seed), n, t);
        assert.equal(secret.x, 0);
        assert.deepEqual(
          shares.map((s) => s.x),
          Array.from({ length: n }, (_, i) => i + 1),
        );
        for (const s of [secret, ...shares]) {
          assert.equal(s.y.length, SHARE_LIMBS);
          assert.ok(s.y.every((v) => Number.isInteger(v) && v >= 0 && v < SHARE_PRIME));
        }
        const chosen = pick(n, t, order).map((i) => shares[i]);
        assert.deepEqual(combineShares(chosen, t), secret);
        // Shares beyond the first t are ignored, whatever they hold.
        const junk: Share = { x: n + 1, y: Array<number>(SHARE_LIMBS).fill(12345) };
        assert.deepEqual(combineShares([...chosen, junk], t), secret);
      }),
      { numRuns: 150 },
    );
  });

  it("does not give the secret from t - 1 shares", () => {
    fc.assert(
      fc.property(
        sharing.filter(({ t }) => t >= 2),
        ({ n, t, seed, order }) => {
          const { secret, shares } = sampleShares(seededRng(seed), n, t);
          const chosen = pick(n, t - 1, order).map((i) => shares[i]);
          assert.notDeepEqual(combineShares(chosen, t - 1).y, secret.y);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("gives every share the secret itself when t = 1 (only x differs)", () => {
    const { secret, shares } = sampleShares(seededRng(1), 3, 1);
    for (const s of shares) assert.deepEqual(s.y, secret.y);
  });

  it("is deterministic for a given Rng", () => {
    assert.deepEqual(sampleShares(seededRng(7), 5, 3), sampleShares(seededRng(7), 5, 3));
    assert.notDeepEqual(sampleShares(seededRng(7), 5, 3), sampleShares(seededRng(8), 5, 3));
  });

  it("draws each coefficient as a u64 masked to 31 bits, redrawn while it equals p", () => {
    const u64 = (low: number, high: number) => {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(low, 0);
      b.writeUInt32LE(high, 4);
      return [...b];
    };
    const bytes = [
      ...u64(0xffffffff, 0xffffffff), // masks to p: redrawn
      ...u64(0x80000005, 0xdeadbeef), // masks to 5
    ];
    for (let limb = 1; limb < SHARE_LIMBS; limb++) bytes.push(...u64(limb, 0));
    const { secret, shares } = sampleShares(scriptedRng(bytes), 2, 1);
    assert.deepEqual(secret.y, [5, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(shares[1].y, secret.y);
  });

  it("evaluates share x as the power sum of the coefficients mod p", () => {
    const u64 = (v: number) => {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(v, 0);
      return [...b];
    };
    // t = 2 per limb: a0 = 10 + limb, a1 = p - 1 (so y = a0 - x mod p).
    const bytes: number[] = [];
    for (let limb = 0; limb < SHARE_LIMBS; limb++)
      bytes.push(...u64(10 + limb), ...u64(SHARE_PRIME - 1));
    const { secret, shares } = sampleShares(scriptedRng(bytes), 3, 2);
    assert.equal(secret.y[0], 10);
    assert.deepEqual(
      shares.map((s) => s.y[0]),
      [9, 8, 7],
    );
    assert.deepEqual(
      shares.map((s) => s.y[9]),
      [18, 17, 16],
    );
  });

  it("refuses a threshold outside 1..n and no shares", () => {
    for (const [n, t] of [
      [3, 0],
      [3, 4],
      [0, 0],
      [2, 1.5],
    ]) {
      assert.throws(() => sampleShares(seededRng(1), n, t), { name: "CryptoError" });
    }
  });

  it("refuses two shares with the same x as a duplicate input share", () => {
    const { shares } = sampleShares(seededRng(2), 3, 2);
    assert.throws(() => combineShares([shares[1], shares[1]], 2), {
      name: "CryptoError",
      message: "duplicate input share",
    });
    // x is reduced mod p before use, so x and x + p are the same point.
    const aliased = { x: shares[0].x + SHARE_PRIME, y: shares[1].y };
    assert.throws(() => combineShares([shares[0], aliased], 2), {
      message: "duplicate input share",
    });
  });

  it("reduces y mod p before use", () => {
    const { secret, shares } = sampleShares(seededRng(3), 3, 2);
    const lifted = { x: shares[2].x, y: shares[2].y.map((v) => v + SHARE_PRIME) };
    assert.ok(lifted.y.every((v) => v <= 0xffffffff));
    assert.deepEqual(combineShares([shares[0], lifted], 2), secret);
  });

  it("refuses fewer shares than the threshold", () => {
    const { shares } = sampleShares(seededRng(4), 3, 3);
    assert.throws(() => combineShares(shares.slice(0, 2), 3), {
      name: "CryptoError",
      code: "InsufficientShares",
    });
  });

  it("serialises a share as 44 bytes: x then y[0..9], u32 little-endian", () => {
    const share: Share = { x: 3, y: [1, 2, 3, 4, 5, 6, 7, 8, 9, SHARE_PRIME - 1] };
    const bytes = serialiseShare(share);
    assert.equal(bytes.length, SHARE_LENGTH);
    assert.equal(
      bytes.toString("hex"),
      "03000000010000000200000003000000040000000500000006000000070000000800000009000000feffff7f",
    );
    assert.deepEqual(parseShare(bytes), share);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: SHARE_LENGTH, maxLength: SHARE_LENGTH }), (b) => {
        assert.deepEqual(serialiseShare(parseShare(b)), Buffer.from(b));
      }),
    );
  });

  it("refuses to parse anything but 44 bytes", () => {
    for (const length of [0, 43, 45, 113]) {
      assert.throws(() => parseShare(new Uint8Array(length)), {
        name: "CryptoError",
        code: "InvalidShare",
        message: `a recovery share is 44 bytes, got ${length}`,
      });
    }
  });

  it("refuses to serialise values that are not u32s", () => {
    assert.throws(() => serialiseShare({ x: -1, y: Array<number>(SHARE_LIMBS).fill(0) }), {
      code: "InvalidShare",
    });
    assert.throws(() => serialiseShare({ x: 1, y: [1, 2] }), { code: "InvalidShare" });
  });
});

describe("the wrapping key", () => {
  const secret: Share = { x: 0, y: [1, 2, 3, 4, 5, 6, 7, 8, 9, SHARE_PRIME - 1] };
  const y = Buffer.from(
    "010000000200000003000000040000000500000006000000070000000800000009000000feffff7f",
    "hex",
  );

  it("is HKDF-SHA256 with the 40 y bytes as IKM and info and an empty salt", () => {
    // RFC 5869 by hand: PRK = HMAC(zeros, IKM); OKM = HMAC(PRK, info ‖ 0x01) (one block).
    const prk = createHmac("sha256", Buffer.alloc(32)).update(y).digest();
    const okm = createHmac("sha256", prk)
      .update(Buffer.concat([y, Buffer.from([1])]))
      .digest();
    const key = wrappingKey(secret);
    assert.deepEqual(key, okm);
    assert.deepEqual(key, Buffer.from(hkdfSync("sha256", y, Buffer.alloc(0), y, 32)));
    assert.equal(
      key.toString("hex"),
      "8ab37b0ff77e29ac7a65c75796345c5557795ce0e0e53852fc32a0ccf093aa59",
    );
  });

  it("does not use CCF's declared label", () => {
    const labelled = Buffer.from(
      hkdfSync("sha256", y, Buffer.alloc(0), Buffer.from("CCF Wrapping Key v1"), 32),
    );
    assert.notDeepEqual(wrappingKey(secret), labelled);
  });

  it("is derived only from the full secret (x = 0)", () => {
    assert.throws(() => wrappingKey({ ...secret, x: 1 }), {
      name: "CryptoError",
      code: "InvalidShare",
    });
  });
});

describe("GcmCipher (tag ‖ IV ‖ ciphertext, no AAD)", () => {
  const key = Buffer.alloc(32, 7);
  const iv = Buffer.from("0102030405060708090a0b0c", "hex");
  const plaintext = Buffer.alloc(32, 0xab);

  it("lays out tag, IV and ciphertext as AES-256-GCM computes them", () => {
    const sealed = sealGcmCipher(key, plaintext, iv);
    assert.equal(sealed.length, 60);
    const cipher = createCipheriv("aes-256-gcm", key, iv);
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    assert.deepEqual(sealed, Buffer.concat([cipher.getAuthTag(), iv, ciphertext]));
    assert.deepEqual(openGcmCipher(key, sealed), plaintext);
  });

  it("refuses a changed byte anywhere, a wrong key or a truncated value", () => {
    const sealed = sealGcmCipher(key, plaintext, iv);
    for (const at of [0, 15, 16, 27, 28, 59]) {
      const bad = Buffer.from(sealed);
      bad[at] ^= 0x80;
      assert.throws(() => openGcmCipher(key, bad), {
        name: "CryptoError",
        code: "DecryptionFailed",
      });
    }
    assert.throws(() => openGcmCipher(Buffer.alloc(32, 8), sealed), { code: "DecryptionFailed" });
    assert.throws(() => openGcmCipher(key, sealed.subarray(0, 27)), { code: "DecryptionFailed" });
  });
});
