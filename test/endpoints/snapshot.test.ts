// `/node/snapshot` and `/node/snapshot/{name}` against a directory: CCF's redirect to the latest
// committed snapshot (with `since`), a backup's redirect to the primary, 404s, HEAD, and Range.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { SNAPSHOT_NAME_HEADER, snapshotEndpoints } from "../../src/endpoints/snapshot.js";
import { inject, Router } from "../../src/rpc/index.js";

function errorOf(body: Buffer): { code: string; message: string } {
  return (JSON.parse(body.toString()) as { error: { code: string; message: string } }).error;
}

describe("snapshot endpoints", () => {
  let dir: string;
  let router: Router;
  const content = Buffer.from(Array.from({ length: 100 }, (_, i) => i));

  before(() => {
    dir = fs.mkdtempSync(join(tmpdir(), "ccf-ts-snapshot-endpoints-"));
    fs.writeFileSync(join(dir, "snapshot_10_11.committed"), Buffer.from("ten"));
    fs.writeFileSync(join(dir, "snapshot_20_22.committed"), content);
    fs.writeFileSync(join(dir, "snapshot_30_31"), Buffer.from("pending")); // not committed
    fs.writeFileSync(join(dir, "snapshot_40_41.committed"), Buffer.alloc(0)); // empty: ignored
    router = new Router();
    router.setEndpoints("node", snapshotEndpoints({ snapshotDir: dir }));
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("redirects (308) to the latest committed, non-empty snapshot", async () => {
    for (const method of ["GET", "HEAD"]) {
      const r = await inject(router, { method, path: "/node/snapshot" });
      assert.equal(r.status, 308);
      assert.equal(r.headers.location, "/node/snapshot/snapshot_20_22.committed");
    }
  });

  it("takes `since` as the lowest seqno wanted", async () => {
    const r = await inject(router, { method: "GET", path: "/node/snapshot?since=10" });
    assert.equal(r.headers.location, "/node/snapshot/snapshot_20_22.committed");
    const none = await inject(router, { method: "GET", path: "/node/snapshot?since=21" });
    assert.equal(none.status, 404);
    assert.deepEqual(JSON.parse(none.body.toString()), {
      error: { code: "ResourceNotFound", message: "This node has no committed snapshots since 21" },
    });
    const bad = await inject(router, { method: "GET", path: "/node/snapshot?since=abc" });
    assert.equal(bad.status, 400);
    assert.equal(errorOf(bad.body).code, "InvalidQueryParameterValue");
  });

  it("uses the published address, and sends a backup's request to the primary", async () => {
    const r = new Router();
    r.setEndpoints(
      "node",
      snapshotEndpoints({ snapshotDir: dir, selfAddress: () => "node0.example:8000" }),
    );
    const self = await inject(r, { method: "GET", path: "/node/snapshot" });
    assert.equal(
      self.headers.location,
      "https://node0.example:8000/node/snapshot/snapshot_20_22.committed",
    );
    r.setEndpoints(
      "node",
      snapshotEndpoints({ snapshotDir: dir, primaryAddress: () => "primary.example:8000" }),
    );
    const backup = await inject(r, { method: "GET", path: "/node/snapshot?since=5" });
    assert.equal(backup.status, 308);
    assert.equal(backup.headers.location, "https://primary.example:8000/node/snapshot?since=5");
    assert.equal(errorOf(backup.body).code, "NodeCannotHandleRequest");
  });

  it("answers 404 when the directory holds no committed snapshot", async () => {
    const empty = fs.mkdtempSync(join(tmpdir(), "ccf-ts-snapshot-endpoints-"));
    const r = new Router();
    r.setEndpoints("node", snapshotEndpoints({ snapshotDir: empty }));
    assert.equal((await inject(r, { method: "GET", path: "/node/snapshot" })).status, 404);
    fs.rmSync(empty, { recursive: true });
    assert.equal((await inject(r, { method: "GET", path: "/node/snapshot" })).status, 404);
  });

  it("serves a file whole, with its name, and its length on HEAD", async () => {
    const path = "/node/snapshot/snapshot_20_22.committed";
    const r = await inject(router, { method: "GET", path });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, content);
    assert.equal(r.headers[SNAPSHOT_NAME_HEADER], "snapshot_20_22.committed");
    assert.equal(r.headers["accept-ranges"], "bytes");
    assert.equal(r.headers["content-type"], "application/octet-stream");
    const head = await inject(router, { method: "HEAD", path });
    assert.equal(head.status, 200);
    assert.equal(head.headers["content-length"], "100");
    assert.equal(head.body.length, 0);
    // As CCF, any file of the directory, pending ones included.
    const pending = await inject(router, { method: "GET", path: "/node/snapshot/snapshot_30_31" });
    assert.deepEqual(pending.body, Buffer.from("pending"));
  });

  it("answers HEAD for a huge snapshot with its size, reading and allocating nothing of it", async () => {
    // A sparse 5 GiB file: more than a Buffer can hold, so building a body of its size fails.
    const name = "snapshot_50_51.committed";
    const size = 5 * 1024 ** 3;
    const fd = fs.openSync(join(dir, name), "w");
    fs.ftruncateSync(fd, size);
    fs.closeSync(fd);
    try {
      const head = await inject(router, { method: "HEAD", path: `/node/snapshot/${name}` });
      assert.equal(head.status, 200);
      assert.equal(head.headers["content-length"], String(size));
      assert.equal(head.headers["content-type"], "application/octet-stream");
      assert.equal(head.headers[SNAPSHOT_NAME_HEADER], name);
      assert.equal(head.body.length, 0);
      // A range of it is still read as a range.
      const part = await inject(router, {
        method: "GET",
        path: `/node/snapshot/${name}`,
        headers: { range: "bytes=0-9" },
      });
      assert.equal(part.status, 206);
      assert.deepEqual(part.body, Buffer.alloc(10));
    } finally {
      fs.rmSync(join(dir, name));
    }
  });

  it("serves ranges as CCF: a-b, a-, -n, the end clamped to the file", async () => {
    const path = "/node/snapshot/snapshot_20_22.committed";
    const get = (range: string) => inject(router, { method: "GET", path, headers: { range } });
    const cases: Array<[string, number, number]> = [
      ["bytes=0-9", 0, 10],
      ["bytes=90-", 90, 100],
      ["bytes=-5", 95, 100],
      ["bytes=50-1000", 50, 100],
      ["bytes=100-", 100, 100],
    ];
    for (const [range, start, end] of cases) {
      const r = await get(range);
      assert.equal(r.status, 206, range);
      assert.deepEqual(r.body, content.subarray(start, end), range);
      assert.equal(r.headers["content-range"], `bytes ${start}-${end - 1}/100`, range);
    }
    for (const [range, message] of [
      ["items=0-1", /Only 'bytes'/],
      ["bytes=0-1,3-4", /Multiple ranges/],
      ["bytes=101-", /larger than total file size/],
      ["bytes=9-3", /out of order/],
      ["bytes=-", /Must contain range-start or range-end/],
      ["bytes=x-3", /Unable to parse start/],
      ["bytes=1-2-3", /cannot parse range/],
    ] as const) {
      const r = await get(range);
      assert.equal(r.status, 400, range);
      const err = errorOf(r.body);
      assert.equal(err.code, "InvalidHeaderValue");
      assert.match(err.message, message);
    }
  });

  it("answers 404 for an unknown name, and never leaves the directory", async () => {
    for (const name of ["snapshot_99_100.committed", "..", "."]) {
      const r = await inject(router, { method: "GET", path: `/node/snapshot/${name}` });
      assert.equal(r.status, 404, name);
      assert.equal(errorOf(r.body).code, "ResourceNotFound");
    }
  });
});
