// The sandbox's errors: raised in the guest by a host, a guest exception, a limit, misuse.

import { CcfError } from "../../errors.js";

/**
 * Thrown by a host function to throw, in the guest, a real instance of the guest's error type
 * `errorName` ("TypeError", "RangeError", "InternalError"...) with `message`. An unknown name
 * gives an `Error` whose `name` is set to it.
 */
export class GuestError extends CcfError {
  readonly errorName: string;

  constructor(errorName: string, message: string) {
    super("JSException", message);
    this.errorName = errorName;
  }
}

/**
 * The guest threw. `message` is what the guest's `String(exception)` gives ("TypeError: boom", or
 * "oops" for `throw "oops"`), CCF's exception detail. `jsStack` holds guest frames only.
 */
export class JsException extends CcfError {
  /** The exception's `name`, or "" when a non-object was thrown. */
  readonly jsName: string;
  /** The exception's `message`, or the thrown value as a string when it is not an object. */
  readonly jsMessage: string;
  /** The exception's `stack` as the guest sees it (QuickJS: frames only), if it has one. */
  readonly jsStack: string | undefined;

  constructor(text: string, jsName: string, jsMessage: string, jsStack: string | undefined) {
    super("JSException", text);
    this.jsName = jsName;
    this.jsMessage = jsMessage;
    this.jsStack = jsStack;
  }
}

export type LimitKind = "time" | "memory" | "stack";

const LIMIT_MESSAGES: Record<LimitKind, string> = {
  // CCF's own message for the execution-time limit.
  time: "Operation took too long to complete.",
  memory: "The JS heap limit was reached.",
  stack: "The JS stack limit was reached.",
};

/** A host function called with the wrong number of arguments: CCF's native TypeError. */
export function checkArgCount(args: readonly unknown[], expected: number): void {
  if (args.length !== expected) {
    throw new GuestError("TypeError", `Passed ${args.length} arguments, but expected ${expected}`);
  }
}

/** A limit was hit; the interpreter is dead and must be discarded. */
export class LimitExceeded extends CcfError {
  readonly kind: LimitKind;

  constructor(kind: LimitKind, options?: { cause?: unknown }) {
    super("InternalError", LIMIT_MESSAGES[kind], 500, options);
    this.kind = kind;
  }
}

/** The sandbox was misused or could not do what was asked: a dead interpreter, a missing export. */
export class SandboxError extends CcfError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("InternalError", message, 500, options);
  }
}
