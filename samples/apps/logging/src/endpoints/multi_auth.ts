// An endpoint accepting many authentication policies, which answers with a
// plain-text description of the identity the runtime passed as `request.caller`.
import type { Request, Response } from "@microsoft/ccf-app/endpoints.js";

interface Identity {
  policy?: string | string[];
  id?: string;
  data?: unknown;
  cert?: string;
  jwt?: { keyIssuer: string; header: unknown; payload: unknown };
  cose?: { content: ArrayBuffer };
  [constituent: string]: unknown;
}

const pretty = (value: unknown): string => JSON.stringify(value, null, 2) ?? "undefined";

function describeCertHolder(kind: string, identity: Identity): string[] {
  return [
    `The caller is a ${kind} with ID: ${identity.id}`,
    `The caller's ${kind} data is: ${pretty(identity.data)}`,
    `The caller's certificate is:\n${identity.cert}`,
  ];
}

function describe(policy: string, identity: Identity | undefined): string[] {
  if (identity === undefined || identity === null) {
    throw new Error(`No identity was supplied for auth policy ${policy}`);
  }
  switch (policy) {
    case "user_cert":
      return ["User TLS cert", ...describeCertHolder("user", identity)];
    case "member_cert":
      return ["Member TLS cert", ...describeCertHolder("member", identity)];
    case "any_cert":
      return ["Any TLS cert", `The caller presented the certificate:\n${identity.cert}`];
    case "jwt": {
      const jwt = identity.jwt;
      if (jwt === undefined) {
        throw new Error("A jwt identity without its token");
      }
      return [
        "JWT",
        `The caller is identified by a JWT issued by: ${jwt.keyIssuer}`,
        `The JWT header is:\n${pretty(jwt.header)}`,
        `The JWT payload is:\n${pretty(jwt.payload)}`,
      ];
    }
    case "user_cose_sign1":
      return [
        "User COSE Sign1",
        `The caller is a user with ID: ${identity.id}`,
        `The caller's user data is: ${pretty(identity.data)}`,
        `The COSE Sign1 payload is ${identity.cose?.content.byteLength ?? 0} bytes long`,
      ];
    case "no_auth":
      return ["Unauthenticated", "The caller presented no authenticated identity"];
    default:
      throw new Error(`Unhandled auth policy: ${policy}`);
  }
}

export function multi_auth(request: Request): Response<string> {
  const caller = request.caller as Identity | undefined;
  let lines: string[];
  if (caller === undefined || caller === null) {
    lines = ["No authentication policy applies to this call"];
  } else if (typeof caller.policy === "string") {
    lines = describe(caller.policy, caller);
  } else if (Array.isArray(caller.policy)) {
    lines = [`Conjoined auth policy: ${caller.policy.join(", ")}`];
    for (const policy of caller.policy) {
      lines.push("", `${policy}:`, ...describe(policy, caller[policy] as Identity | undefined));
    }
  } else {
    throw new Error(`Unhandled auth policy: ${String(caller.policy)}`);
  }
  const text = lines.join("\n");
  console.log(text);
  return { body: text };
}
