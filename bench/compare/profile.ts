#!/usr/bin/env node
/**
 * Where etcd-ts spends its CPU under load: starts etcd-ts under `node --cpu-prof`, runs one
 * load-generator workload against it, stops it with SIGTERM (so V8 writes the profile), and
 * prints the top functions by self time and the top files — the "where the time goes" part of
 * the comparison (issue: a CPU profile of the server under load, summarised by function).
 *
 *   node dist/bench/compare/profile.js [--workload put] [--clients 128] [--seconds 10]
 *                                      [--top 25] [--summarize FILE.cpuprofile]
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { defaultLoadOptions, formatLoadResult, runLoad, type Workload } from "../load/index.js";
import { Member } from "./members.js";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** A V8 .cpuprofile document (the fields this summary reads). */
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time of one function or file, ms and share of all sampled time. */
export interface CostLine {
  name: string;
  selfMs: number;
  share: number;
}

/**
 * Sums sampled self time per function (name + file:line) and per file. `(idle)`, `(program)` and
 * `(garbage collector)` are kept as their own lines: GC share is part of the answer.
 */
export function summarizeCpuProfile(
  p: CpuProfile,
  top: number,
): { total: number; functions: CostLine[]; files: CostLine[]; areas: CostLine[] } {
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const self = new Map<number, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt);
    total += dt;
  }
  const fn = new Map<string, number>();
  const file = new Map<string, number>();
  const area = new Map<string, number>();
  for (const [id, ms] of self) {
    const cf = byId.get(id)?.callFrame;
    if (cf === undefined) continue;
    const where =
      cf.url === ""
        ? ""
        : ` ${cf.url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, "$1/")}:${cf.lineNumber + 1}`;
    const name = `${cf.functionName === "" ? "(anonymous)" : cf.functionName}${where}`;
    fn.set(name, (fn.get(name) ?? 0) + ms);
    const f =
      cf.url === ""
        ? cf.functionName
        : cf.url.startsWith("node:")
          ? cf.url
          : basename(dirname(cf.url)) + "/" + basename(cf.url);
    file.set(f, (file.get(f) ?? 0) + ms);
    const a = areaOf(cf.url, cf.functionName);
    area.set(a, (area.get(a) ?? 0) + ms);
  }
  const lines = (m: Map<string, number>): CostLine[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, selfMs]) => ({ name, selfMs, share: total > 0 ? selfMs / total : 0 }));
  return { total, functions: lines(fn), files: lines(file), areas: lines(area) };
}

/**
 * The part of the system a frame belongs to: `lib/<part>` for our code, the package for
 * node_modules, "node:http2+net+streams" for Node's transport internals, "native I/O" for
 * url-less natives (writev, fdatasync, …), and V8's pseudo-frames ((idle), (garbage collector)).
 */
export function areaOf(url: string, functionName: string): string {
  const lib = /\/dist\/(lib\/[^/]+|tools|bench)\//.exec(url);
  if (lib !== null) return lib[1]!;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg !== null) return pkg[1]!;
  if (
    /^node:internal\/(http2|js_stream_socket|net|stream_base_commons|streams|tls)/.test(url) ||
    url === "node:net"
  )
    return "node:http2+net+streams";
  if (url.startsWith("node:internal/modules") || url.startsWith("node:internal/main"))
    return "module loading";
  if (url.startsWith("node:")) return "node (other)";
  if (url === "") return functionName.startsWith("(") ? functionName : "native I/O and builtins";
  return "other";
}

function print(s: ReturnType<typeof summarizeCpuProfile>): void {
  const row = (c: CostLine): string =>
    `${(c.share * 100).toFixed(1).padStart(5)}%  ${c.selfMs.toFixed(0).padStart(7)} ms  ${c.name}`;
  process.stdout.write(
    `sampled ${s.total.toFixed(0)} ms\nTop functions by self time:\n${s.functions.map(row).join("\n")}\n`,
  );
  process.stdout.write(`Top files by self time:\n${s.files.map(row).join("\n")}\n`);
  process.stdout.write(`By area:\n${s.areas.map(row).join("\n")}\n`);
}

async function main(argv: string[]): Promise<number> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2)
    flags.set(argv[i]!.replace(/^--/, ""), argv[i + 1] ?? "");
  const top = Number(flags.get("top") ?? 25);
  const given = flags.get("summarize");
  if (given !== undefined) {
    print(summarizeCpuProfile(JSON.parse(readFileSync(given, "utf8")) as CpuProfile, top));
    return 0;
  }
  let root = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(root, "package.json")) || root.endsWith("dist")) root = dirname(root);
  const work = mkdtempSync(join(tmpdir(), "etcd-ts-profile-"));
  const profDir = join(work, "prof");
  const m = await Member.create({
    system: "etcd-ts",
    command: [
      process.execPath,
      "--cpu-prof",
      "--cpu-prof-dir",
      profDir,
      join(root, "dist", "tools", "etcd-ts.js"),
    ],
    dataDir: join(work, "data"),
    logFile: join(work, "etcd-ts.log"),
  });
  try {
    await m.start();
    const workload = (flags.get("workload") ?? "put") as Workload;
    const clients = Number(flags.get("clients") ?? 128);
    const o = {
      ...defaultLoadOptions(workload),
      endpoints: [m.endpoint],
      clients,
      conns: Math.min(100, Math.max(1, Math.ceil(clients / 10))),
      durationSeconds: Number(flags.get("seconds") ?? 10),
      valSizeBytes: 256,
      keySpaceSize: 100_000,
    };
    const r = await runLoad(o);
    process.stdout.write(formatLoadResult(r) + "\n\n");
    await m.stop();
    const files = readdirSync(profDir).filter((f) => f.endsWith(".cpuprofile"));
    if (files.length === 0) throw new Error(`no profile written in ${profDir}`);
    print(
      summarizeCpuProfile(
        JSON.parse(readFileSync(join(profDir, files[0]!), "utf8")) as CpuProfile,
        top,
      ),
    );
    return 0;
  } finally {
    await m.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (c) => (process.exitCode = c),
    (err: unknown) => {
      process.stderr.write(`profile: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
