// The `ccf` global's runtime pieces installed into a sandbox interpreter: converters and raw ccf.kv.

export { installConverters } from "./converters.js";
export {
  installKv,
  type KvAccess,
  type KvContext,
  kvForbiddenMessage,
  type KvMethod,
  kvMethodAllowed,
  type KvPermission,
  kvPermission,
} from "./kv.js";
