// The front end's routing table: endpoints in named groups ("node", "gov", "app") that can be replaced
// while the server runs, because application endpoints change through governance.
import type { Endpoint } from "../endpoints/types.js";
import { CcfError } from "../errors.js";

export type RouteMatch =
  | { endpoint: Endpoint; params: Record<string, string> }
  /** The path is known but not for this method: the methods it does accept. */
  | { allowed: string[] };

/** One `{param}` path shape with the endpoints installed on it, one per method. */
interface Template {
  /** Literal segment text, or undefined where the segment is a parameter. */
  segments: Array<string | undefined>;
  /** Per segment: the literal text a parameter segment must end with (CCF's `{id}:withdraw`). */
  suffixes: string[];
  literals: number;
  /** Per method: the endpoint and the parameter name at each segment (undefined for literals). */
  byMethod: Map<string, { endpoint: Endpoint; names: Array<string | undefined> }>;
}

/** Immutable once built, so a `match` running during `setEndpoints` sees one table or the other. */
interface Table {
  exact: Map<string, Map<string, Endpoint>>;
  /** Templates by number of segments, most specific first. */
  templates: Map<number, Template[]>;
}

// llhttp's method numbering: CCF keeps allowed verbs in a std::set ordered by it, so the Allow header
// lists them in this order.
const LLHTTP_METHOD_ORDER = [
  "DELETE",
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "CONNECT",
  "OPTIONS",
  "TRACE",
  "COPY",
  "LOCK",
  "MKCOL",
  "MOVE",
  "PROPFIND",
  "PROPPATCH",
  "SEARCH",
  "UNLOCK",
  "BIND",
  "REBIND",
  "UNBIND",
  "ACL",
  "REPORT",
  "MKACTIVITY",
  "CHECKOUT",
  "MERGE",
  "M-SEARCH",
  "NOTIFY",
  "SUBSCRIBE",
  "UNSUBSCRIBE",
  "PATCH",
  "PURGE",
  "MKCALENDAR",
  "LINK",
  "UNLINK",
  "SOURCE",
];
const METHOD_RANK = new Map(LLHTTP_METHOD_ORDER.map((m, i) => [m, i]));

function byLlhttpOrder(a: string, b: string): number {
  const ra = METHOD_RANK.get(a) ?? LLHTTP_METHOD_ORDER.length;
  const rb = METHOD_RANK.get(b) ?? LLHTTP_METHOD_ORDER.length;
  return ra !== rb ? ra - rb : a < b ? -1 : a > b ? 1 : 0;
}

/** `{name}`, optionally followed by literal text (`{proposalId}:withdraw`), as CCF allows. */
const PARAM_SEGMENT = /^\{([^{}/]+)\}([^{}/]*)$/;

function invalidPath(path: string, why: string): CcfError {
  return new CcfError("InvalidEndpointPath", `endpoint path '${path}': ${why}`);
}

/**
 * More literal segments first; between equals, the one whose first literal comes earlier, so that
 * `/a/{x}` beats `/{y}/b` for `/a/b` (CCF itself refuses such ambiguity at request time).
 */
function bySpecificity(a: Template, b: Template): number {
  if (a.literals !== b.literals) return b.literals - a.literals;
  for (let i = 0; i < a.segments.length; i++) {
    const la = a.segments[i] !== undefined;
    const lb = b.segments[i] !== undefined;
    if (la !== lb) return la ? -1 : 1;
    // A parameter with a literal suffix is more specific than one without.
    const sa = a.suffixes[i]?.length ?? 0;
    const sb = b.suffixes[i]?.length ?? 0;
    if (sa !== sb) return sb - sa;
  }
  return 0;
}

