// CCF's built-in tables: their names, and how CCF encodes their keys and values in the ledger
// (checked against ledgers CCF 6 wrote: ids are hex strings as raw bytes, singletons use 8 zero
// bytes, C++-written JSON has sorted keys, certificates are raw PEM text, and so on).

import { FormatError } from "../errors.js";

export const Tables = {
  // governance
  CONSTITUTION: "public:ccf.gov.constitution",
  MEMBER_CERTS: "public:ccf.gov.members.certs",
  MEMBER_ENCRYPTION_KEYS: "public:ccf.gov.members.encryption_public_keys",
  MEMBER_INFO: "public:ccf.gov.members.info",
  MEMBER_ACKS: "public:ccf.gov.members.acks",
  USER_CERTS: "public:ccf.gov.users.certs",
  USER_INFO: "public:ccf.gov.users.info",
  NODES: "public:ccf.gov.nodes.info",
  NODE_ENDORSED_CERTIFICATES: "public:ccf.gov.nodes.endorsed_certificates",
  VIRTUAL_MEASUREMENTS: "public:ccf.gov.nodes.virtual.measurements",
  VIRTUAL_HOST_DATA: "public:ccf.gov.nodes.virtual.host_data",
  SERVICE: "public:ccf.gov.service.info",
  CONFIGURATION: "public:ccf.gov.service.config",
  PREVIOUS_SERVICE_IDENTITY: "public:ccf.gov.service.previous_service_identity",
  PROPOSALS: "public:ccf.gov.proposals",
  PROPOSALS_INFO: "public:ccf.gov.proposals_info",
  HISTORY: "public:ccf.gov.history",
  COSE_HISTORY: "public:ccf.gov.cose_history",
  COSE_RECENT_PROPOSALS: "public:ccf.gov.cose_recent_proposals",
  MODULES: "public:ccf.gov.modules",
  MODULES_QUICKJS_BYTECODE: "public:ccf.gov.modules_quickjs_bytecode",
  MODULES_QUICKJS_VERSION: "public:ccf.gov.modules_quickjs_version",
  INTERPRETER_FLUSH: "public:ccf.gov.interpreter.flush",
  ENDPOINTS: "public:ccf.gov.endpoints",
  JS_RUNTIME_OPTIONS: "public:ccf.gov.js_runtime_options",
  JWT_ISSUERS: "public:ccf.gov.jwt.issuers",
  JWT_PUBLIC_SIGNING_KEYS_METADATA: "public:ccf.gov.jwt.public_signing_keys_metadata_v2",
  CA_CERT_BUNDLES: "public:ccf.gov.tls.ca_cert_bundles",
  // internal
  SIGNATURES: "public:ccf.internal.signatures",
  COSE_SIGNATURES: "public:ccf.internal.cose_signatures",
  SERIALISED_MERKLE_TREE: "public:ccf.internal.tree",
  SNAPSHOT_EVIDENCE: "public:ccf.internal.snapshot_evidence",
  RECOVERY_SHARES: "public:ccf.internal.recovery_shares",
  ENCRYPTED_LEDGER_SECRETS: "public:ccf.internal.encrypted_ledger_secrets",
  HISTORICAL_ENCRYPTED_LEDGER_SECRET: "public:ccf.internal.historical_encrypted_ledger_secret",
  ENCRYPTED_SUBMITTED_SHARES: "public:ccf.internal.encrypted_submitted_shares",
  PREVIOUS_SERVICE_IDENTITY_ENDORSEMENT:
    "public:ccf.internal.previous_service_identity_endorsement",
  PREVIOUS_SERVICE_LAST_SIGNED_ROOT: "public:ccf.internal.previous_service_last_signed_root",
  LAST_RECOVERY_TYPE: "public:ccf.internal.last_recovery_type",
} as const;

/** The key of a singleton table's only entry: a u64 zero. */
export const SINGLETON_KEY: Buffer = Buffer.alloc(8);

/**
 * How a table's values are stored:
 * - `json`: JSON text (C++-written tables sort object keys, see `encodeJson`);
 * - `json-string`: a JSON string literal (base64 COSE, hex digests, the constitution);
 * - `text`: raw UTF-8 (PEM, module sources, proposal bodies);
 * - `bytes`: raw bytes (serialised Merkle tree, QuickJS bytecode);
 * - `sized-string`: a u64 little-endian length, then UTF-8 (CCF's serialised std::string).
 */
export type ValueCodec = "json" | "json-string" | "text" | "bytes" | "sized-string";

