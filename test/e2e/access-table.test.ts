// Who may call what (issue #14): every built-in endpoint a node serves under /node, /gov and /app,
// and every endpoint of the logging sample, called with no client certificate, as a user, as a
// member and with a certificate the service does not know. The expected outcome of each call is
// CCF's: node and gov reads and the common endpoints need no authentication
// (src/node/rpc/node_frontend.h, src/endpoints/common_endpoint_registry.cpp, gov handlers), member
// writes need a valid COSE Sign1 from a member whatever TLS certificate carries them
// (active_member_cose_sign1 / member_cose_sign1), app endpoints follow their `authn_policies`.
// The table is checked against the OpenAPI documents the node serves, so a new endpoint cannot
// go unlisted. Last, app code cannot write governance or internal tables, nor read private ones
// (doc/audit/read_write_restrictions.rst: app endpoints get RO on public internal and gov maps,
// nothing on private ones).

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import { certificateId } from "../../src/crypto/index.js";
import { signGovMessage } from "../../src/gov/index.js";
import { clientAgent, makeMemberAndUser } from "../helpers/identities.js";
import { singleNodeConfig } from "../helpers/node-config.js";
import { runCcfTs, startNode, waitFor } from "../helpers/process.js";

const LOGGING_APP = join(import.meta.dirname, "../../samples/apps/logging/dist/bundle.json");
const API = "api-version=2024-07-01";
const TXID_HEADER = "x-ms-ccf-transaction-id";

type Caller = "none" | "user" | "member" | "stranger";
const CALLERS: readonly Caller[] = ["none", "user", "member", "stranger"];

/**
 * "ok": the caller got through (2xx/3xx, or an error about the input such as 400 or 404 for an
 * unknown id); "unauthenticated": 401; "forbidden": 403.
 */
type Outcome = "ok" | "unauthenticated" | "forbidden";
type Expect = Record<Caller, Outcome>;

/** No authentication: anyone. */
const OPEN: Expect = { none: "ok", user: "ok", member: "ok", stranger: "ok" };
/** `user_cert` (alone, or with `jwt` and no token sent). */
const USER: Expect = {
  none: "unauthenticated",
  user: "ok",
  member: "unauthenticated",
  stranger: "unauthenticated",
};
/** A COSE-signed member write without a valid member signature: 401 whatever the TLS certificate. */
const COSE: Expect = {
  none: "unauthenticated",
  user: "unauthenticated",
  member: "unauthenticated",
  stranger: "unauthenticated",
};

type Method = "GET" | "HEAD" | "POST" | "DELETE";

/** How the request body is made; `cose` is a governance COSE Sign1 signed by that identity's key. */
type Body =
  | { json: unknown }
  | { text: string }
  | { cose: "stranger" | "user0" | "member0"; msgType: string; proposalId?: boolean };

interface Row {
  method: Method;
  /** The path template, exactly as the frontend's `/api` lists it. */
  path: string;
  /** Query string; `{name}` is replaced as in the path. */
  query?: string;
  headers?: Record<string, string>;
  body?: Body;
  expect: Expect;
  /** Why this row is here twice, or what it checks beyond the caller. */
  note?: string;
  /**
   * Set where ccf-ts differs from CCF (a `// DIFFERS FROM CCF:` comment says how): `expect` is
   * still CCF's, and the row runs as a TODO until ccf-ts is fixed.
   */
  differs?: string;
}

// Concrete values for path parameters and queries, filled in once the node runs.
const P: Record<string, string> = {
  // No such proposal or snapshot: the answer is a 404 about the input, after authentication.
  proposalId: "0".repeat(64),
  snapshot_name: "snapshot_1_2.committed",
  id: "7",
  attempt: "gov_public_read",
  file: "console.js",
};

