// The `ccf` global's runtime pieces installed into a sandbox interpreter: converters and raw ccf.kv.

export { installConverters } from "./converters.js";
export { installCrypto } from "./crypto.js";
export { type GovExtensionOptions, installGovExtension, validateConstitution } from "./gov.js";
export {
  installKv,
  KV_FACTORY_GLOBAL,
  type KvAccess,
  type KvContext,
  kvForbiddenMessage,
  type KvMethod,
  kvMethodAllowed,
  type KvPermission,
  kvPermission,
} from "./kv.js";
