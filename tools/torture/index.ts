/**
 * `etcd-ts-util torture` (issue 16): crash-recovery testing as a product feature. Starts 1, 3 or 5
 * members (etcd-ts, or any etcd with --server-command; or uses --endpoints it does not control),
 * runs a seeded mixed workload (workload.ts) while a seeded schedule injects kills, pauses,
 * restarts, failpoints and, with --power-loss, simulated power losses and torn syncs
 * (faults.ts); then heals, reads every key, crashes and restarts every member once more, reads
 * again, takes HashKV everywhere, and checks the recorded history (checks.ts). Writes report.txt,
 * report.json, timeline.svg and history.json under --out; the verdict decides the exit status.
 */
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { TortureClient } from "./client.js";
import {
  FINAL_READ_CLIENT,
  RESTART_READ_CLIENT,
  runChecks,
  type HashRecord,
  type RunRecord,
} from "./checks.js";
import { FaultInjector, type FaultKind } from "./faults.js";
import {
  etcdTsCommand,
  MEMBER_START_TIMEOUT_MS,
  planMembers,
  type MemberProcess,
  type ServerCommand,
} from "./members.js";
import { identifyServer, knownIssuesOf, type ServerIdentity } from "./known-issues.js";
import { readHistory, writeHistory, writeReport, type RunSummary } from "./report.js";
import { Timeline } from "./timeline.js";
import { Workload } from "./workload.js";
import type { PeerProxy } from "./peer-proxy.js";

export { readHistory } from "./report.js";
export { runChecks } from "./checks.js";
export { parseServerCommand } from "./members.js";
export type { FaultKind } from "./faults.js";

/** Options of a torture run (the CLI's flags). */
export interface TortureOptions {
  members: number;
  durationMs: number;
  seed: number;
  powerLoss: boolean;
  outDir: string;
  clients: number;
  watchers: number;
  maxOpsPerSecond: number;
  callDeadlineMs: number;
  /** Fault kinds; undefined = every kind the target supports. */
  faults: FaultKind[] | undefined;
  /** Mean time between faults, ms (each interval is seeded in [0.5x, 1.5x]). */
  faultIntervalMs: number;
  /** Servers the tool does not start or hurt ("host:port"). */
  endpoints: string[] | undefined;
  /** The command that starts a member (default: etcd-ts next to this tool). */
  serverCommand: ServerCommand | undefined;
  snapshotCount: number;
  /** How long a member may take to become healthy after a restart, ms (the first start: ≥ 30 s). */
  startTimeoutMs: number;
  checkBudgetMs: number;
  /** Print a progress line while running. */
  progress: boolean;
  /**
   * ETCD_TS_FAILPOINTS for every member start (etcd-ts only): a deliberately broken member, e.g.
   * `walBeforeSync=drop` (a disk that lies about flushes), to see the checks catch it.
   */
  memberFailpoints: string | undefined;
  /** The command line as given, for the report. */
  commandLine: string;
}

