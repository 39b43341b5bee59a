// An endpoint with no CCF authentication policy (`no_auth`) that authenticates
// the caller itself, from request headers.
import type { Request, Response } from "@microsoft/ccf-app/endpoints.js";

const NAME_HEADER = "x-custom-auth-name";
const AGE_HEADER = "x-custom-auth-age";
/** When present, the policy fails with an exception (a misbehaving policy), giving a 500. */
const EXPLODE_HEADER = "x-custom-auth-explode";
const MIN_AGE = 16;

interface CustomIdentity {
  name: string;
  age: number;
}

type AuthResult = { ok: true; identity: CustomIdentity } | { ok: false; reason: string };

function authenticate(headers: Record<string, string>): AuthResult {
  const explode = headers[EXPLODE_HEADER];
  if (explode !== undefined) {
    throw new Error(`Custom auth policy failed: ${explode}`);
  }
  const name = headers[NAME_HEADER];
  if (name === undefined) {
    return { ok: false, reason: `Missing required header ${NAME_HEADER}` };
  }
  if (name.length === 0) {
    return { ok: false, reason: "Name must not be empty" };
  }
  const ageText = headers[AGE_HEADER];
  if (ageText === undefined) {
    return { ok: false, reason: `Missing required header ${AGE_HEADER}` };
  }
  const age = Number(ageText.trim());
  if (ageText.trim().length === 0 || !Number.isFinite(age)) {
    return { ok: false, reason: `Header ${AGE_HEADER} must be a number` };
  }
  if (age < MIN_AGE) {
    return { ok: false, reason: `Caller age must be at least ${MIN_AGE}` };
  }
  return { ok: true, identity: { name, age } };
}

export function custom_auth(
  request: Request,
): Response<string | (CustomIdentity & { description: string })> {
  const result = authenticate(request.headers);
  if (!result.ok) {
    return { statusCode: 401, body: result.reason };
  }
  const { name, age } = result.identity;
  return { body: { name, age, description: `Your name is ${name} and you are ${age}` } };
}
