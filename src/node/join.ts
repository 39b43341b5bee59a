// Joining a service: what a new node sends to `POST /node/join`, how the primary admits it
// (virtual attestation checked against the governance tables; trusted at once while the service
// is Opening, Pending once it is Open), and what a trusted joiner receives over TLS: the service
// identity, the ledger secrets and its endorsed certificate.

import { Agent, request } from "undici";
import {
  createEndorsedCertificate,
  EcKeyPair,
  nodeIdFromPublicKey,
  parseSubjectAltName,
  publicKeyFromPem,
  sha256,
} from "../crypto/index.js";
import { HttpError, HttpErrors } from "../errors.js";
import { decodeValue, encodeValue, idKey, SINGLETON_KEY, Tables, type Tx } from "../kv/index.js";
import type { LedgerSecrets } from "../ledger/index.js";

export interface JoinRequest {
  /** The record the node will have in `public:ccf.gov.nodes.info` (its status is decided here). */
  node_info: Record<string, unknown>;
  /** For the endorsed certificate. */
  subject_name: string;
  subject_alt_names: string[];
}

export interface NetworkInfo {
  service_certificate: string;
  service_key: string;
  ledger_secrets: Array<{ version: number; key: string }>;
  endorsed_certificate: string;
  /** Other nodes' node-to-node addresses, to reach the primary before replication says more. */
  nodes: Record<string, string>;
}

export interface JoinResponse {
  node_id: string;
  node_status: "Trusted" | "Pending";
  network_info?: NetworkInfo;
}

export interface AdmitContext {
  serviceKey: EcKeyPair;
  serviceCert: string;
  secrets: LedgerSecrets;
  now: Date;
  validityDays: number;
}

/** CCF answers a quote it does not accept with 401 InvalidQuote. */
function invalidQuote(message: string): HttpError {
  return new HttpError(401, "InvalidQuote", message);
}

function bad(message: string): HttpError {
  return HttpErrors.InvalidInput(message);
}

function parseJoinRequest(body: unknown): JoinRequest {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw bad("The join request must be a JSON object");
  }
  const b = body as Record<string, unknown>;
  const info = b.node_info;
  if (info === null || typeof info !== "object" || Array.isArray(info)) {
    throw bad("node_info must be an object");
  }
  if (typeof b.subject_name !== "string") throw bad("subject_name must be a string");
  if (
    !Array.isArray(b.subject_alt_names) ||
    !b.subject_alt_names.every((s) => typeof s === "string")
  ) {
    throw bad("subject_alt_names must be a list of strings");
  }
  const i = info as Record<string, unknown>;
  if (typeof i.public_key !== "string") throw bad("node_info.public_key must be a PEM string");
  const quote = i.quote_info as Record<string, unknown> | undefined;
  if (
    quote === undefined ||
    typeof quote.quote !== "string" ||
    quote.format !== "Insecure_Virtual"
  ) {
    throw bad("node_info.quote_info must be a virtual quote");
  }
  return {
    node_info: i,
    subject_name: b.subject_name,
    subject_alt_names: b.subject_alt_names,
  };
}

/**
 * The virtual attestation: its report data must bind the node's public key, and its measurement
 * and host data must be allowed by governance (`nodes.virtual.measurements` / `host_data`).
 */
function checkQuote(tx: Tx, info: Record<string, unknown>, publicKeyDer: Buffer): void {
  const raw = (info.quote_info as { quote: string }).quote;
  let quote: Record<string, unknown>;
  try {
    quote = JSON.parse(Buffer.from(raw, "base64").toString("utf8")) as Record<string, unknown>;
  } catch {
    throw bad("The virtual quote is not base64 JSON");
  }
  if (quote.report_data !== sha256(publicKeyDer).toString("base64")) {
    throw invalidQuote("Quote report data does not match the node's public key");
  }
  if (
    typeof quote.measurement !== "string" ||
    !tx.map(Tables.VIRTUAL_MEASUREMENTS).has(Buffer.from(quote.measurement))
  ) {
    throw invalidQuote("Quote measurement is not allowed by governance");
  }
  if (
    typeof quote.host_data !== "string" ||
    !tx.map(Tables.VIRTUAL_HOST_DATA).has(Buffer.from(quote.host_data))
  ) {
    throw invalidQuote("Quote host data is not allowed by governance");
  }
}

function otherNodes(tx: Tx, self: string): Record<string, string> {
  const out: Record<string, string> = {};
  tx.map(Tables.NODES).forEach((value, key) => {
    const id = Buffer.from(key).toString("utf8");
    if (id === self) return;
    const info = decodeValue(Tables.NODES, value) as {
      status?: string;
      node_to_node_interface?: { published_address?: string };
    };
    const address = info.node_to_node_interface?.published_address;
    if (address !== undefined && info.status !== "Retired") out[id] = address;
  });
  return out;
}

