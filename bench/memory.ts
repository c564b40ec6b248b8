#!/usr/bin/env node
/**
 * bench/memory — memory per key and restart time at scale, real etcd 3.4 and etcd-ts side by side
 * (issue 13 "Memory at scale", DESIGN §7 "memory per key, start and restart time").
 *
 * For each system: start a fresh single member, load `--keys` keys of 8 B with 256 B values
 * (etcd's own `benchmark put --sequential-keys`, or etcd-ts-bench with the same keys), wait
 * `--settle-ms`, read VmRSS from /proc/<pid>/status (and, for etcd-ts, V8's heap and external
 * memory from /metrics), again after `--idle-ms` with no requests (V8 and Go hand memory back to
 * the OS some time after a load stops), stop it (SIGTERM) and note the data dir's size. Then restart each
 * member `--restarts` times, alternating between the systems (etcd, etcd-ts, etcd, …): the time
 * from spawn to /health true, the CPU time the process used until then (utime + stime of its
 * pid: less sensitive to a busy machine than the wall time), VmRSS at that moment and again after
 * `--settle-ms`. Memory does not
 * depend on how busy the machine is; the times do, so every sample records the load average.
 *
 *   node dist/bench/memory.js [--keys 1000000] [--restarts 3] [--settle-ms 5000] [--idle-ms 120000]
 *                              [--systems etcd,etcd-ts] [--loadgen etcd-benchmark|etcd-ts-bench]
 *                              [--work-dir DIR] [--keep] [--out DIR] [--etcd PATH]
 *                              [--etcd-benchmark PATH] [--etcd-ts-args "--flag v …"]
 *                              [--etcd-ts-node-args "--v8-flag …"]
 *
 * Writes bench/results/memory-<time>.json and prints a Markdown table.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { defaultLoadOptions, runLoad } from "./load/index.js";
import { Member, type System } from "./compare/members.js";
import {
  etcdBenchmarkMissing,
  etcdBenchmarkPath,
  preloadSpec,
  runEtcdBenchmark,
} from "./compare/etcd-benchmark.js";

/** Options of one run; see the module comment for the flags. */
export interface MemoryBenchOptions {
  keys: number;
  restarts: number;
  settleMs: number;
  /** A second reading this long after the first one after the load (0: none). */
  idleMs: number;
  systems: ("etcd" | "etcd-ts")[];
  loadgen: "etcd-benchmark" | "etcd-ts-bench";
  etcdBenchmarkPath: string;
  etcdPath: string;
  workDir: string | null;
  keep: boolean;
  outDir: string;
  /** Extra flags for the etcd-ts member. */
  etcdTsArgs: string[];
  /** Node options for the etcd-ts member (V8 flags such as --max-semi-space-size=4). */
  etcdTsNodeArgs: string[];
}

/** Node's memory as /metrics reports it (prom-client's default metrics), MiB. */
export interface NodeMemory {
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
  /** V8's heap spaces (size the space holds from the OS), MiB: young generation, old space. */
  newSpaceMiB: number;
  oldSpaceMiB: number;
}

/**
 * Where the resident pages are (/proc/<pid>/smaps), MiB: malloc's brk heap, other anonymous
 * memory (V8's heap, mmapped malloc chunks, Go's heap), and file-backed pages (the binary, its
 * libraries, and for etcd its mmapped db).
 */
export interface RssParts {
  mallocHeapMiB: number;
  anonMiB: number;
  fileMiB: number;
  /** file-backed pages of the member's data dir (etcd's mmapped member/snap/db) */
  dataDirFileMiB: number;
}

/** One reading of a member. */
export interface MemorySample {
  rssMiB: number;
  parts: RssParts | null;
  node: NodeMemory | null;
  /** 1-minute load average when the sample was taken. */
  loadAverage1m: number;
}

/** What one system gave. */
export interface SystemResult {
  system: "etcd" | "etcd-ts";
  loadSeconds: number;
  loadRequestsPerSecond: number;
  /**
   * CPU time (user + system, all threads) the member used during the load, ms: less sensitive to
   * a busy machine than loadSeconds.
   */
  loadCpuMs: number | null;
  afterLoad: MemorySample;
  /** idleMs after afterLoad, with no requests in between (V8 and Go give memory back idle). */
  afterLoadIdle: MemorySample | null;
  diskMiB: number;
  dbFileMiB: number | null;
  restarts: {
    msToHealthy: number;
    /** CPU time (user + system, all threads) the process used from spawn to healthy, ms. */
    cpuMsToHealthy: number | null;
    atHealthy: MemorySample;
    settled: MemorySample;
  }[];
}

