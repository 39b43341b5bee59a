// Linearizability checker for a key-value store seen as one register per key: a Wing–Gong–Lowe
// search over each key's history on its own (as Porcupine does), with a cache and a step budget.
//
// Pure and deterministic: no clock, no I/O. A harness records operations (times are any monotonic
// numbers) and hands them over. Under CCF's read semantics (DESIGN.md, "Reads") a response is only
// an outcome once the TxID it carries reports Committed: until then a harness records the
// operation as unknown ("info"); a TxID that becomes Invalid means it never happened ("fail").

import { FormatError } from "../errors.js";

export type OperationKind = "put" | "get" | "delete";

export interface Operation {
  id: string | number;
  clientId: string | number;
  key: string;
  kind: OperationKind;
  /** The value a put writes. */
  value?: string;
  /** What a completed get returned; undefined means the key was absent. */
  output?: string;
  invoke: number;
  /**
   * undefined when the outcome is unknown (timed out): the operation may have taken effect at any
   * time after `invoke`, or never. A get with an unknown outcome constrains nothing.
   */
  complete: number | undefined;
}

export type CheckResult = "linearizable" | "not-linearizable" | "unknown";

export interface CheckReport {
  /** True only when every key is linearizable. */
  ok: boolean;
  /** not-linearizable if any key is; otherwise unknown if any key exhausted its step budget. */
  result: CheckResult;
  /** Keys whose history is not linearizable, sorted. */
  badKeys: string[];
  /** Keys whose search gave up at the step budget, sorted. */
  unknownKeys: string[];
  /** For each bad or unknown key: why, naming the operations involved. */
  explanation?: string;
}

export interface CheckOptions {
  /** Search steps allowed per key before its verdict is "unknown". */
  maxStepsPerKey?: number;
}

export const DEFAULT_MAX_STEPS_PER_KEY = 1_000_000;

/** Checks a history of register operations, one key at a time. Throws FormatError if malformed. */
export function checkHistory(ops: Operation[], opts: CheckOptions = {}): CheckReport {
  const maxSteps = opts.maxStepsPerKey ?? DEFAULT_MAX_STEPS_PER_KEY;
  validate(ops);
  const byKey = new Map<string, Operation[]>();
  for (const op of ops) {
    const list = byKey.get(op.key);
    if (list === undefined) byKey.set(op.key, [op]);
    else list.push(op);
  }
  const badKeys: string[] = [];
  const unknownKeys: string[] = [];
  const explanations: string[] = [];
  for (const key of [...byKey.keys()].sort()) {
    const verdict = checkKey(key, byKey.get(key) ?? [], maxSteps);
    if (verdict.result === "linearizable") continue;
    (verdict.result === "not-linearizable" ? badKeys : unknownKeys).push(key);
    explanations.push(verdict.explanation);
  }
  const result: CheckResult =
    badKeys.length > 0 ? "not-linearizable" : unknownKeys.length > 0 ? "unknown" : "linearizable";
  const report: CheckReport = { ok: result === "linearizable", result, badKeys, unknownKeys };
  if (explanations.length > 0) report.explanation = explanations.join("\n\n");
  return report;
}

export type HistoryEvent =
  | {
      type: "invoke";
      id: string | number;
      time: number;
      clientId: string | number;
      key: string;
      kind: OperationKind;
      value?: string;
    }
  | { type: "ok"; id: string | number; time: number; output?: string }
  | { type: "fail" | "info"; id: string | number; time: number };

/**
 * Turns Jepsen-style events into operations: "ok" completes an operation (with a get's output),
 * "fail" means it definitely did not happen (dropped), "info" or no completion at all means its
 * outcome is unknown. Operations come out in invocation order.
 */
export function historyFromEvents(events: HistoryEvent[]): Operation[] {
  const ops = new Map<string | number, Operation | "failed">();
  const completed = new Set<string | number>();
  for (const ev of events) {
    if (ev.type === "invoke") {
      if (ops.has(ev.id)) throw malformed(`operation ${String(ev.id)} is invoked twice`);
      const op: Operation = {
        id: ev.id,
        clientId: ev.clientId,
        key: ev.key,
        kind: ev.kind,
        invoke: ev.time,
        complete: undefined,
      };
      if (ev.value !== undefined) op.value = ev.value;
      ops.set(ev.id, op);
      continue;
    }
    const op = ops.get(ev.id);
    if (op === undefined) throw malformed(`operation ${String(ev.id)} completes before its invoke`);
    if (completed.has(ev.id)) throw malformed(`operation ${String(ev.id)} completes twice`);
    completed.add(ev.id);
    if (op === "failed") continue;
    if (ev.type === "fail") ops.set(ev.id, "failed");
    else if (ev.type === "ok") {
      op.complete = ev.time;
      if (ev.output !== undefined) op.output = ev.output;
    }
  }
  return [...ops.values()].filter((op): op is Operation => op !== "failed");
}

