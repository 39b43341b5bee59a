// The read-only gov REST API (api-version 2024-07-01) over a store written by genesis, plus a
// ledger CCF itself wrote: every GET's shape, its 404s and 400s, and the api-version check.

import assert from "node:assert/strict";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import {
  certificateId,
  createSelfSignedCertificate,
  EcKeyPair,
  generateRsaKeyPair,
} from "../../src/crypto/index.js";
import type { NodeContext, TxStatus } from "../../src/endpoints/context.js";
import { checkApiVersion, govReadEndpoints } from "../../src/endpoints/gov.js";
import type { EndpointRequest } from "../../src/endpoints/types.js";
import { type ProposalInfo, proposalSummary } from "../../src/gov/index.js";
import { encodeValue, idKey, SINGLETON_KEY, Store, Tables } from "../../src/kv/index.js";
import { readLedger } from "../../src/ledger/index.js";
import type { TxId } from "../../src/ledger/index.js";
import { writeGenesis } from "../../src/node/genesis.js";
import { VIRTUAL_MEASUREMENT } from "../../src/node/identity.js";
import { inject, Router } from "../../src/rpc/index.js";

const V = "api-version=2024-07-01";
const NODE_ID = "ab".repeat(32);
const HOST_DATA = "cd".repeat(32);
const OPEN_ID = "01".repeat(32);
const FAILED_ID = "02".repeat(32);
const MISSING_ID = "ff".repeat(32);
const PROPOSAL = '{\n  "actions": [{"name": "trigger_snapshot", "args": {}}]\n}';
const BALLOT = "export function vote (rawProposal, proposerId) { return true }";
const QUOTE = {
  host_data: HOST_DATA,
  measurement: VIRTUAL_MEASUREMENT,
  report_data: "cmVwb3J0",
};

function stubContext(store: Store): NodeContext {
  const committed: TxId = { view: 2, seqno: 5 };
  return {
    nodeId: NODE_ID,
    version: { ccf_version: "ccf-ts-test", quickjs_version: "test", unsafe: false },
    state: () => "PartOfNetwork",
    store,
    primaryId: () => NODE_ID,
    currentView: () => 4,
    lastTxId: () => ({ view: 4, seqno: 12 }),
    commitTxId: () => committed,
    lastSignedSeqno: () => 12,
    startupSeqno: () => 0,
    viewHistory: () => [
      { view: 2, seqno: 1 },
      { view: 4, seqno: 10 },
    ],
    txStatus: (id: TxId): TxStatus =>
      id.view === 2 && id.seqno <= 5 ? "Committed" : id.view === 4 ? "Pending" : "Unknown",
    receipt: () => undefined,
    quote: () => ({ node_id: NODE_ID, format: "", raw: "", endorsements: "", measurement: "" }),
    sessionMetrics: () => ({ active: 0, peak: 0, interfaces: {} }),
    isReady: () => true,
  };
}

interface Fixture {
  router: Router;
  member0: { id: string; cert: string; encKey: string };
  member1: { id: string; cert: string };
  user0: { id: string; cert: string };
  nodeCert: string;
  serviceCert: string;
  jwkPem: string;
}

async function makeCert(name: string): Promise<string> {
  return createSelfSignedCertificate(EcKeyPair.generate("secp256r1"), {
    subjectName: `CN=${name}`,
    validFrom: new Date("2025-01-01T00:00:00Z"),
    validityDays: 90,
  });
}

