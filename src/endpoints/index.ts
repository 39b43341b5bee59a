// Built-in endpoints: `/node/*`, and the common `/commit`, `/tx`, `/receipt`, `/api` of each frontend.

export { commonEndpoints, historicalRetry } from "./common.js";
export type {
  NodeContext,
  NodeStartupState,
  Quote,
  SessionMetrics,
  TxStatus,
} from "./context.js";
export { checkApiVersion, govReadEndpoints } from "./gov.js";
export { type GovWriteDeps, govMemberWriteEndpoints } from "./gov-members.js";
export { EndpointMetrics } from "./metrics.js";
export {
  committedNodes,
  type NodeDescription,
  nodeEndpoints,
  nodeEntries,
  removableNodeIds,
} from "./node.js";
export { openApiDocument } from "./openapi.js";
export { parseQuery } from "./query.js";
export { parseTxId, TX_ID_HEADER, txIdString } from "./txid.js";
export type {
  ClientCertificate,
  Endpoint,
  EndpointHandler,
  EndpointRequest,
  EndpointResponse,
} from "./types.js";
