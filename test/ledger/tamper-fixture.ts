// Ledgers to tamper with: a small service written through the real pipeline to chunk files (a
// trusted node, a member with a signed governance message, the service opened, public and private
// records, several chunks), variants written by a forger, and byte-level edits of chunk files.

import { cpSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  certificateId,
  createSelfSignedCertificate,
  createServiceCertificate,
  EcKeyPair,
  nodeIdFromPublicKey,
  seededRng,
} from "../../src/crypto/index.js";
import { signGovMessage } from "../../src/gov/index.js";
import { encodeValue, idKey, SINGLETON_KEY, Store, Tables } from "../../src/kv/index.js";
import {
  FileLedger,
  LedgerSecrets,
  parseChunk,
  parseChunkName,
  readLedger,
  TxPipeline,
} from "../../src/ledger/index.js";
import { MerkleTree } from "../../src/merkle/index.js";
import { tempDir } from "./service-fixture.js";

export const CCF_FIXTURES = join(import.meta.dirname, "../../../shared/fixtures/ccf-ledgers");

export interface AuditLedger {
  dir: string;
  secrets: LedgerSecrets;
  secretHex: string;
  /** PEM of another service's certificate, for --service-cert mismatches. */
  otherServiceCert: string;
  serviceCertFile: string;
  storage: FileLedger;
}

export interface AuditLedgerOptions {
  /** Leave the ledger as a running node has it: nothing committed, the last chunk open. */
  running?: boolean;
  /** After the records, a forger with a node key that is not in nodes.info signs. */
  forgedSigner?: boolean;
  /** After the records, the service moves from Open to WaitingForRecoveryShares. */
  badTransition?: boolean;
  /** After the records, the signing node is retired (its retirement committed, or not yet). */
  retire?: "retiring" | "committed";
  /** The member's governance message is stored with a corrupted signature. */
  badGovernanceMessage?: boolean;
  /** Records written after the last signature. */
  unsignedTail?: number;
}

/**
 * A service's ledger: genesis (seqno 1: service Opening, a Trusted node, a member), a signature,
 * the member's governance message, the service opened, then 40 transactions each writing a public
 * and a private record, with a signature every 5 transactions and chunks of about 4 KB.
 */
export async function writeAuditLedger(options: AuditLedgerOptions = {}): Promise<AuditLedger> {
  const rng = seededRng(11);
  const validFrom = new Date("2026-01-01T00:00:00Z");
  const nodeKey = EcKeyPair.generate("secp384r1", rng);
  const serviceKey = EcKeyPair.generate("secp384r1", rng);
  const memberKey = EcKeyPair.generate("secp384r1", rng);
  const otherServiceKey = EcKeyPair.generate("secp384r1", rng);
  const serviceCert = await createServiceCertificate(serviceKey, {
    validFrom,
    validityDays: 90,
    rng,
  });
  const otherServiceCert = await createServiceCertificate(otherServiceKey, {
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
  const memberCert = await createSelfSignedCertificate(memberKey, {
    subjectName: "CN=member0",
    validFrom,
    validityDays: 90,
    rng,
  });
  const nodeId = nodeIdFromPublicKey(nodeKey.publicKey);
  const memberId = certificateId(memberCert);
  const secret = Buffer.from(rng.bytes(32));
  const secrets = new LedgerSecrets([{ key: secret, version: 1 }]);
  const root = tempDir("ccf-ts-tamper-");
  const dir = join(root, "ledger");
  const storage = FileLedger.open(dir, { chunkSize: 4000 });
  const store = new Store();
  const tree = new MerkleTree();
  const clock = { t: 1_767_225_600_000, now: () => clock.t };
  const pipelineFor = (node: EcKeyPair, certPem: string) =>
    new TxPipeline({
      store,
      storage,
      tree,
      secrets,
      node: { nodeId: nodeIdFromPublicKey(node.publicKey), key: node, certPem },
      service: { key: serviceKey },
      view: 2,
      signatures: { txCount: 5, delayMs: 1000 },
      clock,
    });
  const pipeline = pipelineFor(nodeKey, nodeCert);
  const setService = (status: string) =>
    pipeline.execute((tx) =>
      tx
        .map(Tables.SERVICE)
        .set(SINGLETON_KEY, encodeValue(Tables.SERVICE, { cert: serviceCert, status })),
    );
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
    tx.map(Tables.MEMBER_CERTS).set(idKey(memberId), encodeValue(Tables.MEMBER_CERTS, memberCert));
    tx.map(Tables.MEMBER_INFO).set(
      idKey(memberId),
      encodeValue(Tables.MEMBER_INFO, { status: "Active" }),
    );
  });
  pipeline.emitSignature();
  const envelope = signGovMessage({
    signingKeyPem: memberKey.privateKeyPem,
    signingCertPem: memberCert,
    msgType: "proposal",
    createdAt: 1_767_225_600,
    content: Buffer.from('{"actions":[{"name":"transition_service_to_open","args":{}}]}'),
  });
  if (options.badGovernanceMessage === true) envelope[envelope.length - 5] ^= 0x01;
  pipeline.execute((tx) =>
    tx
      .map(Tables.COSE_HISTORY)
      .set(idKey(memberId), encodeValue(Tables.COSE_HISTORY, envelope.toString("base64"))),
  );
  setService("Open");
  for (let i = 0; i < 40; i++) writeRecord(pipeline, i);
  if (options.badTransition === true) setService("WaitingForRecoveryShares");
  if (options.retire !== undefined) {
    const retired = { status: "Retired", retired_committed: options.retire === "committed" };
    pipeline.execute((tx) =>
      tx.map(Tables.NODES).set(idKey(nodeId), encodeValue(Tables.NODES, retired)),
    );
  }
  if (options.forgedSigner === true) {
    // A node the service never trusted: fresh key, its own certificate, everything signed right.
    const forgerKey = EcKeyPair.generate("secp384r1", rng);
    const forgerCert = await createSelfSignedCertificate(forgerKey, {
      subjectName: "CN=CCF Node",
      validFrom,
      validityDays: 90,
      rng,
    });
    const forger = pipelineFor(forgerKey, forgerCert);
    writeRecord(forger, 100);
    forger.emitSignature();
  } else {
    pipeline.emitSignature();
  }
  for (let i = 0; i < (options.unsignedTail ?? 0); i++) writeRecord(pipeline, 200 + i);
  await pipeline.flush();
  if (options.running !== true) {
    pipeline.committed(pipeline.lastSignedSeqno);
    await storage.close();
  }
  const serviceCertFile = join(root, "service_cert.pem");
  writeFileSync(serviceCertFile, serviceCert);
  return {
    dir,
    secrets,
    secretHex: secret.toString("hex"),
    otherServiceCert,
    serviceCertFile,
    storage,
  };
}

