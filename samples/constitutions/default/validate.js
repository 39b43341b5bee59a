// ccf-ts default constitution, part 3: validate(input), run when a proposal is submitted.
// Every action is checked, so that one response lists every problem with the proposal.
export function validate(input) {
  const proposal = JSON.parse(input);
  const problems = [];
  proposal.actions.forEach((action, position) => {
    const definition = actions.get(action.name);
    if (definition === undefined) {
      problems.push(`${action.name}: no such action`);
      return;
    }
    try {
      definition.validate(action.args);
    } catch (e) {
      problems.push(`${action.name} at position ${position} failed validation: ${e}`);
    }
  });
  return { valid: problems.length === 0, description: problems.join(", ") };
}