function malformed(message: string): FormatError {
  return new FormatError("MalformedHistory", message);
}

function validate(ops: Operation[]): void {
  const ids = new Set<string | number>();
  for (const op of ops) {
    if (ids.has(op.id)) throw malformed(`operation id ${String(op.id)} appears twice`);
    ids.add(op.id);
    if (!Number.isFinite(op.invoke)) throw malformed(`operation ${String(op.id)}: bad invoke time`);
    if (op.complete !== undefined && !(op.complete >= op.invoke)) {
      throw malformed(`operation ${String(op.id)} completes before it is invoked`);
    }
    if (op.kind === "put" && typeof op.value !== "string") {
      throw malformed(`put ${String(op.id)} has no value`);
    }
    if (op.kind !== "put" && op.kind !== "get" && op.kind !== "delete") {
      throw malformed(`operation ${String(op.id)} has unknown kind ${String(op.kind)}`);
    }
  }
}

type KeyVerdict =
  | { result: "linearizable" }
  | { result: "not-linearizable" | "unknown"; explanation: string };

/** The register's state: 0 is absent, n > 0 the n-th distinct value seen on this key. */
type RegisterState = number;

/** One call or return event in the doubly linked list the search lifts operations out of. */
interface Entry {
  op: number;
  isCall: boolean;
  time: number;
  prev: Entry | null;
  next: Entry | null;
  /** A call's return entry; null for returns and the head. */
  match: Entry | null;
}

/** The furthest the search got: an order, the state after it, and the operations left stuck. */
interface DeadEnd {
  order: number[];
  state: RegisterState;
  /** Operations that could be next; every continuation starting with one of them fails. */
  blocked: number[];
  /** The operation whose completion came before any of them could be placed. */
  deadline: number;
}

const KIND_PUT = 0;
const KIND_GET = 1;
const KIND_DELETE = 2;

function checkKey(key: string, all: Operation[], maxSteps: number): KeyVerdict {
  // A get with an unknown outcome returned nothing we can hold the store to.
  const ops = all.filter((op) => !(op.kind === "get" && op.complete === undefined));
  const n = ops.length;

  // Values are interned so the state is a small integer. A read of a value no put wrote is
  // reported at once rather than found by exhausting the search.
  const index = new Map<string, number>();
  const intern = (v: string): number => {
    let i = index.get(v);
    if (i === undefined) {
      i = index.size + 1;
      index.set(v, i);
    }
    return i;
  };
  const written = new Set<string>();
  for (const op of ops) if (op.kind === "put" && op.value !== undefined) written.add(op.value);
  const kinds = new Uint8Array(n);
  const args = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const op = ops[i];
    if (op.kind === "put") {
      kinds[i] = KIND_PUT;
      args[i] = intern(op.value as string);
    } else if (op.kind === "delete") {
      kinds[i] = KIND_DELETE;
    } else {
      kinds[i] = KIND_GET;
      if (op.output !== undefined && !written.has(op.output)) {
        return {
          result: "not-linearizable",
          explanation:
            `key ${JSON.stringify(key)} is not linearizable: ${describe(op)} ` +
            `read ${JSON.stringify(op.output)}, which no put on this key wrote.`,
        };
      }
      args[i] = op.output === undefined ? 0 : intern(op.output);
    }
  }
  // The state after operation i, or -1 when i is a get that cannot return what it did.
  const step = (state: RegisterState, i: number): number => {
    const kind = kinds[i];
    if (kind === KIND_PUT) return args[i];
    if (kind === KIND_DELETE) return 0;
    return state === args[i] ? state : -1;
  };

  const head = buildEntries(ops);
  const linearized = new Uint16Array(Math.ceil(n / 16));
  const seen = new Set<string>();
  // Each linearized operation with the state before it, in linearization order.
  const stack: Array<{ call: Entry; before: RegisterState }> = [];
  let state: RegisterState = 0;
  let deepest: DeadEnd | undefined;
  let steps = 0;
  let entry: Entry | null = head.next;
  while (entry !== null) {
    if (++steps > maxSteps) {
      return {
        result: "unknown",
        explanation:
          `key ${JSON.stringify(key)}: gave up after ${maxSteps} search steps ` +
          `(${n} operations); raise maxStepsPerKey or shorten the history.`,
      };
    }
    if (entry.isCall) {
      const after = step(state, entry.op);
      if (after >= 0) {
        flip(linearized, entry.op);
        const cacheKey = `${String.fromCharCode(...linearized)}|${after}`;
        if (!seen.has(cacheKey)) {
          seen.add(cacheKey);
          stack.push({ call: entry, before: state });
          state = after;
          lift(entry);
          entry = head.next;
          continue;
        }
        flip(linearized, entry.op);
      }
      entry = entry.next;
      continue;
    }
    // A return whose operation is not linearized yet: no order of the operations before it works
    // from here, so undo the last choice and try the next one.
    if (deepest === undefined || stack.length > deepest.order.length) {
      const blocked: number[] = [];
      for (let e = head.next; e !== null && e !== entry; e = e.next) blocked.push(e.op);
      deepest = { order: stack.map((s) => s.call.op), state, blocked, deadline: entry.op };
    }
    const top = stack.pop();
    if (top === undefined) break;
    state = top.before;
    flip(linearized, top.call.op);
    unlift(top.call);
    entry = top.call.next;
  }
  if (head.next === null) return { result: "linearizable" };
  return { result: "not-linearizable", explanation: explain(key, ops, index, deepest) };
}

