// Load: 1000 concurrent TLS sessions (user certificates, keep-alive) spread over a service of three
// nodes, each session writing and reading while all 1000 are open (writes sent to backups are
// forwarded to the primary). Every request must be answered correctly on the session it was sent
// on; each node's session counters must have seen the sessions it held; the writes must be
// committed and readable on every node; and once the clients leave, the sessions and the nodes'
// descriptors must go back to where they were. Past the session caps (a second, small interface on
// the primary), CCF's 503 SessionCapExhausted and the refusal before TLS.

import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { Agent, Client, Pool, request } from "undici";
import { joinCommand, singleNodeConfig } from "../helpers/node-config.js";
import { startNode, waitFor } from "../helpers/process.js";
import { makeMemberAndUser } from "../helpers/identities.js";

const LOGGING_APP = join(import.meta.dirname, "../../samples/apps/logging/dist/bundle.json");
const SESSIONS = 1000;
/** Room for the 1000 sessions (about 334 a node) and the test's own, as the brief's caps. */
const SOFT_CAP = 1200;
const HARD_CAP = 1300;
/** The primary's second interface, to reach the caps with a handful of sessions. */
const SMALL_SOFT_CAP = 2;
const SMALL_HARD_CAP = 4;
const SIGNATURES = { tx_count: 500, delay: "100ms" };
/**
 * CCF's default election timeout is 5 s. On a two-core box shared with other jobs, a primary
 * serving 1000 sessions can leave consensus messages waiting longer than that behind the
 * forwarded requests queued on its main thread, and the backups elect another primary (seen
 * here: a vote request processed 18 s after it arrived). An election is correct behaviour, but
 * it fails the sessions forwarded in the old view (SessionConsistencyLost) and may roll back
 * answered writes, which this test must not count on: it runs with a longer timeout.
 */
const CONSENSUS = { election_timeout: "60000ms" };
/** Descriptors a node may hold above its idle count once every client has gone. */
const FD_SLACK = 10;

interface InterfaceMetrics {
  active: number;
  peak: number;
  soft_cap: number;
  hard_cap: number;
}

type Node = Awaited<ReturnType<typeof startNode>>;

/** Open descriptors of a process, from /proc (Linux). */
function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

function parseTxId(s: unknown): { view: number; seqno: number } {
  const m = typeof s === "string" ? /^(\d+)\.(\d+)$/.exec(s) : null;
  assert.ok(m, `a transaction id, got ${String(s)}`);
  return { view: Number(m[1]), seqno: Number(m[2]) };
}

/** One client session: a keep-alive connection that records every (re)connection and drop. */
interface Session {
  index: number;
  node: number;
  client: Client;
  connects: number;
  drops: string[];
}

