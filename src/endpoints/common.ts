// The endpoints every frontend has (CCF's CommonEndpointRegistry): `/commit`, `/tx`, `/receipt`,
// `/api` and `/api/metrics`, under the frontend's prefix (`/app`, `/gov`, `/node`).

import { HttpErrors } from "../errors.js";
import type { NodeContext } from "./context.js";
import type { EndpointMetrics } from "./metrics.js";
import { openApiDocument } from "./openapi.js";
import { parseQuery } from "./query.js";
import { parseTxId, TX_ID_HEADER, txIdString } from "./txid.js";
import type { Endpoint, EndpointRequest, EndpointResponse } from "./types.js";

const TX_ID_PARAM = "transaction_id";

function txIdFromQuery(req: EndpointRequest): { view: number; seqno: number } {
  const value = parseQuery(req.query).get(TX_ID_PARAM);
  if (value === undefined) {
    throw HttpErrors.InvalidQueryParameterValue(
      `Query string must contain a '${TX_ID_PARAM}' parameter`,
    );
  }
  const id = parseTxId(value);
  if (id === undefined) {
    throw HttpErrors.InvalidQueryParameterValue(
      `The value '${value}' passed as query parameter '${TX_ID_PARAM}' could not be converted to a valid Transaction ID.`,
    );
  }
  return id;
}

/** CCF's answer while a historical transaction is read from the ledger: 202, retry in 3 s. */
export function historicalRetry(id: { view: number; seqno: number }): EndpointResponse {
  return {
    status: 202,
    headers: { "retry-after": "3", "content-type": "text/plain" },
    body: `Historical transaction ${txIdString(id)} is not currently available.`,
  };
}

/**
 * The common endpoints of one frontend. `allEndpoints` is read at request time, so `/api`
 * describes whatever the frontend serves then (application endpoints change through governance).
 */
export function commonEndpoints(
  prefix: string,
  title: string,
  ctx: NodeContext,
  metrics: EndpointMetrics,
  allEndpoints: () => readonly Endpoint[],
): Endpoint[] {
  return [
    {
      method: "GET",
      path: `${prefix}/commit`,
      openapi: { summary: "Current commit level" },
      handler: (req) => {
        const q = parseQuery(req.query);
        const body: { transaction_id: string; view_history?: string[] } = {
          transaction_id: txIdString(ctx.commitTxId()),
        };
        const since = q.get("view_history_since");
        if (since !== undefined) {
          const v = Number(since);
          if (!/^\d+$/.test(since) || v < 1 || v > ctx.currentView()) {
            throw HttpErrors.InvalidQueryParameterValue(
              "Invalid value for view_history_since, must be in range [1, current_term]",
            );
          }
          body.view_history = ctx.viewHistory(v).map(txIdString);
        }
        const vh = q.get("view_history");
        if (vh !== undefined) {
          if (vh === "true") body.view_history = ctx.viewHistory().map(txIdString);
          else if (vh !== "false") {
            throw HttpErrors.InvalidQueryParameterValue(
              "Invalid value for view_history, must be one of [true, false] when present",
            );
          }
        }
        return { status: 200, body };
      },
    },
    {
      method: "GET",
      path: `${prefix}/tx`,
      openapi: { summary: "Current status of a transaction" },
      handler: (req) => {
        const id = txIdFromQuery(req);
        return { status: 200, body: { status: ctx.txStatus(id), transaction_id: txIdString(id) } };
      },
    },
    {
      method: "GET",
      path: `${prefix}/receipt`,
      openapi: { summary: "Receipt for a transaction" },
      handler: (req) => {
        const id = txIdFromQuery(req);
        const format = parseQuery(req.query).get("format") ?? "json";
        if (format !== "json" && format !== "cose") {
          throw HttpErrors.InvalidQueryParameterValue(
            `Invalid value for format, must be one of [json, cose] when present`,
          );
        }
        const status = ctx.txStatus(id);
        if (status === "Invalid") {
          throw HttpErrors.TransactionInvalid(`Transaction ${txIdString(id)} is invalid.`);
        }
        const receipt = status === "Committed" ? ctx.receipt(id, format) : undefined;
        if (receipt === "fetching") return historicalRetry(id);
        if (receipt === undefined) {
          if (status === "Committed" && format === "cose") {
            throw HttpErrors.ResourceNotFound(
              `No COSE signature covers transaction ${txIdString(id)}.`,
            );
          }
          throw HttpErrors.TransactionPendingOrUnknown(
            `Transaction ${txIdString(id)} is pending or unknown.`,
          );
        }
        const headers: Record<string, string> = { [TX_ID_HEADER]: txIdString(ctx.lastTxId()) };
        if (Buffer.isBuffer(receipt)) headers["content-type"] = "application/cose";
        return { status: 200, headers, body: receipt };
      },
    },
    {
      method: "GET",
      path: `${prefix}/api`,
      openapi: { summary: "OpenAPI schema" },
      handler: () => ({ status: 200, body: openApiDocument(title, allEndpoints()) }),
    },
    {
      method: "GET",
      path: `${prefix}/api/metrics`,
      openapi: { summary: "Usage metrics for endpoints" },
      handler: () => ({ status: 200, body: metrics.toJSON() }),
    },
  ];
}
