// The OpenAPI document a frontend serves at `/api`, built from its endpoints.

import type { Endpoint } from "./types.js";

export function openApiDocument(
  title: string,
  endpoints: readonly Endpoint[],
  version = "1.0.0",
): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const e of [...endpoints].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    const item = paths[e.path] ?? {};
    const params = [...e.path.matchAll(/\{([^}]+)\}/g)].map((m) => ({
      name: m[1],
      in: "path",
      required: true,
      schema: { type: "string" },
    }));
    item[e.method.toLowerCase()] = {
      ...(params.length > 0 ? { parameters: params } : {}),
      responses: { default: { description: "Default response" } },
      ...(e.openapi ?? {}),
    };
    paths[e.path] = item;
  }
  return { openapi: "3.0.0", info: { title, description: title, version }, components: {}, paths };
}
