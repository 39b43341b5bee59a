// Historical reads of log records: the record as a past transaction wrote it (the endpoint's
// `x-ms-ccf-transaction-id` header names the transaction, the runtime fetches its state), with
// its receipt, and every write of one record over a range of transactions.
import { string } from "@microsoft/ccf-app/converters.js";
import { digest } from "@microsoft/ccf-app/crypto.js";
import type { Request, Response } from "@microsoft/ccf-app/endpoints.js";
import { ccf, type HistoricalState, type KvMaps } from "@microsoft/ccf-app/global.js";
import {
  type ErrorBody,
  errorResponse,
  idFromQuery,
  notFound,
  parseQuery,
  recordsTableName,
  type Visibility,
} from "./common.js";

/** Largest number of transactions one range request covers; the rest comes through @nextLink. */
const PAGE_SIZE = 2000;
/** How long the runtime keeps a fetched range for us. */
const RANGE_EXPIRY_SECONDS = 1800;

function readRecord(kv: KvMaps, visibility: Visibility, scope: string | undefined, id: string) {
  const value = kv[recordsTableName(visibility, scope)].get(string.encode(id));
  return value === undefined ? undefined : string.decode(value);
}

/** The historical state of this request (the runtime sets it for historical endpoints). */
function historicalState(): HistoricalState {
  const state = ccf.historicalState;
  if (state === undefined) {
    throw new Error("This endpoint must be declared with mode 'historical'");
  }
  return state;
}

function getHistorical(
  visibility: Visibility,
  request: Request,
): Response<{ msg: string; receipt?: unknown } | ErrorBody> {
  const query = parseQuery(request);
  const id = idFromQuery(query);
  const msg = readRecord(historicalState().kv, visibility, query.scope, id);
  if (msg === undefined) {
    return notFound(visibility, id);
  }
  return { body: { msg } };
}

export function get_historical(request: Request) {
  return getHistorical("private", request);
}

export function get_historical_public(request: Request) {
  return getHistorical("public", request);
}

/** As get_historical, with the transaction's receipt added to the body (also to a 404's). */
export function get_historical_with_receipt(request: Request) {
  const result = getHistorical("private", request);
  (result.body as { receipt?: unknown }).receipt = historicalState().receipt;
  return result;
}

/**
 * As get_historical_with_receipt, on public records. The message is the claim: the receipt goes
 * without its claims digest, so that a verifier recomputes it from the message. As in CCF, this
 * fails (500) for a signature transaction, whose receipt has no leaf components.
 */
export function get_historical_public_with_receipt(request: Request) {
  const result = getHistorical("public", request);
  const receipt = historicalState().receipt as unknown as {
    leaf_components: { claims_digest?: string };
  };
  (result.body as { receipt?: unknown }).receipt = receipt;
  delete receipt.leaf_components.claims_digest;
  return result;
}

interface RangeEntry {
  seqno: number;
  id: number | string;
  msg: string;
}

function parseSeqno(value: string | undefined, name: string): number | undefined {
  if (value === undefined) {
    return undefined;
  }
  const n = Number.parseInt(value, 10);
  if (Number.isNaN(n)) {
    throw new Error(`${name} is not an integer`);
  }
  return n;
}

/** A stable handle for one page of one record's history. */
function rangeHandle(from: number, to: number, id: string): number {
  const hash = digest("SHA-256", string.encode(`${from}-${to}-${id}`));
  return new DataView(hash).getUint32(0);
}

function getHistoricalRange(
  visibility: Visibility,
  request: Request,
): Response<{ entries: RangeEntry[]; "@nextLink"?: string } | ErrorBody | string> {
  const query = parseQuery(request);
  const id = idFromQuery(query);
  const from = parseSeqno(query.from_seqno, "from_seqno") ?? 1;
  let to = parseSeqno(query.to_seqno, "to_seqno");
  if (to === undefined) {
    const table = ccf.kv[recordsTableName(visibility, query.scope)];
    to =
      table.getVersionOfPreviousWrite(string.encode(id)) ??
      ccf.consensus.getLastCommittedTxId().seqno;
  }
  if (to < from) {
    return errorResponse(400, "InvalidInput", `to_seqno ${to} is before from_seqno ${from}`);
  }
  const view = ccf.consensus.getViewForSeqno(to);
  if (view === null || ccf.consensus.getStatusForTxId(view, to) !== "Committed") {
    return errorResponse(
      400,
      "InvalidInput",
      `The end of the range, seqno ${to}, is not committed`,
    );
  }
  const pageEnd = Math.min(to, from + PAGE_SIZE - 1);
  const handle = rangeHandle(from, pageEnd, id);
  const states = ccf.historical.getStateRange(handle, from, pageEnd, RANGE_EXPIRY_SECONDS);
  if (states === null) {
    return {
      statusCode: 202,
      headers: { "retry-after": "1" },
      body: `Historical transactions from ${from} to ${pageEnd} are not yet available, fetching now`,
    };
  }
  const entries: RangeEntry[] = [];
  for (const state of states) {
    const msg = readRecord(state.kv, visibility, query.scope, id);
    if (msg !== undefined) {
      const seqno = Number.parseInt(state.transactionId.split(".")[1], 10);
      entries.push({ seqno, id: /^\d+$/.test(id) ? Number(id) : id, msg });
    }
  }
  ccf.historical.dropCachedStates(handle);
  const body: { entries: RangeEntry[]; "@nextLink"?: string } = { entries };
  if (pageEnd < to) {
    const next = pageEnd + 1;
    const nextEnd = Math.min(to, next + PAGE_SIZE - 1);
    // Start fetching the next page now, so that it is likely ready when the client asks.
    ccf.historical.getStateRange(
      rangeHandle(next, nextEnd, id),
      next,
      nextEnd,
      RANGE_EXPIRY_SECONDS,
    );
    body["@nextLink"] =
      `/app/log/${visibility}/historical/range?from_seqno=${next}&to_seqno=${to}&id=${id}`;
  }
  return { body };
}

export function get_historical_range(request: Request) {
  return getHistoricalRange("private", request);
}

export function get_historical_range_public(request: Request) {
  return getHistoricalRange("public", request);
}
