// The read-only half of CCF's current governance REST API (`/gov/service/*`, `/gov/members/*` GETs,
// api-version 2024-07-01 / 2023-06-01-preview): service state, members, users, nodes, the JS app,
// the join policy, JWT keys, transaction status, state digests and proposals. None needs
// authentication, as in CCF. Shapes follow CCF's handlers in src/node/gov/handlers/
// (service_state.h, transactions.h, acks.h, proposals.h).

import { createPublicKey } from "node:crypto";
import { HttpError, HttpErrors } from "../errors.js";
import { decodeValue, encodeJson, idKey, SINGLETON_KEY, Tables, type Tx } from "../kv/index.js";
import type { TxId } from "../ledger/index.js";
import { type ProposalInfo, type ProposalSummary, proposalSummary } from "../gov/index.js";
import type { NodeContext } from "./context.js";
import { parseQuery } from "./query.js";
import { parseTxId, TX_ID_HEADER, txIdString } from "./txid.js";
import type { Endpoint, EndpointRequest, EndpointResponse } from "./types.js";

/** CCF's gov API versions, oldest first (src/node/gov/api_version.h). */
export const GOV_API_VERSIONS = ["2023-06-01-preview", "2024-07-01"] as const;
export type GovApiVersion = (typeof GOV_API_VERSIONS)[number];

// Join-policy tables that only SGX/SNP constitutions write, so kv/builtin.ts does not name them.
const NODE_CODE_IDS = "public:ccf.gov.nodes.code_ids";
const SNP_MEASUREMENTS = "public:ccf.gov.nodes.snp.measurements";
const SNP_HOST_DATA = "public:ccf.gov.nodes.snp.host_data";
const SNP_UVM_ENDORSEMENTS = "public:ccf.gov.nodes.snp.uvm_endorsements";
const SNP_TCB_VERSIONS = "public:ccf.gov.nodes.snp.tcb_versions";

const ALLOWED_TO_JOIN = "AllowedToJoin";
const JAVASCRIPT = "text/javascript";

// CCF's service defaults (include/ccf/service/tables/service.h), reported when the configuration
// row leaves them out.
const DEFAULT_NODE_CERT_VALIDITY_DAYS = 365;
const DEFAULT_SERVICE_CERT_VALIDITY_DAYS = 365;
const DEFAULT_RECENT_COSE_PROPOSALS_WINDOW_SIZE = 100;

/**
 * The api-version of a request, or the HttpError CCF answers with. `min` is the oldest version the
 * endpoint accepts (the JS app endpoints only exist from 2024-07-01 on).
 */
function apiVersionOf(req: EndpointRequest, min: GovApiVersion): GovApiVersion | HttpError {
  const accepted = GOV_API_VERSIONS.slice(GOV_API_VERSIONS.indexOf(min));
  const suffix = `The supported api-versions are: ${accepted.join(", ")}`;
  const value = parseQuery(req.query).get("api-version");
  if (value === undefined) {
    return HttpErrors.MissingApiVersionParameter(
      `The api-version query parameter (?api-version=) is required for all requests. ${suffix}`,
    );
  }
  const version = accepted.find((v) => v === value);
  if (version === undefined) {
    return HttpErrors.UnsupportedApiVersionValue(`Unsupported api-version '${value}'. ${suffix}`);
  }
  return version;
}

/**
 * CCF's api-version check for gov endpoints: undefined when the request names a supported
 * version, else the 400 response (`MissingApiVersionParameter` / `UnsupportedApiVersionValue`).
 */
export function checkApiVersion(
  req: EndpointRequest,
  min: GovApiVersion = GOV_API_VERSIONS[0],
): EndpointResponse | undefined {
  const v = apiVersionOf(req, min);
  return v instanceof HttpError ? { status: v.status, body: v.toJSON() } : undefined;
}

/**
 * CCF builds these bodies as nlohmann::json objects, whose keys are ordered, so the bytes match
 * CCF's only with sorted keys (encodeJson). The TxID header is the read version, as for any
 * read-only CCF transaction.
 */
