// Paths and constants from the CCF-written fixture service (cose_flipflop_service) shared by the crypto tests.
import { readFileSync } from "node:fs";
import { join } from "node:path";

export const COMMON_DIR = join(
  import.meta.dirname,
  "../../../shared/fixtures/ccf-ledgers/cose_flipflop_service/common",
);

export function fixture(name: string): string {
  return readFileSync(join(COMMON_DIR, name), "utf8");
}

/** The Merkle root CCF signed at seqno 16 of ledger_15-46.committed. */
export const ROOT_AT_16 = "e05d50857029a0ae4f86b9563239b5b1f2097b76108e692034b16358221cea97";

/** The node that signed it; its certificate was endorsed by service_cert.pem. */
export const NODE_CERT_PEM = `-----BEGIN CERTIFICATE-----
MIIByTCCAVCgAwIBAgIQHgYdvhaU4oqn5yak1OesJDAKBggqhkjOPQQDAzAbMRkw
FwYDVQQDDBBDQ0YgVGVzdCBTZXJ2aWNlMB4XDTI1MDUxNDA5MzgyOVoXDTI1MDgx
MjA5MzgyOFowEzERMA8GA1UEAwwIQ0NGIE5vZGUwdjAQBgcqhkjOPQIBBgUrgQQA
IgNiAAQHZP1g2aHJK9BjNb8a1L9jRiNiAlczUaCSP/96mYNUjguzn51P7N46iUoA
DDUEFzJSUFyf8cM1zxuQstLcXLc9PJwhDL2HN7ws/Qzbb4Z8k3G1yRe4wMAEfZie
Do9vCxijYTBfMAwGA1UdEwEB/wQCMAAwHQYDVR0OBBYEFGsGK+WGP7hcl8/sKTgN
YIK7B2U8MB8GA1UdIwQYMBaAFGOM7cxAKjqDINga++n9fP/VYD3/MA8GA1UdEQQI
MAaHBH8AAAEwCgYIKoZIzj0EAwMDZwAwZAIwAzsWxyTdu4Atl143P5fK4s/lEno/
xlB0l5T2WK0zD5DlPSkWZLYSZaKWBZXqUjHIAjAcVwU8qpNQLl9HjRM62EOD3P6z
14KPB9ljcXW0FxUT5UUiUbeC/OJlxq4wL7ksiOg=
-----END CERTIFICATE-----
`;
