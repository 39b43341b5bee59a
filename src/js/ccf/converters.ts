// The ccf global's converters (strToBuf, bufToStr, jsonCompatibleToBuf, bufToJsonCompatible, pemToId).

import { certificateId } from "../../crypto/index.js";
import { deterministic, GuestError, type Interpreter } from "../sandbox/index.js";

/** A hidden global through which the install script picks up the host functions, then deletes. */
const HOST_GLOBAL = "__ccfConvertersHost";

/** Defines the host functions in the guest, then moves them onto `ccf` and drops the helper global. */
const INSTALL_SCRIPT = `(() => {
  "use strict";
  const host = globalThis.${HOST_GLOBAL};
  delete globalThis.${HOST_GLOBAL};
  if (typeof globalThis.ccf !== "object" || globalThis.ccf === null) globalThis.ccf = {};
  const strToBuf = host.strToBuf;
  const bufToStr = host.bufToStr;
  const parse = JSON.parse;
  const stringify = JSON.stringify;
  const install = (name, fn) =>
    Object.defineProperty(globalThis.ccf, name, { value: fn, writable: true, enumerable: true, configurable: true });
  install("strToBuf", strToBuf);
  install("bufToStr", bufToStr);
  install("pemToId", host.pemToId);
  // JSON.stringify(undefined) is undefined, which strToBuf refuses with a TypeError, as in CCF.
  install("jsonCompatibleToBuf", { jsonCompatibleToBuf(value) { return strToBuf(stringify(value)); } }.jsonCompatibleToBuf);
  install("bufToJsonCompatible", { bufToJsonCompatible(buf) { return parse(bufToStr(buf)); } }.bufToJsonCompatible);
})();`;

/** Installs `ccf.strToBuf/bufToStr/jsonCompatibleToBuf/bufToJsonCompatible/pemToId`, keeping other `ccf` members. */
export function installConverters(interp: Interpreter): void {
  interp.define(HOST_GLOBAL, {
    strToBuf: deterministic((value) => {
      if (typeof value !== "string") throw new GuestError("TypeError", "Argument must be a string");
      return Buffer.from(value, "utf8");
    }),
    bufToStr: deterministic((value) => {
      if (!(value instanceof ArrayBuffer)) {
        throw new GuestError("TypeError", "Argument must be an ArrayBuffer");
      }
      // Lenient: invalid sequences become U+FFFD, as QuickJS's JS_NewStringLen does.
      return Buffer.from(value).toString("utf8");
    }),
    pemToId: deterministic((value) => {
      if (typeof value !== "string") throw new GuestError("TypeError", "Argument must be a string");
      try {
        return certificateId(value);
      } catch (e) {
        throw new GuestError(
          "InternalError",
          `Failed to parse certificate: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    }),
  });
  interp.evalScript(INSTALL_SCRIPT, "ccf-converters.js");
}
