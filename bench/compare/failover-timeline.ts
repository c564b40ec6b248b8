/**
 * Where a failover's time goes, from a `bench:cluster --work-dir DIR --keep` run: for each
 * failover line of the bench's output (`failover i/n SYSTEM: killed NAME at ISO, next put after
 * MS ms …`) it reads the surviving members' logs (DIR/SYSTEM/m<i>.log; etcd-ts's pino lines and
 * etcd's zap lines, both at --log-level info) and prints, in ms after the SIGKILL:
 *
 * - campaign: the first survivor's election timer fired ("became pre-candidate" / "became
 *   candidate at term", etcd-io/raft's words in both);
 * - leader: a survivor "became leader at term";
 * - known: the other survivor logged "elected leader" for it (raft.node's line);
 * - put: the first successful put sent after the kill (the bench's number).
 *
 * Usage: node dist/bench/compare/failover-timeline.js DIR BENCH_OUTPUT_FILE
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** One timestamped log line of a member. */
interface LogLine {
  atMs: number;
  msg: string;
}

/** The lines of a member's log with their wall-clock times (ms since the epoch). */
function readLog(file: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const j = JSON.parse(line) as { time?: number; ts?: string; msg?: string };
      const atMs = typeof j.time === "number" ? j.time : Date.parse(j.ts ?? "");
      if (Number.isFinite(atMs) && typeof j.msg === "string") out.push({ atMs, msg: j.msg });
    } catch {
      // a line cut short by the SIGKILL
    }
  }
  return out;
}

/** The first line at or after `fromMs` (and before `toMs`) whose message matches `re`. */
function first(lines: LogLine[], re: RegExp, fromMs: number, toMs: number): number | undefined {
  return lines.find((l) => l.atMs >= fromMs && l.atMs < toMs && re.test(l.msg))?.atMs;
}

/** The earliest of the defined times. */
function earliest(times: (number | undefined)[]): number | undefined {
  const d = times.filter((t): t is number => t !== undefined);
  return d.length === 0 ? undefined : Math.min(...d);
}

const failoverLine =
  /failover (\d+)\/\d+ (etcd|etcd-ts): killed (\S+) at (\S+), next put after (\d+|n\/a) ms/;

function main(): void {
  const [dir, outputFile] = process.argv.slice(2);
  if (dir === undefined || outputFile === undefined) {
    console.error("usage: failover-timeline DIR BENCH_OUTPUT_FILE");
    process.exit(2);
  }
  const logs = new Map<string, LogLine[][]>();
  const logsOf = (system: string): LogLine[][] => {
    let l = logs.get(system);
    if (l === undefined) {
      l = [0, 1, 2].map((i) => readLog(join(dir, system, `m${i}.log`)));
      logs.set(system, l);
    }
    return l;
  };
  const ms = (t: number | undefined, k: number) => (t === undefined ? "n/a" : String(t - k));
  console.log("system   rep  campaign  leader  known  put   (ms after the SIGKILL)");
  for (const line of readFileSync(outputFile, "utf8").split("\n")) {
    const m = failoverLine.exec(line);
    if (m === null) continue;
    const [, rep, system, killed, iso, putMs] = m as unknown as string[];
    const k = Date.parse(iso!);
    const killedIndex = Number(/(\d+)$/.exec(killed!)![1]);
    const survivors = logsOf(system!).filter((_, i) => i !== killedIndex);
    const until = k + 30_000;
    const campaign = earliest(
      survivors.map((s) => first(s, /became (pre-)?candidate at term/, k, until)),
    );
    const leaders = survivors.map((s) => first(s, /became leader at term/, k, until));
    const leader = earliest(leaders);
    // the other survivor's raft.node line for the new leader
    const known =
      leader === undefined
        ? undefined
        : earliest(
            survivors.map((s, i) =>
              leaders[i] === leader ? undefined : first(s, /elected leader/, k, until),
            ),
          );
    console.log(
      `${system!.padEnd(8)} ${rep!.padStart(3)}  ${ms(campaign, k).padStart(8)}  ${ms(leader, k).padStart(6)}  ${ms(known, k).padStart(5)}  ${putMs!.padStart(4)}`,
    );
  }
}

main();
