/**
 * `bench:compare --members 3` (`npm run bench:cluster`): issue 14's cluster rows, a real etcd 3.4
 * cluster of CLUSTER_SIZE members and an etcd-ts cluster of as many, side by side on loopback,
 * every member its own process with its own data dir, peers on plain http:// URLs (no peer TLS in
 * the benchmark, for either system; the e2e tests cover TLS). Both clusters run the whole time;
 * their workloads alternate (etcd, etcd-ts, etcd, … for --rounds rounds, after an unmeasured
 * warm-up of each workload on each cluster):
 *
 * - put at 1, 128 and 1000 clients (8 B keys, 256 B values, 100k key space) with the clients
 *   spread over the three client endpoints: requests/s and p99. Our generator spreads its
 *   connections over the endpoints round-robin; etcd's tool gives clientv3 all three, whose
 *   balancer round-robins requests over them.
 * - linearizable range at 128 clients against the two followers only (the leader found from
 *   etcd_server_is_leader just before the run): every read goes through ReadIndex with the leader.
 * - failover, --failovers times per cluster: the leader SIGKILLed (by its pid) while puts flow
 *   through the JSON gateway of the two others (a new put every PROBE_INTERVAL_MS, alternating
 *   between them, each bounded by PROBE_TIMEOUT_MS); the time from the kill to the first successful
 *   put sent after it. The killed member is then restarted and the cluster waited for (every member
 *   healthy, a leader) before the next kill.
 *
 * Rows are prefixed `cluster 3 members:` so they never mix with the single-member table; files
 * `…-cluster…`. Either load generator drives the throughput rows; the failover puts always go
 * through the JSON gateway (the same client for both systems).
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { benchKey } from "../load/index.js";
import { RANGE_KEY } from "./etcd-benchmark.js";
import { SYSTEM_COLORS, renderBarChart } from "./svg.js";
import { Member, clockTicksPerSecond, httpPostJson, type System } from "./members.js";
import { RowSet, emptyPerSystem, log, machine, row, type CompareRow } from "./rows.js";
import {
  latencyOf,
  metricRow,
  metricValue,
  runOne,
  toolContextFor,
  workloadsFor,
  type FreshMembersOptions,
  type LoadGenerator,
  type LoadTarget,
  type Workload,
} from "./workloads.js";

/** Members per cluster. */
export const CLUSTER_SIZE = 3;
/** Row prefix of every cluster row. */
export const CLUSTER_ROW_PREFIX = `cluster ${CLUSTER_SIZE} members: `;
/** The single-member workloads the cluster runs over all endpoints. */
export const CLUSTER_PUT_WORKLOADS = ["put 1 client", "put 128 clients", "put 1000 clients"];
/** The workload the cluster runs against its followers only. */
export const CLUSTER_FOLLOWER_WORKLOAD = "range linearizable 128 clients";
/** A new failover probe put every this many ms. */
export const PROBE_INTERVAL_MS = 5;
/** Longest one probe put may take, ms. */
export const PROBE_TIMEOUT_MS = 3000;
/** Bound on probe puts in flight. */
const MAX_PROBES_IN_FLIGHT = 400;
/** Longest a failover may take before the repetition counts as failed, ms. */
const FAILOVER_TIMEOUT_MS = 30_000;
/** Longest a cluster may take to have a leader again, ms. */
const LEADER_TIMEOUT_MS = 60_000;

const SYSTEMS = ["etcd", "etcd-ts"] as const;
type ClusterSystem = (typeof SYSTEMS)[number];

/** What compareCluster needs (a subset of CompareOptions). */
export interface ClusterCompareOptions extends FreshMembersOptions {
  /** Leader kills per cluster. */
  failovers: number;
  /** Run only these workloads of CLUSTER_PUT_WORKLOADS / CLUSTER_FOLLOWER_WORKLOAD (null: all). */
  workloadNames: string[] | null;
}

