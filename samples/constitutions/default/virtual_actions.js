// ccf-ts default constitution, part 2: the allow-lists virtual (non-TEE) nodes join against.
//
// Kept apart from actions.js as CCF keeps them apart, and written against nothing but the
// `actions` map, so it can follow CCF's own actions.js as well as ours. Its helpers live in a
// block so that they cannot collide with names in whichever actions.js precedes it.
{
  const MEASUREMENTS = "public:ccf.gov.nodes.virtual.measurements";
  // A set in CCF 6: the value of every entry is the set's unit value, 8 zero bytes.
  const HOST_DATA = "public:ccf.gov.nodes.virtual.host_data";
  const PRESENT = () => new ArrayBuffer(8);

  const requireString = (value, field) => {
    if (typeof value !== "string") {
      throw new Error(`${field}: expected string, found ${value === null ? "null" : typeof value}`);
    }
  };

  // A new way to join changes what open proposals would mean, so they are dropped.
  const dropOtherOpenProposals = (keepProposalId) => {
    const infos = ccf.kv["public:ccf.gov.proposals_info"];
    infos.forEach((value, key) => {
      if (ccf.bufToStr(key) === keepProposalId) return;
      const info = ccf.bufToJsonCompatible(value);
      if (info.state === "Open") {
        info.state = "Dropped";
        infos.set(key, ccf.jsonCompatibleToBuf(info));
      }
    });
  };

  const define = (name, validate, apply) => actions.set(name, { validate, apply });

  define(
    "add_virtual_measurement",
    (args) => requireString(args.measurement, "measurement"),
    (args, proposalId) => {
      ccf.kv[MEASUREMENTS].set(
        ccf.strToBuf(args.measurement),
        ccf.jsonCompatibleToBuf("AllowedToJoin"),
      );
      dropOtherOpenProposals(proposalId);
    },
  );

  define(
    "remove_virtual_measurement",
    (args) => requireString(args.measurement, "measurement"),
    (args) => ccf.kv[MEASUREMENTS].delete(ccf.strToBuf(args.measurement)),
  );

  define(
    "add_virtual_host_data",
    (args) => requireString(args.host_data, "host_data"),
    (args, proposalId) => {
      ccf.kv[HOST_DATA].set(ccf.strToBuf(args.host_data), PRESENT());
      dropOtherOpenProposals(proposalId);
    },
  );

  define(
    "remove_virtual_host_data",
    (args) => requireString(args.host_data, "host_data"),
    (args) => ccf.kv[HOST_DATA].delete(ccf.strToBuf(args.host_data)),
  );
}
