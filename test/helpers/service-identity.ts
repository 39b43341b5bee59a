// A service identity and one node endorsed by it, from a seed: what in-process tests of signed
// ledgers, receipts and snapshots build their pipeline with (certificates valid from 2026-01-01
// for 90 days; node subject CN=CCF Node). `other` adds a second, unrelated service.

import {
  createEndorsedCertificate,
  createServiceCertificate,
  EcKeyPair,
  type Rng,
  seededRng,
} from "../../src/crypto/index.js";

export const VALID_FROM = new Date("2026-01-01T00:00:00Z");

export interface SeededIdentity {
  rng: Rng;
  nodeKey: EcKeyPair;
  serviceKey: EcKeyPair;
  serviceCert: string;
  nodeCert: string;
  /** A second service's key and certificate (when asked for). */
  other?: { key: EcKeyPair; cert: string };
}

export async function seededIdentity(
  seed: number,
  o: { other?: boolean } = {},
): Promise<SeededIdentity> {
  const rng = seededRng(seed);
  const nodeKey = EcKeyPair.generate("secp384r1", rng);
  const serviceKey = EcKeyPair.generate("secp384r1", rng);
  const otherKey = o.other === true ? EcKeyPair.generate("secp384r1", rng) : undefined;
  const serviceCert = await createServiceCertificate(serviceKey, {
    validFrom: VALID_FROM,
    validityDays: 90,
    rng,
  });
  const otherCert =
    otherKey === undefined
      ? undefined
      : await createServiceCertificate(otherKey, { validFrom: VALID_FROM, validityDays: 90, rng });
  const nodeCert = await createEndorsedCertificate({
    subjectPublicKey: nodeKey.publicKey,
    subjectName: "CN=CCF Node",
    issuerKey: serviceKey,
    issuerCertPem: serviceCert,
    validFrom: VALID_FROM,
    validityDays: 90,
    rng,
  });
  return {
    rng,
    nodeKey,
    serviceKey,
    serviceCert,
    nodeCert,
    ...(otherKey === undefined || otherCert === undefined
      ? {}
      : { other: { key: otherKey, cert: otherCert } }),
  };
}