/** The outcome of a run: verdict, text report, exit status (0 pass, 2 fail, 3 undecided). */
export interface TortureResult {
  verdict: "pass" | "fail" | "unknown";
  report: string;
  exitCode: number;
  outDir: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Bound on HashKV attempts per member at the end, 300 ms apart. */
const HASH_ATTEMPTS = 30;
/** Bound on attempts to read one key at the end (a member may still be electing). */
const FINAL_READ_ATTEMPTS = 20;

function exitCodeOf(verdict: TortureResult["verdict"]): number {
  return verdict === "pass" ? 0 : verdict === "fail" ? 2 : 3;
}

/** The flags that replay a run with the same seed. */
function replayCommands(o: TortureOptions): string[] {
  const flags = [
    `--members ${o.members}`,
    `--duration ${Math.round(o.durationMs / 1000)}s`,
    `--seed ${o.seed}`,
  ];
  if (o.powerLoss) flags.push("--power-loss");
  if (o.memberFailpoints !== undefined) flags.push(`--member-failpoints '${o.memberFailpoints}'`);
  if (o.faults !== undefined) flags.push(`--faults ${o.faults.join(",")}`);
  flags.push(`--clients ${o.clients}`, `--rate ${o.maxOpsPerSecond}`);
  return [
    `etcd-ts-util torture ${flags.join(" ")} --out ${o.outDir}-replay   # the same seed: the same schedule and workload choices`,
    `etcd-ts-util torture check --out ${o.outDir}   # the checks again on this run's recorded history`,
  ];
}

/** Kills every member process still running if the tool itself exits. */
function killOnExit(members: MemberProcess[]): () => void {
  const handler = () => {
    for (const m of members) {
      if (m.pid !== 0) {
        try {
          process.kill(m.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
  };
  process.on("exit", handler);
  return () => process.off("exit", handler);
}

/** Reads every key once as `clientId` (each read retried until answered, bounded). */
async function readAll(w: Workload, client: TortureClient, clientId: number): Promise<number> {
  let revision = 0;
  for (const key of w.allKeys()) {
    for (let i = 0; i < FINAL_READ_ATTEMPTS; i++) {
      const out = await w.call(client, clientId, { type: "get", key });
      if (out !== undefined) {
        revision = Math.max(revision, out.revision ?? 0);
        break;
      }
      await sleep(250);
    }
  }
  return revision;
}

async function hashAll(
  endpoints: string[],
  names: string[],
  revision: number,
  phase: HashRecord["phase"],
  deadlineMs: number,
): Promise<HashRecord[]> {
  const out: HashRecord[] = [];
  for (let i = 0; i < endpoints.length; i++) {
    const c = new TortureClient(endpoints[i]!, deadlineMs);
    let rec: HashRecord = { member: names[i]!, phase, revision, error: "no answer" };
    // a member that was down or cut off may still be catching up to `revision` (a future revision)
    for (let attempt = 0; attempt < HASH_ATTEMPTS; attempt++) {
      try {
        const h = await c.hashKV(revision);
        rec = { member: names[i]!, phase, revision, hash: h.hash };
        break;
      } catch (err) {
        rec = { member: names[i]!, phase, revision, error: (err as Error).message };
        await sleep(300);
      }
    }
    out.push(rec);
    c.close();
  }
  return out;
}

/** Runs a torture run (module comment). Throws only when the run cannot start at all. */
export async function runTorture(
  o: TortureOptions,
  say: (line: string) => void,
): Promise<TortureResult> {
  const outDir = resolve(o.outDir);
  mkdirSync(outDir, { recursive: true });
  const timeline = new Timeline();
  const notes: string[] = [];
  const prefix = `torture/${o.seed}/`;
  const command = o.serverCommand ?? etcdTsCommand();
  let members: MemberProcess[] = [];
  let proxies: PeerProxy[] = [];
  let endpoints: string[];
  let names: string[];
  let unregister = () => {};
  let server: ServerIdentity | undefined;
  if (o.endpoints !== undefined) {
    endpoints = o.endpoints;
    names = endpoints;
    notes.push(
      "--endpoints: the tool does not control these servers, so it injects no faults and restarts nothing",
    );
  } else {
    const extraArgs = ["--snapshot-count", String(o.snapshotCount)];
    if (command.etcdTs) {
      extraArgs.push(
        "--experimental-failpoints-http",
        "--experimental-wal-segment-size-bytes",
        String(1024 * 1024),
        // a member that fell behind a few seconds catches up by snapshot, not by the log alone
        "--experimental-snapshot-catchup-entries",
        "100",
      );
      if (o.powerLoss) {
        extraArgs.push(
          "--experimental-simulate-power-loss",
          "--experimental-torn-sync",
          o.seed % 2 === 0 ? "prefix" : "reorder",
        );
      }
    } else if (o.powerLoss || o.memberFailpoints !== undefined) {
      throw new Error("--power-loss and --member-failpoints need etcd-ts members");
    }
    server = await identifyServer(command);
    for (const k of knownIssuesOf(server)) {
      notes.push(
        `etcd ${server!.version} has ${k.id} (${k.summary}; fixed in ${k.fixedIn}): ` +
          `${k.guarantee} violations are reported as known and do not fail the run`,
      );
    }
    if (o.memberFailpoints !== undefined) {
      notes.push(`members run with ETCD_TS_FAILPOINTS=${o.memberFailpoints} (deliberately broken)`);
    }
    // partitions need etcd-ts's peer hello (the proxies read its sender) and another member
    const partitions = command.etcdTs && o.members > 1 && (o.faults?.includes("partition") ?? true);
    ({ members, proxies } = await planMembers(
      o.members,
      outDir,
      `torture-${o.seed}`,
      {
        command,
        extraArgs,
        startTimeoutMs: o.startTimeoutMs,
        env: {
          ETCD_TS_FAILPOINTS_SEED: String(o.seed),
          ...(o.memberFailpoints !== undefined ? { ETCD_TS_FAILPOINTS: o.memberFailpoints } : {}),
        },
      },
      partitions,
    ));
    unregister = killOnExit(members);
    endpoints = members.map((m) => m.endpoint);
    names = members.map((m) => m.spec.name);
    say(
      `starting ${o.members} member(s): ${command.cmd} ${command.args.join(" ")} (logs in ${outDir})`,
    );
    // the first start may be slow on a loaded machine: --start-timeout bounds the restarts
    await Promise.all(
      members.map((m) => m.start(Math.max(o.startTimeoutMs, MEMBER_START_TIMEOUT_MS))),
    );
  }
  const kinds: FaultKind[] =
    o.endpoints !== undefined
      ? []
      : (o.faults ?? [
          "kill",
          "pause",
          "restart",
          ...(command.etcdTs ? (["failpoint"] as const) : []),
          ...(o.powerLoss ? (["torn-sync"] as const) : []),
          ...(proxies.length > 0 ? (["partition"] as const) : []),
        ]);
  if (
    !command.etcdTs &&
    kinds.some((k) => k === "failpoint" || k === "torn-sync" || k === "partition")
  ) {
    throw new Error("failpoint, torn-sync and partition faults need etcd-ts members");
  }

  const workload = new Workload(
    {
      seed: o.seed,
      clients: o.clients,
      watchers: o.watchers,
      keyGroups: 4,
      keysPerGroup: 5,
      maxOpsPerSecond: o.maxOpsPerSecond,
      callDeadlineMs: o.callDeadlineMs,
      prefix,
    },
    endpoints,
    timeline,
  );
  const probe = workload.client(0);
  const before = await probe.rangePrefix(prefix);
  if (before.kvs.length > 0) {
    throw new Error(
      `the key prefix ${prefix} already holds ${before.kvs.length} keys: use another --seed`,
    );
  }
  const startRevision = before.revision;
  say(
    `seed ${o.seed}: ${o.clients} clients, ${o.watchers} watchers, faults: ${kinds.join(", ") || "none"}; store at revision ${startRevision}`,
  );
  workload.start(startRevision);
  const injector = new FaultInjector(
    members,
    {
      seed: o.seed,
      kinds,
      minIntervalMs: Math.round(o.faultIntervalMs / 2),
      maxIntervalMs: Math.round((o.faultIntervalMs * 3) / 2),
      powerLoss: o.powerLoss,
      proxies,
    },
    timeline,
  );
  const progress = setInterval(() => {
    if (!o.progress) return;
    const t = timeline.nowMs() / 1000;
    const fc = Object.entries(timeline.faultCounts())
      .map(([k, n]) => `${k} ${n}`)
      .join(", ");
    const up = members.filter((m) => m.running && !m.paused).length;
    say(
      `[${t.toFixed(0)}s] calls ${timeline.totalOk} ok, ${timeline.totalFailed} failed` +
        ` (${(timeline.totalOk / Math.max(1, t)).toFixed(0)}/s); faults: ${fc || "none"}` +
        (members.length > 0 ? `; members up ${up}/${members.length}` : ""),
    );
  }, 2000);
  // --duration counts from the workload's start, not the members' (a slow start eats none of it)
  const endMs = timeline.nowMs() + o.durationMs;
  const faults = injector.run(endMs);
  while (timeline.nowMs() < endMs && injector.restartFailures.length === 0) await sleep(100);
  injector.stop();
  await faults;
  clearInterval(progress);
  say("workload done; healing, reading every key, crashing and restarting every member once more");
  const recoveryFailures = injector.restartFailures.map(
    (f) => `${f.member} after ${f.kind} ${f.detail}: ${f.outcome}`,
  );
  recoveryFailures.push(...(await injector.heal()));
  await workload.stopClients();

  const hashes: HashRecord[] = [];
  const reader = workload.client(0);
  // with every member down there is nothing to read (the recovery check has failed already)
  const anyUp = members.length === 0 || members.some((m) => m.running);
  if (!anyUp) notes.push("no member is running at the end: the final reads were skipped");
  let finalRevision = anyUp ? await readAll(workload, reader, FINAL_READ_CLIENT) : 0;
  const behind = await workload.catchUpWatchers(finalRevision, 10_000);
  if (behind.length > 0)
    notes.push(
      `watchers ${behind.join(", ")} had not delivered up to revision ${finalRevision} within 10 s`,
    );
  if (recoveryFailures.length === 0) {
    hashes.push(
      ...(await hashAll(endpoints, names, finalRevision, "before-restart", o.callDeadlineMs)),
    );
    if (members.length > 0) {
      // the last crash: every member at once (a power loss with --power-loss), then all back
      await Promise.all(members.map((m) => m.kill9()));
      try {
        await Promise.all(members.map((m) => m.start()));
        finalRevision = Math.max(
          finalRevision,
          await readAll(workload, reader, RESTART_READ_CLIENT),
        );
        hashes.push(
          ...(await hashAll(
            endpoints,
            names,
            hashes[0]?.revision ?? finalRevision,
            "after-restart",
            o.callDeadlineMs,
          )),
        );
      } catch (err) {
        recoveryFailures.push(`after the final crash of every member: ${(err as Error).message}`);
      }
    }
  }
  workload.close();
  await Promise.all(members.map((m) => m.stop()));
  for (const p of proxies) p.close();
  unregister();

  const stats = workload.recorder.stats();
  const rec: RunRecord = {
    seed: o.seed,
    command: o.commandLine,
    startRevision,
    keys: workload.allKeys(),
    operations: workload.recorder.history(),
    watches: workload.watches,
    watchers: o.watchers,
    leases: workload.leases,
    hashes,
    recoveryFailures,
    ...(server !== undefined ? { server } : {}),
  };
  writeHistory(outDir, rec);
  say(`checking ${rec.operations.length} operations and ${rec.watches.length} watch streams`);
  const checks = runChecks(rec, { timeBudgetMs: o.checkBudgetMs });
  const summary: RunSummary = {
    seed: o.seed,
    command: o.commandLine,
    replay: replayCommands({ ...o, outDir }),
    members: names,
    callsByMember: Object.fromEntries(
      endpoints.map((e, i) => [names[i]!, workload.okByEndpoint.get(e) ?? 0]),
    ),
    durationSeconds: timeline.nowMs() / 1000,
    operations: {
      ok: timeline.totalOk,
      failed: timeline.totalFailed,
      recorded: stats.recorded,
      pending: stats.pending,
    },
    faults: timeline.faults,
    faultCounts: timeline.faultCounts(),
    failureReasons: [...timeline.failureReasons].sort((a, b) => b[1] - a[1]),
    seconds: timeline.seconds(),
    notes,
  };
  const report = writeReport(outDir, summary, checks);
  return { verdict: checks.verdict, report, exitCode: exitCodeOf(checks.verdict), outDir };
}

/** `torture check --out DIR`: the checks again on a saved history; rewrites nothing but prints. */
export function recheck(outDir: string, checkBudgetMs: number): TortureResult {
  const rec = readHistory(outDir);
  const checks = runChecks(rec, { timeBudgetMs: checkBudgetMs });
  const lines = [
    `etcd-ts torture check of ${outDir} (seed ${rec.seed}): ${checks.verdict.toUpperCase()}`,
  ];
  for (const c of checks.checks) {
    lines.push(`[${c.verdict.toUpperCase()}] ${c.name}: ${c.summary}`);
    for (const d of c.details.slice(0, 200)) lines.push(`    ${d}`);
  }
  return {
    verdict: checks.verdict,
    report: lines.join("\n") + "\n",
    exitCode: exitCodeOf(checks.verdict),
    outDir,
  };
}
