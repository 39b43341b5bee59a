// The web console (issue #15) against a 3-node `ccf-ts sandbox`: the node serves its fixed files
// and nothing else under /node/console, lists its ledger chunks, and the page, opened in Debian's
// Chromium (driven by playwright-core) without a client certificate, shows the nodes, members,
// users, an open proposal with its ballot, the app's endpoints, committed transactions and the
// ledger's chunks, as the node's public endpoints report them. A screenshot is kept in
// test-artifacts/console.png. The browser test skips itself where /usr/bin/chromium is missing.

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { Agent, request } from "undici";
import { runCcfTs, startCcfTs, waitFor } from "../helpers/process.js";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = join(import.meta.dirname, "../../test-artifacts");
const API = "api-version=2024-07-01";

interface NetworkNode {
  node_id: string;
  status: string;
  primary: boolean;
}

describe("web console", () => {
  const cwd = mkdtempSync(join(tmpdir(), "ccf-ts-console-"));
  const common = join(cwd, "ws", "sandbox_common");
  let sandbox: ReturnType<typeof startCcfTs> | undefined;
  let bases: string[] = [];
  let agent: Agent;

  async function get(base: string, path: string) {
    const res = await request(`${base}${path}`, { dispatcher: agent });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text };
  }

  async function getJson<T>(base: string, path: string): Promise<T> {
    const r = await get(base, path);
    assert.equal(r.status, 200, `${path}: ${r.text}`);
    return JSON.parse(r.text) as T;
  }

  /** A `ccf-ts gov` command from sandbox_common against node 0; its JSON output. */
  function gov(...args: string[]): { proposalId: string; proposalState: string } {
    const out = runCcfTs(["gov", "--url", bases[0] ?? "", ...args], common);
    assert.equal(out.status, 0, out.stderr);
    return JSON.parse(out.stdout) as { proposalId: string; proposalState: string };
  }

  before(async () => {
    const started = startCcfTs(["sandbox", "--port", "0", "--workspace", "ws"], cwd);
    sandbox = started;
    await waitFor(
      "the sandbox to open the service",
      () => {
        if (started.exitCode !== null) throw new Error(`sandbox exited: ${started.output()}`);
        return /Press Ctrl\+C to stop/.test(started.output()) ? true : undefined;
      },
      180_000,
    );
    bases = [...started.output().matchAll(/node (\d): (https:\/\/\S+)/g)]
      .sort((a, b) => Number(a[1]) - Number(b[1]))
      .map((m) => m[2] ?? "");
    assert.equal(bases.length, 3, started.output());
    agent = new Agent({ connect: { ca: readFileSync(join(common, "service_cert.pem"), "utf8") } });
  });

  after(async () => {
    await agent?.close();
    const s = sandbox;
    if (s === undefined || s.exitCode !== null) return;
    s.kill("SIGTERM");
    await waitFor("the sandbox to stop", () => s.exitCode ?? undefined, 30_000).catch(() => {
      s.kill("SIGKILL");
    });
  });

  it("serves the page and its assets with their content types, uncached", async () => {
    const base = bases[1] ?? "";
    for (const [path, type, marker] of [
      ["/node/console", "text/html", 'data-testid="section-nodes"'],
      ["/node/console/index.html", "text/html", "<!doctype html>"],
      ["/node/console/console.js", "text/javascript", "fetchRound"],
      ["/node/console/console.css", "text/css", "section"],
    ] as const) {
      const r = await get(base, path);
      assert.equal(r.status, 200, `${path}: ${r.text}`);
      assert.match(String(r.headers["content-type"]), new RegExp(`^${type}; charset=utf-8$`), path);
      assert.equal(r.headers["cache-control"], "no-cache", path);
      assert.match(String(r.headers["content-security-policy"]), /script-src 'self'/, path);
      assert.ok(r.text.includes(marker), path);
    }
    const html = (await get(base, "/node/console")).text;
    assert.equal(html, readFileSync(join(import.meta.dirname, "../../console/index.html"), "utf8"));
  });

  it("serves nothing but its own files under /node/console (no path traversal)", async () => {
    const origin = bases[0] ?? "";
    const packageJson = readFileSync(join(import.meta.dirname, "../../package.json"), "utf8");
    for (const path of [
      "/node/console/package.json",
      "/node/console/..%2F..%2Fpackage.json",
      "/node/console/%2e%2e%2fpackage.json",
      "/node/console/../../package.json",
      "/node/console/console.ts",
      "/node/console/index.html%00",
      "/node/console/",
      "/node/console/console.js/x",
      "/node/console/toString",
      "/node/console/__proto__",
    ]) {
      // `path` goes out as written: a URL string would have its dot segments folded.
      const res = await agent.request({ origin, path, method: "GET" });
      const text = await res.body.text();
      assert.equal(res.statusCode, 404, `${path}: ${text}`);
      const body = JSON.parse(text) as { error: { code: string; message: string } };
      assert.equal(body.error.code, "ResourceNotFound", path);
      assert.ok(!text.includes(packageJson.slice(0, 40)), path);
    }
    const post = await request(`${origin}/node/console`, { dispatcher: agent, method: "POST" });
    await post.body.dump();
    assert.equal(post.statusCode, 405);
  });

  it("lists the chunk files of the node's ledger directory at /node/ledger/chunks", async () => {
    const ledgerDir = join(cwd, "ws", "sandbox_0", "0.ledger");
    const self = await getJson<{ node_id: string }>(bases[0] ?? "", "/node/network/nodes/self");
    // Chunks are renamed as they complete and commit: wait for a listing that matches the folder.
    await waitFor("the listing to match the ledger directory", async () => {
      const listed = await getJson<{
        node_id: string;
        chunks: Array<{ name: string; start_seqno: number; committed: boolean; size: number }>;
      }>(bases[0] ?? "", "/node/ledger/chunks");
      assert.equal(listed.node_id, self.node_id);
      const files = readdirSync(ledgerDir).sort();
      const names = listed.chunks.map((c) => c.name);
      if (JSON.stringify([...names].sort()) !== JSON.stringify(files)) return undefined;
      assert.equal(listed.chunks[0]?.start_seqno, 1);
      for (const c of listed.chunks) {
        assert.equal(c.committed, c.name.endsWith(".committed"), c.name);
        assert.ok(c.size > 0, c.name);
      }
      return true;
    });
  });

  it("shows the service in a browser, read-only, from the node's public endpoints", async (t) => {
    if (!existsSync(CHROMIUM)) {
      t.skip(`${CHROMIUM} is missing (.ci/run installs Debian's chromium)`);
      return;
    }
    const base = bases[0] ?? "";
    // An open proposal with one ballot (member0's), and an accepted one that closes a chunk.
    const keygen = runCcfTs(["keygen", "--name", "user9"], common);
    assert.equal(keygen.status, 0, keygen.stderr);
    writeFileSync(
      join(common, "add_user9.json"),
      JSON.stringify({
        actions: [
          {
            name: "set_user",
            args: {
              cert: readFileSync(join(common, "user9_cert.pem"), "utf8"),
              user_data: { note: "<b>shown as text</b>" },
            },
          },
        ],
      }),
    );
    const open = gov("propose", "add_user9.json", "--vote");
    assert.equal(open.proposalState, "Open");
    writeFileSync(
      join(common, "chunk.json"),
      JSON.stringify({ actions: [{ name: "trigger_ledger_chunk", args: {} }] }),
    );
    const chunk = gov("propose", "chunk.json", "--vote");
    assert.equal(gov("--member", "member1", "vote", chunk.proposalId).proposalState, "Accepted");

    const nodes = (await getJson<{ nodes: NetworkNode[] }>(base, "/node/network/nodes")).nodes;
    const members = (
      await getJson<{ value: Array<{ memberId: string }> }>(base, `/gov/service/members?${API}`)
    ).value;
    // A member's id is the SHA-256 of its certificate's DER.
    const member0Id = new X509Certificate(
      readFileSync(join(common, "member0_cert.pem")),
    ).fingerprint256
      .replace(/:/g, "")
      .toLowerCase();
    assert.ok(members.some((m) => m.memberId === member0Id));
    const network = await getJson<{ current_service_create_txid: string }>(base, "/node/network");
    const fingerprint = new X509Certificate(readFileSync(join(common, "service_cert.pem")))
      .fingerprint256;

    const { chromium } = await import("playwright-core");
    let browser: Browser | undefined;
    try {
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ["--ignore-certificate-errors"],
      });
      const context = await browser.newContext({
        ignoreHTTPSErrors: true,
        viewport: { width: 1280, height: 900 },
      });
      const page = await context.newPage();
      const requests: string[] = [];
      page.on("request", (r) => requests.push(`${r.method()} ${r.url()}`));
      const pageErrors: string[] = [];
      page.on("pageerror", (e) => pageErrors.push(e.message));
      await page.goto(`${base}/node/console?refresh=1000`);
      await allSectionsOk(page);

      // Nodes: the three of /node/network/nodes, exactly one primary, each with view and commit.
      await inPage(
        page,
        `[...document.querySelectorAll('[data-testid="node-row"]')].length === 3 &&
         [...document.querySelectorAll('[data-testid="node-commit"]')]
           .every((c) => /^[0-9]+[.][0-9]+$/.test(c.textContent.trim()))`,
      );
      const rows = (
        await rowsOf(
          page,
          "node-row",
          ["data-node-id"],
          ["node-id", "node-role", "node-status", "node-view"],
        )
      ).map((r) => ({
        id: r["data-node-id"] ?? "",
        shown: r["node-id"] ?? "",
        role: r["node-role"] ?? "",
        status: r["node-status"] ?? "",
        view: r["node-view"] ?? "",
      }));
      assert.deepEqual(rows.map((r) => r.id).sort(), nodes.map((n) => n.node_id).sort());
      for (const r of rows) {
        assert.ok(r.shown.startsWith(r.id.slice(0, 8)), `${r.shown} shows ${r.id}`);
        assert.equal(r.status, "Trusted");
        assert.match(r.view, /^\d+$/);
      }
      assert.equal(rows.filter((r) => r.role === "Primary").length, 1);
      assert.equal(
        rows.find((r) => r.role === "Primary")?.id,
        nodes.find((n) => n.primary)?.node_id,
      );
      assert.equal(rows.filter((r) => r.role === "Backup").length, 2);

      // Service: status, the certificate's fingerprint as openssl prints it, creation TxID.
      assert.equal(await text(page, "service-status"), "Open");
      assert.equal(await text(page, "service-cert-fingerprint"), fingerprint);
      assert.match(await text(page, "service-cert-subject"), /CN=/);
      assert.equal(await text(page, "service-create-txid"), network.current_service_create_txid);

      // Members and users.
      assert.equal(await page.locator('[data-testid="member-row"]').count(), members.length);
      assert.equal(members.length, 3);
      assert.equal(await page.locator('[data-testid="user-row"]').count(), 3);

      // The open proposal, its proposer, member0's ballot and its actions; not the accepted one.
      const proposal = page.locator(
        `[data-testid="proposal"][data-proposal-id="${open.proposalId}"]`,
      );
      await proposal.waitFor({ timeout: 30_000 });
      assert.equal(
        await page.locator(`[data-proposal-id="${chunk.proposalId}"]`).count(),
        0,
        "an accepted proposal is not listed as open",
      );
      assert.equal(await proposal.locator('[data-testid="proposal-state"]').textContent(), "Open");
      const ballots = proposal.locator('[data-testid="ballot"]');
      assert.equal(await ballots.count(), 1);
      assert.equal(await ballots.first().getAttribute("data-member-id"), member0Id);
      assert.match(
        (await ballots.first().locator('[data-testid="ballot-text"]').textContent()) ?? "",
        /return true/,
      );
      const actions = JSON.parse(
        (await proposal.locator('[data-testid="proposal-actions"]').textContent()) ?? "",
      ) as { actions: Array<{ name: string; args: { user_data: { note: string } } }> };
      assert.equal(actions.actions[0]?.name, "set_user");
      // Data is text, never markup: the proposal's "<b>" did not become an element.
      assert.equal(await page.locator("section b").count(), 0);

      // The logging app's endpoints.
      const endpoints = (await rowsOf(page, "endpoint-row", ["data-method", "data-path"], [])).map(
        (r) => `${r["data-method"]} ${r["data-path"]}`,
      );
      for (const e of ["POST /log/private", "GET /log/private", "GET /log/public/count"]) {
        assert.ok(endpoints.includes(e), `${e} in ${endpoints.join(", ")}`);
      }
      const postPrivate = page.locator(
        '[data-testid="endpoint-row"][data-method="POST"][data-path="/log/private"]',
      );
      assert.match(
        (await postPrivate.locator('[data-testid="endpoint-auth"]').textContent()) ?? "",
        /user_cert/,
      );

      // Recent transactions: at least one Committed, each status what /node/tx says (or later).
      await page.waitForSelector('[data-testid="tx-row"][data-status="Committed"]', {
        timeout: 30_000,
      });
      const txs = await rowsOf(page, "tx-row", ["data-txid", "data-status"], ["tx-id"]);
      for (const tx of txs) {
        assert.match(tx["tx-id"] ?? "", /^\d+\.\d+$/);
        assert.equal(tx["tx-id"], tx["data-txid"]);
      }
      for (const tx of txs.filter((x) => x["data-status"] === "Committed")) {
        const id = tx["data-txid"] ?? "";
        const r = await getJson<{ status: string }>(base, `/node/tx?transaction_id=${id}`);
        assert.equal(r.status, "Committed", id);
      }

      // Ledger chunks: the names /node/ledger/chunks gives, one committed once the chunk closed.
      await inPage(
        page,
        `[...document.querySelectorAll('[data-testid="chunk-committed"]')]
           .some((c) => c.textContent === "yes")`,
        60_000,
      );
      const shownChunks = (await rowsOf(page, "chunk-row", [], ["chunk-name"])).map(
        (r) => r["chunk-name"] ?? "",
      );
      assert.match(shownChunks[0] ?? "", /^ledger_1-\d+\.committed$/);
      for (const name of shownChunks) assert.match(name, /^ledger_\d+(-\d+)?(\.committed)?$/);

      mkdirSync(ARTIFACTS, { recursive: true });
      const shot = join(ARTIFACTS, "console.png");
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok(statSync(shot).size > 10_000);

      // Read-only, same origin: every request the page made was a GET to this node.
      const origin = new URL(base).origin;
      assert.ok(requests.length > 0);
      for (const r of requests) {
        assert.ok(r.startsWith(`GET ${origin}/`), r);
      }
      assert.deepEqual(pageErrors, []);

      // A backup's console: the same service, served by that backup.
      const backup = nodes.find((n) => !n.primary);
      assert.ok(backup !== undefined);
      const backupBase = await baseOf(backup.node_id);
      await page.goto(`${backupBase}/node/console?refresh=1000`);
      await allSectionsOk(page);
      assert.equal(
        await page.getAttribute('[data-testid="served-by-node-id"]', "title"),
        backup.node_id,
      );
      assert.equal(await page.locator('[data-testid="node-row"][data-role="Primary"]').count(), 1);
    } finally {
      await browser?.close();
    }
  });

  /** The base URL of the sandbox node whose id is `id`. */
  async function baseOf(id: string): Promise<string> {
    for (const b of bases) {
      const self = await getJson<{ node_id: string }>(b, "/node/network/nodes/self");
      if (self.node_id === id) return b;
    }
    throw new Error(`no sandbox node has id ${id}`);
  }
});

