/**
 * etcd's own load tool as a load generator: etcd 3.4.23's `tools/benchmark` (the tool behind
 * etcd's published performance figures, a Go gRPC client: clientv3 on grpc-go 1.33), built from
 * Debian packages by tools/build-etcd-benchmark.sh. `bench:compare --loadgen etcd-benchmark` runs
 * its workloads through it, and test/e2e/etcd-benchmark.test.ts drives a member with it.
 *
 * The tool runs a fixed number of requests (`--total`) and prints etcd's report (pkg/report):
 * Summary (Total, Slowest, Fastest, Average, Stddev, Requests/sec over the successful requests),
 * the latency distribution (10 … 99.9 %) and an "Error distribution" of failed requests by error
 * text. grpc-go logs connection state changes at INFO on stderr (the tool sets its logger to
 * stderr, verbosity 0); a connection the server closed shows as one more CONNECTING and READY.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { LatencySummaryMs } from "../load/histogram.js";
import type { LoadResult } from "../load/report.js";

/** The tool's path below the repository root, where tools/build-etcd-benchmark.sh puts it. */
export const ETCD_BENCHMARK_CACHE_PATH = join(".cache", "etcd-benchmark", "benchmark");

/** Bound on captured output of one tool run, bytes (each of stdout and stderr). */
export const MAX_TOOL_OUTPUT_BYTES = 16 * 1024 * 1024;

/**
 * The key the range workloads read: 8 bytes (as the put workloads' keys) with a 256 B value, put
 * before the range rounds (see rangeKeyValue). etcd-ts-bench reads benchKey(0, 8), eight NUL
 * bytes, which cannot be passed to the tool on its command line.
 */
export const RANGE_KEY = "rangekey";

/** The tool's binary: env ETCD_BENCHMARK, else `<root>/.cache/etcd-benchmark/benchmark`. */
export function etcdBenchmarkPath(repoRoot: string): string {
  return process.env.ETCD_BENCHMARK ?? join(repoRoot, ETCD_BENCHMARK_CACHE_PATH);
}

/** Why the tool cannot be used (missing binary), with how to build it; null when it can. */
export function etcdBenchmarkMissing(path: string): string | null {
  if (existsSync(path)) return null;
  return `etcd's benchmark tool not found at ${path}: build it with tools/build-etcd-benchmark.sh (root, ~35 s from nothing), or set ETCD_BENCHMARK`;
}

/** A run of the tool that did not produce a report (it exited non-zero, timed out, printed none). */
export class EtcdBenchmarkError extends Error {
  readonly code = "ETCD_BENCHMARK";
  constructor(message: string) {
    super(message);
    this.name = "EtcdBenchmarkError";
  }
}

/** One workload of the tool: its subcommand and flags except --total. */
export interface EtcdBenchmarkSpec {
  /** The tool's subcommand. */
  command: "put" | "range" | "txn-put" | "watch-latency";
  /** --clients (for watch-latency: the watchers, one watch each on the same key). */
  clients: number;
  /** --conns: gRPC connections the clients share (watch-latency opens one more for its puts). */
  conns: number;
  /** The subcommand's flags other than --total. */
  args: string[];
  /** watch-latency's --put-rate (puts/s); 0 for the unthrottled workloads. */
  putRatePerSecond: number;
  /** Requests/s expected on a 2-core box, only to size the warm-up run (see totalFor). */
  expectedPerSecond: number;
}

/** The tool's report, parsed. Latencies in ms, as LoadResult's. */
export interface EtcdBenchmarkReport {
  /** Summary "Total": seconds from the first result to the last. */
  totalSeconds: number;
  /** Summary "Requests/sec": successful requests (watch-latency: events) per second. */
  requestsPerSecond: number;
  latencyMs: LatencySummaryMs;
  /** Failed requests by error text ("Error distribution"). */
  errorCounts: Record<string, number>;
  errors: number;
}

