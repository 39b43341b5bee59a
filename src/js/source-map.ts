// Source maps of app modules: a module built with an inline `//# sourceMappingURL=data:...` comment
// (plain JS, so CCF accepts the bundle as it is) lets an exception's JS stack be shown at the
// lines of the app's TypeScript. Source Map v3 decoded here (base64 VLQ), no dependency.

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < BASE64.length; i++) BASE64_VALUE[BASE64.charCodeAt(i)] = i;

/** A source map that cannot be decoded. */
export class SourceMapError extends Error {}

/** A position in an original source: 1-based line and column, as stack traces show them. */
export interface OriginalPosition {
  source: string;
  line: number;
  column: number;
}

/**
 * One generated line's segments, flattened: [generated column, source index, original line,
 * original column] per mapped segment, all 0-based, sorted by generated column.
 */
type LineSegments = Int32Array;

/** A decoded Source Map v3 (not index maps with `sections`). */
export class SourceMap {
  private constructor(
    private readonly sources: readonly string[],
    private readonly lines: readonly LineSegments[],
  ) {}

  /** Decodes a source map from its JSON text or object; throws SourceMapError if malformed. */
  static parse(json: unknown): SourceMap {
    let raw: unknown = json;
    if (typeof json === "string") {
      try {
        raw = JSON.parse(json);
      } catch (e) {
        throw new SourceMapError(`source map is not JSON: ${(e as Error).message}`);
      }
    }
    const map = raw as {
      version?: unknown;
      sources?: unknown;
      sourceRoot?: unknown;
      mappings?: unknown;
    };
    if (map === null || typeof map !== "object")
      throw new SourceMapError("source map is not an object");
    if (map.version !== 3)
      throw new SourceMapError(`source map version ${String(map.version)} is not 3`);
    if (!Array.isArray(map.sources) || typeof map.mappings !== "string") {
      throw new SourceMapError("source map needs a sources array and a mappings string");
    }
    const root = typeof map.sourceRoot === "string" && map.sourceRoot !== "" ? map.sourceRoot : "";
    const prefix = root === "" || root.endsWith("/") ? root : `${root}/`;
    const sources = map.sources.map((s) => `${prefix}${typeof s === "string" ? s : ""}`);
    return new SourceMap(sources, decodeMappings(map.mappings, sources.length));
  }

  /**
   * Where generated `line`:`column` (1-based) came from: the nearest mapped segment at or before
   * the column on that line (else the line's first), or undefined where the line has none.
   */
  originalPosition(line: number, column: number): OriginalPosition | undefined {
    const segs = this.lines[line - 1];
    if (segs === undefined || segs.length === 0) return undefined;
    const col = column - 1;
    // Binary search for the last segment whose generated column is <= col.
    let lo = 0;
    let hi = segs.length / 4 - 1;
    let found = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (segs[mid * 4] <= col) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    const at = found * 4;
    return {
      source: this.sources[segs[at + 1]],
      line: segs[at + 2] + 1,
      column: segs[at + 3] + 1,
    };
  }
}

function decodeMappings(mappings: string, sourceCount: number): LineSegments[] {
  const lines: LineSegments[] = [];
  let source = 0;
  let origLine = 0;
  let origCol = 0;
  let i = 0;
  const fields: number[] = [];
  let line: number[] = [];
  const endLine = () => {
    lines.push(Int32Array.from(line));
    line = [];
  };
  let genCol = 0;
  let sorted = true;
  while (i <= mappings.length) {
    const c = mappings.charCodeAt(i);
    if (i === mappings.length || c === 59 /* ; */ || c === 44 /* , */) {
      if (fields.length > 0) {
        genCol += fields[0];
        if (fields.length >= 4) {
          source += fields[1];
          origLine += fields[2];
          origCol += fields[3];
          if (source < 0 || source >= sourceCount || origLine < 0 || origCol < 0 || genCol < 0) {
            throw new SourceMapError(`source map segment out of range at offset ${i}`);
          }
          const n = line.length;
          if (n > 0 && line[n - 4] > genCol) sorted = false;
          line.push(genCol, source, origLine, origCol);
        } else if (fields.length !== 1) {
          throw new SourceMapError(`source map segment of ${fields.length} fields at offset ${i}`);
        }
        fields.length = 0;
      }
      if (i === mappings.length) {
        endLine();
        break;
      }
      if (c === 59) {
        endLine();
        genCol = 0;
      }
      i++;
      continue;
    }
    // One base64 VLQ value: 5 bits per digit, continuation bit 32, sign in the lowest bit.
    let value = 0;
    let shift = 0;
    for (;;) {
      const d = i < mappings.length ? (BASE64_VALUE[mappings.charCodeAt(i)] ?? -1) : -1;
      if (d < 0) throw new SourceMapError(`bad base64 VLQ in source map at offset ${i}`);
      i++;
      value += (d & 31) * 2 ** shift;
      shift += 5;
      if ((d & 32) === 0) break;
      if (shift > 30) throw new SourceMapError(`VLQ value too large in source map at offset ${i}`);
    }
    fields.push(value % 2 === 1 ? -Math.floor(value / 2) : Math.floor(value / 2));
  }
  if (!sorted) {
    return lines.map((segs) => {
      const quads: number[][] = [];
      for (let k = 0; k < segs.length; k += 4) quads.push(Array.from(segs.subarray(k, k + 4)));
      quads.sort((a, b) => a[0] - b[0]);
      return Int32Array.from(quads.flat());
    });
  }
  return lines;
}

