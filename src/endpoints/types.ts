// What an endpoint is, independent of the transport: the front end (rpc/) turns HTTP requests into
// `EndpointRequest`s, runs the matching `Endpoint`'s handler and sends its `EndpointResponse`.

/** The client's TLS certificate, when it presented one. */
export interface ClientCertificate {
  pem: string;
  der: Buffer;
}

/**
 * One client session: a TLS connection (HTTP/1.1) or an HTTP/2 session. Requests of a session share
 * this object, so per-session state (forwarding, for session consistency) lives as long as it does.
 */
export interface ClientSession {
  /** Unique among the sessions of this process. */
  readonly id: number;
  /**
   * Set once a request of this session was forwarded: the primary it went to and that primary's view
   * when known. Later requests must still see that primary, or the session's guarantee
   * (read-your-writes) is gone and the session is ended (CCF's SessionConsistencyLost).
   */
  forwardedTo?: { primary: string; view: number | undefined };
}

export interface EndpointRequest {
  method: string;
  /** Path without the query string, percent-decoding not applied (CCF matches raw paths). */
  path: string;
  /** The raw query string, without '?'. */
  query: string;
  /** Values of `{name}` segments of the endpoint's path template. */
  params: Record<string, string>;
  /** Lower-case header names. */
  headers: Record<string, string>;
  body: Buffer;
  clientCert: ClientCertificate | undefined;
  /** "1.1" or "2.0". */
  httpVersion: string;
  /** Host name the request was sent to (Host or :authority), without the port. */
  hostname: string;
  /** The client session the request came on; absent for in-process requests (inject). */
  session?: ClientSession;
  /** True when another node forwarded this request here: it must not be forwarded again. */
  forwarded?: boolean;
}

export interface EndpointResponse {
  status: number;
  headers?: Record<string, string>;
  /** A Buffer or string is sent as is; anything else as JSON. Omit for no body. */
  body?: unknown;
  /**
   * For a HEAD answered without building the body: the Content-Length the GET would have (a
   * file's size). Used instead of the body's length; the body is never sent for a HEAD anyway.
   */
  headContentLength?: number;
}

export type EndpointHandler = (
  req: EndpointRequest,
) => EndpointResponse | Promise<EndpointResponse>;

export interface Endpoint {
  method: string;
  /** Path template: `/node/network/nodes/{node_id}`; exact segments win over templates. */
  path: string;
  handler: EndpointHandler;
  /** OpenAPI operation object, for `/api`. */
  openapi?: Record<string, unknown>;
  /**
   * CCF's `forwarding_required`, deciding what a backup does with the request: `always` forward it to
   * the primary, `sometimes` only on a session that already forwarded, `never` run it here.
   * Absent: run here (as `never`), so endpoints that say nothing behave as before forwarding existed.
   */
  forwarding?: "always" | "sometimes" | "never";
  /**
   * CCF's `redirection_strategy`, used instead of forwarding on interfaces configured with
   * `redirections`: answer 307 towards the primary, towards a backup, or not at all.
   * Absent: `none`.
   */
  redirection?: "none" | "to_primary" | "to_backup";
}