function jsonOk(ctx: NodeContext, body: unknown): EndpointResponse {
  return {
    status: 200,
    headers: { "content-type": "application/json", [TX_ID_HEADER]: txIdString(ctx.lastTxId()) },
    body: Buffer.from(encodeJson(body)),
  };
}

function rawOk(ctx: NodeContext, body: string, contentType: string): EndpointResponse {
  return {
    status: 200,
    headers: { "content-type": contentType, [TX_ID_HEADER]: txIdString(ctx.lastTxId()) },
    body: Buffer.from(body),
  };
}

const HEX_ID = /^[0-9a-fA-F]{64}$/;

/** CCF's try_parse_{member,user,node,proposal}_id: ids are 32 bytes, hex (helpers.h). */
function hexIdParam(req: EndpointRequest, name: string, kind: string): string {
  const value = req.params[name] ?? "";
  if (!HEX_ID.test(value)) {
    throw HttpErrors.InvalidResourceName(`'${value}' is not a valid hex-encoded ${kind} ID`);
  }
  return value;
}

function getJson(tx: Tx, table: string, key: Uint8Array): unknown {
  const raw = tx.map(table).get(key);
  return raw === undefined ? undefined : decodeValue(table, raw);
}

function getText(tx: Tx, table: string, key: Uint8Array): string | undefined {
  const v = getJson(tx, table, key);
  return typeof v === "string" ? v : undefined;
}

