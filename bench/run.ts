// `npm run bench -- NAME`: runs one benchmark, which prints its figures as `NAME: NUMBER UNIT`.

const benches: Record<string, () => Promise<void>> = {
  core: async () => (await import("./core.js")).run(),
  app: async () => (await import("./app.js")).run(),
  gcm: async () => (await import("./gcm.js")).run(),
  sandbox: async () => (await import("./sandbox.js")).run(),
  audit: async () => (await import("./audit.js")).run(),
  replication: async () => (await import("./replication.js")).run(),
  recovery: async () => (await import("./recovery.js")).run(),
};

const name = process.argv[2];
const bench = name === undefined ? undefined : benches[name];
if (bench === undefined) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(benches).join("|")}>\n`);
  process.exit(2);
}
await bench();