/**
 * grpc-go's connection events from the tool's stderr. grpc-go 1.33 logs a received GOAWAY only at
 * verbosity 2, which the tool's logger does not have, so a GOAWAY (or any close by the server)
 * is seen as what follows it: the subchannel goes from READY back to CONNECTING, then READY again.
 * 128 clients on 100 connections against etcd-ts before issue 12's ping policy gave 528
 * reconnects and 2 puts failed with "transport is closing".
 *
 * The tool sets its logger only after its first connection is created, so that connection's own
 * first CONNECTING (always, here) and READY (sometimes) are not in the log: a normal run logs
 * 99 or 100 of each for 100 connections, and `reconnects` can undercount by one.
 */
export interface GrpcConnectionLog {
  /** Subchannels that went to CONNECTING (each first connect and each reconnect). */
  connecting: number;
  /** Subchannels that became READY (each first connect and each reconnect). */
  ready: number;
  /** CONNECTING or READY beyond the connections the tool opens: the server closed one. */
  reconnects: number;
  /** TRANSIENT_FAILURE transitions (a connection failed or was refused). */
  transientFailures: number;
}

/** A run's result: LoadResult's shape, plus the tool's argv and connection log. */
export interface EtcdBenchmarkResult extends LoadResult {
  tool: { argv: string[]; connections: GrpcConnectionLog };
}

function secondsField(text: string, name: string): number | null {
  const m = new RegExp(`^\\s*${name}:\\s+([0-9.eE+-]+|NaN)`, "m").exec(text);
  return m === null ? null : Number(m[1]);
}

/**
 * Parses the tool's stdout (pkg/report's text, with or without --precise; progress-bar text
 * before it is ignored). Percentiles the tool leaves out (99.9 % needs ≥ 1000 samples) are the
 * slowest. Throws EtcdBenchmarkError when there is neither a Summary nor an Error distribution.
 */
export function parseBenchmarkReport(stdout: string): EtcdBenchmarkReport {
  const errorCounts: Record<string, number> = {};
  let errors = 0;
  const at = stdout.indexOf("\nError distribution:\n");
  if (at >= 0) {
    for (const line of stdout.slice(at).split("\n").slice(2)) {
      const m = /^\s+\[(\d+)\]\t(.*)$/.exec(line);
      if (m === null) continue;
      errorCounts[m[2]!] = (errorCounts[m[2]!] ?? 0) + Number(m[1]);
      errors += Number(m[1]);
    }
  }
  const hasSummary = stdout.includes("\nSummary:\n");
  if (!hasSummary && at < 0) throw new EtcdBenchmarkError("no report in the tool's output");
  const zero: LatencySummaryMs = {
    count: 0,
    min: 0,
    avg: 0,
    stddev: 0,
    p50: 0,
    p90: 0,
    p99: 0,
    p999: 0,
    max: 0,
  };
  if (!hasSummary)
    return { totalSeconds: 0, requestsPerSecond: 0, latencyMs: zero, errorCounts, errors };
  const summary = stdout.slice(stdout.indexOf("\nSummary:\n"));
  const num = (name: string): number => {
    const v = secondsField(summary, name);
    if (v === null || !Number.isFinite(v))
      throw new EtcdBenchmarkError(`no "${name}" in the tool's summary`);
    return v;
  };
  const totalSeconds = num("Total");
  const requestsPerSecond = num("Requests/sec");
  const pct = new Map<number, number>();
  for (const m of summary.matchAll(/^\s+([0-9.]+)% in ([0-9.eE+-]+) secs\.$/gm))
    pct.set(Number(m[1]), Number(m[2]) * 1000);
  const slowestMs = num("Slowest") * 1000;
  const p = (q: number): number => pct.get(q) ?? slowestMs;
  return {
    totalSeconds,
    requestsPerSecond,
    latencyMs: {
      count: Math.round(requestsPerSecond * totalSeconds),
      min: num("Fastest") * 1000,
      avg: num("Average") * 1000,
      stddev: num("Stddev") * 1000,
      p50: p(50),
      p90: p(90),
      p99: p(99),
      p999: p(99.9),
      max: slowestMs,
    },
    errorCounts,
    errors,
  };
}

/**
 * Counts grpc-go's connection events in the tool's stderr (its INFO log). `connsOpened` is how
 * many connections the tool opens itself (--conns, plus one for watch-latency's putter);
 * CONNECTING or READY transitions beyond it are reconnects.
 */
