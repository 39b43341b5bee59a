// The HTTPS front end's public surface: the router, the server, and inject() for socket-free tests.
export {
  dispatch,
  encodeResponse,
  errorResponse,
  frontendPath,
  type HandlerErrorListener,
  type RpcResponse,
} from "./dispatch.js";
export { type InjectRequest, inject } from "./inject.js";
export { type RouteMatch, Router } from "./router.js";
export {
  type AuthPolicy,
  authenticate,
  type Caller,
  parsePolicies,
  type PolicyName,
} from "./auth.js";
export { FrontendPool } from "./frontends.js";
export {
  type RequestHandler,
  type RpcFrontend,
  RpcServer,
  type RpcServerOptions,
  type RpcServerStats,
} from "./server.js";
