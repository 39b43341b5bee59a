// `ccf-ts keygen --name NAME [--gen-enc-key]`: an identity as CCF's keygenerator.sh makes it: a
// P-384 key and a self-signed certificate `CN=NAME` (NAME_privk.pem, NAME_cert.pem), and with
// --gen-enc-key an RSA-2048 encryption key pair (NAME_enc_pubk.pem, NAME_enc_privk.pem).

import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createSelfSignedCertificate, EcKeyPair, generateRsaKeyPair } from "../crypto/index.js";
import { CcfError } from "../errors.js";

const NAME = /^[A-Za-z0-9_.-]+$/;

export interface KeygenOptions {
  name: string;
  genEncKey?: boolean;
  dir?: string;
  curve?: "secp384r1" | "secp256r1";
  validityDays?: number;
}

export async function keygen(opts: KeygenOptions): Promise<string[]> {
  if (!NAME.test(opts.name)) {
    throw new CcfError(
      "InvalidArgument",
      `--name ${JSON.stringify(opts.name)}: use letters, digits, '_', '.', '-'`,
    );
  }
  const dir = opts.dir ?? ".";
  const files = [join(dir, `${opts.name}_cert.pem`), join(dir, `${opts.name}_privk.pem`)];
  if (opts.genEncKey === true) {
    files.push(join(dir, `${opts.name}_enc_pubk.pem`), join(dir, `${opts.name}_enc_privk.pem`));
  }
  const existing = files.filter((f) => existsSync(f));
  if (existing.length > 0)
    throw new CcfError("FileExists", `${existing.join(", ")} already exists`);
  const key = EcKeyPair.generate(opts.curve ?? "secp384r1");
  const cert = await createSelfSignedCertificate(key, {
    subjectName: `CN=${opts.name}`,
    validFrom: new Date(),
    validityDays: opts.validityDays ?? 365,
  });
  writeFileSync(files[0], cert);
  writeFileSync(files[1], key.privateKeyPem, { mode: 0o600 });
  if (opts.genEncKey === true) {
    const enc = generateRsaKeyPair(2048);
    writeFileSync(files[2], enc.publicKeyPem);
    writeFileSync(files[3], enc.privateKeyPem, { mode: 0o600 });
  }
  return files;
}
