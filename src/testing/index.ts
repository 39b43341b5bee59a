// In-process harness for unit tests of JS apps (`ccf-ts/testing`): a bundle's endpoints served from
// an in-memory KV store, each request routed, authenticated and run as a node runs it (the same
// router, `authenticate` and JsApp), without a node, a ledger or TLS.

import { createSign, generateKeyPairSync, randomUUID } from "node:crypto";
import type { EndpointRequest } from "../endpoints/types.js";
import { TX_ID_HEADER } from "../endpoints/txid.js";
import {
  certificateDer,
  certificateId,
  createSelfSignedCertificate,
  EcKeyPair,
} from "../crypto/index.js";
import { CcfError, ConflictError, HttpErrors } from "../errors.js";
import { encodeValue, idKey, SINGLETON_KEY, Store, Tables, type Tx } from "../kv/index.js";
import { type AppBundle, checkBundle, loadBundle, writeBundle } from "../node/bundle.js";
import { authenticate } from "../rpc/auth.js";
import { dispatch } from "../rpc/dispatch.js";
import { Router } from "../rpc/router.js";
import { type AppEndpoint, JsApp, readAppEndpoints } from "../js/app.js";

/** The environment variable `ccf-ts app test` sets to the bundle under test. */
export const APP_BUNDLE_ENV = "CCF_TS_APP_BUNDLE";

/** A harness misused: no bundle, an unknown user, a bad argument. */
export class AppTestError extends CcfError {
  constructor(message: string) {
    super("AppTestError", message);
  }
}

export interface LoadAppOptions {
  /** A bundle.json path (or a folder, as `js_app_bundle`) or a bundle object; default: $CCF_TS_APP_BUNDLE. */
  bundle?: string | AppBundle;
  /**
   * Users registered as genesis registers them: names (a P-384 certificate is made for each) or
   * name → certificate PEM.
   */
  users?: readonly string[] | Readonly<Record<string, string>>;
  /** `public:ccf.gov.js_runtime_options` (e.g. `{return_exception_details: true}`). */
  runtimeOptions?: Record<string, unknown>;
  /** Where the app's log lines go (default: dropped). */
  log?: (level: string, message: string) => void;
}

/**
 * Who calls: nobody (no certificate, no token) when left out; a registered user by name or id; any
 * certificate (an unknown user, say); a bearer token with these claims, signed by a JWT issuer the
 * harness registers (`iss` and `exp` filled in unless given).
 */
export type TestCaller =
  | { policy: "no_auth" }
  | { policy: "user_cert"; id: string }
  | { cert: string }
  | { jwt: Record<string, unknown> };

export interface AppRequest {
  method: string;
  /** The full path, `/app/...`; may carry `?query`. */
  path: string;
  query?: string | Record<string, string>;
  headers?: Record<string, string>;
  /** A string or bytes as they are, anything else as JSON (content-type set when not given). */
  body?: unknown;
  caller?: TestCaller;
}

export interface AppResponse {
  status: number;
  /** Lower-case names, as the node sends them (with x-ms-ccf-transaction-id on 2xx). */
  headers: Record<string, string>;
  /** Parsed JSON for application/json, text for text/*, else the bytes. */
  body: unknown;
  /** The body as UTF-8 text. */
  text: string;
}

export type KeyLike = string | Uint8Array | ArrayBuffer;

/** One KV map, read and written outside requests; each write is a transaction of its own. */
export interface TestKvMap {
  get(key: KeyLike): Uint8Array | undefined;
  getString(key: KeyLike): string | undefined;
  getJson<T = unknown>(key: KeyLike): T | undefined;
  has(key: KeyLike): boolean;
  /** Strings and bytes are stored as they are (UTF-8), anything else as JSON. */
  set(key: KeyLike, value: unknown): void;
  delete(key: KeyLike): boolean;
  /** Keys and values as UTF-8 text, in key byte order. */
  entries(): Array<[string, string]>;
  readonly size: number;
}

/** A user registered by the harness. */
export interface TestUser {
  id: string;
  cert: string;
}