const repoRoot = (): string => join(dirname(fileURLToPath(import.meta.url)), "..", "..");

function log(msg: string): void {
  process.stderr.write(`[memory ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function nodeMemory(m: Member): Promise<NodeMemory | null> {
  if (m.spec.system === "etcd") return null;
  try {
    const x = await m.metrics();
    const get = (name: string): number => (x.get(name) ?? NaN) / 2 ** 20;
    return {
      heapUsedMiB: get("nodejs_heap_size_used_bytes"),
      heapTotalMiB: get("nodejs_heap_size_total_bytes"),
      externalMiB: get("nodejs_external_memory_bytes"),
      newSpaceMiB: get('nodejs_heap_space_size_total_bytes{space="new"}'),
      oldSpaceMiB: get('nodejs_heap_space_size_total_bytes{space="old"}'),
    };
  } catch {
    return null;
  }
}

/** Sums the Rss lines of /proc/<pid>/smaps by kind of mapping (see RssParts). */
export function parseSmaps(text: string, dataDir: string): RssParts {
  const parts: RssParts = { mallocHeapMiB: 0, anonMiB: 0, fileMiB: 0, dataDirFileMiB: 0 };
  let kind: "heap" | "anon" | "file" | "data" = "anon";
  for (const line of text.split("\n")) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head !== null) {
      const name = head[1]!;
      if (name === "[heap]") kind = "heap";
      else if (name.startsWith("/")) kind = name.startsWith(dataDir) ? "data" : "file";
      else kind = "anon";
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss === null) continue;
    const mib = Number(rss[1]) / 1024;
    if (kind === "heap") parts.mallocHeapMiB += mib;
    else if (kind === "anon") parts.anonMiB += mib;
    else {
      parts.fileMiB += mib;
      if (kind === "data") parts.dataDirFileMiB += mib;
    }
  }
  return parts;
}

async function sample(m: Member): Promise<MemorySample> {
  const rssMiB = m.rssBytes() / 2 ** 20;
  let parts: RssParts | null = null;
  try {
    parts = parseSmaps(readFileSync(`/proc/${m.pid}/smaps`, "utf8"), m.spec.dataDir);
  } catch {
    // smaps unreadable: RSS alone
  }
  return { rssMiB, parts, node: await nodeMemory(m), loadAverage1m: loadavg()[0]! };
}

function fileMiB(path: string): number | null {
  try {
    return statSync(path).size / 2 ** 20;
  } catch {
    return null;
  }
}

async function load(
  m: Member,
  o: MemoryBenchOptions,
): Promise<{ seconds: number; perSecond: number }> {
  const t0 = performance.now();
  if (o.loadgen === "etcd-benchmark") {
    const r = await runEtcdBenchmark(
      o.etcdBenchmarkPath,
      m.endpoint,
      preloadSpec(o.keys),
      o.keys,
      Math.max(120_000, o.keys * 2),
    );
    if (r.errors > 0) throw new Error(`${m.spec.system}: ${r.errors} puts failed`);
    return { seconds: (performance.now() - t0) / 1000, perSecond: r.requestsPerSecond };
  }
  const r = await runLoad({
    ...defaultLoadOptions("put"),
    endpoints: [m.endpoint],
    clients: 128,
    conns: 16,
    total: o.keys,
    keySpaceSize: o.keys,
    sequentialKeys: true,
    keySizeBytes: 8,
    valSizeBytes: 256,
  });
  if (r.errors > 0) throw new Error(`${m.spec.system}: ${r.errors} puts failed`);
  return { seconds: (performance.now() - t0) / 1000, perSecond: r.requestsPerSecond };
}

function fmtSample(s: MemorySample): string {
  const n = s.node;
  const heap =
    n === null
      ? ""
      : `; V8 heap ${n.heapUsedMiB.toFixed(0)}/${n.heapTotalMiB.toFixed(0)} MiB, external ${n.externalMiB.toFixed(0)} MiB, new space ${n.newSpaceMiB.toFixed(0)}, old space ${n.oldSpaceMiB.toFixed(0)}`;
  const p = s.parts;
  const parts =
    p === null
      ? ""
      : ` (malloc heap ${p.mallocHeapMiB.toFixed(0)}, anon ${p.anonMiB.toFixed(0)}, files ${p.fileMiB.toFixed(0)} of which data dir ${p.dataDirFileMiB.toFixed(0)}${heap})`;
  return `RSS ${s.rssMiB.toFixed(0)} MiB${parts}, load ${s.loadAverage1m.toFixed(2)}`;
}

/** Runs the measurement (see the module comment). */
export async function measureMemory(o: MemoryBenchOptions): Promise<SystemResult[]> {
  const workDir = o.workDir ?? mkdtempSync(join(tmpdir(), "etcd-ts-memory-"));
  mkdirSync(workDir, { recursive: true });
  const etcdTsJs = join(repoRoot(), "dist", "tools", "etcd-ts.js");
  const members = new Map<string, Member>();
  const results = new Map<string, SystemResult>();
  try {
    for (const system of o.systems) {
      const dataDir = join(workDir, system);
      rmSync(dataDir, { recursive: true, force: true });
      const m = await Member.create({
        system: system as System,
        command:
          system === "etcd" ? [o.etcdPath] : [process.execPath, ...o.etcdTsNodeArgs, etcdTsJs],
        dataDir,
        logFile: join(workDir, `${system}.log`),
        extraArgs: system === "etcd-ts" ? o.etcdTsArgs : [],
      });
      members.set(system, m);
      await m.start();
      log(`${system}: loading ${o.keys} keys with ${o.loadgen} (load ${loadavg()[0]!.toFixed(2)})`);
      const cpuBefore = m.cpuMicros();
      const l = await load(m, o);
      const cpuAfter = m.cpuMicros();
      const loadCpuMs =
        cpuBefore === null || cpuAfter === null ? null : (cpuAfter - cpuBefore) / 1000;
      await sleep(o.settleMs);
      const afterLoad = await sample(m);
      log(
        `${system}: loaded in ${l.seconds.toFixed(1)} s (CPU ${loadCpuMs?.toFixed(0) ?? "?"} ms); ${fmtSample(afterLoad)}`,
      );
      let afterLoadIdle: MemorySample | null = null;
      if (o.idleMs > 0) {
        await sleep(o.idleMs);
        afterLoadIdle = await sample(m);
        log(`${system}: ${o.idleMs} ms later, idle: ${fmtSample(afterLoadIdle)}`);
      }
      await m.stop();
      results.set(system, {
        system,
        loadSeconds: l.seconds,
        loadRequestsPerSecond: l.perSecond,
        loadCpuMs,
        afterLoad,
        afterLoadIdle,
        diskMiB: m.diskBytes() / 2 ** 20,
        dbFileMiB: fileMiB(join(dataDir, "member", "snap", "db")),
        restarts: [],
      });
    }
    for (let i = 0; i < o.restarts; i++) {
      for (const system of o.systems) {
        const m = members.get(system)!;
        const ms = await m.start();
        const cpu = m.cpuMicros();
        const atHealthy = await sample(m);
        await sleep(o.settleMs);
        const settled = await sample(m);
        await m.stop();
        const cpuMs = cpu === null ? null : cpu / 1000;
        results
          .get(system)!
          .restarts.push({ msToHealthy: ms, cpuMsToHealthy: cpuMs, atHealthy, settled });
        log(
          `${system}: restart ${i + 1}: healthy after ${ms.toFixed(0)} ms (CPU ${cpuMs?.toFixed(0) ?? "?"} ms); at healthy ${fmtSample(atHealthy)}; after ${o.settleMs} ms ${fmtSample(settled)}`,
        );
      }
    }
  } finally {
    for (const m of members.values()) await m.stop();
    if (!o.keep && o.workDir === null) rmSync(workDir, { recursive: true, force: true });
    else log(`kept ${workDir}`);
  }
  return o.systems.map((s) => results.get(s)!).filter((r) => r !== undefined);
}

/** The Markdown table of a run: one column per system, etcd-ts / etcd last. */
export function formatMemoryTable(rs: SystemResult[], keys: number): string {
  const label = keys >= 1e6 ? `${keys / 1e6}M` : `${keys / 1e3}k`;
  const by = (s: string) => rs.find((r) => r.system === s);
  const e = by("etcd");
  const t = by("etcd-ts");
  const rows: [string, (r: SystemResult) => number | null][] = [
    [`RSS after loading ${label} keys of 256 B (MiB)`, (r) => r.afterLoad.rssMiB],
    [`RSS after loading, then idle (MiB)`, (r) => r.afterLoadIdle?.rssMiB ?? null],
    [
      `RSS after a restart, at healthy (MiB, median)`,
      (r) => (r.restarts.length === 0 ? null : median(r.restarts.map((x) => x.atHealthy.rssMiB))),
    ],
    [
      `RSS after a restart, settled (MiB, median)`,
      (r) => (r.restarts.length === 0 ? null : median(r.restarts.map((x) => x.settled.rssMiB))),
    ],
    [
      `restart to healthy (ms, median)`,
      (r) => (r.restarts.length === 0 ? null : median(r.restarts.map((x) => x.msToHealthy))),
    ],
    [
      `CPU time to healthy (ms, median)`,
      (r) => {
        const xs = r.restarts.flatMap((x) => (x.cpuMsToHealthy === null ? [] : [x.cpuMsToHealthy]));
        return xs.length === 0 ? null : median(xs);
      },
    ],
    [`load: seconds`, (r) => r.loadSeconds],
    [`load: member CPU time (ms)`, (r) => r.loadCpuMs],
    [`on-disk size (MiB)`, (r) => r.diskMiB],
    [`db file (MiB)`, (r) => r.dbFileMiB],
  ];
  const f = (v: number | null | undefined): string =>
    v === null || v === undefined || !Number.isFinite(v)
      ? "—"
      : v >= 100
        ? v.toFixed(0)
        : v.toFixed(1);
  const lines = ["| row | etcd | etcd-ts | etcd-ts / etcd |", "| --- | ---: | ---: | ---: |"];
  for (const [name, get] of rows) {
    const a = e === undefined ? null : get(e);
    const b = t === undefined ? null : get(t);
    const ratio = a !== null && b !== null && a > 0 ? `${(b / a).toFixed(2)}x` : "—";
    lines.push(`| ${name} | ${f(a)} | ${f(b)} | ${ratio} |`);
  }
  return lines.join("\n");
}

function parseArgs(argv: string[]): MemoryBenchOptions {
  const o: MemoryBenchOptions = {
    keys: 1_000_000,
    restarts: 3,
    settleMs: 5000,
    idleMs: 120_000,
    systems: ["etcd", "etcd-ts"],
    loadgen: "etcd-benchmark",
    etcdBenchmarkPath: etcdBenchmarkPath(repoRoot()),
    etcdPath: "/usr/bin/etcd",
    workDir: null,
    keep: false,
    outDir: join(repoRoot(), "bench", "results"),
    etcdTsArgs: [],
    etcdTsNodeArgs: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const int = (min: number): number => {
      const v = Number(next());
      if (!Number.isInteger(v) || v < min) throw new Error(`${a} needs an integer >= ${min}`);
      return v;
    };
    if (a === "--keys") o.keys = int(1);
    else if (a === "--restarts") o.restarts = int(0);
    else if (a === "--settle-ms") o.settleMs = int(0);
    else if (a === "--idle-ms") o.idleMs = int(0);
    else if (a === "--systems") {
      const s = next().split(",");
      if (s.some((x) => x !== "etcd" && x !== "etcd-ts"))
        throw new Error("--systems takes etcd and/or etcd-ts");
      o.systems = s as ("etcd" | "etcd-ts")[];
    } else if (a === "--loadgen") {
      const v = next();
      if (v !== "etcd-benchmark" && v !== "etcd-ts-bench")
        throw new Error("--loadgen must be etcd-benchmark or etcd-ts-bench");
      o.loadgen = v;
    } else if (a === "--etcd-benchmark") o.etcdBenchmarkPath = next();
    else if (a === "--etcd") o.etcdPath = next();
    else if (a === "--work-dir") o.workDir = next();
    else if (a === "--keep") o.keep = true;
    else if (a === "--out") o.outDir = next();
    else if (a === "--etcd-ts-args")
      o.etcdTsArgs = next()
        .split(" ")
        .filter((x) => x !== "");
    else if (a === "--etcd-ts-node-args")
      o.etcdTsNodeArgs = next()
        .split(" ")
        .filter((x) => x !== "");
    else throw new Error(`unknown flag ${a}`);
  }
  return o;
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const o = parseArgs(argv);
  if (o.systems.includes("etcd") && !existsSync(o.etcdPath))
    throw new Error(`real etcd is not installed at ${o.etcdPath} (apt-get install -y etcd-server)`);
  if (o.loadgen === "etcd-benchmark") {
    const missing = etcdBenchmarkMissing(o.etcdBenchmarkPath);
    if (missing !== null) throw new Error(missing);
  }
  const startedAt = new Date().toISOString();
  const rs = await measureMemory(o);
  const table = formatMemoryTable(rs, o.keys);
  process.stdout.write(`\n${table}\n\n`);
  mkdirSync(o.outDir, { recursive: true });
  const file = join(o.outDir, `memory-${startedAt.replace(/[:.]/g, "-")}.json`);
  const command = `node dist/bench/memory.js ${argv.join(" ")}`.trim();
  writeFileSync(
    file,
    JSON.stringify(
      { command, startedAt, options: o, node: process.version, results: rs },
      null,
      2,
    ) + "\n",
  );
  process.stdout.write(`wrote ${file}\n`);
  return 0;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    (c) => (process.exitCode = c),
    (err: unknown) => {
      process.stderr.write(
        `bench:memory: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exitCode = 1;
    },
  );
}
