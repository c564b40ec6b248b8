// The comparison's pure parts: table formatting, the hand-written SVG, and the CPU-profile summary
// (the comparison itself is a benchmark, run by `npm run bench:compare`, not a test).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { formatMarkdown, formatTable, type CompareRow } from "../../bench/compare/index.js";
import { renderBarChart } from "../../bench/compare/svg.js";
import { areaOf, summarizeCpuProfile } from "../../bench/compare/profile.js";

const rows: CompareRow[] = [
  {
    name: "put 128 clients",
    unit: "req/s",
    lowerIsBetter: false,
    etcd: 10000,
    etcdTs: 12000,
    ratio: 1.2,
    samples: { etcd: [10000], etcdTs: [12000] },
  },
  {
    name: "RSS after 100k keys of 256 B",
    unit: "MiB",
    lowerIsBetter: true,
    etcd: 150,
    etcdTs: null,
    ratio: null,
    samples: { etcd: [150], etcdTs: [null] },
  },
];

describe("bench/compare output", () => {
  test("text and Markdown tables carry every row, n/a for a missing side, ratio etcd-ts/etcd", () => {
    const t = formatTable(rows);
    assert.match(t, /^workload\s+etcd\s+etcd-ts\s+ratio$/m);
    assert.match(t, /put 128 clients \(req\/s\)\s+10000\s+12000\s+1\.20x/);
    assert.match(t, /RSS after 100k keys of 256 B \(MiB, lower is better\)\s+150\s+n\/a\s+n\/a/);
    const md = formatMarkdown(rows);
    assert.equal(md.split("\n").length, 4);
    assert.match(md, /\| put 128 clients \(req\/s\) \| 10000 \| 12000 \| 1\.20x \|/);
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
});