const FIRST_VIEW = 2;
const MAX_ATTEMPTS = 30;
const JWT_ISSUER = "https://issuer.ccf-ts.test";
const JWT_KID = "ccf-ts-app-test";

function toBytes(key: KeyLike): Buffer {
  if (typeof key === "string") return Buffer.from(key, "utf8");
  if (key instanceof ArrayBuffer) return Buffer.from(key);
  if (key instanceof Uint8Array) return Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  throw new AppTestError(`a key must be a string or bytes, not ${typeof key}`);
}

function valueBytes(value: unknown): Buffer {
  if (typeof value === "string" || value instanceof Uint8Array || value instanceof ArrayBuffer) {
    return toBytes(value);
  }
  const json = JSON.stringify(value);
  if (json === undefined) throw new AppTestError(`a value must be JSON, a string or bytes`);
  return Buffer.from(json, "utf8");
}

function decodeBody(headers: Record<string, string>, raw: Buffer): unknown {
  const type = headers["content-type"] ?? "";
  if (type.startsWith("application/json")) {
    try {
      return JSON.parse(raw.toString("utf8")) as unknown;
    } catch {
      return raw.toString("utf8");
    }
  }
  if (type.startsWith("text/")) return raw.toString("utf8");
  return raw;
}

/** A JS app served in-process from an in-memory KV store. */
export class TestApp {
  private readonly store = new Store();
  private readonly router = new Router();
  private readonly app: JsApp;
  private readonly named = new Map<string, TestUser>();
  /** DER of the certificates callers presented, by PEM: a node parses a session's once, not per call. */
  private readonly ders = new Map<string, Buffer>();
  private jwtKey: ReturnType<typeof generateKeyPairSync> | undefined;
  /** Requests run one at a time, in call order: each is one committed transaction. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(log: (level: string, message: string) => void) {
    this.app = new JsApp({
      log,
      consensus: {
        lastCommitted: () => ({ view: FIRST_VIEW, seqno: this.store.version }),
        statusFor: (view, seqno) =>
          view === FIRST_VIEW && seqno <= this.store.version ? "Committed" : "Unknown",
        viewFor: (seqno) => (seqno <= this.store.version ? FIRST_VIEW : undefined),
      },
    });
  }

  /** Loads the bundle into a new store; use `loadApp`. */
  static async create(options: LoadAppOptions = {}): Promise<TestApp> {
    const source = options.bundle ?? process.env[APP_BUNDLE_ENV];
    if (source === undefined || source === "") {
      throw new AppTestError(
        `no bundle: pass loadApp({bundle}) or set ${APP_BUNDLE_ENV} (ccf-ts app test does)`,
      );
    }
    let bundle: AppBundle;
    try {
      bundle =
        typeof source === "string" ? loadBundle(source, "bundle") : checkBundle(source, "bundle");
    } catch (e) {
      throw new AppTestError((e as Error).message);
    }
    const testApp = new TestApp(options.log ?? (() => undefined));
    const users: Array<[string, string]> = [];
    if (Array.isArray(options.users)) {
      for (const name of options.users as readonly string[]) {
        const key = EcKeyPair.generate("secp384r1");
        const cert = await createSelfSignedCertificate(key, {
          subjectName: `CN=${name}`,
          validFrom: new Date(Date.now() - 24 * 3600 * 1000),
          validityDays: 365,
        });
        users.push([name, cert]);
      }
    } else if (options.users !== undefined) {
      users.push(...Object.entries(options.users as Record<string, string>));
    }
    testApp.write((tx) => {
      writeBundle(tx, bundle);
      for (const [name, cert] of users) {
        let id: string;
        try {
          id = certificateId(cert);
        } catch (e) {
          throw new AppTestError(`user ${name}: not a certificate (${(e as Error).message})`);
        }
        tx.map(Tables.USER_CERTS).set(idKey(id), encodeValue(Tables.USER_CERTS, cert));
        tx.map(Tables.USER_INFO).set(idKey(id), encodeValue(Tables.USER_INFO, {}));
        testApp.named.set(name, { id, cert });
      }
      if (options.runtimeOptions !== undefined) {
        tx.map(Tables.JS_RUNTIME_OPTIONS).set(
          SINGLETON_KEY,
          encodeValue(Tables.JS_RUNTIME_OPTIONS, options.runtimeOptions),
        );
      }
    });
    let endpoints: AppEndpoint[];
    try {
      endpoints = readAppEndpoints(testApp.store.begin());
    } catch (e) {
      throw new AppTestError((e as Error).message);
    }
    testApp.route(endpoints);
    return testApp;
  }

