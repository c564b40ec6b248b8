/**
 * The comparison's throughput workloads and how one runs: with our generator (bench/load) or etcd
 * 3.4's own `benchmark` tool (etcd-benchmark.ts), against a target of one or more client
 * endpoints (one member, or the members of a cluster: our generator spreads its connections over
 * them round-robin, etcd's tool gives them all to clientv3, whose balancer round-robins requests).
 * Shared by the single-member comparison (index.ts), the snapshot/defrag rows (snapshots.ts) and
 * the cluster comparison (cluster.ts).
 */
import { performance } from "node:perf_hooks";
import {
  benchKey,
  defaultLoadOptions,
  runLoad,
  type LatencySummaryMs,
  type LoadOptions,
  type LoadResult,
} from "../load/index.js";
import {
  etcdBenchmarkWorkloads,
  preloadSpec,
  runEtcdBenchmark,
  totalFor,
  WATCH_LATENCY_WORKLOAD,
  type EtcdBenchmarkSpec,
} from "./etcd-benchmark.js";
import type { Member } from "./members.js";
import { log } from "./rows.js";

/** The load generators: ours (bench/load) and etcd 3.4's own `tools/benchmark`. */
export const LOAD_GENERATORS = ["etcd-ts-bench", "etcd-benchmark"] as const;
export type LoadGenerator = (typeof LOAD_GENERATORS)[number];

/** Issue 6's workloads: the only ones the grpc-js member runs, and the p99 rows. */
export const GRPC_JS_WORKLOADS: readonly string[] = [
  "put 1 client",
  "put 128 clients",
  "put 1000 clients",
  "range linearizable 128 clients",
];

/** A throughput workload of the table. */
export interface Workload {
  name: string;
  /** etcd-ts-bench's options (unused with `tool`). */
  opts: Partial<LoadOptions>;
  /**
   * Which number of the result the row shows: requests/s, watch events/s, or (watch-latency)
   * the put-to-watcher latency, whose p50 row stands where the others' throughput row does.
   */
  metric: "rps" | "events" | "watch-latency";
  /** Whether the grpc-js member runs it too (issue 6's workloads). */
  grpcJs: boolean;
  /** etcd's benchmark tool's workload, and the seconds one run should last, for that loadgen. */
  tool?: { spec: EtcdBenchmarkSpec; seconds: number };
}

/** The workloads of etcd's benchmark tool, each run sized to last about `secondsPerRun`. */
export function toolWorkloads(secondsPerRun: number): Workload[] {
  return etcdBenchmarkWorkloads().map(({ name, spec }) => ({
    name,
    opts: {},
    metric: spec.command === "watch-latency" ? "watch-latency" : "rps",
    grpcJs: false,
    tool: { spec, seconds: secondsPerRun },
  }));
}

/** What runOne needs for the tool: its binary and, per workload, the rate its warm-up measured. */
export interface ToolContext {
  binary: string;
  ratePerSecond: Map<string, number>;
}

/** Longest one tool run may take: a member far slower than expected must not hang the run. */
export function toolTimeoutMs(seconds: number): number {
  return Math.max(60_000, seconds * 30_000);
}

/** The row a workload's metric fills (name, unit, lower is better). */
export function metricRow(w: Workload): { name: string; unit: string; lowerIsBetter: boolean } {
  if (w.metric === "watch-latency")
    return { name: `p50 latency ${w.name}`, unit: "ms", lowerIsBetter: true };
  return { name: w.name, unit: w.metric === "events" ? "events/s" : "req/s", lowerIsBetter: false };
}

export function connsFor(clients: number): number {
  return Math.min(100, Math.max(1, Math.ceil(clients / 10)));
}

