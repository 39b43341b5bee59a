import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { FormatError } from "../../src/errors.js";
import {
  decodeStoredValue,
  decodeValue,
  EntryType,
  encodeValue,
  keyToString,
  Store,
  parsePrivateDomain,
  parsePublicDomain,
  serialiseDomain,
  Tables,
  type WriteSet,
} from "../../src/kv/index.js";

const header = {
  entryType: EntryType.WriteSetWithCommitEvidenceAndClaims,
  version: 17,
  claimsDigest: Buffer.alloc(32),
  commitEvidenceDigest: Buffer.alloc(32, 7),
  maxConflictVersion: 0,
};

describe("write set serialisation", () => {
  it("lays out a private map as CCF does (70 bytes for records[42] = hello)", () => {
    const ws: WriteSet = new Map([
      ["records", new Map([[keyToString(Buffer.from("42")), Buffer.from("hello")]])],
    ]);
    const priv = serialiseDomain(ws, undefined);
    assert.equal(priv.length, 70);
    assert.equal(priv.readUInt32LE(0), 7);
    assert.equal(priv.subarray(8, 15).toString(), "records");
  });

  it("puts public maps with the header and private maps apart, and round-trips both", () => {
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.constantFrom("public:a", "public:b", "c", "d"),
          fc.dictionary(fc.string({ maxLength: 4 }), fc.option(fc.uint8Array({ maxLength: 8 }))),
        ),
        (spec) => {
          const ws: WriteSet = new Map();
          for (const [name, kvs] of Object.entries(spec)) {
            const m = new Map<string, Uint8Array | null>();
            for (const [k, v] of Object.entries(kvs)) m.set(keyToString(Buffer.from(k)), v);
            ws.set(name, m);
          }
          const pub = serialiseDomain(ws, header);
          const priv = serialiseDomain(ws, undefined);
          const parsed = parsePublicDomain(pub);
          assert.equal(parsed.header.version, 17);
          assert.deepEqual(
            Buffer.from(parsed.header.commitEvidenceDigest ?? []),
            header.commitEvidenceDigest,
          );
          const all = parsePrivateDomain(priv, parsed.writeSet);
          const norm = (w: WriteSet) =>
            [...w.entries()]
              .filter(([, m]) => m.size > 0)
              .map(([n, m]) => [
                n,
                [...m.entries()]
                  .map(([k, v]) => [k, v === null ? null : Buffer.from(v).toString("hex")])
                  .sort(),
              ])
              .sort();
          assert.deepEqual(norm(all), norm(ws));
        },
      ),
    );
  });

  it("rejects truncated or garbage domains with a FormatError, never anything else", () => {
    const ws: WriteSet = new Map([["public:t", new Map([["k", Buffer.from("v")]])]]);
    const pub = serialiseDomain(ws, header);
    const headerOnly = 1 + 8 + 32 + 32 + 8; // a domain that ends after its header is complete
    for (let n = 0; n < pub.length; n++) {
      if (n === headerOnly) continue;
      assert.throws(() => parsePublicDomain(pub.subarray(0, n)), FormatError);
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          parsePublicDomain(Buffer.from(bytes));
          parsePrivateDomain(Buffer.from(bytes));
        } catch (e) {
          assert.ok(e instanceof FormatError, String(e));
        }
      }),
    );
  });

  it("refuses a private map in the public domain", () => {
    const ws: WriteSet = new Map([["secret", new Map([["k", Buffer.from("v")]])]]);
    const priv = serialiseDomain(ws, undefined);
    const pubHeader = serialiseDomain(new Map(), header);
    assert.throws(
      () => parsePublicDomain(Buffer.concat([pubHeader, priv])),
      /found in the public domain/,
    );
  });
});

describe("built-in table encodings", () => {
  it("encodes C++ JSON with sorted keys, strings as JSON literals, PEM as text", () => {
    assert.equal(
      encodeValue(Tables.CONFIGURATION, {
        recovery_threshold: 1,
        maximum_node_certificate_validity_days: 365,
      }).toString(),
      '{"maximum_node_certificate_validity_days":365,"recovery_threshold":1}',
    );
    assert.equal(encodeValue(Tables.COSE_SIGNATURES, "0oRY").toString(), '"0oRY"');
    assert.equal(encodeValue(Tables.MEMBER_CERTS, "-----BEGIN").toString(), "-----BEGIN");
    assert.deepEqual(encodeValue(Tables.VIRTUAL_HOST_DATA, ""), Buffer.alloc(8));
    assert.equal(
      decodeValue(Tables.VIRTUAL_HOST_DATA, encodeValue(Tables.VIRTUAL_HOST_DATA, "meta")),
      "meta",
    );
    assert.throws(() => decodeValue(Tables.SERVICE, Buffer.from("{nope")), FormatError);
  });

  it("decodes a stored value once, frozen, and a rewritten value again", () => {
    const store = new Store();
    const key = keyToString(Buffer.from("n1"));
    const write = (status: string, version: number): void => {
      const tx = store.begin();
      tx.map(Tables.NODES).set(Buffer.from("n1"), encodeValue(Tables.NODES, { status, cert: "x" }));
      store.commit(tx, { version });
    };
    write("Pending", 1);
    const stored = store.mapState(Tables.NODES)?.entries.get(key)?.value as Uint8Array;
    const first = decodeStoredValue(Tables.NODES, stored) as { status: string };
    assert.equal(first.status, "Pending");
    assert.equal(decodeStoredValue(Tables.NODES, stored), first);
    assert.ok(Object.isFrozen(first));
    assert.throws(() => {
      first.status = "Trusted";
    }, TypeError);
    // Read as another table's value, the same bytes are decoded by that table's codec.
    assert.equal(typeof decodeStoredValue(Tables.MEMBER_CERTS, stored), "string");
    // A rollback and a new write at the same version (a new primary's entry) is new bytes.
    store.rollback(0);
    write("Trusted", 1);
    const again = store.mapState(Tables.NODES)?.entries.get(key)?.value as Uint8Array;
    assert.equal((decodeStoredValue(Tables.NODES, again) as { status: string }).status, "Trusted");
  });
});