async function text(page: Page, testid: string): Promise<string> {
  return ((await page.textContent(`[data-testid="${testid}"]`)) ?? "").trim();
}

/**
 * Waits until `expression` is true in the page (which keeps refreshing meanwhile). Evaluated
 * through the debugging protocol: the page's own CSP forbids eval, and playwright's
 * waitForFunction evaluates a string predicate with it.
 */
async function inPage(page: Page, expression: string, timeout = 30_000): Promise<void> {
  await waitFor(
    `the page to show ${expression.replace(/\s+/g, " ")}`,
    async () => ((await page.evaluate(expression)) === true ? true : undefined),
    timeout,
  );
}

/**
 * The rows with `data-testid=testid`, read in one go (the page re-renders on every refresh): the
 * named attributes of each row and the text of its cells with the named testids.
 */
async function rowsOf(
  page: Page,
  testid: string,
  attributes: string[],
  cells: string[],
): Promise<Array<Record<string, string>>> {
  const json = await page.evaluate(`JSON.stringify(
    [...document.querySelectorAll('[data-testid="${testid}"]')].map((row) => {
      const out = {};
      for (const a of ${JSON.stringify(attributes)}) out[a] = row.getAttribute(a) ?? "";
      for (const c of ${JSON.stringify(cells)}) {
        out[c] = (row.querySelector('[data-testid="' + c + '"]')?.textContent ?? "").trim();
      }
      return out;
    }))`);
  return JSON.parse(String(json)) as Array<Record<string, string>>;
}

/** Waits until every section of the page has loaded without error. */
async function allSectionsOk(page: Page): Promise<void> {
  await inPage(
    page,
    `[...document.querySelectorAll("section[data-testid]")]
       .every((s) => s.getAttribute("data-state") === "ok") &&
     document.querySelectorAll("section[data-testid]").length === 8`,
  );
}
