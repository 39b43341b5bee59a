// The error classes every layer throws: each carries a stable code (CCF's OData error codes where a
// client can see it) and the HTTP status a front end would answer with.

export class CcfError extends Error {
  readonly code: string;
  readonly status: number;

  constructor(code: string, message: string, status = 500, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
  }
}

/** A signature, MAC or certificate check failed, or key material is malformed. */
export class CryptoError extends CcfError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, 400, options);
  }
}

/** Bytes that do not parse as the format they claim to be (ledger files, CBOR, COSE, write sets). */
export class FormatError extends CcfError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, 400, options);
  }
}

/** A transaction could not commit because something it read changed (CCF's FAIL_CONFLICT). */
export class ConflictError extends CcfError {
  constructor(message: string) {
    super("TransactionConflict", message, 409);
  }
}
