// ccf-ts sandbox constitution: a drop-in replacement for default/resolve.js for local
// experiments only. Every proposal is Accepted as soon as it is submitted, without any vote.
export function resolve(proposal, proposerId, votes) {
  return "Accepted";
}