export function parseGrpcLog(stderr: string, connsOpened: number): GrpcConnectionLog {
  const count = (re: RegExp): number => (stderr.match(re) ?? []).length;
  const connecting = count(/Subchannel Connectivity change to CONNECTING/g);
  const ready = count(/Subchannel Connectivity change to READY/g);
  return {
    connecting,
    ready,
    reconnects: Math.max(0, connecting - connsOpened, ready - connsOpened),
    transientFailures: count(/Subchannel Connectivity change to TRANSIENT_FAILURE/g),
  };
}

/** The tool's argv for `spec` against `endpoint` with --total `total`. */
export function benchmarkArgv(spec: EtcdBenchmarkSpec, endpoint: string, total: number): string[] {
  return [
    `--endpoints=${endpoint}`,
    `--clients=${spec.clients}`,
    `--conns=${spec.conns}`,
    "--precise",
    spec.command,
    ...spec.args,
    `--total=${total}`,
  ];
}

/**
 * The --total that makes a run last about `seconds`: watch-latency's put rate × seconds, else
 * `perSecond` (a measured rate, or spec.expectedPerSecond when there is none) × seconds, at least
 * ten requests per client and at most 5M.
 */
export function totalFor(
  spec: EtcdBenchmarkSpec,
  seconds: number,
  perSecond: number | null,
): number {
  if (spec.putRatePerSecond > 0) return Math.max(100, Math.round(spec.putRatePerSecond * seconds));
  const rate = perSecond !== null && perSecond > 0 ? perSecond : spec.expectedPerSecond;
  return Math.min(5_000_000, Math.max(spec.clients * 10, Math.round(rate * seconds)));
}

/**
 * Runs the tool once: `binary` with benchmarkArgv(spec, endpoint, total), killed (by its pid)
 * after `timeoutMs`. Resolves with the report as a LoadResult (workload "watch" for
 * watch-latency, whose latencyMs is put-to-watcher latency and requests its events) plus the
 * connection log. Rejects with EtcdBenchmarkError when the tool fails to start, exits non-zero,
 * times out or prints no report.
 */
export async function runEtcdBenchmark(
  binary: string,
  endpoint: string,
  spec: EtcdBenchmarkSpec,
  total: number,
  timeoutMs: number,
): Promise<EtcdBenchmarkResult> {
  const argv = benchmarkArgv(spec, endpoint, total);
  const { code, stdout, stderr, timedOut } = await runBounded(binary, argv, timeoutMs);
  if (timedOut)
    throw new EtcdBenchmarkError(`benchmark ${spec.command} timed out after ${timeoutMs} ms`);
  if (code !== 0)
    throw new EtcdBenchmarkError(
      `benchmark ${spec.command} exited with ${code}: ${lastLines(stderr + stdout, 5)}`,
    );
  const rep = parseBenchmarkReport(stdout);
  const ok = rep.latencyMs.count;
  return {
    workload: spec.command === "watch-latency" ? "watch" : spec.command,
    endpoints: [endpoint],
    conns: spec.conns,
    clients: spec.clients,
    procs: 1,
    requests: ok + rep.errors,
    errors: rep.errors,
    errorCounts: rep.errorCounts,
    elapsedSeconds: rep.totalSeconds,
    requestsPerSecond: rep.requestsPerSecond,
    latencyMs: rep.latencyMs,
    reauthentications: 0,
    tool: {
      argv,
      connections: parseGrpcLog(stderr, spec.conns + (spec.command === "watch-latency" ? 1 : 0)),
    },
  };
}

function lastLines(text: string, n: number): string {
  return text.trim().split("\n").slice(-n).join(" | ");
}

/** Spawns `cmd args`, captures bounded output, SIGKILLs it by pid after `timeoutMs`. */
function runBounded(
  cmd: string,
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string; timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    child.stdout.on("data", (b: Buffer) => {
      if (outBytes < MAX_TOOL_OUTPUT_BYTES) out.push(b);
      outBytes += b.length;
    });
    child.stderr.on("data", (b: Buffer) => {
      if (errBytes < MAX_TOOL_OUTPUT_BYTES) err.push(b);
      errBytes += b.length;
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(new EtcdBenchmarkError(`cannot run ${cmd}: ${e.message}`));
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({
        code,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        timedOut,
      });
    });
  });
}

