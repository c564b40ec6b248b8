// Issue 12: Go gRPC clients (etcdctl 3.4, grpc-go) keep their connections under sustained load.
// A busy grpc-go connection sends a BDP PING each time it receives data while none is
// outstanding, hundreds per second; a server that calls that a PING flood closes it (GOAWAY
// ENHANCE_YOUR_CALM), and the client reconnects (a watch resumes, a put in flight fails with
// "transport is closing"). Here three `etcdctl watch` processes receive every event of a
// 128-client put load, with grpc-go's own logging on (--debug), and must see every revision once
// with no GOAWAY and no closed transport; the member must count no connection error.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import {
  CLIENT_TIMEOUT_MS,
  etcdctl,
  repoRoot,
  run,
  startMember,
  type Member,
} from "../helpers/server.js";

/** Puts in the load; each is one revision and one event at every watcher. */
const PUT_TOTAL = 20_000;
/** Watchers (etcdctl processes, one grpc-go connection each). */
const WATCHERS = 3;
/** Bound on the whole load plus the watchers draining it. */
const LOAD_TIMEOUT_MS = 90_000;

interface Watcher {
  /** mod revisions in the order received */
  revisions: number[];
  stderr: string;
  /** resolves when the process has exited */
  exited: Promise<void>;
  stop(): void;
}

/**
 * Spawns `etcdctl --debug watch --prefix "" -w json` (every key) and records each event's mod
 * revision as the responses stream in (one JSON WatchResponse per line). Killed by pid in stop()
 * or after LOAD_TIMEOUT_MS.
 */
function startWatcher(member: Member): Watcher {
  const child = spawn(
    process.env.ETCDCTL_BIN ?? "/usr/bin/etcdctl",
    [`--endpoints=${member.endpoint}`, "--debug", "watch", "--prefix", "", "-w", "json"],
    { env: { PATH: process.env.PATH ?? "", ETCDCTL_API: "3" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const w: Watcher = { revisions: [], stderr: "", exited: Promise.resolve(), stop: () => {} };
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
  const timer = setTimeout(kill, LOAD_TIMEOUT_MS);
  w.exited = new Promise((resolve) =>
    child.on("close", () => {
      clearTimeout(timer);
      resolve();
    }),
  );
  w.stop = kill;
  return w;
}

/** grpc-go's log lines that mean the connection was closed under the client. */
const closedConnectionLog = /GoAway|transport is closing|too_many_pings|PING flood/i;

describe("Go clients under sustained load", { timeout: LOAD_TIMEOUT_MS + 60_000 }, () => {
  let member: Member;
  before(async () => {
    member = await startMember({ name: "go-load" });
  });
  after(async () => {
    await member?.close();
  });

  test(`${WATCHERS} etcdctl watchers see all ${PUT_TOTAL} puts of a 128-client load on one connection each`, async () => {
    const watchers = Array.from({ length: WATCHERS }, () => startWatcher(member));
    try {
      // a watch exists once etcdctl's process is up: put a marker until every watcher saw one,
      // then count from the marker's revision
      let startRevision = 0;
      const deadline = Date.now() + CLIENT_TIMEOUT_MS;
      while (watchers.some((w) => w.revisions.length === 0) && Date.now() < deadline) {
        const put = await etcdctl(["put", "go-load-start", "x", "-w", "json"], { member });
        assert.equal(put.code, 0, put.stderr);
        startRevision = Number(/"revision":(\d+)/.exec(put.stdout)?.[1]);
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(
        watchers.every((w) => w.revisions.includes(startRevision)),
        "every watcher saw the last marker put",
      );
      for (const w of watchers) w.revisions = w.revisions.filter((r) => r >= startRevision);

      const load = await run(
        process.execPath,
        [
          join(repoRoot(), "dist/tools/etcd-ts-bench.js"),
          "put",
          "--endpoints",
          member.hostPort,
          "--clients",
          "128",
          "--conns",
          "16",
          "--total",
          String(PUT_TOTAL),
          "--key-space-size",
          String(PUT_TOTAL),
          "--sequential-keys",
          "--val-size",
          "16",
        ],
        { timeoutMs: LOAD_TIMEOUT_MS },
      );
      assert.equal(load.code, 0, `load generator: ${load.stderr}${load.stdout}`);
      assert.match(load.stdout, new RegExp(`Requests:\\s+${PUT_TOTAL} \\(0 failed\\)`));

      const lastRevision = startRevision + PUT_TOTAL;
      const drainDeadline = Date.now() + LOAD_TIMEOUT_MS;
      while (
        watchers.some((w) => w.revisions.at(-1) !== lastRevision) &&
        Date.now() < drainDeadline
      ) {
        await new Promise((r) => setTimeout(r, 100));
      }
      for (const [i, w] of watchers.entries()) {
        // every revision exactly once, in order: nothing missed, nothing repeated
        assert.equal(w.revisions.length, PUT_TOTAL + 1, `watcher ${i} event count`);
        for (let j = 0; j < w.revisions.length; j++) {
          if (w.revisions[j] !== startRevision + j) {
            assert.fail(`watcher ${i}: event ${j} has revision ${w.revisions[j]}`);
          }
        }
        const closed = w.stderr.split("\n").filter((l) => closedConnectionLog.test(l));
        assert.deepEqual(closed, [], `watcher ${i}'s connection was closed`);
      }
    } finally {
      for (const w of watchers) w.stop();
      await Promise.all(watchers.map((w) => w.exited));
    }

    // the member closed no client connection for an error, and warned about none
    const metrics = await member.httpGet("/metrics");
    assert.equal(metrics.status, 200);
    const counted = metrics.body
      .split("\n")
      .filter((l) => l.startsWith("etcd_ts_grpc_connection_errors_total{") && !/ 0$/.test(l));
    if (!metrics.body.includes("# TYPE etcd_ts_grpc_connection_errors_total counter")) {
      // the grpc-js transport (second pass) has no lib/h2 connections to count
      assert.equal(process.env.ETCD_TS_GRPC_TRANSPORT, "grpc-js", "metric missing");
    }
    assert.deepEqual(counted, []);
    assert.doesNotMatch(member.logTail(1024 * 1024), /closed a client connection/);
  });
});
