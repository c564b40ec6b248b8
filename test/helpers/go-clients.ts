// Go clients in the load tests (issues 12 and 14): `etcdctl watch` processes, one grpc-go
// connection each, that record every event's revision while a load runs, and the checks made on
// them and on a run of etcd's benchmark tool afterwards. Each process is ended by its own pid.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { EtcdBenchmarkResult } from "../../bench/compare/etcd-benchmark.js";
import { CLIENT_TIMEOUT_MS, etcdctl, type Member } from "./server.js";

/** One `etcdctl watch` process. */
export interface GoWatcher {
  /** mod revisions in the order received */
  revisions: number[];
  /** etcdctl's stderr (grpc-go's --debug log), at most 1 MiB */
  stderr: string;
  /** resolves when the process has exited */
  exited: Promise<void>;
  /** SIGKILLs the process by its pid (once it has exited, does nothing) */
  stop(): void;
}

/** grpc-go's log lines that mean the connection was closed under the client. */
export const closedConnectionLog = /GoAway|transport is closing|too_many_pings|PING flood/i;

/**
 * Spawns `etcdctl --debug watch --prefix "" -w json` (every key) against `member` (its client
 * certificate and CA when it serves TLS) and records each event's mod revision as the responses
 * stream in (one JSON WatchResponse per line). Killed by pid in stop() or after `timeoutMs`.
 */
export function startGoWatcher(member: Member, timeoutMs: number): GoWatcher {
  const tls = member.tls;
  const tlsArgs =
    tls === undefined
      ? []
      : [`--cacert=${tls.caCert}`, `--cert=${tls.clientCert}`, `--key=${tls.clientKey}`];
  const child = spawn(
    process.env.ETCDCTL_BIN ?? "/usr/bin/etcdctl",
    [
      `--endpoints=${member.endpoint}`,
      ...tlsArgs,
      "--debug",
      "watch",
      "--prefix",
      "",
      "-w",
      "json",
    ],
    { env: { PATH: process.env.PATH ?? "", ETCDCTL_API: "3" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const w: GoWatcher = { revisions: [], stderr: "", exited: Promise.resolve(), stop: () => {} };
  let pending = "";
  child.stdout.on("data", (b: Buffer) => {
    pending += b.toString("utf8");
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) {
      for (const m of line.matchAll(/"mod_revision":(\d+)/g)) w.revisions.push(Number(m[1]));
    }
  });
  child.stderr.on("data", (b: Buffer) => {
    if (w.stderr.length < 1024 * 1024) w.stderr += b.toString("utf8");
  });
  const kill = () => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid, "SIGKILL");
    }
  };
  const timer = setTimeout(kill, timeoutMs);
  w.exited = new Promise((resolve) =>
    child.on("close", () => {
      clearTimeout(timer);
      resolve();
    }),
  );
  w.stop = kill;
  return w;
}

/**
 * A watch exists once etcdctl's process is up and has sent its create: puts `markerKey` through
 * `via` every 200 ms until every watcher saw one (at most CLIENT_TIMEOUT_MS), then drops what
 * each saw before the last marker. Returns the last marker's revision: the load's events follow it.
 */
export async function awaitWatchers(
  watchers: GoWatcher[],
  via: Member,
  markerKey: string,
): Promise<number> {
  let startRevision = 0;
  const deadline = Date.now() + CLIENT_TIMEOUT_MS;
  while (watchers.some((w) => w.revisions.length === 0) && Date.now() < deadline) {
    const put = await etcdctl(["put", markerKey, "x", "-w", "json"], { member: via });
    assert.equal(put.code, 0, put.stderr);
    startRevision = Number(/"revision":(\d+)/.exec(put.stdout)?.[1]);
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(
    watchers.every((w) => w.revisions.includes(startRevision)),
    "every watcher saw the last marker put",
  );
  for (const w of watchers) w.revisions = w.revisions.filter((r) => r >= startRevision);
  return startRevision;
}

/**
 * Waits (at most `timeoutMs`) until every watcher received revision startRevision + total, then
 * asserts each saw every revision from startRevision on exactly once, in order, and that grpc-go
 * logged no closed connection.
 */
export async function assertEveryRevisionOnce(
  watchers: GoWatcher[],
  startRevision: number,
  total: number,
  timeoutMs: number,
): Promise<void> {
  const lastRevision = startRevision + total;
  const deadline = Date.now() + timeoutMs;
  while (watchers.some((w) => w.revisions.at(-1) !== lastRevision) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const [i, w] of watchers.entries()) {
    // every revision exactly once, in order: nothing missed, nothing repeated
    assert.equal(w.revisions.length, total + 1, `watcher ${i} event count`);
    for (let j = 0; j < w.revisions.length; j++) {
      if (w.revisions[j] !== startRevision + j) {
        assert.fail(`watcher ${i}: event ${j} has revision ${w.revisions[j]}`);
      }
    }
    const closed = w.stderr.split("\n").filter((l) => closedConnectionLog.test(l));
    assert.deepEqual(closed, [], `watcher ${i}'s connection was closed`);
  }
}

/**
 * Asserts the report of a run of etcd's benchmark tool and grpc-go's log of it: `total` requests,
 * every one succeeded, and no connection was closed under the tool (a reconnect) or failed to
 * connect.
 */
export function assertCleanBenchmarkRun(r: EtcdBenchmarkResult, total: number): void {
  const what = `benchmark ${r.tool.argv.join(" ")}: ${JSON.stringify({
    errors: r.errorCounts,
    connections: r.tool.connections,
    requestsPerSecond: r.requestsPerSecond,
  })}`;
  assert.equal(r.errors, 0, what);
  assert.equal(r.requests, total, what);
  assert.equal(r.tool.connections.reconnects, 0, what);
  assert.equal(r.tool.connections.transientFailures, 0, what);
}
