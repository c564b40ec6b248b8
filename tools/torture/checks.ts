/**
 * The torture run's verdict, from what the run recorded (a RunRecord, also saved as
 * history.json so `etcd-ts-util torture check --out DIR` replays the checks):
 *
 * - linearizability: lib/checker's search over the key-value history (with the first watcher's
 *   events to resolve lost responses when its stream is itself correct);
 * - watches: lib/checker's watch guarantees (ordered, unique, atomic, reliable, resumable,
 *   bookmarkable, valid) for every watcher's chain of resumed streams;
 * - acknowledged writes survive: each key's last acknowledged write is still there (or was
 *   overwritten or deleted later) in the reads after the final crash and restart;
 * - leases: a keep-alive of a live lease answers a TTL, a revoked lease's key is gone;
 * - HashKV: every member's hash at the final revision agrees, before and after the final restart;
 * - recovery: every member came back after every fault.
 *
 * The verdict is "pass" only when every check passed or found only a known bug of the real etcd
 * release under test (known-issues.ts: reported as "known", with the etcd issue); "unknown" when
 * the linearizability search ran out of budget and nothing else failed.
 */
import {
  checkLinearizability,
  checkWatches,
  describeOperation,
  writesOfHistory,
  type KvOperation,
  type LinearizabilityResult,
  type WatchCheckResult,
  type WatchRecord,
  type WatchViolation,
  type WatchWrite,
  type WatchedWrites,
} from "../../lib/checker/index.js";
import type { LeaseRecord } from "./workload.js";
import { knownIssuesOf, type ServerIdentity } from "./known-issues.js";

/** Client id of the reads of every key after the workload stopped, before the final restart. */
export const FINAL_READ_CLIENT = 100_000;
/** Client id of the reads of every key after the final crash and restart. */
export const RESTART_READ_CLIENT = 100_001;

/** One member's HashKV at a revision, in a phase of the end of the run. */
export interface HashRecord {
  member: string;
  phase: "before-restart" | "after-restart";
  revision: number;
  hash?: number;
  error?: string;
}

/** Everything a run recorded that the checks read (history.json). */
export interface RunRecord {
  seed: number;
  /** The run's command line, for the replay hint. */
  command: string;
  /** Store revision before the workload (its keys did not exist). */
  startRevision: number;
  keys: string[];
  operations: KvOperation[];
  watches: WatchRecord[];
  /** Number of watchers (records of watcher i have id `w<i>` or `w<i>.<n>`). */
  watchers: number;
  leases: LeaseRecord[];
  hashes: HashRecord[];
  /** Faults after which a member could not start again, and members the end could not heal. */
  recoveryFailures: string[];
  /** The members' server, as `--version` named it (absent with --endpoints or when unknown). */
  server?: ServerIdentity;
}

/** One check's outcome. */
export interface CheckOutcome {
  name: "linearizability" | "watches" | "acknowledged-writes" | "leases" | "hashkv" | "recovery";
  /** "known": everything it found is a known bug of the real etcd release under test. */
  verdict: "pass" | "fail" | "unknown" | "known";
  summary: string;
  /** For a failure: the smallest failing sub-history or the list of what broke, one per line. */
  details: string[];
}

/** The verdict of a run. */
export interface CheckReport {
  verdict: "pass" | "fail" | "unknown";
  checks: CheckOutcome[];
  /** Checker figures (steps, partitions, durations). */
  figures: Record<string, number>;
}

/** Budgets of the checks. */
export interface CheckBudget {
  timeBudgetMs: number;
}

function watcherChain(rec: RunRecord, i: number): WatchRecord[] {
  return rec.watches.filter((w) => w.id === `w${i}` || w.id.startsWith(`w${i}.`));
}

/** etcd's covered revision of a watch chain's last record (events or progress delivered). */
function coveredOf(chain: WatchRecord[]): number {
  const last = chain.at(-1);
  if (last === undefined) return 0;
  let covered = last.startRevision - 1;
  for (const w of chain) {
    for (const r of w.responses) {
      for (const e of r.events) covered = Math.max(covered, e.modRevision);
      if (r.progressNotify === true) covered = Math.max(covered, r.headerRevision ?? 0);
    }
  }
  return covered;
}

function checkWatchesOf(rec: RunRecord): { outcome: CheckOutcome; result: WatchCheckResult } {
  const { writes, possibleWrites } = writesOfHistory(rec.operations);
  const result = checkWatches({ writes, possibleWrites, watches: rec.watches });
  if (result.verdict === "ok") {
    return {
      result,
      outcome: {
        name: "watches",
        verdict: "pass",
        summary: `${result.watches} watch streams, ${result.events} events: ordered, unique, atomic, reliable, resumable`,
        details: [],
      },
    };
  }
  const describe = (v: WatchViolation): string =>
    `${v.guarantee}: watch ${v.watch}${v.revision !== undefined ? ` rev ${v.revision}` : ""}: ${v.explanation}`;
  const issues = knownIssuesOf(rec.server);
  const known = result.violations.filter((v) => issues.some((k) => k.guarantee === v.guarantee));
  if (known.length === result.violations.length && result.omitted === 0) {
    const used = issues.filter((k) => known.some((v) => v.guarantee === k.guarantee));
    return {
      result,
      outcome: {
        name: "watches",
        verdict: "known",
        summary:
          `${known.length} violations, all of known bugs of etcd ${rec.server!.version}: ` +
          used.map((k) => `${k.id} (${k.summary}; fixed in ${k.fixedIn})`).join("; "),
        details: known.map(describe),
      },
    };
  }
  return {
    result,
    outcome: {
      name: "watches",
      verdict: "fail",
      summary: `${result.violations.length + result.omitted} watch guarantee violations`,
      details: result.violations.map(describe),
    },
  };
}

