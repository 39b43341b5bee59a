// Helpers shared by the logging endpoints: query parsing, table selection and
// the error responses.
import type { Request, Response } from "@microsoft/ccf-app/endpoints.js";

export type Visibility = "private" | "public";

export interface ErrorBody {
  error: { code: string; message: string };
}

/**
 * Parses `request.query` (already URL-decoded by the runtime) into a map.
 * Each `&`-separated element is `name=value`; an element without `=` maps to
 * the empty string. A repeated name keeps its last value.
 */
export function parseQuery(request: Request): Record<string, string> {
  const result: Record<string, string> = {};
  if (request.query.length === 0) {
    return result;
  }
  for (const element of request.query.split("&")) {
    if (element.length === 0) {
      continue;
    }
    const eq = element.indexOf("=");
    if (eq === -1) {
      result[element] = "";
    } else {
      result[element.slice(0, eq)] = element.slice(eq + 1);
    }
  }
  return result;
}

/** The `id` query parameter. Its absence is a programming error of the caller: the handler throws. */
export function idFromQuery(query: Record<string, string>): string {
  const id = query.id;
  if (id === undefined) {
    throw new Error("The query has no 'id' parameter");
  }
  return id;
}

/**
 * Name of the KV table holding the records: `records` (private) or
 * `public:records` (public), suffixed with `-<scope>` when the request names a scope.
 */
export function recordsTableName(visibility: Visibility, scope: string | undefined): string {
  const base = visibility === "public" ? "public:records" : "records";
  return scope === undefined ? base : `${base}-${scope}`;
}

export function errorResponse(
  statusCode: number,
  code: string,
  message: string,
): Response<ErrorBody> {
  return { statusCode, body: { error: { code, message } } };
}

export function notFound(visibility: Visibility, id: string): Response<ErrorBody> {
  return errorResponse(404, "ResourceNotFound", `No ${visibility} record with id ${id}`);
}
