// Test oracles for the Merkle tree: a naive level-by-level construction (odd last node promoted) on
// node:crypto, and reproducible distinct leaves.
import { createHash } from "node:crypto";

export function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
}

export function naiveRoot(leaves: readonly Buffer[]): Buffer {
  let level = [...leaves];
  while (level.length > 1) {
    const next: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) {
      next.push(i + 1 < level.length ? sha256(level[i], level[i + 1]) : level[i]);
    }
    level = next;
  }
  return level[0];
}

export function leavesFor(seed: number, count: number): Buffer[] {
  return Array.from({ length: count }, (_, i) => sha256(Buffer.from(`leaf ${seed} ${i}`)));
}