/** The first watcher's events as WatchedWrites, when its chain is complete up to `revision`. */
function watchedOf(rec: RunRecord, revision: number): WatchedWrites | undefined {
  if (rec.watchers === 0) return undefined;
  const chain = watcherChain(rec, 0);
  const completeRevision = coveredOf(chain);
  if (completeRevision < revision) return undefined;
  const events: WatchWrite[] = [];
  for (const w of chain) {
    for (const r of w.responses) {
      for (const e of r.events) {
        events.push(
          e.type === "put"
            ? { revision: e.modRevision, key: e.key, type: "put", value: e.value }
            : { revision: e.modRevision, key: e.key, type: "delete" },
        );
      }
    }
  }
  return { events, completeRevision };
}

function maxRevision(ops: KvOperation[]): number {
  let max = 0;
  for (const op of ops) max = Math.max(max, op.output?.revision ?? 0);
  return max;
}

function linearizabilityOutcome(r: LinearizabilityResult, ops: number): CheckOutcome {
  if (r.verdict === "ok") {
    return {
      name: "linearizability",
      verdict: "pass",
      summary: `${ops} operations linearizable (${r.partitions} partitions, ${r.steps} steps)`,
      details: [],
    };
  }
  if (r.verdict === "unknown") {
    return {
      name: "linearizability",
      verdict: "unknown",
      summary: `undecided: ${r.reason} (keys ${r.keys.slice(0, 5).join(", ")}${r.keys.length > 5 ? ", …" : ""})`,
      details: [],
    };
  }
  return {
    name: "linearizability",
    verdict: "fail",
    summary: `not linearizable on ${r.keys.join(", ")}: smallest failing sub-history has ${r.history.length} operations`,
    details: [
      ...r.explanation.split("\n"),
      "smallest failing sub-history:",
      ...r.history.map((op) => `  ${describeOperation(op)}`),
    ],
  };
}

/** Each key's last acknowledged write must be in the last reads (module comment). */
function checkAckedWrites(rec: RunRecord): CheckOutcome {
  const ops = rec.operations;
  const readClient = ops.some((o) => o.clientId === RESTART_READ_CLIENT)
    ? RESTART_READ_CLIENT
    : FINAL_READ_CLIENT;
  const finalReads = new Map<string, KvOperation>();
  for (const op of ops) {
    if (op.clientId === readClient && op.input.type === "get" && op.output !== undefined)
      finalReads.set(op.input.key, op);
  }
  const { writes } = writesOfHistory(ops.filter((o) => o.clientId !== readClient));
  const last = new Map<string, WatchWrite>();
  for (const w of writes) {
    const prev = last.get(w.key);
    if (prev === undefined || w.revision > prev.revision) last.set(w.key, w);
  }
  const pendingDeletes = new Set<string>();
  for (const op of ops) {
    if (op.output !== undefined) continue;
    const all = op.input.type === "txn" ? [...op.input.success, ...op.input.failure] : [op.input];
    for (const o of all) if (o.type === "delete") pendingDeletes.add(o.key);
  }
  const laterDelete = (key: string, rev: number) =>
    pendingDeletes.has(key) ||
    writes.some((w) => w.key === key && w.type === "delete" && w.revision > rev);
  const problems: string[] = [];
  for (const [key, w] of last) {
    const read = finalReads.get(key);
    if (read === undefined || read.output?.type !== "get") {
      problems.push(
        `${key}: no final read answered (its last acknowledged write is at revision ${w.revision})`,
      );
      continue;
    }
    const kv = read.output.kv;
    const mod = kv?.modRevision ?? 0;
    if (w.type === "put") {
      if (kv === null) {
        if (!laterDelete(key, w.revision))
          problems.push(
            `${key}: acknowledged put ${JSON.stringify(w.value)} at revision ${w.revision} is lost: the key is gone and no delete followed it`,
          );
      } else if (mod < w.revision) {
        problems.push(
          `${key}: acknowledged put at revision ${w.revision} is lost: the key holds ${JSON.stringify(kv.value)} from revision ${mod}`,
        );
      } else if (mod === w.revision && kv.value !== w.value) {
        problems.push(
          `${key}: revision ${w.revision} wrote ${JSON.stringify(w.value)} but reads ${JSON.stringify(kv.value)}`,
        );
      }
    } else if (kv !== null && mod < w.revision) {
      problems.push(
        `${key}: acknowledged delete at revision ${w.revision} is lost: the key still holds ${JSON.stringify(kv.value)} from revision ${mod}`,
      );
    }
  }
  const label =
    readClient === RESTART_READ_CLIENT ? "after the final crash and restart" : "at the end";
  return problems.length === 0
    ? {
        name: "acknowledged-writes",
        verdict: "pass",
        summary: `the last acknowledged write of each of ${last.size} keys is there ${label}`,
        details: [],
      }
    : {
        name: "acknowledged-writes",
        verdict: "fail",
        summary: `${problems.length} acknowledged writes lost`,
        details: problems.flatMap((p) => {
          const key = p.slice(0, p.indexOf(":"));
          const onKey = ops
            .filter((o) => JSON.stringify(o.input).includes(JSON.stringify(key)))
            .slice(-8);
          return [p, ...onKey.map((o) => `  ${describeOperation(o)}`)];
        }),
      };
}

