// JWT signing-key auto-refresh, as CCF's JwtKeyAutoRefresh does it: for every issuer in
// public:ccf.gov.jwt.issuers with auto_refresh, fetch <issuer>/.well-known/openid-configuration,
// then its jwks_uri, over HTTPS trusting only the issuer's CA bundle from
// public:ccf.gov.tls.ca_cert_bundles, and hand the key set to the node, which applies it in a
// transaction (CCF posts it to its own /node/jwt_keys/refresh). Only the primary refreshes.

import { request as httpsRequest } from "node:https";
import type { Tx } from "../kv/index.js";
import { pemBundleSplit } from "../crypto/index.js";
import { parseJsonWebKeySet, readCaCertBundle, readJwtIssuers } from "../gov/index.js";

/**
 * Counters for GET /node/jwt_keys/refresh/metrics. CCF counts one attempt per issuer per
 * refresh and a success when the key set was stored; recent CCF also reports `failures`.
 */
export interface JwtRefreshMetrics {
  attempts: number;
  successes: number;
  failures: number;
}

export interface HttpsResponse {
  status: number;
  body: Buffer;
}

/** An HTTPS GET that trusts only the certificates of `caBundlePem`. */
export type HttpsGet = (url: string, caBundlePem: string) => Promise<HttpsResponse>;

export type RefreshLog = (level: "debug" | "info" | "fail", message: string) => void;

export interface JwtKeyRefresherOptions {
  /** A transaction to read the issuers and CA bundles from (only read; never committed). */
  readTx: () => Tx;
  /**
   * Stores an issuer's new key set. The node runs applyRefreshedJwtKeys(tx, issuer, jwks) in a
   * write transaction and commits it; a rejection counts as a failure.
   */
  apply: (issuer: string, jwks: unknown) => void | Promise<void>;
  /** Defaults to `httpsGet`. */
  get?: HttpsGet;
  /** Whether this node may refresh now (CCF: only the primary); default always. */
  isPrimary?: () => boolean;
  log?: RefreshLog;
}

/** Bodies larger than this are refused: discovery documents and key sets are a few KiB. */
const MAX_BODY = 1 << 20;
const TIMEOUT_MS = 10_000;

/** The default HttpsGet: node:https with the bundle as the only trust anchors, hostname checked. */
export const httpsGet: HttpsGet = (url, caBundlePem) =>
  new Promise<HttpsResponse>((resolve, reject) => {
    const ca = pemBundleSplit(caBundlePem);
    if (ca.length === 0) {
      reject(new Error("the CA bundle holds no certificate"));
      return;
    }
    const req = httpsRequest(
      url,
      {
        method: "GET",
        ca,
        agent: false,
        timeout: TIMEOUT_MS,
        headers: { accept: "application/json" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY) {
            req.destroy(new Error(`response from ${url} is larger than ${MAX_BODY} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on("error", reject);
    req.end();
  });

function describeBody(body: Buffer): string {
  return body.length === 0 ? "" : `  '${body.toString("utf8").slice(0, 200)}'`;
}

export class JwtKeyRefresher {
  private readonly counts: JwtRefreshMetrics = { attempts: 0, successes: 0, failures: 0 };
  private readonly get: HttpsGet;
  private readonly log: RefreshLog;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly opts: JwtKeyRefresherOptions) {
    this.get = opts.get ?? httpsGet;
    this.log = opts.log ?? (() => {});
  }

  /** A copy of the counters. */
  metrics(): JwtRefreshMetrics {
    return { ...this.counts };
  }

  /**
   * One refresh of every auto-refresh issuer, concurrently; resolves when all have finished.
   * Never rejects: each issuer's outcome is counted and logged. Skipped when not primary.
   */
  async refreshOnce(): Promise<void> {
    if (this.opts.isPrimary !== undefined && !this.opts.isPrimary()) {
      this.log("debug", "JWT key auto-refresh: Node is not primary, skipping");
      return;
    }
    const tx = this.opts.readTx();
    const jobs: Array<Promise<void>> = [];
    for (const [issuer, metadata] of readJwtIssuers(tx)) {
      if (metadata.auto_refresh !== true) continue;
      const bundleName = metadata.ca_cert_bundle_name;
      const bundle = bundleName === undefined ? undefined : readCaCertBundle(tx, bundleName);
      jobs.push(this.refreshIssuer(issuer, bundleName, bundle));
    }
    await Promise.all(jobs);
  }

  /**
   * Refreshes every `intervalMs` (config `jwt.key_refresh_interval`), first after one interval
   * as CCF does. The timer does not keep the process alive. Rounds never overlap.
   */
  start(intervalMs: number): void {
    this.stop();
    this.timer = setInterval(() => {
      if (this.running !== undefined) return;
      this.running = this.refreshOnce().finally(() => {
        this.running = undefined;
      });
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private failed(message: string): void {
    this.counts.failures += 1;
    this.log("fail", `JWT key auto-refresh: ${message}`);
  }

  private async refreshIssuer(
    issuer: string,
    bundleName: string | undefined,
    bundle: string | undefined,
  ): Promise<void> {
    this.counts.attempts += 1;
    if (bundleName === undefined || bundle === undefined) {
      this.failed(
        `CA cert bundle with name '${bundleName ?? ""}' for issuer '${issuer}' not found`,
      );
      return;
    }
    this.log("debug", `JWT key auto-refresh: Refreshing keys for issuer '${issuer}'`);
    let jwks: unknown;
    try {
      const meta = await this.get(`${issuer}/.well-known/openid-configuration`, bundle);
      if (meta.status !== 200) {
        this.failed(
          `Error while requesting OpenID metadata: ${meta.status}${describeBody(meta.body)}`,
        );
        return;
      }
      let jwksUri: unknown;
      try {
        jwksUri = (JSON.parse(meta.body.toString("utf8")) as { jwks_uri?: unknown }).jwks_uri;
      } catch (e) {
        jwksUri = e;
      }
      if (typeof jwksUri !== "string") {
        this.failed(`Cannot parse OpenID metadata for issuer '${issuer}'`);
        return;
      }
      try {
        if (new URL(jwksUri).protocol !== "https:") throw new Error("not https");
      } catch {
        this.failed(`Cannot parse jwks_uri for issuer '${issuer}': ${jwksUri}`);
        return;
      }
      const keys = await this.get(jwksUri, bundle);
      if (keys.status !== 200) {
        this.failed(`Error while requesting JWKS: ${keys.status}${describeBody(keys.body)}`);
        return;
      }
      try {
        jwks = parseJsonWebKeySet(JSON.parse(keys.body.toString("utf8")));
      } catch (e) {
        this.failed(`Cannot parse JWKS for issuer '${issuer}': ${(e as Error).message}`);
        return;
      }
    } catch (e) {
      // CCF does not count connection failures in its metrics; here they are failures.
      this.failed(`Error while contacting issuer '${issuer}': ${(e as Error).message}`);
      return;
    }
    try {
      await this.opts.apply(issuer, jwks);
      this.counts.successes += 1;
      this.log("info", `JWT key auto-refresh: Stored keys for issuer '${issuer}'`);
    } catch (e) {
      this.failed(`error while storing signing keys for issuer ${issuer}: ${(e as Error).message}`);
    }
  }
}