/** Values of tables other governance code may have written as JSON or as plain text. */
function jsonOrText(bytes: Uint8Array): unknown {
  const text = Buffer.from(bytes).toString("utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function keyText(key: Uint8Array): string {
  return Buffer.from(key).toString("utf8");
}

// --- members, users, nodes (service_state.h produce_*_description) --------------------------------

interface MemberInfoValue {
  status: string;
  member_data?: unknown;
  recovery_role?: string;
}

function describeMember(tx: Tx, id: string, info: MemberInfoValue): Record<string, unknown> {
  const out: Record<string, unknown> = {
    memberId: id,
    status: info.status,
    memberData: info.member_data ?? null,
  };
  const cert = getText(tx, Tables.MEMBER_CERTS, idKey(id));
  if (cert !== undefined) out.certificate = cert;
  const encKey = getText(tx, Tables.MEMBER_ENCRYPTION_KEYS, idKey(id));
  if (encKey !== undefined) out.publicEncryptionKey = encKey;
  // Members written before recovery roles existed are participants exactly when they hold a key.
  out.recoveryRole =
    info.recovery_role ?? (encKey !== undefined ? "Participant" : "NonParticipant");
  return out;
}

function describeUser(tx: Tx, id: string, cert: string): Record<string, unknown> {
  // CCF puts the whole users.info row here (`{"user_data": ...}`), or null without one.
  return {
    userId: id,
    certificate: cert,
    userData: getJson(tx, Tables.USER_INFO, idKey(id)) ?? null,
  };
}

interface NodeInfoValue {
  status: string;
  node_data?: unknown;
  retired_committed?: boolean;
  quote_info?: {
    format?: string;
    quote?: string;
    endorsements?: string;
    uvm_endorsements?: string;
    endorsed_tcb?: string;
  };
  rpc_interfaces?: Record<string, { published_address?: string; app_protocol?: string }>;
}

function describeQuote(q: NodeInfoValue["quote_info"]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  switch (q?.format) {
    case "OE_SGX_v1":
      out.format = "OE_SGX_v1";
      out.quote = q.quote ?? "";
      out.endorsements = q.endorsements ?? "";
      break;
    case "Insecure_Virtual": {
      out.format = "Insecure_Virtual";
      out.rawQuote = q.quote ?? "";
      // The virtual quote is JSON; CCF shows three of its fields (null where absent).
      const details = JSON.parse(Buffer.from(q.quote ?? "", "base64").toString("utf8")) as Record<
        string,
        unknown
      >;
      out.details = {
        measurement: details.measurement ?? null,
        reportData: details.report_data ?? null,
        hostData: details.host_data ?? null,
      };
      break;
    }
    case "AMD_SEV_SNP_v1":
      out.format = "AMD_SEV_SNP_v1";
      if (q.uvm_endorsements !== undefined) out.uvmEndorsements = q.uvm_endorsements;
      if (q.endorsed_tcb !== undefined) {
        out.endorsedTcb = Buffer.from(q.endorsed_tcb, "hex").toString("base64");
      }
      break;
    default:
      break;
  }
  return out;
}

function describeNode(tx: Tx, id: string, info: NodeInfoValue): Record<string, unknown> {
  const out: Record<string, unknown> = {
    nodeId: id,
    status: info.status,
    nodeData: info.node_data ?? null,
  };
  const cert = getText(tx, Tables.NODE_ENDORSED_CERTIFICATES, idKey(id));
  if (cert !== undefined) out.certificate = cert;
  out.retiredCommitted = info.retired_committed ?? false;
  out.quoteInfo = describeQuote(info.quote_info);
  const rpc: Record<string, Record<string, unknown>> = {};
  for (const [name, iface] of Object.entries(info.rpc_interfaces ?? {})) {
    const entry: Record<string, unknown> = { publishedAddress: iface.published_address ?? "" };
    if (iface.app_protocol !== undefined) entry.protocol = iface.app_protocol;
    rpc[name] = entry;
  }
  out.rpcInterfaces = rpc;
  return out;
}

// --- service info, JS app, join policy, JWK --------------------------------------------------------

/** The view `seqno` was written in, from the node's view history (CCF's get_view_for_seqno_v1). */
function viewOfSeqno(ctx: NodeContext, seqno: number): number {
  let view = 0;
  for (const start of ctx.viewHistory()) if (start.seqno <= seqno) view = start.view;
  return view;
}

function serviceInfo(ctx: NodeContext, tx: Tx): Record<string, unknown> {
  const info = getJson(tx, Tables.SERVICE, SINGLETON_KEY) as Record<string, unknown> | undefined;
  if (info === undefined) throw HttpErrors.ResourceNotFound("Service info not yet available");
  const out: Record<string, unknown> = {
    status: info.status,
    certificate: info.cert,
    recoveryCount: info.recovery_count ?? 0,
  };
  if (info.current_service_create_txid !== undefined) {
    out.creationTransactionId = info.current_service_create_txid;
  }
  if (typeof info.previous_service_identity_version === "number") {
    const seqno = info.previous_service_identity_version;
    out.previousServiceCreationTransactionId = txIdString({
      view: viewOfSeqno(ctx, seqno),
      seqno,
    });
  }
  out.serviceData = info.service_data ?? null;
  const config = getJson(tx, Tables.CONFIGURATION, SINGLETON_KEY) as
    | Record<string, unknown>
    | undefined;
  if (config !== undefined) {
    out.configuration = {
      recoveryThreshold: config.recovery_threshold,
      maximumNodeCertificateValidityDays:
        config.maximum_node_certificate_validity_days ?? DEFAULT_NODE_CERT_VALIDITY_DAYS,
      maximumServiceCertificateValidityDays:
        config.maximum_service_certificate_validity_days ?? DEFAULT_SERVICE_CERT_VALIDITY_DAYS,
      recentCoseProposalsWindowSize:
        config.recent_cose_proposals_window_size ?? DEFAULT_RECENT_COSE_PROPOSALS_WINDOW_SIZE,
    };
  }
  return out;
}

function javascriptApp(tx: Tx, originalCase: boolean): Record<string, unknown> {
  const endpoints: Record<string, Record<string, unknown>> = {};
  tx.map(Tables.ENDPOINTS).forEach((value, key) => {
    // Keys are "VERB /path" (see node/bundle.ts).
    const k = keyText(key);
    const space = k.indexOf(" ");
    const verb = k.slice(0, space);
    const path = k.slice(space + 1);
    const props = decodeValue(Tables.ENDPOINTS, value) as Record<string, unknown>;
    const ops = endpoints[path] ?? {};
    ops[verb] = originalCase
      ? props
      : {
          // EndpointProperties' defaults (include/ccf/endpoint.h) for fields the row leaves out.
          jsModule: props.js_module ?? "",
          jsFunction: props.js_function ?? "",
          forwardingRequired: props.forwarding_required ?? "always",
          redirectionStrategy: props.redirection_strategy ?? "to_primary",
          authnPolicies: props.authn_policies ?? [],
          mode: props.mode ?? "readwrite",
          openApi: props.openapi ?? null,
        };
    endpoints[path] = ops;
  });
  return { endpoints };
}

function joinPolicy(tx: Tx): Record<string, unknown> {
  const allowedKeys = (table: string): string[] => {
    const out: string[] = [];
    tx.map(table).forEach((value, key) => {
      if (jsonOrText(value) === ALLOWED_TO_JOIN) out.push(keyText(key));
    });
    return out;
  };
  const keyed = (table: string): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    tx.map(table).forEach((value, key) => {
      out[keyText(key)] = jsonOrText(value);
    });
    return out;
  };
  const virtualHostData: string[] = [];
  tx.map(Tables.VIRTUAL_HOST_DATA).forEach((_value, key) => {
    virtualHostData.push(keyText(key));
  });
  return {
    sgx: { measurements: allowedKeys(NODE_CODE_IDS) },
    virtual: {
      measurements: allowedKeys(Tables.VIRTUAL_MEASUREMENTS),
      hostData: virtualHostData,
    },
    snp: {
      measurements: allowedKeys(SNP_MEASUREMENTS),
      hostData: keyed(SNP_HOST_DATA),
      uvmEndorsements: keyed(SNP_UVM_ENDORSEMENTS),
      tcbVersions: keyed(SNP_TCB_VERSIONS),
    },
  };
}

