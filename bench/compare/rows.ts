/**
 * The comparison's table: one row per measured quantity with each system's median over the
 * rounds and its ratio to etcd's, as text (formatTable) and Markdown (formatMarkdown). Shared by
 * the main comparison (index.ts) and the auth comparison (auth.ts).
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { System } from "./members.js";

/**
 * One table row: medians per system (null: every run failed); `lowerIsBetter` rows read the
 * ratios the other way. Ratios are the system's median over etcd's.
 */
export interface CompareRow {
  name: string;
  unit: string;
  lowerIsBetter: boolean;
  etcd: number | null;
  etcdTs: number | null;
  /** etcd-ts / etcd. */
  ratio: number | null;
  /** etcd-ts on `--experimental-grpc-transport grpc-js`; null when it failed or did not run. */
  etcdTsGrpcJs: number | null;
  /** False when the grpc-js member does not run this row (the table shows "—"). */
  etcdTsGrpcJsRan: boolean;
  /** etcd-ts grpc-js / etcd. */
  ratioGrpcJs: number | null;
  /** Every round's value, for the JSON (empty for a system that did not run the row). */
  samples: {
    etcd: (number | null)[];
    etcdTs: (number | null)[];
    etcdTsGrpcJs: (number | null)[];
  };
}

/** One fresh value per system. */
export function emptyPerSystem<T>(make: () => T): Record<System, T> {
  return { etcd: make(), "etcd-ts": make(), "etcd-ts grpc-js": make() };
}

/** The repository root (the source tree's, also when running from dist/). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, "package.json")) && !dir.endsWith("dist")) return dir;
    dir = dirname(dir);
  }
  throw new Error("no package.json above " + fileURLToPath(import.meta.url));
}

/** The median of the finite values of `xs`; null when there are none. */
export function median(xs: (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** A timestamped progress line on stderr. */
export function log(msg: string): void {
  process.stderr.write(`[compare ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/**
 * A row from every round's value per system: medians, and ratios over etcd's median (the grpc-js
 * column only when `grpcJsRan`).
 */
export function row(
  name: string,
  unit: string,
  lowerIsBetter: boolean,
  v: Record<System, (number | null)[]>,
  grpcJsRan: boolean,
): CompareRow {
  const a = median(v.etcd);
  const b = median(v["etcd-ts"]);
  const c = grpcJsRan ? median(v["etcd-ts grpc-js"]) : null;
  const over = (x: number | null): number | null =>
    a !== null && x !== null && a > 0 ? x / a : null;
  return {
    name,
    unit,
    lowerIsBetter,
    etcd: a,
    etcdTs: b,
    ratio: over(b),
    etcdTsGrpcJs: c,
    etcdTsGrpcJsRan: grpcJsRan,
    ratioGrpcJs: over(c),
    samples: {
      etcd: v.etcd,
      etcdTs: v["etcd-ts"],
      etcdTsGrpcJs: grpcJsRan ? v["etcd-ts grpc-js"] : [],
    },
  };
}

/** Per-system samples of one row. */
type Samples = Record<System, (number | null)[]>;

/**
 * Rows filled one sample at a time (a system's value of a round), created on first use and kept
 * in that order; rows() gives their medians (the grpc-js column not run).
 */
export class RowSet {
  readonly #rows = new Map<string, { unit: string; lowerIsBetter: boolean; v: Samples }>();

  add(name: string, unit: string, lowerIsBetter: boolean, s: System, value: number | null): void {
    let r = this.#rows.get(name);
    if (r === undefined) {
      r = { unit, lowerIsBetter, v: emptyPerSystem(() => []) };
      this.#rows.set(name, r);
    }
    r.v[s].push(value);
  }

  rows(): CompareRow[] {
    return [...this.#rows].map(([name, r]) => row(name, r.unit, r.lowerIsBetter, r.v, false));
  }
}

/** Shown for a system that does not run a row. */
const NOT_RUN = "—";

function fmtNum(v: number | null, unit: string): string {
  if (v === null) return "n/a";
  if (unit === "ratio") return v.toFixed(3);
  if (unit === "count") return v.toFixed(0);
  if (v >= 100) return v.toFixed(0);
  return v.toFixed(2);
}

function fmtRatio(v: number | null): string {
  return v === null ? "n/a" : `${v.toFixed(2)}x`;
}

/** Column headers of both tables. */
const HEADERS = [
  "workload",
  "etcd",
  "etcd-ts",
  "etcd-ts / etcd",
  "etcd-ts grpc-js",
  "etcd-ts grpc-js / etcd",
] as const;

function cells(r: CompareRow): string[] {
  return [
    `${r.name} (${r.unit}${r.lowerIsBetter ? ", lower is better" : ""})`,
    fmtNum(r.etcd, r.unit),
    fmtNum(r.etcdTs, r.unit),
    fmtRatio(r.ratio),
    r.etcdTsGrpcJsRan ? fmtNum(r.etcdTsGrpcJs, r.unit) : NOT_RUN,
    r.etcdTsGrpcJsRan ? fmtRatio(r.ratioGrpcJs) : NOT_RUN,
  ];
}

/**
 * The table as aligned text: workload, etcd, etcd-ts, etcd-ts / etcd, etcd-ts grpc-js,
 * etcd-ts grpc-js / etcd. "n/a" marks a failed run, "—" a row the grpc-js member does not run.
 */
export function formatTable(rows: CompareRow[]): string {
  const head = [...HEADERS];
  const body = rows.map(cells);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cs: string[]): string =>
    cs.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join("  ");
  return [line(head), w.map((n) => "-".repeat(n)).join("  "), ...body.map(line)].join("\n");
}

/** The table as Markdown (for the README), with the same columns as formatTable. */
export function formatMarkdown(rows: CompareRow[]): string {
  const out = [`| ${HEADERS.join(" | ")} |`, `| --- |${" ---: |".repeat(HEADERS.length - 1)}`];
  for (const r of rows) out.push(`| ${cells(r).join(" | ")} |`);
  return out.join("\n");
}

/** What the run ran on: cores, CPU, memory, the work dir's disk, Node and etcd versions. */
export function machine(workDir: string): Record<string, string | number> {
  let disk = "";
  try {
    disk =
      execFileSync("df", ["-hT", workDir], { encoding: "utf8" }).trim().split("\n").pop() ?? "";
  } catch {
    disk = "unknown";
  }
  let etcdVersion = "";
  try {
    etcdVersion =
      execFileSync("/usr/bin/etcd", ["--version"], { encoding: "utf8" }).split("\n")[0] ?? "";
  } catch {
    etcdVersion = "unknown";
  }
  return {
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? "",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    disk,
    node: process.version,
    etcd: etcdVersion,
  };
}
