// The constitution runner: validate, resolve and ballots read-only, apply read-write, each in a
// fresh interpreter with the `ccf` pieces CCF gives that context (proposals.h, reference §1.1).

import { randomBytes } from "node:crypto";
import { decodeValue, SINGLETON_KEY, Tables, type Tx } from "../kv/index.js";
import {
  installConverters,
  installCrypto,
  installGovExtension,
  installKv,
  type KvContext,
} from "../js/ccf/index.js";
import {
  CCF_DEFAULT_LIMITS,
  checkArgCount,
  createInterpreter,
  GuestError,
  type GuestValue,
  type Interpreter,
  JsException,
  LimitExceeded,
  type Limits,
  type LogLevel,
  SandboxError,
} from "../js/sandbox/index.js";

/**
 * What `apply` may do beyond the KV (`ccf.node.*`, `ccf.network.*`, the JWT and bytecode effects).
 * An effect the node cannot do yet throws an Error whose message says so; the proposal then fails
 * with that message.
 */
export interface GovEffects {
  triggerLedgerRekey(tx: Tx): void;
  triggerRecoverySharesRefresh(tx: Tx): void;
  transitionServiceToOpen(
    tx: Tx,
    previousServiceIdentity: string | undefined,
    nextServiceIdentity: string,
  ): void;
  triggerLedgerChunk(tx: Tx): void;
  triggerSnapshot(tx: Tx): void;
  generateEndorsedCertificate(
    tx: Tx,
    csrPem: string,
    validFrom: string,
    validityPeriodDays: number,
  ): string;
  generateNetworkCertificate(tx: Tx, validFrom: string, validityPeriodDays: number): string;
  getLatestLedgerSecretSeqno(tx: Tx): number;
  setJwtPublicSigningKeys(tx: Tx, issuer: string, metadata: unknown, jwks: unknown): void;
  removeJwtPublicSigningKeys(tx: Tx, issuer: string): void;
  refreshAppBytecodeCache(tx: Tx): void;
}

/** CCF's `ccf::jsgov::Failure`. */
export interface GovFailure {
  reason: string;
  trace?: string | null;
}

/** A guest call that failed: CCF records the reason (and the JS trace) rather than erroring. */
export class GovCallFailed extends Error {
  constructor(readonly failure: GovFailure) {
    super(failure.reason);
  }
}

const CONSTITUTION_MODULE = "public:ccf.gov.constitution[0]";
const HOST_GLOBAL = "__ccfGovEffectsHost";

const EFFECTS_SCRIPT = `(() => {
  "use strict";
  const host = globalThis.${HOST_GLOBAL};
  delete globalThis.${HOST_GLOBAL};
  const ccf = globalThis.ccf;
  ccf.node = {
    triggerLedgerRekey: host.triggerLedgerRekey,
    triggerRecoverySharesRefresh: host.triggerRecoverySharesRefresh,
    transitionServiceToOpen: host.transitionServiceToOpen,
    triggerLedgerChunk: host.triggerLedgerChunk,
    triggerSnapshot: host.triggerSnapshot,
  };
  ccf.network = {
    generateEndorsedCertificate: host.generateEndorsedCertificate,
    generateNetworkCertificate: host.generateNetworkCertificate,
    getLatestLedgerSecretSeqno: host.getLatestLedgerSecretSeqno,
  };
  ccf.setJwtPublicSigningKeys = host.setJwtPublicSigningKeys;
  ccf.removeJwtPublicSigningKeys = host.removeJwtPublicSigningKeys;
  ccf.refreshAppBytecodeCache = host.refreshAppBytecodeCache;
})();`;

/** CCF runs governance with the configured limits, but never lower than its defaults. */
export function govLimits(tx: Tx): Limits {
  const raw = tx.map(Tables.JS_RUNTIME_OPTIONS).get(SINGLETON_KEY);
  const o = (raw === undefined ? {} : decodeValue(Tables.JS_RUNTIME_OPTIONS, raw)) as Record<
    string,
    unknown
  >;
  const atLeast = (v: unknown, d: number): number =>
    typeof v === "number" && Number.isFinite(v) && v > d ? v : d;
  return {
    maxHeapBytes: atLeast(o.max_heap_bytes, CCF_DEFAULT_LIMITS.maxHeapBytes),
    maxStackBytes: atLeast(o.max_stack_bytes, CCF_DEFAULT_LIMITS.maxStackBytes),
    maxExecutionTimeMs: atLeast(o.max_execution_time_ms, CCF_DEFAULT_LIMITS.maxExecutionTimeMs),
  };
}

function str(v: GuestValue, what: string): string {
  if (typeof v !== "string") throw new GuestError("TypeError", `${what} must be a string`);
  return v;
}

function num(v: GuestValue, what: string): number {
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new GuestError("TypeError", `${what} must be a number`);
  }
  return v;
}

/** An effect's own failure becomes a guest Error with its message (the proposal fails with it). */
function effect<T>(body: () => T): T {
  try {
    return body();
  } catch (e) {
    if (e instanceof GuestError) throw e;
    throw new GuestError("Error", e instanceof Error ? e.message : String(e));
  }
}

export class ConstitutionRunner {
  constructor(
    private readonly opts: {
      effects: GovEffects;
      log: (level: LogLevel, message: string) => void;
      /** Told of each call run in the sandbox (`validate`, `vote`...) and its seconds (metrics). */
      onRun?: (fn: string, seconds: number) => void;
    },
  ) {}