function checkLeases(rec: RunRecord): CheckOutcome {
  const bad = rec.leases.filter((l) => l.violation !== undefined);
  const checked = rec.leases.filter((l) => l.step === "checked").length;
  return bad.length === 0
    ? {
        name: "leases",
        verdict: "pass",
        summary: `${rec.leases.length} lease cycles, ${checked} complete: keep-alives answered, revoked keys gone`,
        details: [],
      }
    : {
        name: "leases",
        verdict: "fail",
        summary: `${bad.length} lease violations`,
        details: bad.map((l) => `client ${l.client} lease ${l.lease}: ${l.violation}`),
      };
}

function checkHashes(rec: RunRecord): CheckOutcome {
  if (rec.hashes.length === 0)
    return {
      name: "hashkv",
      verdict: "pass",
      summary: "not measured (no member answered)",
      details: [],
    };
  const errors = rec.hashes.filter((h) => h.hash === undefined);
  const byRevision = new Map<number, HashRecord[]>();
  for (const h of rec.hashes)
    if (h.hash !== undefined)
      byRevision.set(h.revision, [...(byRevision.get(h.revision) ?? []), h]);
  const problems: string[] = errors.map(
    (h) => `${h.member} ${h.phase}: HashKV at ${h.revision} failed: ${h.error}`,
  );
  for (const [rev, list] of byRevision) {
    const distinct = new Set(list.map((h) => h.hash));
    if (distinct.size > 1) {
      problems.push(
        `HashKV at revision ${rev} disagrees: ${list.map((h) => `${h.member} ${h.phase} ${h.hash!.toString(16)}`).join(", ")}`,
      );
    }
  }
  const shown = [...byRevision].map(
    ([rev, list]) => `rev ${rev}: ${list[0]!.hash!.toString(16)} x${list.length}`,
  );
  return problems.length === 0
    ? {
        name: "hashkv",
        verdict: "pass",
        summary: `HashKV agrees (${shown.join("; ")})`,
        details: [],
      }
    : {
        name: "hashkv",
        verdict: "fail",
        summary: `${problems.length} HashKV problems`,
        details: problems,
      };
}

/** Runs every check over a run's record (see the module comment). */
export function runChecks(rec: RunRecord, budget: CheckBudget): CheckReport {
  const figures: Record<string, number> = {};
  const checks: CheckOutcome[] = [];
  const t0 = performance.now();
  const w = checkWatchesOf(rec);
  figures.watchCheckMs = Math.round(performance.now() - t0);
  const t1 = performance.now();
  const watched =
    w.result.verdict === "ok" ? watchedOf(rec, maxRevision(rec.operations)) : undefined;
  const lin = checkLinearizability(rec.operations, {
    initial: { revision: rec.startRevision, kvs: [] },
    timeBudgetMs: budget.timeBudgetMs,
    ...(watched !== undefined ? { watched } : {}),
  });
  figures.linearizabilityMs = Math.round(performance.now() - t1);
  figures.linearizabilitySteps = lin.steps;
  figures.operations = rec.operations.length;
  figures.operationsPending = rec.operations.filter((o) => o.output === undefined).length;
  figures.checkedOpsPerSecond = Math.round(
    rec.operations.length / Math.max(0.001, figures.linearizabilityMs / 1000),
  );
  checks.push(linearizabilityOutcome(lin, rec.operations.length));
  checks.push(w.outcome);
  checks.push(checkAckedWrites(rec));
  checks.push(checkLeases(rec));
  checks.push(checkHashes(rec));
  checks.push(
    rec.recoveryFailures.length === 0
      ? {
          name: "recovery",
          verdict: "pass",
          summary: "every member came back after every fault",
          details: [],
        }
      : {
          name: "recovery",
          verdict: "fail",
          summary: `${rec.recoveryFailures.length} times a member did not come back`,
          details: rec.recoveryFailures,
        },
  );
  const verdict = checks.some((c) => c.verdict === "fail")
    ? "fail"
    : checks.some((c) => c.verdict === "unknown")
      ? "unknown"
      : "pass";
  return { verdict, checks, figures };
}