interface JwkMetadata {
  public_key: string;
  issuer: string;
  constraint?: string;
}

function jwk(tx: Tx): Record<string, unknown> {
  const issuers: Record<string, unknown> = {};
  tx.map(Tables.JWT_ISSUERS).forEach((value, key) => {
    const meta = decodeValue(Tables.JWT_ISSUERS, value) as {
      auto_refresh?: boolean;
      ca_cert_bundle_name?: string;
    };
    const issuer: Record<string, unknown> = { autoRefresh: meta.auto_refresh ?? false };
    if (meta.ca_cert_bundle_name !== undefined) issuer.caCertBundleName = meta.ca_cert_bundle_name;
    issuers[keyText(key)] = issuer;
  });
  const keys: Record<string, unknown> = {};
  tx.map(Tables.JWT_PUBLIC_SIGNING_KEYS_METADATA).forEach((value, key) => {
    const list = decodeValue(Tables.JWT_PUBLIC_SIGNING_KEYS_METADATA, value) as JwkMetadata[];
    keys[keyText(key)] = list.map((m) => ({
      // Stored as base64 DER SubjectPublicKeyInfo; CCF shows it as PEM.
      publicKey: createPublicKey({
        key: Buffer.from(m.public_key, "base64"),
        format: "der",
        type: "spki",
      }).export({ format: "pem", type: "spki" }),
      issuer: m.issuer,
      constraint: m.constraint ?? null,
    }));
  });
  const caCertBundles: Record<string, unknown> = {};
  tx.map(Tables.CA_CERT_BUNDLES).forEach((value, key) => {
    caCertBundles[keyText(key)] = decodeValue(Tables.CA_CERT_BUNDLES, value);
  });
  return { issuers, keys, caCertBundles };
}

// --- the endpoints ---------------------------------------------------------------------------------

