// The ccf global's `ccf.crypto` (CCF's CryptoExtension): signing, key generation, key wrapping,
// SHA-256, X.509 checks and PEM<->JWK conversion, as CCF 6.x's native functions behave.

import {
  constants,
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  sign as nodeSign,
  verify as nodeVerify,
  X509Certificate,
} from "node:crypto";
import { pemBundleSplit } from "../../crypto/index.js";
import {
  deterministic,
  GuestError,
  type GuestValue,
  type HostValue,
  type Interpreter,
} from "../sandbox/index.js";

/** A hidden global through which the install script picks up the host functions, then deletes. */
const HOST_GLOBAL = "__ccfCryptoHost";

/**
 * The guest half. CCF's native functions coerce their arguments in the guest's own semantics
 * (JS_ToCString, JS_ToInt32, property getters, JSON.stringify) and check them in a fixed order,
 * so each wrapper does exactly that, in that order, and hands the host only plain strings, numbers
 * and ArrayBuffers. Every wrapper is a closure, so ccf-app's unbound re-exports work.
 */
const INSTALL_SCRIPT = `(() => {
  "use strict";
  const host = globalThis.${HOST_GLOBAL};
  delete globalThis.${HOST_GLOBAL};
  if (typeof globalThis.ccf !== "object" || globalThis.ccf === null) globalThis.ccf = {};
  const stringify = JSON.stringify;
  const defineProperty = Object.defineProperty;
  const byteLength = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, "byteLength").get;
  const call = Function.prototype.call.bind(Function.prototype.call);
  const TypeErr = TypeError;
  const RangeErr = RangeError;

  const argc = (args, ...allowed) => {
    if (!allowed.includes(args.length)) {
      throw new TypeErr("Passed " + args.length + " arguments, but expected " + allowed.join(" or "));
    }
  };
  // JS_ToCString: ToString (a Symbol throws TypeError), then std::string stops at the first NUL.
  const toStr = (v) => {
    const s = \`\${v}\`;
    const nul = s.indexOf("\\0");
    return nul < 0 ? s : s.slice(0, nul);
  };
  // JS_GetArrayBuffer: an ArrayBuffer and nothing else (no typed array, no DataView).
  const buf = (v) => {
    call(byteLength, v);
    return v;
  };
  const isBuf = (v) => {
    try {
      call(byteLength, v);
      return true;
    } catch {
      return false;
    }
  };
  // CCF reads saltLength with JS_ToInt64 and ignores its failure: NaN, undefined or a throwing
  // valueOf give 0, and the value saturates at the int64 range.
  const saltLength = (algorithm) => {
    let n;
    try {
      n = Number(algorithm.saltLength);
    } catch {
      return 0;
    }
    if (n !== n) return 0;
    return Math.trunc(n);
  };
  // A label is used only when it is a non-empty ArrayBuffer; anything else means no label.
  const label = (params) => {
    const l = params.label;
    return isBuf(l) && call(byteLength, l) > 0 ? l : undefined;
  };
  const fn = (name, length, body) => {
    const f = { [name](...args) { return body(args); } }[name];
    defineProperty(f, "length", { value: length });
    return f;
  };
  const SIGN_HASHES = ["SHA-256", "SHA-384", "SHA-512"];

  const crypto = {};
  const install = (name, length, body) => {
    crypto[name] = fn(name, length, body);
  };

  install("sign", 3, (args) => {
    argc(args, 3);
    const algorithm = args[0];
    const nameVal = algorithm.name;
    const hashVal = algorithm.hash;
    const name = toStr(nameVal);
    const key = toStr(args[1]);
    const data = buf(args[2]);
    if (name === "EdDSA") return host.sign(name, "", 0, key, data);
    const hash = toStr(hashVal);
    if (!SIGN_HASHES.includes(hash)) {
      throw new RangeErr("Unsupported hash algorithm, supported: SHA-256, SHA-384, SHA-512");
    }
    if (name === "ECDSA" || name === "HMAC") return host.sign(name, hash, 0, key, data);
    if (name === "RSA-PSS") return host.sign(name, hash, saltLength(algorithm), key, data);
    throw new RangeErr("Unsupported signing algorithm, supported: RSA-PSS, ECDSA, EdDSA, HMAC");
  });

  install("verifySignature", 4, (args) => {
    argc(args, 4);
    const signature = buf(args[2]);
    const data = buf(args[3]);
    const algorithm = args[0];
    const nameVal = algorithm.name;
    const hashVal = algorithm.hash;
    const name = toStr(nameVal);
    const key = toStr(args[1]);
    if (name === "EdDSA") return host.verify(name, "", 0, key, signature, data);
    const hash = toStr(hashVal);
    if (hash !== "SHA-256") throw new RangeErr("Unsupported hash algorithm, supported: SHA-256");
    if (name !== "RSA-PSS" && name !== "ECDSA") {
      throw new RangeErr("Unsupported signing algorithm, supported: RSA-PSS, ECDSA, EdDSA");
    }
    // A certificate's key is checked by CCF's Verifier, which never reads saltLength.
    const isCert = key.startsWith("-----BEGIN CERTIFICATE");
    const salt = name === "RSA-PSS" && !isCert ? saltLength(algorithm) : 0;
    return host.verify(name, hash, salt, key, signature, data);
  });

  install("generateAesKey", 1, (args) => {
    argc(args, 1);
    const size = args[0] | 0;
    if (size !== 128 && size !== 192 && size !== 256) {
      throw new RangeErr("invalid key size (not one of 128, 192, 256)");
    }
    return host.generateAesKey(size);
  });

  install("generateRsaKeyPair", 1, (args) => {
    argc(args, 1, 2);
    const size = args[0] >>> 0;
    const exponent = args.length === 2 ? args[1] >>> 0 : 65537;
    return host.generateRsaKeyPair(size, exponent);
  });

  install("generateEcdsaKeyPair", 1, (args) => {
    argc(args, 1);
    const curve = toStr(args[0]);
    if (curve !== "secp256r1" && curve !== "secp384r1") {
      throw new RangeErr("Unsupported curve id, supported: secp256r1, secp384r1");
    }
    return host.generateEcdsaKeyPair(curve);
  });

  install("generateEddsaKeyPair", 1, (args) => {
    argc(args, 1);
    const curve = toStr(args[0]);
    if (curve !== "curve25519" && curve !== "x25519") {
      throw new RangeErr("Unsupported curve id, supported: curve25519, x25519");
    }
    return host.generateEddsaKeyPair(curve);
  });

  const keyWrap = (verb) => (args) => {
    argc(args, 3);
    const key = buf(args[0]);
    const wrappingKey = buf(args[1]);
    const params = args[2];
    const name = toStr(params.name);
    if (name === "RSA-OAEP") return host[verb](name, key, wrappingKey, 0, label(params));
    if (name === "AES-KWP") return host[verb](name, key, wrappingKey, 0, undefined);
    if (name === "RSA-OAEP-AES-KWP") {
      const aesKeySize = params.aesKeySize | 0;
      return host[verb](name, key, wrappingKey, aesKeySize, label(params));
    }
    throw new RangeErr(
      "unsupported key " + verb + "ping algorithm, supported: RSA-OAEP, AES-KWP, RSA-OAEP-AES-KWP",
    );
  };
  install("wrapKey", 3, keyWrap("wrap"));
  install("unwrapKey", 3, keyWrap("unwrap"));

  install("digest", 2, (args) => {
    argc(args, 2);
    if (toStr(args[0]) !== "SHA-256") {
      throw new RangeErr("unsupported digest algorithm, supported: SHA-256");
    }
    return host.digest(buf(args[1]));
  });

  install("isValidX509CertBundle", 1, (args) => {
    argc(args, 1);
    return host.isValidX509CertBundle(toStr(args[0]));
  });

  install("isValidX509CertChain", 2, (args) => {
    argc(args, 2);
    const chain = toStr(args[0]);
    const trusted = toStr(args[1]);
    return host.isValidX509CertChain(chain, trusted);
  });

  const pemToJwk = (kind, priv) => (args) => {
    argc(args, 1, 2);
    const pem = toStr(args[0]);
    const kid = args.length === 2 ? toStr(args[1]) : undefined;
    return host.pemToJwk(kind, priv, pem, kid);
  };
  // CCF serialises the argument with JSON.stringify; undefined gives "undefined", a parse failure.
  const jwkToPem = (kind, priv) => (args) => {
    argc(args, 1);
    return host.jwkToPem(kind, priv, toStr(stringify(args[0])));
  };
  for (const [kind, pub, priv] of [
    ["ec", "pubPemToJwk", "pemToJwk"],
    ["rsa", "pubRsaPemToJwk", "rsaPemToJwk"],
    ["eddsa", "pubEddsaPemToJwk", "eddsaPemToJwk"],
  ]) {
    install(pub, 1, pemToJwk(kind, false));
    install(priv, 1, pemToJwk(kind, true));
  }
  for (const [kind, pub, priv] of [
    ["ec", "pubJwkToPem", "jwkToPem"],
    ["rsa", "pubRsaJwkToPem", "rsaJwkToPem"],
    ["eddsa", "pubEddsaJwkToPem", "eddsaJwkToPem"],
  ]) {
    install(pub, 1, jwkToPem(kind, false));
    install(priv, 1, jwkToPem(kind, true));
  }

  defineProperty(globalThis.ccf, "crypto", { value: crypto, writable: true, enumerable: true, configurable: true });
})();`;

