// The JS sandbox: isolated QuickJS interpreters with CCF's limits, ES modules and host functions.

export {
  CCF_DEFAULT_LIMITS,
  type CallOptions,
  type Definition,
  deterministic,
  type HostFunction,
  type Interpreter,
  type InterpreterOptions,
  type Limits,
  type LogLevel,
  type ModuleSource,
  type RewindableInterpreter,
} from "./interpreter.js";
export {
  createInterpreter,
  createInterpreterNow,
  createRewindableInterpreter,
} from "./quickjs-interpreter.js";
export {
  GuestOpaque,
  GuestView,
  type GuestValue,
  type GuestViewType,
  type HostValue,
} from "./values.js";
export {
  checkArgCount,
  GuestError,
  JsException,
  LimitExceeded,
  type LimitKind,
  SandboxError,
} from "./errors.js";
export { resolveModuleName } from "./module-names.js";
