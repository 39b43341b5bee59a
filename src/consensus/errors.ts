// Errors raised by consensus: a broken invariant (a bug, never a client's fault) and the refusals a
// client can see.

import { CcfError } from "../errors.js";

/** An internal invariant of the state machine does not hold: the node must stop. */
export class ConsensusInvariantError extends CcfError {
  constructor(message: string) {
    super("ConsensusInvariantViolated", message, 500);
  }
}

/** Backpressure: too many transactions are waiting to commit (CCF's TooManyPendingTransactions). */
export class TooManyPendingTransactionsError extends CcfError {
  constructor(uncommitted: number, limit: number) {
    super(
      "TooManyPendingTransactions",
      `${uncommitted} transactions are pending commit (limit ${limit}). Retry later.`,
      503,
    );
  }
}

/** A transaction was offered to a node that is not an accepting primary. */
export class NotPrimaryError extends CcfError {
  constructor(message: string) {
    super("NotPrimary", message, 503);
  }
}

export function invariant(condition: boolean, message: () => string): asserts condition {
  if (!condition) throw new ConsensusInvariantError(message());
}
