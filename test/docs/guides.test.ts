// Runs every command of the guides in docs/guides/, in order, as a reader would type them.
//
// Conventions of a guide's fenced blocks (anything else is an illustration and is not run):
//
//   ```sh                      commands, run with bash (set -euo pipefail); must exit 0
//   ```sh exit=N               commands that must exit with status N (a refusal the guide shows)
//   ```sh background name=NAME until="TEXT"
//                              a long-running command (a node, the sandbox), started in the
//                              background "in another terminal"; the guide goes on once its output
//                              contains TEXT (it must not exit before). Stopped at the end.
//   <!-- guide-test: stop NAME -->
//                              (an HTML comment, invisible when rendered) where the guide says to
//                              stop NAME with Ctrl+C: SIGINT to its process group, as a terminal
//                              sends it; it must then exit with status 0.
//   ```text expect             output of the `sh` block just before: each line must appear in its
//                              output (stdout then stderr), in order; `...` in a line matches
//                              anything
//   ```LANG file=PATH          a file the guide asks to create: written at PATH (relative to the
//                              current folder) before the commands that follow
//
// One session per guide, like one terminal: each block starts in the folder and with the exported
// variables the previous block ended with; the first starts in a fresh temp folder. Background
// blocks start from the session's folder and variables but do not change them.
//
// Environment: `ccf-ts` on PATH is this checkout (a wrapper calling `node bin/ccf-ts.js`, i.e. the
// compiled dist/: run `npm run build` first); $CCF_TS is the checkout (the guides ask the reader
// to set it); npm prefers its cache (npm_config_prefer_offline), so the first-app guide's
// `npm install` needs no network once the checkout's own `npm ci` has run.
//
// Ports: the guides use CCF's 8000, 8001... like CCF's docs; the tests never listen there. Each
// `127.0.0.1:80NN`, `localhost:80NN` and `--port 80NN` (8000-8099) in a command, a file or an
// expected output is replaced by a free port (the same one for the same number throughout a
// guide), and CCF_TS_URL (the default node of `ccf-ts gov`) is set to 8000's replacement.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, describe, it } from "node:test";
import { waitFor } from "../helpers/process.js";

const ROOT = resolve(import.meta.dirname, "../..");
const GUIDES = join(ROOT, "docs/guides");
const BLOCK_TIMEOUT_MS = 180_000;
const BACKGROUND_TIMEOUT_MS = 180_000;

export type Step =
  | { kind: "run"; line: number; code: string; exit: number; expect?: string[] }
  | { kind: "background"; line: number; code: string; name: string; until: string }
  | { kind: "file"; line: number; path: string; content: string }
  | { kind: "stop"; line: number; name: string };

/** `key=value` and `key="value with spaces"` pairs of an info string, after its language. */
function attributes(info: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of info.matchAll(/(\w+)(?:=(?:"([^"]*)"|(\S+)))?/g)) {
    out.set(m[1], m[2] ?? m[3] ?? "");
  }
  return out;
}

/** The steps of a guide, in order; a block the conventions do not allow is an error. */
export function parseGuide(text: string, file: string): Step[] {
  const lines = text.split("\n");
  const steps: Step[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const stop = /^<!--\s*guide-test:\s*stop\s+(\S+)\s*-->\s*$/.exec(line);
    if (stop !== null) {
      steps.push({ kind: "stop", line: i + 1, name: stop[1] });
      continue;
    }
    const open = /^(`{3,})(\S*)\s*(.*)$/.exec(line);
    if (open === null) continue;
    const [, fence, lang, rest] = open as unknown as [string, string, string, string];
    const start = i + 1;
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i].startsWith(fence); i++) {
      body.push(lines[i]);
    }
    assert.ok(i < lines.length, `${file}:${start}: unterminated code block`);
    const content = `${body.join("\n")}\n`;
    const attrs = attributes(rest);
    const where = `${file}:${start}`;
    if (/^(bash|shell|console|zsh|shell-session)$/.test(lang)) {
      assert.fail(`${where}: commands go in \`\`\`sh blocks (found \`\`\`${lang})`);
    }
    if (lang === "sh") {
      if (attrs.has("background")) {
        const name = attrs.get("name");
        const until = attrs.get("until");
        assert.ok(name && until, `${where}: a background block needs name=... and until="..."`);
        steps.push({ kind: "background", line: start, code: content, name, until });
      } else {
        const exit = Number(attrs.get("exit") ?? "0");
        assert.ok(Number.isInteger(exit), `${where}: exit=${attrs.get("exit")} is not a number`);
        steps.push({ kind: "run", line: start, code: content, exit });
      }
    } else if (attrs.has("file")) {
      const path = attrs.get("file") as string;
      assert.ok(path !== "" && !path.startsWith("/"), `${where}: file= needs a relative path`);
      steps.push({ kind: "file", line: start, path, content });
    } else if (lang === "text" && attrs.has("expect")) {
      const previous = steps.at(-1);
      assert.ok(
        previous?.kind === "run",
        `${where}: an expect block must follow a sh block directly`,
      );
      previous.expect = body.filter((l) => l.trim() !== "");
    }
  }
  return steps;
}

