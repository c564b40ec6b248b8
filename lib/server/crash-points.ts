/**
 * Named crash points for the crash tests (issue 13: "kill -9 during snapshot writes at seeded
 * points, a crash hook, not a sleep-and-hope"). When the environment variable ETCDTS_CRASH_POINT
 * names a point, the process SIGKILLs itself the Nth time it reaches that point (N from
 * ETCDTS_CRASH_AFTER, default 1): nothing is flushed, no handler runs, as with kill -9 or a power
 * cut after the steps before it. Unset (production), a crash point costs one string comparison.
 *
 * Points (snapshotter.ts): snapshot-db-mid-write, snapshot-before-db-rename,
 * snapshot-after-db-rename, snapshot-after-snap-file, snapshot-after-wal-record,
 * snapshot-after-wal-release.
 */
const armed = process.env.ETCDTS_CRASH_POINT ?? "";
let remaining = Math.max(1, Number.parseInt(process.env.ETCDTS_CRASH_AFTER ?? "1", 10) || 1);

/** SIGKILLs the process here if ETCDTS_CRASH_POINT names `name` (see the module comment). */
export function crashPoint(name: string): void {
  if (armed !== name) return;
  if (--remaining > 0) return;
  process.stderr.write(`etcd-ts: crash point ${name} reached: SIGKILL\n`);
  process.kill(process.pid, "SIGKILL");
}
