// bench:compare --snapshots and --members 3: the pure parts (etcd's snapshot spans from its zap
// log) and one reduced run of each against real etcd 3.4 and etcd-ts (a few hundred keys, runs of
// a fraction of a second, one failover; no timing asserted: these are benchmarks).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { defaultCompareOptions, writeResults } from "../../bench/compare/index.js";
import {
  compareSnapshots,
  etcdSnapshotSpansMs,
  parseZapTime,
} from "../../bench/compare/snapshots.js";
import { CLUSTER_ROW_PREFIX, compareCluster } from "../../bench/compare/cluster.js";

const etcdTsJs = new URL("../../tools/etcd-ts.js", import.meta.url).pathname;
const skip =
  !existsSync("/usr/bin/etcd") || !existsSync(etcdTsJs) ? "needs /usr/bin/etcd and a build" : false;

describe("bench:compare --snapshots, pure parts", () => {
  test("zap times parse with a Z or a +0000 offset", () => {
    const z = parseZapTime("2026-12-06T05:01:02.345Z");
    assert.equal(z, Date.UTC(2026, 11, 6, 5, 1, 2, 345));
    assert.equal(parseZapTime("2026-12-06T05:01:02.345+0000"), z);
    assert.equal(parseZapTime("2026-12-06T06:01:02.345+0100"), z);
    assert.ok(Number.isNaN(parseZapTime("yesterday")));
  });

  test("each 'triggering snapshot' is paired with the next 'saved snapshot'; other lines are skipped", () => {
    const line = (ts: string, msg: string): string =>
      JSON.stringify({ level: "info", ts, caller: "etcdserver/server.go:1", msg });
    const log = [
      line("2026-12-06T05:00:00.000Z", "saved snapshot"), // its trigger was before the run
      line("2026-12-06T05:00:01.000Z", "triggering snapshot"),
      "not json",
      line("2026-12-06T05:00:01.040Z", "compacted Raft logs"),
      line("2026-12-06T05:00:01.125Z", "saved snapshot"),
      line("2026-12-06T05:00:02.000Z", "triggering snapshot"),
      line("2026-12-06T05:00:02.010+0000", "saved snapshot"),
      line("2026-12-06T05:00:03.000Z", "triggering snapshot"), // still running at the end
      "",
    ].join("\n");
    assert.deepEqual(etcdSnapshotSpansMs(log), [125, 10]);
    assert.deepEqual(etcdSnapshotSpansMs(""), []);
  });
});

describe("bench:compare --snapshots and --members 3, reduced runs", { skip }, () => {
  test(
    "snapshots: every row has both systems, snapshots happened, the defragment rows exist",
    { timeout: 240_000 },
    async () => {
      const work = mkdtempSync(join(tmpdir(), "etcd-ts-compare-snapshots-test-"));
      try {
        const res = await compareSnapshots({
          ...defaultCompareOptions(),
          etcdTsJs,
          rounds: 1,
          secondsPerRun: 3,
          warmupSeconds: 0,
          preloadKeys: 500,
          workDir: join(work, "run"),
        });
        const by = new Map(res.rows.map((r) => [r.name, r]));
        const need = [
          "snapshots: put 128 clients",
          "snapshots: p99 latency put 128 clients",
          "snapshots: longest put (max latency)",
          "snapshots: snapshots during the run",
          "no snapshots: longest put (max latency)",
          "defrag: Defragment at 0.5k keys, no load",
          "defrag: Defragment while 128 clients put, 0.5k keys",
          "defrag: longest put during Defragment (max latency), 0.5k keys",
        ];
        for (const n of need) {
          const r = by.get(n);
          assert.ok(r !== undefined, `no row ${n} in ${[...by.keys()].join("; ")}`);
          assert.ok(r.etcd !== null && r.etcdTs !== null, JSON.stringify(r));
        }
        // 3 s of puts at 128 clients are well over 10,000 puts on either member: at least one
        // snapshot each, and etcd-ts's time and MB/s come from its metrics
        assert.ok(by.get("snapshots: snapshots during the run")!.etcdTs! >= 1);
        // the baseline members take none
        assert.deepEqual(
          [
            by.get("no snapshots: snapshots during the run")!.etcd,
            by.get("no snapshots: snapshots during the run")!.etcdTs,
          ],
          [0, 0],
        );
        assert.ok(by.get("snapshots: time per snapshot (mean)")!.etcdTs! > 0);
        assert.ok(by.get("snapshots: db file write speed")!.etcdTs! > 0);
        assert.equal(by.get("snapshots: db file write speed")!.etcd, null);
        const files = writeResults(join(work, "out"), { ...res, kind: "snapshots" }, "test");
        assert.ok(files.some((f) => f.endsWith("latest-snapshots.md")));
        assert.ok(!files.some((f) => f.endsWith(".svg")));
        assert.match(readFileSync(join(work, "out", "latest-snapshots.md"), "utf8"), /defrag: /);
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    },
  );

  test(
    "cluster: puts over three endpoints, ranges from followers, a failover each",
    { timeout: 240_000 },
    async () => {
      const work = mkdtempSync(join(tmpdir(), "etcd-ts-compare-cluster-test-"));
      try {
        const res = await compareCluster({
          ...defaultCompareOptions(),
          etcdTsJs,
          rounds: 1,
          secondsPerRun: 0.5,
          warmupSeconds: 0,
          failovers: 1,
          workloadNames: ["put 128 clients", "range linearizable 128 clients"],
          workDir: join(work, "run"),
        });
        const by = new Map(res.rows.map((r) => [r.name, r]));
        for (const n of [
          `${CLUSTER_ROW_PREFIX}put 128 clients`,
          `${CLUSTER_ROW_PREFIX}p99 latency put 128 clients`,
          `${CLUSTER_ROW_PREFIX}range linearizable 128 clients from followers`,
          `${CLUSTER_ROW_PREFIX}failover: leader SIGKILL to the next successful put (median)`,
        ]) {
          const r = by.get(n);
          assert.ok(r !== undefined, `no row ${n} in ${[...by.keys()].join("; ")}`);
          assert.ok(
            r.etcd !== null && r.etcd > 0 && r.etcdTs !== null && r.etcdTs > 0,
            JSON.stringify(r),
          );
        }
        assert.ok(res.rows.every((r) => r.name.startsWith(CLUSTER_ROW_PREFIX)));
        // the follower run used two endpoints, the put run three
        const endpoints = (w: string, s: string): number =>
          (
            res.runs.find((r) => String(r["workload"]).endsWith(w) && r["system"] === s)![
              "result"
            ] as {
              endpoints: string[];
            }
          ).endpoints.length;
        assert.equal(endpoints("put 128 clients", "etcd-ts"), 3);
        assert.equal(endpoints("from followers", "etcd-ts"), 2);
        // the cluster's charts: put throughput and p99 against clients, failover; rows not run
        // (1 and 1000 clients here) are drawn as "n/a"
        const files = writeResults(join(work, "out"), { ...res, kind: "cluster" }, "test");
        const svgs = files.filter((f) => f.endsWith(".svg")).map((f) => basename(f));
        assert.deepEqual(svgs.sort(), [
          "failover-cluster.svg",
          "p99-vs-clients-cluster.svg",
          "throughput-vs-clients-cluster.svg",
        ]);
        const throughput = readFileSync(
          join(work, "out", "throughput-vs-clients-cluster.svg"),
          "utf8",
        );
        assert.match(throughput, /128 clients/);
        assert.equal(throughput.match(/>n\/a</g)?.length, 4, "1 and 1000 clients, both systems");
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    },
  );
});
