// Public surface of the audit layer: offline verification of what a service hands out (receipts).
export {
  COSE_RECEIPT,
  type CoseReceiptLeaf,
  type ReceiptVerification,
  buildCoseReceipt,
  verifyReceiptBytes,
} from "./receipt.js";