/** Whether every line of `expected` occurs in `output`, in order (`...` matches anything). */
export function matchesInOrder(output: string, expected: string[]): string | undefined {
  const lines = output.split("\n");
  let at = 0;
  for (const e of expected) {
    const re = new RegExp(
      e
        .trim()
        .split("...")
        .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
        .join(".*"),
    );
    while (at < lines.length && !re.test(lines[at])) at++;
    if (at === lines.length) return e;
    at++;
  }
  return undefined;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
  const address = server.address();
  await new Promise<void>((res) => server.close(() => res()));
  assert.ok(address !== null && typeof address === "object");
  return address.port;
}

interface Background {
  name: string;
  child: ChildProcess;
  log: string;
  exit: Promise<number | null>;
}

/** One guide's terminal: its folder, its variables, its background processes, its ports. */
class Session {
  private readonly state: string;
  private readonly ports = new Map<number, number>();
  readonly backgrounds: Background[] = [];
  readonly env: NodeJS.ProcessEnv;

  constructor(
    readonly dir: string,
    private readonly file: string,
  ) {
    this.state = join(dir, ".guide-test");
    mkdirSync(join(this.state, "bin"), { recursive: true });
    const wrapper = join(this.state, "bin", "ccf-ts");
    writeFileSync(
      wrapper,
      `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, "bin/ccf-ts.js")}" "$@"\n`,
    );
    chmodSync(wrapper, 0o755);
    const work = join(dir, "work");
    mkdirSync(work);
    writeFileSync(join(this.state, "cwd"), work);
    writeFileSync(join(this.state, "env.sh"), "");
    this.env = {
      ...process.env,
      PATH: `${join(this.state, "bin")}:${process.env.PATH ?? ""}`,
      CCF_TS: ROOT,
      npm_config_prefer_offline: "true",
      npm_config_audit: "false",
      npm_config_fund: "false",
      npm_config_update_notifier: "false",
    };
    // Set when this file runs under node --test: a `node --test` the guide runs must not report
    // to this runner.
    delete this.env.NODE_TEST_CONTEXT;
  }

  async init(): Promise<void> {
    this.env.CCF_TS_URL = `https://127.0.0.1:${await this.port(8000)}`;
  }

  private async port(n: number): Promise<number> {
    let p = this.ports.get(n);
    if (p === undefined) {
      p = await freePort();
      this.ports.set(n, p);
    }
    return p;
  }

  /** The text with the guide's 80NN ports replaced by this session's. */
  async rewrite(text: string): Promise<string> {
    const used = [...text.matchAll(/(?:127\.0\.0\.1:|localhost:|--port )(80\d\d)\b/g)];
    for (const m of used) await this.port(Number(m[1]));
    return text
      .replace(
        /(127\.0\.0\.1:|localhost:)(80\d\d)\b/g,
        (_, host: string, n: string) => `${host}${this.ports.get(Number(n))}`,
      )
      .replace(/--port (80\d\d)\b/g, (_, n: string) => `--port ${this.ports.get(Number(n))}`);
  }

  /** The script of a block: the session's variables and folder, then the block. */
  private script(code: string, save: boolean): string {
    return [
      // allexport: a variable a block sets is kept for the next ones, as in one terminal.
      "set -euo pipefail -o allexport",
      `source "${join(this.state, "env.sh")}"`,
      `cd "$(cat "${join(this.state, "cwd")}")"`,
      code,
      ...(save
        ? [`pwd > "${join(this.state, "cwd")}"`, `export -p > "${join(this.state, "env.sh")}"`]
        : []),
      "",
    ].join("\n");
  }

  cwd(): string {
    return readFileSync(join(this.state, "cwd"), "utf8").trim();
  }