const NODE_ROWS: Row[] = [
  { method: "GET", path: "/node/state", expect: OPEN },
  { method: "GET", path: "/node/network", expect: OPEN },
  { method: "GET", path: "/node/network/nodes", expect: OPEN },
  { method: "GET", path: "/node/network/nodes", query: "host=127.0.0.1", expect: OPEN },
  { method: "GET", path: "/node/network/nodes/self", expect: OPEN },
  { method: "GET", path: "/node/network/nodes/primary", expect: OPEN },
  { method: "GET", path: "/node/network/nodes/{node_id}", expect: OPEN },
  // CCF: no_auth_required; a node that is not completely retired is a 400 (input), not a 401/403.
  { method: "DELETE", path: "/node/network/nodes/{node_id}", expect: OPEN },
  { method: "GET", path: "/node/network/removable_nodes", expect: OPEN },
  { method: "GET", path: "/node/primary", expect: OPEN },
  { method: "GET", path: "/node/backup", expect: OPEN },
  { method: "GET", path: "/node/consensus", expect: OPEN },
  { method: "GET", path: "/node/version", expect: OPEN },
  { method: "GET", path: "/node/ready/app", expect: OPEN },
  { method: "GET", path: "/node/ready/gov", expect: OPEN },
  { method: "GET", path: "/node/quotes", expect: OPEN },
  { method: "GET", path: "/node/quotes/self", expect: OPEN },
  { method: "GET", path: "/node/attestations", expect: OPEN },
  { method: "GET", path: "/node/attestations/self", expect: OPEN },
  { method: "GET", path: "/node/self_signed_certificate", expect: OPEN },
  // 404 ResourceNotFound on a service that recovered none: an answer, not an unknown path.
  { method: "GET", path: "/node/service/previous_identity", expect: OPEN },
  { method: "GET", path: "/node/service/configuration", expect: OPEN },
  { method: "GET", path: "/node/config", expect: OPEN },
  { method: "GET", path: "/node/memory", expect: OPEN },
  { method: "GET", path: "/node/js_metrics", expect: OPEN },
  { method: "GET", path: "/node/index/strategies", expect: OPEN },
  { method: "HEAD", path: "/node/primary", expect: OPEN },
  { method: "GET", path: "/node/metrics", expect: OPEN },
  { method: "GET", path: "/node/metrics/prometheus", expect: OPEN, note: "beyond CCF" },
  { method: "GET", path: "/node/console", expect: OPEN, note: "beyond CCF: the web console" },
  { method: "GET", path: "/node/console/{file}", expect: OPEN, note: "beyond CCF" },
  { method: "GET", path: "/node/ledger/chunks", expect: OPEN, note: "beyond CCF" },
  { method: "GET", path: "/node/network/consensus", expect: OPEN, note: "beyond CCF" },
  { method: "GET", path: "/node/jwt_keys/refresh/metrics", expect: OPEN },
  { method: "HEAD", path: "/node/snapshot", expect: OPEN },
  { method: "GET", path: "/node/snapshot", expect: OPEN },
  { method: "HEAD", path: "/node/snapshot/{snapshot_name}", expect: OPEN },
  { method: "GET", path: "/node/snapshot/{snapshot_name}", expect: OPEN },
  // CCF: no_auth_required (the joiner is known by its TLS certificate); an empty body is a 400.
  { method: "POST", path: "/node/join", body: { json: {} }, expect: OPEN },
  { method: "GET", path: "/node/commit", expect: OPEN },
  { method: "GET", path: "/node/tx", query: "transaction_id={txid}", expect: OPEN },
  { method: "GET", path: "/node/receipt", query: "transaction_id={txid}", expect: OPEN },
  { method: "GET", path: "/node/api", expect: OPEN },
  { method: "GET", path: "/node/api/metrics", expect: OPEN },
];

/** A gov read: no authentication in CCF, api-version required. */
function govRead(path: string, query = API): Row {
  return { method: "GET", path, query, expect: OPEN };
}

/**
 * A member write, sent without COSE (JSON), then COSE-signed by someone who is not a member, and
 * for the writes that need an Active member, signed by member0, who has not acked yet (Accepted).
 */
function govWrite(path: string, msgType: string, proposalId = false): Row[] {
  const post = (body: Body, note: string): Row => ({
    method: "POST",
    path,
    query: API,
    body,
    expect: COSE,
    note,
  });
  return [
    post({ json: {} }, "not COSE"),
    post({ cose: "stranger", msgType, proposalId }, "COSE signed by an unknown key"),
    post({ cose: "user0", msgType, proposalId }, "COSE signed by a user"),
    ...(msgType === "ack" || msgType === "state_digest"
      ? []
      : [post({ cose: "member0", msgType, proposalId }, "COSE signed by an Accepted member")]),
  ];
}

