// `/node/snapshot` and `/node/snapshot/{snapshot_name}`, as CCF serves them
// (src/node/rpc/file_serving_handlers.h, `init_file_serving_handlers`), without authentication:
//
// - HEAD|GET /node/snapshot[?since=N]: a backup that knows the primary answers 308 towards the
//   primary's `/node/snapshot` (keeping `since`), for the snapshot the later join will match;
//   otherwise 308 with `Location: https://<this node>/node/snapshot/<name>` for the committed
//   snapshot with the highest seqno at or above `since` (0 by default), or 404 ResourceNotFound
//   "This node has no committed snapshots since N". A `since` that is not a number is 400
//   InvalidQueryParameterValue.
// - HEAD|GET /node/snapshot/{name}: any file of that name in the snapshot directory (pending ones
//   too, as CCF), with `x-ms-ccf-snapshot-name` and `accept-ranges: bytes`. HEAD: 200 with the
//   length. GET: 200 with the whole file, or with `Range: bytes=a-b | a- | -n` 206 and
//   `Content-Range: bytes a-b/total` (end clamped to the file, one range only); a bad Range is 400
//   InvalidHeaderValue. Unknown name: 404 ResourceNotFound.
//
// Only a range is read from disk for a ranged GET (CCF's joiner fetches 4 MiB ranges). The
// endpoint response is a Buffer, so a GET without Range reads the whole file (as CCF does); a HEAD
// gives only the file's size (`headContentLength`), never a buffer of that size. CCF 7's
// `Want-Repr-Digest`/`Repr-Digest` is not implemented.

import * as fs from "node:fs";
import { join } from "node:path";
import { HttpErrors } from "../errors.js";
import { listCommittedSnapshots } from "../ledger/index.js";
import { parseQuery } from "./query.js";
import type { Endpoint, EndpointRequest, EndpointResponse } from "./types.js";

export const SNAPSHOT_NAME_HEADER = "x-ms-ccf-snapshot-name";
const SINCE = "since";

export interface SnapshotEndpointDeps {
  /** `snapshots.directory` (CCF serves this directory only, not `read_only_directory`). */
  snapshotDir: string;
  /**
   * This node's published address (`host:port`) on the interface the request came on, for CCF's
   * absolute `Location`; undefined gives a path-only `Location: /node/snapshot/<name>`.
   */
  selfAddress?: (req: EndpointRequest) => string | undefined;
  /**
   * When this node is a backup and knows the primary: the primary's published address on the
   * request's interface. Undefined (a primary, or no primary known) serves this node's snapshot.
   */
  primaryAddress?: (req: EndpointRequest) => string | undefined;
}

function sinceOf(req: EndpointRequest): number {
  const v = parseQuery(req.query).get(SINCE);
  if (v === undefined) return 0;
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
    throw HttpErrors.InvalidQueryParameterValue(
      `Unable to parse value '${v}' as number in parameter '${SINCE}'`,
    );
  }
  return Number(v);
}

