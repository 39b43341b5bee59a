// ccf-ts default constitution, part 4: resolve(), run on submission and after every ballot.
// A strict majority of the Active members accepts; until then the proposal stays Open (votes
// against never reject it: a member may still be outvoted).
export function resolve(proposal, proposerId, votes) {
  const inFavour = votes.filter((v) => v.vote === true).length;
  let activeMembers = 0;
  ccf.kv["public:ccf.gov.members.info"].forEach((value) => {
    if (ccf.bufToJsonCompatible(value).status === "Active") activeMembers++;
  });
  return inFavour > Math.floor(activeMembers / 2) ? "Accepted" : "Open";
}
