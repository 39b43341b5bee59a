// Seeded fuzzing of a node's HTTP front end: fast-check builds requests (methods, paths under /app
// /gov /node with random, percent-encoded, overlong and `..` segments, query strings, headers and
// bodies: random bytes, JSON, truncated JSON, CBOR) and sends them over TLS as user0. Each answer
// must be below 500 (except CCF's 500 for an app handler that throws), a 4xx must carry CCF's
// `{"error": {"code", "message"}}`, the node must keep answering, and nothing may change: a probe
// record reads back as written and the commit point does not move.
// FUZZ_RUNS=<n> sends n requests instead of the CI budget; FUZZ_SEED=<s> explores another seed.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { Tag } from "cbor-x";
import { type Agent, errors } from "undici";
import { cborEncode } from "../../src/crypto/cose.js";
import { openAppNodeConfig } from "../helpers/node-config.js";
import { startNode, waitFor } from "../helpers/process.js";
import { clientAgent, makeMemberAndUser } from "../helpers/identities.js";

const BUNDLE = join(import.meta.dirname, "../../samples/apps/logging/dist/bundle.json");
const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
const SEED = Number(process.env.FUZZ_SEED ?? 1420);

interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer | undefined;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

// ---------------------------------------------------------------------------------------------
// Generators

const KNOWN_SEGMENTS = [
  "log",
  "private",
  "public",
  "historical",
  "range",
  "count",
  "backup",
  "raw_text",
  "anonymous",
  "admin_only",
  "prefix_cert",
  "multi_auth",
  "custom_auth",
  "historical_receipt",
  "commit",
  "tx",
  "receipt",
  "api",
  "metrics",
  "members",
  "proposals",
  "proposals:create",
  "ballots:submit",
  ":withdraw",
  "service",
  "info",
  "nodes",
  "users",
  "constitution",
  "recovery",
  "jwk",
  "state-digests",
  "ack",
  "state",
  "network",
  "join",
  "quotes",
  "self",
  "version",
  "snapshot",
  "ready",
  "primary",
  "removable_nodes",
  "encrypted-recovery-share",
  "recovery-shares",
];

const pctByte = fc.nat(255).map((b) => `%${b.toString(16).padStart(2, "0").toUpperCase()}`);
const urlChar = fc.constantFrom(
  ..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@".split(""),
);

const segment = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...KNOWN_SEGMENTS) },
  { weight: 2, arbitrary: fc.constantFrom("..", ".", "%2e%2e", "%2F", "%00", "%", "%zz", "") },
  {
    weight: 3,
    arbitrary: fc.array(fc.oneof(urlChar, pctByte), { maxLength: 12 }).map((a) => a.join("")),
  },
  { weight: 1, arbitrary: fc.stringMatching(/^[0-9a-f]{64}$/) },
  {
    weight: 1,
    arbitrary: fc.tuple(urlChar, fc.integer({ min: 200, max: 9000 })).map(([c, n]) => c.repeat(n)),
  },
);

/** Endpoints that exist, so that most requests reach a handler with bad input, not a 404. */
const KNOWN_PATHS = [
  "/app/log/private",
  "/app/log/public",
  "/app/log/private/historical",
  "/app/log/public/historical",
  "/app/log/private/historical_receipt",
  "/app/log/private/historical/range",
  "/app/log/private/count",
  "/app/log/private/backup",
  "/app/log/private/anonymous",
  "/app/log/private/admin_only",
  "/app/multi_auth",
  "/app/custom_auth",
  "/app/commit",
  "/app/tx",
  "/app/receipt",
  "/app/api",
  "/gov/service/info",
  "/gov/service/members",
  "/gov/service/nodes",
  "/gov/members/proposals:create",
  "/gov/members/proposals/{h}",
  "/gov/members/proposals/{h}/ballots/{h}:submit",
  "/gov/members/proposals/{h}:withdraw",
  "/gov/members/state-digests/{h}:ack",
  "/gov/members/state-digests/{h}:update",
  "/gov/recovery/encrypted-shares/{h}",
  "/gov/recovery/members/{h}:recover",
  "/node/state",
  "/node/network",
  "/node/join",
  "/node/network/nodes/{h}",
  "/node/commit",
  "/node/tx",
  "/node/receipt",
  "/node/quotes/self",
  "/node/snapshot/{h}",
  "/node/network/removable_nodes",
  "/node/version",
  "/node/api",
];

const path = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom(...KNOWN_PATHS), segment, fc.array(segment, { maxLength: 1 }))
      .map(([p, fill, extra]) => [p.replaceAll("{h}", fill), ...extra].join("/")),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.constantFrom("/app", "/gov", "/node", "/app/log", ""),
        fc.array(segment, { maxLength: 4 }),
      )
      .map(([prefix, segs]) => `${prefix}/${segs.join("/")}`),
  },
);

