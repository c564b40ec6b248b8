/**
 * Where a member's long stalls come from: preload it into a member (`STALL_TRACE_OUT=/tmp/s.jsonl
 * node -r ./bench/stall-trace.cjs dist/tools/etcd-ts.js ...`; `%p` in the name becomes the pid, for
 * several members) and it appends one JSON line per
 * event-loop stall longer than STALL_TRACE_MS (default 20 ms): when it ended (`atMs`, epoch ms,
 * as the member's log `time`), how long the loop was held (`stallMs`: a 5 ms interval timer's
 * lateness), and the garbage collections (perf_hooks 'gc' entries: kind, pause ms) that fell
 * inside it. A stall that clients saw but this file does not list was not the event loop: the
 * disk (an fsync the reply waited for) or the machine. Lines with `"kind": "summary"` every
 * 10 s give the longest stall and the GC pause totals of that window, so a quiet file means a
 * quiet loop, not a broken trace.
 *
 * With STALL_TRACE_FS=1 it also logs every file operation of the thread pool or the loop that took
 * longer than the threshold (`"kind": "fs"`: the call, the file's path, when it started and how
 * long it took, queueing in the thread pool included): node:fs's write, fdatasync, fsync, close
 * and their Sync forms, and fs/promises' rm, rename and open, wrapped before the member loads
 * (the ES module bindings are re-synced with module.syncBuiltinESMExports). A put that stalled
 * with neither a late loop nor a slow WAL fsync shows here what it waited behind.
 */
"use strict";
const fs = require("node:fs");
const { PerformanceObserver, constants, performance } = require("node:perf_hooks");

const out = process.env.STALL_TRACE_OUT?.replace("%p", String(process.pid));
if (!out) throw new Error("stall-trace: set STALL_TRACE_OUT to the file to append to");
const thresholdMs = Number(process.env.STALL_TRACE_MS ?? 20);
const intervalMs = 5;
const summaryEveryMs = 10_000;

/** GC entries of the last seconds: { startMs, durationMs, kind } with startMs on performance.now(). */
const recentGcs = [];
let windowGc = { scavenges: 0, scavengePauseMs: 0, markCompacts: 0, markCompactPauseMs: 0 };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const minor = e.detail.kind === constants.NODE_PERFORMANCE_GC_MINOR;
    recentGcs.push({
      startMs: e.startTime,
      durationMs: e.duration,
      kind: minor ? "scavenge" : "major",
    });
    if (minor) {
      windowGc.scavenges += 1;
      windowGc.scavengePauseMs += e.duration;
    } else {
      windowGc.markCompacts += 1;
      windowGc.markCompactPauseMs += e.duration;
    }
  }
  const keepAfter = performance.now() - 5_000;
  while (recentGcs.length > 0 && recentGcs[0].startMs < keepAfter) recentGcs.shift();
}).observe({ entryTypes: ["gc"] });

let last = performance.now();
let windowStart = last;
let windowMaxStallMs = 0;
let stalls = 0;
setInterval(() => {
  const now = performance.now();
  const stallMs = now - last - intervalMs;
  if (stallMs > windowMaxStallMs) windowMaxStallMs = stallMs;
  if (stallMs > thresholdMs) {
    stalls += 1;
    const gcs = recentGcs
      .filter((g) => g.startMs + g.durationMs >= last && g.startMs <= now)
      .map((g) => ({ kind: g.kind, pauseMs: Math.round(g.durationMs * 10) / 10 }));
    const line = { atMs: Date.now(), stallMs: Math.round(stallMs * 10) / 10, gcs };
    fs.appendFileSync(out, JSON.stringify(line) + "\n");
  }
  if (now - windowStart >= summaryEveryMs) {
    const line = {
      kind: "summary",
      atMs: Date.now(),
      maxStallMs: Math.round(windowMaxStallMs * 10) / 10,
      stalls,
      ...windowGc,
    };
    fs.appendFileSync(out, JSON.stringify(line) + "\n");
    windowStart = now;
    windowMaxStallMs = 0;
    stalls = 0;
    windowGc = { scavenges: 0, scavengePauseMs: 0, markCompacts: 0, markCompactPauseMs: 0 };
  }
  last = now;
}, intervalMs).unref();

if (process.env.STALL_TRACE_FS === "1") traceFileOps();

/** Wraps the file calls named in the module comment to log the slow ones. */
function traceFileOps() {
  const fsp = require("node:fs/promises");
  const pathOf = (fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      return `fd ${fd}`;
    }
  };
  const slow = (op, what, startedMs, ms) => {
    const line = { kind: "fs", op, what, atMs: startedMs, ms: Math.round(ms * 10) / 10 };
    fs.appendFileSync(out, JSON.stringify(line) + "\n");
  };
  for (const op of ["write", "fdatasync", "fsync", "close"]) {
    const orig = fs[op];
    fs[op] = function (fd, ...args) {
      const cb = args[args.length - 1];
      if (typeof cb !== "function") return orig.call(this, fd, ...args);
      const t0 = performance.now();
      const startedMs = Date.now();
      const what = op === "close" ? pathOf(fd) : undefined;
      args[args.length - 1] = function (...r) {
        const ms = performance.now() - t0;
        if (ms > thresholdMs) slow(op, what ?? pathOf(fd), startedMs, ms);
        return cb.apply(this, r);
      };
      return orig.call(this, fd, ...args);
    };
  }
  for (const op of ["writeSync", "fdatasyncSync", "fsyncSync", "closeSync"]) {
    const orig = fs[op];
    fs[op] = function (fd, ...args) {
      const t0 = performance.now();
      const startedMs = Date.now();
      const what = op === "closeSync" ? pathOf(fd) : undefined;
      const r = orig.call(this, fd, ...args);
      const ms = performance.now() - t0;
      if (ms > thresholdMs) slow(op, what ?? pathOf(fd), startedMs, ms);
      return r;
    };
  }
  for (const op of ["rm", "rename", "open", "unlink"]) {
    const orig = fsp[op];
    fsp[op] = async function (path, ...args) {
      const t0 = performance.now();
      const startedMs = Date.now();
      try {
        return await orig.call(this, path, ...args);
      } finally {
        const ms = performance.now() - t0;
        if (ms > thresholdMs) slow(op, String(path), startedMs, ms);
      }
    };
  }
  require("node:module").syncBuiltinESMExports();
}
