// The app runs in CCF's JavaScript interpreter (QuickJS), not in Node: the only
// host globals it may use beyond ECMAScript itself are `ccf` (typed through
// `@microsoft/ccf-app/global.js`) and this minimal `console`.
declare const console: {
  log(...values: unknown[]): void;
  info(...values: unknown[]): void;
  warn(...values: unknown[]): void;
  error(...values: unknown[]): void;
};
