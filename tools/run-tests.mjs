#!/usr/bin/env node
// Runs every compiled node:test suite under dist/test (or the folders/files given as arguments,
// e.g. `npm test -- btree wal`), two files at a time: the CI box has two cores.
// SEED=<n> is passed through to property and simulation tests so a failing seed replays.
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { spawnSync } from "node:child_process";

const root = new URL("../dist/test/", import.meta.url).pathname;

function walk(dir, out) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith(".test.js")) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
let files = walk(root, []);
if (filters.length > 0) {
  files = files.filter((f) => filters.some((w) => relative(root, f).includes(w)));
}
if (files.length === 0) {
  console.error(`no test files under ${root} match ${filters.join(" ")}`);
  process.exit(1);
}
const concurrency = process.env.TEST_CONCURRENCY ?? "2";
function run(list, env) {
  const result = spawnSync(
    process.execPath,
    ["--test", `--test-concurrency=${concurrency}`, "--test-reporter=spec", ...list],
    { stdio: "inherit", env: { ...process.env, ...env } },
  );
  return result.status ?? 1;
}
let status = run(files, {});
// Issue 6: the end-to-end and client-integration suites also run on the reference gRPC transport
// (@grpc/grpc-js) on a full run; the first pass used the default (lib/h2).
if (filters.length === 0 && process.env.ETCD_TS_GRPC_TRANSPORT === undefined) {
  const clientSuites = files.filter((f) => /\/(e2e|integration)\//.test(f));
  console.log(
    `\n# second pass: ${clientSuites.length} e2e/integration files on --experimental-grpc-transport grpc-js\n`,
  );
  const second = run(clientSuites, { ETCD_TS_GRPC_TRANSPORT: "grpc-js" });
  if (status === 0) status = second;
}
process.exit(status);