  async run(step: Extract<Step, { kind: "run" }>): Promise<void> {
    const code = await this.rewrite(step.code);
    const child = spawn("bash", ["-c", this.script(code, true)], {
      env: this.env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => killGroup(child, "SIGKILL"), BLOCK_TIMEOUT_MS);
    const status = await new Promise<number | null>((res) =>
      child.on("close", (c) => {
        clearTimeout(timer);
        res(c);
      }),
    );
    const report = () =>
      `${this.file}:${step.line}: \n${code}\n--- exit ${status}; stdout:\n${stdout}\n--- stderr:\n${stderr}\n${this.backgroundLogs()}`;
    assert.equal(status, step.exit, `unexpected exit status\n${report()}`);
    if (step.expect !== undefined) {
      const expected = await Promise.all(step.expect.map((l) => this.rewrite(l)));
      const missing = matchesInOrder(`${stdout}\n${stderr}`, expected);
      assert.equal(missing, undefined, `expected output line not found: ${missing}\n${report()}`);
    }
  }

  async writeFile(step: Extract<Step, { kind: "file" }>): Promise<void> {
    const path = join(this.cwd(), step.path);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, await this.rewrite(step.content));
  }

  async background(step: Extract<Step, { kind: "background" }>): Promise<void> {
    assert.ok(
      !this.backgrounds.some((b) => b.name === step.name && b.child.exitCode === null),
      `${this.file}:${step.line}: ${step.name} is already running`,
    );
    const log = join(this.state, `${step.name}-${step.line}.log`);
    const fd = openSync(log, "w");
    const child = spawn("bash", ["-c", this.script(await this.rewrite(step.code), false)], {
      env: this.env,
      detached: true,
      stdio: ["ignore", fd, fd],
    });
    closeSync(fd);
    const exit = new Promise<number | null>((res) => child.on("exit", (c) => res(c)));
    const bg: Background = { name: step.name, child, log, exit };
    this.backgrounds.push(bg);
    const output = () => (existsSync(log) ? readFileSync(log, "utf8") : "");
    await waitFor(
      `${step.name} to print "${step.until}" (${this.file}:${step.line})`,
      () => {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`${step.name} exited (${child.exitCode}): ${output()}`);
        }
        return output().includes(step.until) ? true : undefined;
      },
      BACKGROUND_TIMEOUT_MS,
    ).catch((e: unknown) => {
      throw new Error(`${String(e)}\n--- ${step.name}'s output:\n${output()}`);
    });
  }

  async stop(step: Extract<Step, { kind: "stop" }>): Promise<void> {
    const bg = this.backgrounds.findLast((b) => b.name === step.name);
    assert.ok(
      bg !== undefined,
      `${this.file}:${step.line}: nothing named ${step.name} was started`,
    );
    killGroup(bg.child, "SIGINT");
    const timeout = setTimeout(() => killGroup(bg.child, "SIGKILL"), 60_000);
    const code = await bg.exit;
    clearTimeout(timeout);
    assert.equal(
      code,
      0,
      `${this.file}:${step.line}: ${step.name} did not stop cleanly on Ctrl+C\n${readFileSync(bg.log, "utf8")}`,
    );
  }

  backgroundLogs(): string {
    return this.backgrounds
      .map((b) => `--- ${b.name}'s output:\n${readFileSync(b.log, "utf8").slice(-4000)}`)
      .join("\n");
  }

  /** Stops what is still running: SIGTERM, then SIGKILL to what is left of each group. */
  async close(): Promise<void> {
    const running = this.backgrounds.filter((b) => b.child.exitCode === null);
    for (const b of running) killGroup(b.child, "SIGTERM");
    await Promise.all(
      running.map(async (b) => {
        const timer = setTimeout(() => killGroup(b.child, "SIGKILL"), 30_000);
        await b.exit;
        clearTimeout(timer);
        // Nodes a background command started may outlive it (e.g. a sandbox killed hard).
        killGroup(b.child, "SIGKILL");
      }),
    );
  }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is gone.
  }
}

/**
 * Runs a guide's steps in order; reports each step's duration as a test diagnostic. What it started
 * is stopped at the end; its folder is removed if every step passed (kept for a look otherwise).
 */
