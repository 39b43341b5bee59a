// The first transaction of a new service (CCF's `/node/create`): the service identity (Opening),
// the initial members, the service configuration, the constitution, and the starting node itself,
// trusted, with its endorsed certificate and the virtual measurement it runs.

import { certificateId } from "../crypto/index.js";
import { encodeValue, idKey, SINGLETON_KEY, Tables, type Tx } from "../kv/index.js";
import { type AppBundle, writeBundle } from "./bundle.js";
import { VIRTUAL_MEASUREMENT } from "./identity.js";

export interface GenesisMember {
  cert: string;
  encryptionPublicKey?: string;
  memberData?: unknown;
  recoveryRole?: "NonParticipant" | "Participant" | "Owner";
}

export interface GenesisArgs {
  serviceCert: string;
  serviceData?: unknown;
  /** The TxID of this transaction, "2.1" for a new service. */
  createTxId: string;
  members: GenesisMember[];
  configuration: Record<string, unknown>;
  constitution: string;
  node: {
    id: string;
    info: Record<string, unknown>;
    endorsedCert: string;
    hostData: string;
    /** The first node's virtual measurement (default: CCF's), allowed to join from the start. */
    measurement?: string;
  };
  /** Beyond CCF: users, an app and an open service straight from genesis (sandbox convenience). */
  users?: Array<{ cert: string; userData?: unknown }>;
  app?: AppBundle;
  open?: boolean;
}

function put(tx: Tx, table: string, key: Uint8Array, value: unknown): void {
  tx.map(table).set(key, encodeValue(table, value));
}

export function writeGenesis(tx: Tx, g: GenesisArgs): void {
  const service: Record<string, unknown> = {
    cert: g.serviceCert,
    current_service_create_txid: g.createTxId,
    recovery_count: 0,
    status: g.open === true ? "Open" : "Opening",
  };
  if (g.serviceData !== undefined) service.service_data = g.serviceData;
  put(tx, Tables.SERVICE, SINGLETON_KEY, service);
  for (const m of g.members) {
    const id = idKey(certificateId(m.cert));
    put(tx, Tables.MEMBER_CERTS, id, m.cert);
    if (m.encryptionPublicKey !== undefined) {
      put(tx, Tables.MEMBER_ENCRYPTION_KEYS, id, m.encryptionPublicKey);
    }
    const info: Record<string, unknown> = { status: "Accepted" };
    if (m.memberData !== undefined) info.member_data = m.memberData;
    if (m.recoveryRole !== undefined) info.recovery_role = m.recoveryRole;
    put(tx, Tables.MEMBER_INFO, id, info);
    put(tx, Tables.MEMBER_ACKS, id, { state_digest: "" });
  }
  put(tx, Tables.CONFIGURATION, SINGLETON_KEY, g.configuration);
  put(tx, Tables.CONSTITUTION, SINGLETON_KEY, g.constitution);
  put(tx, Tables.NODES, idKey(g.node.id), g.node.info);
  put(tx, Tables.NODE_ENDORSED_CERTIFICATES, idKey(g.node.id), g.node.endorsedCert);
  put(
    tx,
    Tables.VIRTUAL_MEASUREMENTS,
    Buffer.from(g.node.measurement ?? VIRTUAL_MEASUREMENT),
    "AllowedToJoin",
  );
  put(tx, Tables.VIRTUAL_HOST_DATA, Buffer.from(g.node.hostData), "");
  for (const u of g.users ?? []) {
    const id = idKey(certificateId(u.cert));
    put(tx, Tables.USER_CERTS, id, u.cert);
    put(tx, Tables.USER_INFO, id, u.userData === undefined ? {} : { user_data: u.userData });
  }
  if (g.app !== undefined) writeBundle(tx, g.app);
}
