#!/usr/bin/env node
/**
 * Pools the rounds of several bench:compare runs (their compare-*.json files), row by row, for
 * etcd against etcd-ts: how many rounds were paired (both systems have a value in the same round
 * of the same run), in how many etcd-ts did better (higher, or lower for `lowerIsBetter` rows; a
 * tie counts for etcd-ts), the median of the per-round ratios, and the pooled medians and their
 * ratio. A single run of 3 rounds moves a lot on a 2-core machine with a shared disk; this is the
 * summary over many runs that the README quotes.
 *
 *   node dist/bench/compare/pool.js [--rows "put 1 client,p99 latency put 1000 clients"] FILE.json…
 *
 * Throws (exit 1) on a file that is not a bench:compare result.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { median, type CompareRow } from "./index.js";

/** One pooled row. Ratios are etcd-ts over etcd; null when no round was paired. */
export interface PooledRow {
  name: string;
  unit: string;
  lowerIsBetter: boolean;
  /** rounds with a value from both systems */
  rounds: number;
  /** of those, rounds where etcd-ts did at least as well as etcd */
  etcdTsBetterOrEqual: number;
  medianRoundRatio: number | null;
  etcd: number | null;
  etcdTs: number | null;
  ratio: number | null;
}

/** Pools the rows of the given runs (each a parsed compare-*.json), in first-seen row order. */
export function poolRuns(runs: readonly { rows: readonly CompareRow[] }[]): PooledRow[] {
  const byName = new Map<string, { row: CompareRow; pairs: [number, number][] }>();
  for (const run of runs) {
    for (const row of run.rows) {
      let e = byName.get(row.name);
      if (e === undefined) byName.set(row.name, (e = { row, pairs: [] }));
      const a = row.samples.etcd;
      const b = row.samples.etcdTs;
      for (let i = 0; i < Math.min(a.length, b.length); i++) {
        const x = a[i];
        const y = b[i];
        if (x == null || y == null || !Number.isFinite(x) || !Number.isFinite(y)) continue;
        e.pairs.push([x, y]);
      }
    }
  }
  return [...byName.values()].map(({ row, pairs }) => {
    const better = pairs.filter(([x, y]) => (row.lowerIsBetter ? y <= x : y >= x)).length;
    const etcd = median(pairs.map(([x]) => x));
    const etcdTs = median(pairs.map(([, y]) => y));
    return {
      name: row.name,
      unit: row.unit,
      lowerIsBetter: row.lowerIsBetter,
      rounds: pairs.length,
      etcdTsBetterOrEqual: better,
      medianRoundRatio: median(pairs.map(([x, y]) => (x === 0 ? null : y / x))),
      etcd,
      etcdTs,
      ratio: etcd === null || etcdTs === null || etcd === 0 ? null : etcdTs / etcd,
    };
  });
}

const fmt = (v: number | null, digits = 3): string =>
  v === null ? "n/a" : Number(v.toPrecision(digits)).toString();
const fmtRatio = (v: number | null): string => (v === null ? "n/a" : `${v.toFixed(2)}x`);

/** A markdown table of pooled rows. */
export function formatPooled(rows: readonly PooledRow[]): string {
  const lines = [
    "| workload | rounds | etcd-ts as good or better | median round ratio | etcd (pooled median) | etcd-ts (pooled median) | etcd-ts / etcd |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of rows) {
    const unit = `${r.unit}${r.lowerIsBetter ? ", lower is better" : ""}`;
    lines.push(
      `| ${r.name} (${unit}) | ${r.rounds} | ${r.etcdTsBetterOrEqual} | ${fmtRatio(r.medianRoundRatio)} | ${fmt(r.etcd)} | ${fmt(r.etcdTs)} | ${fmtRatio(r.ratio)} |`,
    );
  }
  return lines.join("\n");
}

function main(argv: string[]): number {
  let only: Set<string> | null = null;
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--rows") {
      const v = argv[++i];
      if (v === undefined) throw new Error("--rows needs a comma-separated list of row names");
      only = new Set(v.split(",").map((s) => s.trim()));
    } else files.push(argv[i]!);
  }
  if (files.length === 0) throw new Error("usage: pool.js [--rows NAMES] compare-*.json…");
  const runs = files.map((f) => {
    const doc = JSON.parse(readFileSync(f, "utf8")) as { rows?: CompareRow[] };
    if (!Array.isArray(doc.rows)) throw new Error(`${f}: not a bench:compare result (no rows)`);
    return { rows: doc.rows };
  });
  const rows = poolRuns(runs).filter((r) => only === null || only.has(r.name));
  process.stdout.write(`${files.length} runs\n\n${formatPooled(rows)}\n`);
  return 0;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench:pool: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
