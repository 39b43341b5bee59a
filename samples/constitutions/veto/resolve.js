// ccf-ts veto constitution: a drop-in replacement for default/resolve.js. Any single vote
// against rejects the proposal at once; otherwise a strict majority of Active members accepts.
export function resolve(proposal, proposerId, votes) {
  if (votes.some((v) => !v.vote)) return "Rejected";
  let activeMembers = 0;
  ccf.kv["public:ccf.gov.members.info"].forEach((value) => {
    if (ccf.bufToJsonCompatible(value).status === "Active") activeMembers++;
  });
  return votes.length > Math.floor(activeMembers / 2) ? "Accepted" : "Open";
}