/** Whether `m` says it is the leader (etcd_server_is_leader); false when it does not answer. */
async function isLeader(m: Member): Promise<boolean> {
  try {
    return (await m.metrics()).get("etcd_server_is_leader") === 1;
  } catch {
    return false;
  }
}

/** The member that is leader, waited for up to LEADER_TIMEOUT_MS among `ms`. Throws after. */
export async function waitForLeader(ms: readonly Member[]): Promise<Member> {
  const deadline = performance.now() + LEADER_TIMEOUT_MS;
  while (performance.now() < deadline) {
    for (const m of ms) if (m.pid !== 0 && (await isLeader(m))) return m;
    await sleep(50);
  }
  throw new Error(`no leader among ${ms.map((m) => m.name).join(", ")}`);
}

/** Starts every member of a cluster at once and waits until each is healthy; ms to the last. */
async function startCluster(ms: readonly Member[]): Promise<number> {
  const t0 = ms.map((m) => m.launch());
  const times = await Promise.all(ms.map((m, i) => m.waitHealthy(t0[i]!)));
  return Math.max(...times);
}

/** A put through `m`'s JSON gateway; resolves true when it answered 200 within PROBE_TIMEOUT_MS. */
async function probePut(
  m: Member,
  key: string,
  value: string,
  failures?: Map<string, number>,
): Promise<boolean> {
  let reason: string;
  try {
    const r = await httpPostJson(
      m.clientPort,
      "/v3/kv/put",
      { key: Buffer.from(key).toString("base64"), value: Buffer.from(value).toString("base64") },
      PROBE_TIMEOUT_MS,
    );
    if (r.status === 200) return true;
    reason = `${r.status} ${(JSON.parse(r.body) as { error?: string }).error ?? r.body.slice(0, 80)}`;
  } catch (err) {
    reason = (err as Error).message;
  }
  failures?.set(reason, (failures.get(reason) ?? 0) + 1);
  return false;
}

/** One failover: what it measured and who led before and after. */
export interface FailoverResult {
  /** ms from the SIGKILL to the first successful put sent after it; null when none came. */
  ms: number | null;
  /** wall-clock time of the SIGKILL (ISO), to line up with the members' logs */
  killedAt: string;
  /** when that first successful put was sent, ms after the SIGKILL; null when none came */
  firstOkSentMs: number | null;
  killed: string;
  probesSent: number;
  probesFailed: number;
  /** why probes failed: the gateway's status and error (or the client's), with counts */
  failures: Record<string, number>;
}

/**
 * Kills the leader of `ms` (SIGKILL, by pid) while probe puts flow through the others, measures
 * the time to the first successful put sent after the kill, then restarts the killed member and
 * waits for every member to be healthy and a leader. Throws when the cluster has no leader to
 * kill or does not recover.
 */