const txIdLike = fc.oneof(
  fc.tuple(fc.nat(20), fc.nat(200)).map(([v, s]) => `${v}.${s}`),
  fc.constantFrom(
    "",
    ".",
    "2.",
    ".5",
    "-1.3",
    "2.-4",
    "1e3.2",
    "99999999999999999.1",
    "2.5.6",
    "0x2.3",
  ),
  fc.string({ maxLength: 12 }),
);

const queryValue = fc.oneof(
  txIdLike,
  fc.constantFrom("2024-07-01", "2023-06-01-preview", "classic", "", "-1", "1.5", "NaN"),
  fc.nat(100_000).map(String),
  fc.array(fc.oneof(urlChar, pctByte), { maxLength: 16 }).map((a) => a.join("")),
);

// No key can be `scope`: the probe record lives in a scoped table the fuzz cannot name.
const query = fc
  .array(
    fc.tuple(
      fc.oneof(
        fc.constantFrom("transaction_id", "api-version", "id", "from_seqno", "to_seqno"),
        fc.stringMatching(/^[a-z_]{1,3}$/),
      ),
      queryValue,
    ),
    { maxLength: 3 },
  )
  .map((kv) => (kv.length === 0 ? "" : `?${kv.map(([k, v]) => `${k}=${v}`).join("&")}`));

const cborValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.integer(),
    fc.string({ maxLength: 16 }),
    fc.uint8Array({ maxLength: 32 }),
    fc.constantFrom(null, true, false),
    fc.array(tie("value"), { maxLength: 4 }),
    fc
      .array(
        fc.tuple(
          fc.oneof(fc.integer({ min: -10, max: 10 }), fc.string({ maxLength: 16 })),
          tie("value"),
        ),
        {
          maxLength: 4,
        },
      )
      .map((kv) => new Map(kv)),
  ),
})).value;

const body = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)) },
  {
    weight: 3,
    arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v))),
  },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.jsonValue({ maxDepth: 3 }), fc.nat()).map(([v, cut]) => {
      const s = Buffer.from(JSON.stringify(v));
      return s.subarray(0, s.length <= 1 ? 0 : cut % s.length);
    }),
  },
  { weight: 2, arbitrary: cborValue.map((v) => cborEncode(v)) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(cborValue, cborValue, cborValue, cborValue)
      .map(([p, u, payload, sig]) => cborEncode(new Tag([cborEncode(p), u, payload, sig], 18))),
  },
);

const headers = fc
  .record(
    {
      "content-type": fc.oneof(
        fc.constantFrom(
          "application/json",
          "text/plain",
          "application/cose",
          "application/octet-stream",
        ),
        fc.stringMatching(/^[a-z]{1,8}\/[a-z+-]{1,12}$/),
      ),
      "x-ms-ccf-transaction-id": txIdLike.filter((s) => /^[\x21-\x7e]*$/.test(s)),
    },
    { requiredKeys: [] },
  )
  .map((h) => h as Record<string, string>);

const fuzzRequest: fc.Arbitrary<FuzzRequest> = fc
  .record({
    method: fc.constantFrom(
      "GET",
      "GET",
      "POST",
      "POST",
      "PUT",
      "DELETE",
      "PATCH",
      "HEAD",
      "OPTIONS",
    ),
    path,
    query,
    headers,
    body,
  })
  .map(({ method, path, query, headers, body }) => ({
    method,
    path: `${path}${query}`,
    headers,
    body: method === "GET" || method === "HEAD" ? undefined : body,
  }));

// ---------------------------------------------------------------------------------------------
// What an answer may be

/** CCF answers 500 when a JS app handler throws (the logging sample throws on malformed input). */
function isAppException(req: FuzzRequest, a: Answer): boolean {
  if (a.status !== 500 || !req.path.startsWith("/app/")) return false;
  try {
    const e = (JSON.parse(a.text) as { error: { code: string; message: string } }).error;
    return e.code === "InternalError" && e.message === "Exception thrown while executing.";
  } catch {
    return false;
  }
}

/** The logging sample's own refusals, whose bodies are the app's, not CCF's error shape. */
function isAppOwnRefusal(req: FuzzRequest, a: Answer): boolean {
  return (
    (a.status === 415 && req.path.includes("/raw_text/")) ||
    (a.status === 403 && req.path.includes("/admin_only")) ||
    (a.status === 401 && req.path.startsWith("/app/custom_auth"))
  );
}

function checkErrorShape(req: FuzzRequest, a: Answer): void {
  if (req.method === "HEAD" || isAppOwnRefusal(req, a)) return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(a.text);
  } catch {
    assert.fail(`${a.status} body is not JSON: ${a.text.slice(0, 200)}`);
  }
  const error = (parsed as { error?: { code?: unknown; message?: unknown } }).error;
  assert.ok(
    typeof error?.code === "string" && error.code.length > 0 && typeof error.message === "string",
    `${a.status} body is not CCF's error shape: ${a.text.slice(0, 200)}`,
  );
}

