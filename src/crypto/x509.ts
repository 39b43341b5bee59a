// X.509 certificates shaped as CCF issues them (node self-signed, service CA, service-endorsed node),
// generated reproducibly, plus the few parsing checks the rest of ccf-ts needs.
import "reflect-metadata";
import {
  createHash,
  createPublicKey,
  verify as cryptoVerify,
  type KeyObject,
  X509Certificate as NodeX509,
  webcrypto,
} from "node:crypto";
import { isIP } from "node:net";
import { CertificationRequest } from "@peculiar/asn1-csr";
import { ECDSASigValue } from "@peculiar/asn1-ecc";
import { AsnConvert } from "@peculiar/asn1-schema";
import {
  AlgorithmIdentifier,
  Certificate as AsnCertificate,
  Extension,
  Extensions,
  SubjectKeyIdentifier,
  TBSCertificate,
  Validity,
  Version,
} from "@peculiar/asn1-x509";
import * as x509 from "@peculiar/x509";
import { CryptoError, FormatError } from "../errors.js";
import { type HashName, signData } from "./ecdsa.js";
import { curveByteLength, type EcKeyPair, publicKeyFromPem } from "./keys.js";
import { type Rng, systemRng } from "./rng.js";

// @peculiar/x509 looks its provider up globally; node's webcrypto matches the Crypto interface.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export type SubjectAltName = { type: "ip" | "dns"; value: string };

const SAN_PREFIXES: Record<string, SubjectAltName["type"]> = {
  ipaddress: "ip",
  ip: "ip",
  dnsname: "dns",
  dns: "dns",
};

/** Parses CCF's config form (`iPAddress:127.0.0.1`, `dNSName:foo.com`) or OpenSSL's (`IP:…`, `DNS:…`). */
export function parseSubjectAltName(s: string): SubjectAltName {
  const colon = s.indexOf(":");
  const type = colon < 0 ? undefined : SAN_PREFIXES[s.slice(0, colon).toLowerCase()];
  const value = colon < 0 ? "" : s.slice(colon + 1);
  if (type === "ip" && isIP(value) !== 0) return { type, value };
  if (type === "dns" && /^[A-Za-z0-9*_.-]+$/.test(value)) return { type, value };
  throw new FormatError(
    "InvalidSubjectAltName",
    `invalid subject alternative name "${s}": expected iPAddress:<ip> or dNSName:<name>`,
  );
}

/**
 * Parses "CN=CCF Node,O=Org" as CCF does (split on ",", then on the first "="), one RDN per pair in
 * the order given, with OpenSSL's encodings: UTF8String, except PrintableString for countryName.
 * (@peculiar/x509's own parser would pick PrintableString, so names would not match CCF's bytes.)
 */
function parseSubjectName(name: string): x509.Name {
  const rdns: x509.JsonNameParams = [];
  for (const part of name.split(",")) {
    const eq = part.indexOf("=");
    const type = eq < 0 ? "" : part.slice(0, eq).trim();
    const value = eq < 0 ? "" : part.slice(eq + 1).trim();
    if (type === "" || value === "") {
      throw new FormatError(
        "InvalidSubjectName",
        `invalid subject name "${name}": expected TYPE=value[,TYPE=value]`,
      );
    }
    rdns.push({ [type]: [type === "C" ? { printableString: value } : { utf8String: value }] });
  }
  try {
    return new x509.Name(rdns);
  } catch (e) {
    throw new FormatError("InvalidSubjectName", `invalid subject name "${name}"`, { cause: e });
  }
}

const DAY_MS = 86_400_000;

interface CertificateParams {
  subject: x509.Name;
  issuer: x509.Name;
  subjectSpki: Uint8Array;
  signer: EcKeyPair;
  validFrom: Date;
  validityDays: number;
  extensions: x509.Extension[];
  rng: Rng;
}

function signatureHash(signer: EcKeyPair): HashName {
  return signer.curve === "secp384r1" ? "sha384" : "sha256";
}

function serialNumberHex(rng: Rng): string {
  // 16 random bytes, as CCF draws; an all-zero draw would make @peculiar/x509 pick its own.
  const serial = Buffer.from(rng.bytes(16));
  if (serial.every((b) => b === 0)) serial[15] = 1;
  return serial.toString("hex");
}