const GOV_ROWS: Row[] = [
  govRead("/gov/service/info"),
  govRead("/gov/service/constitution"),
  govRead("/gov/service/javascript-app"),
  govRead("/gov/service/javascript-modules"),
  govRead("/gov/service/javascript-modules/{moduleName}"),
  govRead("/gov/service/join-policy"),
  govRead("/gov/service/jwk"),
  govRead("/gov/service/members"),
  govRead("/gov/service/members/{memberId}"),
  govRead("/gov/service/users"),
  govRead("/gov/service/users/{userId}"),
  govRead("/gov/service/nodes"),
  govRead("/gov/service/nodes/{nodeId}"),
  govRead("/gov/service/transactions/commit"),
  govRead("/gov/service/transactions/{transactionId}"),
  govRead("/gov/members/state-digests/{memberId}"),
  govRead("/gov/members/proposals"),
  govRead("/gov/members/proposals/{proposalId}"),
  govRead("/gov/members/proposals/{proposalId}/actions"),
  govRead("/gov/members/proposals/{proposalId}/ballots/{memberId}"),
  govRead("/gov/recovery/encrypted-shares/{memberId}"),
  // The common endpoints take no api-version (CCF's CommonEndpointRegistry).
  { method: "GET", path: "/gov/commit", expect: OPEN },
  { method: "GET", path: "/gov/tx", query: "transaction_id={txid}", expect: OPEN },
  { method: "GET", path: "/gov/receipt", query: "transaction_id={txid}", expect: OPEN },
  { method: "GET", path: "/gov/api", expect: OPEN },
  { method: "GET", path: "/gov/api/metrics", expect: OPEN },
  ...govWrite("/gov/members/proposals:create", "proposal"),
  ...govWrite("/gov/members/proposals/{proposalId}:withdraw", "withdrawal", true),
  ...govWrite("/gov/members/proposals/{proposalId}/ballots/{memberId}:submit", "ballot", true),
  ...govWrite("/gov/members/state-digests/{memberId}:update", "state_digest"),
  ...govWrite("/gov/members/state-digests/{memberId}:ack", "ack"),
  ...govWrite("/gov/recovery/members/{memberId}:recover", "recovery_share"),
  {
    method: "POST",
    path: "/gov/members/proposals:create",
    body: { json: {} },
    expect: COSE,
    note: "no api-version, not COSE",
  },
];

/** Entries written by the logging sample's records endpoints. */
const RECORD = { id: 7, msg: "access table" };