async function fixture(): Promise<Fixture> {
  const [m0, m1, u0, nodeCert, serviceCert] = await Promise.all(
    ["member0", "member1", "user0", "node", "service"].map(makeCert),
  );
  const encKey = generateRsaKeyPair(2048).publicKeyPem;
  const jwtKey = EcKeyPair.generate("secp256r1");
  const store = new Store();
  const tx = store.begin();
  writeGenesis(tx, {
    serviceCert,
    serviceData: { region: "eu" },
    createTxId: "2.1",
    members: [
      { cert: m0, encryptionPublicKey: encKey, memberData: { is_operator: true } },
      { cert: m1 },
    ],
    configuration: { recovery_threshold: 1, maximum_node_certificate_validity_days: 30 },
    constitution: "export function resolve() { return 'Accepted'; }",
    node: {
      id: NODE_ID,
      info: {
        status: "Trusted",
        quote_info: {
          endorsements: "",
          format: "Insecure_Virtual",
          quote: Buffer.from(JSON.stringify(QUOTE)).toString("base64"),
        },
        rpc_interfaces: {
          primary_rpc_interface: {
            app_protocol: "HTTP1",
            bind_address: "127.0.0.1:8000",
            published_address: "node.example:8000",
          },
        },
      },
      endorsedCert: nodeCert,
      hostData: HOST_DATA,
    },
    users: [{ cert: u0, userData: { role: "admin" } }],
    app: {
      metadata: {
        endpoints: {
          "/log": {
            get: {
              js_module: "logging.js",
              js_function: "get_log",
              forwarding_required: "sometimes",
              authn_policies: ["user_cert", { all_of: ["user_cert", "jwt"] }],
              mode: "readonly",
              openapi: { summary: "read" },
            },
          },
        },
      },
      modules: [{ name: "logging.js", module: "export function get_log() {}" }],
    },
  });
  store.commit(tx);

  // Governance after genesis: a second service identity, proposals, JWT keys.
  const m0Id = certificateId(m0);
  const m1Id = certificateId(m1);
  const tx2 = store.begin();
  const put = (table: string, key: Uint8Array, value: unknown) =>
    tx2.map(table).set(key, encodeValue(table, value));
  put(Tables.SERVICE, SINGLETON_KEY, {
    cert: serviceCert,
    current_service_create_txid: "4.11",
    previous_service_identity_version: 3,
    recovery_count: 1,
    service_data: { region: "eu" },
    status: "Open",
  });
  put(Tables.PROPOSALS, idKey(OPEN_ID), PROPOSAL);
  put(Tables.PROPOSALS_INFO, idKey(OPEN_ID), {
    ballots: { [m0Id]: BALLOT },
    proposer_id: m0Id,
    state: "Open",
  });
  put(Tables.PROPOSALS, idKey(FAILED_ID), PROPOSAL);
  put(Tables.PROPOSALS_INFO, idKey(FAILED_ID), {
    ballots: { [m0Id]: BALLOT, [m1Id]: "not js" },
    failure: { reason: "Failed to apply(): boom", trace: "at apply" },
    final_votes: { [m0Id]: true },
    proposer_id: m1Id,
    state: "Failed",
    vote_failures: { [m1Id]: { reason: "SyntaxError" } },
  });
  put(Tables.JWT_ISSUERS, Buffer.from("https://issuer.example"), {
    auto_refresh: true,
    ca_cert_bundle_name: "bundle",
  });
  put(Tables.JWT_PUBLIC_SIGNING_KEYS_METADATA, Buffer.from("kid1"), [
    { issuer: "https://issuer.example", public_key: jwtKey.publicKeyDer.toString("base64") },
  ]);
  put(Tables.CA_CERT_BUNDLES, Buffer.from("bundle"), serviceCert);
  store.commit(tx2);

  const router = new Router();
  router.setEndpoints("gov", govReadEndpoints(stubContext(store)));
  return {
    router,
    member0: { id: m0Id, cert: m0, encKey },
    member1: { id: m1Id, cert: m1 },
    user0: { id: certificateId(u0), cert: u0 },
    nodeCert,
    serviceCert,
    jwkPem: jwtKey.publicKeyPem,
  };
}

let f: Fixture;

async function get(path: string, query = V) {
  const res = await inject(f.router, {
    method: "GET",
    path: query === "" ? path : `${path}?${query}`,
  });
  return {
    status: res.status,
    headers: res.headers,
    text: res.body.toString("utf8"),
    json: (): unknown => JSON.parse(res.body.toString("utf8")),
  };
}

async function assertError(path: string, status: number, code: string, message: string) {
  const res = await get(path);
  assert.equal(res.status, status, res.text);
  assert.deepEqual(res.json(), { error: { code, message } });
}

