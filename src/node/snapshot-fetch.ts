// A joiner's side of snapshots (CCF's src/snapshots/fetch.h and snapshot_serdes.h): fetch the
// latest committed snapshot from the node it joins through, and load a committed snapshot file
// once its receipt verifies against the service certificate.
//
// The fetch follows CCF's joiner: GET /node/snapshot with a Range header, following 308 redirects
// itself (to the primary, then to /node/snapshot/<name>), until a 206; then the rest in 4 MiB ranges,
// each checked against what was asked. A 404 means the target has no committed snapshot.

import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { basename, join } from "node:path";
import { Agent, request } from "undici";
import { CcfError, FormatError } from "../errors.js";
import {
  installSnapshot,
  keyToString,
  type ParsedSnapshot,
  SINGLETON_KEY,
  type Store,
  Tables,
} from "../kv/index.js";
import {
  decodeSnapshotEntry,
  type LedgerSecrets,
  parseSnapshotFileName,
  readSnapshotFile,
  verifySnapshot,
} from "../ledger/index.js";
import { MerkleTree, type Receipt } from "../merkle/index.js";

const SINGLETON_KEY_STRING = keyToString(SINGLETON_KEY);

/** CCF's joiner asks for 4 MiB at a time. */
export const SNAPSHOT_FETCH_RANGE = 4 * 1024 * 1024;
const MAX_REDIRECTS = 20;

export interface FetchSnapshotOptions {
  /** `host:port` of the node to ask (the join target). */
  target: string;
  /** The service certificate: the CA every node's TLS certificate chains to. */
  serviceCertPem: string;
  /** A TLS client identity to present (CCF's joiner presents none; optional here). */
  clientCertPem?: string;
  clientKeyPem?: string;
  /** Where the snapshot is saved, under the name the target serves it by. */
  destDir: string;
  /** `command.join.fetch_snapshot_max_size`: a larger snapshot is refused. */
  maxSize: number;
  /** Bytes asked per request (tests); CCF's 4 MiB by default. */
  rangeSize?: number;
}

function fetchError(message: string): CcfError {
  return new CcfError("SnapshotFetchFailed", message, 502);
}

function parseContentRange(v: string | string[] | undefined): {
  start: number;
  inclusiveEnd: number;
  total: number;
} {
  const s = Array.isArray(v) ? v[0] : v;
  const m = s === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+)$/.exec(s);
  if (m === null) {
    throw fetchError(`unsupported content-range ${String(s)}: expected bytes <a>-<b>/<total>`);
  }
  return { start: Number(m[1]), inclusiveEnd: Number(m[2]), total: Number(m[3]) };
}

/**
 * Fetches the latest committed snapshot from `target` into `destDir` and returns its path, or
 * undefined when the target has none (404). Throws (CcfError SnapshotFetchFailed) on anything else:
 * an unexpected status, a malformed or oversized answer, a name that is not a committed snapshot's.
 */
export async function fetchLatestSnapshot(opts: FetchSnapshotOptions): Promise<string | undefined> {
  const rangeSize = opts.rangeSize ?? SNAPSHOT_FETCH_RANGE;
  const agent = new Agent({
    connect: {
      ca: opts.serviceCertPem,
      ...(opts.clientCertPem !== undefined && opts.clientKeyPem !== undefined
        ? { cert: opts.clientCertPem, key: opts.clientKeyPem }
        : {}),
    },
  });
  const tmp = join(opts.destDir, `.snapshot-fetch-${randomBytes(6).toString("hex")}`);
  let fh: fs.promises.FileHandle | undefined;
  try {
    let url = `https://${opts.target}/node/snapshot`;
    let start = 0;
    let received = 0;
    let total: number | undefined;
    let name: string | undefined;
    let redirects = 0;
    for (;;) {
      const inclusiveEnd = start + rangeSize - 1;
      const res = await request(url, {
        dispatcher: agent,
        method: "GET",
        headers: { range: `bytes=${start}-${inclusiveEnd}` },
      });
      if (res.statusCode === 404 && name === undefined) {
        await res.body.dump();
        return undefined;
      }
      if ((res.statusCode === 308 || res.statusCode === 307) && name === undefined) {
        await res.body.dump();
        const location = res.headers.location;
        const loc = Array.isArray(location) ? location[0] : location;
        if (loc === undefined) throw fetchError(`redirect from ${url} without a location`);
        if (++redirects > MAX_REDIRECTS) throw fetchError(`more than ${MAX_REDIRECTS} redirects`);
        url = new URL(loc, url).toString();
        continue;
      }
      if (res.statusCode !== 206) {
        const text = await res.body.text();
        throw fetchError(`expected 206 from GET ${url}, got ${res.statusCode} (${text})`);
      }
      const range = parseContentRange(res.headers["content-range"]);
      if (range.start !== start || range.inclusiveEnd > inclusiveEnd) {
        await res.body.dump();
        throw fetchError(
          `asked ${url} for bytes ${start}-${inclusiveEnd}, got ${range.start}-${range.inclusiveEnd}`,
        );
      }
      if (range.total > opts.maxSize) {
        await res.body.dump();
        throw fetchError(`the snapshot is ${range.total} bytes, over the limit of ${opts.maxSize}`);
      }
      if (total !== undefined && range.total !== total) {
        await res.body.dump();
        throw fetchError(`the snapshot's size changed from ${total} to ${range.total}`);
      }
      total = range.total;
      if (name === undefined) {
        name = decodeURIComponent(new URL(url).pathname.split("/").pop() ?? "");
        const parsed = parseSnapshotFileName(name);
        if (parsed === undefined || !parsed.committed) {
          await res.body.dump();
          throw fetchError(`${url} does not name a committed snapshot`);
        }
        fh = await fs.promises.open(tmp, "wx");
      }
      const chunk = Buffer.from(await res.body.arrayBuffer());
      const expected = range.inclusiveEnd + 1 - range.start;
      if (chunk.length !== expected) {
        throw fetchError(`expected ${expected} bytes from ${url}, got ${chunk.length}`);
      }
      await (fh as fs.promises.FileHandle).write(chunk, 0, chunk.length, start);
      received += chunk.length;
      if (range.inclusiveEnd + 1 >= total) break;
      if (chunk.length === 0) throw fetchError(`empty range from ${url}`);
      start = range.inclusiveEnd + 1;
    }
    const file = fh as fs.promises.FileHandle;
    if (received !== total) throw fetchError(`received ${received} of ${total} bytes`);
    await file.sync();
    await file.close();
    fh = undefined;
    const dest = join(opts.destDir, name);
    await fs.promises.rename(tmp, dest);
    return dest;
  } finally {
    if (fh !== undefined) await fh.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
    await agent.close();
  }
}

