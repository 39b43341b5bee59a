// Offline ledger audit: walks the chunk files of a ledger directory in seqno order, rebuilds the
// Merkle tree and the public state, and at every signature transaction checks the recomputed root,
// the node's ECDSA signature over it and, when present, the service's COSE signature. This is what
// CCF's LedgerValidator does; it reads ledgers CCF wrote as well as ours.

import * as fs from "node:fs";
import { basename, join } from "node:path";
import {
  coseSign1Decode,
  coseSign1Verify,
  nodeIdFromPublicKey,
  publicKeyFromPem,
  sha256,
  verifyDigest,
} from "../crypto/index.js";
import { CcfError, FormatError } from "../errors.js";
import {
  decodeValue,
  keyToString,
  SINGLETON_KEY,
  Store,
  Tables,
  type WriteSet,
} from "../kv/index.js";
import {
  decodePrimarySignature,
  leafDigest,
  MerkleTree,
  type PrimarySignature,
} from "../merkle/index.js";
import { type ChunkName, parseChunk, parseChunkName } from "./chunk.js";
import { type DecodedEntry, decodeEntry, decryptEntry } from "./entry.js";
import type { LedgerSecrets } from "./secrets.js";

/** A ledger that fails verification: names the file and the seqno at fault. */
export class LedgerVerificationError extends CcfError {
  constructor(
    code: string,
    readonly file: string,
    readonly seqno: number | undefined,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(code, `${file}${seqno === undefined ? "" : `: seqno ${seqno}`}: ${detail}`, 500, options);
  }
}

export interface ReadLedgerOptions {
  /** Decrypt private domains (and check every GCM tag) with these secrets. */
  secrets?: LedgerSecrets;
  /** Check signatures and Merkle roots (default true). */
  verify?: boolean;
  /** Read only `.committed` chunks, as CCF does for a read-only ledger directory. */
  committedOnly?: boolean;
  /** Cut a torn last entry off the open chunk file (default: only report it). */
  repairTornTail?: boolean;
  /** Called for each entry after it is checked and applied. */
  onEntry?: (entry: LedgerEntry) => void;
}

export interface LedgerEntry {
  file: string;
  seqno: number;
  view: number;
  flags: number;
  entry: DecodedEntry;
  /** Public writes, plus private ones when secrets were given. */
  writeSet: WriteSet;
  /** The Merkle leaf of this transaction. */
  leaf: Buffer;
  signature?: PrimarySignature;
}

export interface LedgerReport {
  files: string[];
  entries: number;
  lastSeqno: number;
  lastView: number;
  lastSignedSeqno: number;
  /** Hex root signed by the last signature. */
  lastSignedRoot: string | undefined;
  signatures: number;
  coseSignatures: number;
  /** Signature count by signing node id. */
  signers: Map<string, number>;
  /** Entries after the last signature (not covered by any signature). */
  unsignedTail: number;
  tornTail?: { file: string; offset: number; bytes: number; repaired: boolean };
  /** State rebuilt from the ledger: public maps, and private ones when secrets were given. */
  store: Store;
  tree: MerkleTree;
}

interface ChunkFile {
  file: string;
  path: string;
  name: ChunkName;
}

