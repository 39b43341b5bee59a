// The crypto layer's public surface: hashing, randomness, keys, ECDSA, X.509, ids, AES-GCM, RSA-OAEP,
// recovery secret sharing, COSE.
export { fromHex, hmacSha256, sha256, sha384, toHex } from "./hash.js";
export { bytesFromWords, HmacSha256, hashPair, wordsFromBytes } from "./sha256.js";
export { type Rng, seededRng, systemRng } from "./rng.js";
export {
  curveByteLength,
  type EcCurve,
  EcKeyPair,
  type EcPublicKeyInfo,
  ecPublicKeyInfo,
  publicKeyFromPem,
} from "./keys.js";
export { type HashName, signData, signDigest, verifyData, verifyDigest } from "./ecdsa.js";
export {
  type CertificateInfo,
  certificateDer,
  certificateInfo,
  type CertificateSigningRequest,
  createCertificateSigningRequest,
  createEndorsedCertificate,
  endorseCertificateSigningRequest,
  parseX509Time,
  createSelfSignedCertificate,
  createServiceCertificate,
  parseCertificateSigningRequest,
  parseSubjectAltName,
  pemBundleSplit,
  renewServiceCertificate,
  type SubjectAltName,
  verifyCertificateIssued,
} from "./x509.js";
export { certificateId, nodeIdFromPublicKey } from "./ids.js";
export { aesGcmDecrypt, aesGcmEncrypt } from "./aes-gcm.js";
export { AesGcmKey } from "./gcm.js";
export { generateRsaKeyPair, rsaOaepUnwrap, rsaOaepWrap } from "./rsa.js";
export {
  combineShares,
  openGcmCipher,
  parseShare,
  sampleShares,
  sealGcmCipher,
  serialiseShare,
  SHARE_LENGTH,
  SHARE_LIMBS,
  SHARE_PRIME,
  type Share,
  wrappingKey,
} from "./sharing.js";
export {
  COSE_ALG,
  COSE_HEADER,
  type CoseHeaders,
  type CoseSign1,
  cborDecode,
  cborEncode,
  coseSign1Decode,
  coseSign1Sign,
  coseSign1Verify,
} from "./cose.js";
