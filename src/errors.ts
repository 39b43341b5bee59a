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

/**
 * An error a client sees as CCF's `{"error": {"code", "message", "details"?}}` with an HTTP
 * status. Every such error is made through `HttpErrors` below, so codes are declared once.
 */
export class HttpError extends CcfError {
  readonly details: Array<{ auth_policy?: string; code: string; message: string }> | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(
    status: number,
    code: string,
    message: string,
    extra: {
      details?: Array<{ auth_policy?: string; code: string; message: string }>;
      headers?: Record<string, string>;
      cause?: unknown;
    } = {},
  ) {
    super(code, message, status, { cause: extra.cause });
    this.details = extra.details;
    this.headers = extra.headers;
  }

  /** The response body CCF sends. */
  toJSON(): { error: { code: string; message: string; details?: unknown[] } } {
    const error: { code: string; message: string; details?: unknown[] } = {
      code: this.code,
      message: this.message,
    };
    if (this.details !== undefined && this.details.length > 0) error.details = this.details;
    return { error };
  }
}

/** CCF's OData error codes (include/ccf/odata_error.h) with the status each is sent with. */
export const HttpErrors = {
  ResourceNotFound: (message: string) => new HttpError(404, "ResourceNotFound", message),
  UnsupportedHttpVerb: (message: string, allow: string[]) =>
    new HttpError(405, "UnsupportedHttpVerb", message, { headers: { allow: allow.join(", ") } }),
  InvalidInput: (message: string) => new HttpError(400, "InvalidInput", message),
  InvalidQueryParameterValue: (message: string) =>
    new HttpError(400, "InvalidQueryParameterValue", message),
  InvalidHeaderValue: (message: string) => new HttpError(400, "InvalidHeaderValue", message),
  MissingRequiredHeader: (message: string) => new HttpError(400, "MissingRequiredHeader", message),
  InvalidResourceName: (message: string) => new HttpError(400, "InvalidResourceName", message),
  NodeNotRetiredCommitted: (message: string) =>
    new HttpError(400, "NodeNotRetiredCommitted", message),
  UnsupportedContentType: (message: string) =>
    new HttpError(415, "UnsupportedContentType", message),
  RequestBodyTooLarge: (message: string) => new HttpError(413, "RequestBodyTooLarge", message),
  RequestHeaderTooLarge: (message: string) => new HttpError(431, "RequestHeaderTooLarge", message),
  AuthorizationFailed: (message: string) => new HttpError(403, "AuthorizationFailed", message),
  InvalidAuthenticationInfo: (
    message: string,
    details: Array<{ auth_policy?: string; code: string; message: string }> = [],
  ) => new HttpError(401, "InvalidAuthenticationInfo", message, { details }),
  SessionCapExhausted: (message: string) => new HttpError(503, "SessionCapExhausted", message),
  FrontendNotOpen: (message: string) => new HttpError(404, "FrontendNotOpen", message),
  TransactionNotFound: (message: string) => new HttpError(404, "TransactionNotFound", message),
  TransactionPendingOrUnknown: (message: string) =>
    new HttpError(404, "TransactionPendingOrUnknown", message),
  TransactionInvalid: (message: string) => new HttpError(404, "TransactionInvalid", message),
  TransactionCommitAttemptsExceedLimit: (message: string) =>
    new HttpError(409, "TransactionCommitAttemptsExceedLimit", message),
  NodeCannotHandleRequest: (message: string) =>
    new HttpError(503, "NodeCannotHandleRequest", message),
  MissingApiVersionParameter: (message: string) =>
    new HttpError(400, "MissingApiVersionParameter", message),
  UnsupportedApiVersionValue: (message: string) =>
    new HttpError(400, "UnsupportedApiVersionValue", message),
  ProposalNotFound: (message: string) => new HttpError(404, "ProposalNotFound", message),
  VoteNotFound: (message: string) => new HttpError(404, "VoteNotFound", message),
  NotImplemented: (message: string) => new HttpError(501, "NotImplemented", message),
  RequestAlreadyForwarded: (message: string) =>
    new HttpError(503, "RequestAlreadyForwarded", message),
  SessionConsistencyLost: (message: string) =>
    new HttpError(500, "SessionConsistencyLost", message),
  PrimaryNotFound: (message: string) => new HttpError(503, "PrimaryNotFound", message),
  BackupNotFound: (message: string) => new HttpError(503, "BackupNotFound", message),
  TooManyPendingTransactions: (message: string) =>
    new HttpError(503, "TooManyPendingTransactions", message),
  InternalError: (message: string) => new HttpError(500, "InternalError", message),
  /** CCF answers a request it cannot forward (no primary, no channel) with InternalError but 503. */
  InternalErrorUnavailable: (message: string) => new HttpError(503, "InternalError", message),
} as const;
