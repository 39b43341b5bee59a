import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { evaluate, sandbox } from "./fixture.js";

describe("sandbox environment", () => {
  it("gives the epoch from Date until untrusted time is enabled, then the injected clock", async () => {
    const { interp } = await sandbox({}, { clock: () => Date.UTC(2024, 0, 2, 3, 4, 5) });
    const probe = `[Date.now(), new Date().getTime(), Date().includes("1970"), new Date(5).getTime(), Date.UTC(2000, 0), Date.parse("2000-01-01T00:00:00Z"),
      new Date() instanceof Date, Date.length, Date.name, Date.prototype.constructor === Date, new (class extends Date {})().getTime()]`;
    assert.deepEqual(evaluate(interp, probe), [
      0,
      0,
      true,
      5,
      946684800000,
      946684800000,
      true,
      7,
      "Date",
      true,
      0,
    ]);
    assert.equal(interp.setUntrustedDateTime(true), false);
    const now = Date.UTC(2024, 0, 2, 3, 4, 5);
    assert.deepEqual((evaluate(interp, probe) as unknown[]).slice(0, 3), [now, now, false]);
    assert.equal(interp.setUntrustedDateTime(false), true);
    assert.equal(evaluate(interp, "Date.now()"), 0);
    interp.dispose();
  });

  it("backs Math.random with the injected bytes: 53 bits of each 7, big-endian", async () => {
    let next = 0;
    const requests: number[] = [];
    const randomBytes = (n: number) => {
      requests.push(n);
      return Uint8Array.from({ length: n }, () => next++ & 0xff);
    };
    const { interp } = await sandbox({}, { randomBytes });
    const values = evaluate(interp, "Array.from({ length: 40 }, () => Math.random())") as number[];
    const expected = (i: number) => {
      const b = Array.from({ length: 7 }, (_, k) => (i * 7 + k) & 0xff);
      const bits = b.reduce((acc, byte) => acc * 256n + BigInt(byte), 0n) >> 3n;
      return Number(bits) / 2 ** 53;
    };
    // 36 values per 252-byte pool, then a fresh pool: byte 252 starts value 36.
    assert.deepEqual(
      values.slice(0, 36),
      Array.from({ length: 36 }, (_, i) => expected(i)),
    );
    assert.deepEqual(
      values.slice(36),
      Array.from({ length: 4 }, (_, i) => expected(36 + i)),
    );
    assert.deepEqual(requests, [252, 252]);
    assert.ok(values.every((v) => v >= 0 && v < 1));
    interp.dispose();
  });

  it("routes console to the log function, formatted as CCF does", async () => {
    const { interp, logs } = await sandbox();
    evaluate(
      interp,
      `(() => {
        const cyclic = {}; cyclic.self = cyclic;
        console.log("text", 1, true, undefined, null, { a: [1, "x"] }, [2, 3]);
        console.info(new TypeError("boom"));
        console.warn(cyclic);
        console.error(Symbol("s"), () => 1);
      })()`,
    );
    assert.deepEqual(logs, [
      { level: "log", message: 'text 1 true undefined null {"a":[1,"x"]} [2,3]' },
      { level: "info", message: "TypeError: boom" },
      { level: "warn", message: "[object Object]" },
      { level: "error", message: "Symbol(s) () => 1" },
    ]);
    interp.dispose();
  });
});
