// bench:compare's second load generator, etcd's own `tools/benchmark`: parsing its report and
// grpc-go's log, sizing its runs, and one reduced comparison through it (skipped, saying why,
// when the tool is not built: tools/build-etcd-benchmark.sh).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  compare,
  defaultCompareOptions,
  writeResults,
  type CompareRow,
} from "../../bench/compare/index.js";
import {
  EtcdBenchmarkError,
  WATCH_LATENCY_WORKLOAD,
  benchmarkArgv,
  etcdBenchmarkMissing,
  etcdBenchmarkPath,
  etcdBenchmarkWorkloads,
  parseBenchmarkReport,
  parseGrpcLog,
  totalFor,
} from "../../bench/compare/etcd-benchmark.js";
import { repoRoot, startMember } from "../helpers/server.js";
import { connectionErrorsOf } from "../../bench/compare/workloads.js";

/** The tool's output for a put run with --precise (progress bar first), as etcd 3.4.23 prints it. */
const PUT_REPORT = [
  " 0 / 5000    0.00% 2096 / 5000   41.92% 5000 / 5000  100.00% 0s",
  "",
  "Summary:",
  "  Total:\t0.364298767 secs.",
  "  Slowest:\t0.027672907 secs.",
  "  Fastest:\t0.000952645 secs.",
  "  Average:\t0.007080132527799971 secs.",
  "  Stddev:\t0.0036285242683214876 secs.",
  "  Requests/sec:\t13724.998415929307",
  "",
  "Response time histogram:",
  "  0.000952645 [1]\t|",
  "  0.0036246712000000004 [536]\t|∎∎∎∎∎∎∎∎∎∎",
  "",
  "Latency distribution:",
  "  10% in 0.0035612 secs.",
  "  50% in 0.006164734 secs.",
  "  90% in 0.011678678 secs.",
  "  99% in 0.020548708 secs.",
  "  99.9% in 0.025521477 secs.",
  "",
  "Error distribution:",
  "  [2]\trpc error: code = Unavailable desc = transport is closing",
  "  [1]\tetcdserver: request timed out",
  "",
].join("\n");