  /** Registered users by name. */
  get users(): ReadonlyMap<string, TestUser> {
    return this.named;
  }

  /** Answers the request as a node serving the app would, and commits its writes on 2xx. */
  call(req: AppRequest): Promise<AppResponse> {
    const run = this.queue.then(() => this.run(req));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** A KV map by name (`records`, `public:records`...), to seed before calls and check after. */
  kv(name: string): TestKvMap {
    const store = this.store;
    const read = (key: KeyLike) => store.begin().map(name).get(toBytes(key));
    return {
      get: (key) => {
        const v = read(key);
        return v === undefined ? undefined : Uint8Array.from(v);
      },
      getString: (key) => {
        const v = read(key);
        return v === undefined ? undefined : Buffer.from(v).toString("utf8");
      },
      getJson: <T>(key: KeyLike) => {
        const v = read(key);
        return v === undefined ? undefined : (JSON.parse(Buffer.from(v).toString("utf8")) as T);
      },
      has: (key) => read(key) !== undefined,
      set: (key, value) => {
        const k = toBytes(key);
        const v = valueBytes(value);
        this.write((tx) => tx.map(name).set(k, v));
      },
      delete: (key) => {
        const k = toBytes(key);
        let removed = false;
        this.write((tx) => {
          removed = tx.map(name).delete(k);
        });
        return removed;
      },
      entries: () => {
        const out: Array<[string, string]> = [];
        store
          .begin()
          .map(name)
          .forEach((v, k) => {
            out.push([Buffer.from(k).toString("utf8"), Buffer.from(v).toString("utf8")]);
          });
        return out.sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      },
      get size() {
        return store.begin().map(name).size;
      },
    };
  }

  private write(fn: (tx: Tx) => void): void {
    const tx = this.store.begin();
    fn(tx);
    this.store.commit(tx);
  }

  private route(endpoints: AppEndpoint[]): void {
    this.router.setEndpoints(
      "app",
      endpoints.map((ep) => ({
        method: ep.method,
        path: ep.path,
        openapi: ep.openapi,
        handler: (req: EndpointRequest) => this.runEndpoint(ep, req),
      })),
    );
  }

  /** The node's runAppEndpoint on one store: authenticate and run in a transaction, commit on apply. */
  private async runEndpoint(ep: AppEndpoint, req: EndpointRequest) {
    if (ep.mode === "historical") {
      throw HttpErrors.NotImplemented(
        "historical endpoints need a ledger: test them on a node (ccf-ts sandbox)",
      );
    }
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const tx = this.store.begin();
      const caller = authenticate(ep.authnPolicies, req, tx);
      const result = await this.app.execute(ep, req, caller, tx);
      const response = result.response;
      let seqno = tx.readVersion;
      if (result.applyWrites && tx.hasWrites()) {
        try {
          seqno = this.store.commit(tx).version;
        } catch (e) {
          if (e instanceof ConflictError) continue;
          throw e;
        }
      }
      if (response.status < 200 || response.status >= 300) return response;
      return {
        ...response,
        headers: { ...(response.headers ?? {}), [TX_ID_HEADER]: `${FIRST_VIEW}.${seqno}` },
      };
    }
    throw HttpErrors.TransactionCommitAttemptsExceedLimit(
      `Transaction continued to conflict after ${MAX_ATTEMPTS} attempts. Retry later.`,
    );
  }

