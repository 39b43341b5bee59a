// What an endpoint is, independent of the transport: the front end (rpc/) turns HTTP requests into
// `EndpointRequest`s, runs the matching `Endpoint`'s handler and sends its `EndpointResponse`.

/** The client's TLS certificate, when it presented one. */
export interface ClientCertificate {
  pem: string;
  der: Buffer;
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
}

export interface EndpointResponse {
  status: number;
  headers?: Record<string, string>;
  /** A Buffer or string is sent as is; anything else as JSON. Omit for no body. */
  body?: unknown;
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
}
