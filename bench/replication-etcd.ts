// The etcd half of the replication benchmark: three etcd members (Debian's `etcd-server`, installed
// with apt if `etcd` is not on PATH) on 127.0.0.1, bootstrapped statically, each with its data in
// a temp folder and etcd's default fsync; 64 keep-alive connections put fresh keys through etcd's
// JSON gateway (`POST /v3/kv/put`) on one member. etcd answers a put once it is committed, so a
// put is counted committed when its answer arrives.

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, openSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { BenchClient } from "./http-client.js";
import { waitFor } from "../test/helpers/process.js";
import {
  CONNECTIONS,
  CommitWindow,
  freePort,
  type LoadResult,
  type Resources,
  valueFor,
} from "./replication-load.js";

const MEMBERS = 3;

function onPath(binary: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${binary}`]).status === 0;
}

/** Makes sure `etcd` runs here, installing Debian's etcd-server if it is missing. */
export function ensureEtcd(): string {
  if (!onPath("etcd")) {
    console.error("etcd is not on PATH: installing Debian's etcd-server with apt-get");
    const install = spawnSync(
      "sh",
      ["-c", "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server"],
      { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" },
    );
    if (install.status !== 0 || !onPath("etcd")) {
      throw new Error(
        `could not install etcd-server with apt-get (exit ${install.status}); install etcd and ` +
          `put it on PATH. apt-get said: ${install.stderr?.slice(-500)}`,
      );
    }
  }
  const version = spawnSync("etcd", ["--version"], { encoding: "utf8" });
  return /etcd Version: (\S+)/.exec(version.stdout ?? "")?.[1] ?? "unknown";
}

/** Starts three members; returns the client URL of the first. */
async function startCluster(res: Resources): Promise<string> {
  const dir = res.dir(mkdtempSync(join(tmpdir(), "ccf-ts-bench-etcd-")));
  const members = [];
  for (let i = 0; i < MEMBERS; i++) {
    members.push({ name: `m${i}`, client: await freePort(), peer: await freePort() });
  }
  const cluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(",");
  for (const m of members) {
    const log = openSync(join(dir, `${m.name}.log`), "w");
    res.child(
      spawn(
        "etcd",
        [
          `--name=${m.name}`,
          `--data-dir=${join(dir, m.name)}`,
          `--listen-client-urls=http://127.0.0.1:${m.client}`,
          `--advertise-client-urls=http://127.0.0.1:${m.client}`,
          `--listen-peer-urls=http://127.0.0.1:${m.peer}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${m.peer}`,
          `--initial-cluster=${cluster}`,
          "--initial-cluster-state=new",
          `--initial-cluster-token=bench-${dir}`,
        ],
        { stdio: ["ignore", log, log] },
      ),
    );
  }
  for (const m of members) {
    await waitFor(`etcd member ${m.name} to be healthy`, async () => {
      const client = new BenchClient(`http://127.0.0.1:${m.client}`);
      try {
        const r = await client.send({ method: "GET", path: "/health" });
        const body = JSON.parse(r.body.toString()) as { health?: string };
        return body.health === "true" ? true : undefined;
      } finally {
        await client.close();
      }
    });
  }
  return `http://127.0.0.1:${members[0]?.client}`;
}

export async function runEtcd(res: Resources, tag: string): Promise<LoadResult> {
  const base = await startCluster(res);
  const client = new BenchClient(base, { connections: CONNECTIONS });
  const put = async (key: string, value: string) => {
    const r = await client.send({
      method: "POST",
      path: "/v3/kv/put",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        key: Buffer.from(key).toString("base64"),
        value: Buffer.from(value).toString("base64"),
      }),
    });
    return { status: r.status, text: r.body.toString() };
  };
  try {
    await waitFor("etcd to accept a put", async () =>
      (await put(`${tag}-ready`, "x")).status === 200 ? true : undefined,
    );
    const window = new CommitWindow(performance.now(), () => res.pids());
    let next = 0;
    let firstFailure = true;
    const writer = async () => {
      while (performance.now() < window.end) {
        const i = next++;
        const sentAt = performance.now();
        try {
          const r = await put(`${tag}-${i}`, valueFor(i));
          if (r.status !== 200) {
            if (firstFailure)
              console.error(`etcd: first failed put: ${r.status} ${r.text.slice(0, 300)}`);
            firstFailure = false;
            window.failed++;
            continue;
          }
          window.accept(sentAt);
          window.commit(sentAt, performance.now());
        } catch (e) {
          if (firstFailure) console.error(`etcd: first failed put: ${String(e)}`);
          firstFailure = false;
          window.failed++;
        }
      }
    };
    await Promise.all(Array.from({ length: CONNECTIONS }, writer));
    return window.result();
  } finally {
    await client.close();
  }
}