  private async run(req: AppRequest): Promise<AppResponse> {
    if (
      typeof req?.method !== "string" ||
      typeof req.path !== "string" ||
      !req.path.startsWith("/")
    ) {
      throw new AppTestError("call() needs a method and a path starting with /");
    }
    let path = req.path;
    let query = "";
    const q = path.indexOf("?");
    if (q !== -1) {
      query = path.slice(q + 1);
      path = path.slice(0, q);
    }
    if (typeof req.query === "string") query = req.query;
    else if (req.query !== undefined) query = new URLSearchParams(req.query).toString();
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers ?? {})) {
      headers[name.toLowerCase()] = String(value);
    }
    let body: Buffer = Buffer.alloc(0);
    if (req.body !== undefined) {
      body = valueBytes(req.body);
      if (headers["content-type"] === undefined) {
        headers["content-type"] =
          typeof req.body === "string"
            ? "text/plain"
            : req.body instanceof Uint8Array || req.body instanceof ArrayBuffer
              ? "application/octet-stream"
              : "application/json";
      }
    }
    const request: EndpointRequest = {
      method: req.method.toUpperCase(),
      path,
      query,
      params: {},
      headers,
      body,
      clientCert: undefined,
      httpVersion: "1.1",
      hostname: "localhost",
    };
    this.present(req.caller, request);
    const res = await dispatch(this.router, request);
    const text = res.body.toString("utf8");
    return {
      status: res.status,
      headers: res.headers,
      body: decodeBody(res.headers, res.body),
      text,
    };
  }

  private der(pem: string): Buffer {
    let der = this.ders.get(pem);
    if (der === undefined) {
      der = certificateDer(pem);
      if (this.ders.size >= 1024) this.ders.clear();
      this.ders.set(pem, der);
    }
    return der;
  }

  /** Puts the caller's credentials on the request: a client certificate or a bearer token. */
  private present(caller: TestCaller | undefined, req: EndpointRequest): void {
    if (caller === undefined || ("policy" in caller && caller.policy === "no_auth")) return;
    if ("cert" in caller) {
      req.clientCert = { pem: caller.cert, der: this.der(caller.cert) };
    } else if ("jwt" in caller) {
      req.headers.authorization = `Bearer ${this.token(caller.jwt)}`;
    } else if ("policy" in caller && caller.policy === "user_cert") {
      const user =
        this.named.get(caller.id) ?? [...this.named.values()].find((u) => u.id === caller.id);
      if (user === undefined) {
        throw new AppTestError(
          `caller: no user ${caller.id} (loadApp's users: ${[...this.named.keys()].join(", ") || "none"})`,
        );
      }
      req.clientCert = { pem: user.cert, der: this.der(user.cert) };
    } else {
      throw new AppTestError(`caller: unknown form ${JSON.stringify(caller)}`);
    }
  }

  /** An ES256 token for `claims`, from an issuer registered in the store on first use. */
  private token(claims: Record<string, unknown>): string {
    if (this.jwtKey === undefined) {
      const pair = generateKeyPairSync("ec", { namedCurve: "P-256" });
      const der = pair.publicKey.export({ type: "spki", format: "der" });
      this.write((tx) =>
        tx
          .map(Tables.JWT_PUBLIC_SIGNING_KEYS_METADATA)
          .set(
            Buffer.from(JWT_KID, "utf8"),
            encodeValue(Tables.JWT_PUBLIC_SIGNING_KEYS_METADATA, [
              { public_key: der.toString("base64"), issuer: JWT_ISSUER, constraint: JWT_ISSUER },
            ]),
          ),
      );
      this.jwtKey = pair;
    }
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
    const now = Math.floor(Date.now() / 1000);
    const payload = { iss: JWT_ISSUER, exp: now + 3600, jti: randomUUID(), ...claims };
    const input = `${b64({ alg: "ES256", typ: "JWT", kid: JWT_KID })}.${b64(payload)}`;
    const signature = createSign("SHA256")
      .update(input)
      .sign({ key: this.jwtKey.privateKey, dsaEncoding: "ieee-p1363" });
    return `${input}.${signature.toString("base64url")}`;
  }
}

/** Loads an app bundle into an in-memory service; see docs/debugging-apps.md. */
export function loadApp(options: LoadAppOptions = {}): Promise<TestApp> {
  return TestApp.create(options);
}
