// Tests for ccf.crypto installed into a sandbox: every member, driven from guest code.

import assert from "node:assert/strict";
import {
  constants,
  createHash,
  createHmac,
  createPrivateKey,
  createDecipheriv,
  createPublicKey,
  privateDecrypt,
  sign as nodeSign,
  verify as nodeVerify,
} from "node:crypto";
import { after, before, describe, it } from "node:test";
import {
  createEndorsedCertificate,
  createServiceCertificate,
  EcKeyPair,
} from "../../../src/crypto/index.js";
import { installConverters, installCrypto } from "../../../src/js/ccf/index.js";
import { type Interpreter, JsException } from "../../../src/js/sandbox/index.js";
import { evaluate, sandbox } from "../sandbox/fixture.js";

function throwsGuest(fn: () => unknown, name: string, message?: RegExp | string): void {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof JsException, String(e));
    assert.equal(e.jsName, name, e.jsMessage);
    if (typeof message === "string") assert.equal(e.jsMessage, message);
    else if (message !== undefined) assert.match(e.jsMessage, message);
    return true;
  });
}

// A fixed P-256 key (RFC 7515 appendix A.3's example key), so the JWK fields are known.
const P256_JWK = {
  crv: "P-256",
  d: "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI",
  kty: "EC",
  x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
  y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
};
const P256_PRIVATE_PEM = createPrivateKey({ key: P256_JWK, format: "jwk" })
  .export({ type: "pkcs8", format: "pem" })
  .toString();
const P256_PUBLIC_PEM = createPublicKey({ key: P256_JWK, format: "jwk" })
  .export({ type: "spki", format: "pem" })
  .toString();
// RFC 8037 appendix A.1's Ed25519 key.
const ED25519_JWK = {
  crv: "Ed25519",
  d: "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
  kty: "OKP",
  x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
};

/** Evaluates a guest expression that yields bytes, as a hex string. */
function hexOf(interp: Interpreter, expression: string): string {
  const out = evaluate(interp, expression);
  assert.ok(out instanceof ArrayBuffer, "expected an ArrayBuffer");
  return Buffer.from(out).toString("hex");
}

