/**
 * Bytes allocated per request, from V8's sampling heap profiler with the objects later collected
 * kept in the profile (plain --heap-prof drops them, so it shows what is live, not what is made).
 * Preload it into a member: `HEAP_SAMPLE_OUT=/tmp/m.json node -r ./bench/heap-sample.cjs
 * dist/tools/etcd-ts.js ...`; the first SIGUSR2 starts sampling (one sample per 4 KiB allocated on
 * average), the second writes the profile (a .heapprofile, readable by Chrome's DevTools) to
 * HEAP_SAMPLE_OUT. Divide the sum of its nodes' selfSize by the requests run in between
 * (`node dist/bench/heap-summary.js` does, by allocation site). Between the two signals it also
 * counts V8's garbage collections (perf_hooks 'gc' entries: scavenges, mark-compacts, their
 * pause times in ms) and writes them to HEAP_SAMPLE_OUT + ".gc.json".
 */
"use strict";
const inspector = require("node:inspector");
const fs = require("node:fs");
const { PerformanceObserver, constants } = require("node:perf_hooks");

const session = new inspector.Session();
session.connect();
let sampling = false;
let gc = null;
const observer = new PerformanceObserver((list) => {
  if (gc === null) return;
  for (const entry of list.getEntries()) {
    const minor = entry.detail.kind === constants.NODE_PERFORMANCE_GC_MINOR;
    const counts = minor ? gc.scavenges : gc.markCompacts;
    counts.count += 1;
    counts.pauseMs += entry.duration;
    counts.maxPauseMs = Math.max(counts.maxPauseMs, entry.duration);
  }
});
observer.observe({ entryTypes: ["gc"] });
process.on("SIGUSR2", () => {
  const out = process.env.HEAP_SAMPLE_OUT ?? "heap-sample.json";
  if (!sampling) {
    sampling = true;
    gc = {
      scavenges: { count: 0, pauseMs: 0, maxPauseMs: 0 },
      markCompacts: { count: 0, pauseMs: 0, maxPauseMs: 0 },
    };
    session.post("HeapProfiler.startSampling", {
      samplingInterval: 4096,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    return;
  }
  sampling = false;
  const counted = gc;
  gc = null;
  session.post("HeapProfiler.stopSampling", (err, r) => {
    if (err) throw err;
    fs.writeFileSync(out + ".gc.json", JSON.stringify(counted));
    fs.writeFileSync(out, JSON.stringify(r.profile));
  });
});