const codecs: Record<string, ValueCodec> = {
  [Tables.CONSTITUTION]: "json-string",
  [Tables.MEMBER_CERTS]: "text",
  [Tables.MEMBER_ENCRYPTION_KEYS]: "text",
  [Tables.USER_CERTS]: "text",
  [Tables.NODE_ENDORSED_CERTIFICATES]: "text",
  [Tables.VIRTUAL_HOST_DATA]: "sized-string",
  [Tables.PREVIOUS_SERVICE_IDENTITY]: "json-string",
  [Tables.PROPOSALS]: "text",
  [Tables.COSE_HISTORY]: "json-string",
  [Tables.COSE_RECENT_PROPOSALS]: "json-string",
  [Tables.MODULES]: "text",
  [Tables.MODULES_QUICKJS_BYTECODE]: "bytes",
  [Tables.MODULES_QUICKJS_VERSION]: "text",
  [Tables.COSE_SIGNATURES]: "json-string",
  [Tables.SERIALISED_MERKLE_TREE]: "bytes",
  [Tables.ENCRYPTED_SUBMITTED_SHARES]: "json-string",
  [Tables.PREVIOUS_SERVICE_LAST_SIGNED_ROOT]: "json-string",
};

/** The value codec of a built-in table; everything else under ccf.* is JSON, app tables are bytes. */
export function valueCodec(table: string): ValueCodec {
  const c = codecs[table];
  if (c !== undefined) return c;
  return table.startsWith("public:ccf.") || table.startsWith("ccf.") ? "json" : "bytes";
}

/** JSON as CCF's C++ side writes it: compact, object keys in byte order. */
export function encodeJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === "object" && !(v instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = sortKeys(x);
    }
    return out;
  }
  return v;
}

export function encodeValue(table: string, value: unknown): Buffer {
  switch (valueCodec(table)) {
    case "json":
      return Buffer.from(encodeJson(value));
    case "json-string":
      if (typeof value !== "string")
        throw new FormatError("InvalidValue", `${table} holds strings`);
      return Buffer.from(JSON.stringify(value));
    case "text":
      if (typeof value !== "string") throw new FormatError("InvalidValue", `${table} holds text`);
      return Buffer.from(value);
    case "sized-string": {
      if (typeof value !== "string")
        throw new FormatError("InvalidValue", `${table} holds strings`);
      const body = Buffer.from(value);
      const out = Buffer.alloc(8 + body.length);
      out.writeUInt32LE(body.length, 0);
      body.copy(out, 8);
      return out;
    }
    case "bytes":
      if (!(value instanceof Uint8Array))
        throw new FormatError("InvalidValue", `${table} holds bytes`);
      return Buffer.from(value);
  }
}

const decodedValues = new WeakMap<Uint8Array, { table: string; value: unknown }>();

/**
 * `decodeValue` of a value as the store holds it, for a caller that only reads the result: each
 * stored value is decoded once and the result shared (a value's bytes never change once written).
 * For the records read on every request or tick (node records, caller certificates and data),
 * which were decoded again each time. The result is deeply frozen: a caller that tried to change
 * it would throw rather than change what every later reader sees.
 */
export function decodeStoredValue(table: string, bytes: Uint8Array): unknown {
  const hit = decodedValues.get(bytes);
  if (hit !== undefined && hit.table === table) return hit.value;
  const value = deepFreeze(decodeValue(table, bytes));
  decodedValues.set(bytes, { table, value });
  return value;
}

function deepFreeze<T>(v: T): T {
  if (typeof v === "object" && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

export function decodeValue(table: string, bytes: Uint8Array): unknown {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (valueCodec(table)) {
    case "json":
    case "json-string":
      try {
        return JSON.parse(buf.toString("utf8"));
      } catch (e) {
        throw new FormatError("InvalidValue", `${table} holds a value that is not JSON`, {
          cause: e,
        });
      }
    case "text":
      return buf.toString("utf8");
    case "sized-string": {
      if (buf.length < 8)
        throw new FormatError("InvalidValue", `${table} value shorter than its size`);
      const n = buf.readUInt32LE(0);
      if (buf.readUInt32LE(4) !== 0 || 8 + n !== buf.length) {
        throw new FormatError("InvalidValue", `${table} value does not match its size prefix`);
      }
      return buf.subarray(8).toString("utf8");
    }
    case "bytes":
      return buf;
  }
}

/** Keys of id-keyed tables (members, users, nodes, proposals) are the hex id as raw text. */
export function idKey(id: string): Buffer {
  return Buffer.from(id);
}
