// Reading, writing, deleting and counting log records, in the private
// (`records[-<scope>]`) and public (`public:records[-<scope>]`) tables.
// Keys are the UTF-8 bytes of the decimal id, values the UTF-8 bytes of the message.
import { arrayBuffer, string } from "@microsoft/ccf-app/converters.js";
import { digest } from "@microsoft/ccf-app/crypto.js";
import { type Request, type Response, setClaimsDigest } from "@microsoft/ccf-app/endpoints.js";
import { ccf } from "@microsoft/ccf-app/global.js";
import { type TypedKvMap, typedKv } from "@microsoft/ccf-app/kv.js";
import {
  type ErrorBody,
  type Visibility,
  idFromQuery,
  notFound,
  parseQuery,
  recordsTableName,
} from "./common.js";

interface PostBody {
  id: number | string;
  msg: string;
  record_claim?: boolean;
}

function messages(
  visibility: Visibility,
  query: Record<string, string>,
): TypedKvMap<string, string> {
  return typedKv(recordsTableName(visibility, query.scope), string, string);
}

/** Reads and checks the JSON body of a POST; a malformed body makes the handler throw (500), as in CCF. */
function postBody(request: Request<PostBody>): { key: string; msg: string; recordClaim: boolean } {
  const body = request.body.json();
  if (body === null || typeof body !== "object") {
    throw new TypeError("The body must be a JSON object {id, msg}");
  }
  if (body.id === undefined || body.id === null) {
    throw new TypeError("The body has no 'id'");
  }
  if (typeof body.msg !== "string") {
    throw new TypeError("The body's 'msg' must be a string");
  }
  return { key: String(body.id), msg: body.msg, recordClaim: Boolean(body.record_claim) };
}

function getRecord(
  visibility: Visibility,
  request: Request,
): Response<{ msg: string } | ErrorBody> {
  const query = parseQuery(request);
  const id = idFromQuery(query);
  const msg = messages(visibility, query).get(id);
  if (msg === undefined) {
    return notFound(visibility, id);
  }
  return { body: { msg } };
}

function deleteRecord(visibility: Visibility, request: Request): Response<boolean | ErrorBody> {
  const query = parseQuery(request);
  const id = idFromQuery(query);
  const table = messages(visibility, query);
  if (!table.has(id)) {
    return notFound(visibility, id);
  }
  table.delete(id);
  return { body: true };
}

function clearRecords(visibility: Visibility, request: Request): Response<boolean> {
  messages(visibility, parseQuery(request)).clear();
  return { body: true };
}

function countRecords(visibility: Visibility, request: Request): Response<number> {
  return { body: messages(visibility, parseQuery(request)).size };
}

// --- private records ---

export function get_private(request: Request): Response<{ msg: string } | ErrorBody> {
  return getRecord("private", request);
}

export function post_private(request: Request<PostBody>): Response<boolean> {
  const query = parseQuery(request);
  const { key, msg } = postBody(request);
  messages("private", query).set(key, msg);
  return { body: true };
}

export function delete_private(request: Request): Response<boolean | ErrorBody> {
  return deleteRecord("private", request);
}

export function clear_private(request: Request): Response<boolean> {
  return clearRecords("private", request);
}

export function count_private(request: Request): Response<number> {
  return countRecords("private", request);
}

/** As post_private, for users whose user_data has `isAdmin: true` only. */
export function post_private_admin_only(request: Request<PostBody>): Response<boolean | string> {
  const caller = request.caller as { data?: { isAdmin?: unknown } | null } | undefined;
  if (caller?.data?.isAdmin !== true) {
    return { statusCode: 403, body: "Only admins may access this endpoint" };
  }
  return post_private(request);
}

/** Stores the message prefixed with the caller's certificate ID ("<id>: <msg>"). */
export function post_private_prefix_cert(request: Request<PostBody>): Response<boolean> {
  const query = parseQuery(request);
  const { key, msg } = postBody(request);
  const cert = (request.caller as { cert?: string } | undefined)?.cert;
  if (typeof cert !== "string") {
    throw new TypeError("The caller has no certificate");
  }
  // pemToId is installed by CCF on every interpreter but is not in ccf-app's declarations.
  const callerId = (ccf as unknown as { pemToId(pem: string): string }).pemToId(cert);
  messages("private", query).set(key, `${callerId}: ${msg}`);
  return { body: true };
}

/** Stores the raw (text/plain) body under the id taken from the path. */
export function post_private_raw_text(request: Request): Response<boolean | string> {
  const contentType = request.headers["content-type"];
  if (contentType !== "text/plain") {
    return {
      statusCode: 415,
      body: `Unsupported content-type ${contentType === undefined ? "(none)" : `'${contentType}'`}: expected 'text/plain'`,
    };
  }
  const id = request.params.id;
  if (id === undefined) {
    throw new Error("The path has no 'id' parameter");
  }
  const query = parseQuery(request);
  typedKv(recordsTableName("private", query.scope), string, arrayBuffer).set(
    id,
    request.body.arrayBuffer(),
  );
  return { body: true };
}

// --- public records ---

export function get_public(request: Request): Response<{ msg: string } | ErrorBody> {
  return getRecord("public", request);
}

/** As post_private, on the public table; with `record_claim: true` the SHA-256 of the message becomes the transaction's claims digest. */
export function post_public(request: Request<PostBody>): Response<boolean> {
  const query = parseQuery(request);
  const { key, msg, recordClaim } = postBody(request);
  messages("public", query).set(key, msg);
  if (recordClaim) {
    setClaimsDigest(digest("SHA-256", string.encode(msg)));
  }
  return { body: true };
}

export function delete_public(request: Request): Response<boolean | ErrorBody> {
  return deleteRecord("public", request);
}

export function clear_public(request: Request): Response<boolean> {
  return clearRecords("public", request);
}

export function count_public(request: Request): Response<number> {
  return countRecords("public", request);
}
