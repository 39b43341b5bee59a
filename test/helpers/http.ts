// One HTTP request from a test, with an optional JSON body, answered as its status, headers and
// body (bytes, text, and parsed JSON on demand).

import { type Dispatcher, request } from "undici";

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  body: Buffer;
  json: () => Record<string, unknown>;
}

export async function callJson(
  dispatcher: Dispatcher,
  base: string,
  method: "GET" | "POST",
  path: string,
  options: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const res = await request(`${base}${path}`, {
    dispatcher,
    method,
    headers: {
      ...(options.body === undefined ? {} : { "content-type": "application/json" }),
      ...options.headers,
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const body = Buffer.from(await res.body.arrayBuffer());
  const text = body.toString("utf8");
  return {
    status: res.statusCode,
    headers: res.headers,
    text,
    body,
    json: () => JSON.parse(text) as Record<string, unknown>,
  };
}
