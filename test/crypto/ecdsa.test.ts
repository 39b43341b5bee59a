import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { p384 } from "@noble/curves/nist.js";
import {
  EcKeyPair,
  fromHex,
  sha256,
  signData,
  signDigest,
  verifyData,
  verifyDigest,
} from "../../src/crypto/index.js";
import { NODE_CERT_PEM, ROOT_AT_16 } from "./fixtures.js";

// RFC 6979 appendix A.2.6 (ECDSA, 384 bits, prime field).
const RFC6979_P384 = {
  x: "6B9D3DAD2E1B8C1C05B19875B6659F4DE23C3B667BF297BA9AA47740787137D896D5724E4C70A825F872C9EA60D2EDF5",
  Ux: "EC3A4E415B4E19A4568618029F427FA5DA9A8BC4AE92E02E06AAE5286B300C64DEF8F0EA9055866064A254515480BC13",
  Uy: "8015D9B72D7D57244EA8EF9AC0C621896708A59367F9DFB9F54CA84B3F1C9DB1288B231C3AE0D4FE7344FD2533264720",
  sha256Sample: {
    r: "21B13D1E013C7FA1392D03C5F99AF8B30C570C6F98D4EA8E354B63A21D3DAA33BDE1E888E63355D92FA2B3C36D8FB2CD",
    s: "F3AA443FB107745BF4BD77CB3891674632068A10CA67E3D45DB2266FA7D1FEEBEFDC63ECCD1AC42EC0CB8668A4FA0AB0",
  },
  sha384Sample: {
    r: "94EDBB92A5ECB8AAD4736E56C691916B3F88140666CE9FA73D64C4EA95AD133C81A648152E44ACF96E36DD1E80FABE46",
    s: "99EF4AEB15F178CEA1FE40DB2603138F130E740A19624526203B6351D0A3A94FA329C145786E679E7B82C71A38628AC8",
  },
};

const rfcKey = () => EcKeyPair.fromScalar("secp384r1", fromHex(RFC6979_P384.x));

function flipBit(b: Uint8Array, index: number): Buffer {
  const out = Buffer.from(b);
  out[index] = (out[index] ?? 0) ^ 0x01;
  return out;
}

// CCF's node signature over the root at seqno 16 (public:ccf.internal.signatures), base64 DER.
const CCF_NODE_SIG =
  "MGYCMQD9r/EHk37sl478kCLFKH5XLh96bvwDJED3Qjg5xUu//KM2TyIlUTnVUdH68aRr34MCMQDunvo69wXcBLaPmRJPdEQGenCZwY0f9E+iqJRerbm1GWtyGFnkCwnibWV3TqzITRI=";

describe("ECDSA over a digest", () => {
  it("derives RFC 6979 A.2.6's public key from its private key", () => {
    const key = rfcKey();
    assert.equal(
      Buffer.from(key.publicPoint).toString("hex").toUpperCase(),
      `04${RFC6979_P384.Ux}${RFC6979_P384.Uy}`,
    );
  });

  it("signs SHA-256('sample') with P-384 exactly as RFC 6979 A.2.6 publishes", () => {
    const key = rfcKey();
    const digest = sha256(Buffer.from("sample"));
    const der = signDigest(key, digest);
    const sig = p384.Signature.fromBytes(der, "der");
    assert.equal(sig.r.toString(16).toUpperCase().padStart(96, "0"), RFC6979_P384.sha256Sample.r);
    // The published s is in the high half: the signer must not normalise it.
    assert.equal(sig.s.toString(16).toUpperCase().padStart(96, "0"), RFC6979_P384.sha256Sample.s);
    assert.equal(verifyDigest(key.publicKey, digest, der), true);
  });

  it("rejects a signature or digest with one bit flipped", () => {
    const key = rfcKey();
    const digest = sha256(Buffer.from("sample"));
    const der = signDigest(key, digest);
    assert.equal(verifyDigest(key.publicKey, digest, flipBit(der, der.length - 1)), false);
    assert.equal(verifyDigest(key.publicKey, flipBit(digest, 0), der), false);
  });

  it("returns false, not an exception, for malformed signatures, digests and keys", () => {
    const key = rfcKey();
    const digest = sha256(Buffer.from("sample"));
    const der = signDigest(key, digest);
    assert.equal(verifyDigest(key.publicKey, digest, new Uint8Array(0)), false);
    assert.equal(verifyDigest(key.publicKey, digest, Buffer.from("not a signature")), false);
    assert.equal(verifyDigest(key.publicKey, digest.subarray(0, 31), der), false);
    assert.equal(verifyDigest("not a pem", digest, der), false);
  });

  it("is deterministic", () => {
    const key = rfcKey();
    const digest = sha256(Buffer.from("root"));
    assert.deepEqual(signDigest(key, digest), signDigest(key, digest));
  });

  it("verifies the signature a CCF node wrote over the Merkle root at seqno 16", () => {
    const sig = Buffer.from(CCF_NODE_SIG, "base64");
    const root = fromHex(ROOT_AT_16);
    assert.equal(verifyDigest(NODE_CERT_PEM, root, sig), true);
    assert.equal(verifyDigest(NODE_CERT_PEM, flipBit(root, 31), sig), false);
  });

  it("signs and verifies with a P-256 key", () => {
    const key = EcKeyPair.generate("secp256r1");
    const digest = sha256(Buffer.from("p256"));
    const der = signDigest(key, digest);
    assert.equal(verifyDigest(key.publicKeyPem, digest, der), true);
    assert.equal(verifyDigest(rfcKey().publicKey, digest, der), false);
  });
});

describe("ECDSA over data", () => {
  it("signs 'sample' with P-384/SHA-384 exactly as RFC 6979 A.2.6 publishes, in P1363 form", () => {
    const sig = signData(rfcKey(), Buffer.from("sample"), "sha384");
    assert.equal(
      sig.toString("hex").toUpperCase(),
      RFC6979_P384.sha384Sample.r + RFC6979_P384.sha384Sample.s,
    );
  });

  it("round-trips through node:crypto's verifier and rejects tampering", () => {
    const key = EcKeyPair.generate();
    const data = Buffer.from("some data");
    const sig = signData(key, data);
    assert.equal(sig.length, 96);
    assert.equal(verifyData(key.publicKey, data, sig), true);
    assert.equal(verifyData(key.publicKeyPem, data, sig), true);
    assert.equal(verifyData(key.publicKey, Buffer.from("other data"), sig), false);
    assert.equal(verifyData(key.publicKey, data, flipBit(sig, 10)), false);
    assert.equal(verifyData(key.publicKey, data, sig, "sha256"), false);
    assert.equal(verifyData(key.publicKey, data, sig.subarray(1)), false);
  });

  it("works with P-256 and SHA-256", () => {
    const key = EcKeyPair.generate("secp256r1");
    const sig = signData(key, Buffer.from("x"), "sha256");
    assert.equal(sig.length, 64);
    assert.equal(verifyData(key.publicKey, Buffer.from("x"), sig, "sha256"), true);
  });
});
