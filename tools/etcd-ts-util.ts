#!/usr/bin/env node
/**
 * etcd-ts-util — offline and operator tools for etcd-ts (and etcd) data dirs and endpoints:
 *
 *   etcd-ts-util check disk --data-dir DIR [--count N] [--seconds S] [--record-bytes B] [--json]
 *   etcd-ts-util check perf --endpoints 127.0.0.1:2379 [--load s|m|l|xl] [--prefix P]
 *                           [--auto-compact] [--auto-defrag] [--duration 60s] [--json]
 *   etcd-ts-util wal dump --data-dir DIR [--start-index I --start-term T] [--max-entries N] [--json]
 *   etcd-ts-util snapshot status FILE [-w simple|table|json|fields]
 *   etcd-ts-util snapshot restore FILE [--data-dir D] [--wal-dir W] [--name N] [--initial-cluster C]
 *                [--initial-cluster-token T] [--initial-advertise-peer-urls U] [--skip-hash-check]
 *   etcd-ts-util verify --data-dir DIR [--wal-dir W] [--progress]
 *   etcd-ts-util torture [--members 1|3|5] [--duration D] [--seed S] [--power-loss] [--out DIR] …
 *   etcd-ts-util torture check --out DIR
 *   etcd-ts-util local-cluster [--members 1|3|5] [--tls] [--dir D] [--base-port P]
 *
 * Exit status: 0 pass / done, 1 usage error or failure to run, 2 a check that ran and failed
 * (torture: 3 when its checker could not decide within its budget).
 */
import { parseDurationSeconds } from "../bench/load/options.js";
import { checkDisk, defaultCheckDiskOptions, formatCheckDisk } from "./util/check-disk.js";
import { checkPerf } from "./util/check-perf.js";
import { UtilError, UtilUsageError } from "./util/errors.js";
import { parseUtilFlags } from "./util/flags.js";
import { DEFAULT_MAX_DUMP_ENTRIES, walDump } from "./util/wal-dump.js";
import {
  formatSnapshotStatus,
  restoreFlagNames,
  snapshotRestore,
  snapshotStatus,
} from "./util/snapshot.js";
import { verifyDataDir } from "./util/verify.js";
import { parseLocalClusterArgs, startLocalCluster } from "./util/local-cluster.js";
import { recheck, runTorture } from "./torture/index.js";
import { parseTortureArgs, parseTortureCheckArgs, TORTURE_USAGE } from "./torture/options.js";

const USAGE = `usage:
  etcd-ts-util check disk --data-dir DIR [--count N] [--seconds S] [--batch-seconds S] [--record-bytes B] [--json]
  etcd-ts-util check perf --endpoints HOST:PORT[,..] [--load s|m|l|xl] [--prefix P] [--auto-compact] [--auto-defrag] [--duration 60s] [--json]
  etcd-ts-util wal dump --data-dir DIR [--start-index I --start-term T] [--max-entries N] [--json]
  etcd-ts-util snapshot status FILE [-w simple|table|json|fields]
  etcd-ts-util snapshot restore FILE [--data-dir D] [--wal-dir W] [--name N] [--initial-cluster C] [--initial-cluster-token T] [--initial-advertise-peer-urls U] [--skip-hash-check]
  etcd-ts-util verify --data-dir DIR [--wal-dir W] [--progress]
  etcd-ts-util local-cluster [--members 1|3|5] [--tls] [--dir D] [--base-port P]
${TORTURE_USAGE}`;

const BOOLEAN_FLAGS = new Set([
  "json",
  "auto-compact",
  "auto-defrag",
  "progress",
  "skip-hash-check",
  "tls",
]);

/**
 * etcdctl's spellings for the snapshot commands: the file as the first argument, `-w X`,
 * `-w=X` and `--write-out X` for the output format. Returns the file and the remaining flags.
 */
function snapshotArgs(rest: readonly string[]): { file: string; argv: string[] } {
  const argv: string[] = [];
  let file = "";
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === "-w" || a === "--write-out") argv.push(`--write-out=${rest[++i] ?? ""}`);
    else if (a.startsWith("-w=")) argv.push(`--write-out=${a.slice(3)}`);
    else if (!a.startsWith("-") && file === "") file = a;
    else argv.push(a);
  }
  if (file === "") throw new UtilUsageError("snapshot filename expected");
  return { file, argv };
}

function parseFlags(argv: readonly string[]): Map<string, string> {
  return parseUtilFlags(argv, BOOLEAN_FLAGS);
}

function take(flags: Map<string, string>, allowed: string[]): void {
  for (const k of flags.keys())
    if (!allowed.includes(k)) throw new UtilUsageError(`unknown flag --${k}`);
}

function num(flags: Map<string, string>, name: string, dflt: number): number {
  const v = flags.get(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0)
    throw new UtilUsageError(`--${name} must be a non-negative number, got ${v}`);
  return n;
}

