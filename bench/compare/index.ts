#!/usr/bin/env node
/**
 * bench/compare — real etcd 3.4 and etcd-ts side by side on this machine, in the same run
 * (DESIGN §7). Both start as single members on their own loopback ports with data dirs on the
 * same filesystem; the same load-generator workloads (bench/load) run against each in
 * alternation (A B A B …, --rounds rounds) and the table shows medians: workload, etcd, etcd-ts,
 * ratio (etcd-ts / etcd). Also fsyncs per committed entry from /metrics, resident memory, restart
 * time to healthy and on-disk size after loading 100k keys of 256 B (and 1M with --big).
 * Writes bench/results/compare-<time>.json, latest.json and SVG charts.
 *
 *   node dist/bench/compare/index.js [--rounds 3] [--seconds 5] [--big] [--quick] [--out DIR]
 *                                     [--work-dir DIR] [--keep] [--etcd PATH]
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, totalmem, tmpdir } from "node:os";
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import {
  benchKey,
  defaultLoadOptions,
  runLoad,
  type LoadOptions,
  type LoadResult,
} from "../load/index.js";
import { Member, type System } from "./members.js";
import { renderBarChart } from "./svg.js";
import { serverNodeFlags } from "../../tools/node-flags.js";

/** Options of one comparison. */
export interface CompareOptions {
  rounds: number;
  secondsPerRun: number;
  big: boolean;
  outDir: string;
  workDir: string | null;
  keep: boolean;
  etcdPath: string;
}

/** One table row: medians per system; `lowerIsBetter` rows read the ratio the other way. */
export interface CompareRow {
  name: string;
  unit: string;
  lowerIsBetter: boolean;
  etcd: number | null;
  etcdTs: number | null;
  ratio: number | null;
  /** Every round's value, for the JSON. */
  samples: { etcd: (number | null)[]; etcdTs: (number | null)[] };
}

const SYSTEMS: System[] = ["etcd", "etcd-ts"];
const COLORS: Record<System, string> = { etcd: "#4a7bd0", "etcd-ts": "#e07b39" };

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, "package.json")) && !dir.endsWith("dist")) return dir;
    dir = dirname(dir);
  }
  throw new Error("no package.json above " + fileURLToPath(import.meta.url));
}