/** The primary's side of `POST /node/join`, in the request's transaction. */
export async function admitJoiner(tx: Tx, body: unknown, ctx: AdmitContext): Promise<JoinResponse> {
  const req = parseJoinRequest(body);
  let publicKeyDer: Buffer;
  try {
    publicKeyDer = Buffer.from(
      publicKeyFromPem(req.node_info.public_key as string).export({ type: "spki", format: "der" }),
    );
  } catch {
    throw bad("node_info.public_key is not a public key");
  }
  checkQuote(tx, req.node_info, publicKeyDer);
  const nodeId = nodeIdFromPublicKey(publicKeyFromPem(req.node_info.public_key as string));
  const nodes = tx.map(Tables.NODES);
  const existing = nodes.get(idKey(nodeId));
  let status: string;
  if (existing !== undefined) {
    status = String((decodeValue(Tables.NODES, existing) as { status?: string }).status);
  } else {
    const service = tx.map(Tables.SERVICE).get(SINGLETON_KEY);
    const serviceStatus =
      service === undefined
        ? undefined
        : (decodeValue(Tables.SERVICE, service) as { status?: string }).status;
    if (serviceStatus === "Recovering" || serviceStatus === "WaitingForRecoveryShares") {
      // A node would need the old ledger secrets, which come back only with the members'
      // shares: it joins once the service is open (the joiner retries on 503).
      throw new HttpError(
        503,
        "ServiceRecovering",
        "The service is recovering its private ledger: nodes can join once it is open",
      );
    }
    status = serviceStatus === "Opening" ? "Trusted" : "Pending";
    nodes.set(idKey(nodeId), encodeValue(Tables.NODES, { ...req.node_info, status }));
    if (status === "Trusted") {
      const cert = await createEndorsedCertificate({
        subjectPublicKey: publicKeyFromPem(req.node_info.public_key as string),
        subjectName: req.subject_name,
        sans: req.subject_alt_names.map(parseSubjectAltName),
        issuerKey: ctx.serviceKey,
        issuerCertPem: ctx.serviceCert,
        validFrom: ctx.now,
        validityDays: ctx.validityDays,
      });
      tx.map(Tables.NODE_ENDORSED_CERTIFICATES).set(
        idKey(nodeId),
        encodeValue(Tables.NODE_ENDORSED_CERTIFICATES, cert),
      );
    }
  }
  if (status !== "Trusted") {
    if (status === "Pending") return { node_id: nodeId, node_status: "Pending" };
    throw HttpErrors.AuthorizationFailed(`Node ${nodeId} is ${status} and cannot join`);
  }
  const endorsed = tx.map(Tables.NODE_ENDORSED_CERTIFICATES).get(idKey(nodeId));
  if (endorsed === undefined) {
    throw HttpErrors.InternalError(`Node ${nodeId} is Trusted but has no endorsed certificate`);
  }
  return {
    node_id: nodeId,
    node_status: "Trusted",
    network_info: {
      service_certificate: ctx.serviceCert,
      service_key: ctx.serviceKey.privateKeyPem,
      ledger_secrets: ctx.secrets.all().map((s) => ({
        version: s.version,
        key: Buffer.from(s.key).toString("base64"),
      })),
      endorsed_certificate: decodeValue(Tables.NODE_ENDORSED_CERTIFICATES, endorsed) as string,
      nodes: otherNodes(tx, nodeId),
    },
  };
}

/** The joiner's side: asks `target` until it is trusted (or `deadline` passes). */
export async function requestJoin(args: {
  target: string;
  serviceCertPem: string;
  body: JoinRequest;
  retryMs: number;
  deadline: number;
  stopped: () => boolean;
  onPending?: () => void;
}): Promise<JoinResponse & { network_info: NetworkInfo }> {
  const agent = new Agent({ connect: { ca: args.serviceCertPem } });
  let last = "no answer yet";
  try {
    while (!args.stopped() && Date.now() < args.deadline) {
      try {
        const res = await request(`https://${args.target}/node/join`, {
          dispatcher: agent,
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(args.body),
        });
        const text = await res.body.text();
        if (res.statusCode === 200) {
          const out = JSON.parse(text) as JoinResponse;
          if (out.node_status === "Trusted" && out.network_info !== undefined) {
            return out as JoinResponse & { network_info: NetworkInfo };
          }
          args.onPending?.();
          last = `node is ${out.node_status}`;
        } else {
          last = `${res.statusCode} ${text}`;
          if (res.statusCode >= 400 && res.statusCode < 500) {
            throw new HttpError(res.statusCode, "JoinRefused", `join refused: ${text}`);
          }
        }
      } catch (e) {
        if (e instanceof HttpError) throw e;
        last = e instanceof Error ? e.message : String(e);
      }
      await new Promise((r) => setTimeout(r, args.retryMs));
    }
  } finally {
    await agent.close();
  }
  throw new HttpError(503, "JoinFailed", `could not join via ${args.target}: ${last}`);
}

export function secretsFrom(info: NetworkInfo): Array<{ key: Buffer; version: number }> {
  return info.ledger_secrets.map((s) => ({
    key: Buffer.from(s.key, "base64"),
    version: s.version,
  }));
}

export function serviceKeyFrom(info: NetworkInfo): EcKeyPair {
  return EcKeyPair.fromPem(info.service_key);
}