export async function measureFailover(ms: readonly Member[], tag: string): Promise<FailoverResult> {
  const leader = await waitForLeader(ms);
  const others = ms.filter((m) => m !== leader);
  // the survivors take puts before the kill
  for (const m of others)
    if (!(await probePut(m, `failover/${tag}/ready`, "x")))
      throw new Error(`${m.name} refuses puts before the kill`);
  let killedAt = Infinity;
  let killedAtWall = "";
  let firstOkAt: number | null = null;
  let firstOkSentAt = 0;
  let sent = 0;
  let failed = 0;
  const failures = new Map<string, number>();
  let inFlight = 0;
  let probing = true;
  const probes: Promise<void>[] = [];
  const prober = (async () => {
    while (probing) {
      if (inFlight < MAX_PROBES_IN_FLIGHT) {
        const sentAt = performance.now();
        const m = others[sent % others.length]!;
        sent++;
        inFlight++;
        probes.push(
          probePut(m, `failover/${tag}/${sent}`, String(sentAt), failures).then((ok) => {
            inFlight--;
            const at = performance.now();
            if (!ok) failed++;
            else if (sentAt >= killedAt && (firstOkAt === null || at < firstOkAt)) {
              firstOkAt = at;
              firstOkSentAt = sentAt;
            }
          }),
        );
      }
      await sleep(PROBE_INTERVAL_MS);
    }
  })();
  try {
    await sleep(200);
    killedAt = performance.now();
    killedAtWall = new Date().toISOString();
    await leader.kill9();
    const deadline = killedAt + FAILOVER_TIMEOUT_MS;
    while (firstOkAt === null && performance.now() < deadline) await sleep(PROBE_INTERVAL_MS);
  } finally {
    probing = false;
    await prober;
  }
  // puts still in flight (sent while there was no leader) end within PROBE_TIMEOUT_MS, while the
  // killed member restarts
  const drained = Promise.all(probes);
  const result: FailoverResult = {
    ms: firstOkAt === null ? null : firstOkAt - killedAt,
    killedAt: killedAtWall,
    firstOkSentMs: firstOkAt === null ? null : firstOkSentAt - killedAt,
    killed: leader.name,
    probesSent: sent,
    probesFailed: failed,
    failures: {},
  };
  await leader.start();
  await waitForLeader(ms);
  await drained;
  result.failures = Object.fromEntries(failures);
  return result;
}

/** The workloads of the cluster comparison with their targets' roles. */
function clusterWorkloads(
  loadgen: LoadGenerator,
  seconds: number,
  names: string[] | null,
): { w: Workload; followersOnly: boolean }[] {
  const all = workloadsFor(loadgen, seconds);
  const wanted = [...CLUSTER_PUT_WORKLOADS, CLUSTER_FOLLOWER_WORKLOAD].filter(
    (n) => names === null || names.includes(n),
  );
  if (names !== null && wanted.length !== names.length)
    throw new Error(
      `unknown workload in ${JSON.stringify(names)}; known: ${[...CLUSTER_PUT_WORKLOADS, CLUSTER_FOLLOWER_WORKLOAD].join(", ")}`,
    );
  return wanted.map((n) => ({
    w: all.find((w) => w.name === n)!,
    followersOnly: n === CLUSTER_FOLLOWER_WORKLOAD,
  }));
}

/** The row name of a cluster workload. */
function rowName(w: Workload, followersOnly: boolean): string {
  return `${CLUSTER_ROW_PREFIX}${metricRow(w).name}${followersOnly ? " from followers" : ""}`;
}

/**
 * Runs the cluster comparison (see the module comment) and returns its rows. A cluster that fails
 * to start leaves "n/a" in its column.
 */
