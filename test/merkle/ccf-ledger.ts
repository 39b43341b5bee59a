// The entries CCF really wrote in a fixture service's committed chunks, in the shape the Merkle
// tests use: raw bytes, public header digests, and the public writes by map and hex key. Parsing is
// the ledger module's own (its fixture tests pin it against CCF's facts).
import { join } from "node:path";
import { keyFromString } from "../../src/kv/index.js";
import { listChunks, readChunkEntries } from "../../src/ledger/index.js";

export const FIXTURES = join(import.meta.dirname, "../../../shared/fixtures/ccf-ledgers");

export interface FixtureEntry {
  seqno: number;
  view: number;
  entryType: number;
  raw: Buffer;
  claimsDigest?: Buffer;
  commitEvidenceDigest?: Buffer;
  /** map name -> (hex key -> value bytes) */
  writes: Map<string, Map<string, Buffer>>;
}

/** The entries of the committed chunks of a fixture service, in seqno order. */
export function readFixtureLedger(service: string): FixtureEntry[] {
  const chunks = listChunks(join(FIXTURES, service, "ledger"), true);
  return chunks.flatMap((c) =>
    readChunkEntries(c.path).map((e) => {
      const writes = new Map<string, Map<string, Buffer>>();
      for (const [name, m] of e.writeSet) {
        const byHex = new Map<string, Buffer>();
        for (const [k, v] of m)
          if (v !== null) byHex.set(keyFromString(k).toString("hex"), Buffer.from(v));
        writes.set(name, byHex);
      }
      const entry: FixtureEntry = {
        seqno: e.header.version,
        view: e.view,
        entryType: e.header.entryType,
        raw: e.bytes,
        writes,
      };
      if (e.header.claimsDigest !== undefined)
        entry.claimsDigest = Buffer.from(e.header.claimsDigest);
      if (e.header.commitEvidenceDigest !== undefined) {
        entry.commitEvidenceDigest = Buffer.from(e.header.commitEvidenceDigest);
      }
      return entry;
    }),
  );
}
