// The comparison's pure parts (table formatting, the hand-written SVG, /proc CPU parsing, the
// CPU-profile summary) and one reduced run of the tool itself (three members, two short
// workloads, no timing asserted: the comparison is a benchmark, run by `npm run bench:compare`).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  compare,
  cpuRowName,
  defaultCompareOptions,
  formatMarkdown,
  formatTable,
  writeResults,
  type CompareRow,
} from "../../bench/compare/index.js";
import { clockTicksPerSecond, parseProcStatCpuTicks } from "../../bench/compare/members.js";
import { renderBarChart } from "../../bench/compare/svg.js";
import { areaOf, summarizeCpuProfile } from "../../bench/compare/profile.js";
import { formatPooled, poolRuns } from "../../bench/compare/pool.js";
import { WATCH_LATENCY_WORKLOAD } from "../../bench/compare/etcd-benchmark.js";
import type { LoadResult } from "../../bench/load/index.js";

const rows: CompareRow[] = [
  {
    name: "put 128 clients",
    unit: "req/s",
    lowerIsBetter: false,
    etcd: 10000,
    etcdTs: 12000,
    ratio: 1.2,
    etcdTsGrpcJs: 5000,
    etcdTsGrpcJsRan: true,
    ratioGrpcJs: 0.5,
    samples: { etcd: [10000], etcdTs: [12000], etcdTsGrpcJs: [5000] },
  },
  {
    name: cpuRowName("put 128 clients"),
    unit: "µs",
    lowerIsBetter: true,
    etcd: 150,
    etcdTs: 45.5,
    ratio: 45.5 / 150,
    etcdTsGrpcJs: 300,
    etcdTsGrpcJsRan: true,
    ratioGrpcJs: 2,
    samples: { etcd: [150], etcdTs: [45.5], etcdTsGrpcJs: [300] },
  },
  {
    name: "txn-put 128 clients",
    unit: "req/s",
    lowerIsBetter: false,
    etcd: 8000,
    etcdTs: 8000,
    ratio: 1,
    etcdTsGrpcJs: null,
    etcdTsGrpcJsRan: false,
    ratioGrpcJs: null,
    samples: { etcd: [8000], etcdTs: [8000], etcdTsGrpcJs: [] },
  },
  {
    name: "RSS after 100k keys of 256 B",
    unit: "MiB",
    lowerIsBetter: true,
    etcd: 150,
    etcdTs: null,
    ratio: null,
    etcdTsGrpcJs: null,
    etcdTsGrpcJsRan: false,
    ratioGrpcJs: null,
    samples: { etcd: [150], etcdTs: [null], etcdTsGrpcJs: [] },
  },
];