function writeRecord(pipeline: TxPipeline, i: number): void {
  pipeline.execute((tx) => {
    tx.map("records").set(Buffer.from(`k${i}`), Buffer.from(`SECRET-PLAINTEXT-${i}`));
    tx.map("public:records").set(Buffer.from(`k${i}`), Buffer.from(`public-value-${i}`));
  });
}

/** A copy of a ledger directory (CCF's fixtures are read-only), to edit. */
export function copyLedger(dir: string): string {
  const copy = join(tempDir("ccf-ts-tamper-copy-"), "ledger");
  cpSync(dir, copy, { recursive: true });
  return copy;
}

export interface ChunkOnDisk {
  file: string;
  path: string;
  start: number;
  complete: boolean;
  entries: Buffer[];
}

/** The chunk file holding `seqno`, split into its entries. */
export function chunkHolding(dir: string, seqno: number): ChunkOnDisk {
  for (const file of readdirSync(dir)) {
    const name = parseChunkName(file);
    if (name === undefined) continue;
    const path = join(dir, file);
    const buf = readFileSync(path);
    const layout = parseChunk(buf);
    const last = name.start + layout.entries.length - 1;
    if (seqno < name.start || seqno > last) continue;
    return {
      file,
      path,
      start: name.start,
      complete: layout.complete,
      entries: layout.entries.map((e) => Buffer.from(buf.subarray(e.offset, e.offset + e.size))),
    };
  }
  throw new Error(`no chunk holds seqno ${seqno}`);
}

/** Writes a chunk back with its (edited) entries, its header and positions table consistent. */
export function rewriteChunk(chunk: ChunkOnDisk): void {
  const offsets: number[] = [];
  let o = 8;
  for (const e of chunk.entries) {
    offsets.push(o);
    o += e.length;
  }
  const header = Buffer.alloc(8);
  const parts = [header, ...chunk.entries];
  if (chunk.complete) {
    header.writeBigUInt64LE(BigInt(o));
    const table = Buffer.alloc(offsets.length * 4);
    offsets.forEach((off, i) => table.writeUInt32LE(off, 4 * i));
    parts.push(table);
  }
  writeFileSync(chunk.path, Buffer.concat(parts));
}

/** Edits the entry at `seqno` in place (its size must not change). */
export function editEntry(dir: string, seqno: number, edit: (entry: Buffer) => void): string {
  const chunk = chunkHolding(dir, seqno);
  edit(chunk.entries[seqno - chunk.start]);
  rewriteChunk(chunk);
  return chunk.file;
}

/** Facts about a ledger, from an unverified read: which seqnos sign, which hold records. */
export function ledgerFacts(dir: string): {
  signatures: number[];
  withPrivate: number[];
  files: string[];
} {
  const signatures: number[] = [];
  const withPrivate: number[] = [];
  const report = readLedger(dir, {
    verify: false,
    onEntry: (e) => {
      if (e.signature !== undefined) signatures.push(e.seqno);
      if (e.entry.privateCiphertext.length > 0) withPrivate.push(e.seqno);
    },
  });
  return { signatures, withPrivate, files: report.files };
}
