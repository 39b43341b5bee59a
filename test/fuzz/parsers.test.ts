// Seeded fuzzing of every parser that reads bytes from outside the process: ledger entries and
// chunks, snapshot files, COSE Sign1 and governance messages, PEM, node configuration files,
// node-to-node frames, the serialised Merkle tree and transaction ids. Each input, random or a
// mutation of a valid one, must either parse or fail with one of the project's error classes
// (CcfError and its subclasses) and a message: never a TypeError, a RangeError or a crash.

import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import fc from "fast-check";
import { main } from "../../src/cli/main.js";
import { decodeMessage, encodeMessage } from "../../src/consensus/codec.js";
import type { Message } from "../../src/consensus/index.js";
import { cborEncode, coseSign1Decode } from "../../src/crypto/cose.js";
import {
  certificateId,
  createSelfSignedCertificate,
  EcKeyPair,
  seededRng,
} from "../../src/crypto/index.js";
import { publicKeyFromPem } from "../../src/crypto/keys.js";
import { certificateInfo } from "../../src/crypto/x509.js";
import { txIdString, parseTxId } from "../../src/endpoints/txid.js";
import { CcfError } from "../../src/errors.js";
import { signGovMessage, verifyGovMessage } from "../../src/gov/cose.js";
import {
  encodeValue,
  idKey,
  Store,
  serialiseSnapshot,
  Tables,
  viewHistoryUntil,
} from "../../src/kv/index.js";
import { parseChunk } from "../../src/ledger/chunk.js";
import { decodeEntry, decryptEntry } from "../../src/ledger/entry.js";
import {
  decodeSnapshotEntry,
  encodeSnapshotEntry,
  readSnapshotFile,
  snapshotFileName,
} from "../../src/ledger/snapshot-file.js";
import { MerkleTree } from "../../src/merkle/tree.js";
import { loadNodeConfig, parseNodeConfig } from "../../src/node/config.js";
import { singleNodeConfig } from "../helpers/node-config.js";
import { startService, type TestService, writeRecords } from "../ledger/service-fixture.js";

/** Runs per property; FUZZ_RUNS multiplies them for a longer local run. */
const SCALE = Number(process.env.FUZZ_RUNS ?? 1);
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));

/** Fails unless `fn` returns or throws a CcfError (any subclass) with a message. */
function parsesOrRefuses(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof CcfError)) {
      const name = e instanceof Error ? e.constructor.name : typeof e;
      throw new Error(`unexpected ${name}: ${String(e)}`, { cause: e });
    }
    assert.ok(e.message.length > 0, `${e.constructor.name} ${e.code} without a message`);
  }
}

// ---------------------------------------------------------------------------------------------
// Mutations of a valid input: flipped, overwritten, inserted and deleted bytes, truncation.

type Mutation =
  | { op: "flip"; at: number; bit: number }
  | { op: "set"; at: number; value: number }
  | { op: "insert"; at: number; bytes: Uint8Array }
  | { op: "delete"; at: number; length: number }
  | { op: "truncate"; at: number }
  | { op: "extend"; bytes: Uint8Array };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("flip" as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({
    op: fc.constant("set" as const),
    at: fc.nat(),
    value: fc.constantFrom(0, 1, 0x7f, 0x80, 0xff, 0x18, 0x1b, 0xa0, 0xd2),
  }),
  fc.record({
    op: fc.constant("insert" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
  fc.record({
    op: fc.constant("delete" as const),
    at: fc.nat(),
    length: fc.integer({ min: 1, max: 32 }),
  }),
  fc.record({ op: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({
    op: fc.constant("extend" as const),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
);

function applyMutations(base: Buffer, mutations: readonly Mutation[]): Buffer {
  let b = Buffer.from(base);
  for (const m of mutations) {
    const at = b.length === 0 ? 0 : ("at" in m ? m.at : 0) % b.length;
    switch (m.op) {
      case "flip":
        if (b.length > 0) b[at] ^= 1 << m.bit;
        break;
      case "set":
        if (b.length > 0) b[at] = m.value;
        break;
      case "insert":
        b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
      case "delete":
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.length)]);
        break;
      case "truncate":
        b = b.subarray(0, at);
        break;
      case "extend":
        b = Buffer.concat([b, m.bytes]);
        break;
    }
  }
  return b;
}

/** A mutation of one of `bases`, or (one time in five) random bytes. */
function mutatedOf(bases: readonly Buffer[], maxRandom = 200): fc.Arbitrary<Buffer> {
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc
        .tuple(fc.constantFrom(...bases), fc.array(mutation, { minLength: 1, maxLength: 4 }))
        .map(([base, ms]) => applyMutations(base, ms)),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: maxRandom }).map((u) => Buffer.from(u)) },
  );
}

