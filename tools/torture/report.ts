/**
 * The torture run's report: report.txt (for a person), report.json (for a program), timeline.svg
 * (calls per second, latency and the faults, member by member), and history.json (the RunRecord
 * the checks read, so `torture check` replays them).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CheckReport, RunRecord } from "./checks.js";
import type { FaultEvent, SecondStats } from "./timeline.js";

/** What the report says about the run besides the checks. */
export interface RunSummary {
  seed: number;
  command: string;
  replay: string[];
  members: string[];
  /** Successful key-value calls served by each member (by name). */
  callsByMember: Record<string, number>;
  durationSeconds: number;
  operations: { ok: number; failed: number; recorded: number; pending: number };
  faults: FaultEvent[];
  faultCounts: Record<string, number>;
  /** Failed calls by reason, most frequent first. */
  failureReasons: Array<[string, number]>;
  seconds: SecondStats[];
  notes: string[];
}

/** Writes history.json. Infinity (a call whose outcome is unknown) is written as null. */
export function writeHistory(outDir: string, rec: RunRecord): void {
  writeFileSync(
    join(outDir, "history.json"),
    JSON.stringify(rec, (_k, v: unknown) => (v === Infinity ? null : v)),
  );
}

/** Reads history.json back (null complete times become Infinity). */
export function readHistory(outDir: string): RunRecord {
  const rec = JSON.parse(readFileSync(join(outDir, "history.json"), "utf8")) as RunRecord;
  for (const op of rec.operations) if (op.completeNs === null) op.completeNs = Infinity;
  return rec;
}

/** The text report. */
export function formatReport(run: RunSummary, checks: CheckReport): string {
  const lines: string[] = [];
  const verdict = { pass: "PASS", fail: "FAIL", unknown: "UNDECIDED" }[checks.verdict];
  lines.push(`etcd-ts torture: ${verdict}   seed ${run.seed}`);
  lines.push(`command: ${run.command}`);
  lines.push(
    `members: ${run.members.join(", ")}; ${run.durationSeconds.toFixed(1)} s; ` +
      `${run.operations.ok} calls succeeded, ${run.operations.failed} failed ` +
      `(${run.operations.recorded} recorded, ${run.operations.pending} of them with an unknown outcome)`,
  );
  if (run.members.length > 1) {
    const per = run.members.map((m) => `${m} ${run.callsByMember[m] ?? 0}`);
    lines.push(`key-value calls answered per member: ${per.join(", ")}`);
  }
  const fc = Object.entries(run.faultCounts).map(([k, n]) => `${k} ${n}`);
  lines.push(`faults: ${fc.length === 0 ? "none" : fc.join(", ")}`);
  if (run.failureReasons.length > 0) {
    lines.push("failed calls by reason:");
    for (const [reason, n] of run.failureReasons.slice(0, 8))
      lines.push(`  ${String(n).padStart(6)} ${reason}`);
  }
  for (const n of run.notes) lines.push(`note: ${n}`);
  lines.push("");
  for (const c of checks.checks) {
    lines.push(`[${c.verdict.toUpperCase()}] ${c.name}: ${c.summary}`);
    for (const d of c.details.slice(0, 200)) lines.push(`    ${d}`);
    if (c.details.length > 200)
      lines.push(`    … ${c.details.length - 200} more lines in report.json`);
  }
  lines.push("");
  lines.push(
    `checker: ${checks.figures.operations} operations in ${checks.figures.linearizabilityMs} ms ` +
      `(${checks.figures.checkedOpsPerSecond} ops/s), watches in ${checks.figures.watchCheckMs} ms`,
  );
  lines.push("");
  lines.push("faults (ms from start):");
  for (const f of run.faults) {
    const end = f.endMs === undefined ? "not back" : `back at ${f.endMs}`;
    lines.push(
      `  ${String(f.startMs).padStart(7)} ${f.member} ${f.kind} ${f.detail}: ${end}${f.outcome ? ` (${f.outcome})` : ""}`,
    );
  }
  if (checks.verdict !== "pass") {
    lines.push("");
    lines.push("replay:");
    for (const r of run.replay) lines.push(`  ${r}`);
  }
  return lines.join("\n") + "\n";
}