/**
 * Builds the certificate twice: once with a placeholder signature to obtain the exact TBS bytes,
 * then with our deterministic (RFC 6979) signature over them, since webcrypto's ECDSA is randomised.
 */
async function issueCertificate(p: CertificateParams): Promise<string> {
  if (!Number.isFinite(p.validityDays) || p.validityDays <= 0) {
    throw new CryptoError(
      "InvalidValidity",
      `validity must be a positive number of days, got ${p.validityDays}`,
    );
  }
  // Whole seconds: X.509 times have no sub-second part, and CCF counts the last second inclusive.
  const notBefore = new Date(Math.floor(p.validFrom.getTime() / 1000) * 1000);
  const notAfter = new Date(notBefore.getTime() + p.validityDays * DAY_MS - 1000);
  const hash = signatureHash(p.signer);
  const pointSize = curveByteLength(p.signer.curve);
  const base = {
    serialNumber: serialNumberHex(p.rng),
    subject: p.subject,
    issuer: p.issuer,
    notBefore,
    notAfter,
    publicKey: p.subjectSpki,
    extensions: p.extensions,
    signingAlgorithm: {
      name: "ECDSA",
      hash: hash === "sha384" ? "SHA-384" : "SHA-256",
      namedCurve: p.signer.curve === "secp384r1" ? "P-384" : "P-256",
    },
  };
  const draft = await x509.X509CertificateGenerator.create({
    ...base,
    signature: new Uint8Array(2 * pointSize),
  });
  const signature = signData(p.signer, tbsCertificate(new Uint8Array(draft.rawData)), hash);
  const cert = await x509.X509CertificateGenerator.create({ ...base, signature });
  const der = Buffer.from(cert.rawData);
  if (!new NodeX509(der).verify(p.signer.publicKey)) {
    throw new CryptoError(
      "CertificateSigningFailed",
      "issued certificate does not verify under its issuer key",
    );
  }
  return derToPem(der);
}

