// Query strings as CCF parses them: `a=1&b=2`, percent-decoded, last value wins.

export function parseQuery(query: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of new URLSearchParams(query)) out.set(k, v);
  return out;
}