describe("bench/compare output", () => {
  test("text and Markdown tables carry every row and both ratios, n/a for a failed side, — where grpc-js did not run", () => {
    const t = formatTable(rows);
    const lines = t.split("\n");
    assert.equal(lines.length, 2 + rows.length);
    assert.match(
      lines[0]!,
      /^workload\s+etcd\s+etcd-ts\s+etcd-ts \/ etcd\s+etcd-ts grpc-js\s+etcd-ts grpc-js \/ etcd$/,
    );
    assert.match(t, /put 128 clients \(req\/s\)\s+10000\s+12000\s+1\.20x\s+5000\s+0\.50x$/m);
    assert.match(
      t,
      /server CPU µs per request — put 128 clients \(µs, lower is better\)\s+150\s+45\.50\s+0\.30x\s+300\s+2\.00x$/m,
    );
    assert.match(t, /txn-put 128 clients \(req\/s\)\s+8000\s+8000\s+1\.00x\s+—\s+—$/m);
    assert.match(
      t,
      /RSS after 100k keys of 256 B \(MiB, lower is better\)\s+150\s+n\/a\s+n\/a\s+—\s+—$/m,
    );
    // Every line of the aligned table is as wide as the header (— and µ are one column each).
    for (const l of lines) assert.equal(l.length, lines[0]!.length, l);
    const md = formatMarkdown(rows);
    assert.equal(md.split("\n").length, 2 + rows.length);
    assert.match(
      md,
      /^\| workload \| etcd \| etcd-ts \| etcd-ts \/ etcd \| etcd-ts grpc-js \| etcd-ts grpc-js \/ etcd \|$/m,
    );
    assert.match(md, /^\| --- \| ---: \| ---: \| ---: \| ---: \| ---: \|$/m);
    assert.match(
      md,
      /\| put 128 clients \(req\/s\) \| 10000 \| 12000 \| 1\.20x \| 5000 \| 0\.50x \|/,
    );
    assert.match(md, /\| txn-put 128 clients \(req\/s\) \| 8000 \| 8000 \| 1\.00x \| — \| — \|/);
  });

  test("/proc/<pid>/stat CPU is utime + stime, parsed after the last ) of the command name", () => {
    // proc(5) fields 1..17: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
    // majflt cmajflt utime stime cutime cstime; cutime/cstime (children) must not count.
    const line = "4242 (node (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 731 269 55 66 20 0 11 0";
    assert.equal(parseProcStatCpuTicks(line), 1000);
    assert.throws(() => parseProcStatCpuTicks("garbage"));
    assert.throws(() => parseProcStatCpuTicks("1 (x) S 1"));
    // This process's own line parses to a whole number of ticks.
    const own = parseProcStatCpuTicks(readFileSync(`/proc/${process.pid}/stat`, "utf8"));
    assert.ok(Number.isInteger(own) && own >= 0);
    const hz = clockTicksPerSecond();
    assert.ok(Number.isInteger(hz) && hz > 0);
  });

  test("bar chart SVG is well-formed, one bar per present value, n/a for gaps", () => {
    const svg = renderBarChart({
      title: "t <&>",
      yLabel: "puts/s",
      categories: ["1", "16"],
      series: [
        { name: "etcd", color: "#00f", values: [100, 2000] },
        { name: "etcd-ts", color: "#f80", values: [150, null] },
      ],
    });
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\n$/);
    assert.ok(svg.includes("t &lt;&amp;&gt;"));
    assert.equal((svg.match(/<rect x=/g) ?? []).length, 3 + 2); // 3 bars + 2 legend swatches
    assert.ok(svg.includes(">n/a<"));
    const notRun = renderBarChart({
      title: "t",
      yLabel: "µs",
      categories: ["a", "b"],
      series: [
        { name: "etcd-ts grpc-js", color: "#6a4", values: [1, null], notRun: [false, true] },
      ],
    });
    assert.ok(notRun.includes(">—<") && !notRun.includes(">n/a<"));
  });

  test("CPU profile summary sums self time per function and per file", () => {
    const p = {
      nodes: [
        { id: 1, callFrame: { functionName: "(root)", url: "", lineNumber: -1 }, children: [2, 3] },
        {
          id: 2,
          callFrame: {
            functionName: "apply",
            url: "file:///x/dist/lib/server/apply.js",
            lineNumber: 9,
          },
        },
        { id: 3, callFrame: { functionName: "(garbage collector)", url: "", lineNumber: -1 } },
      ],
      samples: [2, 2, 3, 2],
      timeDeltas: [1000, 1000, 2000, 1000],
    };
    const s = summarizeCpuProfile(p, 10);
    assert.equal(s.total, 5);
    assert.equal(s.functions[0]!.name, "apply dist/lib/server/apply.js:10");
    assert.equal(s.functions[0]!.selfMs, 3);
    assert.equal(s.functions[1]!.name, "(garbage collector)");
    assert.equal(s.files[0]!.name, "server/apply.js");
    assert.ok(Math.abs(s.functions[0]!.share - 0.6) < 1e-9);
    assert.deepEqual(
      s.areas.map((a) => a.name),
      ["lib/server", "(garbage collector)"],
    );
    assert.equal(
      areaOf("file:///r/node_modules/@grpc/grpc-js/build/src/x.js", "f"),
      "@grpc/grpc-js",
    );
    assert.equal(areaOf("node:internal/http2/core", "respond"), "node:http2+net+streams");
    assert.equal(areaOf("", "writev"), "native I/O and builtins");
  });

  const built = existsSync(new URL("../../tools/etcd-ts.js", import.meta.url));
  test(
    "a reduced run: three members, the grpc-js column and CPU rows for every throughput row",
    {
      skip: !existsSync("/usr/bin/etcd") || !built ? "needs /usr/bin/etcd and a build" : false,
      timeout: 120_000,
    },
    async () => {
      const work = mkdtempSync(join(tmpdir(), "etcd-ts-compare-test-"));
      try {
        const res = await compare({
          ...defaultCompareOptions(),
          rounds: 1,
          secondsPerRun: 1,
          outDir: join(work, "out"),
          workDir: join(work, "run"),
          preloadKeys: 1000,
          workloadNames: ["put 128 clients", "range serializable 1 client", WATCH_LATENCY_WORKLOAD],
          warmupSeconds: 0.5,
        });
        // every workload warmed up once on every member that runs it, before round 1
        assert.deepEqual(
          res.warmups.map((r) => `${String(r["workload"])}/${String(r["system"])}`),
          [
            "put 128 clients/etcd",
            "put 128 clients/etcd-ts",
            "put 128 clients/etcd-ts grpc-js",
            "range serializable 1 client/etcd",
            "range serializable 1 client/etcd-ts",
            `${WATCH_LATENCY_WORKLOAD}/etcd`,
            `${WATCH_LATENCY_WORKLOAD}/etcd-ts`,
          ],
        );
        // (watch latency from the ack may be 0: events can reach the watchers before the ack)
        assert.ok(res.warmups.every((r) => typeof r["value"] === "number" && r["value"] >= 0));
        const by = new Map(res.rows.map((r) => [r.name, r]));
        const put = by.get("put 128 clients")!;
        const range = by.get("range serializable 1 client")!;
        assert.ok(put.etcd! > 0 && put.etcdTs! > 0 && put.etcdTsGrpcJs! > 0, JSON.stringify(put));
        assert.ok(put.etcdTsGrpcJsRan && put.ratioGrpcJs! > 0);
        assert.ok(!range.etcdTsGrpcJsRan && range.etcdTsGrpcJs === null);
        assert.deepEqual(range.samples.etcdTsGrpcJs, []);
        const cpuPut = by.get(cpuRowName("put 128 clients"))!;
        const cpuRange = by.get(cpuRowName("range serializable 1 client"))!;
        assert.ok(cpuPut.lowerIsBetter && cpuPut.unit === "µs");
        // Each member did real work for each request: more than 0, less than 50 ms of CPU.
        for (const v of [
          cpuPut.etcd,
          cpuPut.etcdTs,
          cpuPut.etcdTsGrpcJs,
          cpuRange.etcd,
          cpuRange.etcdTs,
        ])
          assert.ok(v !== null && v > 0 && v < 50_000, JSON.stringify([cpuPut, cpuRange]));
        assert.ok(!cpuRange.etcdTsGrpcJsRan);
        // The grpc-js member ran the put but not the range: A B C then A B.
        const order = res.runs.map((r) => `${String(r["workload"])}/${String(r["system"])}`);
        assert.deepEqual(order, [
          "put 128 clients/etcd",
          "put 128 clients/etcd-ts",
          "put 128 clients/etcd-ts grpc-js",
          "range serializable 1 client/etcd",
          "range serializable 1 client/etcd-ts",
          `${WATCH_LATENCY_WORKLOAD}/etcd`,
          `${WATCH_LATENCY_WORKLOAD}/etcd-ts`,
        ]);
        // Issue 12's watch latency with our generator: p50 and p99 from the put's ack (as etcd's
        // tool) and from its send, no throughput row; the ack-based never above the send-based.
        assert.equal(by.get(WATCH_LATENCY_WORKLOAD), undefined);
        const lat = (q: string, from: string): CompareRow =>
          by.get(`${q} latency ${from}${WATCH_LATENCY_WORKLOAD}`)!;
        for (const q of ["p50", "p99"]) {
          const ack = lat(q, "");
          const send = lat(q, "from the put's send — ");
          assert.ok(ack.lowerIsBetter && ack.unit === "ms" && !ack.etcdTsGrpcJsRan, q);
          for (const s of ["etcd", "etcdTs"] as const) {
            assert.ok(send[s]! > 0 && send[s]! < 1000, JSON.stringify(send));
            assert.ok(ack[s]! >= 0 && ack[s]! <= send[s]!, JSON.stringify([ack, send]));
          }
        }
        const watchRun = res.runs.find((r) => r["workload"] === WATCH_LATENCY_WORKLOAD)!;
        const w = (watchRun["result"] as LoadResult).watch!;
        assert.equal(w.events, w.expectedEvents);
        assert.equal(w.watchers, 100);
        const t = formatTable(res.rows);
        assert.match(t, /^server CPU µs per request — range serializable 1 client .*—\s+—$/m);
        const files = writeResults(join(work, "out"), res, "test");
        const svg = files.find((f) => f.endsWith("server-cpu-per-request.svg"));
        assert.ok(svg !== undefined && readFileSync(svg, "utf8").includes("etcd-ts grpc-js"));
        const latest = JSON.parse(readFileSync(join(work, "out", "latest.json"), "utf8")) as {
          rows: CompareRow[];
        };
        assert.ok(latest.rows.some((r) => r.name === cpuRowName("put 128 clients")));
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    },
  );
});

