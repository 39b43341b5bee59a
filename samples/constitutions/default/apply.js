// ccf-ts default constitution, part 5: apply(), run once a proposal is Accepted. The node calls
// it with the proposal id as the second argument, which the actions that drop other open
// proposals need.
export function apply(proposal, proposalId) {
  for (const action of JSON.parse(proposal).actions) {
    actions.get(action.name).apply(action.args, proposalId);
  }
}