const APP_ROWS: Row[] = [
  { method: "GET", path: "/app/commit", expect: OPEN },
  { method: "GET", path: "/app/tx", query: "transaction_id={txid}", expect: OPEN },
  { method: "GET", path: "/app/receipt", query: "transaction_id={txid}", expect: OPEN },
  { method: "GET", path: "/app/api", expect: OPEN },
  { method: "GET", path: "/app/api/metrics", expect: OPEN },
  // The logging sample (samples/apps/logging/app.json): ["jwt", "user_cert"] unless said otherwise.
  { method: "POST", path: "/app/log/private", body: { json: RECORD }, expect: USER },
  { method: "GET", path: "/app/log/private", query: "id={id}", expect: USER },
  { method: "GET", path: "/app/log/private/backup", query: "id={id}", expect: USER },
  { method: "GET", path: "/app/log/private/count", expect: USER },
  {
    method: "POST",
    path: "/app/log/private/prefix_cert",
    body: { json: RECORD },
    expect: USER,
  },
  {
    method: "POST",
    path: "/app/log/private/raw_text/{id}",
    body: { text: "raw" },
    expect: USER,
  },
  // ["user_cert"], and the handler itself refuses users without `isAdmin` in their user_data.
  {
    method: "POST",
    path: "/app/log/private/admin_only",
    body: { json: RECORD },
    expect: { ...USER, user: "forbidden" },
  },
  // ["no_auth"]
  {
    method: "POST",
    path: "/app/log/private/anonymous",
    body: { json: RECORD },
    expect: OPEN,
  },
  {
    method: "GET",
    path: "/app/log/private/historical",
    query: "id={id}",
    headers: { [TXID_HEADER]: "{txid}" },
    expect: USER,
  },
  {
    method: "GET",
    path: "/app/log/private/historical",
    query: "id={id}",
    expect: USER,
    note: "no transaction id header",
  },
  {
    method: "GET",
    path: "/app/log/private/historical_receipt",
    query: "id={id}",
    headers: { [TXID_HEADER]: "{txid}" },
    expect: USER,
  },
  {
    method: "GET",
    path: "/app/log/private/historical/range",
    query: "id={id}&from_seqno=1&to_seqno={seqno}",
    expect: USER,
  },
  { method: "DELETE", path: "/app/log/private", query: "id={id}", expect: USER },
  { method: "DELETE", path: "/app/log/private/all", expect: USER },
  { method: "POST", path: "/app/log/public", body: { json: RECORD }, expect: USER },
  { method: "GET", path: "/app/log/public", query: "id={id}", expect: USER },
  { method: "GET", path: "/app/log/public/backup", query: "id={id}", expect: USER },
  { method: "GET", path: "/app/log/public/count", expect: USER },
  {
    method: "GET",
    path: "/app/log/public/historical",
    query: "id={id}",
    headers: { [TXID_HEADER]: "{txid}" },
    expect: USER,
  },
  {
    method: "GET",
    path: "/app/log/public/historical_receipt",
    query: "id={id}",
    headers: { [TXID_HEADER]: "{txid}" },
    expect: USER,
  },
  {
    method: "GET",
    path: "/app/log/public/historical/range",
    query: "id={id}&from_seqno=1&to_seqno={seqno}",
    expect: USER,
  },
  { method: "DELETE", path: "/app/log/public", query: "id={id}", expect: USER },
  { method: "DELETE", path: "/app/log/public/all", expect: USER },
  // [all_of[user_cert, jwt, user_cose_sign1], user_cert, member_cert, any_cert, jwt,
  // user_cose_sign1, no_auth]: no_auth lets anyone in.
  { method: "POST", path: "/app/multi_auth", expect: OPEN },
  // ["no_auth"]; the handler authenticates from its own headers (401 without them).
  {
    method: "GET",
    path: "/app/custom_auth",
    headers: { "x-custom-auth-name": "Alice", "x-custom-auth-age": "42" },
    expect: OPEN,
  },
  // This test's own module (below), ["user_cert"]: a permitted read of a public gov table.
  { method: "POST", path: "/app/restricted/{attempt}", body: { json: {} }, expect: USER },
];

const TABLE: Row[] = [...NODE_ROWS, ...GOV_ROWS, ...APP_ROWS];

/**
 * Paths the OpenAPI documents list that the table leaves out on purpose (method and path).
 * Empty: every listed operation is in the table.
 */
const EXCLUDED: ReadonlySet<string> = new Set<string>([]);

// Not listed: CCF's node-to-node internals (POST /node/create, POST /node/jwt_keys/refresh, POST
// /node/network/nodes/set_retired_committed), which ccf-ts does without an HTTP endpoint.

// --- this test's app module: app code against governance and internal tables --------------------

/**
 * Each attempt touches a table an app endpoint may not write or read. The handler catches the
 * exception and still answers 200, so that had a write gone through it would be applied: reading
 * the table back shows nothing changed. `?throw=true` lets the exception escape (500).
 */
const RESTRICTED_MODULE = `
const SINGLETON = new ArrayBuffer(8);
const json = (v) => ccf.jsonCompatibleToBuf(v);
const ATTEMPTS = {
  members_info_set: (b) => ccf.kv["public:ccf.gov.members.info"].set(
    ccf.strToBuf(b.member), json({ status: "Active", member_data: { pwned: true }, recovery_role: "Owner" })),
  service_info_delete: () => ccf.kv["public:ccf.gov.service.info"].delete(SINGLETON),
  users_certs_clear: () => ccf.kv["public:ccf.gov.users.certs"].clear(),
  signatures_set: () => ccf.kv["public:ccf.internal.signatures"].set(SINGLETON, json({ pwned: true })),
  private_internal_get: () => ccf.kv["ccf.internal.signatures"].get(SINGLETON),
  private_internal_set: () => ccf.kv["ccf.internal.signatures"].set(SINGLETON, json({ pwned: true })),
  private_gov_get: (b) => ccf.kv["ccf.gov.members.info"].get(ccf.strToBuf(b.member)),
  private_gov_has: (b) => ccf.kv["ccf.gov.users.certs"].has(ccf.strToBuf(b.user)),
  gov_public_read: () => ccf.kv["public:ccf.gov.service.info"].get(SINGLETON),
  internal_public_read: () => ccf.kv["public:ccf.internal.signatures"].get(SINGLETON),
};
export function restricted(request) {
  const op = ATTEMPTS[request.params.attempt];
  if (op === undefined) return { statusCode: 404, body: "no such attempt" };
  const body = request.body.json() ?? {};
  const show = (v) => (v instanceof ArrayBuffer ? ccf.bufToStr(v) : v === undefined ? null : v);
  if (request.query === "throw=true") return { body: { threw: false, value: show(op(body)) } };
  try {
    return { body: { threw: false, value: show(op(body)) } };
  } catch (e) {
    return { body: { threw: true, name: e.name, message: String(e.message) } };
  }
}
`;

