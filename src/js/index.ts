// The JS runtime: the sandbox, the `ccf` global's pieces and JS applications.

export {
  type AppEndpoint,
  type AppResult,
  type ConsensusView,
  decodeRuntimeOptions,
  JsApp,
  readAppEndpoints,
  type RuntimeOptions,
} from "./app.js";
export * from "./ccf/index.js";
export * from "./sandbox/index.js";