function findSnapshot(deps: SnapshotEndpointDeps, req: EndpointRequest): EndpointResponse {
  const since = sinceOf(req);
  const primary = deps.primaryAddress?.(req);
  if (primary !== undefined) {
    const location = `https://${primary}/node/snapshot${since !== 0 ? `?${SINCE}=${since}` : ""}`;
    return {
      status: 308,
      headers: { location },
      body: {
        error: {
          code: "NodeCannotHandleRequest",
          message: "Node is not primary; redirecting for preferable snapshot",
        },
      },
    };
  }
  let latest: string | undefined;
  try {
    latest = listCommittedSnapshots(deps.snapshotDir)
      .filter((s) => s.seqno >= since)
      .map((s) => s.path.slice(s.path.lastIndexOf("/") + 1))[0];
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  if (latest === undefined) {
    throw HttpErrors.ResourceNotFound(`This node has no committed snapshots since ${since}`);
  }
  const self = deps.selfAddress?.(req);
  const location =
    self === undefined ? `/node/snapshot/${latest}` : `https://${self}/node/snapshot/${latest}`;
  return { status: 308, headers: { location } };
}

interface ByteRange {
  start: number;
  /** Exclusive. */
  end: number;
}

/** The leading decimal digits of `s`, as C++'s from_chars reads them; undefined if none. */
function leadingNumber(s: string): number | undefined {
  const m = /^\d+/.exec(s);
  if (m === null) return undefined;
  const n = Number(m[0]);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** CCF's Range handling: one `bytes` range, `a-b`, `a-` or `-n`, the end clamped to the file. */
function parseRange(header: string, total: number): ByteRange {
  const eq = header.indexOf("=");
  const unit = eq === -1 ? header : header.slice(0, eq);
  const ranges = eq === -1 ? "" : header.slice(eq + 1);
  if (unit !== "bytes") {
    throw HttpErrors.InvalidHeaderValue("Only 'bytes' is supported as a Range header unit");
  }
  if (ranges.includes(","))
    throw HttpErrors.InvalidHeaderValue("Multiple ranges are not supported");
  const segments = ranges.split("-");
  if (segments.length !== 2) {
    throw HttpErrors.InvalidHeaderValue(`Invalid format, cannot parse range in ${header}`);
  }
  const [s, e] = segments;
  if (s !== "") {
    const start = leadingNumber(s);
    if (start === undefined) {
      throw HttpErrors.InvalidHeaderValue(`Unable to parse start of range value ${s} in ${header}`);
    }
    if (start > total) {
      throw HttpErrors.InvalidHeaderValue(
        `Start of range ${start} is larger than total file size ${total}`,
      );
    }
    if (e === "") return { start, end: total };
    const inclusiveEnd = leadingNumber(e);
    if (inclusiveEnd === undefined) {
      throw HttpErrors.InvalidHeaderValue(`Unable to parse end of range value ${e} in ${header}`);
    }
    const end = Math.min(inclusiveEnd + 1, total);
    if (end < start) {
      throw HttpErrors.InvalidHeaderValue(
        `Invalid range: Start (${start}) and end (${end}) out of order`,
      );
    }
    return { start, end };
  }
  if (e === "") {
    throw HttpErrors.InvalidHeaderValue("Invalid range: Must contain range-start or range-end");
  }
  const offset = leadingNumber(e);
  if (offset === undefined) {
    throw HttpErrors.InvalidHeaderValue(
      `Unable to parse end of range offset value ${e} in ${header}`,
    );
  }
  // CCF's size_t arithmetic would wrap for an offset past the file; the whole file is served.
  return { start: Math.max(0, total - offset), end: total };
}

async function readRange(path: string, start: number, end: number): Promise<Buffer> {
  const fh = await fs.promises.open(path, "r");
  try {
    const out = Buffer.alloc(end - start);
    let done = 0;
    while (done < out.length) {
      const { bytesRead } = await fh.read(out, done, out.length - done, start + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    if (done !== out.length) {
      throw HttpErrors.InternalError("Server was unable to read the file correctly");
    }
    return out;
  } finally {
    await fh.close();
  }
}

async function getSnapshot(
  deps: SnapshotEndpointDeps,
  req: EndpointRequest,
): Promise<EndpointResponse> {
  const name = req.params.snapshot_name ?? "";
  if (name === "" || name === "." || name === ".." || name.includes("/")) {
    throw HttpErrors.ResourceNotFound(`This node does not have a snapshot named ${name}`);
  }
  const path = join(deps.snapshotDir, name);
  let total: number;
  try {
    const st = await fs.promises.stat(path);
    if (!st.isFile()) throw new Error("not a file");
    total = st.size;
  } catch {
    throw HttpErrors.ResourceNotFound(`This node does not have a snapshot named ${name}`);
  }
  const headers: Record<string, string> = {
    [SNAPSHOT_NAME_HEADER]: name,
    "accept-ranges": "bytes",
  };
  if (req.method === "HEAD") {
    // The file's size, without reading (or allocating) anything of that size.
    return {
      status: 200,
      headers: { ...headers, "content-type": "application/octet-stream" },
      headContentLength: total,
    };
  }
  const rangeHeader = req.headers.range;
  const range =
    rangeHeader === undefined ? { start: 0, end: total } : parseRange(rangeHeader, total);
  const body = await readRange(path, range.start, range.end);
  headers["content-type"] = "application/octet-stream";
  if (rangeHeader === undefined) return { status: 200, headers, body };
  headers["content-range"] = `bytes ${range.start}-${range.end - 1}/${total}`;
  return { status: 206, headers, body };
}

/** The snapshot endpoints of the node frontend. */
export function snapshotEndpoints(deps: SnapshotEndpointDeps): Endpoint[] {
  const find = (req: EndpointRequest) => findSnapshot(deps, req);
  const get = (req: EndpointRequest) => getSnapshot(deps, req);
  const findDoc = {
    summary: "Redirect to the latest committed snapshot",
    parameters: [{ name: SINCE, in: "query", required: false, schema: { type: "integer" } }],
  };
  const getDoc = { summary: "A snapshot file (Range supported)" };
  return [
    {
      method: "HEAD",
      path: "/node/snapshot",
      handler: find,
      openapi: findDoc,
      forwarding: "never",
    },
    { method: "GET", path: "/node/snapshot", handler: find, openapi: findDoc, forwarding: "never" },
    {
      method: "HEAD",
      path: "/node/snapshot/{snapshot_name}",
      handler: get,
      openapi: getDoc,
      forwarding: "never",
    },
    {
      method: "GET",
      path: "/node/snapshot/{snapshot_name}",
      handler: get,
      openapi: getDoc,
      forwarding: "never",
    },
  ];
}