  /** CCF's `validate(input)`: its raw result, or GovCallFailed. */
  async validate(tx: Tx, constitution: string, proposal: string): Promise<GuestValue> {
    return this.call(tx, "gov-ro", CONSTITUTION_MODULE, constitution, "validate", [proposal]);
  }

  /** A ballot's `vote(proposal, proposerId)`: true only for a boolean true, as CCF. */
  async vote(
    tx: Tx,
    moduleName: string,
    ballot: string,
    proposal: string,
    proposerId: string,
  ): Promise<boolean> {
    const v = await this.call(tx, "gov-ro", moduleName, ballot, "vote", [proposal, proposerId]);
    return v === true;
  }

  /** `resolve(proposal, proposerId, votes, proposalId)`: its raw result, or GovCallFailed. */
  async resolve(
    tx: Tx,
    constitution: string,
    proposal: string,
    proposerId: string,
    votes: Array<{ member_id: string; vote: boolean }>,
    proposalId: string,
  ): Promise<GuestValue> {
    return this.call(tx, "gov-ro", CONSTITUTION_MODULE, constitution, "resolve", [
      proposal,
      proposerId,
      votes,
      proposalId,
    ]);
  }

  /** `apply(proposal, proposalId)` (CCF passes the id, whatever validateConstitution checks). */
  async apply(tx: Tx, constitution: string, proposal: string, proposalId: string): Promise<void> {
    await this.call(tx, "gov-rw", CONSTITUTION_MODULE, constitution, "apply", [
      proposal,
      proposalId,
    ]);
  }

  private async call(
    tx: Tx,
    context: KvContext,
    moduleName: string,
    source: string,
    fn: string,
    args: Parameters<Interpreter["callExport"]>[2],
  ): Promise<GuestValue> {
    const limits = govLimits(tx);
    const log = (level: LogLevel, message: string) => this.opts.log(level, message);
    const random = (n: number) => new Uint8Array(randomBytes(n));
    const interp = await createInterpreter({
      limits,
      modules: { load: (name) => (name === moduleName ? source : undefined) },
      log,
      randomBytes: random,
    });
    try {
      installConverters(interp);
      installCrypto(interp);
      installGovExtension(interp, { limits, log, randomBytes: random });
      installKv(interp, { current: () => ({ tx, context }) });
      if (context === "gov-rw") this.installEffects(interp, tx);
      const onRun = this.opts.onRun;
      if (onRun === undefined) return interp.callExport(moduleName, fn, args);
      const started = performance.now();
      try {
        return interp.callExport(moduleName, fn, args);
      } finally {
        onRun(fn, (performance.now() - started) / 1000);
      }
    } catch (e) {
      if (e instanceof JsException) {
        throw new GovCallFailed({ reason: e.message, trace: e.jsStack ?? null });
      }
      if (e instanceof LimitExceeded || e instanceof SandboxError) {
        throw new GovCallFailed({ reason: e.message, trace: null });
      }
      throw e;
    } finally {
      interp.dispose();
    }
  }

  private installEffects(interp: Interpreter, tx: Tx): void {
    const fx = this.opts.effects;
    interp.define(HOST_GLOBAL, {
      triggerLedgerRekey: (...a) => {
        checkArgCount(a, 0);
        effect(() => fx.triggerLedgerRekey(tx));
      },
      triggerRecoverySharesRefresh: (...a) => {
        checkArgCount(a, 0);
        effect(() => fx.triggerRecoverySharesRefresh(tx));
      },
      transitionServiceToOpen: (...a) => {
        checkArgCount(a, 2);
        const pem = (v: GuestValue, what: string): string => {
          if (!(v instanceof ArrayBuffer)) {
            throw new GuestError("TypeError", `${what} must be an ArrayBuffer`);
          }
          return Buffer.from(v).toString("utf8");
        };
        const previous = a[0] === undefined || a[0] === null ? undefined : pem(a[0], "previous");
        const next = pem(a[1], "next");
        effect(() => fx.transitionServiceToOpen(tx, previous, next));
      },
      triggerLedgerChunk: (...a) => {
        checkArgCount(a, 0);
        effect(() => fx.triggerLedgerChunk(tx));
      },
      triggerSnapshot: (...a) => {
        checkArgCount(a, 0);
        effect(() => fx.triggerSnapshot(tx));
      },
      generateEndorsedCertificate: (...a) => {
        checkArgCount(a, 3);
        return effect(() =>
          fx.generateEndorsedCertificate(
            tx,
            str(a[0], "csr"),
            str(a[1], "valid_from"),
            num(a[2], "validity_period_days"),
          ),
        );
      },
      generateNetworkCertificate: (...a) => {
        checkArgCount(a, 2);
        return effect(() =>
          fx.generateNetworkCertificate(
            tx,
            str(a[0], "valid_from"),
            num(a[1], "validity_period_days"),
          ),
        );
      },
      getLatestLedgerSecretSeqno: (...a) => {
        checkArgCount(a, 0);
        return effect(() => fx.getLatestLedgerSecretSeqno(tx));
      },
      setJwtPublicSigningKeys: (...a) => {
        checkArgCount(a, 3);
        effect(() => fx.setJwtPublicSigningKeys(tx, str(a[0], "issuer"), a[1], a[2]));
      },
      removeJwtPublicSigningKeys: (...a) => {
        checkArgCount(a, 1);
        effect(() => fx.removeJwtPublicSigningKeys(tx, str(a[0], "issuer")));
      },
      refreshAppBytecodeCache: (...a) => {
        checkArgCount(a, 0);
        effect(() => fx.refreshAppBytecodeCache(tx));
      },
    });
    interp.evalScript(EFFECTS_SCRIPT, "ccf-gov-effects.js");
  }
}