describe("1000 concurrent TLS sessions on a service of three nodes", () => {
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-load-"));
  const nodes: Node[] = [];
  let ca: string;
  let cert: string;
  let key: string;
  /** Anonymous, for metrics and status reads; one connection per node. */
  let observer: Agent;
  let smallInterface: { host: string; port: number };
  const fdBaseline: number[] = [];

  async function getJson(base: string, path: string): Promise<Record<string, unknown>> {
    const res = await request(`${base}${path}`, { dispatcher: observer });
    const text = await res.body.text();
    assert.equal(res.statusCode, 200, `${base}${path}: ${text}`);
    return JSON.parse(text) as Record<string, unknown>;
  }

  async function metrics(base: string, iface = "primary_rpc_interface"): Promise<InterfaceMetrics> {
    const body = await getJson(base, "/node/metrics");
    const sessions = body.sessions as { interfaces: Record<string, InterfaceMetrics> };
    const m = sessions.interfaces[iface];
    assert.ok(m !== undefined, `${base} reports ${iface}`);
    return m;
  }

  function rpcInterfaces(config: Record<string, unknown>): Record<string, Record<string, unknown>> {
    return (config.network as { rpc_interfaces: Record<string, Record<string, unknown>> })
      .rpc_interfaces;
  }

  before(async () => {
    makeMemberAndUser(dir);
    cert = readFileSync(join(dir, "user0_cert.pem"), "utf8");
    key = readFileSync(join(dir, "user0_privk.pem"), "utf8");
    const caps = {
      max_open_sessions_soft: SOFT_CAP,
      max_open_sessions_hard: HARD_CAP,
      // 1000 writes arrive at once, two thirds of them forwarded: on a busy two-core box the
      // primary can take longer than CCF's default 3 s to answer the last of them.
      forwarding_timeout_ms: 30_000,
    };
    const dir0 = join(dir, "n0");
    mkdirSync(dir0);
    for (const f of ["member0_cert.pem", "member0_enc_pubk.pem"]) {
      writeFileSync(join(dir0, f), readFileSync(join(dir, f)));
    }
    const config0 = singleNodeConfig(dir0, {
      start: {
        users: [{ certificate_file: join(dir, "user0_cert.pem") }],
        js_app_bundle: LOGGING_APP,
      },
      rpcInterface: caps,
      signatures: SIGNATURES,
    });
    config0.consensus = CONSENSUS;
    rpcInterfaces(config0).small_interface = {
      bind_address: "127.0.0.1:0",
      max_open_sessions_soft: SMALL_SOFT_CAP,
      max_open_sessions_hard: SMALL_HARD_CAP,
    };
    nodes.push(await startNode(dir0, config0));
    const serviceCert = join(dir0, "service_cert.pem");
    ca = readFileSync(serviceCert, "utf8");
    observer = new Agent({ connect: { ca } });
    const small = (
      JSON.parse(readFileSync(join(dir0, "rpc_addresses.json"), "utf8")) as Record<string, string>
    ).small_interface;
    const colon = small.lastIndexOf(":");
    smallInterface = { host: small.slice(0, colon), port: Number(small.slice(colon + 1)) };
    // The service stays Opening, so the joiners are trusted at once (as multinode.test.ts).
    for (const i of [1, 2]) {
      const d = join(dir, `n${i}`);
      mkdirSync(d);
      const config = singleNodeConfig(d, { rpcInterface: caps, signatures: SIGNATURES });
      config.consensus = CONSENSUS;
      config.command = joinCommand(serviceCert, nodes[0].base);
      nodes.push(await startNode(d, config));
    }
    await waitFor(
      "three trusted nodes in one configuration",
      async () => {
        const details = (await getJson(nodes[0].base, "/node/consensus")).details as {
          configs: Array<{ nodes: Record<string, unknown> }>;
        };
        return details.configs.length === 1 &&
          Object.keys(details.configs[0]?.nodes ?? {}).length === 3
          ? true
          : undefined;
      },
      60_000,
    );
    for (const n of nodes) {
      await waitFor(
        `${n.base} to be part of the network`,
        async () =>
          (await getJson(n.base, "/node/state")).state === "PartOfNetwork" ? true : undefined,
        60_000,
      );
    }
    if (existsSync("/proc/self/fd")) {
      for (const n of nodes) fdBaseline.push(openFds(n.node.pid ?? 0));
    }
  });

  after(async () => {
    await observer?.close();
    for (const [i, n] of nodes.entries()) {
      writeFileSync(join(dir, `n${i}.log`), n.node.output());
      if (n.node.exitCode === null) n.node.kill("SIGTERM");
    }
  });

  it("serves 1000 sessions held at once: every request answered on its session, written everywhere, and released", async (t) => {
    const t0 = Date.now();
    const phase = (what: string) =>
      t.diagnostic(`${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const sessions: Session[] = Array.from({ length: SESSIONS }, (_, index) => {
      const node = index % nodes.length;
      const client = new Client(nodes[node].base, {
        connect: { ca, cert, key, timeout: 60_000 },
        pipelining: 1,
        // Held open across the whole test: no idle timeout on our side.
        keepAliveTimeout: 600_000,
        keepAliveMaxTimeout: 600_000,
        headersTimeout: 60_000,
        bodyTimeout: 60_000,
      });
      const s: Session = { index, node, client, connects: 0, drops: [] };
      client.on("connect", () => {
        s.connects++;
      });
      client.on("disconnect", (_origin, _targets, err) => {
        s.drops.push(err.message);
      });
      client.on("connectionError", (_origin, _targets, err) => {
        s.drops.push(`connection error: ${err.message}`);
      });
      return s;
    });
    const held = nodes.map((_, n) => sessions.filter((s) => s.node === n).length);
    const txIds: Array<{ view: number; seqno: number }> = [];
    const failures: string[] = [];

    async function call(s: Session, method: "GET" | "POST", path: string, body?: unknown) {
      const res = await s.client.request({
        method,
        path,
        ...(body === undefined
          ? {}
          : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
      });
      return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
    }

    try {
      // 1. Every session opens with a private write (on a backup, forwarded to the primary).
      await Promise.all(
        sessions.map(async (s) => {
          try {
            const r = await call(s, "POST", "/app/log/private", {
              id: s.index,
              msg: `private ${s.index}`,
            });
            if (r.status !== 200 || r.text !== "true") {
              failures.push(`session ${s.index} write: ${r.status} ${r.text.slice(0, 200)}`);
              return;
            }
            txIds.push(parseTxId(r.headers["x-ms-ccf-transaction-id"]));
          } catch (e) {
            failures.push(`session ${s.index} write: ${String(e)}`);
          }
        }),
      );
      assert.deepEqual(failures.slice(0, 5), [], `${failures.length} failed requests`);

      phase("1000 sessions open, one write each");
      // All 1000 are open now, each node counting the sessions it holds (plus the observer's).
      for (const [n, node] of nodes.entries()) {
        const m = await metrics(node.base);
        assert.ok(m.active >= held[n], `node ${n}: ${m.active} active, holding ${held[n]}`);
        assert.ok(m.peak >= held[n], `node ${n}: peak ${m.peak}, holding ${held[n]}`);
        assert.equal(m.soft_cap, SOFT_CAP);
        assert.equal(m.hard_cap, HARD_CAP);
      }

      // 2. While they are all open, each session reads its record back and writes a public one.
      await Promise.all(
        sessions.map(async (s) => {
          try {
            const read = await call(s, "GET", `/app/log/private?id=${s.index}`);
            if (
              read.status !== 200 ||
              read.text !== JSON.stringify({ msg: `private ${s.index}` })
            ) {
              failures.push(`session ${s.index} read: ${read.status} ${read.text.slice(0, 200)}`);
            }
            const w = await call(s, "POST", "/app/log/public", {
              id: s.index,
              msg: `public ${s.index}`,
            });
            if (w.status !== 200 || w.text !== "true") {
              failures.push(`session ${s.index} public write: ${w.status} ${w.text.slice(0, 200)}`);
              return;
            }
            txIds.push(parseTxId(w.headers["x-ms-ccf-transaction-id"]));
          } catch (e) {
            failures.push(`session ${s.index} second round: ${String(e)}`);
          }
        }),
      );
      assert.deepEqual(failures.slice(0, 5), [], `${failures.length} failed requests`);
      assert.equal(txIds.length, 2 * SESSIONS);

      // No session was ever dropped or reopened: the 1000 were held throughout.
      const reopened = sessions.filter((s) => s.connects !== 1 || s.drops.length > 0);
      assert.deepEqual(
        reopened.slice(0, 5).map((s) => ({ index: s.index, connects: s.connects, drops: s.drops })),
        [],
        `${reopened.length} sessions were dropped or reopened`,
      );
      for (const [n, node] of nodes.entries()) {
        const m = await metrics(node.base);
        assert.ok(m.active >= held[n], `node ${n}: ${m.active} active, holding ${held[n]}`);
      }
    } finally {
      await Promise.all(sessions.map((s) => s.client.close().catch(() => undefined)));
    }

    phase("second round done, sessions closed");
    // 3. Committed on every node, and every record readable there (backups read locally).
    const last = txIds.reduce((a, b) =>
      a.view > b.view || (a.view === b.view && a.seqno > b.seqno) ? a : b,
    );
    assert.ok(
      txIds.every((t) => t.view === last.view),
      `no election happened during the load: views ${JSON.stringify([...new Set(txIds.map((t) => t.view))])}`,
    );
    for (const node of nodes) {
      await waitFor(
        `${last.view}.${last.seqno} committed on ${node.base}`,
        async () => {
          const s = await getJson(node.base, `/app/tx?transaction_id=${last.view}.${last.seqno}`);
          return s.status === "Committed" ? true : undefined;
        },
        60_000,
      );
      // Every node holds all 1000 records of each table; a tenth of them read back in full.
      const reader = new Pool(node.base, { connections: 8, connect: { ca, cert, key } });
      try {
        const wrong: string[] = [];
        for (const visibility of ["private", "public"]) {
          const r = await reader.request({ method: "GET", path: `/app/log/${visibility}/count` });
          const text = await r.body.text();
          if (r.statusCode !== 200 || text !== String(SESSIONS)) {
            wrong.push(`${visibility} count: ${r.statusCode} ${text.slice(0, 100)}`);
          }
        }
        const sampled = Array.from({ length: SESSIONS / 10 }, (_, k) => 10 * k + (k % 10));
        await Promise.all(
          sampled.map(async (i) => {
            for (const visibility of ["private", "public"]) {
              const r = await reader.request({
                method: "GET",
                path: `/app/log/${visibility}?id=${i}`,
              });
              const text = await r.body.text();
              if (r.statusCode !== 200 || text !== JSON.stringify({ msg: `${visibility} ${i}` })) {
                wrong.push(`${visibility} ${i}: ${r.statusCode} ${text.slice(0, 100)}`);
              }
            }
          }),
        );
        assert.deepEqual(wrong.slice(0, 5), [], `${node.base}: ${wrong.length} records wrong`);
      } finally {
        await reader.close();
      }
    }

    phase("committed and read back on every node");
    // 4. The clients are gone: the nodes count no session but the observer's, and hold no more
    // descriptors than before the load.
    for (const [n, node] of nodes.entries()) {
      const m = await waitFor(`node ${n}'s sessions to close`, async () => {
        const now = await metrics(node.base);
        return now.active <= 1 ? now : undefined;
      });
      assert.ok(m.peak >= held[n], `node ${n}: peak ${m.peak} < ${held[n]}`);
      if (fdBaseline.length > 0) {
        const pid = node.node.pid ?? 0;
        await waitFor(`node ${n}'s descriptors back to ${fdBaseline[n]} ± ${FD_SLACK}`, () =>
          openFds(pid) <= fdBaseline[n] + FD_SLACK ? true : undefined,
        );
      }
    }
  });

  it("answers a session opened past the soft cap with 503 SessionCapExhausted, and refuses one at the hard cap before TLS", async () => {
    const base = `https://${smallInterface.host}:${smallInterface.port}`;
    const open = async (c: Client) => {
      const r = await c.request({ method: "GET", path: "/node/state" });
      return { status: r.statusCode, headers: r.headers, text: await r.body.text() };
    };
    const small = () =>
      new Client(base, {
        connect: { ca },
        keepAliveTimeout: 600_000,
        keepAliveMaxTimeout: 600_000,
      });
    const within = [small(), small()];
    const raw: tls.TLSSocket[] = [];
    try {
      for (const c of within) assert.equal((await open(c)).status, 200);
      // A third session: past the soft cap, one 503 in CCF's error shape, then the session ends.
      const third = small();
      try {
        const r = await open(third);
        assert.equal(r.status, 503);
        assert.deepEqual(JSON.parse(r.text), {
          error: {
            code: "SessionCapExhausted",
            message: "Service is currently busy and unable to serve new connections",
          },
        });
        assert.equal(r.headers.connection, "close");
      } finally {
        await third.close();
      }
      await waitFor("the capped session to be closed", async () =>
        (await metrics(nodes[0].base, "small_interface")).active === 2 ? true : undefined,
      );
      // Two idle TLS sessions fill the interface up to its hard cap...
      for (let i = 0; i < SMALL_HARD_CAP - SMALL_SOFT_CAP; i++) {
        raw.push(
          await new Promise<tls.TLSSocket>((resolve, reject) => {
            const s = tls.connect({ ...smallInterface, ca }, () => resolve(s));
            s.once("error", reject);
          }),
        );
      }
      await waitFor("the interface to be full", async () =>
        (await metrics(nodes[0].base, "small_interface")).active === SMALL_HARD_CAP
          ? true
          : undefined,
      );
      // ...and the next one is closed before its handshake completes.
      const outcome = await new Promise<string>((resolve) => {
        const s = tls.connect({ ...smallInterface, ca }, () => resolve("handshake completed"));
        raw.push(s);
        s.on("error", () => resolve("refused"));
        s.on("close", () => resolve("refused"));
      });
      assert.equal(outcome, "refused");
      const m = await metrics(nodes[0].base, "small_interface");
      assert.equal(m.active, SMALL_HARD_CAP);
      assert.equal(m.peak, SMALL_HARD_CAP, "the refused connection was never counted");
      assert.equal(m.soft_cap, SMALL_SOFT_CAP);
      assert.equal(m.hard_cap, SMALL_HARD_CAP);
      // The sessions within the soft cap were served throughout.
      for (const c of within) assert.equal((await open(c)).status, 200);
    } finally {
      for (const s of raw) s.destroy();
      await Promise.all(within.map((c) => c.close()));
    }
    // Once they are gone, a new session is served again.
    await waitFor("the small interface to be empty", async () =>
      (await metrics(nodes[0].base, "small_interface")).active === 0 ? true : undefined,
    );
    const again = small();
    try {
      assert.equal((await open(again)).status, 200);
    } finally {
      await again.close();
    }
  });
});
