/**
 * `bench:compare --snapshots` (`npm run bench:snapshots`): issue 13's snapshot and defragment
 * rows, real etcd 3.4 and etcd-ts side by side, each a fresh single member started with
 * `--snapshot-count 10000` (SNAPSHOT_COUNT; `--snapshot-count N` changes it for both) and
 * `--log-level info`:
 *
 * 1. `--keys` keys of 256 B are loaded, the history compacted (physical) to the current revision,
 *    and each member defragmented once with no load: the time of the Defragment call and the db
 *    size before and after (Maintenance.Status dbSize).
 * 2. After a warm-up, in alternating rounds (etcd, etcd-ts, etcd, …):
 *    - put at SNAPSHOT_PUT_CLIENTS clients for `--seconds` (enough puts for several snapshots of
 *      10,000 entries): throughput, p99 and the longest put (the max latency: the longest stall a
 *      client saw), and the snapshots taken meanwhile (the delta of
 *      etcd_debugging_snap_save_total_duration_seconds_count, which both members count once per
 *      snapshot) with their duration: etcd's from its log (each "triggering snapshot" to the next
 *      "saved snapshot": its backend commit and the .snap file), etcd-ts's from
 *      etcd_ts_snapshot_duration_seconds (capture, db file, .snap file, WAL record, release), and
 *      the MB/s of etcd-ts's db file writes (etcd_ts_snapshot_db_written_bytes_total over
 *      etcd_ts_snapshot_db_write_duration_seconds_sum; etcd writes no db file per snapshot, its
 *      bbolt file is on disk already, so its column is n/a);
 *    - the same puts on a second pair of members, loaded alike, whose --snapshot-count
 *      (NO_SNAPSHOTS_COUNT) keeps them from snapshotting: rows `no snapshots:`, the stalls the
 *      machine and the disk cause without any snapshot, to tell which stalls snapshots cause;
 *    - after a physical compaction to the current revision, put at SNAPSHOT_PUT_CLIENTS clients
 *      while a Defragment runs (called DEFRAG_START_AFTER_MS after the puts start; the puts run
 *      for `--seconds` or twice the unloaded Defragment's time plus 2 s, whichever is longer):
 *      the Defragment's time, the puts' p99 and their longest put.
 * 3. With `--big`, 1M keys are loaded and compacted, and step 1's rows and one
 *    defragment-under-load run per member are measured at 1M keys.
 *
 * Issue 13's goal: no put stall over STALL_GOAL_MS caused by a snapshot or a defragment. Rows are
 * prefixed `snapshots:` and `defrag:`; files `…-snapshots…`. Either load generator drives the puts.
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { LoadResult } from "../load/index.js";
import { Member, clockTicksPerSecond, type MemberSpec, type System } from "./members.js";
import { RowSet, log, machine, type CompareRow } from "./rows.js";
import {
  loadKeys,
  runOne,
  targetOf,
  toolContextFor,
  workloadsFor,
  type FreshMembersOptions,
  type LoadGenerator,
  type Workload,
} from "./workloads.js";

/** --snapshot-count of both members (issue 13: "snapshot-count 10,000"). */
export const SNAPSHOT_COUNT = 10_000;
/** Clients of the puts whose latency is watched (issue 13: "put p99 at 128 clients"). */
export const SNAPSHOT_PUT_CLIENTS = 128;
/**
 * --snapshot-count of the baseline members, which take no snapshot during the benchmark: their
 * puts show the stalls the machine and the disk cause by themselves.
 */
export const NO_SNAPSHOTS_COUNT = 1_000_000_000;
/** Issue 13's goal: no put stall longer than this caused by a snapshot or a defragment, ms. */
export const STALL_GOAL_MS = 50;
/** The Defragment call starts this long after the puts, ms. */
export const DEFRAG_START_AFTER_MS = 1000;
/** Longest one Defragment call may take, ms (etcd's at 1M keys takes seconds). */
const DEFRAG_TIMEOUT_MS = 600_000;
/** Bound on the log bytes read after one run. */
const MAX_LOG_READ_BYTES = 64 * 1024 * 1024;

const SYSTEMS = ["etcd", "etcd-ts"] as const;
const PUT_WORKLOAD = `put ${SNAPSHOT_PUT_CLIENTS} clients`;

