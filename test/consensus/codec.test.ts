// Tests for the consensus wire format: every message type round-trips, entry bytes are carried as
// they are, and malformed frames (truncated, wrong types, random bytes) are FormatErrors.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeMessage, encodeMessage } from "../../src/consensus/codec.js";
import type { Message } from "../../src/consensus/index.js";
import { FormatError } from "../../src/errors.js";

const MESSAGES: Message[] = [
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
      {
        idx: 12,
        term: 3,
        isSignature: true,
        configuration: ["a", "b", "c"],
        data: Buffer.alloc(0),
      },
    ],
  },
  {
    type: "raft_append_entries",
    term: 2,
    idx: 5,
    prevIdx: 5,
    prevTerm: 2,
    leaderCommitIdx: 5,
    termOfIdx: 2,
    containsNewView: false,
    entries: [],
  },
  { type: "raft_append_entries_response", term: 2, lastLogIdx: 7, success: false },
  {
    type: "raft_request_vote",
    term: 4,
    lastCommittableIdx: 10,
    termOfLastCommittableIdx: 3,
    electionType: "PreVote",
  },
  { type: "raft_request_vote_response", term: 4, voteGranted: true, electionType: "RegularVote" },
  { type: "raft_propose_request_vote", term: 5 },
];

function normalise(m: Message): unknown {
  if (m.type !== "raft_append_entries") return m;
  return {
    ...m,
    entries: m.entries.map((e) => ({ ...e, data: Buffer.from(e.data).toString("hex") })),
  };
}

describe("consensus message codec", () => {
  it("round-trips every message type, entry bytes included", () => {
    for (const m of MESSAGES) {
      assert.deepEqual(normalise(decodeMessage(encodeMessage(m))), normalise(m));
    }
  });

  it("refuses truncated frames, bad versions, bad fields and trailing bytes", () => {
    const good = Buffer.from(encodeMessage(MESSAGES[0]));
    const cases: Buffer[] = [
      Buffer.alloc(0),
      good.subarray(0, 4),
      good.subarray(0, good.length - 1),
      Buffer.concat([good, Buffer.from("x")]),
      Buffer.concat([Buffer.from([9]), good.subarray(1)]),
    ];
    const frame = (header: unknown) => {
      const json = Buffer.from(JSON.stringify(header));
      const len = Buffer.alloc(4);
      len.writeUInt32LE(json.length);
      return Buffer.concat([Buffer.from([1]), len, json]);
    };
    cases.push(
      frame({ type: "raft_append_entries_response", term: -1, lastLogIdx: 1, success: true }),
      frame({ type: "raft_append_entries_response", term: 1, lastLogIdx: 1.5, success: true }),
      frame({
        type: "raft_request_vote_response",
        term: 1,
        voteGranted: "yes",
        electionType: "PreVote",
      }),
      frame({
        type: "raft_request_vote",
        term: 1,
        lastCommittableIdx: 1,
        termOfLastCommittableIdx: 1,
        electionType: "Other",
      }),
      frame({ type: "raft_unknown", term: 1 }),
      frame([1, 2]),
      frame({
        type: "raft_append_entries",
        term: 1,
        idx: 1,
        prevIdx: 0,
        prevTerm: 0,
        leaderCommitIdx: 0,
        termOfIdx: 1,
        containsNewView: false,
        entries: [{ idx: 1, term: 1, isSignature: false, size: 10 }],
      }),
    );
    for (const c of cases) {
      assert.throws(() => decodeMessage(c), FormatError, c.toString("hex").slice(0, 60));
    }
  });

  it("never throws anything but a FormatError on random bytes", () => {
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed;
    };
    for (let i = 0; i < 2000; i++) {
      const bytes = Buffer.alloc(next() % 64);
      for (let j = 0; j < bytes.length; j++) bytes[j] = next() % 256;
      if (i % 2 === 0 && bytes.length > 0) bytes[0] = 1;
      try {
        decodeMessage(bytes);
      } catch (e) {
        assert.ok(e instanceof FormatError, String(e));
      }
    }
  });
});
