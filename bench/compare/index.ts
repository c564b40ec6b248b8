#!/usr/bin/env node
/**
 * bench/compare — real etcd 3.4 and etcd-ts side by side on this machine, in the same run
 * (DESIGN §7). Three single members start on their own loopback ports with data dirs on the
 * same filesystem: real etcd, etcd-ts (default fast transport) and etcd-ts with
 * `--experimental-grpc-transport grpc-js` (the reference transport; issue 6 asks for both
 * transports). The same load-generator workloads (bench/load) run against each in alternation
 * (A B C A B C …, --rounds rounds, after an unmeasured warm-up of every workload on every member,
 * --warmup-seconds each; the grpc-js member runs only issue 6's workloads: put at 1, 128
 * and 1000 clients and linearizable range at 128) and the table shows medians: workload, etcd,
 * etcd-ts, etcd-ts / etcd, etcd-ts grpc-js, etcd-ts grpc-js / etcd ("—" where a system did not
 * run the row, "n/a" where its run failed). Also the server's CPU per request for every
 * throughput row (utime + stime of the member's own pid from /proc/<pid>/stat, read just before
 * and after each run, over the requests the run completed), fsyncs per committed entry from
 * /metrics, resident memory, restart time to healthy and on-disk size after loading 100k keys of
 * 256 B (and 1M with --big). Writes bench/results/compare-<time>.json, latest.json, latest.md and
 * SVG charts.
 *
 * Two load generators (--loadgen): `etcd-ts-bench` (bench/load, the default) and
 * `etcd-benchmark`, etcd 3.4.23's own `tools/benchmark` (a Go clientv3/grpc-go client, built by
 * tools/build-etcd-benchmark.sh; see etcd-benchmark.ts). With etcd-benchmark, the tool also loads
 * the keys, only etcd and etcd-ts run (the grpc-js columns show "—"), every workload gets a p99
 * row, and the files are named `…-etcd-benchmark…` so they sit beside the default generator's.
 * Both generators run issue 12's watch latency (WATCH_LATENCY_WORKLOAD: 100 watchers, 100 puts/s),
 * whose p50 and p99 rows stand where a throughput row would, measured from the put's
 * acknowledgement as etcd's tool does; our generator adds the same from the put's send. Both add
 * rows counting failed requests, the tool a row of connections the server closed (grpc-go
 * reconnects).
 *
 * `--auth simple,jwt` (`npm run bench:auth`) runs issue 15's auth comparison instead (auth.ts):
 * put at 128 clients with auth on, Authenticate/s, and put p99 while 100 clients authenticate,
 * per token kind; its files are `…-auth…`. `--snapshots` (`npm run bench:snapshots`) runs issue 13's
 * snapshot and defragment rows instead (snapshots.ts: put p99 and the longest put while snapshots
 * and a Defragment run, snapshot time and MB/s, Defragment time), files `…-snapshots…`;
 * `--members 3` (`npm run bench:cluster`) issue 14's cluster rows (cluster.ts: 3-member clusters
 * of each, puts over every endpoint, linearizable ranges from followers, leader failover),
 * files `…-cluster…`. The workloads and how they run are in workloads.ts.
 *
 *   node dist/bench/compare/index.js [--rounds 3] [--seconds 5] [--big] [--quick] [--out DIR]
 *                                     [--work-dir DIR] [--keep] [--etcd PATH] [--keys 100000]
 *                                     [--workloads "put 128 clients,range linearizable 128 clients"]
 *                                     [--warmup-seconds 2] [--loadgen etcd-ts-bench|etcd-benchmark]
 *                                     [--etcd-benchmark PATH] [--auth simple,jwt]
 *                                     [--bcrypt-cost N] [--snapshots [--snapshot-count 10000]]
 *                                     [--members 1|3] [--failovers 3]
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { LoadResult } from "../load/index.js";
import { Member, clockTicksPerSecond, type MemberSpec, type System } from "./members.js";
import {
  RANGE_KEY,
  etcdBenchmarkMissing,
  etcdBenchmarkPath,
  type EtcdBenchmarkResult,
} from "./etcd-benchmark.js";
import {
  GRPC_JS_WORKLOADS,
  LOAD_GENERATORS,
  latencyOf,
  loadKeys,
  metricRow,
  metricValue,
  runOne,
  targetOf,
  workloadsFor,
  type LoadGenerator,
  type ToolContext,
  type Workload,
} from "./workloads.js";
import { SYSTEM_COLORS, renderBarChart } from "./svg.js";
import { compareAuth, parseAuthModes, type AuthTokenMode } from "./auth.js";
import { SNAPSHOT_COUNT, compareSnapshots } from "./snapshots.js";
import { clusterCharts, compareCluster } from "./cluster.js";
import {
  emptyPerSystem,
  formatMarkdown,
  formatTable,
  log,
  machine,
  repoRoot,
  row,
  type CompareRow,
} from "./rows.js";

export { formatMarkdown, formatTable, median, type CompareRow } from "./rows.js";
export { GRPC_JS_WORKLOADS, LOAD_GENERATORS, type LoadGenerator } from "./workloads.js";

/** Options of one comparison. */
export interface CompareOptions {
  /** Which load generator drives the members (the files and the JSON say which). */
  loadgen: LoadGenerator;
  /** etcd's benchmark tool binary, for loadgen "etcd-benchmark". */
  etcdBenchmarkPath: string;
  rounds: number;
  secondsPerRun: number;
  big: boolean;
  outDir: string;
  workDir: string | null;
  keep: boolean;
  etcdPath: string;
  /** Keys of 256 B loaded before the throughput runs (the memory, restart and disk rows' size). */
  preloadKeys: number;
  /** Run only the throughput workloads of these names (null: all); for quick checks and tests. */
  workloadNames: string[] | null;
  /**
   * Seconds of each workload run once on every member before round 1, unmeasured (0: none). The
   * members were just restarted (the restart row): a fresh Node process runs its request path
   * unoptimised until V8's JIT has seen it, on a heap just rebuilt from the WAL. Without a
   * warm-up, etcd-ts's round-1 p99 at 1 client was 1.5-3 ms in five runs out of five, where later
   * rounds gave 0.5-2 ms. etcd gets the same warm-up.
   */
  warmupSeconds: number;
  /**
   * Run the auth comparison (auth.ts) for these token kinds instead of the main one (null: the
   * main one). Its files are named `…-auth…`.
   */
  authModes: AuthTokenMode[] | null;
  /** With authModes: `--bcrypt-cost` of both members (null: their default, 10). */
  bcryptCost: number | null;
  /** Run issue 13's snapshot and defragment rows (snapshots.ts) instead; files `…-snapshots…`. */
  snapshots: boolean;
  /**
   * Members per system: 1 runs the single-member comparison; 3 runs issue 14's cluster rows
   * (cluster.ts) instead, files `…-cluster…`.
   */
  members: number;
  /** With members 3: leader kills per system for the failover rows. */
  failovers: number;
  /** With snapshots: --snapshot-count of both members. */
  snapshotCount: number;
}