describe("ccf.crypto", () => {
  let interp: Interpreter;
  let rsa: { privateKey: string; publicKey: string };
  before(async () => {
    interp = (await sandbox()).interp;
    interp.define("ccf.other", 7);
    installConverters(interp);
    installCrypto(interp);
    rsa = evaluate(interp, "ccf.crypto.generateRsaKeyPair(2048)") as typeof rsa;
    interp.define("keys", {
      rsaPrivate: rsa.privateKey,
      rsaPublic: rsa.publicKey,
      p256Private: P256_PRIVATE_PEM,
      p256Public: P256_PUBLIC_PEM,
    });
  });
  after(() => interp.dispose());

  it("installs every CCF 6.x member as a function of CCF's arity, keeping other ccf members", () => {
    const members = evaluate(
      interp,
      `[ccf.other, typeof globalThis.__ccfCryptoHost,
        Object.keys(ccf.crypto).sort().map((k) => k + "/" + typeof ccf.crypto[k] + "/" + ccf.crypto[k].length)]`,
    );
    assert.deepEqual(members, [
      7,
      "undefined",
      [
        "digest/function/2",
        "eddsaJwkToPem/function/1",
        "eddsaPemToJwk/function/1",
        "generateAesKey/function/1",
        "generateEcdsaKeyPair/function/1",
        "generateEddsaKeyPair/function/1",
        "generateRsaKeyPair/function/1",
        "isValidX509CertBundle/function/1",
        "isValidX509CertChain/function/2",
        "jwkToPem/function/1",
        "pemToJwk/function/1",
        "pubEddsaJwkToPem/function/1",
        "pubEddsaPemToJwk/function/1",
        "pubJwkToPem/function/1",
        "pubPemToJwk/function/1",
        "pubRsaJwkToPem/function/1",
        "pubRsaPemToJwk/function/1",
        "rsaJwkToPem/function/1",
        "rsaPemToJwk/function/1",
        "sign/function/3",
        "unwrapKey/function/3",
        "verifySignature/function/4",
        "wrapKey/function/3",
      ],
    ]);
  });

  it("works unbound, as ccf-app's re-exports call it", () => {
    assert.equal(
      hexOf(
        interp,
        `(() => { const d = ccf.crypto.digest; return d("SHA-256", ccf.strToBuf("abc")); })()`,
      ),
      createHash("sha256").update("abc").digest("hex"),
    );
  });

  describe("digest", () => {
    it("hashes an ArrayBuffer with SHA-256", () => {
      assert.equal(
        hexOf(interp, `ccf.crypto.digest("SHA-256", ccf.strToBuf("hello"))`),
        createHash("sha256").update("hello").digest("hex"),
      );
    });

    it("refuses any other algorithm with a RangeError, before looking at the data", () => {
      for (const alg of [`"SHA-384"`, `"SHA-512"`, `"sha256"`, `undefined`]) {
        throwsGuest(
          () => evaluate(interp, `ccf.crypto.digest(${alg}, 5)`),
          "RangeError",
          "unsupported digest algorithm, supported: SHA-256",
        );
      }
    });

    it("refuses a typed array or a string as data with a TypeError", () => {
      throwsGuest(
        () => evaluate(interp, `ccf.crypto.digest("SHA-256", new Uint8Array(3))`),
        "TypeError",
      );
      throwsGuest(() => evaluate(interp, `ccf.crypto.digest("SHA-256", "abc")`), "TypeError");
    });

    it("checks its argument count", () => {
      throwsGuest(
        () => evaluate(interp, `ccf.crypto.digest("SHA-256")`),
        "TypeError",
        "Passed 1 arguments, but expected 2",
      );
    });
  });

  describe("sign and verifySignature", () => {
    const roundTrip = (algorithm: string, priv: string, pub: string) =>
      evaluate(
        interp,
        `(() => {
          const alg = ${algorithm};
          const data = ccf.strToBuf("payload");
          const sig = ccf.crypto.sign(alg, ${priv}, data);
          const bad = new Uint8Array(sig.slice(0)); bad[bad.length - 1] ^= 1;
          return [
            sig.byteLength,
            ccf.crypto.verifySignature(alg, ${pub}, sig, data),
            ccf.crypto.verifySignature(alg, ${pub}, bad.buffer, data),
            ccf.crypto.verifySignature(alg, ${pub}, sig, ccf.strToBuf("other")),
          ];
        })()`,
      );

    it("ECDSA signs in IEEE P1363 form (r||s) and verifies; a tampered signature is refused", () => {
      assert.deepEqual(
        roundTrip(`{ name: "ECDSA", hash: "SHA-256" }`, "keys.p256Private", "keys.p256Public"),
        [64, true, false, false],
      );
      const p384 = evaluate(interp, `ccf.crypto.generateEcdsaKeyPair("secp384r1")`) as {
        privateKey: string;
        publicKey: string;
      };
      interp.define("p384", p384);
      assert.deepEqual(
        roundTrip(`{ name: "ECDSA", hash: "SHA-256" }`, "p384.privateKey", "p384.publicKey"),
        [96, true, false, false],
      );
    });

    it("an ECDSA signature from the guest verifies in node as P1363 over the chosen hash", () => {
      for (const [hash, nodeHash] of [
        ["SHA-256", "sha256"],
        ["SHA-384", "sha384"],
        ["SHA-512", "sha512"],
      ]) {
        const sig = evaluate(
          interp,
          `ccf.crypto.sign({ name: "ECDSA", hash: "${hash}" }, keys.p256Private, ccf.strToBuf("m"))`,
        ) as ArrayBuffer;
        assert.ok(
          nodeVerify(
            nodeHash,
            Buffer.from("m"),
            { key: P256_PUBLIC_PEM, dsaEncoding: "ieee-p1363" },
            Buffer.from(sig),
          ),
        );
      }
    });

    it("RSA-PSS signs with the given salt length and verifies; a tampered signature is refused", () => {
      assert.deepEqual(
        roundTrip(
          `{ name: "RSA-PSS", hash: "SHA-256", saltLength: 32 }`,
          "keys.rsaPrivate",
          "keys.rsaPublic",
        ),
        [256, true, false, false],
      );
      const sig = evaluate(
        interp,
        `ccf.crypto.sign({ name: "RSA-PSS", hash: "SHA-384", saltLength: 20 }, keys.rsaPrivate, ccf.strToBuf("m"))`,
      ) as ArrayBuffer;
      const pss = { padding: constants.RSA_PKCS1_PSS_PADDING, key: rsa.publicKey };
      assert.ok(
        nodeVerify("sha384", Buffer.from("m"), { ...pss, saltLength: 20 }, Buffer.from(sig)),
      );
      assert.ok(
        !nodeVerify("sha384", Buffer.from("m"), { ...pss, saltLength: 21 }, Buffer.from(sig)),
      );
    });

    it("RSA-PSS without saltLength uses a salt of 0, as CCF's JS_ToInt64 of undefined gives", () => {
      const sig = evaluate(
        interp,
        `ccf.crypto.sign({ name: "RSA-PSS", hash: "SHA-256" }, keys.rsaPrivate, ccf.strToBuf("m"))`,
      ) as ArrayBuffer;
      assert.ok(
        nodeVerify(
          "sha256",
          Buffer.from("m"),
          { key: rsa.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 0 },
          Buffer.from(sig),
        ),
      );
      assert.deepEqual(
        evaluate(
          interp,
          `(() => {
            const d = ccf.strToBuf("m");
            const sig = ccf.crypto.sign({ name: "RSA-PSS", hash: "SHA-256" }, keys.rsaPrivate, d);
            return [
              ccf.crypto.verifySignature({ name: "RSA-PSS", hash: "SHA-256" }, keys.rsaPublic, sig, d),
              ccf.crypto.verifySignature({ name: "RSA-PSS", hash: "SHA-256", saltLength: 32 }, keys.rsaPublic, sig, d),
            ];
          })()`,
        ),
        [true, false],
      );
    });

    it("EdDSA signs and verifies with Ed25519, ignoring the hash", () => {
      const ed = evaluate(interp, `ccf.crypto.generateEddsaKeyPair("curve25519")`) as {
        privateKey: string;
        publicKey: string;
      };
      interp.define("ed", ed);
      assert.deepEqual(roundTrip(`{ name: "EdDSA" }`, "ed.privateKey", "ed.publicKey"), [
        64,
        true,
        false,
        false,
      ]);
      assert.deepEqual(
        roundTrip(`{ name: "EdDSA", hash: "MD5" }`, "ed.privateKey", "ed.publicKey"),
        [64, true, false, false],
      );
      // RFC 8032 is deterministic: node's signature with the same key must match exactly.
      const sig = hexOf(
        interp,
        `ccf.crypto.sign({ name: "EdDSA" }, ed.privateKey, ccf.strToBuf("m"))`,
      );
      assert.equal(sig, nodeSign(null, Buffer.from("m"), ed.privateKey).toString("hex"));
    });

    it("HMAC uses the key string's bytes as the secret, for each hash", () => {
      for (const [hash, nodeHash] of [
        ["SHA-256", "sha256"],
        ["SHA-384", "sha384"],
        ["SHA-512", "sha512"],
      ]) {
        assert.equal(
          hexOf(
            interp,
            `ccf.crypto.sign({ name: "HMAC", hash: "${hash}" }, "s\\u00e9cret", ccf.strToBuf("data"))`,
          ),
          createHmac(nodeHash, Buffer.from("s\u00e9cret", "utf8")).update("data").digest("hex"),
        );
      }
    });

    it("verifySignature accepts a certificate in place of the public key", async () => {
      const key = EcKeyPair.generate("secp256r1");
      const cert = await createServiceCertificate(key, {
        validFrom: new Date(Date.now() - 60_000),
        validityDays: 1,
      });
      interp.define("certKey", { cert, priv: key.privateKeyPem });
      assert.deepEqual(
        roundTrip(`{ name: "ECDSA", hash: "SHA-256" }`, "certKey.priv", "certKey.cert"),
        [64, true, false, false],
      );
    });

    it("sign refuses an unknown hash, then an unknown algorithm, with RangeErrors", () => {
      throwsGuest(
        () =>
          evaluate(
            interp,
            `ccf.crypto.sign({ name: "ECDSA", hash: "SHA-1" }, keys.p256Private, new ArrayBuffer(1))`,
          ),
        "RangeError",
        "Unsupported hash algorithm, supported: SHA-256, SHA-384, SHA-512",
      );
      throwsGuest(
        () =>
          evaluate(
            interp,
            `ccf.crypto.sign({ name: "DSA", hash: "SHA-256" }, "k", new ArrayBuffer(1))`,
          ),
        "RangeError",
        "Unsupported signing algorithm, supported: RSA-PSS, ECDSA, EdDSA, HMAC",
      );
    });

    it("verifySignature supports only SHA-256 and RSA-PSS/ECDSA/EdDSA: HMAC verify is refused", () => {
      throwsGuest(
        () =>
          evaluate(
            interp,
            `ccf.crypto.verifySignature({ name: "ECDSA", hash: "SHA-384" }, keys.p256Public, new ArrayBuffer(64), new ArrayBuffer(1))`,
          ),
        "RangeError",
        "Unsupported hash algorithm, supported: SHA-256",
      );
      throwsGuest(
        () =>
          evaluate(
            interp,
            `ccf.crypto.verifySignature({ name: "HMAC", hash: "SHA-256" }, "k", new ArrayBuffer(32), new ArrayBuffer(1))`,
          ),
        "RangeError",
        "Unsupported signing algorithm, supported: RSA-PSS, ECDSA, EdDSA",
      );
    });

    it("a key of the wrong type or a bad PEM is an InternalError", () => {
      throwsGuest(
        () =>
          evaluate(
            interp,
            `ccf.crypto.sign({ name: "ECDSA", hash: "SHA-256" }, keys.rsaPrivate, new ArrayBuffer(1))`,
          ),
        "InternalError",
        /^Failed to sign: /,
      );
      throwsGuest(
        () =>
          evaluate(interp, `ccf.crypto.sign({ name: "EdDSA" }, "not a pem", new ArrayBuffer(1))`),
        "InternalError",
        /^Failed to sign with EdDSA pair: /,
      );
      throwsGuest(
        () =>
          evaluate(
            interp,
            `ccf.crypto.verifySignature({ name: "ECDSA", hash: "SHA-256" }, keys.p256Private, new ArrayBuffer(64), new ArrayBuffer(1))`,
          ),
        "InternalError",
        /^Failed to verify signature: /,
      );
    });

    it("an EdDSA verification with a bad key is a RangeError, as CCF reports it", () => {
      throwsGuest(
        () =>
          evaluate(
            interp,
            `ccf.crypto.verifySignature({ name: "EdDSA" }, keys.p256Public, new ArrayBuffer(64), new ArrayBuffer(1))`,
          ),
        "RangeError",
        /^Failed to verify EdDSA signature: /,
      );
    });

    it("checks argument counts and ArrayBuffer arguments with TypeErrors", () => {
      throwsGuest(
        () => evaluate(interp, `ccf.crypto.sign({ name: "HMAC", hash: "SHA-256" }, "k")`),
        "TypeError",
        "Passed 2 arguments, but expected 3",
      );
      throwsGuest(
        () => evaluate(interp, `ccf.crypto.verifySignature({}, "k", new ArrayBuffer(1))`),
        "TypeError",
        "Passed 3 arguments, but expected 4",
      );
      throwsGuest(
        () =>
          evaluate(
            interp,
            `ccf.crypto.sign({ name: "HMAC", hash: "SHA-256" }, "k", new Uint8Array(2))`,
          ),
        "TypeError",
      );
      throwsGuest(
        () => evaluate(interp, `ccf.crypto.sign(undefined, "k", new ArrayBuffer(2))`),
        "TypeError",
      );
      throwsGuest(
        () =>
          evaluate(
            interp,
            `ccf.crypto.verifySignature({ name: "EdDSA" }, "k", "sig", new ArrayBuffer(1))`,
          ),
        "TypeError",
      );
    });
  });

  describe("key generation", () => {
    it("generateAesKey gives 16, 24 or 32 random bytes and refuses other sizes with a RangeError", () => {
      assert.deepEqual(
        evaluate(
          interp,
          `[128, 192, 256, "256"].map((n) => ccf.crypto.generateAesKey(n).byteLength)`,
        ),
        [16, 24, 32, 32],
      );
      assert.notEqual(
        hexOf(interp, `ccf.crypto.generateAesKey(256)`),
        hexOf(interp, `ccf.crypto.generateAesKey(256)`),
      );
      for (const n of ["512", "0", "undefined", "127"]) {
        throwsGuest(
          () => evaluate(interp, `ccf.crypto.generateAesKey(${n})`),
          "RangeError",
          "invalid key size (not one of 128, 192, 256)",
        );
      }
      throwsGuest(
        () => evaluate(interp, `ccf.crypto.generateAesKey()`),
        "TypeError",
        "Passed 0 arguments, but expected 1",
      );
    });

    it("generateRsaKeyPair gives PKCS#8 and SPKI PEMs of the asked size and exponent", () => {
      assert.match(rsa.privateKey, /^-----BEGIN PRIVATE KEY-----\n/);
      assert.match(rsa.publicKey, /^-----BEGIN PUBLIC KEY-----\n/);
      assert.deepEqual(Object.keys(rsa), ["privateKey", "publicKey"]);
      const details = createPublicKey(rsa.publicKey).asymmetricKeyDetails;
      assert.equal(details?.modulusLength, 2048);
      assert.equal(details?.publicExponent, 65537n);
      const k3 = evaluate(interp, `ccf.crypto.generateRsaKeyPair(1024, 3)`) as {
        publicKey: string;
      };
      assert.equal(createPublicKey(k3.publicKey).asymmetricKeyDetails?.publicExponent, 3n);
      throwsGuest(
        () => evaluate(interp, `ccf.crypto.generateRsaKeyPair(2048, 3, 1)`),
        "TypeError",
        "Passed 3 arguments, but expected 1 or 2",
      );
      throwsGuest(
        () => evaluate(interp, `ccf.crypto.generateRsaKeyPair(2048, 4)`),
        "InternalError",
        /^Failed to generate RSA key pair: /,
      );
    });

    it("generateEcdsaKeyPair supports secp256r1 and secp384r1 only", () => {
      for (const [curve, nodeCurve] of [
        ["secp256r1", "prime256v1"],
        ["secp384r1", "secp384r1"],
      ]) {
        const kp = evaluate(interp, `ccf.crypto.generateEcdsaKeyPair("${curve}")`) as {
          privateKey: string;
          publicKey: string;
        };
        assert.match(kp.privateKey, /^-----BEGIN PRIVATE KEY-----\n/);
        assert.equal(createPublicKey(kp.publicKey).asymmetricKeyDetails?.namedCurve, nodeCurve);
      }
      for (const curve of ["secp256k1", "secp521r1", "P-256"]) {
        throwsGuest(
          () => evaluate(interp, `ccf.crypto.generateEcdsaKeyPair("${curve}")`),
          "RangeError",
          "Unsupported curve id, supported: secp256r1, secp384r1",
        );
      }
    });

    it("generateEddsaKeyPair gives Ed25519 for curve25519 and X25519 for x25519", () => {
      const [ed, x] = evaluate(
        interp,
        `["curve25519", "x25519"].map((c) => ccf.crypto.generateEddsaKeyPair(c))`,
      ) as Array<{ privateKey: string; publicKey: string }>;
      assert.equal(createPublicKey(ed.publicKey).asymmetricKeyType, "ed25519");
      assert.equal(createPrivateKey(x.privateKey).asymmetricKeyType, "x25519");
      throwsGuest(
        () => evaluate(interp, `ccf.crypto.generateEddsaKeyPair("ed25519")`),
        "RangeError",
        "Unsupported curve id, supported: curve25519, x25519",
      );
    });
  });

  describe("wrapKey and unwrapKey", () => {
    it("RSA-OAEP round-trips, with and without a label; a wrong label fails to unwrap", () => {
      assert.deepEqual(
        evaluate(
          interp,
          `(() => {
            const key = ccf.crypto.generateAesKey(256);
            const pub = ccf.strToBuf(keys.rsaPublic), priv = ccf.strToBuf(keys.rsaPrivate);
            const hex = (b) => Array.from(new Uint8Array(b)).join(",");
            const plain = ccf.crypto.wrapKey(key, pub, { name: "RSA-OAEP" });
            const labelled = ccf.crypto.wrapKey(key, pub, { name: "RSA-OAEP", label: ccf.strToBuf("L") });
            let wrongLabel = "";
            try { ccf.crypto.unwrapKey(labelled, priv, { name: "RSA-OAEP", label: ccf.strToBuf("M") }); }
            catch (e) { wrongLabel = e.name + ": " + e.message.slice(0, 22); }
            return [
              plain.byteLength,
              hex(ccf.crypto.unwrapKey(plain, priv, { name: "RSA-OAEP" })) === hex(key),
              hex(ccf.crypto.unwrapKey(labelled, priv, { name: "RSA-OAEP", label: ccf.strToBuf("L") })) === hex(key),
              // An empty label, or one that is not an ArrayBuffer, means no label.
              hex(ccf.crypto.unwrapKey(plain, priv, { name: "RSA-OAEP", label: new ArrayBuffer(0) })) === hex(key),
              hex(ccf.crypto.unwrapKey(plain, priv, { name: "RSA-OAEP", label: "L" })) === hex(key),
              wrongLabel,
            ];
          })()`,
        ),
        [256, true, true, true, true, "InternalError: Failed to unwrap key: "],
      );
    });

    it("RSA-OAEP wraps with SHA-256 OAEP that node can unwrap", () => {
      const wrapped = evaluate(
        interp,
        `ccf.crypto.wrapKey(ccf.strToBuf("secret"), ccf.strToBuf(keys.rsaPublic), { name: "RSA-OAEP" })`,
      ) as ArrayBuffer;
      assert.equal(
        privateDecrypt(
          { key: rsa.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
          Buffer.from(wrapped),
        ).toString(),
        "secret",
      );
    });

    it("AES-KWP is RFC 5649 under 128-, 192- and 256-bit keys", () => {
      // RFC 5649 section 6, first example: a 20-byte key under a 192-bit KEK.
      assert.equal(
        hexOf(
          interp,
          `(() => {
            const h = (s) => new Uint8Array(s.match(/../g).map((x) => parseInt(x, 16))).buffer;
            return ccf.crypto.wrapKey(h("c37b7e6492584340bed12207808941155068f738"),
              h("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8"), { name: "AES-KWP" });
          })()`,
        ),
        "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
      );
      assert.deepEqual(
        evaluate(
          interp,
          `[128, 192, 256].map((n) => {
            const kek = ccf.crypto.generateAesKey(n);
            const key = ccf.strToBuf("a key of 23 bytes......");
            const w = ccf.crypto.wrapKey(key, kek, { name: "AES-KWP" });
            return [w.byteLength, ccf.bufToStr(ccf.crypto.unwrapKey(w, kek, { name: "AES-KWP" }))];
          })`,
        ),
        [
          [32, "a key of 23 bytes......"],
          [32, "a key of 23 bytes......"],
          [32, "a key of 23 bytes......"],
        ],
      );
    });

    it("AES-KWP refuses a tampered wrapping or a bad key size with an InternalError", () => {
      throwsGuest(
        () =>
          evaluate(
            interp,
            `(() => {
              const kek = ccf.crypto.generateAesKey(256);
              const w = new Uint8Array(ccf.crypto.wrapKey(ccf.strToBuf("k"), kek, { name: "AES-KWP" }));
              w[0] ^= 1;
              return ccf.crypto.unwrapKey(w.buffer, kek, { name: "AES-KWP" });
            })()`,
          ),
        "InternalError",
        /^Failed to unwrap key: /,
      );
      throwsGuest(
        () =>
          evaluate(
            interp,
            `ccf.crypto.wrapKey(ccf.strToBuf("k"), new ArrayBuffer(5), { name: "AES-KWP" })`,
          ),
        "InternalError",
        /^Failed to wrap key: /,
      );
    });

    it("RSA-OAEP-AES-KWP is the RSA-wrapped AES key followed by the AES-KWP-wrapped key", () => {
      const out = evaluate(
        interp,
        `(() => {
          const pub = ccf.strToBuf(keys.rsaPublic), priv = ccf.strToBuf(keys.rsaPrivate);
          const key = ccf.strToBuf("twenty-four bytes of key");
          const algo = { name: "RSA-OAEP-AES-KWP", aesKeySize: 256, label: ccf.strToBuf("L") };
          const w = ccf.crypto.wrapKey(key, pub, algo);
          return [w, ccf.bufToStr(ccf.crypto.unwrapKey(w, priv, algo))];
        })()`,
      ) as [ArrayBuffer, string];
      assert.equal(out[1], "twenty-four bytes of key");
      const wrapped = Buffer.from(out[0]);
      assert.equal(wrapped.length, 256 + 32);
      // Unwrap the layout by hand: RSA-OAEP(SHA-256, label) of a 32-byte AES key, then RFC 5649.
      const aesKey = privateDecrypt(
        {
          key: rsa.privateKey,
          padding: constants.RSA_PKCS1_OAEP_PADDING,
          oaepHash: "sha256",
          oaepLabel: Buffer.from("L"),
        },
        wrapped.subarray(0, 256),
      );
      assert.equal(aesKey.length, 32);
      const d = createDecipheriv("id-aes256-wrap-pad", aesKey, Buffer.from("a65959a6", "hex"));
      assert.equal(
        Buffer.concat([d.update(wrapped.subarray(256)), d.final()]).toString(),
        "twenty-four bytes of key",
      );
    });

    it("refuses an unknown algorithm with a RangeError naming the supported ones", () => {
      throwsGuest(
        () =>
          evaluate(
            interp,
            `ccf.crypto.wrapKey(new ArrayBuffer(1), new ArrayBuffer(1), { name: "AES-GCM" })`,
          ),
        "RangeError",
        "unsupported key wrapping algorithm, supported: RSA-OAEP, AES-KWP, RSA-OAEP-AES-KWP",
      );
      throwsGuest(
        () =>
          evaluate(
            interp,
            `ccf.crypto.unwrapKey(new ArrayBuffer(1), new ArrayBuffer(1), { name: "AES-GCM" })`,
          ),
        "RangeError",
        "unsupported key unwrapping algorithm, supported: RSA-OAEP, AES-KWP, RSA-OAEP-AES-KWP",
      );
    });

    it("checks argument count, ArrayBuffer arguments and PEM key types", () => {
      throwsGuest(
        () => evaluate(interp, `ccf.crypto.wrapKey(new ArrayBuffer(1), new ArrayBuffer(1))`),
        "TypeError",
        "Passed 2 arguments, but expected 3",
      );
      throwsGuest(
        () =>
          evaluate(
            interp,
            `ccf.crypto.wrapKey(new Uint8Array(1), new ArrayBuffer(1), { name: "AES-KWP" })`,
          ),
        "TypeError",
      );
      throwsGuest(
        () =>
          evaluate(
            interp,
            `ccf.crypto.wrapKey(new ArrayBuffer(1), ccf.strToBuf(keys.rsaPrivate), { name: "RSA-OAEP" })`,
          ),
        "InternalError",
        /^Failed to wrap key: /,
      );
    });
  });

  describe("PEM and JWK conversion", () => {
    it("converts a fixed EC key to CCF's JWK fields, keys in alphabetical order, kid when given", () => {
      const pub = evaluate(interp, `ccf.crypto.pubPemToJwk(keys.p256Public)`);
      assert.deepEqual(pub, { crv: "P-256", kty: "EC", x: P256_JWK.x, y: P256_JWK.y });
      assert.deepEqual(Object.keys(pub as object), ["crv", "kty", "x", "y"]);
      const priv = evaluate(interp, `ccf.crypto.pemToJwk(keys.p256Private, "my-kid")`);
      assert.deepEqual(priv, { ...P256_JWK, kid: "my-kid" });
      assert.deepEqual(Object.keys(priv as object), ["crv", "d", "kid", "kty", "x", "y"]);
    });

    it("converts a fixed Ed25519 key to CCF's OKP JWK and back to the same PEMs", () => {
      const privPem = createPrivateKey({ key: ED25519_JWK, format: "jwk" })
        .export({ type: "pkcs8", format: "pem" })
        .toString();
      const pubPem = createPublicKey({ key: ED25519_JWK, format: "jwk" })
        .export({ type: "spki", format: "pem" })
        .toString();
      interp.define("edFixed", { privPem, pubPem });
      assert.deepEqual(evaluate(interp, `ccf.crypto.eddsaPemToJwk(edFixed.privPem)`), ED25519_JWK);
      assert.deepEqual(evaluate(interp, `ccf.crypto.pubEddsaPemToJwk(edFixed.pubPem, "k")`), {
        crv: "Ed25519",
        kid: "k",
        kty: "OKP",
        x: ED25519_JWK.x,
      });
      assert.equal(
        evaluate(interp, `ccf.crypto.eddsaJwkToPem(ccf.crypto.eddsaPemToJwk(edFixed.privPem))`),
        privPem,
      );
      assert.equal(
        evaluate(
          interp,
          `ccf.crypto.pubEddsaJwkToPem(ccf.crypto.pubEddsaPemToJwk(edFixed.pubPem))`,
        ),
        pubPem,
      );
    });

    it("round-trips PEM -> JWK -> PEM for EC, RSA and EdDSA (Ed25519 and X25519), public and private", () => {
      const out = evaluate(
        interp,
        `(() => {
          const c = ccf.crypto;
          const ec = c.generateEcdsaKeyPair("secp384r1");
          const ed = c.generateEddsaKeyPair("curve25519");
          const x = c.generateEddsaKeyPair("x25519");
          const same = (a, b) => a === b;
          return [
            same(c.pubJwkToPem(c.pubPemToJwk(ec.publicKey)), ec.publicKey),
            same(c.jwkToPem(c.pemToJwk(ec.privateKey)), ec.privateKey),
            same(c.pubRsaJwkToPem(c.pubRsaPemToJwk(keys.rsaPublic)), keys.rsaPublic),
            same(c.rsaJwkToPem(c.rsaPemToJwk(keys.rsaPrivate)), keys.rsaPrivate),
            same(c.pubEddsaJwkToPem(c.pubEddsaPemToJwk(ed.publicKey)), ed.publicKey),
            same(c.eddsaJwkToPem(c.eddsaPemToJwk(ed.privateKey)), ed.privateKey),
            same(c.pubEddsaJwkToPem(c.pubEddsaPemToJwk(x.publicKey)), x.publicKey),
            c.pemToJwk(ec.privateKey).crv,
            c.pubEddsaPemToJwk(x.publicKey).crv,
          ];
        })()`,
      );
      assert.deepEqual(out, [true, true, true, true, true, true, true, "P-384", "X25519"]);
    });

    it("gives RSA JWKs CCF's fields: n and e public, d p q dp dq qi private", () => {
      const pub = evaluate(interp, `ccf.crypto.pubRsaPemToJwk(keys.rsaPublic, "r")`) as Record<
        string,
        string
      >;
      assert.deepEqual(Object.keys(pub), ["e", "kid", "kty", "n"]);
      assert.equal(pub.e, "AQAB");
      assert.equal(pub.kty, "RSA");
      assert.equal(Buffer.from(pub.n, "base64url").length, 256);
      const priv = evaluate(interp, `ccf.crypto.rsaPemToJwk(keys.rsaPrivate)`) as Record<
        string,
        string
      >;
      assert.deepEqual(Object.keys(priv), ["d", "dp", "dq", "e", "kty", "n", "p", "q", "qi"]);
    });

    it("converts a JWK's own fields only; an extra kid or d is ignored in the public form", () => {
      assert.equal(
        evaluate(interp, `ccf.crypto.pubJwkToPem(${JSON.stringify({ ...P256_JWK, kid: "x" })})`),
        P256_PUBLIC_PEM,
      );
      assert.equal(
        evaluate(interp, `ccf.crypto.jwkToPem(${JSON.stringify(P256_JWK)})`),
        P256_PRIVATE_PEM,
      );
    });

    it("passes an explicit undefined kid through ToString, as CCF does", () => {
      assert.equal(
        (evaluate(interp, `ccf.crypto.pubPemToJwk(keys.p256Public, undefined)`) as { kid: string })
          .kid,
        "undefined",
      );
    });

    it("refuses a key of another family, a private key for a public one, or a bad JWK with InternalError", () => {
      for (const expr of [
        `ccf.crypto.pubPemToJwk(keys.rsaPublic)`,
        `ccf.crypto.pubRsaPemToJwk(keys.p256Public)`,
        `ccf.crypto.pubPemToJwk(keys.p256Private)`,
        `ccf.crypto.pemToJwk(keys.p256Public)`,
        `ccf.crypto.pubEddsaPemToJwk("garbage")`,
      ]) {
        throwsGuest(
          () => evaluate(interp, expr),
          "InternalError",
          /^Failed to convert pem to jwk: /,
        );
      }
      for (const expr of [
        `ccf.crypto.pubJwkToPem({ kty: "EC", crv: "P-256", x: "${P256_JWK.x}" })`,
        `ccf.crypto.pubJwkToPem({ kty: "RSA", crv: "P-256", x: "${P256_JWK.x}", y: "${P256_JWK.y}" })`,
        `ccf.crypto.pubJwkToPem({ kty: "EC", crv: "secp256k1", x: "${P256_JWK.x}", y: "${P256_JWK.y}" })`,
        `ccf.crypto.pubRsaJwkToPem({ kty: "RSA", n: 5, e: "AQAB" })`,
        `ccf.crypto.eddsaJwkToPem({ kty: "OKP", crv: "Ed448", x: "AA", d: "AA" })`,
        `ccf.crypto.jwkToPem(undefined)`,
      ]) {
        throwsGuest(
          () => evaluate(interp, expr),
          "InternalError",
          /^Failed to convert jwk to pem /,
        );
      }
    });

    it("checks argument counts: 1 or 2 for PEM to JWK, 1 for JWK to PEM", () => {
      throwsGuest(
        () => evaluate(interp, `ccf.crypto.pemToJwk()`),
        "TypeError",
        "Passed 0 arguments, but expected 1 or 2",
      );
      throwsGuest(
        () => evaluate(interp, `ccf.crypto.pubPemToJwk(keys.p256Public, "a", "b")`),
        "TypeError",
        "Passed 3 arguments, but expected 1 or 2",
      );
      throwsGuest(
        () => evaluate(interp, `ccf.crypto.jwkToPem({}, {})`),
        "TypeError",
        "Passed 2 arguments, but expected 1",
      );
    });
  });

  describe("X.509 checks", () => {
    it("isValidX509CertBundle and isValidX509CertChain answer as CCF's do", async () => {
      const caKey = EcKeyPair.generate();
      const ca = await createServiceCertificate(caKey, {
        validFrom: new Date(Date.now() - 60_000),
        validityDays: 10,
      });
      const leaf = await createEndorsedCertificate({
        subjectPublicKey: EcKeyPair.generate().publicKey,
        subjectName: "CN=leaf",
        issuerKey: caKey,
        issuerCertPem: ca,
        validFrom: new Date(Date.now() - 60_000),
        validityDays: 10,
      });
      const other = await createServiceCertificate(EcKeyPair.generate(), {
        validFrom: new Date(Date.now() - 60_000),
        validityDays: 10,
      });
      interp.define("certs", { ca, leaf, other });
      assert.deepEqual(
        evaluate(
          interp,
          `[
            ccf.crypto.isValidX509CertBundle(certs.leaf + certs.ca),
            ccf.crypto.isValidX509CertBundle("not a certificate"),
            ccf.crypto.isValidX509CertChain(certs.leaf, certs.ca),
            ccf.crypto.isValidX509CertChain(certs.leaf + certs.ca, certs.ca),
            ccf.crypto.isValidX509CertChain(certs.leaf, certs.other),
            ccf.crypto.isValidX509CertChain("", certs.ca),
          ]`,
        ),
        [true, false, true, true, false, false],
      );
      throwsGuest(
        () => evaluate(interp, `ccf.crypto.isValidX509CertChain(certs.leaf)`),
        "TypeError",
        "Passed 1 arguments, but expected 2",
      );
    });
  });
});
