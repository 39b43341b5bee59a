// The basic sample app: a private key-value store over HTTP.
//   PUT  /records/{key}  stores the raw request body under key (204)
//   GET  /records/{key}  answers the stored bytes (404 if absent)
//   POST /records        stores every entry of a JSON object {key: "value", ...} (204)
// Keys and string values are stored as their UTF-8 bytes, in the private table basic.records.
import { arrayBuffer, string } from "@microsoft/ccf-app/converters.js";
import type { Request, Response } from "@microsoft/ccf-app/endpoints.js";
import { typedKv } from "@microsoft/ccf-app/kv.js";

const TABLE = "basic.records";

// Created once per interpreter: a KV handle always works on the current request's transaction.
const records = typedKv(TABLE, string, arrayBuffer);

export function put_record(request: Request): Response<string | undefined> {
  const key = request.params.key;
  if (key === undefined) {
    return { statusCode: 404, body: "Missing key" };
  }
  records.set(key, request.body.arrayBuffer());
  return { statusCode: 204 };
}

export function get_record(request: Request): Response<ArrayBuffer | string> {
  const key = request.params.key;
  if (key === undefined) {
    return { statusCode: 404, body: "Missing key" };
  }
  const value = records.get(key);
  if (value === undefined) {
    return { statusCode: 404, body: "No such key" };
  }
  return { statusCode: 200, headers: { "content-type": "text/plain" }, body: value };
}

export function post_records(request: Request): Response<string | undefined> {
  const entries: unknown = request.body.json();
  if (entries === null || typeof entries !== "object" || Array.isArray(entries)) {
    return { statusCode: 400, body: "The body must be a JSON object of key to string value" };
  }
  const pairs = Object.entries(entries as Record<string, unknown>);
  for (const [key, value] of pairs) {
    if (typeof value !== "string") {
      return { statusCode: 400, body: `The value of key '${key}' is not a string` };
    }
  }
  for (const [key, value] of pairs) {
    records.set(key, string.encode(value as string));
  }
  return { statusCode: 204 };
}