function required(flags: Map<string, string>, name: string): string {
  const v = flags.get(name);
  if (v === undefined || v === "") throw new UtilUsageError(`--${name} is required`);
  return v;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, sub, ...rest] = argv;
  if (cmd === undefined || cmd === "--help" || cmd === "help") {
    process.stdout.write(USAGE);
    return cmd === undefined ? 1 : 0;
  }
  if (cmd === "snapshot" && (sub === "status" || sub === "restore")) {
    const { file, argv: snapArgv } = snapshotArgs(rest);
    const f = parseFlags(snapArgv);
    if (sub === "status") {
      take(f, ["write-out"]);
      const out = formatSnapshotStatus(snapshotStatus(file), f.get("write-out") ?? "simple");
      process.stdout.write(out + "\n");
      return 0;
    }
    take(f, restoreFlagNames);
    for (const line of await snapshotRestore(file, f)) process.stderr.write(line + "\n");
    return 0;
  }
  if (cmd === "local-cluster") {
    const f = parseFlags(sub === undefined ? rest : [sub, ...rest]);
    take(f, ["members", "tls", "dir", "base-port"]);
    const lc = await startLocalCluster(parseLocalClusterArgs(f), (l) =>
      process.stdout.write(l + "\n"),
    );
    await new Promise<void>((res) => {
      process.once("SIGINT", () => res());
      process.once("SIGTERM", () => res());
    });
    await lc.stop();
    return 0;
  }
  if (cmd === "torture") {
    if (sub === "check") {
      const c = parseTortureCheckArgs(rest);
      const r = recheck(c.outDir, c.checkBudgetMs);
      process.stdout.write(r.report);
      return r.exitCode;
    }
    const o = parseTortureArgs(sub === undefined ? [] : [sub, ...rest]);
    const r = await runTorture(o, (line) => process.stderr.write(`torture: ${line}\n`));
    process.stdout.write(r.report);
    process.stderr.write(`torture: report in ${r.outDir}/report.txt, report.json, timeline.svg\n`);
    return r.exitCode;
  }
  if (cmd === "verify") {
    const f = parseFlags(sub === undefined ? [] : [sub, ...rest]);
    take(f, ["data-dir", "wal-dir", "progress"]);
    const showProgress = f.get("progress") === "true";
    const r = await verifyDataDir(required(f, "data-dir"), f.get("wal-dir") ?? "", (line) => {
      if (showProgress) process.stderr.write(line + "\n");
    });
    process.stdout.write([...r.lines, ...r.problems.map((p) => `FAILED ${p}`)].join("\n") + "\n");
    return r.problems.length === 0 ? 0 : 2;
  }
  const flags = parseFlags(rest);
  const json = flags.get("json") === "true";
  if (cmd === "check" && sub === "disk") {
    take(flags, ["data-dir", "count", "seconds", "batch-seconds", "record-bytes", "json"]);
    const o = defaultCheckDiskOptions(required(flags, "data-dir"));
    o.syncCount = num(flags, "count", o.syncCount);
    o.syncSeconds = num(flags, "seconds", o.syncSeconds);
    o.batchSeconds = num(flags, "batch-seconds", o.batchSeconds);
    o.recordBytes = Math.max(1, num(flags, "record-bytes", o.recordBytes));
    const r = checkDisk(o);
    process.stdout.write((json ? JSON.stringify(r, null, 2) : formatCheckDisk(r)) + "\n");
    return r.pass ? 0 : 2;
  }
  if (cmd === "check" && sub === "perf") {
    take(flags, [
      "endpoints",
      "load",
      "prefix",
      "auto-compact",
      "auto-defrag",
      "duration",
      "json",
      "progress",
    ]);
    const d = flags.get("duration");
    const r = await checkPerf({
      endpoints: (flags.get("endpoints") ?? "127.0.0.1:2379").split(",").filter((s) => s !== ""),
      load: flags.get("load") ?? "s",
      prefix: flags.get("prefix") ?? "/etcdctl-check-perf/",
      autoCompact: flags.get("auto-compact") === "true",
      autoDefrag: flags.get("auto-defrag") === "true",
      durationSeconds: d === undefined ? undefined : parseDurationSeconds(d),
      progress: flags.get("progress") === "true" || (!json && process.stderr.isTTY === true),
    });
    process.stdout.write((json ? JSON.stringify(r, null, 2) : r.lines.join("\n")) + "\n");
    return r.pass ? 0 : 2;
  }
  if (cmd === "wal" && sub === "dump") {
    take(flags, ["data-dir", "start-index", "start-term", "max-entries", "json"]);
    const si = flags.get("start-index");
    const lines = await walDump({
      dataDir: required(flags, "data-dir"),
      snapshot:
        si === undefined
          ? undefined
          : { index: num(flags, "start-index", 0), term: num(flags, "start-term", 0) },
      json,
      maxEntries: num(flags, "max-entries", DEFAULT_MAX_DUMP_ENTRIES),
    });
    process.stdout.write(lines.join("\n") + "\n");
    return 0;
  }
  throw new UtilUsageError(
    `unknown command ${[cmd, sub].filter((s) => s !== undefined).join(" ")}\n${USAGE}`,
  );
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`etcd-ts-util: ${err instanceof UtilError ? "" : ""}${msg}\n`);
    process.exitCode = 1;
  },
);
