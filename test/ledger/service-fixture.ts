// A small in-process service for ledger tests: node and service identities from a seed, a genesis
// transaction that records them as CCF's does, and a pipeline writing to a ledger directory.

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createSelfSignedCertificate,
  createServiceCertificate,
  EcKeyPair,
  nodeIdFromPublicKey,
  seededRng,
} from "../../src/crypto/index.js";
import { encodeValue, idKey, SINGLETON_KEY, Store, Tables } from "../../src/kv/index.js";
import {
  type Clock,
  FileLedger,
  type LedgerSecret,
  LedgerSecrets,
  type LedgerStorage,
  TxPipeline,
} from "../../src/ledger/index.js";
import { MerkleTree } from "../../src/merkle/index.js";

export interface TestService {
  pipeline: TxPipeline;
  store: Store;
  storage: LedgerStorage;
  secret: LedgerSecret;
  secrets: LedgerSecrets;
  tree: MerkleTree;
  /** Certificate (PEM) of the service identity. */
  serviceCert: string;
  dir: string;
  nodeId: string;
  clock: { t: number } & Clock;
}

export function tempDir(prefix = "ccf-ts-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startService(
  options: {
    seed?: number;
    dir?: string;
    chunkSize?: number;
    txCount?: number;
    whenIdle?: boolean;
    storage?: LedgerStorage;
  } = {},
): Promise<TestService> {
  const rng = seededRng(options.seed ?? 1);
  const nodeKey = EcKeyPair.generate("secp384r1", rng);
  const serviceKey = EcKeyPair.generate("secp384r1", rng);
  const validFrom = new Date("2026-01-01T00:00:00Z");
  const serviceCert = await createServiceCertificate(serviceKey, {
    validFrom,
    validityDays: 90,
    rng,
  });
  const nodeCert = await createSelfSignedCertificate(nodeKey, {
    subjectName: "CN=CCF Node",
    validFrom,
    validityDays: 90,
    rng,
  });
  const nodeId = nodeIdFromPublicKey(nodeKey.publicKey);
  const secret: LedgerSecret = { key: Buffer.from(rng.bytes(32)), version: 1 };
  const secrets = new LedgerSecrets([secret]);
  const dir = options.dir ?? join(tempDir(), "0.ledger");
  const storage =
    options.storage ?? FileLedger.open(dir, { chunkSize: options.chunkSize ?? 5 * 1024 * 1024 });
  const store = new Store();
  const clock = { t: 1_700_000_000_000, now: () => clock.t };
  const tree = new MerkleTree();
  const pipeline = new TxPipeline({
    store,
    storage,
    tree,
    secrets,
    node: { nodeId, key: nodeKey, certPem: nodeCert },
    service: { key: serviceKey },
    view: 2,
    signatures: {
      txCount: options.txCount ?? 10,
      delayMs: 1000,
      ...(options.whenIdle === undefined ? {} : { whenIdle: options.whenIdle }),
    },
    clock,
  });
  pipeline.execute((tx) => {
    tx.map(Tables.SERVICE).set(
      SINGLETON_KEY,
      encodeValue(Tables.SERVICE, { cert: serviceCert, status: "Opening" }),
    );
    tx.map(Tables.NODES).set(idKey(nodeId), encodeValue(Tables.NODES, { status: "Trusted" }));
    tx.map(Tables.NODE_ENDORSED_CERTIFICATES).set(
      idKey(nodeId),
      encodeValue(Tables.NODE_ENDORSED_CERTIFICATES, nodeCert),
    );
  });
  pipeline.emitSignature();
  return { pipeline, store, storage, secret, secrets, tree, serviceCert, dir, nodeId, clock };
}

/** Writes `n` transactions: a private and a public record each. */
export function writeRecords(svc: TestService, n: number, from = 0): void {
  for (let i = from; i < from + n; i++) {
    svc.pipeline.execute((tx) => {
      tx.map("records").set(Buffer.from(`k${i}`), Buffer.from(`SECRET-PLAINTEXT-${i}`));
      tx.map("public:records").set(Buffer.from(`k${i}`), Buffer.from(`public-value-${i}`));
    });
  }
}