async function runGuide(name: string, diagnostic: (message: string) => void): Promise<void> {
  assert.ok(
    existsSync(join(ROOT, "dist/src/cli/main.js")),
    "the guides run the compiled ccf-ts: npm run build first",
  );
  const file = join(GUIDES, name);
  const steps = parseGuide(readFileSync(file, "utf8"), `docs/guides/${name}`);
  assert.ok(
    steps.some((s) => s.kind === "run"),
    `${name} has no commands`,
  );
  const dir = mkdtempSync(join(tmpdir(), "ccf-ts-guide-"));
  const session = new Session(dir, `docs/guides/${name}`);
  sessions.push(session);
  await session.init();
  try {
    for (const step of steps) {
      const started = performance.now();
      if (step.kind === "run") await session.run(step);
      else if (step.kind === "file") await session.writeFile(step);
      else if (step.kind === "background") await session.background(step);
      else await session.stop(step);
      if (step.kind !== "file") {
        diagnostic(
          `${name}:${step.line} ${step.kind}: ${Math.round(performance.now() - started)} ms`,
        );
      }
    }
  } catch (e) {
    diagnostic(`${name}: the guide's folder is kept: ${dir}`);
    throw e;
  } finally {
    await session.close();
  }
  rmSync(dir, { recursive: true, force: true });
}

const sessions: Session[] = [];
after(async () => {
  await Promise.all(sessions.map((s) => s.close()));
});

describe("the guides' conventions", () => {
  it("parses blocks, files, expectations, backgrounds and stops, and refuses other shells", () => {
    const steps = parseGuide(
      [
        "# t",
        "```json file=a/b.json",
        '{"x": 1}',
        "```",
        "```sh",
        "echo hi",
        "```",
        "```text expect",
        "h...",
        "```",
        '```sh background name=sb until="Press Ctrl+C"',
        "ccf-ts sandbox",
        "```",
        "<!-- guide-test: stop sb -->",
        "```sh exit=1",
        "false",
        "```",
        "```json",
        "{}",
        "```",
      ].join("\n"),
      "t.md",
    );
    assert.deepEqual(
      steps.map((s) => s.kind),
      ["file", "run", "background", "stop", "run"],
    );
    assert.deepEqual(steps[0], { kind: "file", line: 2, path: "a/b.json", content: '{"x": 1}\n' });
    assert.deepEqual(steps[1], {
      kind: "run",
      line: 5,
      code: "echo hi\n",
      exit: 0,
      expect: ["h..."],
    });
    assert.equal((steps[2] as { until: string }).until, "Press Ctrl+C");
    assert.equal((steps[4] as { exit: number }).exit, 1);
    assert.throws(() => parseGuide("```bash\nls\n```\n", "t.md"), /```sh blocks/);
    assert.throws(() => parseGuide("```text expect\nx\n```\n", "t.md"), /must follow a sh block/);
    assert.throws(() => parseGuide("```sh\nls\n", "t.md"), /unterminated/);
  });

  it("matches expected lines in order, with ... as a wildcard", () => {
    const out = 'a\n{"state": "Open", "id": "abc"}\nb\n';
    assert.equal(matchesInOrder(out, ['"state": "Open"...', "b"]), undefined);
    assert.equal(matchesInOrder(out, ["b", '"state": "Open"']), '"state": "Open"');
    assert.equal(matchesInOrder(out, ['"state": "Closed"']), '"state": "Closed"');
  });

  it("rewrites the guides' ports to free ones, consistently", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ccf-ts-guide-"));
    const s = new Session(dir, "t.md");
    await s.init();
    rmSync(dir, { recursive: true, force: true });
    const text = await s.rewrite("https://127.0.0.1:8000 --port 8000 localhost:8001 :8000x 9000");
    const m = /^https:\/\/127\.0\.0\.1:(\d+) --port (\d+) localhost:(\d+) :8000x 9000$/.exec(text);
    assert.ok(m !== null, text);
    assert.equal(m[1], m[2]);
    assert.notEqual(m[1], m[3]);
    assert.equal(s.env.CCF_TS_URL, `https://127.0.0.1:${m[1]}`);
    for (const p of [m[1], m[3]]) assert.ok(Number(p) < 8000 || Number(p) > 8002, p);
  });
});

// The guides run side by side: most of their time is spent waiting on processes and polls.
describe("docs/guides: every command runs", { concurrency: true }, () => {
  it("first-app.md", async (t) => {
    await runGuide("first-app.md", (m) => t.diagnostic(m));
  });

  it("governing.md", async (t) => {
    await runGuide("governing.md", (m) => t.diagnostic(m));
  });

  it("operating.md", async (t) => {
    await runGuide("operating.md", (m) => t.diagnostic(m));
  });
});