/** What compareSnapshots needs (a subset of CompareOptions). */
export interface SnapshotCompareOptions extends FreshMembersOptions {
  /** --snapshot-count of both members (SNAPSHOT_COUNT for the issue's rows; tests use less). */
  snapshotCount: number;
  /** Keys loaded before the rounds (the "100k keys" of the defragment rows). */
  preloadKeys: number;
  /** Also the 1M-key defragment rows. */
  big: boolean;
}

/** A metric's value by its exposition name (name{labels}), 0 when absent. */
type Metrics = Map<string, number>;
const metricOf = (m: Metrics | null, name: string): number => m?.get(name) ?? 0;

/**
 * The durations (ms) of etcd 3.4's periodic snapshots in `logText` (zap JSON lines): each
 * "triggering snapshot" to the next "saved snapshot" (etcd's triggerSnapshot and the end of its
 * snapshot goroutine: the backend commit and the .snap file's save). Lines that are not JSON are
 * skipped.
 */
export function etcdSnapshotSpansMs(logText: string): number[] {
  const spans: number[] = [];
  let startedAt: number | null = null;
  for (const line of logText.split("\n")) {
    if (!line.startsWith("{")) continue;
    let rec: { msg?: unknown; ts?: unknown };
    try {
      rec = JSON.parse(line) as { msg?: unknown; ts?: unknown };
    } catch {
      continue;
    }
    const at = typeof rec.ts === "string" ? parseZapTime(rec.ts) : NaN;
    if (!Number.isFinite(at)) continue;
    if (rec.msg === "triggering snapshot") startedAt = at;
    else if (rec.msg === "saved snapshot" && startedAt !== null) {
      spans.push(at - startedAt);
      startedAt = null;
    }
  }
  return spans;
}

/**
 * A zap ISO8601 time ("2026-12-06T05:01:02.345Z", or with a "+0000" offset, which Date.parse
 * does not take without its colon) as ms since the epoch; NaN when it is not one.
 */
export function parseZapTime(ts: string): number {
  return Date.parse(ts.replace(/([+-]\d\d)(\d\d)$/, "$1:$2"));
}