export interface LoadedSnapshot {
  /** The file it was read from. */
  path: string;
  /** The snapshot's seqno. */
  seqno: number;
  /** The evidence transaction's seqno, from the receipt's commit evidence. */
  evidenceSeqno: number;
  /** The parsed snapshot; private maps only when secrets were given. */
  parsed: ParsedSnapshot;
  receipt: Receipt;
}

/**
 * Reads a committed snapshot file and checks it as CCF does before starting from it: the receipt
 * is for this entry (claims digest) and verifies against the service certificate (CryptoError
 * otherwise); the evidence seqno in the receipt matches the file's name. With `secrets`, the
 * private maps are decrypted under the secret in force at the snapshot's seqno.
 */
export function loadSnapshot(
  path: string,
  serviceCertPem: string,
  secrets?: LedgerSecrets,
): LoadedSnapshot {
  const file = readSnapshotFile(path);
  const { evidenceSeqno } = verifySnapshot(file.entry, file.receiptBytes, serviceCertPem);
  const name = parseSnapshotFileName(basename(path));
  if (name !== undefined && name.evidenceSeqno !== evidenceSeqno) {
    throw new FormatError(
      "InvalidSnapshot",
      `${path} names evidence seqno ${name.evidenceSeqno}, its receipt ${evidenceSeqno}`,
    );
  }
  const parsed = decodeSnapshotEntry(
    file.entry,
    secrets === undefined ? undefined : secrets.forSeqno(file.seqno),
  );
  return {
    path,
    seqno: file.seqno,
    evidenceSeqno,
    parsed,
    receipt: JSON.parse(file.receiptBytes.toString("utf8")) as Receipt,
  };
}

/**
 * Puts a loaded snapshot into an empty store and tree, which then stand at its seqno (a joiner, a
 * recovery and an offline audit of a ledger that starts after the snapshot all begin so).
 */
export function installLoadedSnapshot(
  snap: { parsed: ParsedSnapshot; seqno: number },
  store: Store,
  tree: MerkleTree,
): void {
  const at = treeAtSnapshot(snap.parsed, snap.seqno);
  installSnapshot(store, snap.parsed);
  tree.adopt(at);
}

/**
 * The Merkle tree at a snapshot: the tree its signature transaction serialised (the leaves before
 * it) and the snapshot's own leaf (its "hash at snapshot"). FormatError if the snapshot has none.
 */
export function treeAtSnapshot(parsed: ParsedSnapshot, seqno: number): MerkleTree {
  const serialised = parsed.maps
    .get(Tables.SERIALISED_MERKLE_TREE)
    ?.entries.find((e) => e.key === SINGLETON_KEY_STRING)?.value;
  if (serialised === undefined || serialised === null || parsed.hashAtSnapshot === undefined) {
    throw new FormatError("InvalidSnapshot", `the snapshot at ${seqno} holds no Merkle tree`);
  }
  const tree = MerkleTree.deserialise(serialised);
  tree.append(parsed.hashAtSnapshot);
  if (tree.size !== seqno + 1) {
    throw new FormatError(
      "InvalidSnapshot",
      `the snapshot at ${seqno} holds a tree of ${tree.size} leaves`,
    );
  }
  return tree;
}

/** CCF's view history (element i: first seqno of view i+1) as consensus's view starts up to `seqno`. */
export function viewStartsOf(
  viewHistory: readonly number[],
  seqno: number,
): Array<{ view: number; seqno: number }> {
  const views: Array<{ view: number; seqno: number }> = [];
  for (let i = 0; i < viewHistory.length; i++) {
    if (i + 1 < viewHistory.length && viewHistory[i + 1] <= viewHistory[i]) continue;
    if (viewHistory[i] > seqno || viewHistory[i] === 0) continue;
    views.push({ view: i + 1, seqno: viewHistory[i] });
  }
  return views;
}