/** Chunk files of the directories in seqno order; refuses gaps and overlaps. */
export function listChunks(dirs: string | string[], committedOnly = false): ChunkFile[] {
  const all: ChunkFile[] = [];
  const dirList = Array.isArray(dirs) ? dirs : [dirs];
  for (const dir of dirList) {
    let files: string[];
    try {
      files = fs.readdirSync(dir);
    } catch (e) {
      throw new LedgerVerificationError(
        "LedgerNotFound",
        dir,
        undefined,
        `cannot read the ledger directory (${(e as NodeJS.ErrnoException).code})`,
        { cause: e },
      );
    }
    for (const file of files) {
      const name = parseChunkName(file);
      if (name === undefined || name.ignored || name.recovery) continue;
      if (committedOnly && !name.committed) continue;
      all.push({ file, path: join(dir, file), name });
    }
  }
  all.sort((a, b) => a.name.start - b.name.start);
  const first = all[0];
  if (first === undefined) {
    throw new LedgerVerificationError(
      "LedgerEmpty",
      dirList.join(", "),
      undefined,
      "no ledger chunk files",
    );
  }
  let next = first.name.start;
  if (next !== 1)
    throw new LedgerVerificationError("LedgerGap", first.file, 1, "no chunk starts at seqno 1");
  all.forEach((c, i) => {
    if (c.name.start !== next) {
      throw new LedgerVerificationError(
        "LedgerGap",
        c.file,
        next,
        `chunk starts at ${c.name.start}, expected ${next}`,
      );
    }
    if (c.name.end === undefined && i !== all.length - 1) {
      throw new LedgerVerificationError(
        "LedgerGap",
        c.file,
        undefined,
        "an open chunk is followed by another chunk",
      );
    }
    next = (c.name.end ?? c.name.start) + 1;
  });
  return all;
}

/** Reads, verifies and replays a ledger. Throws LedgerVerificationError on the first fault. */
export function readLedger(dirs: string | string[], options: ReadLedgerOptions = {}): LedgerReport {
  const verify = options.verify ?? true;
  const chunks = listChunks(dirs, options.committedOnly ?? false);
  const tree = new MerkleTree();
  tree.append(Buffer.alloc(32));
  const store = new Store();
  const report: LedgerReport = {
    files: chunks.map((c) => c.file),
    entries: 0,
    lastSeqno: 0,
    lastView: 0,
    lastSignedSeqno: 0,
    lastSignedRoot: undefined,
    signatures: 0,
    coseSignatures: 0,
    signers: new Map(),
    unsignedTail: 0,
    store,
    tree,
  };
  const entryFiles: string[] = [];
  for (const chunk of chunks) {
    const buf = fs.readFileSync(chunk.path);
    let layout: ReturnType<typeof parseChunk>;
    try {
      layout = parseChunk(buf);
    } catch (e) {
      throw new LedgerVerificationError(
        "LedgerCorrupted",
        chunk.file,
        undefined,
        String((e as Error).message),
        { cause: e },
      );
    }
    if (chunk.name.end !== undefined && !layout.complete) {
      throw new LedgerVerificationError(
        "LedgerCorrupted",
        chunk.file,
        undefined,
        "complete chunk has no positions table",
      );
    }
    if (layout.tornTail !== undefined) {
      const repaired = options.repairTornTail === true;
      if (repaired) fs.truncateSync(chunk.path, layout.tornTail.offset);
      report.tornTail = { file: chunk.file, ...layout.tornTail, repaired };
    }
    const expectedCount =
      chunk.name.end === undefined ? undefined : chunk.name.end - chunk.name.start + 1;
    if (expectedCount !== undefined && layout.entries.length !== expectedCount) {
      throw new LedgerVerificationError(
        "LedgerCorrupted",
        chunk.file,
        undefined,
        `holds ${layout.entries.length} entries, its name says ${expectedCount}`,
      );
    }
    for (const { offset, size } of layout.entries) {
      const seqno = report.lastSeqno + 1;
      const bytes = buf.subarray(offset, offset + size);
      const le = readEntry(chunk.file, seqno, bytes, options.secrets);
      if (verify && le.signature !== undefined) {
        checkSignature(le, tree, store, entryFiles);
      }
      if (verify && le.writeSet.has(Tables.COSE_SIGNATURES)) checkCoseSignature(le, tree, store);
      store.apply(le.writeSet, seqno);
      store.compact(seqno);
      tree.append(le.leaf);
      entryFiles.push(chunk.file);
      report.entries++;
      report.lastSeqno = seqno;
      report.lastView = le.view;
      if (le.signature !== undefined) {
        report.signatures++;
        report.lastSignedSeqno = seqno;
        report.lastSignedRoot = le.signature.root;
        report.signers.set(le.signature.node, (report.signers.get(le.signature.node) ?? 0) + 1);
      }
      if (le.writeSet.has(Tables.COSE_SIGNATURES)) report.coseSignatures++;
      options.onEntry?.(le);
    }
    if (verify && chunk.name.end !== undefined && report.lastSignedSeqno !== report.lastSeqno) {
      throw new LedgerVerificationError(
        "LedgerCorrupted",
        chunk.file,
        report.lastSeqno,
        "a complete chunk must end with a signature transaction",
      );
    }
  }
  report.unsignedTail = report.lastSeqno - report.lastSignedSeqno;
  return report;
}

