// The primary's side of a join (node/join.ts): who is admitted, and as what, by service status.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createServiceCertificate, EcKeyPair } from "../../src/crypto/index.js";
import { HttpError } from "../../src/errors.js";
import { encodeValue, SINGLETON_KEY, Store, Tables } from "../../src/kv/index.js";
import { LedgerSecrets } from "../../src/ledger/index.js";
import { createNodeIdentity } from "../../src/node/identity.js";
import { admitJoiner } from "../../src/node/join.js";

async function setUp(status: string) {
  const now = new Date();
  const serviceKey = EcKeyPair.generate("secp384r1");
  const serviceCert = await createServiceCertificate(serviceKey, {
    validFrom: now,
    validityDays: 1,
  });
  const joiner = await createNodeIdentity({
    curve: "secp384r1",
    subjectName: "CN=CCF Node",
    subjectAltNames: ["iPAddress:127.0.0.1"],
    validityDays: 1,
    version: "test",
    now,
  });
  const store = new Store();
  const tx = store.begin();
  tx.map(Tables.SERVICE).set(
    SINGLETON_KEY,
    encodeValue(Tables.SERVICE, { cert: serviceCert, status }),
  );
  tx.map(Tables.VIRTUAL_MEASUREMENTS).set(
    Buffer.from(joiner.measurement),
    encodeValue(Tables.VIRTUAL_MEASUREMENTS, "AllowedToJoin"),
  );
  tx.map(Tables.VIRTUAL_HOST_DATA).set(
    Buffer.from(joiner.hostData),
    encodeValue(Tables.VIRTUAL_HOST_DATA, ""),
  );
  store.commit(tx);
  const body = {
    node_info: {
      public_key: joiner.key.publicKeyPem,
      encryption_pub_key: joiner.encryptionKey.publicKeyPem,
      quote_info: { format: "Insecure_Virtual", quote: joiner.quote, endorsements: "" },
      node_to_node_interface: { published_address: "127.0.0.1:1" },
    },
    subject_name: "CN=CCF Node",
    subject_alt_names: ["iPAddress:127.0.0.1"],
  };
  const ctx = {
    serviceKey,
    serviceCert,
    secrets: new LedgerSecrets([{ key: Buffer.alloc(32, 1), version: 1 }]),
    now,
    validityDays: 1,
  };
  return { store, body, ctx };
}

describe("admitting a joining node", () => {
  it("trusts it while the service is Opening and records it Pending once Open", async () => {
    for (const [status, expected] of [
      ["Opening", "Trusted"],
      ["Open", "Pending"],
    ] as const) {
      const { store, body, ctx } = await setUp(status);
      const tx = store.begin();
      const out = await admitJoiner(tx, body, ctx);
      assert.equal(out.node_status, expected, status);
    }
  });

  it("refuses (503, retried) while the service recovers its private ledger, writing nothing", async () => {
    for (const status of ["Recovering", "WaitingForRecoveryShares"]) {
      const { store, body, ctx } = await setUp(status);
      const tx = store.begin();
      await assert.rejects(admitJoiner(tx, body, ctx), (e: unknown) => {
        assert.ok(e instanceof HttpError);
        assert.equal(e.status, 503);
        assert.equal(e.code, "ServiceRecovering");
        return true;
      });
      assert.equal(tx.hasWrites(), false);
    }
  });
});
