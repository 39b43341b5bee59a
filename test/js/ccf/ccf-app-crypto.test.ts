// @microsoft/ccf-app's crypto module, loaded unmodified into a sandbox over our ccf.crypto: its
// unbound re-exports must work as they do on CCF.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { installConverters, installCrypto } from "../../../src/js/ccf/index.js";
import { type Interpreter, JsException } from "../../../src/js/sandbox/index.js";
import { sandbox } from "../sandbox/fixture.js";

const PACKAGE_DIR = dirname(
  createRequire(import.meta.url).resolve("@microsoft/ccf-app/package.json"),
);
const PREFIX = "node_modules/@microsoft/ccf-app/";

/** The package's own files, by the module names a rollup bundle would give them. */
function packageModule(file: string): string {
  return readFileSync(join(PACKAGE_DIR, file), "utf8");
}

const APP = `
import * as ccfcrypto from "./${PREFIX}crypto.js";
import { string as str } from "./${PREFIX}converters.js";

const bytes = (s) => str.encode(s);

export function exportsAll() {
  return Object.keys(ccfcrypto).sort().map((k) => k + ":" + typeof ccfcrypto[k]);
}

export function signAndVerify() {
  const data = bytes("hello");
  const ec = ccfcrypto.generateEcdsaKeyPair("secp256r1");
  const ed = ccfcrypto.generateEddsaKeyPair("curve25519");
  const rsa = ccfcrypto.generateRsaKeyPair(2048);
  const ecdsa = { name: "ECDSA", hash: "SHA-256" };
  const pss = { name: "RSA-PSS", hash: "SHA-256", saltLength: 32 };
  const eddsa = { name: "EdDSA" };
  const ecSig = ccfcrypto.sign(ecdsa, ec.privateKey, data);
  const rsaSig = ccfcrypto.sign(pss, rsa.privateKey, data);
  const edSig = ccfcrypto.sign(eddsa, ed.privateKey, data);
  return [
    ecSig.byteLength,
    ccfcrypto.verifySignature(ecdsa, ec.publicKey, ecSig, data),
    ccfcrypto.verifySignature(pss, rsa.publicKey, rsaSig, data),
    ccfcrypto.verifySignature(eddsa, ed.publicKey, edSig, data),
    ccfcrypto.verifySignature(ecdsa, ec.publicKey, ecSig, bytes("other")),
    ccfcrypto.sign({ name: "HMAC", hash: "SHA-256" }, "key", data).byteLength,
  ];
}

export function wrapUnwrap() {
  const rsa = ccfcrypto.generateRsaKeyPair(2048);
  const pub = bytes(rsa.publicKey);
  const priv = bytes(rsa.privateKey);
  const aes = ccfcrypto.generateAesKey(256);
  const key = bytes("the key to wrap");
  const algos = [
    [{ name: "RSA-OAEP" }, pub, priv],
    [{ name: "AES-KWP" }, aes, aes],
    [{ name: "RSA-OAEP-AES-KWP", aesKeySize: 256 }, pub, priv],
  ];
  return algos.map(([algo, w, u]) =>
    str.decode(ccfcrypto.unwrapKey(ccfcrypto.wrapKey(key, w, algo), u, algo)),
  );
}

export function jwk() {
  const ec = ccfcrypto.generateEcdsaKeyPair("secp384r1");
  const ed = ccfcrypto.generateEddsaKeyPair("curve25519");
  const rsa = ccfcrypto.generateRsaKeyPair(2048);
  return [
    ccfcrypto.pubJwkToPem(ccfcrypto.pubPemToJwk(ec.publicKey, "k1")) === ec.publicKey,
    ccfcrypto.jwkToPem(ccfcrypto.pemToJwk(ec.privateKey)) === ec.privateKey,
    ccfcrypto.pubRsaJwkToPem(ccfcrypto.pubRsaPemToJwk(rsa.publicKey)) === rsa.publicKey,
    ccfcrypto.rsaJwkToPem(ccfcrypto.rsaPemToJwk(rsa.privateKey)) === rsa.privateKey,
    ccfcrypto.pubEddsaJwkToPem(ccfcrypto.pubEddsaPemToJwk(ed.publicKey)) === ed.publicKey,
    ccfcrypto.eddsaJwkToPem(ccfcrypto.eddsaPemToJwk(ed.privateKey)) === ed.privateKey,
    ccfcrypto.pubPemToJwk(ec.publicKey, "k1").kid,
  ];
}

export function digestAndCerts() {
  const d = new Uint8Array(ccfcrypto.digest("SHA-256", bytes("abc")));
  return [
    Array.from(d.slice(0, 4)),
    ccfcrypto.isValidX509CertBundle("not a cert"),
    ccfcrypto.isValidX509CertChain("not a cert", "nor this"),
  ];
}

export function digestOther() {
  return ccfcrypto.digest("SHA-512", bytes("abc"));
}
`;

describe("@microsoft/ccf-app crypto.js over ccf.crypto", () => {
  let interp: Interpreter;
  before(async () => {
    const modules: Record<string, string> = { "app.js": APP };
    for (const file of ["crypto.js", "global.js", "converters.js"]) {
      modules[PREFIX + file] = packageModule(file);
    }
    interp = (await sandbox(modules)).interp;
    installConverters(interp);
    installCrypto(interp);
  });
  after(() => interp.dispose());

  it("re-exports every ccf.crypto function", () => {
    assert.deepEqual(interp.callExport("app.js", "exportsAll", []), [
      "digest:function",
      "eddsaJwkToPem:function",
      "eddsaPemToJwk:function",
      "generateAesKey:function",
      "generateEcdsaKeyPair:function",
      "generateEddsaKeyPair:function",
      "generateRsaKeyPair:function",
      "isValidX509CertBundle:function",
      "isValidX509CertChain:function",
      "jwkToPem:function",
      "pemToJwk:function",
      "pubEddsaJwkToPem:function",
      "pubEddsaPemToJwk:function",
      "pubJwkToPem:function",
      "pubPemToJwk:function",
      "pubRsaJwkToPem:function",
      "pubRsaPemToJwk:function",
      "rsaJwkToPem:function",
      "rsaPemToJwk:function",
      "sign:function",
      "unwrapKey:function",
      "verifySignature:function",
      "wrapKey:function",
    ]);
  });

  it("signs and verifies through the unbound re-exports for ECDSA, RSA-PSS, EdDSA and HMAC", () => {
    assert.deepEqual(interp.callExport("app.js", "signAndVerify", []), [
      64,
      true,
      true,
      true,
      false,
      32,
    ]);
  });

  it("wraps and unwraps with each algorithm", () => {
    assert.deepEqual(interp.callExport("app.js", "wrapUnwrap", []), [
      "the key to wrap",
      "the key to wrap",
      "the key to wrap",
    ]);
  });

  it("round-trips every PEM/JWK conversion", () => {
    assert.deepEqual(interp.callExport("app.js", "jwk", []), [
      true,
      true,
      true,
      true,
      true,
      true,
      "k1",
    ]);
  });

  it("digests with SHA-256 and checks certificates", () => {
    assert.deepEqual(interp.callExport("app.js", "digestAndCerts", []), [
      [0xba, 0x78, 0x16, 0xbf],
      false,
      false,
    ]);
  });

  it("refuses a digest other than SHA-256 with a RangeError, as native CCF does", () => {
    assert.throws(
      () => interp.callExport("app.js", "digestOther", []),
      (e) => e instanceof JsException && e.jsName === "RangeError",
    );
  });
});
