// Issue 12: Go gRPC clients (etcdctl 3.4, grpc-go) keep their connections under sustained load.
// A busy grpc-go connection sends a BDP PING each time it receives data while none is
// outstanding, hundreds per second; a server that calls that a PING flood closes it (GOAWAY
// ENHANCE_YOUR_CALM), and the client reconnects (a watch resumes, a put in flight fails with
// "transport is closing"). Here three `etcdctl watch` processes receive every event of a
// 128-client put load, with grpc-go's own logging on (--debug), and must see every revision once
// with no GOAWAY and no closed transport; the member must count no connection error.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  connectionErrorLines,
  repoRoot,
  run,
  startMember,
  type Member,
} from "../helpers/server.js";
import { assertEveryRevisionOnce, awaitWatchers, startGoWatcher } from "../helpers/go-clients.js";

/** Puts in the load; each is one revision and one event at every watcher. */
const PUT_TOTAL = 20_000;
/** Watchers (etcdctl processes, one grpc-go connection each). */
const WATCHERS = 3;
/** Bound on the whole load plus the watchers draining it. */
const LOAD_TIMEOUT_MS = 90_000;

describe("Go clients under sustained load", { timeout: LOAD_TIMEOUT_MS + 60_000 }, () => {
  let member: Member;
  before(async () => {
    member = await startMember({ name: "go-load" });
  });
  after(async () => {
    await member?.close();
  });

  test(`${WATCHERS} etcdctl watchers see all ${PUT_TOTAL} puts of a 128-client load on one connection each`, async () => {
    const watchers = Array.from({ length: WATCHERS }, () =>
      startGoWatcher(member, LOAD_TIMEOUT_MS),
    );
    try {
      const startRevision = await awaitWatchers(watchers, member, "go-load-start");

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

      await assertEveryRevisionOnce(watchers, startRevision, PUT_TOTAL, LOAD_TIMEOUT_MS);
    } finally {
      for (const w of watchers) w.stop();
      await Promise.all(watchers.map((w) => w.exited));
    }

    // the member closed no client connection for an error, and warned about none
    assert.deepEqual(await connectionErrorLines(member), []);
    assert.doesNotMatch(member.logTail(1024 * 1024), /closed a client connection/);
  });
});
