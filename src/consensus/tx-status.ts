// CCF's transaction status (include/ccf/tx_status.h, evaluate_tx_status) as a pure function of what
// one node knows: where each view starts in its log, how far its log reaches and its commit index.

export type TxStatus = "Unknown" | "Pending" | "Committed" | "Invalid";

/** The first seqno of a view in a node's log (CCF's view history). */
export interface ViewStart {
  view: number;
  seqno: number;
}

export interface LocalView {
  /** Ascending by view and seqno. */
  viewHistory: readonly ViewStart[];
  /** Last seqno in the node's log. */
  lastSeqno: number;
  commitSeqno: number;
}

/** The view of the entry at `seqno` in this log, or undefined when the log does not hold it. */
export function viewAt(local: LocalView, seqno: number): number | undefined {
  if (seqno < 1 || seqno > local.lastSeqno) return undefined;
  let view: number | undefined;
  for (const v of local.viewHistory) {
    if (v.seqno > seqno) break;
    view = v.view;
  }
  return view;
}

export function txStatus(local: LocalView, target: { view: number; seqno: number }): TxStatus {
  const localView = viewAt(local, target.seqno);
  const committedView = viewAt(local, local.commitSeqno) ?? 0;
  const isCommitted = local.commitSeqno >= target.seqno;
  const viewsMatch = localView === target.view;
  if (isCommitted) return viewsMatch ? "Committed" : "Invalid";
  // A later view has committed: every seqno past the commit index belongs to a view at least as
  // late, so an earlier view's transaction there can never commit.
  if (committedView > target.view) return "Invalid";
  return viewsMatch ? "Pending" : "Unknown";
}

/**
 * Whether one node may report `to` after it reported `from` for the same transaction: Committed and
 * Invalid are final; Pending may fall back to Unknown when an election rolls the entry back.
 */
export function isAllowedStatusTransition(from: TxStatus, to: TxStatus): boolean {
  if (from === to) return true;
  switch (from) {
    case "Unknown":
      return true;
    case "Pending":
      return to === "Committed" || to === "Invalid" || to === "Unknown";
    case "Committed":
    case "Invalid":
      return false;
  }
}
