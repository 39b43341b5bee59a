// The JS runtime: the sandbox, the `ccf` global's pieces and JS applications.

export {
  type AppEndpoint,
  type AppResult,
  type ConsensusView,
  JsApp,
  readAppEndpoints,
} from "./app.js";
export * from "./ccf/index.js";
export * from "./sandbox/index.js";