/** The bytes appended to `path` since `offset` (at most MAX_LOG_READ_BYTES), as text. */
function readFrom(path: string, offset: number): string {
  const size = statSync(path).size;
  const n = Math.min(MAX_LOG_READ_BYTES, Math.max(0, size - offset));
  const buf = Buffer.alloc(n);
  const fd = openSync(path, "r");
  try {
    let got = 0;
    while (got < n) {
      const k = readSync(fd, buf, got, n - got, offset + got);
      if (k === 0) break;
      got += k;
    }
    return buf.subarray(0, got).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

const b64 = (s: string): string => Buffer.from(s, "latin1").toString("base64");

/** The member's current revision (the header of a range through the JSON gateway). */
async function currentRevision(m: Member): Promise<number> {
  const r = await m.gateway("kv/range", { key: b64("\0"), limit: 1 });
  return Number((r["header"] as Record<string, unknown>)["revision"]);
}

/** Compacts the member's history to its current revision, physically (waits for it). */
async function compactAll(m: Member): Promise<void> {
  const revision = await currentRevision(m);
  try {
    await m.gateway(
      "kv/compaction",
      { revision: String(revision), physical: true },
      undefined,
      120_000,
    );
  } catch (err) {
    // nothing was written since the last compaction (the --big path compacts for the Defragment
    // with no load, then again before the one under load): both servers answer "mvcc: required
    // revision has been compacted", and the history is compacted already
    if (!/required revision has been compacted/.test((err as Error).message)) throw err;
  }
}

/** Maintenance.Status dbSize, MiB. */
async function dbSizeMiB(m: Member): Promise<number> {
  const r = await m.gateway("maintenance/status", {});
  // etcd 3.4's gateway writes the proto field names (db_size), protobuf's JSON mapping dbSize
  return Number(r["db_size"] ?? r["dbSize"]) / 2 ** 20;
}

/** One Defragment call through the JSON gateway; its time, ms. */
async function defragment(m: Member): Promise<number> {
  const t0 = performance.now();
  await m.gateway("maintenance/defragment", {}, undefined, DEFRAG_TIMEOUT_MS);
  return performance.now() - t0;
}

/** The put workload of `loadgen` sized for `seconds`. */
function putWorkload(loadgen: LoadGenerator, seconds: number): Workload {
  const w = workloadsFor(loadgen, seconds).find((x) => x.name === PUT_WORKLOAD);
  if (w === undefined) throw new Error(`no workload ${PUT_WORKLOAD}`);
  return w;
}

/**
 * Runs the snapshot and defragment comparison (see the module comment) and returns its rows. A
 * member that fails to start leaves "n/a" in its column.
 */
export async function compareSnapshots(o: SnapshotCompareOptions): Promise<{
  rows: CompareRow[];
  runs: Record<string, unknown>[];
  warmups: Record<string, unknown>[];
  machine: Record<string, string | number>;
}> {
  const workDir = o.workDir ?? mkdtempSync(join(tmpdir(), "etcd-ts-compare-snapshots-"));
  mkdirSync(workDir, { recursive: true });
  const tool = toolContextFor(o);
  const mach = { ...machine(workDir), clockTicksPerSecond: clockTicksPerSecond() };
  log(`snapshot comparison, work dir ${workDir}; machine ${JSON.stringify(mach)}`);
  const members = {} as Record<(typeof SYSTEMS)[number], Member>;
  const baseline = {} as Record<(typeof SYSTEMS)[number], Member>;
  for (const s of SYSTEMS) {
    const spec = (dir: string, snapshotCount: number): MemberSpec => ({
      system: s,
      command: s === "etcd" ? [o.etcdPath] : [process.execPath, o.etcdTsJs],
      dataDir: join(workDir, dir),
      logFile: join(workDir, `${dir}.log`),
      extraArgs: ["--snapshot-count", String(snapshotCount)],
      logLevel: "info",
    });
    members[s] = await Member.create(spec(s, o.snapshotCount));
    baseline[s] = await Member.create(spec(`${s}-no-snapshots`, NO_SNAPSHOTS_COUNT));
  }
  const up = new Set<(typeof SYSTEMS)[number]>();
  const baseUp = new Set<(typeof SYSTEMS)[number]>();
  const rs = new RowSet();
  const runs: Record<string, unknown>[] = [];
  const warmups: Record<string, unknown>[] = [];
  const defragAloneMs = new Map<System, number>();
  const label = (keys: number): string =>
    keys >= 1_000_000 ? `${keys / 1_000_000}M` : `${keys / 1000}k`;

  /** Defragment with no load at `keys` keys: its time and the db size before and after. */
  const defragAlone = async (keys: number): Promise<void> => {
    for (const s of SYSTEMS) {
      const m = members[s];
      if (!up.has(s)) continue;
      try {
        await compactAll(m);
        const before = await dbSizeMiB(m);
        const ms = await defragment(m);
        const after = await dbSizeMiB(m);
        defragAloneMs.set(s, ms);
        rs.add(`defrag: Defragment at ${label(keys)} keys, no load`, "ms", true, s, ms);
        rs.add(`defrag: db size before, ${label(keys)} keys`, "MiB", true, s, before);
        rs.add(`defrag: db size after, ${label(keys)} keys`, "MiB", true, s, after);
        log(
          `${s}: Defragment at ${label(keys)} keys, no load: ${ms.toFixed(0)} ms, db ${before.toFixed(1)} -> ${after.toFixed(1)} MiB`,
        );
        runs.push({
          kind: "defrag alone",
          keys,
          system: s,
          ms,
          dbMiBBefore: before,
          dbMiBAfter: after,
        });
      } catch (err) {
        log(`${s}: Defragment at ${label(keys)} keys failed: ${(err as Error).message}`);
        rs.add(`defrag: Defragment at ${label(keys)} keys, no load`, "ms", true, s, null);
      }
    }
  };

  /** Puts at SNAPSHOT_PUT_CLIENTS clients while a Defragment runs, at `keys` keys. */
  const defragUnderLoad = async (
    s: (typeof SYSTEMS)[number],
    keys: number,
    round: number,
  ): Promise<void> => {
    const m = members[s];
    const name = (what: string): string => `defrag: ${what}, ${label(keys)} keys`;
    let defragMs: number | null = null;
    let r: LoadResult | null = null;
    try {
      await compactAll(m);
      const seconds = Math.max(o.secondsPerRun, (2 * (defragAloneMs.get(s) ?? 0) + 2000) / 1000);
      const load = runOne(targetOf(m), putWorkload(o.loadgen, seconds), tool);
      await sleep(DEFRAG_START_AFTER_MS);
      defragMs = await defragment(m).catch((err: unknown) => {
        log(`${s}: Defragment under load failed: ${(err as Error).message}`);
        return null;
      });
      r = await load;
    } catch (err) {
      log(`${s}: defragment under load failed: ${(err as Error).message}`);
    }
    rs.add(name("Defragment while 128 clients put"), "ms", true, s, defragMs);
    rs.add(
      name("p99 latency put 128 clients during Defragment"),
      "ms",
      true,
      s,
      r?.latencyMs.p99 ?? null,
    );
    rs.add(
      name("longest put during Defragment (max latency)"),
      "ms",
      true,
      s,
      r?.latencyMs.max ?? null,
    );
    rs.add(
      name("put 128 clients during Defragment"),
      "req/s",
      false,
      s,
      r?.requestsPerSecond ?? null,
    );
    runs.push({ kind: "defrag under load", keys, round, system: s, defragMs, result: r });
    log(
      `round ${round + 1} ${s}: Defragment under load at ${label(keys)} keys: ${defragMs?.toFixed(0) ?? "n/a"} ms, puts p99 ${r?.latencyMs.p99.toFixed(1) ?? "n/a"} ms, max ${r?.latencyMs.max.toFixed(1) ?? "n/a"} ms`,
    );
  };

  /**
   * Puts at SNAPSHOT_PUT_CLIENTS clients for --seconds on `m`, with the snapshots they trigger
   * (`variant` "snapshots"), or on a baseline member that takes none ("no snapshots").
   */
  const putRun = async (
    m: Member,
    s: (typeof SYSTEMS)[number],
    round: number,
    variant: "snapshots" | "no snapshots",
  ): Promise<void> => {
    const before = await m.metrics().catch(() => null);
    const logOffset = statSync(m.spec.logFile).size;
    const r = await runOne(targetOf(m), putWorkload(o.loadgen, o.secondsPerRun), tool);
    // a snapshot the puts triggered at their end is let finish, so it is counted whole
    await sleep(500);
    const after = await m.metrics().catch(() => null);
    const delta = (name: string): number | null =>
      before === null || after === null ? null : metricOf(after, name) - metricOf(before, name);
    const count = delta("etcd_debugging_snap_save_total_duration_seconds_count");
    let meanMs: number | null = null;
    let mbPerSecond: number | null = null;
    let spans: number[] = [];
    if (s === "etcd") {
      spans = etcdSnapshotSpansMs(readFrom(m.spec.logFile, logOffset));
      if (spans.length > 0) meanMs = spans.reduce((a, b) => a + b, 0) / spans.length;
    } else {
      const n = delta("etcd_ts_snapshot_duration_seconds_count");
      const sum = delta("etcd_ts_snapshot_duration_seconds_sum");
      if (n !== null && sum !== null && n > 0) meanMs = (sum * 1000) / n;
      const bytes = delta("etcd_ts_snapshot_db_written_bytes_total");
      const writeSeconds = delta("etcd_ts_snapshot_db_write_duration_seconds_sum");
      if (bytes !== null && writeSeconds !== null && writeSeconds > 0)
        mbPerSecond = bytes / 1e6 / writeSeconds;
    }
    const dbMiB =
      after === null ? null : metricOf(after, "etcd_mvcc_db_total_size_in_bytes") / 2 ** 20;
    const v = `${variant}: `;
    rs.add(`${v}${PUT_WORKLOAD}`, "req/s", false, s, r?.requestsPerSecond ?? null);
    rs.add(`${v}p99 latency ${PUT_WORKLOAD}`, "ms", true, s, r?.latencyMs.p99 ?? null);
    rs.add(`${v}longest put (max latency)`, "ms", true, s, r?.latencyMs.max ?? null);
    rs.add(`${v}snapshots during the run`, "count", false, s, count);
    if (variant === "snapshots") {
      rs.add(`${v}time per snapshot (mean)`, "ms", true, s, meanMs);
      rs.add(`${v}db file write speed`, "MB/s", false, s, mbPerSecond);
      rs.add(`${v}db size at the end of the run`, "MiB", true, s, dbMiB);
    }
    runs.push({
      kind: `put, ${variant}`,
      round,
      system: s,
      snapshots: count,
      etcdSpansMs: spans,
      meanMs,
      mbPerSecond,
      result: r,
    });
    log(
      `round ${round + 1} ${s}: ${PUT_WORKLOAD}, ${variant}: ${r?.requestsPerSecond.toFixed(0) ?? "n/a"}/s, p99 ${r?.latencyMs.p99.toFixed(1) ?? "n/a"} ms, max ${r?.latencyMs.max.toFixed(1) ?? "n/a"} ms; ${count ?? "n/a"} snapshots, ${meanMs?.toFixed(0) ?? "n/a"} ms each${mbPerSecond === null ? "" : `, ${mbPerSecond.toFixed(1)} MB/s`}`,
    );
  };

  try {
    for (const [ms, ok] of [
      [members, up],
      [baseline, baseUp],
    ] as const) {
      for (const s of SYSTEMS) {
        const m = ms[s];
        try {
          const t = await m.start();
          if (await loadKeys(targetOf(m), o.preloadKeys, tool)) ok.add(s);
          log(
            `${s} healthy after ${t.toFixed(0)} ms (pid ${m.pid}, ${m.endpoint}, ${m.spec.dataDir})`,
          );
        } catch (err) {
          log(`${s}: ${(err as Error).message}`);
        }
      }
    }
    await defragAlone(o.preloadKeys);
    if (o.warmupSeconds > 0) {
      const rates: number[] = [];
      for (const [s, m] of SYSTEMS.flatMap((s) => [
        ...(up.has(s) ? [[s, members[s]] as const] : []),
        ...(baseUp.has(s) ? [[s, baseline[s]] as const] : []),
      ])) {
        const r = await runOne(targetOf(m), putWorkload(o.loadgen, o.warmupSeconds), tool);
        if (r !== null) rates.push(r.requestsPerSecond);
        warmups.push({
          workload: PUT_WORKLOAD,
          system: s,
          member: m.spec.dataDir,
          value: r?.requestsPerSecond ?? null,
        });
        log(
          `warm-up ${PUT_WORKLOAD} ${s}: ${r?.requestsPerSecond.toFixed(0) ?? "n/a"} (not measured)`,
        );
      }
      if (tool !== null && rates.length > 0)
        tool.ratePerSecond.set(PUT_WORKLOAD, Math.max(...rates));
    }
    for (let round = 0; round < o.rounds; round++) {
      for (const s of SYSTEMS) if (up.has(s)) await putRun(members[s], s, round, "snapshots");
      for (const s of SYSTEMS)
        if (baseUp.has(s)) await putRun(baseline[s], s, round, "no snapshots");
      for (const s of SYSTEMS) if (up.has(s)) await defragUnderLoad(s, o.preloadKeys, round);
    }
    if (o.big) {
      for (const s of SYSTEMS)
        if (up.has(s) && !(await loadKeys(targetOf(members[s]), 1_000_000, tool))) up.delete(s);
      await defragAlone(1_000_000);
      for (const s of SYSTEMS) if (up.has(s)) await defragUnderLoad(s, 1_000_000, 0);
    }
    const rows = rs.rows();
    const stalls = rows.filter((r) => r.name.includes("longest put"));
    for (const r of stalls)
      log(
        `${r.name}: etcd ${r.etcd?.toFixed(1) ?? "n/a"} ms, etcd-ts ${r.etcdTs?.toFixed(1) ?? "n/a"} ms (goal: at most ${STALL_GOAL_MS} ms)`,
      );
    return { rows, runs, warmups, machine: { ...mach, snapshotCount: o.snapshotCount } };
  } finally {
    for (const s of SYSTEMS) for (const m of [members[s], baseline[s]]) await m.stop();
    if (!o.keep && o.workDir === null) rmSync(workDir, { recursive: true, force: true });
    else log(`kept ${workDir}`);
  }
}