function buildTable(groups: Map<string, Endpoint[]>): Table {
  const exact = new Map<string, Map<string, Endpoint>>();
  const shapes = new Map<string, Template>();
  for (const [group, endpoints] of groups) {
    for (const endpoint of endpoints) {
      const path = endpoint.path;
      const method = endpoint.method.toUpperCase();
      if (!path.startsWith("/")) throw invalidPath(path, "must start with '/'");
      const duplicate = () =>
        new CcfError(
          "DuplicateEndpoint",
          `${method} ${path} (group '${group}') is already installed by another endpoint`,
        );
      if (!path.includes("{")) {
        if (path.includes("}")) throw invalidPath(path, "unbalanced '}'");
        let methods = exact.get(path);
        if (methods === undefined) exact.set(path, (methods = new Map<string, Endpoint>()));
        if (methods.has(method)) throw duplicate();
        methods.set(method, endpoint);
        continue;
      }
      const parts = path.split("/");
      const segments: Array<string | undefined> = [];
      const suffixes: string[] = [];
      const names: Array<string | undefined> = [];
      const seen = new Set<string>();
      for (const part of parts) {
        const param = PARAM_SEGMENT.exec(part);
        if (param !== null) {
          const name = param[1];
          if (seen.has(name)) throw invalidPath(path, `parameter '${name}' appears twice`);
          seen.add(name);
          segments.push(undefined);
          suffixes.push(param[2] ?? "");
          names.push(name);
        } else {
          if (part.includes("{") || part.includes("}")) {
            throw invalidPath(path, "a {parameter} must be a whole path segment");
          }
          segments.push(part);
          suffixes.push("");
          names.push(undefined);
        }
      }
      const shape = segments
        .map((s, i) => (s === undefined ? `{}${suffixes[i] ?? ""}` : s))
        .join("/");
      let template = shapes.get(shape);
      if (template === undefined) {
        template = {
          segments,
          suffixes,
          literals: segments.filter((s) => s !== undefined).length,
          byMethod: new Map(),
        };
        shapes.set(shape, template);
      }
      if (template.byMethod.has(method)) throw duplicate();
      template.byMethod.set(method, { endpoint, names });
    }
  }
  const templates = new Map<number, Template[]>();
  for (const template of shapes.values()) {
    const n = template.segments.length;
    let list = templates.get(n);
    if (list === undefined) templates.set(n, (list = []));
    list.push(template);
  }
  for (const list of templates.values()) list.sort(bySpecificity);
  return { exact, templates };
}

function matches(template: Template, segments: string[]): boolean {
  const literal = template.segments;
  for (let i = 0; i < literal.length; i++) {
    const want = literal[i];
    const got = segments[i];
    if (want !== undefined) {
      if (got !== want) return false;
      continue;
    }
    // A parameter takes a non-empty part of one segment, as CCF's `([^/]+)`, before its suffix.
    const suffix = template.suffixes[i] ?? "";
    if (got.length <= suffix.length || !got.endsWith(suffix)) return false;
  }
  return true;
}

export class Router {
  #groups = new Map<string, Endpoint[]>();
  #table: Table = { exact: new Map(), templates: new Map() };

  /**
   * Replaces the endpoints of one group (an empty list removes it). Throws, leaving the routes as
   * they were, if a path is malformed or a method and path are installed twice.
   */
  setEndpoints(group: string, endpoints: Endpoint[]): void {
    const groups = new Map(this.#groups);
    if (endpoints.length === 0) groups.delete(group);
    else groups.set(group, [...endpoints]);
    this.#table = buildTable(groups);
    this.#groups = groups;
  }

  /** The endpoints installed in `group`, in the order given. */
  endpoints(group: string): readonly Endpoint[] {
    return this.#groups.get(group) ?? [];
  }

  /**
   * The endpoint for `method` on `path` (matched as sent: no decoding, no trailing-slash folding, as
   * CCF), exact paths before templates; else the methods the path accepts; else undefined.
   */
  match(method: string, path: string): RouteMatch | undefined {
    const table = this.#table;
    const exact = table.exact.get(path);
    if (exact !== undefined) {
      const endpoint = exact.get(method);
      if (endpoint !== undefined) return { endpoint, params: {} };
    }
    let candidates: Template[] | undefined;
    let segments: string[] | undefined;
    if (table.templates.size > 0) {
      segments = path.split("/");
      candidates = table.templates.get(segments.length);
    }
    if (candidates !== undefined && segments !== undefined) {
      for (const template of candidates) {
        const installed = template.byMethod.get(method);
        if (installed === undefined || !matches(template, segments)) continue;
        const params: Record<string, string> = {};
        for (let i = 0; i < installed.names.length; i++) {
          const name = installed.names[i];
          if (name !== undefined) {
            const got = segments[i];
            params[name] = got.slice(0, got.length - (template.suffixes[i] ?? "").length);
          }
        }
        return { endpoint: installed.endpoint, params };
      }
    }
    const allowed = new Set<string>(exact?.keys() ?? []);
    if (candidates !== undefined && segments !== undefined) {
      for (const template of candidates) {
        if (!matches(template, segments)) continue;
        for (const m of template.byMethod.keys()) allowed.add(m);
      }
    }
    if (allowed.size === 0) return undefined;
    return { allowed: [...allowed].sort(byLlhttpOrder) };
  }
}