function median(xs: (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

function log(msg: string): void {
  process.stderr.write(`[compare ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** A throughput workload of the table. */
interface Workload {
  name: string;
  opts: Partial<LoadOptions>;
  /** Which number of the result the row shows. */
  metric: "rps" | "events";
}

function connsFor(clients: number): number {
  return Math.min(100, Math.max(1, Math.ceil(clients / 10)));
}

function workloads(secondsPerRun: number): Workload[] {
  const put = (clients: number): Workload => ({
    name: `put ${clients} client${clients === 1 ? "" : "s"}`,
    metric: "rps",
    opts: {
      workload: "put",
      clients,
      conns: connsFor(clients),
      durationSeconds: secondsPerRun,
      keySizeBytes: 8,
      valSizeBytes: 256,
      keySpaceSize: 100_000,
    },
  });
  const range = (c: "l" | "s", clients: number): Workload => ({
    name: `range ${c === "l" ? "linearizable" : "serializable"} ${clients} client${clients === 1 ? "" : "s"}`,
    metric: "rps",
    opts: {
      workload: "range",
      clients,
      conns: connsFor(clients),
      durationSeconds: secondsPerRun,
      consistency: c,
      rangeKey: benchKey(0, 8).toString("latin1"),
    },
  });
  return [
    put(1),
    put(16),
    put(128),
    put(1000),
    range("l", 1),
    range("l", 128),
    range("s", 1),
    range("s", 128),
    {
      name: "txn-put 128 clients",
      metric: "rps",
      opts: {
        workload: "txn-put",
        clients: 128,
        conns: connsFor(128),
        durationSeconds: secondsPerRun,
        keySizeBytes: 8,
        valSizeBytes: 256,
        keySpaceSize: 100_000,
      },
    },
    {
      name: "watch events/s (1000 watchers, 10 keys)",
      metric: "events",
      opts: {
        workload: "watch",
        streams: 10,
        watchPerStream: 100,
        watchedKeyTotal: 10,
        putTotal: 2000 * Math.max(1, Math.round(secondsPerRun / 2)),
        clients: 16,
        conns: 2,
        valSizeBytes: 256,
      },
    },
  ];
}

/** Runs one workload against one member; null (logged) when it failed. */
async function runOne(m: Member, w: Workload): Promise<LoadResult | null> {
  const o: LoadOptions = {
    ...defaultLoadOptions(w.opts.workload ?? "put"),
    ...w.opts,
    endpoints: [m.endpoint],
  };
  try {
    const r = await runLoad(o);
    const tried = r.requests;
    if (r.errors > 0)
      log(
        `${m.spec.system} ${w.name}: ${r.errors} errors of ${tried}: ${JSON.stringify(r.errorCounts).slice(0, 300)}`,
      );
    if (tried === 0 || r.errors > tried * 0.1) return null;
    return r;
  } catch (err) {
    log(`${m.spec.system} ${w.name}: failed: ${(err as Error).message}`);
    return null;
  }
}

async function loadKeys(m: Member, keys: number): Promise<boolean> {
  const o: LoadOptions = {
    ...defaultLoadOptions("put"),
    endpoints: [m.endpoint],
    clients: 256,
    conns: 16,
    total: keys,
    keySpaceSize: keys,
    sequentialKeys: true,
    keySizeBytes: 8,
    valSizeBytes: 256,
  };
  try {
    const t0 = performance.now();
    const r = await runLoad(o);
    log(
      `${m.spec.system}: loaded ${keys} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s (${r.requestsPerSecond.toFixed(0)}/s, ${r.errors} errors)`,
    );
    return r.errors === 0;
  } catch (err) {
    log(`${m.spec.system}: loading ${keys} keys failed: ${(err as Error).message}`);
    return false;
  }
}

function fsyncCounters(
  sys: System,
  mt: Map<string, number>,
): { fsyncs: number; entries: number } | null {
  if (sys === "etcd-ts" && mt.has("etcd_ts_wal_fsyncs_total")) {
    return {
      fsyncs: mt.get("etcd_ts_wal_fsyncs_total")!,
      entries: mt.get("etcd_ts_wal_entries_total") ?? 0,
    };
  }
  const f = mt.get("etcd_disk_wal_fsync_duration_seconds_count");
  const e = mt.get("etcd_server_proposals_committed_total");
  if (f === undefined || e === undefined) return null;
  return { fsyncs: f, entries: e };
}

function row(
  name: string,
  unit: string,
  lowerIsBetter: boolean,
  etcd: (number | null)[],
  etcdTs: (number | null)[],
): CompareRow {
  const a = median(etcd);
  const b = median(etcdTs);
  return {
    name,
    unit,
    lowerIsBetter,
    etcd: a,
    etcdTs: b,
    ratio: a !== null && b !== null && a > 0 ? b / a : null,
    samples: { etcd, etcdTs },
  };
}

function fmtNum(v: number | null, unit: string): string {
  if (v === null) return "n/a";
  if (unit === "ratio") return v.toFixed(3);
  if (v >= 100) return v.toFixed(0);
  return v.toFixed(2);
}

/** The table as aligned text. */
export function formatTable(rows: CompareRow[]): string {
  const head = ["workload", "etcd", "etcd-ts", "ratio"];
  const body = rows.map((r) => [
    `${r.name} (${r.unit}${r.lowerIsBetter ? ", lower is better" : ""})`,
    fmtNum(r.etcd, r.unit),
    fmtNum(r.etcdTs, r.unit),
    r.ratio === null ? "n/a" : `${r.ratio.toFixed(2)}x`,
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join("  ");
  return [line(head), w.map((n) => "-".repeat(n)).join("  "), ...body.map(line)].join("\n");
}

/** The table as Markdown (for the README). */
export function formatMarkdown(rows: CompareRow[]): string {
  const out = ["| workload | etcd | etcd-ts | etcd-ts / etcd |", "| --- | ---: | ---: | ---: |"];
  for (const r of rows) {
    out.push(
      `| ${r.name} (${r.unit}${r.lowerIsBetter ? ", lower is better" : ""}) | ${fmtNum(r.etcd, r.unit)} | ${fmtNum(r.etcdTs, r.unit)} | ${r.ratio === null ? "n/a" : r.ratio.toFixed(2) + "x"} |`,
    );
  }
  return out.join("\n");
}

function machine(workDir: string): Record<string, string | number> {
  let disk = "";
  try {
    disk =
      execFileSync("df", ["-hT", workDir], { encoding: "utf8" }).trim().split("\n").pop() ?? "";
  } catch {
    disk = "unknown";
  }
  let etcdVersion = "";
  try {
    etcdVersion =
      execFileSync("/usr/bin/etcd", ["--version"], { encoding: "utf8" }).split("\n")[0] ?? "";
  } catch {
    etcdVersion = "unknown";
  }
  return {
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? "",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    disk,
    node: process.version,
    etcd: etcdVersion,
  };
}

/**
 * Runs the whole comparison and returns its rows. Throws when real etcd is missing (the CLI
 * prints how to install it) or etcd-ts is not built.
 */
export async function compare(o: CompareOptions): Promise<{
  rows: CompareRow[];
  runs: Record<string, unknown>[];
  machine: Record<string, string | number>;
}> {
  const root = repoRoot();
  const etcdTsJs = join(root, "dist", "tools", "etcd-ts.js");
  if (!existsSync(o.etcdPath))
    throw new Error(
      `real etcd not found at ${o.etcdPath}: install it with apt-get install -y etcd-server`,
    );
  if (!existsSync(etcdTsJs))
    throw new Error(`etcd-ts not built (${etcdTsJs} missing): run npm run build`);
  const workDir = o.workDir ?? mkdtempSync(join(tmpdir(), "etcd-ts-compare-"));
  mkdirSync(workDir, { recursive: true });
  const members: Record<System, Member> = {
    etcd: await Member.create({
      system: "etcd",
      command: [o.etcdPath],
      dataDir: join(workDir, "etcd"),
      logFile: join(workDir, "etcd.log"),
    }),
    "etcd-ts": await Member.create({
      system: "etcd-ts",
      command: [process.execPath, ...serverNodeFlags, etcdTsJs],
      dataDir: join(workDir, "etcd-ts"),
      logFile: join(workDir, "etcd-ts.log"),
    }),
  };
  const up: Record<System, boolean> = { etcd: false, "etcd-ts": false };
  const rows: CompareRow[] = [];
  const runs: Record<string, unknown>[] = [];
  const mach = machine(workDir);
  log(`work dir ${workDir}; machine ${JSON.stringify(mach)}`);
  try {
    for (const s of SYSTEMS) {
      try {
        const ms = await members[s].start();
        up[s] = true;
        log(
          `${s} healthy after ${ms.toFixed(0)} ms (pid ${members[s].pid}, ${members[s].endpoint})`,
        );
      } catch (err) {
        log(`${s}: ${(err as Error).message}`);
      }
    }
    // Memory, restart and disk after 100k keys (and 1M with --big).
    const sizes = o.big ? [100_000, 1_000_000] : [100_000];
    for (const keys of sizes) {
      const label = keys >= 1_000_000 ? `${keys / 1_000_000}M` : `${keys / 1000}k`;
      const rss: Record<System, number | null> = { etcd: null, "etcd-ts": null };
      const restart: Record<System, number | null> = { etcd: null, "etcd-ts": null };
      const disk: Record<System, number | null> = { etcd: null, "etcd-ts": null };
      for (const s of SYSTEMS) {
        if (!up[s] || !(await loadKeys(members[s], keys))) continue;
        rss[s] = members[s].rssBytes() / 2 ** 20;
        await members[s].stop();
        disk[s] = members[s].diskBytes() / 2 ** 20;
        try {
          restart[s] = await members[s].start();
          log(
            `${s}: ${label} keys: RSS ${rss[s]!.toFixed(1)} MiB, disk ${disk[s]!.toFixed(1)} MiB, restart ${restart[s]!.toFixed(0)} ms`,
          );
        } catch (err) {
          up[s] = false;
          log(`${s}: restart failed: ${(err as Error).message}`);
        }
      }
      rows.push(row(`RSS after ${label} keys of 256 B`, "MiB", true, [rss.etcd], [rss["etcd-ts"]]));
      rows.push(
        row(
          `restart to healthy after ${label} keys`,
          "ms",
          true,
          [restart.etcd],
          [restart["etcd-ts"]],
        ),
      );
      rows.push(
        row(`on-disk size after ${label} keys`, "MiB", true, [disk.etcd], [disk["etcd-ts"]]),
      );
    }
    // Throughput rows, A B A B.
    const ws = workloads(o.secondsPerRun);
    const samples = new Map<string, Record<System, (number | null)[]>>();
    const p99 = new Map<string, Record<System, (number | null)[]>>();
    const fsync: Record<System, { fsyncs: number; entries: number }> = {
      etcd: { fsyncs: 0, entries: 0 },
      "etcd-ts": { fsyncs: 0, entries: 0 },
    };
    for (const w of ws) {
      samples.set(w.name, { etcd: [], "etcd-ts": [] });
      p99.set(w.name, { etcd: [], "etcd-ts": [] });
    }
    for (let round = 0; round < o.rounds; round++) {
      for (const w of ws) {
        for (const s of SYSTEMS) {
          let value: number | null = null;
          let r: LoadResult | null = null;
          if (up[s]) {
            const before =
              w.name === "put 128 clients" ? await members[s].metrics().catch(() => null) : null;
            r = await runOne(members[s], w);
            if (before !== null && r !== null) {
              const after = await members[s].metrics().catch(() => null);
              const a = before === null ? null : fsyncCounters(s, before);
              const b = after === null ? null : fsyncCounters(s, after);
              if (a !== null && b !== null) {
                fsync[s].fsyncs += b.fsyncs - a.fsyncs;
                fsync[s].entries += b.entries - a.entries;
              }
            }
            if (r !== null)
              value = w.metric === "events" ? r.watch!.eventsPerSecond : r.requestsPerSecond;
          }
          samples.get(w.name)![s].push(value);
          p99.get(w.name)![s].push(r === null ? null : r.latencyMs.p99);
          runs.push({ round, workload: w.name, system: s, value, result: r });
          log(
            `round ${round + 1}/${o.rounds} ${w.name} ${s}: ${value === null ? "n/a" : value.toFixed(0)}${r === null ? "" : ` p99 ${r.latencyMs.p99.toFixed(2)} ms`}`,
          );
        }
      }
    }
    const tput: CompareRow[] = [];
    for (const w of ws) {
      const sm = samples.get(w.name)!;
      tput.push(
        row(w.name, w.metric === "events" ? "events/s" : "req/s", false, sm.etcd, sm["etcd-ts"]),
      );
    }
    for (const name of [
      "put 1 client",
      "put 128 clients",
      "put 1000 clients",
      "range linearizable 128 clients",
    ]) {
      const pm = p99.get(name)!;
      tput.push(row(`p99 latency ${name}`, "ms", true, pm.etcd, pm["etcd-ts"]));
    }
    const perEntry = (s: System): number | null =>
      fsync[s].entries > 0 ? fsync[s].fsyncs / fsync[s].entries : null;
    tput.push(
      row(
        "fsyncs per committed entry (put 128 clients)",
        "ratio",
        true,
        [perEntry("etcd")],
        [perEntry("etcd-ts")],
      ),
    );
    rows.unshift(...tput);
    return { rows, runs, machine: mach };
  } finally {
    for (const s of SYSTEMS) await members[s].stop();
    if (!o.keep && o.workDir === null) rmSync(workDir, { recursive: true, force: true });
    else log(`kept ${workDir}`);
  }
}

/** Writes results JSON, the Markdown table and the two SVG charts into `outDir`. */
export function writeResults(
  outDir: string,
  res: {
    rows: CompareRow[];
    runs: Record<string, unknown>[];
    machine: Record<string, string | number>;
  },
  command: string,
): string[] {
  mkdirSync(outDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const doc = {
    date: new Date().toISOString(),
    command,
    machine: res.machine,
    rows: res.rows,
    runs: res.runs,
  };
  const files: string[] = [];
  const put = (name: string, body: string): void => {
    writeFileSync(join(outDir, name), body);
    files.push(join(outDir, name));
  };
  put(`compare-${stamp}.json`, JSON.stringify(doc, null, 2) + "\n");
  put("latest.json", JSON.stringify({ ...doc, runs: undefined }, null, 2) + "\n");
  put(
    "latest.md",
    `Command: \`${command}\`\n\nMachine: ${JSON.stringify(res.machine)}\n\n${formatMarkdown(res.rows)}\n`,
  );
  const byName = new Map(res.rows.map((r) => [r.name, r]));
  const clients = [1, 16, 128, 1000];
  put(
    "throughput-vs-clients.svg",
    renderBarChart({
      title: "put throughput vs clients (fsync on, medians)",
      yLabel: "puts/s",
      categories: clients.map((c) => `${c} client${c === 1 ? "" : "s"}`),
      series: SYSTEMS.map((s) => ({
        name: s,
        color: COLORS[s],
        values: clients.map((c) => {
          const r = byName.get(`put ${c} client${c === 1 ? "" : "s"}`);
          return r === undefined ? null : s === "etcd" ? r.etcd : r.etcdTs;
        }),
      })),
    }),
  );
  // Latency percentiles of put at 128 clients from the median-throughput run of each system.
  const pcts = ["p50", "p90", "p99", "p999"] as const;
  const pick = (s: System): LoadResult | null => {
    const rs = res.runs
      .filter(
        (x) => x["workload"] === "put 128 clients" && x["system"] === s && x["result"] !== null,
      )
      .map((x) => x["result"] as LoadResult);
    if (rs.length === 0) return null;
    rs.sort((a, b) => a.requestsPerSecond - b.requestsPerSecond);
    return rs[Math.floor(rs.length / 2)]!;
  };
  put(
    "latency-percentiles.svg",
    renderBarChart({
      title: "put latency percentiles, 128 clients (median run)",
      yLabel: "ms",
      categories: [...pcts],
      series: SYSTEMS.map((s) => {
        const r = pick(s);
        return {
          name: s,
          color: COLORS[s],
          values: pcts.map((p) => (r === null ? null : r.latencyMs[p])),
        };
      }),
    }),
  );
  return files;
}

function parseArgs(argv: string[]): CompareOptions {
  const o: CompareOptions = {
    rounds: 3,
    secondsPerRun: 5,
    big: false,
    outDir: join(repoRoot(), "bench", "results"),
    workDir: null,
    keep: false,
    etcdPath: "/usr/bin/etcd",
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--rounds") o.rounds = Math.max(1, Number(next()));
    else if (a === "--seconds") o.secondsPerRun = Math.max(0.5, Number(next()));
    else if (a === "--big") o.big = true;
    else if (a === "--quick") {
      o.rounds = 1;
      o.secondsPerRun = 2;
    } else if (a === "--out") o.outDir = next();
    else if (a === "--work-dir") o.workDir = next();
    else if (a === "--keep") o.keep = true;
    else if (a === "--etcd") o.etcdPath = next();
    else throw new Error(`unknown flag ${a}`);
  }
  return o;
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  let o: CompareOptions;
  try {
    o = parseArgs(argv);
  } catch (err) {
    process.stderr.write(`bench:compare: ${(err as Error).message}\n`);
    return 1;
  }
  if (!existsSync(o.etcdPath)) {
    process.stderr.write(
      `bench:compare: real etcd is not installed at ${o.etcdPath}.\nInstall Debian's etcd 3.4 with:\n  apt-get install -y etcd-server\n`,
    );
    return 1;
  }
  const res = await compare(o);
  const command = `node dist/bench/compare/index.js ${argv.join(" ")}`.trim();
  process.stdout.write(`\n${formatTable(res.rows)}\n\n`);
  for (const f of writeResults(o.outDir, res, command)) process.stdout.write(`wrote ${f}\n`);
  return 0;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    (c) => (process.exitCode = c),
    (err: unknown) => {
      process.stderr.write(
        `bench:compare: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exitCode = 1;
    },
  );
}
