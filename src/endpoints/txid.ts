// Transaction IDs on the wire: "view.seqno", both unsigned decimal integers.

import type { TxId } from "../ledger/index.js";

const TXID = /^(\d{1,16})\.(\d{1,16})$/;

export function parseTxId(s: string): TxId | undefined {
  const m = TXID.exec(s);
  if (m === null) return undefined;
  const view = Number(m[1]);
  const seqno = Number(m[2]);
  if (!Number.isSafeInteger(view) || !Number.isSafeInteger(seqno)) return undefined;
  return { view, seqno };
}

export function txIdString(id: TxId): string {
  return `${id.view}.${id.seqno}`;
}

export const TX_ID_HEADER = "x-ms-ccf-transaction-id";
