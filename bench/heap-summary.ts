#!/usr/bin/env node
/**
 * bench/heap-summary — bytes allocated per request by allocation site, from a sampled heap
 * profile written by `bench/heap-sample.cjs` (V8's sampling heap profiler with collected objects
 * kept), and the garbage collections counted beside it.
 *
 *   node dist/bench/heap-summary.js PROFILE REQUESTS [TOP]
 *
 * PROFILE is the .heapprofile JSON (its `.gc.json` sidecar is read when present), REQUESTS the
 * number of requests run while sampling, TOP (default 25) the number of sites printed. A site is
 * the function that allocated (file:line:column of the compiled JavaScript) and, when that is not
 * a function of this project (a Node or V8 builtin, a dependency), the nearest caller that is.
 * Prints the total in bytes per request, scavenges and mark-compacts per 10,000 requests with
 * their pause times, then the sites by bytes per request, largest first. With HEAP_SUMMARY_STACKS
 * set to a regular expression, also the heaviest full stacks (bytes per request, innermost frame
 * first) of the sites it matches, to find who calls a builtin that has no caller of this project.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename } from "node:path";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  callFrame: CallFrame;
  selfSize: number;
  children: ProfileNode[];
}
interface GcCounts {
  count: number;
  pauseMs: number;
  maxPauseMs: number;
}

/** True for a frame of this project's compiled code (dist/lib, dist/tools, dist/bench). */
function isOwn(frame: CallFrame): boolean {
  return /\/dist\/(lib|tools|bench)\//.test(frame.url);
}

function frameName(frame: CallFrame): string {
  const where = frame.url === "" ? "" : ` ${basename(frame.url)}:${frame.lineNumber + 1}`;
  return `${frame.functionName || "(anonymous)"}${where}`;
}

/**
 * Sums self sizes by site over the profile tree (depth-first, bounded by the tree's size).
 * Returns the total bytes and a map from site name to bytes.
 */
export function sitesOf(
  head: ProfileNode,
  stacksOf?: RegExp,
): { total: number; sites: Map<string, number>; stacks: Map<string, number> } {
  const sites = new Map<string, number>();
  const stacks = new Map<string, number>();
  let total = 0;
  const todo: { node: ProfileNode; own: CallFrame | null; path: string[] }[] = [
    { node: head, own: null, path: [] },
  ];
  while (todo.length > 0) {
    const { node, own, path } = todo.pop()!;
    const nearestOwn = isOwn(node.callFrame) ? node.callFrame : own;
    const here = stacksOf === undefined ? path : [frameName(node.callFrame), ...path];
    if (node.selfSize > 0) {
      total += node.selfSize;
      let site = frameName(node.callFrame);
      if (!isOwn(node.callFrame) && nearestOwn !== null) site += ` <- ${frameName(nearestOwn)}`;
      sites.set(site, (sites.get(site) ?? 0) + node.selfSize);
      if (stacksOf?.test(site) === true) {
        const key = here.join(" <- ");
        stacks.set(key, (stacks.get(key) ?? 0) + node.selfSize);
      }
    }
    for (const child of node.children) todo.push({ node: child, own: nearestOwn, path: here });
  }
  return { total, sites, stacks };
}

function main(argv: string[]): void {
  const [path, requestsArg, topArg] = argv;
  const requests = Number(requestsArg);
  if (path === undefined || !(requests > 0)) {
    console.error("usage: heap-summary PROFILE REQUESTS [TOP]");
    process.exit(2);
  }
  const top = topArg === undefined ? 25 : Number(topArg);
  const profile = JSON.parse(readFileSync(path, "utf8")) as { head: ProfileNode };
  const pattern = process.env.HEAP_SUMMARY_STACKS;
  const { total, sites, stacks } = sitesOf(
    profile.head,
    pattern === undefined ? undefined : new RegExp(pattern),
  );
  let line = `${(total / requests / 1024).toFixed(1)} KB/request`;
  if (existsSync(`${path}.gc.json`)) {
    const gc = JSON.parse(readFileSync(`${path}.gc.json`, "utf8")) as Record<string, GcCounts>;
    for (const [kind, c] of Object.entries(gc)) {
      line +=
        ` ${kind}/10k=${((c.count * 10_000) / requests).toFixed(1)}` +
        ` (pause total ${c.pauseMs.toFixed(1)} ms, max ${c.maxPauseMs.toFixed(2)} ms)`;
    }
  }
  console.log(line);
  const sorted = [...sites].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [site, bytes] of sorted) {
    console.log(`${String(Math.round(bytes / requests)).padStart(7)} B  ${site}`);
  }
  const heaviest = [...stacks].sort((a, b) => b[1] - a[1]).slice(0, 5);
  for (const [stack, bytes] of heaviest) {
    console.log(`stack ${Math.round(bytes / requests)} B: ${stack}`);
  }
}

main(process.argv.slice(2));