/** The key families CCF converts between PEM and JWK. */
type KeyFamily = "ec" | "rsa" | "eddsa";

const KEY_FAMILIES: ReadonlySet<string> = new Set<KeyFamily>(["ec", "rsa", "eddsa"]);

/** CCF's JsonWebKeyECCurve: the only EC curves it reads or writes. */
const EC_JWK_CURVES: ReadonlySet<string> = new Set(["P-256", "P-384", "P-521"]);
/** CCF's JsonWebKeyEdDSACurve, with the node key type each one is. */
const EDDSA_JWK_CURVES: Readonly<Record<string, string>> = { Ed25519: "ed25519", X25519: "x25519" };

/** OpenSSL names for CCF's ECDSA curve ids. */
const ECDSA_CURVES: Readonly<Record<string, string>> = {
  secp256r1: "prime256v1",
  secp384r1: "secp384r1",
};
/** Node key types for CCF's EdDSA curve ids. */
const EDDSA_CURVES: Readonly<Record<string, "ed25519" | "x25519">> = {
  curve25519: "ed25519",
  x25519: "x25519",
};

/** Node's names for CCF's signing hashes. */
const HASHES: Readonly<Record<string, string>> = {
  "SHA-256": "sha256",
  "SHA-384": "sha384",
  "SHA-512": "sha512",
};

