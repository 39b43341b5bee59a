// Offline ledger audit: walks the chunk files of a ledger directory in seqno order (each entry must
// hold the next seqno, views never go back), rebuilds the Merkle tree and the public state, and at
// every signature transaction checks the recomputed root, the node's ECDSA signature over it and
// the signer's trust, and, when present, the service's COSE signature; audit.ts adds the service
// status graph, the members' signatures on governance messages and the expected service identity.
// This is what CCF's LedgerValidator does; it reads ledgers CCF wrote as well as ours.

import { type KeyObject, verify as cryptoVerify } from "node:crypto";
import * as fs from "node:fs";
import { basename, join } from "node:path";
import { coseSign1Decode, coseSign1Verify, sha256, verifyDigest } from "../crypto/index.js";
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
  foldProof,
  leafDigest,
  MerkleTree,
  type PrimarySignature,
} from "../merkle/index.js";
import { GovernanceAudit, KeyCache } from "./audit.js";
import { CHUNK_HEADER_SIZE, type ChunkName, parseChunk, parseChunkName } from "./chunk.js";
import { type DecodedEntry, decodeEntry, decryptEntry, entrySizeAt } from "./entry.js";
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
  /**
   * The service certificate (PEM) the ledger must belong to: the service identity it ends with
   * must have this certificate's public key (earlier identities, before a recovery, may differ).
   */
  serviceCert?: string;
  /** Called for each entry after it is checked and applied. */
  onEntry?: (entry: LedgerEntry) => void;
  /** Replay into this (empty) store and tree instead of new ones (a recovering node's own). */
  into?: { store: Store; tree: MerkleTree };
  /**
   * Start after this seqno: `into` already holds the state and tree up to it (a snapshot), and
   * only later entries are read (earlier chunks may be absent).
   */
  from?: number;
  /**
   * Keep the store's history after the last signature, so the caller can roll the unsigned tail
   * back (what recovery keeps is the ledger up to its last signature).
   */
  keepUnsignedTail?: boolean;
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
  /** Governance messages (cose_history records) whose member signatures verified. */
  governanceMessages: number;
  /** The service status the ledger ends with. */
  serviceStatus: string | undefined;
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
export function listChunks(
  dirs: string | string[],
  committedOnly = false,
  /** Only chunks holding seqnos after this one (a replay that starts from a snapshot). */
  after = 0,
): ChunkFile[] {
  const all: ChunkFile[] = [];
  const skippedOpen: string[] = [];
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
      if (committedOnly && !name.committed) {
        skippedOpen.push(file);
        continue;
      }
      if (name.end !== undefined && name.end <= after) continue;
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
      skippedOpen.length === 0
        ? "no ledger chunk files"
        : `no committed ledger chunk files (only uncommitted ones, which are not read here: ${skippedOpen.join(", ")})`,
    );
  }
  let next = first.name.start;
  if (next > after + 1) {
    throw new LedgerVerificationError(
      "LedgerGap",
      first.file,
      after + 1,
      after === 0
        ? `no chunk starts at seqno 1 (the first starts at ${next}: a ledger that starts after a snapshot is verified from that snapshot)`
        : `no chunk holds seqno ${after + 1}`,
    );
  }
  all.forEach((c, i) => {
    if (c.name.start > next) {
      throw new LedgerVerificationError(
        "LedgerGap",
        c.file,
        next,
        `missing seqnos ${next} to ${c.name.start - 1}: no chunk holds them (the chunk before ends at ${next - 1}, this one starts at ${c.name.start})`,
      );
    }
    if (c.name.start < next) {
      throw new LedgerVerificationError(
        "LedgerGap",
        c.file,
        c.name.start,
        `chunk overlaps the one before: it starts at ${c.name.start}, expected ${next}`,
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

const SINGLETON = keyToString(SINGLETON_KEY);

/** The store's undo log is dropped in batches: the replay never rolls back. */
const COMPACT_EVERY = 1024;

/** Reads, verifies and replays a ledger. Throws LedgerVerificationError on the first fault. */
export function readLedger(dirs: string | string[], options: ReadLedgerOptions = {}): LedgerReport {
  const verify = options.verify ?? true;
  const from = options.from ?? 0;
  const chunks = listChunks(dirs, options.committedOnly ?? false, from);
  const tree = options.into?.tree ?? new MerkleTree();
  if (tree.size === 0) tree.append(Buffer.alloc(32));
  const store = options.into?.store ?? new Store();
  if (tree.size !== from + 1 || store.version !== from) {
    throw new CcfError(
      "InvalidArgument",
      `a ledger replayed from ${from} needs the state and tree at ${from}`,
    );
  }
  const keys = new KeyCache();
  const audit = new GovernanceAudit(keys);
  if (from > 0) audit.startFrom(store, from, "snapshot");
  const report: LedgerReport = {
    files: chunks.map((c) => c.file),
    entries: 0,
    lastSeqno: from,
    lastView: 0,
    // A snapshot is taken at a signature, which signed the root of the leaves before it.
    lastSignedSeqno: from,
    lastSignedRoot: from === 0 ? undefined : tree.rootAt(from).toString("hex"),
    signatures: 0,
    coseSignatures: 0,
    governanceMessages: 0,
    serviceStatus: undefined,
    signers: new Map(),
    unsignedTail: 0,
    store,
    tree,
  };
  const entryFiles: string[] = [];
  for (const chunk of chunks) {
    const buf = fs.readFileSync(chunk.path);
    const layout = chunkLayout(chunk, buf);
    if (layout.tornTail !== undefined) {
      const repaired = options.repairTornTail === true;
      if (repaired) fs.truncateSync(chunk.path, layout.tornTail.offset);
      report.tornTail = { file: chunk.file, ...layout.tornTail, repaired };
    }
    let inChunk = chunk.name.start - 1;
    for (const { offset, size } of layout.entries) {
      if (++inChunk <= from) continue;
      const seqno = report.lastSeqno + 1;
      const bytes = buf.subarray(offset, offset + size);
      const le = readEntry(chunk.file, seqno, bytes, options.secrets);
      if (le.view < report.lastView) {
        fail(
          le,
          "LedgerOutOfOrder",
          `view ${le.view} is lower than view ${report.lastView} before it`,
        );
      }
      const coseSignature = le.writeSet.get(Tables.COSE_SIGNATURES)?.get(SINGLETON);
      if (verify) {
        if (le.signature !== undefined) checkSignature(le, tree, store, entryFiles, keys);
        if (coseSignature !== undefined && coseSignature !== null) {
          checkCoseSignature(le, coseSignature, tree, audit, keys);
        }
        const fault = audit.check(chunk.file, seqno, le.writeSet, store);
        if (fault !== undefined) fail(le, fault.code, fault.detail);
      }
      store.apply(le.writeSet, seqno);
      if (options.keepUnsignedTail === true) {
        if (le.signature !== undefined) store.compact(seqno);
      } else if (seqno % COMPACT_EVERY === 0) store.compact(seqno);
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
      if (coseSignature !== undefined) report.coseSignatures++;
      options.onEntry?.(le);
    }
    const expectedCount =
      chunk.name.end === undefined ? undefined : chunk.name.end - chunk.name.start + 1;
    if (expectedCount !== undefined && layout.entries.length !== expectedCount) {
      throw new LedgerVerificationError(
        "LedgerCorrupted",
        chunk.file,
        report.lastSeqno + 1,
        `holds ${layout.entries.length} entries, its name says ${expectedCount}`,
      );
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
  if (options.keepUnsignedTail !== true) store.compact(report.lastSeqno);
  if (verify && options.serviceCert !== undefined) {
    const fault = audit.identityFault(options.serviceCert);
    if (fault !== undefined) {
      throw new LedgerVerificationError(
        fault.code,
        audit.service?.file ?? report.files[report.files.length - 1] ?? "",
        audit.service?.seqno,
        fault.detail,
      );
    }
  }
  report.unsignedTail = report.lastSeqno - report.lastSignedSeqno;
  report.governanceMessages = audit.governanceMessages;
  report.serviceStatus = audit.status;
  return report;
}

/** The entries of a chunk file; a fault names the first seqno that cannot be read. */
function chunkLayout(chunk: ChunkFile, buf: Buffer): ReturnType<typeof parseChunk> {
  let layout: ReturnType<typeof parseChunk>;
  try {
    layout = parseChunk(buf);
  } catch (e) {
    throw chunkFault(chunk, buf, e as Error);
  }
  if (chunk.name.end !== undefined && !layout.complete) {
    throw new LedgerVerificationError(
      "LedgerCorrupted",
      chunk.file,
      undefined,
      "complete chunk has no positions table",
    );
  }
  return layout;
}

/**
 * Explains a chunk that does not parse: walks its entries as far as they go, to name the seqno at
 * which the file stops making sense (a truncated chunk names the entry it cuts or loses).
 */
function chunkFault(chunk: ChunkFile, buf: Buffer, e: Error): LedgerVerificationError {
  const tableOffset = buf.length >= CHUNK_HEADER_SIZE ? Number(buf.readBigUInt64LE(0)) : 0;
  const truncated = tableOffset > buf.length;
  const end = tableOffset === 0 || truncated ? buf.length : tableOffset;
  const body = buf.subarray(0, end);
  let o = CHUNK_HEADER_SIZE;
  let whole = 0;
  try {
    while (o < end) {
      o += entrySizeAt(body, o);
      whole++;
    }
  } catch {
    // o is where the first unreadable entry starts
  }
  const seqno = chunk.name.start + whole;
  if (truncated) {
    return new LedgerVerificationError(
      "LedgerTruncated",
      chunk.file,
      seqno,
      `chunk is truncated: the file ends at byte ${buf.length} but its positions table starts at byte ${tableOffset}; ${o < buf.length ? "this entry is cut short" : "this entry is missing"}`,
      { cause: e },
    );
  }
  return new LedgerVerificationError(
    "LedgerCorrupted",
    chunk.file,
    o < end ? seqno : undefined,
    e.message,
    { cause: e },
  );
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
  // decodeEntry has checked that the IV's seqno is the entry's version.
  if (entry.header.version !== seqno) {
    throw new LedgerVerificationError(
      "LedgerOutOfOrder",
      file,
      seqno,
      `entry out of order: holds seqno ${entry.header.version}`,
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
  const sigBytes = writeSet.get(Tables.SIGNATURES)?.get(SINGLETON);
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
  keys: KeyCache,
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
  checkSerialisedTree(le, tree);
  const nodeKey = keyToString(Buffer.from(sig.node));
  const endorsed = store.get(Tables.NODE_ENDORSED_CERTIFICATES, nodeKey);
  const cert = sig.cert ?? (endorsed === undefined ? undefined : Buffer.from(endorsed).toString());
  if (cert === undefined) fail(le, "LedgerUnknownSigner", `no certificate for node ${sig.node}`);
  let key: ReturnType<KeyCache["get"]>;
  try {
    key = keys.get(cert);
  } catch (e) {
    fail(le, "LedgerCorrupted", `signature certificate unreadable: ${(e as Error).message}`);
  }
  if (key.id !== sig.node) fail(le, "LedgerCorrupted", `certificate is not node ${sig.node}'s`);
  const untrusted = signerFault(store.get(Tables.NODES, nodeKey));
  if (untrusted !== undefined) {
    fail(le, "LedgerUntrustedSigner", `signed by untrusted node ${sig.node} (${untrusted})`);
  }
  if (!rootSignatureVerifies(key.key, tree, root, Buffer.from(sig.sig, "base64"))) {
    fail(le, "LedgerBadSignature", `node ${sig.node}'s signature over the root does not verify`);
  }
}

/**
 * Checks a node's ECDSA signature over the Merkle root. CCF signs the root as a prehashed SHA-256
 * digest, and every root over two or more leaves is SHA-256(left ‖ right) of its two subtrees'
 * roots, so the signature is also an ordinary ECDSA-with-SHA-256 signature over those 64 bytes:
 * OpenSSL checks that about ten times faster than the JS verifier takes over the bare digest.
 */
function rootSignatureVerifies(
  key: KeyObject,
  tree: MerkleTree,
  root: Buffer,
  derSignature: Buffer,
): boolean {
  // (A tree started from a snapshot holds no leaf 0: the prehashed check below serves.)
  if (tree.size >= 2 && tree.minIndex === 0) {
    // The path of leaf 0 climbs the left edge: folding all but its last step gives the root's
    // left child, and the last step is its right child.
    const steps = tree.path(0);
    const right = steps[steps.length - 1];
    if (right !== undefined && "right" in right) {
      const left = foldProof(tree.leaf(0), steps.slice(0, -1));
      const preimage = Buffer.concat([left, Buffer.from(right.right, "hex")]);
      if (sha256(preimage).equals(root)) {
        try {
          return cryptoVerify("sha256", preimage, key, derSignature);
        } catch {
          return false;
        }
      }
    }
  }
  return verifyDigest(key, root, derSignature);
}

/**
 * Why a node may not sign, from its nodes.info record before the signature. As CCF's validator,
 * Pending nodes and nodes unknown to the service may not; a Retired node may, until its
 * retirement is committed (it keeps signing while the reconfiguration completes).
 */
function signerFault(info: Uint8Array | undefined): string | undefined {
  if (info === undefined) return "not in nodes.info";
  const { status, retired_committed } = decodeValue(Tables.NODES, info) as {
    status?: string;
    retired_committed?: boolean;
  };
  if (status === "Trusted") return undefined;
  if (status === "Retired" && retired_committed !== true) return undefined;
  if (status === "Retired") return "Retired, its retirement committed";
  return `status ${String(status)}`;
}

/**
 * The tree a signature stores must be the tree it signed: the stored bytes must be our tree's
 * serialisation over the same range (a byte comparison; rebuilding the stored tree would hash
 * every leaf since the last flush again at each signature).
 */
function checkSerialisedTree(le: LedgerEntry, tree: MerkleTree): void {
  const treeBytes = le.writeSet.get(Tables.SERIALISED_MERKLE_TREE)?.get(SINGLETON);
  if (treeBytes === undefined || treeBytes === null) return;
  const stored = Buffer.from(treeBytes.buffer, treeBytes.byteOffset, treeBytes.byteLength);
  const from = stored.length >= 16 ? Number(stored.readBigUInt64BE(8)) : -1;
  const count = stored.length >= 16 ? Number(stored.readBigUInt64BE(0)) : -1;
  if (from < 0 || count < 0 || from + count !== le.seqno || from > tree.size) {
    fail(le, "LedgerCorrupted", "serialised Merkle tree differs from the signed tree");
  }
  if (from < tree.minIndex) {
    // Our tree starts later (read from a snapshot): the stored tree must have the signed root and
    // our leaves wherever both hold them.
    let signed: MerkleTree | undefined;
    try {
      signed = MerkleTree.deserialise(stored);
    } catch {
      signed = undefined;
    }
    let same = signed !== undefined && signed.root().equals(tree.rootAt(le.seqno));
    for (let i = tree.minIndex; same && i < le.seqno; i++) {
      same = (signed as MerkleTree).leaf(i).equals(tree.leaf(i));
    }
    if (!same) fail(le, "LedgerCorrupted", "serialised Merkle tree differs from the signed tree");
    return;
  }
  if (!tree.serialise(from, le.seqno).equals(stored)) {
    fail(le, "LedgerCorrupted", "serialised Merkle tree differs from the signed tree");
  }
}

/** Uses the serialised tree stored by the signature to name the first entry whose leaf differs. */
function findBadLeaf(le: LedgerEntry, tree: MerkleTree): number | undefined {
  const treeBytes = le.writeSet.get(Tables.SERIALISED_MERKLE_TREE)?.get(SINGLETON);
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

function checkCoseSignature(
  le: LedgerEntry,
  raw: Uint8Array,
  tree: MerkleTree,
  audit: GovernanceAudit,
  keys: KeyCache,
): void {
  if (audit.service === undefined) {
    fail(le, "LedgerCorrupted", "COSE signature before any service identity");
  }
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
  let key: ReturnType<KeyCache["get"]>;
  try {
    key = keys.get(audit.service.cert);
  } catch (e) {
    fail(le, "LedgerCorrupted", `service certificate unreadable: ${(e as Error).message}`);
  }
  if (!coseSign1Verify(cose, key.key, tree.root())) {
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