function derToPem(der: Buffer): string {
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join("\n")}\n-----END CERTIFICATE-----\n`;
}

interface DerElement {
  tag: number;
  /** Offset of the element's first header byte. */
  offset: number;
  /** Offset of the contents. */
  start: number;
  /** Offset just past the contents. */
  end: number;
}

/** Reads one DER element header; enough to walk SEQUENCEs we built or got from node:crypto. */
function derElement(der: Uint8Array, offset: number): DerElement {
  const tag = der[offset];
  let length = der[offset + 1];
  let start = offset + 2;
  if (tag === undefined || length === undefined)
    throw new FormatError("InvalidDer", "truncated DER");
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n === 0 || n > 4) throw new FormatError("InvalidDer", "unsupported DER length");
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + (der[start + i] ?? 0);
    start += n;
  }
  const end = start + length;
  if (end > der.length) throw new FormatError("InvalidDer", "truncated DER");
  return { tag, offset, start, end };
}

/** The contents of the SubjectPublicKeyInfo's BIT STRING: what RFC 5280's key identifier hashes. */
function subjectPublicKeyBits(spki: Uint8Array): Uint8Array {
  // SPKI ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
  const outer = derElement(spki, 0);
  const algorithm = derElement(spki, outer.start);
  const bits = derElement(spki, algorithm.end);
  if (outer.tag !== 0x30 || algorithm.tag !== 0x30 || bits.tag !== 0x03) {
    throw new FormatError("InvalidKey", "not a SubjectPublicKeyInfo");
  }
  // Skip the BIT STRING's unused-bits octet.
  return spki.subarray(bits.start + 1, bits.end);
}

/** The tbsCertificate bytes: the first element of Certificate ::= SEQUENCE { tbs, alg, sig }. */
function tbsCertificate(certDer: Uint8Array): Uint8Array {
  const tbs = derElement(certDer, derElement(certDer, 0).start);
  return certDer.subarray(tbs.offset, tbs.end);
}

/** SHA-1 of the public key bits, OpenSSL's `subjectKeyIdentifier=hash` (RFC 5280 method 1). */
function keyIdentifier(spki: Uint8Array): string {
  return createHash("sha1").update(subjectPublicKeyBits(spki)).digest("hex");
}

function sanExtension(sans: SubjectAltName[]): x509.Extension[] {
  return sans.length === 0
    ? []
    : [new x509.SubjectAlternativeNameExtension(sans.map((s) => ({ ...s })))];
}

/**
 * A self-signed certificate, by default a node's (not a CA). With `ca: true` it carries CCF's
 * CA constraints (CA:TRUE, pathlen 1).
 */
export async function createSelfSignedCertificate(
  key: EcKeyPair,
  opts: {
    subjectName: string;
    validFrom: Date;
    validityDays: number;
    sans?: SubjectAltName[];
    ca?: boolean;
    rng?: Rng;
  },
): Promise<string> {
  const ski = keyIdentifier(key.publicKeyDer);
  const ca = opts.ca ?? false;
  const name = parseSubjectName(opts.subjectName);
  return issueCertificate({
    subject: name,
    issuer: name,
    subjectSpki: key.publicKeyDer,
    signer: key,
    validFrom: opts.validFrom,
    validityDays: opts.validityDays,
    extensions: [
      ca
        ? new x509.BasicConstraintsExtension(true, 1, true)
        : new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.SubjectKeyIdentifierExtension(ski),
      new x509.AuthorityKeyIdentifierExtension(ski),
      ...sanExtension(opts.sans ?? []),
    ],
    rng: opts.rng ?? systemRng,
  });
}

/** CCF's service identity: a self-signed CA (CA:TRUE, pathlen 1) with SKI and AKI. */
export async function createServiceCertificate(
  key: EcKeyPair,
  opts: { subjectName?: string; validFrom: Date; validityDays: number; rng?: Rng },
): Promise<string> {
  return createSelfSignedCertificate(key, {
    subjectName: opts.subjectName ?? "CN=CCF Service",
    validFrom: opts.validFrom,
    validityDays: opts.validityDays,
    ca: true,
    ...(opts.rng === undefined ? {} : { rng: opts.rng }),
  });
}

/** A node certificate endorsed by the service identity: not a CA, AKI = the issuer's SKI, SANs. */
export async function createEndorsedCertificate(opts: {
  subjectPublicKey: KeyObject | string;
  subjectName: string;
  sans?: SubjectAltName[];
  issuerKey: EcKeyPair;
  issuerCertPem: string;
  validFrom: Date;
  validityDays: number;
  rng?: Rng;
  /** A CA certificate (the endorsement of a previous service identity), not a node's. */
  ca?: boolean;
}): Promise<string> {
  const subjectKey =
    typeof opts.subjectPublicKey === "string"
      ? publicKeyFromPem(opts.subjectPublicKey)
      : opts.subjectPublicKey;
  const subjectSpki = subjectKey.export({ type: "spki", format: "der" });
  let issuerCert: x509.X509Certificate;
  try {
    issuerCert = new x509.X509Certificate(opts.issuerCertPem);
  } catch (e) {
    throw new FormatError("InvalidCertificate", "cannot parse issuer certificate PEM", {
      cause: e,
    });
  }
  if (!Buffer.from(issuerCert.publicKey.rawData).equals(opts.issuerKey.publicKeyDer)) {
    throw new CryptoError(
      "KeyMismatch",
      "issuer key does not match the issuer certificate's public key",
    );
  }
  const issuerSki =
    issuerCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId ??
    keyIdentifier(opts.issuerKey.publicKeyDer);
  return issueCertificate({
    subject: parseSubjectName(opts.subjectName),
    issuer: issuerCert.subjectName,
    subjectSpki,
    signer: opts.issuerKey,
    validFrom: opts.validFrom,
    validityDays: opts.validityDays,
    extensions: [
      new x509.BasicConstraintsExtension(opts.ca === true, undefined, true),
      new x509.SubjectKeyIdentifierExtension(keyIdentifier(subjectSpki)),
      new x509.AuthorityKeyIdentifierExtension(issuerSki),
      ...sanExtension(opts.sans ?? []),
    ],
    rng: opts.rng ?? systemRng,
  });
}

function parseCertificate(pem: string): NodeX509 {
  try {
    return new NodeX509(pem);
  } catch (e) {
    throw new FormatError("InvalidCertificate", "cannot parse certificate PEM", { cause: e });
  }
}

/** DER of the (first) certificate in `pem`. */
export function certificateDer(pem: string): Buffer {
  return parseCertificate(pem).raw;
}

export interface CertificateInfo {
  subject: string;
  issuer: string;
  validFrom: Date;
  validTo: Date;
  sans: SubjectAltName[];
  publicKeyDer: Buffer;
  isCa: boolean;
}

function parseSanList(text: string | undefined): SubjectAltName[] {
  if (text === undefined) return [];
  const sans: SubjectAltName[] = [];
  for (const entry of text.split(", ")) {
    if (entry.startsWith("IP Address:"))
      sans.push({ type: "ip", value: entry.slice("IP Address:".length) });
    else if (entry.startsWith("DNS:"))
      sans.push({ type: "dns", value: entry.slice("DNS:".length) });
  }
  return sans;
}

export function certificateInfo(pem: string): CertificateInfo {
  const cert = parseCertificate(pem);
  // node:crypto parses the key only when asked: a certificate can parse with a key that does not.
  let publicKeyDer: Buffer;
  try {
    publicKeyDer = cert.publicKey.export({ type: "spki", format: "der" });
  } catch (e) {
    throw new FormatError("InvalidCertificate", "cannot parse the certificate's public key", {
      cause: e,
    });
  }
  return {
    subject: cert.subject,
    issuer: cert.issuer,
    validFrom: new Date(cert.validFrom),
    validTo: new Date(cert.validTo),
    sans: parseSanList(cert.subjectAltName),
    publicKeyDer,
    isCa: cert.ca,
  };
}

/** Whether `issuerPem` names the issuer of `certPem` and its key verifies the signature. */
export function verifyCertificateIssued(certPem: string, issuerPem: string): boolean {
  try {
    const cert = new NodeX509(certPem);
    const issuer = new NodeX509(issuerPem);
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** Splits concatenated PEM certificates, each returned with a trailing newline. */
export function pemBundleSplit(text: string): string[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => `${b}\n`);
}

/**
 * A PKCS#10 certificate signing request for `key`: what a joining node puts in its nodes.info
 * record (`certificate_signing_request`) so that governance can endorse it later.
 */
export async function createCertificateSigningRequest(
  key: EcKeyPair,
  opts: { subjectName: string; sans?: SubjectAltName[] },
): Promise<string> {
  const curve = key.curve === "secp384r1" ? "P-384" : "P-256";
  const algorithm = { name: "ECDSA", namedCurve: curve };
  const privateKey = await webcrypto.subtle.importKey(
    "pkcs8",
    key.privateKey.export({ type: "pkcs8", format: "der" }),
    algorithm,
    false,
    ["sign"],
  );
  const publicKey = await webcrypto.subtle.importKey("spki", key.publicKeyDer, algorithm, true, [
    "verify",
  ]);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: opts.subjectName,
    keys: { privateKey, publicKey },
    signingAlgorithm: { name: "ECDSA", hash: curve === "P-384" ? "SHA-384" : "SHA-256" },
    extensions: sanExtension(opts.sans ?? []),
  });
  return csr.toString("pem");
}

export interface CertificateSigningRequest {
  subjectName: string;
  sans: SubjectAltName[];
  publicKeyPem: string;
}

/** Parses a CSR and checks its self-signature; a FormatError names what is wrong. */
export async function parseCertificateSigningRequest(
  pem: string,
): Promise<CertificateSigningRequest> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch (e) {
    throw new FormatError("InvalidCsr", "cannot parse the certificate signing request", {
      cause: e,
    });
  }
  if (!(await csr.verify())) {
    throw new FormatError("InvalidCsr", "the certificate signing request's signature is invalid");
  }
  // "2.5.29.17": subjectAltName.
  const san = csr.getExtension("2.5.29.17") as x509.SubjectAlternativeNameExtension | null;
  const sans: SubjectAltName[] = [];
  for (const n of san?.names.items ?? []) {
    if (n.type === "ip" || n.type === "dns") sans.push({ type: n.type, value: n.value });
  }
  const spki = Buffer.from(csr.publicKey.rawData);
  const publicKeyPem = `-----BEGIN PUBLIC KEY-----\n${
    spki
      .toString("base64")
      .match(/.{1,64}/g)
      ?.join("\n") ?? ""
  }\n-----END PUBLIC KEY-----\n`;
  return { subjectName: csr.subject, sans, publicKeyPem };
}

/**
 * The certificate the service endorses for a node's CSR (governance's
 * `ccf.network.generateEndorsedCertificate`), built and signed synchronously: a constitution's
 * `apply` calls it as a plain function. Subject, key and SANs come from the CSR, whose own
 * signature must verify. `validFrom` is an X.509 time ("YYYYMMDDhhmmssZ" or "YYMMDDhhmmssZ", as
 * CCF's constitution passes it) or ISO 8601.
 */
export function endorseCertificateSigningRequest(opts: {
  csrPem: string;
  issuerKey: EcKeyPair;
  issuerCertPem: string;
  validFrom: string;
  validityDays: number;
  rng?: Rng;
}): string {
  let request: CertificationRequest;
  try {
    request = AsnConvert.parse(pemToDer(opts.csrPem), CertificationRequest);
  } catch (e) {
    throw new FormatError("InvalidCsr", "cannot parse the certificate signing request", {
      cause: e,
    });
  }
  const info = request.certificationRequestInfo;
  const spkiDer = Buffer.from(AsnConvert.serialize(info.subjectPKInfo));
  const subjectKey = createPublicKey({ key: spkiDer, format: "der", type: "spki" });
  const infoDer = Buffer.from(request.certificationRequestInfoRaw ?? AsnConvert.serialize(info));
  const csrHash = request.signatureAlgorithm.algorithm === OID_ECDSA_SHA384 ? "sha384" : "sha256";
  if (
    !cryptoVerify(
      csrHash,
      infoDer,
      { key: subjectKey, dsaEncoding: "der" },
      Buffer.from(request.signature),
    )
  ) {
    throw new FormatError("InvalidCsr", "the certificate signing request's signature is invalid");
  }
  if (!Number.isFinite(opts.validityDays) || opts.validityDays <= 0) {
    throw new CryptoError("InvalidValidity", `validity must be a positive number of days`);
  }
  const notBefore = parseX509Time(opts.validFrom);
  const notAfter = new Date(notBefore.getTime() + opts.validityDays * DAY_MS - 1000);
  const issuer = AsnConvert.parse(certificateDer(opts.issuerCertPem), AsnCertificate);
  const hash = signatureHash(opts.issuerKey);
  const algorithm = new AlgorithmIdentifier({
    algorithm: hash === "sha384" ? OID_ECDSA_SHA384 : OID_ECDSA_SHA256,
  });
  const sanRequested = info.attributes
    .flatMap((a) => a.values)
    .flatMap((v) => {
      try {
        return AsnConvert.parse(v, Extensions);
      } catch {
        return [];
      }
    })
    .filter((e) => e.extnID === OID_SUBJECT_ALT_NAME);
  const issuerSki = issuer.tbsCertificate.extensions?.find(
    (e) => e.extnID === OID_SUBJECT_KEY_IDENTIFIER,
  )?.extnValue.buffer;
  const rawExtensions = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.SubjectKeyIdentifierExtension(keyIdentifier(spkiDer)),
    new x509.AuthorityKeyIdentifierExtension(
      issuerSki === undefined
        ? keyIdentifier(opts.issuerKey.publicKeyDer)
        : Buffer.from(AsnConvert.parse(issuerSki, SubjectKeyIdentifier).buffer).toString("hex"),
    ),
  ].map((e) => AsnConvert.parse(e.rawData, Extension));
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: positiveInteger(Buffer.from(serialNumberHex(opts.rng ?? systemRng), "hex")),
    signature: algorithm,
    issuer: issuer.tbsCertificate.subject,
    validity: new Validity({ notBefore, notAfter }),
    subject: info.subject,
    subjectPublicKeyInfo: info.subjectPKInfo,
    extensions: new Extensions([...rawExtensions, ...sanRequested]),
  });
  const tbsDer = Buffer.from(AsnConvert.serialize(tbs));
  const p1363 = signData(opts.issuerKey, tbsDer, hash);
  const half = p1363.length / 2;
  const sigValue = new ECDSASigValue({
    r: positiveInteger(p1363.subarray(0, half)),
    s: positiveInteger(p1363.subarray(half)),
  });
  const cert = new AsnCertificate({
    tbsCertificate: tbs,
    signatureAlgorithm: algorithm,
    signatureValue: AsnConvert.serialize(sigValue),
  });
  const der = Buffer.from(AsnConvert.serialize(cert));
  if (!new NodeX509(der).verify(opts.issuerKey.publicKey)) {
    throw new CryptoError("CertificateSigningFailed", "issued certificate does not verify");
  }
  return derToPem(der);
}

/**
 * The service certificate renewed (governance's `ccf.network.generateNetworkCertificate`), built
 * and signed synchronously: the current one with a new serial number and validity, self-signed
 * again by the same service key, so subject, key and extensions (CA, SKI, AKI) are unchanged and
 * whatever the old certificate endorsed still chains to the new one. `validFrom` as
 * `endorseCertificateSigningRequest` takes it.
 */
export function renewServiceCertificate(opts: {
  key: EcKeyPair;
  certPem: string;
  validFrom: string;
  validityDays: number;
  rng?: Rng;
}): string {
  if (!Number.isFinite(opts.validityDays) || opts.validityDays <= 0) {
    throw new CryptoError("InvalidValidity", `validity must be a positive number of days`);
  }
  const current = AsnConvert.parse(certificateDer(opts.certPem), AsnCertificate).tbsCertificate;
  const spki = Buffer.from(AsnConvert.serialize(current.subjectPublicKeyInfo));
  if (!spki.equals(opts.key.publicKeyDer)) {
    throw new CryptoError("KeyMismatch", "the service key does not match the service certificate");
  }
  const notBefore = parseX509Time(opts.validFrom);
  const notAfter = new Date(notBefore.getTime() + opts.validityDays * DAY_MS - 1000);
  const hash = signatureHash(opts.key);
  const algorithm = new AlgorithmIdentifier({
    algorithm: hash === "sha384" ? OID_ECDSA_SHA384 : OID_ECDSA_SHA256,
  });
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: positiveInteger(Buffer.from(serialNumberHex(opts.rng ?? systemRng), "hex")),
    signature: algorithm,
    issuer: current.subject,
    validity: new Validity({ notBefore, notAfter }),
    subject: current.subject,
    subjectPublicKeyInfo: current.subjectPublicKeyInfo,
    ...(current.extensions === undefined ? {} : { extensions: current.extensions }),
  });
  const p1363 = signData(opts.key, Buffer.from(AsnConvert.serialize(tbs)), hash);
  const half = p1363.length / 2;
  const signatureValue = AsnConvert.serialize(
    new ECDSASigValue({
      r: positiveInteger(p1363.subarray(0, half)),
      s: positiveInteger(p1363.subarray(half)),
    }),
  );
  const der = Buffer.from(
    AsnConvert.serialize(
      new AsnCertificate({ tbsCertificate: tbs, signatureAlgorithm: algorithm, signatureValue }),
    ),
  );
  if (!new NodeX509(der).verify(opts.key.publicKey)) {
    throw new CryptoError("CertificateSigningFailed", "renewed certificate does not verify");
  }
  return derToPem(der);
}

const OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384 = "1.2.840.10045.4.3.3";
const OID_SUBJECT_ALT_NAME = "2.5.29.17";
const OID_SUBJECT_KEY_IDENTIFIER = "2.5.29.14";

/** A DER INTEGER's content for an unsigned big-endian value: no leading zeros, sign bit clear. */
function positiveInteger(bytes: Uint8Array): ArrayBuffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const trimmed = bytes.subarray(i);
  const out =
    (trimmed[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : Buffer.from(trimmed);
  return out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength);
}

function pemToDer(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s/g, ""), "base64");
}

/** "YYYYMMDDhhmmssZ" (GeneralizedTime), "YYMMDDhhmmssZ" (UTCTime) or ISO 8601. */
export function parseX509Time(text: string): Date {
  const g = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  const u = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  const m = g ?? u;
  let date: Date;
  if (m !== null) {
    const n = (i: number): number => Number(m[i]);
    const year = g !== null ? n(1) : n(1) < 50 ? 2000 + n(1) : 1900 + n(1);
    date = new Date(Date.UTC(year, n(2) - 1, n(3), n(4), n(5), n(6)));
  } else {
    date = new Date(text);
  }
  if (Number.isNaN(date.getTime())) {
    throw new FormatError("InvalidTime", `${JSON.stringify(text)} is not a valid time`);
  }
  return date;
}