/** RFC 5649's alternative initial value: OpenSSL's wrap-pad ciphers take it as their 4-byte IV. */
const KWP_IV = Buffer.from("a65959a6", "hex");

/** CCF's OAEP: SHA-256 for both the OAEP digest and MGF1 (OpenSSL uses the former for the latter). */
function oaep(key: KeyObject, labelBytes: Uint8Array | undefined) {
  return {
    key,
    padding: constants.RSA_PKCS1_OAEP_PADDING,
    oaepHash: "sha256",
    ...(labelBytes === undefined ? {} : { oaepLabel: labelBytes }),
  };
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The label of a PEM block's BEGIN line ("PUBLIC KEY", "EC PRIVATE KEY"...), if there is one. */
function pemLabel(pem: string): string | undefined {
  return /-----BEGIN ([A-Z0-9 ]+)-----/.exec(pem)?.[1];
}

function expectType(key: KeyObject, family: KeyFamily): void {
  const type = key.asymmetricKeyType;
  const ok =
    family === "ec"
      ? type === "ec"
      : family === "rsa"
        ? type === "rsa"
        : type === "ed25519" || type === "x25519";
  if (!ok) throw new Error(`expected ${family.toUpperCase()} key, got ${type ?? "unknown"} key`);
  if (family === "ec") {
    const curve = key.export({ format: "jwk" }).crv;
    if (curve === undefined || !EC_JWK_CURVES.has(curve)) {
      throw new Error(`unsupported EC curve ${curve ?? "unknown"}`);
    }
  }
}

/** A PEM SubjectPublicKeyInfo only, as OpenSSL's PEM_read_bio_PUBKEY reads: no private key, no certificate. */
function publicKeyFromPem(pem: string, family: KeyFamily): KeyObject {
  if (pemLabel(pem) !== "PUBLIC KEY") throw new Error("not a PEM public key");
  const key = createPublicKey({ key: pem, format: "pem" });
  expectType(key, family);
  return key;
}

/** A PEM private key (PKCS#8, or the traditional EC/RSA forms), unencrypted. */
function privateKeyFromPem(pem: string, family: KeyFamily): KeyObject {
  const label = pemLabel(pem);
  if (label === undefined || !label.endsWith("PRIVATE KEY") || label.startsWith("ENCRYPTED")) {
    throw new Error("not an unencrypted PEM private key");
  }
  const key = createPrivateKey({ key: pem, format: "pem" });
  expectType(key, family);
  return key;
}

function publicPem(key: KeyObject): string {
  return key.export({ type: "spki", format: "pem" }).toString();
}

function privatePem(key: KeyObject): string {
  return key.export({ type: "pkcs8", format: "pem" }).toString();
}

function requireString(value: GuestValue, what: string): string {
  if (typeof value !== "string") throw new GuestError("TypeError", `${what} must be a string`);
  return value;
}

function requireNumber(value: GuestValue, what: string): number {
  if (typeof value !== "number") throw new GuestError("TypeError", `${what} must be a number`);
  return value;
}

function requireBuffer(value: GuestValue, what: string): Buffer {
  if (!(value instanceof ArrayBuffer)) {
    throw new GuestError("TypeError", `${what} must be an ArrayBuffer`);
  }
  return Buffer.from(value);
}

function optionalBuffer(value: GuestValue, what: string): Buffer | undefined {
  return value === undefined ? undefined : requireBuffer(value, what);
}

function requireFamily(value: GuestValue): KeyFamily {
  if (typeof value !== "string" || !KEY_FAMILIES.has(value)) {
    throw new GuestError("TypeError", "Unknown key family");
  }
  return value as KeyFamily;
}

/** Runs `body`, turning any failure into the guest error CCF throws for it. */
function guarded<T>(errorName: string, prefix: string, body: () => T): T {
  try {
    return body();
  } catch (e) {
    if (e instanceof GuestError) throw e;
    throw new GuestError(errorName, `${prefix}${message(e)}`);
  }
}

function signWith(name: string, hash: string, salt: number, keyPem: string, data: Buffer): Buffer {
  if (name === "HMAC") {
    // The HMAC secret is the key string's own bytes, as CCF copies them out of the JS string.
    return createHmac(HASHES[hash], Buffer.from(keyPem, "utf8")).update(data).digest();
  }
  if (name === "EdDSA") {
    return nodeSign(null, data, privateKeyFromPem(keyPem, "eddsa"));
  }
  if (name === "ECDSA") {
    return nodeSign(HASHES[hash], data, {
      key: privateKeyFromPem(keyPem, "ec"),
      dsaEncoding: "ieee-p1363",
    });
  }
  // RSA-PSS: MGF1 uses the signing hash; CCF passes saltLength through, 0 when absent.
  return nodeSign(HASHES[hash], data, {
    key: privateKeyFromPem(keyPem, "rsa"),
    padding: constants.RSA_PKCS1_PSS_PADDING,
    saltLength: salt,
  });
}

function verifyWith(
  name: string,
  salt: number,
  keyPem: string,
  signature: Buffer,
  data: Buffer,
): boolean {
  if (name === "EdDSA") return nodeVerify(null, data, publicKeyFromPem(keyPem, "eddsa"), signature);
  if (keyPem.startsWith("-----BEGIN CERTIFICATE")) {
    // CCF's certificate Verifier hashes with SHA-256 and uses the key's default scheme: ECDSA
    // (taking the P1363 signature CCF converted to DER only when the algorithm is ECDSA) or
    // RSA PKCS#1 v1.5, whatever the algorithm asks for.
    const key = new X509Certificate(keyPem).publicKey;
    if (key.asymmetricKeyType === "ec") {
      return nodeVerify(
        "sha256",
        data,
        {
          key,
          dsaEncoding: name === "ECDSA" ? "ieee-p1363" : "der",
        },
        signature,
      );
    }
    if (key.asymmetricKeyType === "rsa") {
      return nodeVerify("sha256", data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
    }
    throw new Error("unsupported public key type");
  }
  if (name === "ECDSA") {
    return nodeVerify(
      "sha256",
      data,
      {
        key: publicKeyFromPem(keyPem, "ec"),
        dsaEncoding: "ieee-p1363",
      },
      signature,
    );
  }
  return nodeVerify(
    "sha256",
    data,
    {
      key: publicKeyFromPem(keyPem, "rsa"),
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: salt,
    },
    signature,
  );
}

/** RFC 5649 AES key wrap with padding, under a 128-, 192- or 256-bit key. */
function aesKwp(encrypt: boolean, aesKey: Uint8Array, input: Uint8Array): Buffer {
  if (aesKey.length !== 16 && aesKey.length !== 24 && aesKey.length !== 32) {
    throw new Error("Need a key size of 128, 192 or 256 bits");
  }
  const cipher = `id-aes${aesKey.length * 8}-wrap-pad`;
  const c = encrypt
    ? createCipheriv(cipher, aesKey, KWP_IV)
    : createDecipheriv(cipher, aesKey, KWP_IV);
  return Buffer.concat([c.update(input), c.final()]);
}

function wrapWith(
  name: string,
  key: Buffer,
  wrappingKey: Buffer,
  aesKeySize: number,
  labelBytes: Buffer | undefined,
): Buffer {
  if (name === "AES-KWP") return aesKwp(true, wrappingKey, key);
  const rsaKey = publicKeyFromPem(wrappingKey.toString("utf8"), "rsa");
  if (name === "RSA-OAEP") return publicEncrypt(oaep(rsaKey, labelBytes), key);
  // RSA-OAEP-AES-KWP: a fresh AES key, RSA-OAEP-wrapped, then the key AES-KWP-wrapped under it.
  if (aesKeySize <= 0 || aesKeySize % 8 !== 0)
    throw new Error(`invalid AES key size ${aesKeySize}`);
  const aesKey = randomBytes(aesKeySize / 8);
  try {
    return Buffer.concat([
      publicEncrypt(oaep(rsaKey, labelBytes), aesKey),
      aesKwp(true, aesKey, key),
    ]);
  } finally {
    aesKey.fill(0);
  }
}

function unwrapWith(
  name: string,
  wrapped: Buffer,
  unwrappingKey: Buffer,
  labelBytes: Buffer | undefined,
): Buffer {
  if (name === "AES-KWP") return aesKwp(false, unwrappingKey, wrapped);
  const rsaKey = privateKeyFromPem(unwrappingKey.toString("utf8"), "rsa");
  if (name === "RSA-OAEP") return privateDecrypt(oaep(rsaKey, labelBytes), wrapped);
  // RSA-OAEP-AES-KWP: the first modulus-length bytes are the wrapped AES key, the rest the key.
  const modulusBytes = Math.ceil((rsaKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
  if (wrapped.length <= modulusBytes) throw new Error("wrapped key is too short");
  const aesKey = privateDecrypt(oaep(rsaKey, labelBytes), wrapped.subarray(0, modulusBytes));
  try {
    return aesKwp(false, aesKey, wrapped.subarray(modulusBytes));
  } finally {
    aesKey.fill(0);
  }
}

/**
 * A JWK in CCF's shape: nlohmann::json orders object keys alphabetically, `kid` only when given.
 * `fields` are read from node's export of `key`.
 */
function jwkOf(key: KeyObject, kty: string, fields: readonly string[], kid: string | undefined) {
  const exported = key.export({ format: "jwk" }) as Record<string, unknown>;
  const out: Record<string, string> = { kty };
  if (kid !== undefined) out.kid = kid;
  for (const f of fields) {
    const v = exported[f];
    if (typeof v !== "string") throw new Error(`key has no ${f}`);
    out[f] = v;
  }
  const sorted: Record<string, string> = {};
  for (const k of Object.keys(out).sort()) sorted[k] = out[k];
  return sorted;
}

const JWK_FIELDS: Readonly<Record<KeyFamily, { kty: string; pub: string[]; priv: string[] }>> = {
  ec: { kty: "EC", pub: ["crv", "x", "y"], priv: ["d"] },
  rsa: { kty: "RSA", pub: ["n", "e"], priv: ["d", "p", "q", "dp", "dq", "qi"] },
  eddsa: { kty: "OKP", pub: ["crv", "x"], priv: ["d"] },
};

function pemToJwk(family: KeyFamily, priv: boolean, pem: string, kid: string | undefined) {
  const { kty, pub, priv: secret } = JWK_FIELDS[family];
  if (priv) return jwkOf(privateKeyFromPem(pem, family), kty, [...pub, ...secret], kid);
  return jwkOf(publicKeyFromPem(pem, family), kty, pub, kid);
}

/** Reads a JWK as CCF's JSON schema does: required string fields, the right kty and curve. */
function jwkToPem(family: KeyFamily, priv: boolean, text: string): string {
  const parsed: unknown = JSON.parse(text);
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new Error("JWK must be a JSON object");
  }
  const jwk = parsed as Record<string, unknown>;
  const { kty, pub, priv: secret } = JWK_FIELDS[family];
  const fields = priv ? [...pub, ...secret] : pub;
  const input: Record<string, string> = {};
  for (const f of ["kty", ...fields]) {
    const v = jwk[f];
    if (typeof v !== "string") throw new Error(`missing or non-string JWK field '${f}'`);
    input[f] = v;
  }
  if (jwk.kid !== undefined && typeof jwk.kid !== "string")
    throw new Error("JWK kid must be a string");
  if (input.kty !== kty) throw new Error(`JWK kty must be ${kty}, not ${input.kty}`);
  if (family === "ec" && !EC_JWK_CURVES.has(input.crv)) {
    throw new Error(`unsupported EC curve ${input.crv}`);
  }
  if (family === "eddsa" && EDDSA_JWK_CURVES[input.crv] === undefined) {
    throw new Error(`unsupported EdDSA curve ${input.crv}`);
  }
  const key = priv
    ? createPrivateKey({ key: input, format: "jwk" })
    : createPublicKey({ key: input, format: "jwk" });
  return priv ? privatePem(key) : publicPem(key);
}

/** Syntax check of a PEM bundle: every certificate parses (CCF's isValidX509CertBundle). */
function isValidCertBundle(pem: string): boolean {
  const certs = pemBundleSplit(pem);
  if (certs.length === 0) return false;
  try {
    for (const c of certs) new X509Certificate(c);
    return true;
  } catch {
    return false;
  }
}

/**
 * `chain[0]` is the target; each certificate must be issued by the next, the last by one of the
 * trusted certificates, and all must be valid now (CCF's isValidX509CertChain).
 */
function isValidCertChain(chainPem: string, trustedPem: string): boolean {
  try {
    const chain = pemBundleSplit(chainPem).map((c) => new X509Certificate(c));
    const trusted = pemBundleSplit(trustedPem).map((c) => new X509Certificate(c));
    if (chain.length === 0 || trusted.length === 0) return false;
    const now = Date.now();
    const current = (c: X509Certificate) =>
      Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo);
    for (let i = 0; i < chain.length; i++) {
      const cert = chain[i];
      if (!current(cert)) return false;
      const next = chain[i + 1];
      if (next !== undefined) {
        if (!cert.checkIssued(next) || !cert.verify(next.publicKey)) return false;
      } else if (
        !trusted.some(
          (t) =>
            current(t) &&
            (t.raw.equals(cert.raw) || (cert.checkIssued(t) && cert.verify(t.publicKey))),
        )
      ) {
        return false;
      }
    }
    return true;
  } catch {
    return false;
  }
}

function keyPair(publicKey: KeyObject, privateKey: KeyObject): HostValue {
  // CCF sets privateKey first; the order shows in Object.keys and JSON.stringify.
  return { privateKey: privatePem(privateKey), publicKey: publicPem(publicKey) };
}

/**
 * Installs `ccf.crypto` with every CCF 6.x member, replacing any `ccf.crypto` there and keeping
 * the rest of `ccf`. Key material and AES keys come from node:crypto's CSPRNG.
 */
export function installCrypto(interp: Interpreter): void {
  interp.define(HOST_GLOBAL, {
    sign: (name, hash, salt, key, data) =>
      guarded(
        "InternalError",
        name === "EdDSA" ? "Failed to sign with EdDSA pair: " : "Failed to sign: ",
        () =>
          signWith(
            requireString(name, "name"),
            requireString(hash, "hash"),
            requireNumber(salt, "saltLength"),
            requireString(key, "key"),
            requireBuffer(data, "data"),
          ),
      ),
    // Functions of their arguments only are `deterministic`: a module may call them at its top
    // level and still be evaluated ahead of requests (see JsApp's templates).
    verify: deterministic((name, _hash, salt, key, signature, data) => {
      const algorithm = requireString(name, "name");
      // CCF reports an EdDSA failure (a bad key, say) as a RangeError, the others as InternalError.
      const [errorName, prefix] =
        algorithm === "EdDSA"
          ? ["RangeError", "Failed to verify EdDSA signature: "]
          : ["InternalError", "Failed to verify signature: "];
      return guarded(errorName, prefix, () =>
        verifyWith(
          algorithm,
          requireNumber(salt, "saltLength"),
          requireString(key, "key"),
          requireBuffer(signature, "signature"),
          requireBuffer(data, "data"),
        ),
      );
    }),
    generateAesKey: (size) => randomBytes(requireNumber(size, "size") / 8),
    generateRsaKeyPair: (size, exponent) =>
      guarded("InternalError", "Failed to generate RSA key pair: ", () => {
        const { publicKey, privateKey } = generateKeyPairSync("rsa", {
          modulusLength: requireNumber(size, "size"),
          publicExponent: requireNumber(exponent, "exponent"),
        });
        return keyPair(publicKey, privateKey);
      }),
    generateEcdsaKeyPair: (curve) =>
      guarded("InternalError", "Failed to generate ECDSA key pair: ", () => {
        const namedCurve = ECDSA_CURVES[requireString(curve, "curve")];
        if (namedCurve === undefined) throw new Error("unsupported curve");
        const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve });
        return keyPair(publicKey, privateKey);
      }),
    generateEddsaKeyPair: (curve) =>
      guarded("InternalError", "Failed to generate EdDSA key pair: ", () => {
        const type = EDDSA_CURVES[requireString(curve, "curve")];
        if (type === undefined) throw new Error("unsupported curve");
        const { publicKey, privateKey } =
          type === "ed25519" ? generateKeyPairSync("ed25519") : generateKeyPairSync("x25519");
        return keyPair(publicKey, privateKey);
      }),
    wrap: (name, key, wrappingKey, aesKeySize, labelBytes) =>
      guarded("InternalError", "Failed to wrap key: ", () =>
        wrapWith(
          requireString(name, "name"),
          requireBuffer(key, "key"),
          requireBuffer(wrappingKey, "wrappingKey"),
          requireNumber(aesKeySize, "aesKeySize"),
          optionalBuffer(labelBytes, "label"),
        ),
      ),
    unwrap: deterministic((name, wrapped, unwrappingKey, _aesKeySize, labelBytes) =>
      guarded("InternalError", "Failed to unwrap key: ", () =>
        unwrapWith(
          requireString(name, "name"),
          requireBuffer(wrapped, "key"),
          requireBuffer(unwrappingKey, "unwrappingKey"),
          optionalBuffer(labelBytes, "label"),
        ),
      ),
    ),
    digest: deterministic((data) =>
      createHash("sha256").update(requireBuffer(data, "data")).digest(),
    ),
    isValidX509CertBundle: deterministic((pem) => isValidCertBundle(requireString(pem, "pem"))),
    isValidX509CertChain: (chain, trusted) =>
      isValidCertChain(requireString(chain, "chain"), requireString(trusted, "trusted")),
    pemToJwk: deterministic((family, priv, pem, kid) =>
      guarded("InternalError", "Failed to convert pem to jwk: ", () =>
        pemToJwk(
          requireFamily(family),
          priv === true,
          requireString(pem, "pem"),
          kid === undefined ? undefined : requireString(kid, "kid"),
        ),
      ),
    ),
    // CCF's message has no colon here.
    jwkToPem: deterministic((family, priv, text) =>
      guarded("InternalError", "Failed to convert jwk to pem ", () =>
        jwkToPem(requireFamily(family), priv === true, requireString(text, "jwk")),
      ),
    ),
  });
  interp.evalScript(INSTALL_SCRIPT, "ccf-crypto.js");
}
