// ccf-ts default constitution, part 1: the governance actions.
//
// The node (and ccf-ts's readConstitution) joins actions.js, virtual_actions.js, validate.js,
// resolve.js and apply.js into ONE ES module, so everything declared at the top level here is
// visible to the later parts. The names `Action`, `actions`, `checkType`, `getSingletonKvKey` and
// `invalidateOtherOpenProposals` are kept because CCF's own add-on files (for instance
// samples/constitutions/virtual/virtual_attestation_actions.js) extend the action map through them.
//
// Every action has CCF 6's name, arguments, validation rules and effect on the governance tables,
// with the same byte encodings (keys as raw UTF-8, singletons under 8 zero bytes, JSON values with
// their keys in the order CCF's constitution inserts them), so a ledger written through this
// constitution is indistinguishable from one written through CCF's.

class Action {
  constructor(validate, apply) {
    this.validate = validate;
    this.apply = apply;
  }
}

/** name -> Action; validate.js and apply.js dispatch through it. */
const actions = new Map();

function defineAction(name, validate, apply) {
  actions.set(name, new Action(validate, apply));
}

const GOV = {
  constitution: "public:ccf.gov.constitution",
  memberCerts: "public:ccf.gov.members.certs",
  memberKeys: "public:ccf.gov.members.encryption_public_keys",
  memberInfo: "public:ccf.gov.members.info",
  memberAcks: "public:ccf.gov.members.acks",
  history: "public:ccf.gov.history",
  userCerts: "public:ccf.gov.users.certs",
  userInfo: "public:ccf.gov.users.info",
  nodeInfo: "public:ccf.gov.nodes.info",
  nodeCerts: "public:ccf.gov.nodes.endorsed_certificates",
  codeIds: "public:ccf.gov.nodes.code_ids",
  snpMeasurements: "public:ccf.gov.nodes.snp.measurements",
  snpHostData: "public:ccf.gov.nodes.snp.host_data",
  snpUvmEndorsements: "public:ccf.gov.nodes.snp.uvm_endorsements",
  snpTcbVersions: "public:ccf.gov.nodes.snp.tcb_versions",
  serviceInfo: "public:ccf.gov.service.info",
  serviceConfig: "public:ccf.gov.service.config",
  proposalsInfo: "public:ccf.gov.proposals_info",
  modules: "public:ccf.gov.modules",
  modulesBytecode: "public:ccf.gov.modules_quickjs_bytecode",
  modulesVersion: "public:ccf.gov.modules_quickjs_version",
  interpreterFlush: "public:ccf.gov.interpreter.flush",
  endpoints: "public:ccf.gov.endpoints",
  jsRuntimeOptions: "public:ccf.gov.js_runtime_options",
  caCertBundles: "public:ccf.gov.tls.ca_cert_bundles",
  jwtIssuers: "public:ccf.gov.jwt.issuers",
  signatures: "public:ccf.internal.signatures",
};

// The JSON code_ids / measurements hold for an allowed entry.
const ALLOWED_TO_JOIN = "AllowedToJoin";

// Certificates are endorsed for this many days when the service configuration sets no maximum.
const DEFAULT_CERT_VALIDITY_DAYS = 365;

// ---------------------------------------------------------------------------------------------
// KV helpers

/** Singleton tables keep their one value under a u64 zero. */
function getSingletonKvKey() {
  return new ArrayBuffer(8);
}

function readJson(table, key) {
  const raw = ccf.kv[table].get(key);
  return raw === undefined ? undefined : ccf.bufToJsonCompatible(raw);
}

function writeJson(table, key, value) {
  ccf.kv[table].set(key, ccf.jsonCompatibleToBuf(value));
}

