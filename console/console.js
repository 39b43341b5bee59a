// The ccf-ts web console: reads the serving node's public endpoints (same origin, no credentials)
// and renders each section. Read-only by construction: it sends GETs only, and writes every value
// into the page as text (never as HTML), since member, user and proposal data are anyone's input.

const API = "api-version=2024-07-01";
const TXID_HEADER = "x-ms-ccf-transaction-id";
/** How many of the latest seqnos "Recent transactions" shows. */
const RECENT_TX = 10;
/** Milliseconds between refreshes; `?refresh=N` overrides it (0: no auto-refresh). */
const REFRESH_MS = (() => {
  const v = Number(new URLSearchParams(location.search).get("refresh") ?? "3000");
  return Number.isFinite(v) && v >= 0 ? v : 3000;
})();

// --- fetching -------------------------------------------------------------------------------

class FetchError extends Error {}

/** GET `path` on this origin; the JSON body (or text) and the headers, or a FetchError. */
async function get(path, { text = false, allow404 = false } = {}) {
  let res;
  try {
    res = await fetch(path, { credentials: "omit", cache: "no-store" });
  } catch (e) {
    throw new FetchError(`${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const body = await res.text();
  if (res.status === 404 && allow404) return { status: 404, body: undefined, headers: res.headers };
  if (!res.ok) {
    let message = body;
    try {
      message = JSON.parse(body).error?.message ?? body;
    } catch {
      // not CCF's error shape: show the text as it came
    }
    throw new FetchError(`${path}: ${res.status} ${message}`);
  }
  let parsed = body;
  if (!text) {
    try {
      parsed = JSON.parse(body);
    } catch {
      throw new FetchError(`${path}: the answer is not JSON`);
    }
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** One refresh's fetches, shared by the sections that need the same endpoint. */
function fetchRound() {
  const seen = new Map();
  return (path, options) => {
    const key = `${path} ${JSON.stringify(options ?? {})}`;
    if (!seen.has(key)) seen.set(key, get(path, options));
    return seen.get(key);
  };
}

/** "v.s" as numbers, or undefined. */
function parseTxId(s) {
  const m = /^(\d+)\.(\d+)$/.exec(String(s ?? ""));
  return m === null ? undefined : { view: Number(m[1]), seqno: Number(m[2]) };
}

// --- building the page (text only) ----------------------------------------------------------

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...content) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === "testid") e.dataset.testid = v;
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of content.flat()) {
    if (c === undefined || c === null) continue;
    e.append(typeof c === "string" || typeof c === "number" ? String(c) : c);
  }
  return e;
}

/**
 * A table. `columns` are [heading, cell testid]; each row is {attrs, cells}, a cell a string or an
 * element.
 */
function table(testid, columns, rows, empty) {
  if (rows.length === 0) return el("p", { testid: `${testid}-empty`, class: "muted" }, empty);
  return el(
    "table",
    { testid },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        columns.map(([heading]) => el("th", {}, heading)),
      ),
    ),
    el(
      "tbody",
      {},
      rows.map((row) =>
        el(
          "tr",
          row.attrs,
          row.cells.map((cell, i) => el("td", { testid: columns[i][1] }, cell)),
        ),
      ),
    ),
  );
}

/** An id shown by its first 16 hex characters, the whole of it in the tooltip. */
function shortId(id, testid) {
  const s = String(id ?? "");
  return el("span", { class: "mono", title: s, testid }, s.length > 16 ? `${s.slice(0, 16)}…` : s);
}

function statusBadge(status, testid) {
  const s = String(status ?? "unknown");
  const kind = /^(Open|Trusted|Active|Committed|Accepted|Primary)$/.test(s)
    ? "status-ok"
    : /^(Invalid|Rejected|Failed|Retired|Dropped)$/.test(s)
      ? "status-bad"
      : "status-pending";
  return el("span", { class: `badge ${kind}`, testid }, s);
}

function facts(pairs) {
  return el(
    "dl",
    { class: "facts" },
    pairs.flatMap(([label, value, testid]) => [
      el("dt", {}, label),
      el("dd", { testid }, value ?? "—"),
    ]),
  );
}

// --- certificates: the subject, validity and SHA-256 fingerprint of a PEM, read in the page ----

function pemToDer(pem) {
  const b64 = String(pem)
    .replace(/-----(BEGIN|END) CERTIFICATE-----/g, "")
    .replace(/\s+/g, "");
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** One DER TLV at `pos`: tag, content bounds. */
function tlv(der, pos) {
  if (pos + 2 > der.length) throw new Error("truncated DER");
  const tag = der[pos];
  let len = der[pos + 1];
  let header = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || pos + 2 + n > der.length) throw new Error("bad DER length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[pos + 2 + i];
    header += n;
  }
  const start = pos + header;
  if (start + len > der.length) throw new Error("truncated DER");
  return { tag, start, end: start + len };
}

function children(der, node) {
  const out = [];
  for (let p = node.start; p < node.end; ) {
    const c = tlv(der, p);
    out.push(c);
    p = c.end;
  }
  return out;
}

function oidText(der, node) {
  const bytes = der.subarray(node.start, node.end);
  const parts = [Math.floor(bytes[0] / 40), bytes[0] % 40];
  let v = 0;
  for (const b of bytes.subarray(1)) {
    v = v * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join(".");
}

const NAME_ATTRIBUTES = {
  "2.5.4.3": "CN",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
};

function nameText(der, node) {
  const parts = [];
  for (const rdn of children(der, node)) {
    for (const atv of children(der, rdn)) {
      const [oid, value] = children(der, atv);
      const label = NAME_ATTRIBUTES[oidText(der, oid)] ?? oidText(der, oid);
      parts.push(`${label}=${new TextDecoder().decode(der.subarray(value.start, value.end))}`);
    }
  }
  return parts.join(", ");
}

function timeText(der, node) {
  const s = new TextDecoder().decode(der.subarray(node.start, node.end));
  // UTCTime (tag 0x17) has a two-digit year: 50-99 are 19xx (RFC 5280).
  const full = node.tag === 0x17 ? `${Number(s.slice(0, 2)) >= 50 ? "19" : "20"}${s}` : s;
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(full);
  return m === null ? s : `${m[1]}-${m[2]}-${m[3]} ${m[4]}:${m[5]}:${m[6]} UTC`;
}

async function describeCertificate(pem) {
  const der = pemToDer(pem);
  const cert = tlv(der, 0);
  const tbs = children(der, cert)[0];
  const fields = children(der, tbs);
  const i = fields[0].tag === 0xa0 ? 1 : 0; // [0] version is optional
  const [notBefore, notAfter] = children(der, fields[i + 3]);
  let fingerprint = "unavailable (needs a secure context)";
  if (globalThis.crypto?.subtle !== undefined) {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", der));
    fingerprint = [...digest].map((b) => b.toString(16).padStart(2, "0").toUpperCase()).join(":");
  }
  return {
    subject: nameText(der, fields[i + 4]),
    issuer: nameText(der, fields[i + 2]),
    validity: `${timeText(der, notBefore)} to ${timeText(der, notAfter)}`,
    fingerprint,
  };
}

// --- sections -------------------------------------------------------------------------------

async function renderService(load) {
  const [network, info] = await Promise.all([
    load("/node/network"),
    load(`/gov/service/info?${API}`),
  ]);
  const n = network.body;
  const s = info.body;
  const cert = await describeCertificate(s.certificate ?? n.service_certificate).catch((e) => ({
    subject: `unreadable certificate: ${e.message}`,
  }));
  return [
    facts([
      ["Status", statusBadge(s.status ?? n.service_status), "service-status"],
      ["Certificate subject", cert.subject, "service-cert-subject"],
      ["Certificate issuer", cert.issuer, "service-cert-issuer"],
      ["Certificate validity", cert.validity, "service-cert-validity"],
      [
        "Certificate SHA-256",
        el("span", { class: "mono" }, cert.fingerprint ?? "—"),
        "service-cert-fingerprint",
      ],
      [
        "Created at TxID",
        s.creationTransactionId ?? n.current_service_create_txid ?? "—",
        "service-create-txid",
      ],
      [
        "Recovery count",
        String(s.recoveryCount ?? n.recovery_count ?? 0),
        "service-recovery-count",
      ],
      [
        "Recovery threshold",
        String(s.configuration?.recoveryThreshold ?? "—"),
        "service-recovery-threshold",
      ],
      ["Current view", String(n.current_view), "service-view"],
      ["Primary", shortId(n.primary_id ?? "unknown"), "service-primary"],
    ]),
    el(
      "details",
      {},
      el("summary", {}, "Service certificate (PEM)"),
      el("pre", { testid: "service-cert-pem" }, s.certificate ?? n.service_certificate ?? ""),
    ),
  ];
}

async function renderNodes(load) {
  const [nodes, consensus, self] = await Promise.all([
    load("/node/network/nodes"),
    load("/node/network/consensus"),
    load("/node/state"),
  ]);
  const reports = new Map(consensus.body.nodes.map((r) => [r.node_id, r]));
  const rows = nodes.body.nodes.map((n) => {
    const r = reports.get(n.node_id);
    const iface =
      n.rpc_interfaces?.primary_rpc_interface ?? Object.values(n.rpc_interfaces ?? {})[0];
    const role = n.status !== "Trusted" ? "—" : n.primary ? "Primary" : "Backup";
    const unreachable = r !== undefined && !r.reachable ? `unreachable: ${r.error ?? ""}` : "—";
    return {
      attrs: { testid: "node-row", "data-node-id": n.node_id, "data-role": role },
      cells: [
        el(
          "span",
          {},
          shortId(n.node_id),
          n.node_id === self.body.node_id ? el("span", { class: "muted" }, " (this node)") : null,
        ),
        statusBadge(n.status),
        role,
        el("span", { class: "mono" }, iface?.published_address ?? "—"),
        r?.current_view === undefined ? unreachable : String(r.current_view),
        r?.commit ?? "—",
        r?.leadership_state ?? "—",
      ],
    };
  });
  return table(
    "nodes-table",
    [
      ["Node id", "node-id"],
      ["Status", "node-status"],
      ["Role", "node-role"],
      ["Address", "node-address"],
      ["View", "node-view"],
      ["Commit", "node-commit"],
      ["Reports itself as", "node-leadership"],
    ],
    rows,
    "No nodes.",
  );
}

async function renderMembers(load) {
  const members = (await load(`/gov/service/members?${API}`)).body.value;
  return table(
    "members-table",
    [
      ["Member id", "member-id"],
      ["Status", "member-status"],
      ["Recovery role", "member-recovery-role"],
      ["Member data", "member-data"],
    ],
    members.map((m) => ({
      attrs: { testid: "member-row", "data-member-id": m.memberId },
      cells: [
        shortId(m.memberId),
        statusBadge(m.status),
        m.recoveryRole ?? "—",
        m.memberData === null ? "—" : el("code", {}, JSON.stringify(m.memberData)),
      ],
    })),
    "No members.",
  );
}

async function renderUsers(load) {
  const users = (await load(`/gov/service/users?${API}`)).body.value;
  return table(
    "users-table",
    [
      ["User id", "user-id"],
      ["User data", "user-data"],
    ],
    users.map((u) => ({
      attrs: { testid: "user-row", "data-user-id": u.userId },
      cells: [
        shortId(u.userId),
        u.userData === null ? "—" : el("code", {}, JSON.stringify(u.userData)),
      ],
    })),
    "No users.",
  );
}

async function renderProposals(load) {
  const [proposals, members] = await Promise.all([
    load(`/gov/members/proposals?${API}`),
    load(`/gov/service/members?${API}`),
  ]);
  const all = proposals.body.value;
  const open = all.filter((p) => p.proposalState === "Open");
  const blocks = await Promise.all(
    open.map(async (p) => {
      const base = `/gov/members/proposals/${encodeURIComponent(p.proposalId)}`;
      const [actions, ballots] = await Promise.all([
        load(`${base}/actions?${API}`, { text: true }),
        Promise.all(
          members.body.value.map(async (m) => ({
            memberId: m.memberId,
            ballot: await load(`${base}/ballots/${encodeURIComponent(m.memberId)}?${API}`, {
              text: true,
              allow404: true,
            }),
          })),
        ),
      ]);
      let actionsText = actions.body;
      try {
        actionsText = JSON.stringify(JSON.parse(actions.body), null, 2);
      } catch {
        // shown as submitted
      }
      const cast = ballots.filter((b) => b.ballot.status === 200);
      return el(
        "div",
        { class: "proposal", testid: "proposal", "data-proposal-id": p.proposalId },
        facts([
          ["Proposal id", shortId(p.proposalId), "proposal-id"],
          ["Proposer", shortId(p.proposerId), "proposal-proposer"],
          ["State", statusBadge(p.proposalState), "proposal-state"],
          ["Ballots", String(p.ballotCount), "proposal-ballot-count"],
        ]),
        table(
          "proposal-ballots",
          [
            ["Member", "ballot-member"],
            ["Ballot", "ballot-text"],
          ],
          cast.map((b) => ({
            attrs: { testid: "ballot", "data-member-id": b.memberId },
            cells: [shortId(b.memberId), el("pre", {}, b.ballot.body)],
          })),
          "No ballots yet.",
        ),
        el(
          "details",
          { open: "" },
          el("summary", {}, "Actions"),
          el("pre", { testid: "proposal-actions" }, actionsText),
        ),
      );
    }),
  );
  const closed = all.length - open.length;
  return [
    el(
      "p",
      { testid: "proposals-summary", class: "muted" },
      `${open.length} open, ${closed} closed proposal${closed === 1 ? "" : "s"} still recorded.`,
    ),
    blocks.length === 0
      ? el("p", { testid: "proposals-empty", class: "muted" }, "No open proposals.")
      : el("div", { testid: "proposals-list" }, blocks),
  ];
}

async function renderEndpoints(load) {
  const app = (await load(`/gov/service/javascript-app?${API}`)).body.endpoints ?? {};
  const rows = [];
  for (const path of Object.keys(app).sort()) {
    for (const verb of Object.keys(app[path]).sort()) {
      const e = app[path][verb];
      rows.push({
        attrs: { testid: "endpoint-row", "data-method": verb.toUpperCase(), "data-path": path },
        cells: [
          el("span", { class: "mono" }, verb.toUpperCase()),
          el("span", { class: "mono" }, `/app${path}`),
          (e.authnPolicies ?? [])
            .map((policy) => (typeof policy === "string" ? policy : JSON.stringify(policy)))
            .join(", ") || "none",
          e.mode ?? "—",
          e.forwardingRequired ?? "—",
          `${e.jsModule ?? ""} ${e.jsFunction ?? ""}`.trim(),
        ],
      });
    }
  }
  return table(
    "endpoints-table",
    [
      ["Method", "endpoint-method"],
      ["Path", "endpoint-path"],
      ["Auth policies", "endpoint-auth"],
      ["Mode", "endpoint-mode"],
      ["Forwarding", "endpoint-forwarding"],
      ["Handler", "endpoint-handler"],
    ],
    rows,
    "No application is deployed.",
  );
}

async function renderTransactions(load) {
  const [network, commit] = await Promise.all([
    load("/node/network"),
    load("/node/commit?view_history=true"),
  ]);
  const last = parseTxId(network.headers.get(TXID_HEADER));
  if (last === undefined) return el("p", { class: "muted" }, "No transaction yet.");
  const starts = (commit.body.view_history ?? []).map(parseTxId).filter((t) => t !== undefined);
  const viewOf = (seqno) => {
    let view = last.view;
    for (const s of starts) if (s.seqno <= seqno) view = s.view;
    return Math.min(view, last.view);
  };
  const seqnos = [];
  for (let s = last.seqno; s >= 1 && seqnos.length < RECENT_TX; s--) seqnos.push(s);
  const statuses = await Promise.all(
    seqnos.map(async (seqno) => {
      const id = `${viewOf(seqno)}.${seqno}`;
      const r = await load(`/node/tx?transaction_id=${id}`);
      return { id, status: r.body.status };
    }),
  );
  return [
    el(
      "p",
      { class: "muted", testid: "commit-txid" },
      `Committed up to ${commit.body.transaction_id}; last written ${last.view}.${last.seqno}.`,
    ),
    table(
      "transactions-table",
      [
        ["TxID", "tx-id"],
        ["Status", "tx-status"],
      ],
      statuses.map((t) => ({
        attrs: { testid: "tx-row", "data-txid": t.id, "data-status": t.status },
        cells: [el("span", { class: "mono" }, t.id), statusBadge(t.status)],
      })),
      "No transaction yet.",
    ),
  ];
}

async function renderLedger(load) {
  const chunks = (await load("/node/ledger/chunks")).body.chunks;
  return table(
    "chunks-table",
    [
      ["File", "chunk-name"],
      ["First seqno", "chunk-start"],
      ["Last seqno", "chunk-end"],
      ["Committed", "chunk-committed"],
      ["Size (bytes)", "chunk-size"],
    ],
    chunks.map((c) => ({
      attrs: { testid: "chunk-row", "data-name": c.name },
      cells: [
        el("span", { class: "mono" }, c.name),
        String(c.start_seqno),
        c.end_seqno === null ? "open" : String(c.end_seqno),
        c.committed ? "yes" : "no",
        String(c.size),
      ],
    })),
    "No ledger chunks.",
  );
}

const SECTIONS = {
  service: renderService,
  nodes: renderNodes,
  members: renderMembers,
  users: renderUsers,
  proposals: renderProposals,
  endpoints: renderEndpoints,
  transactions: renderTransactions,
  ledger: renderLedger,
};

// --- refresh loop ----------------------------------------------------------------------------

async function renderHeader(load) {
  const [state, version] = await Promise.all([load("/node/state"), load("/node/version")]);
  const target = document.querySelector('[data-testid="served-by"]');
  target.replaceChildren(
    "Served by node ",
    shortId(state.body.node_id, "served-by-node-id"),
    ` (${state.body.state}), version ${version.body.ccf_version}`,
  );
}

async function refresh() {
  const load = fetchRound();
  await Promise.all([
    renderHeader(load).catch((e) => {
      document.querySelector('[data-testid="served-by"]').textContent = e.message;
    }),
    ...Object.entries(SECTIONS).map(async ([name, render]) => {
      const section = document.querySelector(`[data-testid="section-${name}"]`);
      const content = section.querySelector(".content");
      try {
        const out = await render(load);
        content.replaceChildren(...(Array.isArray(out) ? out : [out]));
        section.dataset.state = "ok";
      } catch (e) {
        content.replaceChildren(
          el(
            "p",
            { class: "error", testid: "section-error" },
            e instanceof Error ? e.message : String(e),
          ),
        );
        section.dataset.state = "error";
      }
    }),
  ]);
  document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes ?? "0") + 1);
  document.querySelector('[data-testid="last-refresh"]').textContent =
    `Refreshed at ${new Date().toLocaleTimeString()}` +
    (REFRESH_MS > 0 ? `, every ${REFRESH_MS / 1000} s` : "");
}

async function loop() {
  await refresh();
  const toggle = document.querySelector('[data-testid="auto-refresh"]');
  if (REFRESH_MS === 0) {
    toggle.checked = false;
    toggle.disabled = true;
    return;
  }
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, REFRESH_MS));
    if (toggle.checked && document.visibilityState !== "hidden") await refresh();
  }
}

loop().catch((e) => {
  document.body.append(el("p", { class: "error" }, `The console stopped: ${e.message}`));
});