function withRestrictedModule(bundlePath: string): unknown {
  const bundle = JSON.parse(readFileSync(bundlePath, "utf8")) as {
    metadata: { endpoints: Record<string, unknown> };
    modules: Array<{ name: string; module: string }>;
  };
  bundle.metadata.endpoints["/restricted/{attempt}"] = {
    post: {
      js_module: "restricted.js",
      js_function: "restricted",
      forwarding_required: "always",
      authn_policies: ["user_cert"],
      mode: "readwrite",
      openapi: {},
    },
  };
  bundle.modules.push({ name: "restricted.js", module: RESTRICTED_MODULE });
  return bundle;
}

// --- the test ----------------------------------------------------------------------------------

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: () => Record<string, unknown>;
}

/** The outcome class of a reply, or why it fits none (a 5xx, an unknown path). */
function classify(method: Method, r: Reply): string {
  if (r.status === 401) return "unauthenticated";
  if (r.status === 403) return "forbidden";
  if (r.status >= 500) return `error ${r.status}: ${r.text.slice(0, 200)}`;
  if (r.status === 405) return `no such method (405): ${r.text.slice(0, 200)}`;
  if (r.status === 404 && method !== "HEAD") {
    let message = "";
    try {
      const m = (r.json().error as { message?: unknown } | undefined)?.message;
      message = typeof m === "string" ? m : "";
    } catch {
      // not an OData error: the endpoint answered
    }
    if (message.startsWith("Unknown path")) return `no such path (404): ${message}`;
  }
  return "ok";
}

function fill(template: string): string {
  return template.replace(/\{([^}]+)\}/g, (whole, name: string) => {
    const v = P[name];
    if (v === undefined) throw new Error(`no value for ${whole}`);
    return v;
  });
}

function rowName(row: Row): string {
  return `${row.method} ${row.path}${row.query === undefined ? "" : `?${row.query}`}${row.note === undefined ? "" : ` (${row.note})`}`;
}

