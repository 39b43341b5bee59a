// AES-256-GCM of one ledger-entry-sized message (160 bytes of AAD, 70 of plaintext): a fresh
// node:crypto aes-256-gcm cipher per message, as aesGcmEncrypt does, against the prepared AesGcmKey.

import { aesGcmEncrypt, seededRng } from "../src/crypto/index.js";
import { AesGcmKey } from "../src/crypto/gcm.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 200_000);
const WARM_UP = 20_000;
// The two are timed in alternating rounds, so a spell of load on a shared machine slows both alike
// rather than whichever happened to be running.
const ROUNDS = 20;
const AAD_BYTES = 160;
const PLAINTEXT_BYTES = 70;

/** Nanoseconds taken by `runs` calls of `encrypt`, each with a different IV as each entry has. */
function nanoseconds(encrypt: (iv: Uint8Array) => unknown, iv: Uint8Array, runs: number): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) {
    iv[i & 7] ^= i;
    encrypt(iv);
  }
  return Number(process.hrtime.bigint() - start);
}

// Synchronous throughout, but async like every bench run() that bench/run.ts awaits.
// eslint-disable-next-line @typescript-eslint/require-await
export async function run(): Promise<void> {
  const rng = seededRng(1);
  const key = rng.bytes(32);
  const aad = rng.bytes(AAD_BYTES);
  const plaintext = rng.bytes(PLAINTEXT_BYTES);
  const iv = rng.bytes(12);
  const prepared = new AesGcmKey(key);
  const node = (nonce: Uint8Array) => aesGcmEncrypt(key, nonce, plaintext, aad);
  const js = (nonce: Uint8Array) => prepared.encrypt(nonce, plaintext, aad);
  nanoseconds(node, iv, WARM_UP);
  nanoseconds(js, iv, WARM_UP);
  const perRound = Math.ceil(RUNS / ROUNDS);
  let nodeTotal = 0;
  let jsTotal = 0;
  for (let round = 0; round < ROUNDS; round++) {
    nodeTotal += nanoseconds(node, iv, perRound);
    jsTotal += nanoseconds(js, iv, perRound);
  }
  const microseconds = (total: number) => (total / (perRound * ROUNDS) / 1000).toFixed(2);
  console.log(`gcm node: ${microseconds(nodeTotal)} us`);
  console.log(`gcm js: ${microseconds(jsTotal)} us`);
}