const SYSTEMS: System[] = ["etcd", "etcd-ts", "etcd-ts grpc-js"];

/** Name of the CPU row of a throughput workload. */
export function cpuRowName(workload: string): string {
  return `server CPU µs per request — ${workload}`;
}

function fsyncCounters(
  sys: System,
  mt: Map<string, number>,
): { fsyncs: number; entries: number } | null {
  if (sys !== "etcd" && mt.has("etcd_ts_wal_fsyncs_total")) {
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

/** One run's server CPU per request, µs; null when /proc could not be read or nothing completed. */
function cpuPerRequest(
  before: number | null,
  after: number | null,
  r: LoadResult | null,
): number | null {
  if (before === null || after === null || r === null || r.requests <= 0) return null;
  return (after - before) / r.requests;
}

/**
 * Rows of what went wrong over all measured runs, per system: failed requests as the load
 * generator counted them (etcd's tool: its "Error distribution"), and with etcd's tool the
 * connections the server closed (grpc-go reconnects, see parseGrpcLog). Runs that did not finish
 * count nothing here (their rows show "n/a").
 */
function failureRows(runs: Record<string, unknown>[], withTool: boolean): CompareRow[] {
  const errors = emptyPerSystem((): (number | null)[] => [null]);
  const reconnects = emptyPerSystem((): (number | null)[] => [null]);
  for (const run of runs) {
    const s = run["system"] as System;
    const r = run["result"] as LoadResult | EtcdBenchmarkResult | null;
    if (r === null) continue;
    errors[s] = [(errors[s][0] ?? 0) + r.errors];
    if ("tool" in r) reconnects[s] = [(reconnects[s][0] ?? 0) + r.tool.connections.reconnects];
  }
  const ran = runs.some((r) => r["system"] === "etcd-ts grpc-js");
  const out = [row("failed requests, all measured runs", "count", true, errors, ran)];
  if (withTool)
    out.push(
      row("connections closed by the server, all measured runs", "count", true, reconnects, ran),
    );
  return out;
}

/**
 * Runs the whole comparison and returns its rows. Throws when real etcd is missing (the CLI
 * prints how to install it) or etcd-ts is not built. A member that fails to start leaves "n/a"
 * in its column; the others still run.
 */
export async function compare(o: CompareOptions): Promise<{
  rows: CompareRow[];
  runs: Record<string, unknown>[];
  /** The unmeasured warm-up runs: workload, system, value (not in any row). */
  warmups: Record<string, unknown>[];
  machine: Record<string, string | number>;
  loadgen: LoadGenerator;
}> {
  const root = repoRoot();
  const etcdTsJs = join(root, "dist", "tools", "etcd-ts.js");
  if (!existsSync(o.etcdPath))
    throw new Error(
      `real etcd not found at ${o.etcdPath}: install it with apt-get install -y etcd-server`,
    );
  if (!existsSync(etcdTsJs))
    throw new Error(`etcd-ts not built (${etcdTsJs} missing): run npm run build`);
  const byLoadgen = (seconds: number): Workload[] => workloadsFor(o.loadgen, seconds);
  let tool: ToolContext | null = null;
  if (o.loadgen === "etcd-benchmark") {
    const missing = etcdBenchmarkMissing(o.etcdBenchmarkPath);
    if (missing !== null) throw new Error(missing);
    tool = { binary: o.etcdBenchmarkPath, ratePerSecond: new Map() };
  }
  const ws = byLoadgen(o.secondsPerRun).filter(
    (w) => o.workloadNames === null || o.workloadNames.includes(w.name),
  );
  if (o.workloadNames !== null && ws.length !== o.workloadNames.length)
    throw new Error(
      `unknown workload in ${JSON.stringify(o.workloadNames)}; known: ${byLoadgen(1)
        .map((w) => w.name)
        .join(", ")}`,
    );
  const workDir = o.workDir ?? mkdtempSync(join(tmpdir(), "etcd-ts-compare-"));
  mkdirSync(workDir, { recursive: true });
  const etcdTs = (dir: string, extraArgs: string[]): Omit<MemberSpec, "system"> => ({
    command: [process.execPath, etcdTsJs],
    dataDir: join(workDir, dir),
    logFile: join(workDir, `${dir}.log`),
    extraArgs,
  });
  const members: Record<System, Member> = {
    etcd: await Member.create({
      system: "etcd",
      command: [o.etcdPath],
      dataDir: join(workDir, "etcd"),
      logFile: join(workDir, "etcd.log"),
    }),
    "etcd-ts": await Member.create({ system: "etcd-ts", ...etcdTs("etcd-ts", []) }),
    "etcd-ts grpc-js": await Member.create({
      system: "etcd-ts grpc-js",
      ...etcdTs("etcd-ts-grpc-js", ["--experimental-grpc-transport", "grpc-js"]),
    }),
  };
  const up = emptyPerSystem(() => false);
  const rows: CompareRow[] = [];
  const runs: Record<string, unknown>[] = [];
  const mach = { ...machine(workDir), clockTicksPerSecond: clockTicksPerSecond() };
  log(`work dir ${workDir}; machine ${JSON.stringify(mach)}`);
  try {
    // etcd's tool drives etcd and etcd-ts only; the grpc-js member stays down ("—" columns).
    for (const s of SYSTEMS) {
      if (s === "etcd-ts grpc-js" && tool !== null) continue;
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
    // Memory, restart and disk after o.preloadKeys keys (and 1M with --big), etcd and etcd-ts.
    // The grpc-js member gets the first load too, unmeasured, so every member serves the
    // throughput runs from the same data (the range key exists, the key space is as full).
    const sizes = o.big ? [o.preloadKeys, 1_000_000] : [o.preloadKeys];
    if (up["etcd-ts grpc-js"])
      await loadKeys(targetOf(members["etcd-ts grpc-js"]), o.preloadKeys, tool);
    for (const keys of sizes) {
      const label = keys >= 1_000_000 ? `${keys / 1_000_000}M` : `${keys / 1000}k`;
      const rss = emptyPerSystem((): (number | null)[] => [null]);
      const restart = emptyPerSystem((): (number | null)[] => [null]);
      const disk = emptyPerSystem((): (number | null)[] => [null]);
      for (const s of ["etcd", "etcd-ts"] as const) {
        if (!up[s] || !(await loadKeys(targetOf(members[s]), keys, tool))) continue;
        rss[s] = [members[s].rssBytes() / 2 ** 20];
        await members[s].stop();
        disk[s] = [members[s].diskBytes() / 2 ** 20];
        try {
          restart[s] = [await members[s].start()];
          log(
            `${s}: ${label} keys: RSS ${rss[s][0]!.toFixed(1)} MiB, disk ${disk[s][0]!.toFixed(1)} MiB, restart ${restart[s][0]!.toFixed(0)} ms`,
          );
        } catch (err) {
          up[s] = false;
          log(`${s}: restart failed: ${(err as Error).message}`);
        }
      }
      rows.push(row(`RSS after ${label} keys of 256 B`, "MiB", true, rss, false));
      rows.push(row(`restart to healthy after ${label} keys`, "ms", true, restart, false));
      rows.push(row(`on-disk size after ${label} keys`, "MiB", true, disk, false));
    }
    // The tool's range workloads read RANGE_KEY: put it (256 B) on every member.
    if (tool !== null) {
      const value = randomBytes(256);
      for (const s of SYSTEMS) if (up[s]) await members[s].put(Buffer.from(RANGE_KEY), value);
    }
    // Warm-up: every workload once per member, unmeasured (see CompareOptions.warmupSeconds).
    // With the tool, it also measures each workload's rate, which sizes the measured runs'
    // --total (the faster system's rate × --seconds; both systems run the same total).
    const warmups: Record<string, unknown>[] = [];
    if (o.warmupSeconds > 0) {
      const warm = byLoadgen(o.warmupSeconds).filter((w) => ws.some((x) => x.name === w.name));
      for (const w of warm) {
        const rates: number[] = [];
        for (const s of SYSTEMS) {
          if ((s === "etcd-ts grpc-js" && !w.grpcJs) || !up[s]) continue;
          const r = await runOne(targetOf(members[s]), w, tool);
          const value = r === null ? null : metricValue(w, r);
          if (r !== null) rates.push(r.requestsPerSecond);
          warmups.push({ workload: w.name, system: s, value });
          log(
            `warm-up ${w.name} ${s}: ${value === null ? "n/a" : value.toFixed(2)} (not measured)`,
          );
        }
        if (tool !== null && rates.length > 0) tool.ratePerSecond.set(w.name, Math.max(...rates));
      }
    }
    // Throughput rows, A B C A B C (C only on issue 6's workloads).
    const samples = new Map<string, Record<System, (number | null)[]>>();
    const p99 = new Map<string, Record<System, (number | null)[]>>();
    const cpu = new Map<string, Record<System, (number | null)[]>>();
    // our generator's watch-latency also measures from the put's send: p50 and p99 of that
    const sendP50 = new Map<string, Record<System, (number | null)[]>>();
    const sendP99 = new Map<string, Record<System, (number | null)[]>>();
    const fsync = emptyPerSystem(() => ({ fsyncs: 0, entries: 0 }));
    for (const w of ws) {
      samples.set(
        w.name,
        emptyPerSystem(() => []),
      );
      p99.set(
        w.name,
        emptyPerSystem(() => []),
      );
      cpu.set(
        w.name,
        emptyPerSystem(() => []),
      );
      if (w.metric === "watch-latency" && tool === null) {
        sendP50.set(
          w.name,
          emptyPerSystem(() => []),
        );
        sendP99.set(
          w.name,
          emptyPerSystem(() => []),
        );
      }
    }
    for (let round = 0; round < o.rounds; round++) {
      for (const w of ws) {
        for (const s of SYSTEMS) {
          if (s === "etcd-ts grpc-js" && !w.grpcJs) continue;
          let value: number | null = null;
          let r: LoadResult | null = null;
          let cpuUs: number | null = null;
          if (up[s]) {
            const before =
              w.name === "put 128 clients" ? await members[s].metrics().catch(() => null) : null;
            // CPU is read right around the load run, after the /metrics scrape, so the scrape
            // does not count; the member is this tool's own child, read by its pid.
            const cpu0 = members[s].cpuMicros();
            r = await runOne(targetOf(members[s]), w, tool);
            const cpu1 = members[s].cpuMicros();
            cpuUs = cpuPerRequest(cpu0, cpu1, r);
            if (before !== null && r !== null) {
              const after = await members[s].metrics().catch(() => null);
              const a = before === null ? null : fsyncCounters(s, before);
              const b = after === null ? null : fsyncCounters(s, after);
              if (a !== null && b !== null) {
                fsync[s].fsyncs += b.fsyncs - a.fsyncs;
                fsync[s].entries += b.entries - a.entries;
              }
            }
            if (r !== null) value = metricValue(w, r);
          }
          samples.get(w.name)![s].push(value);
          p99.get(w.name)![s].push(r === null ? null : latencyOf(w, r).p99);
          cpu.get(w.name)![s].push(cpuUs);
          sendP50.get(w.name)?.[s].push(r === null ? null : r.latencyMs.p50);
          sendP99.get(w.name)?.[s].push(r === null ? null : r.latencyMs.p99);
          runs.push({
            round,
            workload: w.name,
            system: s,
            value,
            serverCpuMicrosPerRequest: cpuUs,
            result: r,
          });
          const shown =
            value === null ? "n/a" : value.toFixed(w.metric === "watch-latency" ? 3 : 0);
          const p99Ms = r === null ? null : latencyOf(w, r).p99;
          log(
            `round ${round + 1}/${o.rounds} ${w.name} ${s}: ${shown}${p99Ms === null ? "" : ` p99 ${p99Ms.toFixed(2)} ms`}${cpuUs === null ? "" : ` cpu ${cpuUs.toFixed(1)} µs/req`}${r?.watch === undefined || w.metric !== "watch-latency" ? "" : ` (${r.watch.eventsBeforeAck} of ${r.watch.ackLatencyMs.count} events before the put's ack)`}`,
          );
        }
      }
    }
    const tput: CompareRow[] = [];
    for (const w of ws) {
      const m = metricRow(w);
      tput.push(row(m.name, m.unit, m.lowerIsBetter, samples.get(w.name)!, w.grpcJs));
    }
    // p99 rows: issue 6's workloads and watch-latency with our generator; every workload with
    // etcd's tool. Our generator's watch-latency adds its latencies from the put's send.
    for (const w of ws) {
      if (tool === null && !GRPC_JS_WORKLOADS.includes(w.name) && w.metric !== "watch-latency")
        continue;
      tput.push(row(`p99 latency ${w.name}`, "ms", true, p99.get(w.name)!, w.grpcJs));
    }
    for (const [name, v] of sendP50)
      tput.push(row(`p50 latency from the put's send — ${name}`, "ms", true, v, false));
    for (const [name, v] of sendP99)
      tput.push(row(`p99 latency from the put's send — ${name}`, "ms", true, v, false));
    // For the watch row the requests are its puts: CPU per put, with the event fan-out it causes.
    for (const w of ws) tput.push(row(cpuRowName(w.name), "µs", true, cpu.get(w.name)!, w.grpcJs));
    if (ws.some((w) => w.name === "put 128 clients")) {
      const perEntry = (s: System): (number | null)[] => [
        fsync[s].entries > 0 ? fsync[s].fsyncs / fsync[s].entries : null,
      ];
      tput.push(
        row(
          "fsyncs per committed entry (put 128 clients)",
          "ratio",
          true,
          {
            etcd: perEntry("etcd"),
            "etcd-ts": perEntry("etcd-ts"),
            "etcd-ts grpc-js": perEntry("etcd-ts grpc-js"),
          },
          tool === null, // the grpc-js member runs put 128 clients with our generator only
        ),
      );
    }
    tput.push(...failureRows(runs, tool !== null));
    rows.unshift(...tput);
    return { rows, runs, warmups, machine: mach, loadgen: o.loadgen };
  } finally {
    for (const s of SYSTEMS) await members[s].stop();
    if (!o.keep && o.workDir === null) rmSync(workDir, { recursive: true, force: true });
    else log(`kept ${workDir}`);
  }
}

/**
 * Writes results JSON, the Markdown table and the SVG charts (put throughput vs clients, put
 * latency percentiles at 128 clients, server CPU per request on issue 6's workloads) into
 * `outDir`; returns the paths written. With loadgen "etcd-benchmark" every name carries
 * `-etcd-benchmark` (compare-etcd-benchmark-<time>.json, latest-etcd-benchmark.md, …), and the
 * JSON and Markdown name the load generator.
 */
export function writeResults(
  outDir: string,
  res: {
    rows: CompareRow[];
    runs: Record<string, unknown>[];
    warmups?: Record<string, unknown>[];
    machine: Record<string, string | number>;
    loadgen?: LoadGenerator;
    /**
     * "auth", "snapshots" or "cluster" for those comparisons: files `…-auth…` (`…-snapshots…`,
     * `…-cluster…`); charts only for the main rows and the cluster's (clusterCharts).
     */
    kind?: "main" | "auth" | "snapshots" | "cluster";
  },
  command: string,
): string[] {
  mkdirSync(outDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const loadgen = res.loadgen ?? "etcd-ts-bench";
  const kind = res.kind ?? "main";
  const sfx = `${kind === "main" ? "" : `-${kind}`}${loadgen === "etcd-ts-bench" ? "" : `-${loadgen}`}`;
  const doc = {
    date: new Date().toISOString(),
    command,
    loadgen,
    machine: res.machine,
    rows: res.rows,
    runs: res.runs,
    warmups: res.warmups ?? [],
  };
  const files: string[] = [];
  const put = (name: string, body: string): void => {
    writeFileSync(join(outDir, name), body);
    files.push(join(outDir, name));
  };
  put(`compare${sfx}-${stamp}.json`, JSON.stringify(doc, null, 2) + "\n");
  put(
    `latest${sfx}.json`,
    JSON.stringify({ ...doc, runs: undefined, warmups: undefined }, null, 2) + "\n",
  );
  put(
    `latest${sfx}.md`,
    `Command: \`${command}\`\n\nLoad generator: ${loadgen}\n\nMachine: ${JSON.stringify(res.machine)}\n\n${formatMarkdown(res.rows)}\n`,
  );
  const byName = new Map(res.rows.map((r) => [r.name, r]));
  const valueOf = (name: string, s: System): number | null => {
    const r = byName.get(name);
    if (r === undefined) return null;
    return s === "etcd" ? r.etcd : s === "etcd-ts" ? r.etcdTs : r.etcdTsGrpcJs;
  };
  if (kind === "cluster") {
    for (const chart of clusterCharts(valueOf)) put(`${chart.name}${sfx}.svg`, chart.svg);
    return files;
  }
  if (kind !== "main") return files;
  const clients = [1, 16, 128, 1000];
  put(
    `throughput-vs-clients${sfx}.svg`,
    renderBarChart({
      title: "put throughput vs clients (fsync on, medians)",
      yLabel: "puts/s",
      categories: clients.map((c) => `${c} client${c === 1 ? "" : "s"}`),
      series: SYSTEMS.map((s) => ({
        name: s,
        color: SYSTEM_COLORS[s],
        values: clients.map((c) => valueOf(`put ${c} client${c === 1 ? "" : "s"}`, s)),
        notRun: clients.map(
          (c) =>
            s === "etcd-ts grpc-js" &&
            !GRPC_JS_WORKLOADS.includes(`put ${c} client${c === 1 ? "" : "s"}`),
        ),
      })),
    }),
  );
  put(
    `server-cpu-per-request${sfx}.svg`,
    renderBarChart({
      title: "server CPU per request (µs, lower is better, medians)",
      yLabel: "CPU µs per request",
      categories: [...GRPC_JS_WORKLOADS],
      series: SYSTEMS.map((s) => ({
        name: s,
        color: SYSTEM_COLORS[s],
        values: GRPC_JS_WORKLOADS.map((w) => valueOf(cpuRowName(w), s)),
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
    `latency-percentiles${sfx}.svg`,
    renderBarChart({
      title: "put latency percentiles, 128 clients (median run)",
      yLabel: "ms",
      categories: [...pcts],
      series: SYSTEMS.map((s) => {
        const r = pick(s);
        return {
          name: s,
          color: SYSTEM_COLORS[s],
          values: pcts.map((p) => (r === null ? null : r.latencyMs[p])),
        };
      }),
    }),
  );
  return files;
}

/**
 * The options of `npm run bench:compare` with no flags: our generator, 3 rounds of 5 s after a
 * 2 s warm-up, 100k keys preloaded, results into bench/results, real etcd at /usr/bin/etcd.
 */
export function defaultCompareOptions(): CompareOptions {
  return {
    loadgen: "etcd-ts-bench",
    etcdBenchmarkPath: etcdBenchmarkPath(repoRoot()),
    rounds: 3,
    secondsPerRun: 5,
    big: false,
    outDir: join(repoRoot(), "bench", "results"),
    workDir: null,
    keep: false,
    etcdPath: "/usr/bin/etcd",
    preloadKeys: 100_000,
    workloadNames: null,
    warmupSeconds: 2,
    authModes: null,
    bcryptCost: null,
    snapshots: false,
    members: 1,
    failovers: 3,
    snapshotCount: SNAPSHOT_COUNT,
  };
}

function parseArgs(argv: string[]): CompareOptions {
  const o = defaultCompareOptions();
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
      o.warmupSeconds = 1;
    } else if (a === "--out") o.outDir = next();
    else if (a === "--work-dir") o.workDir = next();
    else if (a === "--keep") o.keep = true;
    else if (a === "--etcd") o.etcdPath = next();
    else if (a === "--keys") o.preloadKeys = Math.max(1, Math.floor(Number(next())));
    else if (a === "--warmup-seconds") {
      const v = Number(next());
      if (!Number.isFinite(v) || v < 0) throw new Error("--warmup-seconds needs a number >= 0");
      o.warmupSeconds = v === 0 ? 0 : Math.max(0.5, v);
    } else if (a === "--loadgen") {
      const v = next();
      if (!(LOAD_GENERATORS as readonly string[]).includes(v))
        throw new Error(`--loadgen must be one of ${LOAD_GENERATORS.join(", ")}`);
      o.loadgen = v as LoadGenerator;
    } else if (a === "--etcd-benchmark") o.etcdBenchmarkPath = next();
    else if (a === "--auth") o.authModes = parseAuthModes(next());
    else if (a === "--snapshots") o.snapshots = true;
    else if (a === "--snapshot-count") {
      const v = Number(next());
      if (!Number.isInteger(v) || v < 1) throw new Error("--snapshot-count needs an integer >= 1");
      o.snapshotCount = v;
    } else if (a === "--members") {
      const v = Number(next());
      if (v !== 1 && v !== 3) throw new Error("--members must be 1 or 3");
      o.members = v;
    } else if (a === "--failovers") {
      const v = Number(next());
      if (!Number.isInteger(v) || v < 1 || v > 50)
        throw new Error("--failovers needs an integer in [1, 50]");
      o.failovers = v;
    } else if (a === "--bcrypt-cost") {
      const v = Number(next());
      if (!Number.isInteger(v) || v < 4 || v > 31)
        throw new Error("--bcrypt-cost needs an integer in [4, 31]");
      o.bcryptCost = v;
    } else if (a === "--workloads")
      o.workloadNames = next()
        .split(/,(?! )/) // "watch latency (100 watchers, 100 puts/s)" has a comma and a space
        .map((n) => n.trim())
        .filter((n) => n !== "");
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
  const missing = o.loadgen === "etcd-benchmark" ? etcdBenchmarkMissing(o.etcdBenchmarkPath) : null;
  if (missing !== null) {
    process.stderr.write(`bench:compare: ${missing}\n`);
    return 1;
  }
  const etcdTsJs = join(repoRoot(), "dist", "tools", "etcd-ts.js");
  const res =
    o.authModes !== null
      ? {
          ...(await compareAuth({ ...o, modes: o.authModes, etcdTsJs })),
          loadgen: o.loadgen,
          kind: "auth" as const,
        }
      : o.snapshots
        ? {
            ...(await compareSnapshots({ ...o, etcdTsJs })),
            loadgen: o.loadgen,
            kind: "snapshots" as const,
          }
        : o.members === 3
          ? {
              ...(await compareCluster({ ...o, etcdTsJs })),
              loadgen: o.loadgen,
              kind: "cluster" as const,
            }
          : await compare(o);
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