export async function compareCluster(o: ClusterCompareOptions): Promise<{
  rows: CompareRow[];
  runs: Record<string, unknown>[];
  warmups: Record<string, unknown>[];
  machine: Record<string, string | number>;
}> {
  const ws = clusterWorkloads(o.loadgen, o.secondsPerRun, o.workloadNames);
  const workDir = o.workDir ?? mkdtempSync(join(tmpdir(), "etcd-ts-compare-cluster-"));
  mkdirSync(workDir, { recursive: true });
  const tool = toolContextFor(o);
  const mach = { ...machine(workDir), clockTicksPerSecond: clockTicksPerSecond() };
  log(`cluster comparison (${CLUSTER_SIZE} members each), work dir ${workDir}`);
  const clusters = {} as Record<ClusterSystem, Member[]>;
  for (const s of SYSTEMS) {
    const specs = Array.from({ length: CLUSTER_SIZE }, (_, i) => ({
      system: s as System,
      command: s === "etcd" ? [o.etcdPath] : [process.execPath, o.etcdTsJs],
      dataDir: join(workDir, s, `m${i}`),
      logFile: join(workDir, s, `m${i}.log`),
      // raft's elections in the logs (became candidate, elected leader) line up the failovers
      logLevel: "info" as const,
    }));
    mkdirSync(join(workDir, s), { recursive: true });
    clusters[s] = await Member.createCluster(specs, s === "etcd" ? "etcd-" : "etcd-ts-");
  }
  const up = new Set<ClusterSystem>();
  const runs: Record<string, unknown>[] = [];
  const warmups: Record<string, unknown>[] = [];
  const rs = new RowSet();
  /** The target of a workload on cluster `s`: every member, or the followers only. */
  const targetFor = async (s: ClusterSystem, followersOnly: boolean): Promise<LoadTarget> => {
    const ms = clusters[s];
    if (!followersOnly) return { label: `${s} cluster`, endpoints: ms.map((m) => m.endpoint) };
    const leader = await waitForLeader(ms);
    return {
      label: `${s} cluster followers`,
      endpoints: ms.filter((m) => m !== leader).map((m) => m.endpoint),
    };
  };
  try {
    for (const s of SYSTEMS) {
      try {
        const ms = await startCluster(clusters[s]);
        const leader = await waitForLeader(clusters[s]);
        up.add(s);
        log(
          `${s} cluster healthy after ${ms.toFixed(0)} ms, leader ${leader.name} (${clusters[s].map((m) => `${m.name} pid ${m.pid} ${m.endpoint}`).join(", ")})`,
        );
        // the range workloads' keys: ours reads benchKey(0, 8), etcd's tool RANGE_KEY
        const value = randomBytes(256);
        await leader.put(benchKey(0, 8), value);
        await leader.put(Buffer.from(RANGE_KEY), value);
      } catch (err) {
        log(`${s} cluster: ${(err as Error).message}`);
      }
    }
    if (o.warmupSeconds > 0) {
      for (const { w, followersOnly } of clusterWorkloads(
        o.loadgen,
        o.warmupSeconds,
        o.workloadNames,
      )) {
        const rates: number[] = [];
        for (const s of SYSTEMS) {
          if (!up.has(s)) continue;
          const r = await runOne(await targetFor(s, followersOnly), w, tool);
          if (r !== null) rates.push(r.requestsPerSecond);
          warmups.push({
            workload: rowName(w, followersOnly),
            system: s,
            value: r?.requestsPerSecond ?? null,
          });
          log(
            `warm-up ${rowName(w, followersOnly)} ${s}: ${r?.requestsPerSecond.toFixed(0) ?? "n/a"} (not measured)`,
          );
        }
        if (tool !== null && rates.length > 0) tool.ratePerSecond.set(w.name, Math.max(...rates));
      }
    }
    for (let round = 0; round < o.rounds; round++) {
      for (const { w, followersOnly } of ws) {
        const name = rowName(w, followersOnly);
        for (const s of SYSTEMS) {
          let r = null;
          if (up.has(s)) r = await runOne(await targetFor(s, followersOnly), w, tool);
          const m = metricRow(w);
          rs.add(name, m.unit, m.lowerIsBetter, s, r === null ? null : metricValue(w, r));
          rs.add(
            `${CLUSTER_ROW_PREFIX}p99 latency ${w.name}${followersOnly ? " from followers" : ""}`,
            "ms",
            true,
            s,
            r === null ? null : latencyOf(w, r).p99,
          );
          runs.push({ round, workload: name, system: s, result: r });
          log(
            `round ${round + 1}/${o.rounds} ${name} ${s}: ${r === null ? "n/a" : metricValue(w, r).toFixed(0)}${r === null ? "" : ` p99 ${latencyOf(w, r).p99.toFixed(2)} ms`}`,
          );
        }
      }
    }
    const failoverName = `${CLUSTER_ROW_PREFIX}failover: leader SIGKILL to the next successful put (median)`;
    const failovers = emptyPerSystem((): (number | null)[] => []);
    for (let rep = 0; rep < o.failovers; rep++) {
      for (const s of SYSTEMS) {
        if (!up.has(s)) continue;
        try {
          const f = await measureFailover(clusters[s], `${s}-${rep}`);
          failovers[s].push(f.ms);
          runs.push({ kind: "failover", rep, system: s, ...f });
          log(
            `failover ${rep + 1}/${o.failovers} ${s}: killed ${f.killed} at ${f.killedAt}, next put after ${f.ms?.toFixed(0) ?? "n/a"} ms (sent at ${f.firstOkSentMs?.toFixed(0) ?? "n/a"} ms; ${f.probesSent} probes, ${f.probesFailed} failed: ${JSON.stringify(f.failures)})`,
          );
        } catch (err) {
          failovers[s].push(null);
          log(`failover ${rep + 1} ${s}: ${(err as Error).message}`);
        }
      }
    }
    const rows = rs.rows();
    rows.push(row(failoverName, "ms", true, failovers, false));
    // the slowest repetition; n/a when one found no successful put
    const slowest = (xs: (number | null)[]): (number | null)[] =>
      xs.length === 0 || xs.includes(null) ? [null] : [Math.max(...(xs as number[]))];
    rows.push(
      row(
        `${CLUSTER_ROW_PREFIX}failover: leader SIGKILL to the next successful put (slowest)`,
        "ms",
        true,
        {
          etcd: slowest(failovers.etcd),
          "etcd-ts": slowest(failovers["etcd-ts"]),
          "etcd-ts grpc-js": [],
        },
        false,
      ),
    );
    return { rows, runs, warmups, machine: { ...mach, clusterSize: CLUSTER_SIZE } };
  } finally {
    for (const s of SYSTEMS) for (const m of clusters[s]) await m.stop();
    if (!o.keep && o.workDir === null) rmSync(workDir, { recursive: true, force: true });
    else log(`kept ${workDir}`);
  }
}