const URL_COMMENT = /\/\/[#@][ \t]+sourceMappingURL=([^\s'"]*)[ \t]*$/gm;

/**
 * The source map a module carries inline (its last `//# sourceMappingURL=data:...` comment), or
 * undefined when it has none or names an external file. Throws SourceMapError if it is malformed.
 */
export function inlineSourceMap(moduleSource: string): SourceMap | undefined {
  let url: string | undefined;
  for (const m of moduleSource.matchAll(URL_COMMENT)) url = m[1];
  if (url === undefined || !url.startsWith("data:")) return undefined;
  const comma = url.indexOf(",");
  if (comma === -1) throw new SourceMapError("inline source map has no data");
  const header = url.slice("data:".length, comma);
  const data = url.slice(comma + 1);
  let text: string;
  try {
    text = header.split(";").includes("base64")
      ? Buffer.from(data, "base64").toString("utf8")
      : decodeURIComponent(data);
  } catch (e) {
    throw new SourceMapError(`inline source map cannot be decoded: ${(e as Error).message}`);
  }
  return SourceMap.parse(text);
}

// QuickJS frames: "    at fn (module.js:12:5)", "    at module.js:12:5", column optional.
const FRAME = /^(\s*at (?:.*? \()?)([^\s()]+?):(\d+)(?::(\d+))?(\)?)$/;

/**
 * `stack` with each frame `module:line:col` whose module has a source map replaced by the original
 * `source:line:col`; other frames (no map, unmapped line, native) are kept as they are.
 */
export function mapStackTrace(
  stack: string,
  mapOf: (module: string) => SourceMap | undefined,
): string {
  return stack
    .split("\n")
    .map((frame) => {
      const m = FRAME.exec(frame);
      if (m === null) return frame;
      const [, head, module, line, column, tail] = m as unknown as [
        string,
        string,
        string,
        string,
        string | undefined,
        string,
      ];
      const map = mapOf(module);
      const pos = map?.originalPosition(Number(line), column === undefined ? 1 : Number(column));
      if (pos === undefined) return frame;
      return `${head}${pos.source}:${pos.line}:${pos.column}${tail}`;
    })
    .join("\n");
}

/**
 * The source maps of an app's modules, each decoded once and kept while the module's source is
 * unchanged (a new bundle replaces them). A malformed map counts as none.
 */
export class ModuleSourceMaps {
  private readonly maps = new Map<string, { source: Uint8Array; map: SourceMap | undefined }>();
  private readonly maxModules: number;

  constructor(opts: { maxModules?: number } = {}) {
    this.maxModules = opts.maxModules ?? 256;
  }

  /** The map of `module` whose current source is `source` (undefined: no such module). */
  get(module: string, source: Uint8Array | undefined): SourceMap | undefined {
    if (source === undefined) return undefined;
    const cached = this.maps.get(module);
    if (cached !== undefined && Buffer.compare(cached.source, source) === 0) return cached.map;
    let map: SourceMap | undefined;
    try {
      map = inlineSourceMap(Buffer.from(source).toString("utf8"));
    } catch (e) {
      if (!(e instanceof SourceMapError)) throw e;
      map = undefined;
    }
    this.maps.delete(module);
    this.maps.set(module, { source: Uint8Array.from(source), map });
    while (this.maps.size > this.maxModules) {
      this.maps.delete(this.maps.keys().next().value as string);
    }
    return map;
  }

  clear(): void {
    this.maps.clear();
  }
}
