// An interpreter over in-memory modules, with its console output captured, for the sandbox tests.

import { randomBytes } from "node:crypto";
import {
  CCF_DEFAULT_LIMITS,
  createInterpreter,
  type Interpreter,
  type InterpreterOptions,
  type Limits,
  type LogLevel,
} from "../../../src/js/sandbox/index.js";

export interface Sandbox {
  interp: Interpreter;
  logs: Array<{ level: LogLevel; message: string }>;
  /** Module names the interpreter asked for, in order. */
  loads: string[];
}

export async function sandbox(
  modules: Record<string, string> = {},
  options: { limits?: Partial<Limits> } & Partial<
    Omit<InterpreterOptions, "limits" | "modules">
  > = {},
): Promise<Sandbox> {
  const logs: Sandbox["logs"] = [];
  const loads: string[] = [];
  const interp = await createInterpreter({
    limits: { ...CCF_DEFAULT_LIMITS, ...options.limits },
    modules: {
      load: (name) => {
        loads.push(name);
        return modules[name];
      },
    },
    log: options.log ?? ((level, message) => logs.push({ level, message })),
    randomBytes: options.randomBytes ?? ((n) => new Uint8Array(randomBytes(n))),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  });
  return { interp, logs, loads };
}

/** Evaluates `expression` in the guest (through a global function) and returns its host value. */
export function evaluate(interp: Interpreter, expression: string): unknown {
  interp.evalScript(`globalThis.__probe = () => (${expression});`, "probe.js");
  return interp.callGlobal("__probe", []);
}