describe("gov read endpoints", () => {
  before(async () => {
    f = await fixture();
  });

  describe("api-version", () => {
    it("is required on every endpoint", async () => {
      const res = await get("/gov/service/members", "");
      assert.equal(res.status, 400);
      assert.deepEqual(res.json(), {
        error: {
          code: "MissingApiVersionParameter",
          message:
            "The api-version query parameter (?api-version=) is required for all requests. The supported api-versions are: 2023-06-01-preview, 2024-07-01",
        },
      });
    });

    it("rejects a version CCF does not know", async () => {
      const res = await get("/gov/members/proposals", "api-version=2024-01-01");
      assert.equal(res.status, 400);
      assert.deepEqual(res.json(), {
        error: {
          code: "UnsupportedApiVersionValue",
          message:
            "Unsupported api-version '2024-01-01'. The supported api-versions are: 2023-06-01-preview, 2024-07-01",
        },
      });
    });

    it("accepts the preview version", async () => {
      assert.equal((await get("/gov/service/info", "api-version=2023-06-01-preview")).status, 200);
    });

    it("refuses the preview version on the JS app endpoints, which start at 2024-07-01", async () => {
      for (const path of ["/gov/service/javascript-app", "/gov/service/javascript-modules"]) {
        const res = await get(path, "api-version=2023-06-01-preview");
        assert.equal(res.status, 400);
        assert.deepEqual(res.json(), {
          error: {
            code: "UnsupportedApiVersionValue",
            message:
              "Unsupported api-version '2023-06-01-preview'. The supported api-versions are: 2024-07-01",
          },
        });
      }
    });

    it("is checked before path parameters", async () => {
      const res = await get("/gov/service/members/not-hex", "");
      assert.equal(res.status, 400);
      assert.equal(
        (res.json() as { error: { code: string } }).error.code,
        "MissingApiVersionParameter",
      );
    });

    it("checkApiVersion returns the error response, or undefined when the version is good", () => {
      const req = (query: string): EndpointRequest => ({
        method: "POST",
        path: "/gov/members/proposals:create",
        query,
        params: {},
        headers: {},
        body: Buffer.alloc(0),
        clientCert: undefined,
        httpVersion: "1.1",
        hostname: "localhost",
      });
      assert.equal(checkApiVersion(req(V)), undefined);
      assert.equal(checkApiVersion(req("api-version=2023-06-01-preview")), undefined);
      const missing = checkApiVersion(req(""));
      assert.equal(missing?.status, 400);
      assert.equal(
        (missing?.body as { error: { code: string } }).error.code,
        "MissingApiVersionParameter",
      );
      const unknown = checkApiVersion(req("api-version=x"));
      assert.equal(
        (unknown?.body as { error: { code: string } }).error.code,
        "UnsupportedApiVersionValue",
      );
    });
  });

  describe("service", () => {
    it("info shows the service row and configuration with CCF's defaults filled in", async () => {
      const res = await get("/gov/service/info");
      assert.equal(res.status, 200);
      assert.equal(res.headers["content-type"], "application/json");
      assert.equal(res.headers["x-ms-ccf-transaction-id"], "4.12");
      assert.deepEqual(res.json(), {
        status: "Open",
        certificate: f.serviceCert,
        recoveryCount: 1,
        creationTransactionId: "4.11",
        previousServiceCreationTransactionId: "2.3",
        serviceData: { region: "eu" },
        configuration: {
          recoveryThreshold: 1,
          maximumNodeCertificateValidityDays: 30,
          maximumServiceCertificateValidityDays: 365,
          recentCoseProposalsWindowSize: 100,
        },
      });
    });

    it("writes object keys sorted, as CCF's nlohmann::json does", async () => {
      const res = await get("/gov/service/info");
      assert.ok(res.text.startsWith('{"certificate":'), res.text.slice(0, 40));
      assert.ok(res.text.includes('"configuration":{"maximumNodeCertificateValidityDays":30,'));
    });

    it("constitution is the raw JavaScript", async () => {
      const res = await get("/gov/service/constitution");
      assert.equal(res.status, 200);
      assert.equal(res.headers["content-type"], "text/javascript");
      assert.equal(res.text, "export function resolve() { return 'Accepted'; }");
    });

    it("javascript-app lists endpoints in camelCase with EndpointProperties defaults", async () => {
      const res = await get("/gov/service/javascript-app");
      assert.equal(res.status, 200);
      assert.deepEqual(res.json(), {
        endpoints: {
          "/log": {
            GET: {
              jsModule: "/logging.js",
              jsFunction: "get_log",
              forwardingRequired: "sometimes",
              redirectionStrategy: "to_primary",
              authnPolicies: ["user_cert", { all_of: ["user_cert", "jwt"] }],
              mode: "readonly",
              openApi: { summary: "read" },
            },
          },
        },
      });
    });

    it("javascript-app with case=original shows the stored properties", async () => {
      const res = await get("/gov/service/javascript-app", `${V}&case=original`);
      assert.deepEqual(res.json(), {
        endpoints: {
          "/log": {
            GET: {
              js_module: "/logging.js",
              js_function: "get_log",
              forwarding_required: "sometimes",
              authn_policies: ["user_cert", { all_of: ["user_cert", "jwt"] }],
              mode: "readonly",
              openapi: { summary: "read" },
            },
          },
        },
      });
    });

    it("javascript-app refuses other case values", async () => {
      const res = await get("/gov/service/javascript-app", `${V}&case=camel`);
      assert.equal(res.status, 400);
      assert.deepEqual(res.json(), {
        error: {
          code: "InvalidQueryParameterValue",
          message: "Accepted values for the 'case' query parameter are: original",
        },
      });
    });

    it("javascript-modules lists module names", async () => {
      const res = await get("/gov/service/javascript-modules");
      assert.deepEqual(res.json(), { value: [{ moduleName: "/logging.js" }] });
    });

    it("javascript-modules/{moduleName} returns the source of a percent-encoded name", async () => {
      const res = await get("/gov/service/javascript-modules/%2Flogging.js");
      assert.equal(res.status, 200);
      assert.equal(res.headers["content-type"], "text/javascript");
      assert.equal(res.text, "export function get_log() {}");
    });

    it("javascript-modules/{moduleName} is 404 for an unknown module", async () => {
      await assertError(
        "/gov/service/javascript-modules/%2Fnope.js",
        404,
        "ResourceNotFound",
        "Module /nope.js does not exist.",
      );
    });

    it("join-policy shows the allowed measurements and host data", async () => {
      const res = await get("/gov/service/join-policy");
      assert.deepEqual(res.json(), {
        sgx: { measurements: [] },
        virtual: { measurements: [VIRTUAL_MEASUREMENT], hostData: [HOST_DATA] },
        snp: { measurements: [], hostData: {}, uvmEndorsements: {}, tcbVersions: {} },
      });
    });

    it("jwk shows issuers, keys as PEM and CA bundles", async () => {
      const res = await get("/gov/service/jwk");
      assert.deepEqual(res.json(), {
        issuers: { "https://issuer.example": { autoRefresh: true, caCertBundleName: "bundle" } },
        keys: {
          kid1: [{ publicKey: f.jwkPem, issuer: "https://issuer.example", constraint: null }],
        },
        caCertBundles: { bundle: f.serviceCert },
      });
    });
  });

  describe("members, users, nodes", () => {
    it("members lists each member with certificate, key and recovery role", async () => {
      const res = await get("/gov/service/members");
      const value = (res.json() as { value: unknown[] }).value;
      const m0 = {
        memberId: f.member0.id,
        status: "Accepted",
        memberData: { is_operator: true },
        certificate: f.member0.cert,
        publicEncryptionKey: f.member0.encKey,
        recoveryRole: "Participant",
      };
      const m1 = {
        memberId: f.member1.id,
        status: "Accepted",
        memberData: null,
        certificate: f.member1.cert,
        recoveryRole: "NonParticipant",
      };
      assert.deepEqual(
        value,
        [m0, m1].sort((a, b) => (a.memberId < b.memberId ? -1 : 1)),
      );
      const one = await get(`/gov/service/members/${f.member0.id}`);
      assert.deepEqual(one.json(), m0);
    });

    it("members/{memberId} is 404 for an unknown member and 400 for a malformed id", async () => {
      await assertError(
        `/gov/service/members/${MISSING_ID}`,
        404,
        "ResourceNotFound",
        `Member ${MISSING_ID} does not exist.`,
      );
      await assertError(
        "/gov/service/members/abc",
        400,
        "InvalidResourceName",
        "'abc' is not a valid hex-encoded member ID",
      );
    });

    it("users shows the users.info row as userData", async () => {
      const user = {
        userId: f.user0.id,
        certificate: f.user0.cert,
        userData: { user_data: { role: "admin" } },
      };
      assert.deepEqual((await get("/gov/service/users")).json(), { value: [user] });
      assert.deepEqual((await get(`/gov/service/users/${f.user0.id}`)).json(), user);
      await assertError(
        `/gov/service/users/${MISSING_ID}`,
        404,
        "ResourceNotFound",
        `User ${MISSING_ID} does not exist.`,
      );
      await assertError(
        "/gov/service/users/xyz",
        400,
        "InvalidResourceName",
        "'xyz' is not a valid hex-encoded user ID",
      );
    });

    it("nodes shows status, endorsed certificate, virtual quote details and interfaces", async () => {
      const node = {
        nodeId: NODE_ID,
        status: "Trusted",
        nodeData: null,
        certificate: f.nodeCert,
        retiredCommitted: false,
        quoteInfo: {
          format: "Insecure_Virtual",
          rawQuote: Buffer.from(JSON.stringify(QUOTE)).toString("base64"),
          details: {
            measurement: VIRTUAL_MEASUREMENT,
            reportData: "cmVwb3J0",
            hostData: HOST_DATA,
          },
        },
        rpcInterfaces: {
          primary_rpc_interface: { publishedAddress: "node.example:8000", protocol: "HTTP1" },
        },
      };
      assert.deepEqual((await get("/gov/service/nodes")).json(), { value: [node] });
      assert.deepEqual((await get(`/gov/service/nodes/${NODE_ID}`)).json(), node);
      await assertError(
        `/gov/service/nodes/${MISSING_ID}`,
        404,
        "ResourceNotFound",
        `Node ${MISSING_ID} does not exist.`,
      );
      await assertError(
        "/gov/service/nodes/12",
        400,
        "InvalidResourceName",
        "'12' is not a valid hex-encoded node ID",
      );
    });
  });

  describe("transactions", () => {
    it("commit reports the committed TxID and its status", async () => {
      const res = await get("/gov/service/transactions/commit");
      assert.equal(res.status, 200);
      assert.deepEqual(res.json(), { status: "Committed", transactionId: "2.5" });
    });

    it("transactions/{transactionId} reports the status of any TxID", async () => {
      assert.deepEqual((await get("/gov/service/transactions/2.3")).json(), {
        status: "Committed",
        transactionId: "2.3",
      });
      assert.deepEqual((await get("/gov/service/transactions/4.20")).json(), {
        status: "Pending",
        transactionId: "4.20",
      });
      assert.deepEqual((await get("/gov/service/transactions/9.1")).json(), {
        status: "Unknown",
        transactionId: "9.1",
      });
    });

    it("transactions/{transactionId} is 400 for a malformed TxID", async () => {
      await assertError(
        "/gov/service/transactions/2-3",
        400,
        "InvalidQueryParameterValue",
        "The value '2-3' passed as parameter 'transactionId' could not be converted to a valid Transaction ID.",
      );
    });
  });

  describe("state digests", () => {
    it("returns the member's recorded digest", async () => {
      const res = await get(`/gov/members/state-digests/${f.member0.id}`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json(), { memberId: f.member0.id, stateDigest: "" });
    });

    it("is 404 without an ack row", async () => {
      await assertError(
        `/gov/members/state-digests/${MISSING_ID}`,
        404,
        "ResourceNotFound",
        `No ACK record exists for member ${MISSING_ID}.`,
      );
    });
  });

  describe("proposals", () => {
    it("lists every proposal in the API shape", async () => {
      const res = await get("/gov/members/proposals");
      assert.deepEqual(res.json(), {
        value: [
          {
            proposalId: OPEN_ID,
            proposerId: f.member0.id,
            proposalState: "Open",
            ballotCount: 1,
          },
          {
            proposalId: FAILED_ID,
            proposerId: f.member1.id,
            proposalState: "Failed",
            ballotCount: 2,
            finalVotes: { [f.member0.id]: true },
            voteFailures: { [f.member1.id]: { reason: "SyntaxError" } },
            failure: { reason: "Failed to apply(): boom", trace: "at apply" },
          },
        ],
      });
    });

    it("proposals/{proposalId} returns one proposal, 404 ProposalNotFound otherwise", async () => {
      assert.deepEqual((await get(`/gov/members/proposals/${OPEN_ID}`)).json(), {
        proposalId: OPEN_ID,
        proposerId: f.member0.id,
        proposalState: "Open",
        ballotCount: 1,
      });
      await assertError(
        `/gov/members/proposals/${MISSING_ID}`,
        404,
        "ProposalNotFound",
        `Could not find proposal ${MISSING_ID}.`,
      );
      await assertError(
        "/gov/members/proposals/1234",
        400,
        "InvalidResourceName",
        "'1234' is not a valid hex-encoded proposal ID",
      );
    });

    it("actions returns the proposal bytes as submitted", async () => {
      const res = await get(`/gov/members/proposals/${OPEN_ID}/actions`);
      assert.equal(res.status, 200);
      assert.equal(res.text, PROPOSAL);
      await assertError(
        `/gov/members/proposals/${MISSING_ID}/actions`,
        404,
        "ProposalNotFound",
        `Could not find proposal ${MISSING_ID}.`,
      );
    });

    it("ballots/{memberId} returns the ballot script as text/javascript", async () => {
      const res = await get(`/gov/members/proposals/${OPEN_ID}/ballots/${f.member0.id}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers["content-type"], "text/javascript");
      assert.equal(res.text, BALLOT);
    });

    it("ballots/{memberId} is 404 VoteNotFound / ProposalNotFound as CCF", async () => {
      await assertError(
        `/gov/members/proposals/${OPEN_ID}/ballots/${f.member1.id}`,
        404,
        "VoteNotFound",
        `Member ${f.member1.id} has not voted for proposal ${OPEN_ID}.`,
      );
      await assertError(
        `/gov/members/proposals/${MISSING_ID}/ballots/${f.member0.id}`,
        404,
        "ProposalNotFound",
        `Proposal ${MISSING_ID} does not exist.`,
      );
      await assertError(
        `/gov/members/proposals/${OPEN_ID}/ballots/nope`,
        400,
        "InvalidResourceName",
        "'nope' is not a valid hex-encoded member ID",
      );
    });

    it("proposalSummary leaves out what the proposal does not have yet", () => {
      const info: ProposalInfo = { ballots: {}, proposer_id: "p", state: "Open" };
      assert.deepEqual(proposalSummary("id", info), {
        proposalId: "id",
        proposerId: "p",
        proposalState: "Open",
        ballotCount: 0,
      });
    });
  });
});

describe("gov read endpoints on a ledger CCF wrote", () => {
  const dir = join(
    import.meta.dirname,
    "../../../shared/fixtures/ccf-ledgers/cose_flipflop_service/ledger",
  );

  it("serve CCF's own table contents", async () => {
    const { store } = readLedger(dir);
    const router = new Router();
    router.setEndpoints("gov", govReadEndpoints(stubContext(store)));
    const getJson = async (path: string): Promise<unknown> => {
      const res = await inject(router, { method: "GET", path: `${path}?${V}` });
      assert.equal(res.status, 200, res.body.toString());
      return JSON.parse(res.body.toString()) as unknown;
    };
    const member = "46d2a7518877166654dfa07d9c4c5aaa0ba82a3f62648216f45fdd7de0e79b38";
    assert.deepEqual(await getJson("/gov/members/proposals"), {
      value: [
        {
          proposalId: "9b381db8b33693b1433806424904a1515261a5ef13f66488182548934568c797",
          proposerId: member,
          proposalState: "Accepted",
          ballotCount: 1,
          finalVotes: { [member]: true },
          voteFailures: {},
        },
      ],
    });
    const members = (await getJson("/gov/service/members")) as {
      value: Array<{ memberId: string; status: string; recoveryRole: string }>;
    };
    assert.equal(members.value.length, 1);
    assert.equal(members.value[0]?.memberId, member);
    assert.equal(members.value[0]?.status, "Active");
    assert.equal(
      ((await getJson(`/gov/members/state-digests/${member}`)) as { memberId: string }).memberId,
      member,
    );
    const nodes = (await getJson("/gov/service/nodes")) as {
      value: Array<{ quoteInfo: { format: string; details: { measurement: string } } }>;
    };
    assert.equal(nodes.value[0]?.quoteInfo.format, "Insecure_Virtual");
    assert.equal(nodes.value[0]?.quoteInfo.details.measurement, VIRTUAL_MEASUREMENT);
    const app = (await getJson("/gov/service/javascript-app")) as {
      endpoints: Record<string, Record<string, { jsModule: string }>>;
    };
    assert.equal(app.endpoints["/log/private"]?.DELETE?.jsModule, "/logging.js");
    const policy = (await getJson("/gov/service/join-policy")) as {
      virtual: { measurements: string[]; hostData: string[] };
    };
    assert.deepEqual(policy.virtual.measurements, [VIRTUAL_MEASUREMENT]);
    assert.equal(policy.virtual.hostData.length, 1);
  });
});
