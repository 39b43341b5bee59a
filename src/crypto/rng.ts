// Injected randomness: the system CSPRNG for real nodes, a seeded stream for reproducible simulations.
import { createHash, randomBytes } from "node:crypto";

export interface Rng {
  bytes(n: number): Uint8Array;
}

export const systemRng: Rng = {
  bytes: (n) => randomBytes(n),
};

/**
 * A deterministic byte stream: SHA-256(domain ‖ seed ‖ counter) blocks, consumed in order, so
 * `bytes(16)` twice yields the same bytes as `bytes(32)` once. Not for production keys.
 */
export function seededRng(seed: number | Uint8Array): Rng {
  let seedBytes: Uint8Array;
  if (typeof seed === "number") {
    // Float64 encoding gives every number (integer or not) a distinct 8-byte seed.
    const b = Buffer.alloc(8);
    b.writeDoubleBE(seed);
    seedBytes = b;
  } else {
    seedBytes = Uint8Array.from(seed);
  }
  const domain = Buffer.from("ccf-ts seededRng v1\0");
  const counter = Buffer.alloc(8);
  let block = 0n;
  let buffered: Buffer = Buffer.alloc(0);
  let offset = 0;

  const nextBlock = (): Buffer => {
    counter.writeBigUInt64BE(block++);
    return createHash("sha256").update(domain).update(seedBytes).update(counter).digest();
  };

  return {
    bytes(n: number): Uint8Array {
      if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`invalid byte count ${n}`);
      const out = new Uint8Array(n);
      let written = 0;
      while (written < n) {
        if (offset === buffered.length) {
          buffered = nextBlock();
          offset = 0;
        }
        const take = Math.min(n - written, buffered.length - offset);
        out.set(buffered.subarray(offset, offset + take), written);
        offset += take;
        written += take;
      }
      return out;
    },
  };
}