/** Every GET of CCF's current gov API. */
export function govReadEndpoints(ctx: NodeContext): Endpoint[] {
  /** A GET that checks the api-version first, as CCF's api_version_adapter does. */
  const get = (
    path: string,
    summary: string,
    handler: (req: EndpointRequest) => EndpointResponse,
    min: GovApiVersion = GOV_API_VERSIONS[0],
  ): Endpoint => ({
    method: "GET",
    path,
    openapi: { summary },
    handler: (req) => {
      const version = apiVersionOf(req, min);
      if (version instanceof HttpError) throw version;
      return handler(req);
    },
  });

  const proposalInfo = (tx: Tx, id: string): ProposalInfo | undefined =>
    getJson(tx, Tables.PROPOSALS_INFO, idKey(id)) as ProposalInfo | undefined;

  return [
    get("/gov/service/info", "Service information", () =>
      jsonOk(ctx, serviceInfo(ctx, ctx.store.begin())),
    ),
    get("/gov/service/constitution", "The constitution", () => {
      const text = getText(ctx.store.begin(), Tables.CONSTITUTION, SINGLETON_KEY);
      if (text === undefined) throw HttpErrors.ResourceNotFound("Constitution not found");
      return rawOk(ctx, text, JAVASCRIPT);
    }),
    get(
      "/gov/service/javascript-app",
      "The JavaScript application's endpoints",
      (req) => {
        const c = parseQuery(req.query).get("case");
        if (c !== undefined && c !== "original") {
          throw HttpErrors.InvalidQueryParameterValue(
            "Accepted values for the 'case' query parameter are: original",
          );
        }
        return jsonOk(ctx, javascriptApp(ctx.store.begin(), c !== undefined));
      },
      "2024-07-01",
    ),
    get(
      "/gov/service/javascript-modules",
      "Names of the JavaScript modules",
      () => {
        const value: Array<{ moduleName: string }> = [];
        ctx.store
          .begin()
          .map(Tables.MODULES)
          .forEach((_v, key) => {
            value.push({ moduleName: keyText(key) });
          });
        return jsonOk(ctx, { value });
      },
      "2024-07-01",
    ),
    get(
      "/gov/service/javascript-modules/{moduleName}",
      "One JavaScript module's source",
      (req) => {
        // Module names start with "/", so clients send them percent-encoded.
        const raw = req.params.moduleName ?? "";
        let name = raw;
        try {
          name = decodeURIComponent(raw);
        } catch {
          // not valid percent-encoding: look the name up as sent
        }
        const text = getText(ctx.store.begin(), Tables.MODULES, Buffer.from(name));
        if (text === undefined) throw HttpErrors.ResourceNotFound(`Module ${name} does not exist.`);
        return rawOk(ctx, text, JAVASCRIPT);
      },
      "2024-07-01",
    ),
    get("/gov/service/join-policy", "Policy for nodes joining", () =>
      jsonOk(ctx, joinPolicy(ctx.store.begin())),
    ),
    get("/gov/service/jwk", "JWT issuers, signing keys and CA bundles", () =>
      jsonOk(ctx, jwk(ctx.store.begin())),
    ),
    get("/gov/service/members", "All members", () => {
      const tx = ctx.store.begin();
      const value: unknown[] = [];
      tx.map(Tables.MEMBER_INFO).forEach((v, key) => {
        const info = decodeValue(Tables.MEMBER_INFO, v) as MemberInfoValue;
        value.push(describeMember(tx, keyText(key), info));
      });
      return jsonOk(ctx, { value });
    }),
    get("/gov/service/members/{memberId}", "One member", (req) => {
      const id = hexIdParam(req, "memberId", "member");
      const tx = ctx.store.begin();
      const info = getJson(tx, Tables.MEMBER_INFO, idKey(id)) as MemberInfoValue | undefined;
      if (info === undefined) throw HttpErrors.ResourceNotFound(`Member ${id} does not exist.`);
      return jsonOk(ctx, describeMember(tx, id, info));
    }),
    get("/gov/service/users", "All users", () => {
      const tx = ctx.store.begin();
      const value: unknown[] = [];
      tx.map(Tables.USER_CERTS).forEach((v, key) => {
        value.push(describeUser(tx, keyText(key), decodeValue(Tables.USER_CERTS, v) as string));
      });
      return jsonOk(ctx, { value });
    }),
    get("/gov/service/users/{userId}", "One user", (req) => {
      const id = hexIdParam(req, "userId", "user");
      const tx = ctx.store.begin();
      const cert = getText(tx, Tables.USER_CERTS, idKey(id));
      if (cert === undefined) throw HttpErrors.ResourceNotFound(`User ${id} does not exist.`);
      return jsonOk(ctx, describeUser(tx, id, cert));
    }),
    get("/gov/service/nodes", "All nodes", () => {
      const tx = ctx.store.begin();
      const value: unknown[] = [];
      tx.map(Tables.NODES).forEach((v, key) => {
        value.push(describeNode(tx, keyText(key), decodeValue(Tables.NODES, v) as NodeInfoValue));
      });
      return jsonOk(ctx, { value });
    }),
    get("/gov/service/nodes/{nodeId}", "One node", (req) => {
      const id = hexIdParam(req, "nodeId", "node");
      const tx = ctx.store.begin();
      const info = getJson(tx, Tables.NODES, idKey(id)) as NodeInfoValue | undefined;
      if (info === undefined) throw HttpErrors.ResourceNotFound(`Node ${id} does not exist.`);
      return jsonOk(ctx, describeNode(tx, id, info));
    }),
    // Command endpoints in CCF (no KV transaction), so no TxID header.
    get("/gov/service/transactions/commit", "Last committed transaction", () => {
      const id: TxId = ctx.commitTxId();
      return { status: 200, body: { status: ctx.txStatus(id), transactionId: txIdString(id) } };
    }),
    get("/gov/service/transactions/{transactionId}", "Status of a transaction", (req) => {
      const raw = req.params.transactionId ?? "";
      const id = parseTxId(raw);
      if (id === undefined) {
        throw HttpErrors.InvalidQueryParameterValue(
          `The value '${raw}' passed as parameter 'transactionId' could not be converted to a valid Transaction ID.`,
        );
      }
      return { status: 200, body: { status: ctx.txStatus(id), transactionId: txIdString(id) } };
    }),
    get("/gov/members/state-digests/{memberId}", "Get a member's state digest", (req) => {
      // CCF does not check this id's form here, only whether an ack row exists (acks.h).
      const id = req.params.memberId ?? "";
      const ack = getJson(ctx.store.begin(), Tables.MEMBER_ACKS, idKey(id)) as
        | { state_digest?: string }
        | undefined;
      if (ack === undefined) {
        throw HttpErrors.ResourceNotFound(`No ACK record exists for member ${id}.`);
      }
      return jsonOk(ctx, { memberId: id, stateDigest: ack.state_digest ?? "" });
    }),
    get("/gov/members/proposals", "All proposals", () => {
      const value: ProposalSummary[] = [];
      ctx.store
        .begin()
        .map(Tables.PROPOSALS_INFO)
        .forEach((v, key) => {
          value.push(
            proposalSummary(keyText(key), decodeValue(Tables.PROPOSALS_INFO, v) as ProposalInfo),
          );
        });
      return jsonOk(ctx, { value });
    }),
    get("/gov/members/proposals/{proposalId}", "One proposal", (req) => {
      const id = hexIdParam(req, "proposalId", "proposal");
      const info = proposalInfo(ctx.store.begin(), id);
      if (info === undefined) throw HttpErrors.ProposalNotFound(`Could not find proposal ${id}.`);
      return jsonOk(ctx, proposalSummary(id, info));
    }),
    get("/gov/members/proposals/{proposalId}/actions", "A proposal's body", (req) => {
      const id = hexIdParam(req, "proposalId", "proposal");
      const raw = ctx.store.begin().map(Tables.PROPOSALS).get(idKey(id));
      if (raw === undefined) throw HttpErrors.ProposalNotFound(`Could not find proposal ${id}.`);
      // The proposal exactly as submitted. CCF sets no content type; proposals are JSON.
      return {
        status: 200,
        headers: {
          "content-type": "application/json",
          [TX_ID_HEADER]: txIdString(ctx.lastTxId()),
        },
        body: Buffer.from(raw),
      };
    }),
    get(
      "/gov/members/proposals/{proposalId}/ballots/{memberId}",
      "A member's ballot on a proposal",
      (req) => {
        const proposalId = hexIdParam(req, "proposalId", "proposal");
        const memberId = hexIdParam(req, "memberId", "member");
        const info = proposalInfo(ctx.store.begin(), proposalId);
        if (info === undefined) {
          throw HttpErrors.ProposalNotFound(`Proposal ${proposalId} does not exist.`);
        }
        const ballot = Object.hasOwn(info.ballots ?? {}, memberId)
          ? info.ballots?.[memberId]
          : undefined;
        if (ballot === undefined) {
          throw HttpErrors.VoteNotFound(
            `Member ${memberId} has not voted for proposal ${proposalId}.`,
          );
        }
        return rawOk(ctx, ballot, JAVASCRIPT);
      },
    ),
  ];
}