describe("etcd's benchmark tool as a load generator", () => {
  test("its report parses into LoadResult's units (ms), with the error distribution", () => {
    const r = parseBenchmarkReport(PUT_REPORT);
    assert.equal(r.totalSeconds, 0.364298767);
    assert.equal(r.requestsPerSecond, 13724.998415929307);
    assert.ok(Math.abs(r.latencyMs.p50 - 6.164734) < 1e-9);
    assert.ok(Math.abs(r.latencyMs.p99 - 20.548708) < 1e-9);
    assert.ok(Math.abs(r.latencyMs.p999 - 25.521477) < 1e-9);
    assert.ok(Math.abs(r.latencyMs.max - 27.672907) < 1e-9);
    assert.ok(Math.abs(r.latencyMs.min - 0.952645) < 1e-9);
    assert.equal(r.latencyMs.count, 5000);
    assert.equal(r.errors, 3);
    assert.deepEqual(r.errorCounts, {
      "rpc error: code = Unavailable desc = transport is closing": 2,
      "etcdserver: request timed out": 1,
    });
  });

  test("a percentile the tool leaves out (99.9 % under 1000 samples) is the slowest", () => {
    const r = parseBenchmarkReport(PUT_REPORT.replace(/^ {2}99\.9% in .*$/m, ""));
    assert.ok(Math.abs(r.latencyMs.p999 - 27.672907) < 1e-9);
  });

  test("a report of only failures has no latencies; no report at all is an error", () => {
    const r = parseBenchmarkReport("\nError distribution:\n  [7]\tcontext deadline exceeded\n");
    assert.equal(r.errors, 7);
    assert.equal(r.latencyMs.count, 0);
    assert.throws(() => parseBenchmarkReport("Error: unknown flag: --x\n"), EtcdBenchmarkError);
  });

  test("grpc-go's log: CONNECTING or READY beyond the connections opened are reconnects", () => {
    const line = (s: string): string => `INFO: 2026/12/06 01:21:27 [core]Subchannel ${s}\n`;
    const change = (to: string, n: number): string =>
      line(`Connectivity change to ${to}`).repeat(n);
    // a normal run of 3 connections: the first one's first CONNECTING predates the tool's logger
    assert.deepEqual(parseGrpcLog(change("CONNECTING", 2) + change("READY", 3), 3), {
      connecting: 2,
      ready: 3,
      reconnects: 0,
      transientFailures: 0,
    });
    // two connections closed by the server (READY → CONNECTING → READY), one failed to reconnect
    const closed =
      change("CONNECTING", 3) +
      change("READY", 3) +
      change("CONNECTING", 2) +
      change("TRANSIENT_FAILURE", 1) +
      change("CONNECTING", 1) +
      change("READY", 2);
    assert.deepEqual(parseGrpcLog(closed, 3), {
      connecting: 6,
      ready: 5,
      reconnects: 3,
      transientFailures: 1,
    });
  });

  test("runs are sized from a rate (at least 10 per client, at most 5M); watch-latency from its put rate", () => {
    const ws = new Map(etcdBenchmarkWorkloads().map((w) => [w.name, w.spec]));
    const put1000 = ws.get("put 1000 clients")!;
    assert.equal(totalFor(put1000, 5, 20_000), 100_000);
    assert.equal(totalFor(put1000, 0.1, 20_000), 10_000);
    assert.equal(totalFor(put1000, 5, null), put1000.expectedPerSecond * 5);
    assert.equal(totalFor(put1000, 1e6, 1e6), 5_000_000);
    const watch = ws.get(WATCH_LATENCY_WORKLOAD)!;
    assert.equal(totalFor(watch, 5, 123_456), 500);
    assert.deepEqual(benchmarkArgv(watch, "127.0.0.1:1", 500), [
      "--endpoints=127.0.0.1:1",
      "--clients=100",
      "--conns=10",
      "--precise",
      "watch-latency",
      "--put-rate=100",
      "--key-size=8",
      "--val-size=256",
      "--total=500",
    ]);
    // issue 12's put command: --conns=100 at 128 and 1000 clients
    assert.equal(ws.get("put 128 clients")!.conns, 100);
    assert.equal(put1000.conns, 100);
  });

  const binary = etcdBenchmarkPath(repoRoot());
  const skip =
    etcdBenchmarkMissing(binary) ??
    (!existsSync("/usr/bin/etcd") ? "needs /usr/bin/etcd (Debian etcd-server)" : false);
  test(
    "a reduced comparison through the tool: etcd and etcd-ts, latency rows for watch-latency, failures counted",
    { skip, timeout: 120_000 },
    async () => {
      const work = mkdtempSync(join(tmpdir(), "etcd-ts-compare-tool-test-"));
      try {
        const res = await compare({
          ...defaultCompareOptions(),
          loadgen: "etcd-benchmark",
          etcdBenchmarkPath: binary,
          rounds: 1,
          secondsPerRun: 1,
          outDir: join(work, "out"),
          workDir: join(work, "run"),
          preloadKeys: 1000,
          workloadNames: ["range linearizable 128 clients", WATCH_LATENCY_WORKLOAD],
          warmupSeconds: 0.5,
        });
        // the grpc-js member does not run with etcd's tool
        assert.deepEqual(
          res.runs.map((r) => `${String(r["workload"])}/${String(r["system"])}`),
          [
            "range linearizable 128 clients/etcd",
            "range linearizable 128 clients/etcd-ts",
            `${WATCH_LATENCY_WORKLOAD}/etcd`,
            `${WATCH_LATENCY_WORKLOAD}/etcd-ts`,
          ],
        );
        const by = new Map(res.rows.map((r) => [r.name, r]));
        const range = by.get("range linearizable 128 clients")!;
        assert.ok(range.etcd! > 0 && range.etcdTs! > 0, JSON.stringify(range));
        assert.ok(!range.etcdTsGrpcJsRan);
        // the range read the 256 B key put before the rounds (not an empty range)
        const rangeRun = res.runs.find((r) => r["workload"] === range.name)!;
        assert.ok(
          (rangeRun["result"] as { tool: { argv: string[] } }).tool.argv.includes("rangekey"),
        );
        for (const name of [
          `p50 latency ${WATCH_LATENCY_WORKLOAD}`,
          `p99 latency ${WATCH_LATENCY_WORKLOAD}`,
        ]) {
          const w = by.get(name)!;
          assert.ok(w.lowerIsBetter && w.unit === "ms", name);
          assert.ok(
            w.etcd! > 0 && w.etcd! < 1000 && w.etcdTs! > 0 && w.etcdTs! < 1000,
            JSON.stringify(w),
          );
        }
        assert.equal(
          by.get(WATCH_LATENCY_WORKLOAD),
          undefined,
          "no throughput row for watch-latency",
        );
        assert.deepEqual(
          [
            by.get("failed requests, all measured runs")!.etcd,
            by.get("failed requests, all measured runs")!.etcdTs,
          ],
          [0, 0],
        );
        const closed = by.get("connections closed by the server, all measured runs")!;
        assert.deepEqual([closed.etcd, closed.etcdTs], [0, 0]);
        const files = writeResults(join(work, "out"), res, "test");
        assert.ok(files.some((f) => f.endsWith("latest-etcd-benchmark.md")));
        assert.ok(!files.some((f) => f.endsWith("latest.json")));
        const latest = JSON.parse(
          readFileSync(join(work, "out", "latest-etcd-benchmark.json"), "utf8"),
        ) as { loadgen: string; rows: CompareRow[] };
        assert.equal(latest.loadgen, "etcd-benchmark");
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    },
  );
});

test("connectionErrorsOf: a member's counted connection errors, 'none', or why they were not read", async () => {
  const m = await startMember({ name: "conn-errors" });
  try {
    assert.equal(await connectionErrorsOf(m.hostPort), "none");
  } finally {
    await m.close();
  }
  assert.match(await connectionErrorsOf(m.hostPort), /^not read \(/);
});