/** The clients of the cluster's put rows, as the charts show them. */
const CHART_CLIENTS = [1, 128, 1000] as const;

/**
 * Issue 14's charts "as for one member", which writeResults writes for `--members 3` (with
 * etcd's tool: `throughput-vs-clients-cluster-etcd-benchmark.svg`, `p99-vs-clients-…`,
 * `failover-…`): put throughput and put p99 against clients, and the failover time (median and
 * slowest), etcd against etcd-ts. `valueOf(row, system)` is a row's median for a system, or null
 * when the row was not run (drawn as "n/a").
 */
export function clusterCharts(
  valueOf: (rowName: string, system: System) => number | null,
): { name: string; svg: string }[] {
  const systems: System[] = ["etcd", "etcd-ts"];
  const put = (c: number): string => `put ${c} client${c === 1 ? "" : "s"}`;
  const categories = CHART_CLIENTS.map((c) => `${c} client${c === 1 ? "" : "s"}`);
  const chart = (title: string, yLabel: string, names: string[], cats: string[]): string =>
    renderBarChart({
      title,
      yLabel,
      categories: cats,
      series: systems.map((s) => ({
        name: s,
        color: SYSTEM_COLORS[s],
        values: names.map((n) => valueOf(`${CLUSTER_ROW_PREFIX}${n}`, s)),
      })),
    });
  const failover = "failover: leader SIGKILL to the next successful put";
  return [
    {
      name: "throughput-vs-clients",
      svg: chart(
        `${CLUSTER_SIZE} members: put throughput vs clients (medians)`,
        "puts/s",
        CHART_CLIENTS.map(put),
        categories,
      ),
    },
    {
      name: "p99-vs-clients",
      svg: chart(
        `${CLUSTER_SIZE} members: put p99 vs clients (ms, lower is better)`,
        "ms",
        CHART_CLIENTS.map((c) => `p99 latency ${put(c)}`),
        categories,
      ),
    },
    {
      name: "failover",
      svg: chart(
        `${CLUSTER_SIZE} members: leader SIGKILL to the next successful put (ms)`,
        "ms",
        [`${failover} (median)`, `${failover} (slowest)`],
        ["median", "slowest"],
      ),
    },
  ];
}