/** A singleton's JSON value; `what` names it in the error when it is missing. */
function readRequiredSingleton(table, what) {
  const value = readJson(table, getSingletonKvKey());
  if (value === undefined) {
    throw new Error(`${what} is missing from the store`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Argument checks. Each throws an Error naming the offending field; validate.js turns that into
// the proposal's validation failure.

/**
 * `type` is a typeof name, "array" or "integer"; a trailing "?" also accepts null and undefined.
 * Note that typeof null is "object", so a required object may still be null, as in CCF.
 */
function checkType(value, type, field) {
  let expected = type;
  if (expected.endsWith("?")) {
    if (value === undefined || value === null) return;
    expected = expected.slice(0, -1);
  }
  let ok;
  if (expected === "array") ok = Array.isArray(value);
  else if (expected === "integer") ok = Number.isInteger(value);
  else ok = typeof value === expected;
  if (!ok) {
    throw new Error(`${field}: expected ${expected}, found ${describeType(value)}`);
  }
}

function describeType(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

function checkEnum(value, allowed, field) {
  if (!allowed.includes(value)) {
    throw new Error(`${field}: ${JSON.stringify(value)} is not one of ${allowed.join(", ")}`);
  }
}

/** Inclusive bounds; null leaves that side open. An absent value compares false and passes. */
function checkBounds(value, low, high, field) {
  if (low !== null && value < low) {
    throw new Error(`${field}: ${value} is below the minimum ${low}`);
  }
  if (high !== null && value > high) {
    throw new Error(`${field}: ${value} is above the maximum ${high}`);
  }
}

function checkArrayLength(value, min, max, field) {
  checkType(value, "array", field);
  if (min !== null && value.length < min) {
    throw new Error(`${field}: needs at least ${min} element(s), has ${value.length}`);
  }
  if (max !== null && value.length > max) {
    throw new Error(`${field}: allows at most ${max} element(s), has ${value.length}`);
  }
}

/** Actions that take no arguments refuse any. */
function checkNone(args) {
  if (args !== undefined && args !== null) {
    throw new Error(`this action takes no arguments, but was given ${JSON.stringify(args)}`);
  }
}

/** Member, user and node ids are the hex SHA-256 of a certificate: 64 hex digits. */
function checkEntityId(value, field) {
  checkType(value, "string", field);
  if (value.length !== 64) {
    throw new Error(`${field}: an id has 64 characters, this one has ${value.length}`);
  }
  if (!/^[0-9a-fA-F]*$/.test(value)) {
    throw new Error(`${field}: an id is hexadecimal, this one is not`);
  }
}

function checkX509CertBundle(value, field) {
  if (!ccf.crypto.isValidX509CertBundle(value)) {
    throw new Error(`${field}: not a PEM X509 certificate or certificate bundle`);
  }
}

/** A JWKS as CCF accepts it: each key has kid and kty, and x5c, RSA n/e or EC x/y/crv. */
function checkJwks(value, field) {
  checkType(value, "object", field);
  checkType(value.keys, "array", `${field}.keys`);
  value.keys.forEach((jwk, i) => {
    const at = `${field}.keys[${i}]`;
    checkType(jwk.kid, "string", `${at}.kid`);
    checkType(jwk.kty, "string", `${at}.kty`);
    if (jwk.x5c) {
      checkArrayLength(jwk.x5c, 1, null, `${at}.x5c`);
      jwk.x5c.forEach((der64, j) => {
        checkType(der64, "string", `${at}.x5c[${j}]`);
        checkX509CertBundle(
          `-----BEGIN CERTIFICATE-----\n${der64}\n-----END CERTIFICATE-----`,
          `${at}.x5c[${j}]`,
        );
      });
    } else if (jwk.n && jwk.e) {
      checkType(jwk.n, "string", `${at}.n`);
      checkType(jwk.e, "string", `${at}.e`);
    } else if (jwk.x && jwk.y) {
      checkType(jwk.x, "string", `${at}.x`);
      checkType(jwk.y, "string", `${at}.y`);
      checkType(jwk.crv, "string", `${at}.crv`);
    } else {
      throw new Error(`${at}: a key needs x5c, or n and e (RSA), or x, y and crv (EC)`);
    }
  });
}

/**
 * Hex to bytes, with CCF's leniency: only an odd length, whitespace or a letter after F is
 * refused; any other odd character parses as parseInt does (CCF accepts the same strings, and the
 * host data check below depends on identical results).
 */
function hexStrToBuf(hex) {
  if (hex.length % 2 !== 0) {
    throw new Error("hex string has an odd number of digits");
  }
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) {
    const pair = hex.slice(2 * i, 2 * i + 2);
    if (/[g-z\s]/i.test(pair)) {
      throw new Error(`hex string has a non-hex digit in "${pair}"`);
    }
    bytes[i] = parseInt(pair, 16);
  }
  return bytes.buffer;
}

/** Splits a URI with the regular expression of RFC 3986 appendix B. */
function parseUrl(url) {
  const m = /^(([^:/?#]+):)?(\/\/([^/?#]*))?([^?#]*)(\?([^#]*))?(#(.*))?/.exec(url);
  if (m === null) {
    throw new TypeError(`${url} is not a URL`);
  }
  return { scheme: m[2], authority: m[4], path: m[5], query: m[7], fragment: m[9] };
}

// SNP CPUIDs and TCB versions are lowercase hex of a fixed size, so that each has one spelling.
function checkLowercaseHexOfSize(value, bytes, field) {
  checkType(value, "string", field);
  if (value !== value.toLowerCase()) {
    throw new Error(`${field}: must be lowercase hex, found ${value}`);
  }
  const size = hexStrToBuf(value).byteLength;
  if (size !== bytes) {
    throw new Error(`${field}: must be ${bytes} bytes of hex, found ${size}`);
  }
}

function checkValidCpuid(value, field) {
  checkLowercaseHexOfSize(value, 4, field);
}

function checkValidTcbVersionHex(value, field) {
  checkLowercaseHexOfSize(value, 8, field);
}

/** validity_period_days, when given, is a whole number of days, at least one. */
function checkOptionalValidityDays(args) {
  if (args.validity_period_days !== undefined) {
    checkType(args.validity_period_days, "integer", "validity_period_days");
    checkBounds(args.validity_period_days, 1, null, "validity_period_days");
  }
}

// ---------------------------------------------------------------------------------------------
// Shared effects

/**
 * Changing what the service trusts (constitution, code, measurements, host data...) would change
 * the meaning of proposals already being voted on, so every other Open proposal is Dropped.
 */
function invalidateOtherOpenProposals(keepProposalId) {
  const infos = ccf.kv[GOV.proposalsInfo];
  infos.forEach((value, key) => {
    if (ccf.bufToStr(key) === keepProposalId) return;
    const info = ccf.bufToJsonCompatible(value);
    if (info.state === "Open") {
      info.state = "Dropped";
      infos.set(key, ccf.jsonCompatibleToBuf(info));
    }
  });
}

/** Members holding an encryption key (so a recovery share) whose status is Active. */
function getActiveRecoveryMembersCount() {
  let count = 0;
  ccf.kv[GOV.memberKeys].forEach((_, memberId) => {
    const info = readJson(GOV.memberInfo, memberId);
    if (info === undefined) {
      throw new Error(`recovery member ${ccf.bufToStr(memberId)} has no member info`);
    }
    if (info.status === "Active") count++;
  });
  return count;
}

// Only OneTransaction -> TwoTransaction is allowed (TwoTransaction cannot be undone).
function checkReconfigurationTypeChange(current, requested) {
  const from = current.reconfiguration_type;
  const to = requested.reconfiguration_type;
  if (to === undefined || to === from) return;
  const fromOne = from === undefined || from === "OneTransaction";
  if (!(fromOne && to === "TwoTransaction")) {
    throw new Error(`reconfiguration_type cannot change from ${from} to ${to}`);
  }
}

// A threshold the recovery members could not meet would make the service unrecoverable; and
// while shares are being collected the threshold in use must not move.
function checkRecoveryThresholdChange(current, requested) {
  const to = requested.recovery_threshold;
  if (to === undefined || to === current.recovery_threshold) return;
  const service = readRequiredSingleton(GOV.serviceInfo, "Service info");
  if (service.status === "WaitingForRecoveryShares") {
    throw new Error(`recovery_threshold cannot change while the service is ${service.status}`);
  }
  if (service.status === "Open") {
    const members = getActiveRecoveryMembersCount();
    if (to > members) {
      throw new Error(`recovery_threshold ${to} exceeds the ${members} active recovery member(s)`);
    }
  }
}

/** Writes the allowed configuration changes; a new threshold needs new recovery shares. */
function updateServiceConfig(requested) {
  const config = readRequiredSingleton(GOV.serviceConfig, "Service configuration");
  checkReconfigurationTypeChange(config, requested);
  checkRecoveryThresholdChange(config, requested);

  if (requested.reconfiguration_type !== undefined) {
    config.reconfiguration_type = requested.reconfiguration_type;
  }
  let thresholdChanged = false;
  if (
    requested.recovery_threshold !== undefined &&
    requested.recovery_threshold !== config.recovery_threshold
  ) {
    config.recovery_threshold = requested.recovery_threshold;
    thresholdChanged = true;
  }
  if (requested.recent_cose_proposals_window_size !== undefined) {
    config.recent_cose_proposals_window_size = requested.recent_cose_proposals_window_size;
  }
  writeJson(GOV.serviceConfig, getSingletonKvKey(), config);

  if (thresholdChanged) {
    ccf.node.triggerRecoverySharesRefresh();
  }
}

/** The validity to use: the requested one if within the configured maximum, else that maximum. */
function certificateValidityDays(requested, configuredMax) {
  const max = configuredMax ?? DEFAULT_CERT_VALIDITY_DAYS;
  if (requested !== undefined && requested > max) {
    throw new Error(`a validity of ${requested} days exceeds the service's maximum of ${max} days`);
  }
  return requested ?? max;
}

function setServiceCertificateValidityPeriod(validFrom, validityPeriodDays) {
  const config = readRequiredSingleton(GOV.serviceConfig, "Service configuration");
  const days = certificateValidityDays(
    validityPeriodDays,
    config.maximum_service_certificate_validity_days,
  );
  const cert = ccf.network.generateNetworkCertificate(validFrom, days);
  const service = readRequiredSingleton(GOV.serviceInfo, "Service info");
  service.cert = cert;
  writeJson(GOV.serviceInfo, getSingletonKvKey(), service);
}

function setNodeCertificateValidityPeriod(nodeId, nodeInfo, validFrom, validityPeriodDays) {
  if (nodeInfo.certificate_signing_request === undefined) {
    throw new Error(`node ${nodeId} has no certificate signing request to endorse`);
  }
  const config = readRequiredSingleton(GOV.serviceConfig, "Service configuration");
  const days = certificateValidityDays(
    validityPeriodDays,
    config.maximum_node_certificate_validity_days,
  );
  const cert = ccf.network.generateEndorsedCertificate(
    nodeInfo.certificate_signing_request,
    validFrom,
    days,
  );
  ccf.kv[GOV.nodeCerts].set(ccf.strToBuf(nodeId), ccf.strToBuf(cert));
}

/** Adds `key` -> JSON(value) to an allow-list table and drops the other open proposals. */
function allowAndInvalidate(table, key, value, proposalId) {
  writeJson(table, ccf.strToBuf(key), value);
  invalidateOtherOpenProposals(proposalId);
}

function ignoreArgs() {}

// ---------------------------------------------------------------------------------------------
// Constitution

defineAction(
  "set_constitution",
  (args) => {
    checkType(args.constitution, "string", "constitution");
    ccf.gov.validateConstitution(args.constitution);
  },
  (args, proposalId) => {
    writeJson(GOV.constitution, getSingletonKvKey(), args.constitution);
    invalidateOtherOpenProposals(proposalId);
  },
);

// ---------------------------------------------------------------------------------------------
// Members

const RECOVERY_ROLES = ["NonParticipant", "Participant", "Owner"];

defineAction(
  "set_member",
  (args) => {
    checkX509CertBundle(args.cert, "cert");
    checkType(args.member_data, "object?", "member_data");
    if (args.recovery_role !== undefined) {
      checkEnum(args.recovery_role, RECOVERY_ROLES, "recovery_role");
    }
    // A recovery role only means something for a member who can hold a share.
    const hasKey = args.encryption_pub_key !== undefined && args.encryption_pub_key !== null;
    const hasRole = args.recovery_role !== undefined && args.recovery_role !== null;
    if (hasRole && !hasKey) {
      throw new Error("recovery_role needs an encryption_pub_key");
    }
  },
  (args) => {
    const id = ccf.strToBuf(ccf.pemToId(args.cert));
    ccf.kv[GOV.memberCerts].set(id, ccf.strToBuf(args.cert));
    if (args.encryption_pub_key === undefined || args.encryption_pub_key === null) {
      ccf.kv[GOV.memberKeys].delete(id);
    } else {
      ccf.kv[GOV.memberKeys].set(id, ccf.strToBuf(args.encryption_pub_key));
    }
    // Key order as CCF writes it; undefined fields vanish in the JSON.
    writeJson(GOV.memberInfo, id, {
      member_data: args.member_data,
      recovery_role: args.recovery_role,
      status: "Accepted",
    });
    // The new member activates by acking the latest signed root.
    const signature = readJson(GOV.signatures, getSingletonKvKey());
    if (signature === undefined) {
      // CCF calls acks.set with the key alone here, which fails the proposal with a TypeError;
      // failing with a clear message has the same effect.
      throw new Error("the service has no signature yet for a new member to acknowledge");
    }
    writeJson(GOV.memberAcks, id, { state_digest: signature.root });
  },
);

defineAction(
  "remove_member",
  (args) => checkEntityId(args.member_id, "member_id"),
  (args) => {
    const id = ccf.strToBuf(args.member_id);
    const info = readJson(GOV.memberInfo, id);
    if (info === undefined) return; // already gone: removal is idempotent
    const activeRecoveryMember = info.status === "Active" && ccf.kv[GOV.memberKeys].has(id);
    if (activeRecoveryMember) {
      const config = readRequiredSingleton(GOV.serviceConfig, "Service configuration");
      const remaining = getActiveRecoveryMembersCount() - 1;
      if (remaining < config.recovery_threshold) {
        throw new Error(
          `removing this member leaves ${remaining} active recovery member(s), below the recovery threshold ${config.recovery_threshold}`,
        );
      }
    }
    for (const table of [
      GOV.memberInfo,
      GOV.memberKeys,
      GOV.memberCerts,
      GOV.memberAcks,
      GOV.history,
    ]) {
      ccf.kv[table].delete(id);
    }
    if (activeRecoveryMember) {
      // The removed member's share must stop opening the ledger: new secret, new shares.
      ccf.node.triggerLedgerRekey();
    }
  },
);

defineAction(
  "set_member_data",
  (args) => {
    checkEntityId(args.member_id, "member_id");
    checkType(args.member_data, "object", "member_data");
  },
  (args) => {
    const id = ccf.strToBuf(args.member_id);
    const info = readJson(GOV.memberInfo, id);
    if (info === undefined) {
      throw new Error(`there is no member ${args.member_id}`);
    }
    info.member_data = args.member_data;
    writeJson(GOV.memberInfo, id, info);
  },
);

// ---------------------------------------------------------------------------------------------
// Users

/** users.info holds {user_data}, or nothing when there is no data. */
function writeUserData(id, userData) {
  if (userData === undefined || userData === null) {
    ccf.kv[GOV.userInfo].delete(id);
  } else {
    writeJson(GOV.userInfo, id, { user_data: userData });
  }
}

defineAction(
  "set_user",
  (args) => {
    checkX509CertBundle(args.cert, "cert");
    checkType(args.user_data, "object?", "user_data");
  },
  (args) => {
    const id = ccf.strToBuf(ccf.pemToId(args.cert));
    ccf.kv[GOV.userCerts].set(id, ccf.strToBuf(args.cert));
    writeUserData(id, args.user_data);
  },
);

defineAction(
  "remove_user",
  (args) => checkEntityId(args.user_id, "user_id"),
  (args) => {
    const id = ccf.strToBuf(args.user_id);
    ccf.kv[GOV.userCerts].delete(id);
    ccf.kv[GOV.userInfo].delete(id);
  },
);

defineAction(
  "set_user_data",
  (args) => {
    checkEntityId(args.user_id, "user_id");
    checkType(args.user_data, "object?", "user_data");
  },
  (args) => writeUserData(ccf.strToBuf(args.user_id), args.user_data),
);

// ---------------------------------------------------------------------------------------------
// Recovery, ledger secrets and opening the service

defineAction(
  "set_recovery_threshold",
  (args) => {
    checkType(args.recovery_threshold, "integer", "recovery_threshold");
    checkBounds(args.recovery_threshold, 1, 254, "recovery_threshold");
  },
  (args) => updateServiceConfig(args),
);

defineAction("trigger_recovery_shares_refresh", checkNone, () =>
  ccf.node.triggerRecoverySharesRefresh(),
);

defineAction("trigger_ledger_rekey", checkNone, () => ccf.node.triggerLedgerRekey());

defineAction(
  "transition_service_to_open",
  (args) => {
    checkType(args.next_service_identity, "string", "next_service_identity");
    checkX509CertBundle(args.next_service_identity, "next_service_identity");
    checkType(args.previous_service_identity, "string?", "previous_service_identity");
    if (args.previous_service_identity !== undefined) {
      checkX509CertBundle(args.previous_service_identity, "previous_service_identity");
    }
  },
  (args) => {
    const service = readRequiredSingleton(GOV.serviceInfo, "Service info");
    // After a recovery the new identity endorses the previous one, so both are needed.
    if (
      service.status === "Recovering" &&
      (args.previous_service_identity === undefined || args.next_service_identity === undefined)
    ) {
      throw new Error(
        "opening a recovering service needs both previous_service_identity and next_service_identity",
      );
    }
    const previous =
      args.previous_service_identity === undefined
        ? undefined
        : ccf.strToBuf(args.previous_service_identity);
    ccf.node.transitionServiceToOpen(previous, ccf.strToBuf(args.next_service_identity));
  },
);

// ---------------------------------------------------------------------------------------------
// The JavaScript application

const ENDPOINT_MODES = ["readwrite", "readonly", "historical"];
const FORWARDING = ["sometimes", "always", "never"];
const REDIRECTION = ["none", "to_primary", "to_backup"];

function checkAuthnPolicies(policies, field) {
  checkType(policies, "array", field);
  policies.forEach((policy, i) => {
    // Policy names are checked by the node when the endpoint is called, not here.
    if (typeof policy === "string") return;
    if (typeof policy !== "object") {
      throw new Error(
        `${field}[${i}]: expected a policy name or an object, found ${typeof policy}`,
      );
    }
    const parts = policy.all_of;
    checkType(parts, "array", `${field}[${i}].all_of`);
    parts.forEach((part, j) => checkType(part, "string", `${field}[${i}].all_of[${j}]`));
  });
}

function checkEndpoint(info, modules, field) {
  checkType(info, "object", field);
  checkType(info.js_module, "string", `${field}.js_module`);
  checkType(info.js_function, "string", `${field}.js_function`);
  checkEnum(info.mode, ENDPOINT_MODES, `${field}.mode`);
  checkEnum(info.forwarding_required, FORWARDING, `${field}.forwarding_required`);
  if (info.redirection_strategy !== undefined) {
    checkEnum(info.redirection_strategy, REDIRECTION, `${field}.redirection_strategy`);
  }
  checkType(info.openapi, "object?", `${field}.openapi`);
  checkType(info.openapi_hidden, "boolean?", `${field}.openapi_hidden`);
  checkAuthnPolicies(info.authn_policies, `${field}.authn_policies`);
  if (!modules.some((m) => m.name === info.js_module)) {
    throw new Error(`${field}.js_module: the bundle has no module ${info.js_module}`);
  }
}

function checkBundle(bundle) {
  checkType(bundle, "object", "bundle");
  checkType(bundle.modules, "array", "bundle.modules");
  bundle.modules.forEach((m, i) => {
    checkType(m, "object", `bundle.modules[${i}]`);
    checkType(m.name, "string", `bundle.modules[${i}].name`);
    checkType(m.module, "string", `bundle.modules[${i}].module`);
  });
  checkType(bundle.metadata, "object", "bundle.metadata");
  checkType(bundle.metadata.endpoints, "object", "bundle.metadata.endpoints");
  for (const [path, verbs] of Object.entries(bundle.metadata.endpoints)) {
    const at = `bundle.metadata.endpoints[${JSON.stringify(path)}]`;
    checkType(verbs, "object", at);
    for (const [verb, info] of Object.entries(verbs)) {
      checkEndpoint(info, bundle.modules, `${at}[${JSON.stringify(verb)}]`);
    }
  }
}

defineAction(
  "set_js_app",
  (args) => {
    checkBundle(args.bundle);
    checkType(args.disable_bytecode_cache, "boolean?", "disable_bytecode_cache");
  },
  (args) => {
    // The new app replaces the old one entirely.
    const modules = ccf.kv[GOV.modules];
    const endpoints = ccf.kv[GOV.endpoints];
    modules.clear();
    endpoints.clear();
    for (const m of args.bundle.modules) {
      modules.set(ccf.strToBuf(`/${m.name}`), ccf.strToBuf(m.module));
    }
    if (args.disable_bytecode_cache) {
      ccf.kv[GOV.modulesBytecode].clear();
      ccf.kv[GOV.modulesVersion].clear();
    } else {
      ccf.refreshAppBytecodeCache();
    }
    // Interpreters cached with the old modules must not serve the new app.
    writeJson(GOV.interpreterFlush, getSingletonKvKey(), true);
    for (const [path, verbs] of Object.entries(args.bundle.metadata.endpoints)) {
      for (const [verb, info] of Object.entries(verbs)) {
        // Module names in the KV are absolute; the other properties keep their order.
        info.js_module = `/${info.js_module}`;
        writeJson(GOV.endpoints, ccf.strToBuf(`${verb.toUpperCase()} ${path}`), info);
      }
    }
  },
);

defineAction("remove_js_app", ignoreArgs, () => {
  for (const table of [
    GOV.modules,
    GOV.modulesBytecode,
    GOV.modulesVersion,
    GOV.interpreterFlush,
    GOV.endpoints,
  ]) {
    ccf.kv[table].clear();
  }
});

defineAction(
  "set_js_runtime_options",
  (args) => {
    checkType(args.max_heap_bytes, "integer", "max_heap_bytes");
    checkType(args.max_stack_bytes, "integer", "max_stack_bytes");
    checkType(args.max_execution_time_ms, "integer", "max_execution_time_ms");
    checkType(args.log_exception_details, "boolean?", "log_exception_details");
    checkType(args.return_exception_details, "boolean?", "return_exception_details");
    checkType(args.max_cached_interpreters, "integer?", "max_cached_interpreters");
  },
  (args) => writeJson(GOV.jsRuntimeOptions, getSingletonKvKey(), args),
);

defineAction("refresh_js_app_bytecode_cache", ignoreArgs, () => ccf.refreshAppBytecodeCache());

// ---------------------------------------------------------------------------------------------
// CA certificate bundles and JWT issuers

defineAction(
  "set_ca_cert_bundle",
  (args) => {
    checkType(args.name, "string", "name");
    checkX509CertBundle(args.cert_bundle, "cert_bundle");
  },
  (args) => writeJson(GOV.caCertBundles, ccf.strToBuf(args.name), args.cert_bundle),
);

defineAction(
  "remove_ca_cert_bundle",
  (args) => checkType(args.name, "string", "name"),
  (args) => ccf.kv[GOV.caCertBundles].delete(ccf.strToBuf(args.name)),
);

defineAction(
  "set_jwt_issuer",
  (args) => {
    checkType(args.issuer, "string", "issuer");
    checkType(args.auto_refresh, "boolean?", "auto_refresh");
    checkType(args.ca_cert_bundle_name, "string?", "ca_cert_bundle_name");
    checkType(args.jwks, "object?", "jwks");
    if (args.jwks) {
      checkJwks(args.jwks, "jwks");
    }
    if (args.auto_refresh) {
      // The node fetches the keys itself from <issuer>/.well-known/openid-configuration.
      if (!args.ca_cert_bundle_name) {
        throw new Error("auto_refresh needs ca_cert_bundle_name");
      }
      let url;
      try {
        url = parseUrl(args.issuer);
      } catch (e) {
        throw new Error("with auto_refresh, issuer must be a URL");
      }
      if (url.scheme !== "https") {
        throw new Error("with auto_refresh, issuer must be an https:// URL");
      }
      if (url.query || url.fragment) {
        throw new Error("with auto_refresh, issuer must have no query or fragment");
      }
    }
  },
  (args) => {
    if (
      args.auto_refresh &&
      !ccf.kv[GOV.caCertBundles].has(ccf.strToBuf(args.ca_cert_bundle_name))
    ) {
      throw new Error(`there is no CA cert bundle named '${args.ca_cert_bundle_name}'`);
    }
    // The issuer's metadata is every argument but the keys, in the order given.
    const metadata = {};
    for (const [k, v] of Object.entries(args)) {
      if (k !== "jwks") metadata[k] = v;
    }
    if (args.jwks) {
      ccf.setJwtPublicSigningKeys(args.issuer, metadata, args.jwks);
    }
    writeJson(GOV.jwtIssuers, ccf.strToBuf(args.issuer), metadata);
  },
);

defineAction(
  "set_jwt_public_signing_keys",
  (args) => {
    checkType(args.issuer, "string", "issuer");
    checkJwks(args.jwks, "jwks");
  },
  (args) => {
    const metadata = readJson(GOV.jwtIssuers, ccf.strToBuf(args.issuer));
    if (metadata === undefined) {
      throw new Error(`there is no JWT issuer ${args.issuer}`);
    }
    ccf.setJwtPublicSigningKeys(args.issuer, metadata, args.jwks);
  },
);

defineAction(
  "remove_jwt_issuer",
  (args) => checkType(args.issuer, "string", "issuer"),
  (args) => {
    const key = ccf.strToBuf(args.issuer);
    if (!ccf.kv[GOV.jwtIssuers].has(key)) return; // idempotent
    ccf.kv[GOV.jwtIssuers].delete(key);
    ccf.removeJwtPublicSigningKeys(args.issuer);
  },
);

// ---------------------------------------------------------------------------------------------
// What nodes may join with: code ids (SGX) and SNP attestation policy. These only store the
// policy; a virtual node does not consult them.

defineAction(
  "add_node_code",
  (args) => checkType(args.code_id, "string", "code_id"),
  (args, proposalId) => allowAndInvalidate(GOV.codeIds, args.code_id, ALLOWED_TO_JOIN, proposalId),
);

defineAction(
  "add_snp_measurement",
  (args) => checkType(args.measurement, "string", "measurement"),
  (args, proposalId) =>
    allowAndInvalidate(GOV.snpMeasurements, args.measurement, ALLOWED_TO_JOIN, proposalId),
);

defineAction(
  "add_snp_uvm_endorsement",
  (args) => {
    checkType(args.did, "string", "did");
    checkType(args.feed, "string", "feed");
    checkType(args.svn, "string", "svn");
  },
  (args, proposalId) => {
    // One entry per DID, mapping each feed to its minimum SVN.
    const feeds = readJson(GOV.snpUvmEndorsements, ccf.strToBuf(args.did)) ?? {};
    feeds[args.feed] = { svn: args.svn };
    allowAndInvalidate(GOV.snpUvmEndorsements, args.did, feeds, proposalId);
  },
);

defineAction(
  "add_snp_host_data",
  (args) => {
    checkType(args.security_policy, "string", "security_policy");
    checkType(args.host_data, "string", "host_data");
    if (args.security_policy !== "") {
      // host_data must be the SHA-256 of the policy. The two are compared as CCF compares them,
      // after a lenient UTF-8 decoding of the raw bytes, so exactly the same pairs pass.
      const policyDigest = ccf.bufToStr(
        ccf.crypto.digest("SHA-256", ccf.strToBuf(args.security_policy)),
      );
      const hostData = ccf.bufToStr(hexStrToBuf(args.host_data));
      if (policyDigest !== hostData) {
        throw new Error("host_data is not the SHA-256 digest of security_policy");
      }
    }
  },
  (args, proposalId) =>
    allowAndInvalidate(GOV.snpHostData, args.host_data, args.security_policy, proposalId),
);

function checkTcbVersionObject(tcb) {
  checkType(tcb, "object", "tcb_version");
  for (const part of ["boot_loader", "tee", "snp", "microcode"]) {
    checkType(tcb?.[part], "number", `tcb_version.${part}`);
  }
}

defineAction(
  "set_snp_minimum_tcb_version",
  (args) => {
    checkValidCpuid(args.cpuid, "cpuid");
    checkTcbVersionObject(args.tcb_version);
  },
  (args, proposalId) =>
    allowAndInvalidate(GOV.snpTcbVersions, args.cpuid, args.tcb_version, proposalId),
);

defineAction(
  "set_snp_minimum_tcb_version_hex",
  (args) => {
    checkValidCpuid(args.cpuid, "cpuid");
    checkValidTcbVersionHex(args.tcb_version, "tcb_version");
  },
  (args, proposalId) => {
    if (typeof ccf.tcbHexToPolicy !== "function") {
      throw new Error("this node cannot decode SNP TCB versions (ccf.tcbHexToPolicy)");
    }
    const policy = ccf.tcbHexToPolicy(args.cpuid, args.tcb_version);
    allowAndInvalidate(GOV.snpTcbVersions, args.cpuid, policy, proposalId);
  },
);

defineAction(
  "remove_snp_host_data",
  (args) => checkType(args.host_data, "string", "host_data"),
  (args) => ccf.kv[GOV.snpHostData].delete(ccf.strToBuf(args.host_data)),
);

defineAction(
  "remove_snp_measurement",
  (args) => checkType(args.measurement, "string", "measurement"),
  (args) => ccf.kv[GOV.snpMeasurements].delete(ccf.strToBuf(args.measurement)),
);

defineAction(
  "remove_snp_uvm_endorsement",
  (args) => {
    checkType(args.did, "string", "did");
    checkType(args.feed, "string", "feed");
  },
  (args) => {
    const did = ccf.strToBuf(args.did);
    const feeds = readJson(GOV.snpUvmEndorsements, did) ?? {};
    delete feeds[args.feed];
    // A DID without feeds endorses nothing, so it goes too.
    if (Object.keys(feeds).length === 0) {
      ccf.kv[GOV.snpUvmEndorsements].delete(did);
    } else {
      writeJson(GOV.snpUvmEndorsements, did, feeds);
    }
  },
);

defineAction(
  "remove_snp_minimum_tcb_version",
  (args) => checkValidCpuid(args.cpuid, "cpuid"),
  (args) => {
    const cpuid = ccf.strToBuf(args.cpuid);
    if (!ccf.kv[GOV.snpTcbVersions].has(cpuid)) {
      throw new Error(`there is no minimum TCB version for CPUID ${args.cpuid}`);
    }
    ccf.kv[GOV.snpTcbVersions].delete(cpuid);
  },
);

// ---------------------------------------------------------------------------------------------
// Nodes

function readNode(nodeId) {
  const info = readJson(GOV.nodeInfo, ccf.strToBuf(nodeId));
  if (info === undefined) {
    throw new Error(`there is no node ${nodeId}`);
  }
  return info;
}

defineAction(
  "set_node_data",
  (args) => checkEntityId(args.node_id, "node_id"),
  (args) => {
    const info = readNode(args.node_id);
    info.node_data = args.node_data;
    writeJson(GOV.nodeInfo, ccf.strToBuf(args.node_id), info);
  },
);

function checkCertificateValidityArgs(args) {
  checkType(args.valid_from, "string", "valid_from");
  checkOptionalValidityDays(args);
}

defineAction(
  "transition_node_to_trusted",
  (args) => {
    checkEntityId(args.node_id, "node_id");
    checkCertificateValidityArgs(args);
  },
  (args) => {
    const config = readRequiredSingleton(GOV.serviceConfig, "Service configuration");
    const info = readNode(args.node_id);
    if (info.status !== "Pending") return; // already trusted (or retired): nothing to do
    info.status = "Trusted";
    // The node may read ledger secrets from this one on.
    info.ledger_secret_seqno = ccf.network.getLatestLedgerSecretSeqno();
    writeJson(GOV.nodeInfo, ccf.strToBuf(args.node_id), info);
    if (info.certificate_signing_request !== undefined) {
      const days = certificateValidityDays(
        args.validity_period_days,
        config.maximum_node_certificate_validity_days,
      );
      const cert = ccf.network.generateEndorsedCertificate(
        info.certificate_signing_request,
        args.valid_from,
        days,
      );
      ccf.kv[GOV.nodeCerts].set(ccf.strToBuf(args.node_id), ccf.strToBuf(cert));
    }
  },
);

defineAction(
  "remove_node_code",
  (args) => checkType(args.code_id, "string", "code_id"),
  (args) => ccf.kv[GOV.codeIds].delete(ccf.strToBuf(args.code_id)),
);

defineAction(
  "remove_node",
  (args) => checkEntityId(args.node_id, "node_id"),
  (args) => {
    // CCF requires a service configuration here too.
    readRequiredSingleton(GOV.serviceConfig, "Service configuration");
    const id = ccf.strToBuf(args.node_id);
    const info = readJson(GOV.nodeInfo, id);
    if (info === undefined) return; // idempotent
    if (info.status === "Pending") {
      // A node that never joined leaves no trace.
      ccf.kv[GOV.nodeInfo].delete(id);
    } else {
      // A node that took part stays on record, retired; the node finishes the retirement.
      info.status = "Retired";
      writeJson(GOV.nodeInfo, id, info);
    }
  },
);

defineAction(
  "set_node_certificate_validity",
  (args) => {
    checkEntityId(args.node_id, "node_id");
    checkCertificateValidityArgs(args);
  },
  (args) => {
    const info = readNode(args.node_id);
    if (info.status !== "Trusted") {
      throw new Error(`node ${args.node_id} is ${info.status}, not Trusted`);
    }
    setNodeCertificateValidityPeriod(
      args.node_id,
      info,
      args.valid_from,
      args.validity_period_days,
    );
  },
);

defineAction("set_all_nodes_certificate_validity", checkCertificateValidityArgs, (args) => {
  ccf.kv[GOV.nodeInfo].forEach((value, key) => {
    const info = ccf.bufToJsonCompatible(value);
    if (info.status === "Trusted") {
      setNodeCertificateValidityPeriod(
        ccf.bufToStr(key),
        info,
        args.valid_from,
        args.validity_period_days,
      );
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The service

defineAction("set_service_certificate_validity", checkCertificateValidityArgs, (args) =>
  setServiceCertificateValidityPeriod(args.valid_from, args.validity_period_days),
);

const CHANGEABLE_CONFIGURATION = [
  "reconfiguration_type",
  "recovery_threshold",
  "recent_cose_proposals_window_size",
];

defineAction(
  "set_service_configuration",
  (args) => {
    for (const key in args) {
      if (!CHANGEABLE_CONFIGURATION.includes(key)) {
        throw new Error(`${key} cannot be changed by set_service_configuration`);
      }
    }
    checkType(args.reconfiguration_type, "string?", "reconfiguration_type");
    checkType(args.recovery_threshold, "integer?", "recovery_threshold");
    checkBounds(args.recovery_threshold, 1, 254, "recovery_threshold");
    checkType(
      args.recent_cose_proposals_window_size,
      "integer?",
      "recent_cose_proposals_window_size",
    );
    checkBounds(
      args.recent_cose_proposals_window_size,
      1,
      10000,
      "recent_cose_proposals_window_size",
    );
  },
  (args) => updateServiceConfig(args),
);

defineAction("trigger_ledger_chunk", ignoreArgs, () => ccf.node.triggerLedgerChunk());

defineAction("trigger_snapshot", ignoreArgs, () => ccf.node.triggerSnapshot());

defineAction(
  "trigger_acme_refresh",
  (args) => checkType(args.interfaces, "array?", "interfaces"),
  (args) => {
    // CCF 6 only (gone in 7); a node without ACME support says so rather than a TypeError.
    if (typeof ccf.node.triggerACMERefresh !== "function") {
      throw new Error("this node has no ACME support");
    }
    ccf.node.triggerACMERefresh(args.interfaces);
  },
);

// Binds a proposal to one service: it validates only where the service identity matches.
defineAction(
  "assert_service_identity",
  (args) => {
    checkX509CertBundle(args.service_identity, "service_identity");
    const service = readRequiredSingleton(GOV.serviceInfo, "Service info");
    if (service.cert !== args.service_identity) {
      throw new Error("service_identity is not this service's certificate");
    }
  },
  ignoreArgs,
);