function readEntry(
  file: string,
  seqno: number,
  bytes: Buffer,
  secrets: LedgerSecrets | undefined,
): LedgerEntry {
  let entry: DecodedEntry;
  try {
    entry = decodeEntry(bytes);
  } catch (e) {
    throw new LedgerVerificationError("LedgerCorrupted", file, seqno, (e as Error).message, {
      cause: e,
    });
  }
  if (entry.header.version !== seqno) {
    throw new LedgerVerificationError(
      "LedgerCorrupted",
      file,
      seqno,
      `entry says seqno ${entry.header.version}`,
    );
  }
  let writeSet = entry.writeSet;
  if (secrets !== undefined) {
    try {
      writeSet = decryptEntry(entry, secrets.forSeqno(seqno));
    } catch (e) {
      throw new LedgerVerificationError(
        "LedgerDecryptionFailed",
        file,
        seqno,
        (e as Error).message,
        { cause: e },
      );
    }
  }
  const leaf = leafDigest(
    entry.header.entryType,
    sha256(bytes),
    entry.header.commitEvidenceDigest,
    entry.header.claimsDigest,
  );
  const le: LedgerEntry = {
    file,
    seqno,
    view: entry.view,
    flags: entry.flags,
    entry,
    writeSet,
    leaf,
  };
  const sigBytes = writeSet.get(Tables.SIGNATURES)?.get(keyToString(SINGLETON_KEY));
  if (sigBytes !== undefined && sigBytes !== null) {
    try {
      le.signature = decodePrimarySignature(Buffer.from(sigBytes));
    } catch (e) {
      throw new LedgerVerificationError("LedgerCorrupted", file, seqno, (e as Error).message, {
        cause: e,
      });
    }
  }
  return le;
}

function fail(le: LedgerEntry, code: string, detail: string): never {
  throw new LedgerVerificationError(code, le.file, le.seqno, detail);
}

function checkSignature(
  le: LedgerEntry,
  tree: MerkleTree,
  store: Store,
  entryFiles: string[],
): void {
  const sig = le.signature as PrimarySignature;
  if (sig.seqno !== le.seqno || sig.view !== le.view) {
    fail(le, "LedgerCorrupted", `signature claims ${sig.view}.${sig.seqno}`);
  }
  const root = tree.root();
  if (root.toString("hex") !== sig.root) {
    const culprit = findBadLeaf(le, tree);
    if (culprit !== undefined) {
      throw new LedgerVerificationError(
        "LedgerCorrupted",
        entryFiles[culprit - 1] ?? le.file,
        culprit,
        `entry does not match the Merkle tree signed at seqno ${le.seqno}`,
      );
    }
    fail(
      le,
      "LedgerCorrupted",
      `Merkle root ${root.toString("hex")} differs from the signed root ${sig.root}`,
    );
  }
  checkSerialisedTree(le, root);
  const endorsed = store.get(Tables.NODE_ENDORSED_CERTIFICATES, keyToString(Buffer.from(sig.node)));
  const cert = sig.cert ?? (endorsed === undefined ? undefined : Buffer.from(endorsed).toString());
  if (cert === undefined) fail(le, "LedgerUnknownSigner", `no certificate for node ${sig.node}`);
  let key: ReturnType<typeof publicKeyFromPem>;
  try {
    key = publicKeyFromPem(cert);
  } catch (e) {
    fail(le, "LedgerCorrupted", `signature certificate unreadable: ${(e as Error).message}`);
  }
  if (nodeIdFromPublicKey(key) !== sig.node)
    fail(le, "LedgerCorrupted", `certificate is not node ${sig.node}'s`);
  const info = store.get(Tables.NODES, keyToString(Buffer.from(sig.node)));
  if (info === undefined) fail(le, "LedgerUnknownSigner", `signed by unknown node ${sig.node}`);
  const status = (decodeValue(Tables.NODES, info) as { status?: string }).status;
  if (status === "Pending") fail(le, "LedgerUnknownSigner", `signed by pending node ${sig.node}`);
  if (!verifyDigest(key, root, Buffer.from(sig.sig, "base64"))) {
    fail(le, "LedgerBadSignature", `node ${sig.node}'s signature over the root does not verify`);
  }
}

