// A minimal constitution, stored at genesis until ccf-ts runs governance (the governance issues
// bring CCF's default constitution and the proposal engine that executes it). It has the three
// exports CCF requires: validate, resolve and apply.

export function validate(input) {
  let proposal;
  try {
    proposal = JSON.parse(input);
  } catch (e) {
    return { valid: false, description: `proposal is not JSON: ${e}` };
  }
  if (!Array.isArray(proposal.actions)) {
    return { valid: false, description: "proposal must have an 'actions' array" };
  }
  return { valid: true, description: "OK" };
}

export function resolve(proposal, proposerId, votes) {
  let activeMembers = 0;
  ccf.kv["public:ccf.gov.members.info"].forEach((v) => {
    if (ccf.bufToJsonCompatible(v).status === "Active") activeMembers++;
  });
  const yes = votes.filter((v) => v.vote).length;
  return yes > Math.floor(activeMembers / 2) ? "Accepted" : "Open";
}

export function apply(proposal, proposalId) {
  throw new Error(`no actions can be applied by the minimal constitution (proposal ${proposalId})`);
}