/** Builds the time-ordered list of call and return events; returns its head sentinel. */
function buildEntries(ops: Operation[]): Entry {
  const entries: Entry[] = [];
  ops.forEach((op, i) => {
    // An unknown outcome may take effect at any time after invoke: its return never comes.
    const time = op.complete ?? Number.POSITIVE_INFINITY;
    const ret: Entry = { op: i, isCall: false, time, prev: null, next: null, match: null };
    entries.push({ op: i, isCall: true, time: op.invoke, prev: null, next: null, match: ret }, ret);
  });
  // At equal times calls go first, so operations that merely touch count as concurrent: the
  // checker never rejects a history on a timestamp tie.
  entries.sort((a, b) => a.time - b.time || (a.isCall ? 0 : 1) - (b.isCall ? 0 : 1) || a.op - b.op);
  const head: Entry = {
    op: -1,
    isCall: false,
    time: -Infinity,
    prev: null,
    next: null,
    match: null,
  };
  let prev = head;
  for (const e of entries) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }
  prev.next = null;
  return head;
}

/** Removes a call and its return from the list; their own links are kept for `unlift`. */
function lift(call: Entry): void {
  const ret = call.match as Entry;
  (call.prev as Entry).next = call.next;
  (call.next as Entry).prev = call.prev;
  (ret.prev as Entry).next = ret.next;
  if (ret.next !== null) ret.next.prev = ret.prev;
}

/** Puts back what `lift` removed; lifts must be undone in reverse order. */
function unlift(call: Entry): void {
  const ret = call.match as Entry;
  (ret.prev as Entry).next = ret;
  if (ret.next !== null) ret.next.prev = ret;
  (call.prev as Entry).next = call;
  (call.next as Entry).prev = call;
}

function flip(bits: Uint16Array, i: number): void {
  const w = i >>> 4;
  bits[w] = bits[w] ^ (1 << (i & 15));
}

function describe(op: Operation): string {
  const what =
    op.kind === "put"
      ? `put(${JSON.stringify(op.value)})`
      : op.kind === "delete"
        ? "delete()"
        : `get() -> ${op.output === undefined ? "absent" : JSON.stringify(op.output)}`;
  const end = op.complete === undefined ? "?" : String(op.complete);
  return `op ${String(op.id)} (client ${String(op.clientId)}) ${what} [${op.invoke}, ${end}]`;
}

function explain(
  key: string,
  ops: Operation[],
  index: Map<string, number>,
  deepest: DeadEnd | undefined,
): string {
  const lines = [`key ${JSON.stringify(key)} is not linearizable.`];
  if (deepest === undefined) return lines[0];
  const valueOf = new Map([...index].map(([v, i]) => [i, v]));
  const holds = deepest.state === 0 ? "absent" : JSON.stringify(valueOf.get(deepest.state));
  lines.push(
    `The longest valid order found places ${deepest.order.length} of ${ops.length} operations:`,
  );
  for (const i of deepest.order) lines.push(`  ${describe(ops[i])}`);
  const deadline = ops[deepest.deadline];
  const by = deadline.complete === undefined ? "" : ` by ${deadline.complete}`;
  lines.push(
    `after which the key is ${holds}; op ${String(deadline.id)} must take effect${by}, ` +
      "but no order of the operations pending then works:",
  );
  for (const i of deepest.blocked) lines.push(`  ${describe(ops[i])}`);
  return lines.join("\n");
}
