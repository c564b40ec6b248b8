/**
 * Hand-written SVG charts for the comparison (no chart library): grouped bars for a metric per
 * category, one colour per system, with a value label on each bar and a legend.
 */

import type { System } from "./members.js";

/** One chart's data: categories on the x axis, one series per system. */
export interface BarChart {
  title: string;
  yLabel: string;
  categories: string[];
  /**
   * values[i] null: the run failed ("n/a"); notRun[i] true: the system does not run that
   * category ("—", as in the table).
   */
  series: { name: string; color: string; values: (number | null)[]; notRun?: boolean[] }[];
}

const W = 760;
const H = 400;
const PAD_L = 80;
const PAD_R = 20;
const PAD_T = 50;
const PAD_B = 70;

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v: number): string {
  if (v === 0) return "0";
  if (v >= 10_000) return `${(v / 1000).toFixed(0)}k`;
  if (v >= 1000) return `${(v / 1000).toFixed(1)}k`;
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** Each system's bar color in every chart. */
export const SYSTEM_COLORS: Record<System, string> = {
  etcd: "#4a7bd0",
  "etcd-ts": "#e07b39",
  "etcd-ts grpc-js": "#6aa84f",
};

/**
 * Renders `c` as a standalone SVG document. Missing values (null) leave a gap marked "n/a", or
 * "—" where the series' notRun says the system does not run that category.
 */
export function renderBarChart(c: BarChart): string {
  const all = c.series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const max = niceMax(Math.max(0, ...all));
  const plotW = W - PAD_L - PAD_R;
  const plotH = H - PAD_T - PAD_B;
  const groupW = plotW / Math.max(1, c.categories.length);
  const barW = (groupW * 0.7) / Math.max(1, c.series.length);
  const y = (v: number): number => PAD_T + plotH - (v / max) * plotH;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(c.title)}</text>`,
  );
  for (let i = 0; i <= 5; i++) {
    const v = (max * i) / 5;
    out.push(`<line x1="${PAD_L}" x2="${W - PAD_R}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${PAD_L - 6}" y="${y(v) + 4}" text-anchor="end">${fmt(v)}</text>`);
  }
  out.push(
    `<text transform="translate(18 ${PAD_T + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`,
  );
  c.categories.forEach((cat, i) => {
    const gx = PAD_L + i * groupW + groupW * 0.15;
    c.series.forEach((s, j) => {
      const v = s.values[i] ?? null;
      const x = gx + j * barW;
      if (v === null) {
        const gap = s.notRun?.[i] === true ? "—" : "n/a";
        out.push(
          `<text x="${x + barW / 2}" y="${y(0) - 4}" text-anchor="middle" fill="#999">${gap}</text>`,
        );
        return;
      }
      out.push(
        `<rect x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(y(0) - y(v)).toFixed(1)}" fill="${s.color}"/>`,
      );
      out.push(
        `<text x="${(x + barW / 2).toFixed(1)}" y="${(y(v) - 4).toFixed(1)}" text-anchor="middle" font-size="10">${fmt(v)}</text>`,
      );
    });
    out.push(
      `<text x="${PAD_L + i * groupW + groupW / 2}" y="${H - PAD_B + 18}" text-anchor="middle">${esc(cat)}</text>`,
    );
  });
  out.push(`<line x1="${PAD_L}" x2="${W - PAD_R}" y1="${y(0)}" y2="${y(0)}" stroke="#333"/>`);
  c.series.forEach((s, j) => {
    const lx = PAD_L + j * 140;
    out.push(`<rect x="${lx}" y="${H - 28}" width="14" height="14" fill="${s.color}"/>`);
    out.push(`<text x="${lx + 20}" y="${H - 16}">${esc(s.name)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