/**
 * The writes a request may make on purpose: the logging sample stores any text/plain body under
 * raw_text/{id} and deletes records by id. Any other 2xx to a write method is a failure.
 */
function isValidWrite(req: FuzzRequest): boolean {
  const p = req.path.split("?")[0] ?? "";
  if (req.method === "POST" && /^\/app\/log\/private\/raw_text\/[^/]+$/.test(p)) return true;
  if (
    req.method === "POST" &&
    /^\/app\/log\/(private|public)(\/anonymous|\/prefix_cert)?$/.test(p)
  ) {
    return true; // a body that happens to be {id, msg} is a valid record
  }
  if (req.method === "DELETE" && /^\/app\/log\/(private|public)(\/all)?$/.test(p)) return true;
  return false;
}

// ---------------------------------------------------------------------------------------------

describe("fuzzing a node's HTTP front end", () => {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-fuzz-http-"));
  let node: Awaited<ReturnType<typeof startNode>>["node"];
  let base: string;
  let origin: string;
  let user: Agent;
  const PROBE = "/app/log/public?scope=fuzzprobe&id=4242";

  async function send(req: FuzzRequest): Promise<Answer> {
    // The dispatcher takes the path as it is: a URL would resolve `..` and re-encode segments.
    const res = await user.request({
      origin,
      method: req.method,
      path: req.path,
      headers: req.headers,
      ...(req.body === undefined ? {} : { body: req.body }),
      headersTimeout: 20_000,
      bodyTimeout: 20_000,
    });
    const text = Buffer.from(await res.body.arrayBuffer()).toString("utf8");
    return { status: res.statusCode, headers: res.headers, text };
  }

  async function get(p: string): Promise<Answer> {
    return await send({ method: "GET", path: p, headers: {}, body: undefined });
  }

  async function commitPoint(): Promise<string> {
    const a = await get("/app/commit");
    assert.equal(a.status, 200, a.text);
    return (JSON.parse(a.text) as { transaction_id: string }).transaction_id;
  }

  /** The commit point once it has stopped moving (the last write's signature committed). */
  async function settledCommit(): Promise<string> {
    let last = await commitPoint();
    return await waitFor("the commit point to settle", async () => {
      await new Promise((r) => setTimeout(r, 300));
      const now = await commitPoint();
      if (now === last) return now;
      last = now;
      return undefined;
    });
  }

  before(async () => {
    makeMemberAndUser(dir);
    const config = openAppNodeConfig(dir, BUNDLE, { tx_count: 10, delay: "50ms" });
    ({ node, base } = await startNode(dir, config));
    origin = new URL(base).origin;
    user = clientAgent(dir, readFileSync(join(dir, "service_cert.pem"), "utf8"));
    const probe = await send({
      method: "POST",
      path: PROBE,
      headers: { "content-type": "application/json" },
      body: Buffer.from(JSON.stringify({ id: 4242, msg: "probe written before the fuzz" })),
    });
    assert.equal(probe.status, 200, probe.text);
  });

  after(async () => {
    await user?.close();
    if (node?.exitCode === null) node.kill("SIGTERM");
  });

  it(`answers ${RUNS} fuzzed requests with clear errors and changes nothing (seed ${SEED})`, async (t) => {
    const commitBefore = await settledCommit();
    const writes: FuzzRequest[] = [];
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(fuzzRequest, async (req) => {
        let a: Answer;
        try {
          a = await send(req);
        } catch (e) {
          // undici refuses some requests before sending them (e.g. a HEAD with a body).
          if (e instanceof errors.InvalidArgumentError) return;
          throw e;
        }
        statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
        const what = `${req.method} ${req.path.slice(0, 200)} -> ${a.status} ${a.text.slice(0, 300)}`;
        if (a.status >= 500) assert.ok(isAppException(req, a), `server error: ${what}`);
        else if (a.status >= 400) checkErrorShape(req, a);
        else if (a.status < 300 && !["GET", "HEAD", "OPTIONS"].includes(req.method)) {
          // multi_auth answers who called and writes nothing (the commit check below holds it to that).
          if (!(req.method === "POST" && /^\/app\/multi_auth(\?|$)/.test(req.path))) {
            assert.ok(isValidWrite(req), `a write succeeded: ${what}`);
            writes.push(req);
          }
        }
        const state = await get("/node/state");
        assert.equal(state.status, 200, `/node/state after ${what}: ${state.text}`);
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    t.diagnostic(
      `statuses: ${JSON.stringify(Object.fromEntries(statuses))}, writes: ${writes.length}`,
    );
    const probe = await get(PROBE);
    assert.equal(probe.status, 200, probe.text);
    assert.deepEqual(JSON.parse(probe.text), { msg: "probe written before the fuzz" });
    const commitAfter = await settledCommit();
    if (writes.length === 0)
      assert.equal(commitAfter, commitBefore, "no write, yet the commit moved");
  });
});