export function workloads(secondsPerRun: number): Workload[] {
  const forGrpcJs = (w: Omit<Workload, "grpcJs">): Workload => ({
    ...w,
    grpcJs: GRPC_JS_WORKLOADS.includes(w.name),
  });
  const put = (clients: number): Workload =>
    forGrpcJs({
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
  const range = (c: "l" | "s", clients: number): Workload =>
    forGrpcJs({
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
      grpcJs: false,
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
      grpcJs: false,
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
    watchLatencyWorkload(secondsPerRun),
  ];
}

/**
 * Issue 12's watch-latency workload with our generator, shaped as etcd's `benchmark
 * watch-latency --clients=100 --conns=10 --put-rate=100` (WATCH_LATENCY_WORKLOAD): 100 watchers of
 * one key on 10 connections (10 streams of 10 watchers: clientv3 puts the watches of one client
 * on one stream), puts of 8 B keys and 256 B values at 100/s from one client on a connection of
 * its own (the tool's putClient). Its rows are latencies from the put's acknowledgement, the
 * tool's definition, plus the same from the put's send.
 */
function watchLatencyWorkload(secondsPerRun: number): Workload {
  return {
    name: WATCH_LATENCY_WORKLOAD,
    metric: "watch-latency",
    grpcJs: false,
    opts: {
      workload: "watch",
      streams: 10,
      watchPerStream: 10,
      watchedKeyTotal: 1,
      putTotal: Math.max(100, Math.round(100 * secondsPerRun)),
      putRate: 100,
      clients: 1,
      conns: 10,
      putConns: 1,
      keySizeBytes: 8,
      valSizeBytes: 256,
    },
  };
}

/** Runs one workload against `t`; null (logged) when it failed (over 10 % of requests failed). */
export async function runOne(
  t: LoadTarget,
  w: Workload,
  tool: ToolContext | null,
): Promise<LoadResult | null> {
  try {
    let r: LoadResult;
    if (w.tool !== undefined && tool !== null) {
      const { spec, seconds } = w.tool;
      const total = totalFor(spec, seconds, tool.ratePerSecond.get(w.name) ?? null);
      const res = await runEtcdBenchmark(
        tool.binary,
        t.endpoints.join(","),
        spec,
        total,
        toolTimeoutMs(seconds),
      );
      const c = res.tool.connections;
      if (c.reconnects > 0 || c.transientFailures > 0) {
        log(`${t.label} ${w.name}: connections: ${JSON.stringify(c)}`);
        // what the member itself counted (etcd-ts only), so a reconnect can be told apart from
        // a connection the member closed for an error
        for (const ep of t.endpoints)
          log(`${t.label} ${ep}: connection errors counted: ${await connectionErrorsOf(ep)}`);
      }
      r = res;
    } else {
      r = await runLoad({
        ...defaultLoadOptions(w.opts.workload ?? "put"),
        ...w.opts,
        endpoints: t.endpoints,
      });
    }
    const tried = r.requests;
    if (r.errors > 0)
      log(
        `${t.label} ${w.name}: ${r.errors} errors of ${tried}: ${JSON.stringify(r.errorCounts).slice(0, 300)}`,
      );
    if (tried === 0 || r.errors > tried * 0.1) return null;
    return r;
  } catch (err) {
    log(`${t.label} ${w.name}: failed: ${(err as Error).message}`);
    return null;
  }
}

/**
 * Loads `keys` sequential keys of 8 B with 256 B values (benchKey order) into `t`, with the tool
 * when `tool` is set; false (logged) when it failed.
 */
export async function loadKeys(
  t: LoadTarget,
  keys: number,
  tool: ToolContext | null,
): Promise<boolean> {
  if (tool !== null) {
    try {
      const t0 = performance.now();
      const spec = preloadSpec(keys);
      const r = await runEtcdBenchmark(
        tool.binary,
        t.endpoints.join(","),
        spec,
        keys,
        toolTimeoutMs(keys / 1000),
      );
      log(
        `${t.label}: loaded ${keys} keys with etcd's benchmark in ${((performance.now() - t0) / 1000).toFixed(1)} s (${r.requestsPerSecond.toFixed(0)}/s, ${r.errors} errors)`,
      );
      return r.errors === 0;
    } catch (err) {
      log(`${t.label}: loading ${keys} keys failed: ${(err as Error).message}`);
      return false;
    }
  }
  const o: LoadOptions = {
    ...defaultLoadOptions("put"),
    endpoints: t.endpoints,
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
      `${t.label}: loaded ${keys} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s (${r.requestsPerSecond.toFixed(0)}/s, ${r.errors} errors)`,
    );
    return r.errors === 0;
  } catch (err) {
    log(`${t.label}: loading ${keys} keys failed: ${(err as Error).message}`);
    return false;
  }
}

/**
 * The latencies a run's p50/p99 rows show: for watch-latency, from the put's acknowledgement
 * (etcd's tool reports only that one; our generator's LoadResult has it in watch.ackLatencyMs),
 * else the requests' own.
 */
export function latencyOf(w: Workload, r: LoadResult): LatencySummaryMs {
  if (w.metric === "watch-latency" && r.watch !== undefined) return r.watch.ackLatencyMs;
  return r.latencyMs;
}

/** The number a run puts in its workload's first row (see Workload.metric). */
export function metricValue(w: Workload, r: LoadResult): number {
  if (w.metric === "events") return r.watch!.eventsPerSecond;
  if (w.metric === "watch-latency") return latencyOf(w, r).p50;
  return r.requestsPerSecond;
}

/**
 * What a comparison that starts members of its own needs (auth.ts, snapshots.ts, cluster.ts; a
 * subset of CompareOptions).
 */
export interface FreshMembersOptions {
  /** "etcd-benchmark": the workloads through etcd's tool at `etcdBenchmarkPath`. */
  loadgen: LoadGenerator;
  etcdBenchmarkPath: string;
  rounds: number;
  secondsPerRun: number;
  warmupSeconds: number;
  etcdPath: string;
  /** Path of dist/tools/etcd-ts.js. */
  etcdTsJs: string;
  /** Where data dirs and logs go (null: a fresh temp dir, removed at the end unless `keep`). */
  workDir: string | null;
  keep: boolean;
}

/** The tool's context for `o.loadgen` (its rates filled by the warm-ups); null for ours. */
export function toolContextFor(o: FreshMembersOptions): ToolContext | null {
  return o.loadgen === "etcd-benchmark"
    ? { binary: o.etcdBenchmarkPath, ratePerSecond: new Map() }
    : null;
}

/** Where a workload runs: a label for the log, and the client endpoints (host:port). */
export interface LoadTarget {
  label: string;
  endpoints: string[];
}

/**
 * The member's etcd_ts_grpc_connection_errors_total lines above zero (`reason value`, joined), from
 * its plain-http /metrics at `endpoint` ("127.0.0.1:PORT"); "none" when there are none (always,
 * for real etcd), or why they could not be read.
 */
export async function connectionErrorsOf(endpoint: string): Promise<string> {
  try {
    const res = await fetch(`http://${endpoint}/metrics`, { signal: AbortSignal.timeout(2000) });
    const lines = (await res.text())
      .split("\n")
      .filter((l) => l.startsWith("etcd_ts_grpc_connection_errors_total{") && !/ 0$/.test(l));
    return lines.length > 0 ? lines.join("; ") : "none";
  } catch (err) {
    return `not read (${(err as Error).message})`;
  }
}

/** The target of one member: its system's name and its client endpoint. */
export function targetOf(m: Member): LoadTarget {
  return { label: m.spec.system, endpoints: [m.endpoint] };
}

/** The workloads of `loadgen`, each run sized to last about `secondsPerRun`. */
export function workloadsFor(loadgen: LoadGenerator, secondsPerRun: number): Workload[] {
  return loadgen === "etcd-benchmark" ? toolWorkloads(secondsPerRun) : workloads(secondsPerRun);
}
