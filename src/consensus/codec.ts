// Consensus messages on the wire between nodes: a version byte, a JSON header (the message without
// entry bytes) and the entries' bytes after it, so ledger entries are never re-encoded. Decoding
// checks every field: a malformed frame is a FormatError, never a crash or a half-valid message.

import { FormatError } from "../errors.js";
import type { LogEntry, Message, NodeId } from "./types.js";

const VERSION = 1;
const HEADER_LIMIT = 1 << 20;

interface EntryHeader {
  idx: number;
  term: number;
  isSignature: boolean;
  configuration?: readonly NodeId[];
  size: number;
}

export function encodeMessage(message: Message): Uint8Array {
  let header: unknown = message;
  let blobs: readonly Uint8Array[] = [];
  if (message.type === "raft_append_entries") {
    blobs = message.entries.map((e) => e.data);
    header = {
      ...message,
      entries: message.entries.map((e): EntryHeader => {
        const h: EntryHeader = {
          idx: e.idx,
          term: e.term,
          isSignature: e.isSignature,
          size: e.data.byteLength,
        };
        if (e.configuration !== undefined) h.configuration = e.configuration;
        return h;
      }),
    };
  }
  const json = Buffer.from(JSON.stringify(header));
  const out = Buffer.allocUnsafe(5 + json.length + blobs.reduce((n, b) => n + b.byteLength, 0));
  out[0] = VERSION;
  out.writeUInt32LE(json.length, 1);
  json.copy(out, 5);
  let at = 5 + json.length;
  for (const b of blobs) {
    out.set(b, at);
    at += b.byteLength;
  }
  return out;
}

function bad(why: string): FormatError {
  return new FormatError("MalformedConsensusMessage", `consensus message: ${why}`);
}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v))
    throw bad(`${what} is not an object`);
  return v as Record<string, unknown>;
}

function count(o: Record<string, unknown>, field: string): number {
  const v = o[field];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw bad(`${field} is not a non-negative integer`);
  }
  return v;
}

function bool(o: Record<string, unknown>, field: string): boolean {
  const v = o[field];
  if (typeof v !== "boolean") throw bad(`${field} is not a boolean`);
  return v;
}

function electionType(o: Record<string, unknown>): "RegularVote" | "PreVote" {
  const v = o.electionType;
  if (v !== "RegularVote" && v !== "PreVote") throw bad("electionType is unknown");
  return v;
}

export function decodeMessage(bytes: Uint8Array): Message {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 5) throw bad("shorter than its header");
  if (buf[0] !== VERSION) throw bad(`version ${buf[0]} is not ${VERSION}`);
  const headerLength = buf.readUInt32LE(1);
  if (headerLength > HEADER_LIMIT || 5 + headerLength > buf.length) {
    throw bad("header length out of bounds");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.subarray(5, 5 + headerLength).toString("utf8"));
  } catch {
    throw bad("header is not JSON");
  }
  const h = obj(parsed, "header");
  const rest = buf.subarray(5 + headerLength);
  const term = count(h, "term");
  if (h.type !== "raft_append_entries" && rest.length !== 0) throw bad("trailing bytes");
  switch (h.type) {
    case "raft_append_entries": {
      if (!Array.isArray(h.entries)) throw bad("entries is not an array");
      const entries: LogEntry[] = [];
      let at = 0;
      for (const raw of h.entries as unknown[]) {
        const e = obj(raw, "entry");
        const size = count(e, "size");
        if (at + size > rest.length) throw bad("entry bytes out of bounds");
        const entry: LogEntry = {
          idx: count(e, "idx"),
          term: count(e, "term"),
          isSignature: bool(e, "isSignature"),
          data: rest.subarray(at, at + size),
        };
        at += size;
        if (e.configuration !== undefined) {
          const c = e.configuration;
          if (!Array.isArray(c) || !c.every((n) => typeof n === "string")) {
            throw bad("configuration is not a list of node ids");
          }
          entry.configuration = c;
        }
        entries.push(entry);
      }
      if (at !== rest.length) throw bad("trailing bytes after the entries");
      return {
        type: "raft_append_entries",
        term,
        idx: count(h, "idx"),
        prevIdx: count(h, "prevIdx"),
        prevTerm: count(h, "prevTerm"),
        leaderCommitIdx: count(h, "leaderCommitIdx"),
        termOfIdx: count(h, "termOfIdx"),
        containsNewView: bool(h, "containsNewView"),
        entries,
      };
    }
    case "raft_append_entries_response":
      return {
        type: "raft_append_entries_response",
        term,
        lastLogIdx: count(h, "lastLogIdx"),
        success: bool(h, "success"),
      };
    case "raft_request_vote":
      return {
        type: "raft_request_vote",
        term,
        lastCommittableIdx: count(h, "lastCommittableIdx"),
        termOfLastCommittableIdx: count(h, "termOfLastCommittableIdx"),
        electionType: electionType(h),
      };
    case "raft_request_vote_response":
      return {
        type: "raft_request_vote_response",
        term,
        voteGranted: bool(h, "voteGranted"),
        electionType: electionType(h),
      };
    case "raft_propose_request_vote":
      return { type: "raft_propose_request_vote", term };
    default:
      throw bad(`unknown type ${JSON.stringify(h.type)}`);
  }
}
