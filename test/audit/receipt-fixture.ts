// A ledger written in-process by the real pipeline (seeded keys, a node certificate endorsed by the
// service), and receipts for its transactions built as the node builds them: JSON receipts as
// `Node.receipt` does, COSE receipts from the signature transaction's COSE signature.

import {
  createEndorsedCertificate,
  createServiceCertificate,
  EcKeyPair,
  nodeIdFromPublicKey,
  seededRng,
  sha256,
} from "../../src/crypto/index.js";
import { buildCoseReceipt } from "../../src/audit/index.js";
import { decodeValue, keyToString, SINGLETON_KEY, Store, Tables } from "../../src/kv/index.js";
import { decodeEntry, LedgerSecrets, MemoryLedger, TxPipeline } from "../../src/ledger/index.js";
import {
  buildReceipt,
  decodePrimarySignature,
  MerkleTree,
  type Receipt,
} from "../../src/merkle/index.js";

const SINGLETON = keyToString(SINGLETON_KEY);
const VALID_FROM = new Date("2026-01-01T00:00:00Z");

export interface ReceiptLedger {
  serviceCert: string;
  /** A second service identity, which endorsed nothing here. */
  otherServiceCert: string;
  /** A node certificate for another key, endorsed by the service. */
  otherNodeCert: string;
  /** The service key certified by the other service: a recovered service's service_endorsements. */
  recoveryEndorsement: string;
  /** Seqno of the signature transaction covering every transaction before it. */
  sigSeqno: number;
  /** Hex root that signature signs. */
  root: string;
  /** Seqno of the transaction written with a claims digest. */
  claimsSeqno: number;
  jsonReceipt(seqno: number): Receipt;
  coseReceipt(seqno: number): Buffer;
  /** The signature transaction's COSE_Sign1 as stored in the ledger. */
  coseSignature: Buffer;
}

export async function receiptLedger(txs = 6): Promise<ReceiptLedger> {
  const rng = seededRng(42);
  const nodeKey = EcKeyPair.generate("secp384r1", rng);
  const serviceKey = EcKeyPair.generate("secp384r1", rng);
  const otherKey = EcKeyPair.generate("secp384r1", rng);
  const serviceCert = await createServiceCertificate(serviceKey, {
    validFrom: VALID_FROM,
    validityDays: 90,
    rng,
  });
  const otherServiceCert = await createServiceCertificate(otherKey, {
    validFrom: VALID_FROM,
    validityDays: 90,
    rng,
  });
  const endorse = (key: EcKeyPair) =>
    createEndorsedCertificate({
      subjectPublicKey: key.publicKey,
      subjectName: "CN=CCF Node",
      issuerKey: serviceKey,
      issuerCertPem: serviceCert,
      validFrom: VALID_FROM,
      validityDays: 90,
      rng,
    });
  const nodeCert = await endorse(nodeKey);
  const otherNodeCert = await endorse(otherKey);
  const recoveryEndorsement = await createEndorsedCertificate({
    subjectPublicKey: serviceKey.publicKey,
    subjectName: "CN=CCF Service",
    issuerKey: otherKey,
    issuerCertPem: otherServiceCert,
    validFrom: VALID_FROM,
    validityDays: 90,
    rng,
  });

  const store = new Store();
  const storage = new MemoryLedger();
  const tree = new MerkleTree();
  const clock = { now: () => 1_700_000_000_000 };
  const pipeline = new TxPipeline({
    store,
    storage,
    tree,
    secrets: new LedgerSecrets([{ key: Buffer.from(rng.bytes(32)), version: 1 }]),
    node: { nodeId: nodeIdFromPublicKey(nodeKey.publicKey), key: nodeKey, certPem: nodeCert },
    service: { key: serviceKey },
    view: 2,
    signatures: { txCount: 1000, delayMs: 1_000_000 },
    clock,
  });
  const claimsSeqno = 3;
  for (let seqno = 1; seqno <= txs; seqno++) {
    pipeline.execute(
      (tx) => tx.map("public:records").set(Buffer.from(`k${seqno}`), Buffer.from(`v${seqno}`)),
      seqno === claimsSeqno ? { claimsDigest: sha256(Buffer.from("application claims")) } : {},
    );
  }
  const sigSeqno = pipeline.emitSignature().seqno;
  const signature = decodePrimarySignature(store.get(Tables.SIGNATURES, SINGLETON) as Uint8Array);
  const coseSignature = Buffer.from(
    decodeValue(
      Tables.COSE_SIGNATURES,
      store.get(Tables.COSE_SIGNATURES, SINGLETON) as Uint8Array,
    ) as string,
    "base64",
  );
  const signer = { sig: signature.sig, node: signature.node, cert: signature.cert ?? "" };

  const leafOf = (seqno: number) => {
    const entry = storage.read(seqno);
    if (entry === undefined) throw new Error(`no entry at ${seqno}`);
    const { claimsDigest } = decodeEntry(entry).header;
    return {
      writeSetDigest: sha256(entry),
      commitEvidence: pipeline.commitEvidenceFor(2, seqno),
      claimsDigest: claimsDigest ?? Buffer.alloc(32),
    };
  };

  return {
    serviceCert,
    otherServiceCert,
    otherNodeCert,
    recoveryEndorsement,
    sigSeqno,
    root: signature.root,
    claimsSeqno,
    coseSignature,
    jsonReceipt: (seqno) =>
      seqno === sigSeqno
        ? buildReceipt({ proof: [], signature: signer, root: signature.root })
        : buildReceipt({
            proof: tree.path(seqno, sigSeqno),
            signature: signer,
            leafComponents: leafOf(seqno),
          }),
    coseReceipt: (seqno) =>
      buildCoseReceipt(coseSignature, tree.path(seqno, sigSeqno), leafOf(seqno)),
  };
}