const FAULT_COLOURS: Record<FaultEvent["kind"], string> = {
  kill: "#d62728",
  "power-loss": "#8c1515",
  pause: "#ff7f0e",
  restart: "#1f77b4",
  failpoint: "#9467bd",
  "torn-sync": "#e377c2",
  partition: "#2ca02c",
};

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** The SVG timeline: calls per second (ok / failed), p50 / p99 latency, a fault lane per member. */
export function timelineSvg(run: RunSummary): string {
  const width = 1000;
  const left = 60;
  const plotW = width - left - 20;
  const secs = Math.max(1, Math.ceil(run.durationSeconds), run.seconds.length);
  const x = (s: number) => left + (s / secs) * plotW;
  const rateH = 140;
  const latTop = 180;
  const latH = 110;
  const laneTop = 330;
  const laneH = 22;
  const height = laneTop + run.members.length * laneH + 60;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  out.push(
    `<text x="${left}" y="14" font-size="13">etcd-ts torture, seed ${run.seed}: calls/s, latency and faults</text>`,
  );
  // calls per second
  const maxRate = Math.max(1, ...run.seconds.map((s) => s.ok + s.failed));
  const barW = Math.max(1, plotW / secs - 1);
  const rateY = (v: number) => 20 + rateH - (v / maxRate) * rateH;
  for (const s of run.seconds) {
    out.push(
      `<rect x="${x(s.second).toFixed(1)}" y="${rateY(s.ok).toFixed(1)}" width="${barW.toFixed(1)}" height="${(20 + rateH - rateY(s.ok)).toFixed(1)}" fill="#2ca02c"/>`,
    );
    if (s.failed > 0) {
      out.push(
        `<rect x="${x(s.second).toFixed(1)}" y="${rateY(s.ok + s.failed).toFixed(1)}" width="${barW.toFixed(1)}" height="${(rateY(s.ok) - rateY(s.ok + s.failed)).toFixed(1)}" fill="#d62728"/>`,
      );
    }
  }
  out.push(
    `<text x="4" y="${rateY(maxRate) + 10}">${maxRate}/s</text><text x="4" y="${20 + rateH}">0</text>`,
  );
  out.push(
    `<text x="${left + plotW - 170}" y="32"><tspan fill="#2ca02c">■ succeeded</tspan> <tspan fill="#d62728">■ failed</tspan></text>`,
  );
  // latency
  const maxLat = Math.max(1, ...run.seconds.map((s) => s.p99Ms));
  const latY = (v: number) => latTop + latH - (v / maxLat) * latH;
  for (const [field, colour] of [
    ["p50Ms", "#1f77b4"],
    ["p99Ms", "#ff7f0e"],
  ] as const) {
    const pts = run.seconds
      .map((s) => `${x(s.second + 0.5).toFixed(1)},${latY(s[field]).toFixed(1)}`)
      .join(" ");
    if (pts !== "")
      out.push(`<polyline points="${pts}" fill="none" stroke="${colour}" stroke-width="1.5"/>`);
  }
  out.push(
    `<text x="4" y="${latTop + 10}">${maxLat.toFixed(0)} ms</text><text x="4" y="${latTop + latH}">0</text>`,
  );
  out.push(
    `<text x="${left + plotW - 170}" y="${latTop + 12}"><tspan fill="#1f77b4">— p50</tspan> <tspan fill="#ff7f0e">— p99</tspan> latency</text>`,
  );
  // fault lanes
  run.members.forEach((m, i) => {
    const y = laneTop + i * laneH;
    out.push(`<text x="4" y="${y + 15}">${esc(m)}</text>`);
    out.push(
      `<line x1="${left}" x2="${left + plotW}" y1="${y + 11}" y2="${y + 11}" stroke="#ccc"/>`,
    );
    for (const f of run.faults.filter((f) => f.member === m)) {
      const x0 = x(f.startMs / 1000);
      const x1 = x((f.endMs ?? run.durationSeconds * 1000) / 1000);
      out.push(
        `<rect x="${x0.toFixed(1)}" y="${y + 3}" width="${Math.max(2, x1 - x0).toFixed(1)}" height="16" fill="${FAULT_COLOURS[f.kind]}" opacity="0.8"><title>${esc(`${f.kind} ${f.detail} at ${f.startMs} ms${f.outcome ? ` (${f.outcome})` : ""}`)}</title></rect>`,
      );
    }
  });
  // axis and legend
  const axisY = laneTop + run.members.length * laneH + 14;
  const step = Math.max(1, Math.ceil(secs / 10));
  for (let s = 0; s <= secs; s += step)
    out.push(`<text x="${x(s).toFixed(1)}" y="${axisY}" text-anchor="middle">${s}s</text>`);
  const legend = Object.entries(FAULT_COLOURS)
    .map(([k, c]) => `<tspan fill="${c}">■ ${k}</tspan>`)
    .join("  ");
  out.push(`<text x="${left}" y="${axisY + 20}">${legend}</text>`);
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/** Writes report.txt, report.json and timeline.svg; returns the text report. */
export function writeReport(outDir: string, run: RunSummary, checks: CheckReport): string {
  const text = formatReport(run, checks);
  writeFileSync(join(outDir, "report.txt"), text);
  writeFileSync(
    join(outDir, "report.json"),
    JSON.stringify({ verdict: checks.verdict, run, checks }, null, 2),
  );
  writeFileSync(join(outDir, "timeline.svg"), timelineSvg(run));
  return text;
}