/** The tree a signature stores must be the tree it signed. */
function checkSerialisedTree(le: LedgerEntry, root: Buffer): void {
  const treeBytes = le.writeSet.get(Tables.SERIALISED_MERKLE_TREE)?.get(keyToString(SINGLETON_KEY));
  if (treeBytes === undefined || treeBytes === null) return;
  let signed: MerkleTree;
  try {
    signed = MerkleTree.deserialise(Buffer.from(treeBytes));
  } catch (e) {
    fail(le, "LedgerCorrupted", `serialised Merkle tree unreadable: ${(e as Error).message}`);
  }
  if (signed.size !== le.seqno || !signed.root().equals(root)) {
    fail(le, "LedgerCorrupted", "serialised Merkle tree differs from the signed tree");
  }
}

/** Uses the serialised tree stored by the signature to name the first entry whose leaf differs. */
function findBadLeaf(le: LedgerEntry, tree: MerkleTree): number | undefined {
  const treeBytes = le.writeSet.get(Tables.SERIALISED_MERKLE_TREE)?.get(keyToString(SINGLETON_KEY));
  if (treeBytes === undefined || treeBytes === null) return undefined;
  let signed: MerkleTree;
  try {
    signed = MerkleTree.deserialise(Buffer.from(treeBytes));
  } catch {
    return undefined;
  }
  for (let i = signed.minIndex; i < Math.min(signed.size, tree.size); i++) {
    if (!signed.leaf(i).equals(tree.leaf(i))) return i;
  }
  return undefined;
}

function checkCoseSignature(le: LedgerEntry, tree: MerkleTree, store: Store): void {
  const raw = le.writeSet.get(Tables.COSE_SIGNATURES)?.get(keyToString(SINGLETON_KEY));
  if (raw === undefined || raw === null) return;
  const serviceInfo = store.get(Tables.SERVICE, keyToString(SINGLETON_KEY));
  if (serviceInfo === undefined)
    fail(le, "LedgerCorrupted", "COSE signature before any service identity");
  const { cert } = decodeValue(Tables.SERVICE, serviceInfo) as { cert: string };
  let cose: ReturnType<typeof coseSign1Decode>;
  try {
    cose = coseSign1Decode(
      Buffer.from(decodeValue(Tables.COSE_SIGNATURES, raw) as string, "base64"),
    );
  } catch (e) {
    fail(le, "LedgerCorrupted", `COSE signature unreadable: ${(e as Error).message}`);
  }
  const txid = (cose.protectedHeaders.get("ccf.v1") as Map<string, unknown> | undefined)?.get(
    "txid",
  );
  if (txid !== undefined && txid !== `${le.view}.${le.seqno}`) {
    fail(le, "LedgerCorrupted", `COSE signature is for ${JSON.stringify(txid)}`);
  }
  if (!coseSign1Verify(cose, cert, tree.root())) {
    fail(le, "LedgerBadSignature", "the service's COSE signature over the root does not verify");
  }
}

/** Reads one chunk file's entries without verification (tools, tests). */
export function readChunkEntries(path: string): DecodedEntry[] {
  const buf = fs.readFileSync(path);
  try {
    return parseChunk(buf).entries.map(({ offset, size }) =>
      decodeEntry(buf.subarray(offset, offset + size)),
    );
  } catch (e) {
    if (e instanceof FormatError) {
      throw new LedgerVerificationError("LedgerCorrupted", basename(path), undefined, e.message, {
        cause: e,
      });
    }
    throw e;
  }
}