// ---------------------------------------------------------------------------------------------

describe("fuzzing the parsers of outside input", () => {
  let svc: TestService;
  let entries: Buffer[];
  let chunks: Buffer[];
  let snapshotEntry: Buffer;
  let snapshotFile: Buffer;
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-fuzz-"));

  before(async () => {
    svc = await startService({ seed: 14, chunkSize: 1500, txCount: 4 });
    writeRecords(svc, 10);
    await svc.pipeline.flush();
    entries = [];
    for (let seqno = 1; seqno <= svc.pipeline.lastSeqno; seqno++) {
      entries.push(Buffer.from(svc.storage.read(seqno) as Buffer));
    }
    chunks = readdirSync(svc.dir).map((f) => readFileSync(join(svc.dir, f)));
    assert.ok(chunks.length >= 2, "the fixture has complete and open chunks");

    const seqno = svc.pipeline.lastSignedSeqno;
    const domains = serialiseSnapshot(svc.store, seqno, {
      viewHistory: viewHistoryUntil([{ view: 2, seqno: 1 }], seqno),
      hashAtSnapshot: svc.tree.leaf(seqno),
    });
    const parts = encodeSnapshotEntry(domains, seqno, svc.secret);
    snapshotEntry = Buffer.concat([parts.prefix, parts.publicDomain, parts.privateCiphertext]);
    const receipt = { leaf_components: { claims_digest: "00".repeat(32) }, signature: "AA==" };
    snapshotFile = Buffer.concat([snapshotEntry, Buffer.from(JSON.stringify(receipt))]);
  });

  it("ledger entries: decoded and decrypted, or refused", () => {
    const mutated = applyMutations(entries[3], [{ op: "set", at: 40, value: 0xff }]);
    parsesOrRefuses(() => decryptEntry(decodeEntry(mutated), svc.secret));
    fc.assert(
      fc.property(mutatedOf(entries), (bytes) => {
        parsesOrRefuses(() => decryptEntry(decodeEntry(bytes), svc.secret));
      }),
      { seed: 1401, numRuns: runs(1500) },
    );
  });

  it("ledger chunks: split into entries that decode, or refused", () => {
    fc.assert(
      fc.property(mutatedOf(chunks, 400), (bytes) => {
        parsesOrRefuses(() => {
          for (const e of parseChunk(bytes).entries) {
            decodeEntry(bytes.subarray(e.offset, e.offset + e.size));
          }
        });
      }),
      { seed: 1402, numRuns: runs(1000) },
    );
  });

  it("snapshot files and entries: read and decoded, or refused", () => {
    const path = join(
      dir,
      snapshotFileName(svc.pipeline.lastSignedSeqno, svc.pipeline.lastSignedSeqno + 1),
    );
    writeFileSync(path, snapshotFile);
    assert.equal(readSnapshotFile(path).seqno, svc.pipeline.lastSignedSeqno);
    fc.assert(
      fc.property(mutatedOf([snapshotFile]), (bytes) => {
        writeFileSync(path, bytes);
        parsesOrRefuses(() => {
          const file = readSnapshotFile(path);
          decodeSnapshotEntry(file.entry, svc.secret);
        });
      }),
      { seed: 1403, numRuns: runs(300) },
    );
    fc.assert(
      fc.property(mutatedOf([snapshotEntry]), fc.boolean(), (bytes, withSecret) => {
        parsesOrRefuses(() => decodeSnapshotEntry(bytes, withSecret ? svc.secret : undefined));
      }),
      { seed: 1404, numRuns: runs(700) },
    );
  });

  describe("COSE Sign1 and governance messages", () => {
    let store: Store;
    let signed: Buffer[];

    before(async () => {
      const rng = seededRng(1405);
      const key = EcKeyPair.generate("secp384r1", rng);
      const cert = await createSelfSignedCertificate(key, {
        subjectName: "CN=member0",
        validFrom: new Date("2026-01-01T00:00:00Z"),
        validityDays: 30,
        rng,
      });
      const id = certificateId(cert);
      store = new Store();
      const tx = store.begin();
      tx.map(Tables.MEMBER_CERTS).set(idKey(id), encodeValue(Tables.MEMBER_CERTS, cert));
      tx.map(Tables.MEMBER_INFO).set(
        idKey(id),
        encodeValue(Tables.MEMBER_INFO, { status: "Active" }),
      );
      store.commit(tx);
      const sign = (msgType: string, extra: Record<string, unknown> = {}) =>
        signGovMessage({
          signingKeyPem: key.privateKeyPem,
          signingCertPem: cert,
          msgType,
          createdAt: 1_700_000_000,
          content: Buffer.from('{"actions":[]}'),
          ...extra,
        });
      signed = [sign("proposal"), sign("ballot", { proposalId: "ab".repeat(32) }), sign("ack")];
      for (const msg of signed) verifyGovMessage(msg, { tx: store.begin() });
    });

    const cborValue = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: "small" },
        fc.integer(),
        fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }),
        fc.double(),
        fc.string({ maxLength: 20 }),
        fc.uint8Array({ maxLength: 40 }),
        fc.constantFrom(null, undefined, true, false),
        fc.array(tie("value"), { maxLength: 5 }),
        fc
          .array(
            fc.tuple(
              fc.oneof(fc.integer({ min: -40, max: 40 }), fc.string({ maxLength: 12 })),
              tie("value"),
            ),
            { maxLength: 5 },
          )
          .map((kv) => new Map(kv)),
      ),
    })).value;

    it("COSE Sign1: decoded or refused with a FormatError", () => {
      fc.assert(
        fc.property(
          fc.oneof(
            mutatedOf(signed),
            cborValue.map((v) => Buffer.from(cborEncode(v))),
            fc
              .tuple(cborValue, cborValue, cborValue, cborValue)
              .map(([a, b, c, d]) => Buffer.from(cborEncode([a, b, c, d]))),
          ),
          (bytes) => parsesOrRefuses(() => coseSign1Decode(bytes)),
        ),
        { seed: 1406, numRuns: runs(1500) },
      );
    });

    it("governance messages: verified or refused with an HttpError", () => {
      fc.assert(
        fc.property(
          fc.oneof(
            mutatedOf(signed),
            fc
              .tuple(cborValue, cborValue, cborValue)
              .map(([headers, payload, sig]) =>
                Buffer.from(cborEncode([cborEncode(headers), new Map(), payload, sig])),
              ),
          ),
          fc.constantFrom(undefined, "proposal", "ballot", "ack"),
          (bytes, expectedType) => {
            const tx = store.begin();
            parsesOrRefuses(() =>
              verifyGovMessage(bytes, {
                tx,
                ...(expectedType === undefined ? {} : { expectedType }),
                ...(expectedType === "ballot" ? { proposalId: "ab".repeat(32) } : {}),
              }),
            );
          },
        ),
        { seed: 1407, numRuns: runs(600) },
      );
    });
  });

  it("refuses a certificate whose public key does not parse with a FormatError (seed 1408)", () => {
    // The service certificate with one byte of its EC point changed: the certificate parses, its
    // key does not, and certificateInfo threw node's bare Error.
    const pem = [
      "-----BEGIN CERTIFICATE-----",
      "MIIBvTCCAUSgAwIBAgIRAOqOQ6J/5artwaOr//A2TdYwCgYIKoZIzj0EAwMwFjEU",
      "MBIGA1UEAwwLQ0NGIFNlcnZpY2UwHhcNMjYwMTAxMDAwMDAwWhcNMjYwMzMxMjM1",
      "OTU5WjAWMRQwEgYDVQQDDAtDQ0YgU2VydmljZTB2MBAGByqGSM49AgEGBSuBBAAi",
      "A2IACMKV2CGnlQB/U8DrdcMDBaM8DDRvpbvG/N00lBmmxSUJg4QQrH/4tiBgb4mq",
      "wKjdIpxUCQtbXTkWy/OJDn1pI1ZVYhAQ+j05yQs1cVWYbev37V42f+oUE4w3xCKi",
      "nCoViqNWMFQwEgYDVR0TAQH/BAgwBgEB/wIBATAdBgNVHQ4EFgQUp50iPDhnVMd0",
      "JZ2I5syouoWqqP8wHwYDVR0jBBgwFoAUp50iPDhnVMd0JZ2I5syouoWqqP8wCgYI",
      "KoZIzj0EAwMDZwAwZAIwUzdu6etg70fsGJtvyOsEWvMBOHfEivAn0Mme3VjoG4CJ",
      "aI6QkoLRr9mnbD83PMGzAjATmjuh9YTgWcenrPWb9VzDFKHFqb4ZYJ+IUZIxxQT9",
      "RV5bnAou0iResklvyZ32csk=",
      "-----END CERTIFICATE-----",
      "",
    ].join("\n");
    assert.throws(() => certificateInfo(pem), { name: "FormatError", code: "InvalidCertificate" });
  });

  it("PEM certificates and public keys: parsed or refused", () => {
    const cert = Buffer.from(svc.serviceCert);
    const key = Buffer.from(
      publicKeyFromPem(svc.serviceCert).export({ type: "spki", format: "pem" }) as string,
    );
    const pem = fc.oneof(
      mutatedOf([cert, key]).map((b) => b.toString("latin1")),
      fc.string({ maxLength: 200 }),
      fc
        .tuple(
          fc.constantFrom("CERTIFICATE", "PUBLIC KEY", "EC PRIVATE KEY"),
          fc.base64String({ maxLength: 300 }),
        )
        .map(([label, body]) => `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`),
    );
    fc.assert(
      fc.property(pem, (text) => {
        parsesOrRefuses(() => certificateInfo(text));
        parsesOrRefuses(() => publicKeyFromPem(text));
      }),
      { seed: 1408, numRuns: runs(800) },
    );
  });

  describe("node configuration files", () => {
    const configDir = mkdtempSync(join(tmpdir(), "ccf-ts-fuzz-config-"));
    const valid = singleNodeConfig(configDir, { signatures: { tx_count: 10, delay: "50ms" } });
    const leaves: string[][] = [];
    const walk = (v: unknown, path: string[]) => {
      leaves.push(path);
      if (v !== null && typeof v === "object") {
        for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
      }
    };
    walk(valid, []);

    /** The valid configuration with one field (or the whole) replaced by a random JSON value. */
    const mutatedConfig = fc
      .tuple(
        fc.constantFrom(...leaves),
        fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant(undefined)),
      )
      .map(([path, value]) => {
        if (path.length === 0) return value;
        const copy = structuredClone(valid);
        let at = copy;
        for (const k of path.slice(0, -1)) at = at[k] as Record<string, unknown>;
        if (value === undefined) delete at[path[path.length - 1]];
        else at[path[path.length - 1]] = value;
        return copy;
      });

    it("parseNodeConfig: a NodeConfig or a ConfigError naming the field", () => {
      parseNodeConfig(valid, configDir);
      fc.assert(
        fc.property(fc.oneof(mutatedConfig, fc.jsonValue({ maxDepth: 3 })), (json) => {
          parsesOrRefuses(() => parseNodeConfig(json, configDir));
        }),
        { seed: 1409, numRuns: runs(500) },
      );
    });

    it("loadNodeConfig: mutated files are parsed or refused", () => {
      const file = join(configDir, "fuzz.json");
      const text = Buffer.from(JSON.stringify(valid, null, 2));
      fc.assert(
        fc.property(mutatedOf([text]), (bytes) => {
          writeFileSync(file, bytes);
          parsesOrRefuses(() => loadNodeConfig(file, configDir));
        }),
        { seed: 1410, numRuns: runs(300) },
      );
    });

    it("`ccf-ts node --check` prints a message naming the problem", async () => {
      const file = join(configDir, "cli.json");
      const write = process.stderr.write.bind(process.stderr);
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(mutatedConfig, mutatedOf([Buffer.from(JSON.stringify(valid))])),
          async (input) => {
            const bytes = Buffer.isBuffer(input) ? input : Buffer.from(JSON.stringify(input) ?? "");
            writeFileSync(file, bytes);
            let stderr = "";
            process.stderr.write = (chunk: string | Uint8Array) => (
              (stderr += String(chunk)), true
            );
            let code: number;
            try {
              code = await main(["node", "--config", file, "--check"]);
            } finally {
              process.stderr.write = write;
            }
            if (code === 0) return;
            assert.equal(code, 1, stderr);
            // "ccf-ts: <field path>: <problem>" on each line.
            assert.match(stderr, /^ccf-ts: \S[^\n]*: \S/, stderr);
          },
        ),
        { seed: 1411, numRuns: runs(60) },
      );
    });
  });

  it("node-to-node frames: decoded or refused", () => {
    const messages: Message[] = [
      {
        type: "raft_append_entries",
        term: 3,
        idx: 12,
        prevIdx: 10,
        prevTerm: 2,
        leaderCommitIdx: 9,
        termOfIdx: 3,
        containsNewView: true,
        entries: [
          { idx: 11, term: 3, isSignature: false, data: Buffer.from("entry eleven") },
          { idx: 12, term: 3, isSignature: true, configuration: ["a", "b"], data: Buffer.alloc(0) },
        ],
      },
      { type: "raft_append_entries_response", term: 2, lastLogIdx: 7, success: false },
      {
        type: "raft_request_vote",
        term: 4,
        lastCommittableIdx: 10,
        termOfLastCommittableIdx: 3,
        electionType: "PreVote",
      },
      {
        type: "raft_request_vote_response",
        term: 4,
        voteGranted: true,
        electionType: "RegularVote",
      },
      { type: "raft_propose_request_vote", term: 5 },
    ];
    const valid = messages.map((m) => Buffer.from(encodeMessage(m)));
    const header = fc
      .tuple(
        fc.constantFrom(...messages),
        fc.constantFrom("term", "idx", "entries", "size", "type", "electionType", "configuration"),
        fc.jsonValue({ maxDepth: 2 }),
      )
      .map(([m, field, value]) => {
        const frame = Buffer.from(encodeMessage(m));
        const json = JSON.parse(
          frame.subarray(5, 5 + frame.readUInt32LE(1)).toString("utf8"),
        ) as Record<string, unknown>;
        json[field] = value;
        const body = Buffer.from(JSON.stringify(json));
        const len = Buffer.alloc(4);
        len.writeUInt32LE(body.length);
        return Buffer.concat([Buffer.from([valid[0][0]]), len, body]);
      });
    fc.assert(
      fc.property(fc.oneof(mutatedOf(valid), header), (bytes) => {
        parsesOrRefuses(() => decodeMessage(bytes));
      }),
      { seed: 1412, numRuns: runs(1500) },
    );
  });

  it("serialised Merkle trees: deserialised or refused", () => {
    const tree = new MerkleTree();
    const rng = seededRng(1413);
    for (let i = 0; i < 13; i++) tree.append(rng.bytes(32));
    const whole = tree.serialise();
    tree.flush(5);
    const flushed = tree.serialise();
    const crafted = fc
      .tuple(
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.nat(8),
      )
      .map(([count, from, digests]) => {
        const head = Buffer.alloc(16);
        head.writeBigUInt64BE(count, 0);
        head.writeBigUInt64BE(from, 8);
        return Buffer.concat([head, Buffer.alloc(32 * digests, 7)]);
      });
    fc.assert(
      fc.property(fc.oneof(mutatedOf([whole, flushed]), crafted), (bytes) => {
        parsesOrRefuses(() => {
          const t = MerkleTree.deserialise(bytes);
          if (t.size > 0) t.root();
        });
      }),
      { seed: 1413, numRuns: runs(1000) },
    );
  });

  it("transaction ids: parsed to safe integers that print back, or undefined", () => {
    const txid = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc
        .tuple(
          fc.stringMatching(/^[0-9]{0,20}$/),
          fc.constantFrom(".", "", "..", ". "),
          fc.stringMatching(/^[0-9-+e]{0,20}$/),
        )
        .map((p) => p.join("")),
    );
    fc.assert(
      fc.property(txid, (s) => {
        const id = parseTxId(s);
        if (id === undefined) return;
        assert.ok(Number.isSafeInteger(id.view) && id.view >= 0, s);
        assert.ok(Number.isSafeInteger(id.seqno) && id.seqno >= 0, s);
        assert.deepEqual(parseTxId(txIdString(id)), id);
      }),
      { seed: 1414, numRuns: runs(2000) },
    );
  });
});