/** Connections for `clients` clients in bench:compare's tool runs: one each, at most 100. */
function connsFor(clients: number): number {
  return Math.min(100, clients);
}

/** A named workload of bench:compare --loadgen etcd-benchmark. */
export interface NamedEtcdBenchmarkSpec {
  name: string;
  spec: EtcdBenchmarkSpec;
}

/** Name of the watch-latency workload (its rows are latencies, not throughput). */
export const WATCH_LATENCY_WORKLOAD = "watch latency (100 watchers, 100 puts/s)";

/**
 * Every workload of the tool that bench:compare runs, named as etcd-ts-bench's workloads where
 * they match: put and txn-put at 1/16/128/1000 clients (8 B keys, 256 B values, 100k key space:
 * issue 12's command, with --conns = clients up to 100), range linearizable and serializable at
 * 1/16/128/1000 clients (of RANGE_KEY), and watch-latency with 100 watchers on 10 connections
 * and 100 puts/s of 256 B (issue 12: "1, 16, 128 and 1000 clients for put, txn-put, range l/s,
 * and watch latency").
 */
export function etcdBenchmarkWorkloads(): NamedEtcdBenchmarkSpec[] {
  const plural = (n: number): string => `${n} client${n === 1 ? "" : "s"}`;
  const putArgs = ["--key-size=8", "--val-size=256", "--key-space-size=100000"];
  const put = (clients: number, expectedPerSecond: number): NamedEtcdBenchmarkSpec => ({
    name: `put ${plural(clients)}`,
    spec: {
      command: "put",
      clients,
      conns: connsFor(clients),
      args: putArgs,
      putRatePerSecond: 0,
      expectedPerSecond,
    },
  });
  const range = (
    c: "l" | "s",
    clients: number,
    expectedPerSecond: number,
  ): NamedEtcdBenchmarkSpec => ({
    name: `range ${c === "l" ? "linearizable" : "serializable"} ${plural(clients)}`,
    spec: {
      command: "range",
      clients,
      conns: connsFor(clients),
      args: [RANGE_KEY, `--consistency=${c}`],
      putRatePerSecond: 0,
      expectedPerSecond,
    },
  });
  const txnPut = (clients: number, expectedPerSecond: number): NamedEtcdBenchmarkSpec => ({
    name: `txn-put ${plural(clients)}`,
    spec: {
      command: "txn-put",
      clients,
      conns: connsFor(clients),
      args: putArgs,
      putRatePerSecond: 0,
      expectedPerSecond,
    },
  });
  return [
    put(1, 1500),
    put(16, 8000),
    put(128, 15000),
    put(1000, 18000),
    range("l", 1, 2500),
    range("l", 16, 6000),
    range("l", 128, 9000),
    range("l", 1000, 9000),
    range("s", 1, 3000),
    range("s", 16, 8000),
    range("s", 128, 12000),
    range("s", 1000, 12000),
    txnPut(1, 1000),
    txnPut(16, 5000),
    txnPut(128, 8000),
    txnPut(1000, 8000),
    {
      name: WATCH_LATENCY_WORKLOAD,
      spec: {
        command: "watch-latency",
        clients: 100,
        conns: 10,
        args: ["--put-rate=100", "--key-size=8", "--val-size=256"],
        putRatePerSecond: 100,
        expectedPerSecond: 10_000,
      },
    },
  ];
}

/**
 * The preload of bench:compare's restart/memory/disk rows through the tool: `keys` sequential keys
 * of 8 B with 256 B values from 256 clients on 16 connections (etcd-ts-bench's preload, the same
 * keys: the tool's key i is PutVarint(i) zero-padded, as benchKey).
 */
export function preloadSpec(keys: number): EtcdBenchmarkSpec {
  return {
    command: "put",
    clients: 256,
    conns: 16,
    args: ["--sequential-keys", "--key-size=8", "--val-size=256", `--key-space-size=${keys}`],
    putRatePerSecond: 0,
    expectedPerSecond: 10_000,
  };
}