test("poolRuns pairs rounds across runs, counts etcd-ts wins by the row's direction", () => {
  const row = (
    name: string,
    lowerIsBetter: boolean,
    etcd: (number | null)[],
    etcdTs: (number | null)[],
  ): CompareRow => ({
    name,
    unit: lowerIsBetter ? "ms" : "req/s",
    lowerIsBetter,
    etcd: null,
    etcdTs: null,
    ratio: null,
    etcdTsGrpcJs: null,
    etcdTsGrpcJsRan: false,
    ratioGrpcJs: null,
    samples: { etcd, etcdTs, etcdTsGrpcJs: [] },
  });
  const pooled = poolRuns([
    {
      rows: [
        row("put", false, [100, 200, 300], [150, 150, 300]),
        row("p99", true, [10, 20], [5, 40]),
      ],
    },
    // a failed round (null) is not paired; a row only in this run still pools
    { rows: [row("put", false, [400, null], [200, 900]), row("watch", false, [1], [2])] },
  ]);
  assert.deepEqual(
    pooled.map((r) => r.name),
    ["put", "p99", "watch"],
  );
  const put = pooled[0]!;
  assert.equal(put.rounds, 4);
  assert.equal(put.etcdTsBetterOrEqual, 2); // 150 > 100 and the 300 tie
  assert.equal(put.etcd, 250); // median of 100, 200, 300, 400
  assert.equal(put.etcdTs, 175); // median of 150, 150, 300, 200
  assert.equal(put.ratio, 0.7);
  assert.equal(put.medianRoundRatio, (0.75 + 1) / 2); // ratios 1.5, 0.75, 1, 0.5
  const p99 = pooled[1]!;
  assert.equal(p99.rounds, 2);
  assert.equal(p99.etcdTsBetterOrEqual, 1); // 5 ms under 10 ms; 40 ms over 20 ms
  const table = formatPooled(pooled);
  assert.match(table, /\| put \(req\/s\) \| 4 \| 2 \| 0\.88x \| 250 \| 175 \| 0\.70x \|/);
  assert.match(table, /\| p99 \(ms, lower is better\) \| 2 \| 1 \|/);
});