describe("access table: every endpoint, four kinds of caller", () => {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-access-"));
  let node: Awaited<ReturnType<typeof startNode>>["node"];
  let base: string;
  const agents = {} as Record<Caller, Agent>;
  const identities: Record<"stranger" | "user0" | "member0", { cert: string; key: string }> = {
    stranger: { cert: "", key: "" },
    user0: { cert: "", key: "" },
    member0: { cert: "", key: "" },
  };

  async function call(
    who: Caller,
    method: Method,
    path: string,
    options: {
      query?: string;
      headers?: Record<string, string>;
      body?: Buffer;
      type?: string;
    } = {},
  ): Promise<Reply> {
    const url = `${base}${path}${options.query === undefined ? "" : `?${options.query}`}`;
    const res = await request(url, {
      dispatcher: agents[who],
      method,
      headers: {
        ...(options.type === undefined ? {} : { "content-type": options.type }),
        ...options.headers,
      },
      ...(options.body === undefined ? {} : { body: options.body }),
    });
    const text = Buffer.from(await res.body.arrayBuffer()).toString("utf8");
    return {
      status: res.statusCode,
      headers: res.headers,
      text,
      json: () => JSON.parse(text) as Record<string, unknown>,
    };
  }

  function bodyOf(body: Body | undefined): { body?: Buffer; type?: string } {
    if (body === undefined) return {};
    if ("json" in body)
      return { body: Buffer.from(JSON.stringify(body.json)), type: "application/json" };
    if ("text" in body) return { body: Buffer.from(body.text), type: "text/plain" };
    const who = identities[body.cose];
    return {
      body: signGovMessage({
        signingKeyPem: who.key,
        signingCertPem: who.cert,
        msgType: body.msgType,
        createdAt: Math.floor(Date.now() / 1000),
        content: Buffer.from(body.msgType === "recovery_share" ? '{"share":"AA=="}' : "{}"),
        ...(body.proposalId === true ? { proposalId: P.proposalId } : {}),
      }),
      type: "application/cose",
    };
  }

  /** What each kind of caller gets for `row`. */
  async function outcomes(row: Row): Promise<Record<Caller, string>> {
    const got = {} as Record<Caller, string>;
    for (const who of CALLERS) {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(row.headers ?? {})) headers[k] = fill(v);
      const r = await call(who, row.method, fill(row.path), {
        ...(row.query === undefined ? {} : { query: fill(row.query) }),
        headers,
        ...bodyOf(row.body),
      });
      got[who] = classify(row.method, r);
    }
    return got;
  }

  before(async () => {
    makeMemberAndUser(dir);
    const keygen = runCcfTs(["keygen", "--name", "stranger"], dir);
    assert.equal(keygen.status, 0, keygen.stderr);
    writeFileSync(join(dir, "app.json"), JSON.stringify(withRestrictedModule(LOGGING_APP)));
    const config = singleNodeConfig(dir, {
      start: {
        users: [{ certificate_file: join(dir, "user0_cert.pem") }],
        js_app_bundle: join(dir, "app.json"),
        open_service: true,
      },
      signatures: { tx_count: 10, delay: "50ms" },
    });
    ({ node, base } = await startNode(dir, config));
    const serviceCert = readFileSync(join(dir, "service_cert.pem"), "utf8");
    agents.none = new Agent({ connect: { ca: serviceCert } });
    agents.user = clientAgent(dir, serviceCert, "user0");
    agents.member = clientAgent(dir, serviceCert, "member0");
    agents.stranger = clientAgent(dir, serviceCert, "stranger");
    for (const name of ["stranger", "user0", "member0"] as const) {
      identities[name] = {
        cert: readFileSync(join(dir, `${name}_cert.pem`), "utf8"),
        key: readFileSync(join(dir, `${name}_privk.pem`), "utf8"),
      };
    }

    P.memberId = certificateId(identities.member0.cert);
    P.userId = certificateId(identities.user0.cert);
    const self = await waitFor("the node's own description", async () => {
      const r = await call("none", "GET", "/node/network/nodes/self");
      return r.status === 200 ? r.json() : undefined;
    });
    P.node_id = String(self.node_id);
    P.nodeId = P.node_id;
    const modules = await call("none", "GET", "/gov/service/javascript-modules", { query: API });
    const first = (modules.json().value as Array<{ moduleName: string }>)[0];
    assert.ok(first !== undefined, modules.text);
    P.moduleName = encodeURIComponent(first.moduleName);

    // A committed transaction of the user's, for /tx, /receipt and the historical endpoints.
    const write = await waitFor("the app to take writes", async () => {
      const r = await call("user", "POST", "/app/log/private", {
        body: Buffer.from(JSON.stringify(RECORD)),
        type: "application/json",
      });
      return r.status === 200 ? r : undefined;
    });
    const txid = String(write.headers[TXID_HEADER]);
    await waitFor(`${txid} committed`, async () => {
      const r = await call("none", "GET", "/app/tx", { query: `transaction_id=${txid}` });
      return r.json().status === "Committed" ? true : undefined;
    });
    P.txid = txid;
    P.transactionId = txid;
    P.seqno = txid.split(".")[1] ?? "1";
  });

  after(async () => {
    for (const a of Object.values(agents)) await a?.close();
    if (node?.exitCode === null) node.kill("SIGTERM");
  });

  for (const row of TABLE) {
    it(
      rowName(row),
      row.differs === undefined ? {} : { todo: `DIFFERS FROM CCF: ${row.differs}` },
      async () => {
        assert.deepEqual(await outcomes(row), row.expect);
      },
    );
  }

  it("lists in the table every operation the OpenAPI documents list, and no other", async () => {
    const listed = new Set<string>();
    for (const doc of ["/node/api", "/gov/api", "/app/api"]) {
      const r = await call("none", "GET", doc);
      assert.equal(r.status, 200, r.text);
      const paths = r.json().paths as Record<string, Record<string, unknown>>;
      for (const [path, ops] of Object.entries(paths)) {
        for (const method of Object.keys(ops)) listed.add(`${method.toUpperCase()} ${path}`);
      }
    }
    const inTable = new Set(TABLE.map((row) => `${row.method} ${row.path}`));
    const unlisted = [...listed].filter((op) => !inTable.has(op) && !EXCLUDED.has(op));
    assert.deepEqual(unlisted, [], "operations served but missing from the access table");
    const unknown = [...inTable].filter((op) => !listed.has(op));
    assert.deepEqual(unknown, [], "table rows for operations the node does not list");
  });

  describe("app code and governance tables", () => {
    async function attempt(name: string, query?: string): Promise<Reply> {
      return await call("user", "POST", `/app/restricted/${name}`, {
        ...(query === undefined ? {} : { query }),
        body: Buffer.from(JSON.stringify({ member: P.memberId, user: P.userId })),
        type: "application/json",
      });
    }

    /** What the gov API and the app say about the tables the attempts aim at. */
    async function govState(): Promise<unknown[]> {
      const out: unknown[] = [];
      for (const path of ["/gov/service/members", "/gov/service/users", "/gov/service/info"]) {
        const r = await call("none", "GET", path, { query: API });
        assert.equal(r.status, 200, r.text);
        out.push(r.json());
      }
      return out;
    }

    /** The app's attempt `name` threw the runtime's error for `method` on a `table` so marked. */
    async function refused(name: string, method: string, table: string, kind: string) {
      const r = await attempt(name);
      assert.equal(r.status, 200, r.text);
      const body = r.json();
      assert.equal(body.threw, true, `${name}: ${r.text}`);
      assert.match(
        String(body.message),
        new RegExp(
          `^Cannot call ${method} on table named ${table.replace(/\./g, "\\.")}\\. This table is ${kind}`,
        ),
        name,
      );
    }

    it("refuses writes to public governance and internal tables, and changes nothing", async () => {
      const before = await govState();
      for (const [name, method, table] of [
        ["members_info_set", "set", "public:ccf.gov.members.info"],
        ["service_info_delete", "delete", "public:ccf.gov.service.info"],
        ["users_certs_clear", "clear", "public:ccf.gov.users.certs"],
        ["signatures_set", "set", "public:ccf.internal.signatures"],
      ] as const) {
        await refused(name, method, table, "read-only");
      }
      // The handler answered 200 after each attempt, so any write would have been applied.
      assert.deepEqual(await govState(), before);
      const sig = await attempt("internal_public_read");
      assert.equal(sig.status, 200, sig.text);
      const signature = JSON.parse(String(sig.json().value)) as Record<string, unknown>;
      assert.equal(signature.pwned, undefined);
      assert.equal(typeof signature.sig, "string");
      assert.equal(signature.node, P.node_id);
      // user0 is still a user.
      const still = await call("user", "GET", "/app/log/private/count");
      assert.equal(still.status, 200, still.text);
    });

    it("lets the exception escape as a 500 when the app does not catch it", async () => {
      const before = await govState();
      const r = await attempt("members_info_set", "throw=true");
      assert.equal(r.status, 500, r.text);
      assert.deepEqual(await govState(), before);
    });

    it("refuses any access to private governance and internal tables", async () => {
      for (const [name, method, table] of [
        ["private_internal_get", "get", "ccf.internal.signatures"],
        ["private_internal_set", "set", "ccf.internal.signatures"],
        ["private_gov_get", "get", "ccf.gov.members.info"],
        ["private_gov_has", "has", "ccf.gov.users.certs"],
      ] as const) {
        await refused(name, method, table, "inaccessible");
      }
    });

    it("allows reading public governance and internal tables", async () => {
      const info = await attempt("gov_public_read");
      assert.equal(info.status, 200, info.text);
      assert.equal(info.json().threw, false, info.text);
      assert.equal((JSON.parse(String(info.json().value)) as { status: string }).status, "Open");
      const sig = await attempt("internal_public_read");
      assert.equal(sig.json().threw, false, sig.text);
    });
  });
});
