/**
 * Bytes allocated per request, from V8's sampling heap profiler with the objects later collected
 * kept in the profile (plain --heap-prof drops them, so it shows what is live, not what is made).
 * Preload it into a member: `HEAP_SAMPLE_OUT=/tmp/m.json node -r ./bench/heap-sample.cjs
 * dist/tools/etcd-ts.js ...`; the first SIGUSR2 starts sampling (one sample per 4 KiB allocated on
 * average), the second writes the profile (a .heapprofile, readable by Chrome's DevTools) to
 * HEAP_SAMPLE_OUT. Divide the sum of its nodes' selfSize by the requests run in between.
 */
"use strict";
const inspector = require("node:inspector");
const fs = require("node:fs");

const session = new inspector.Session();
session.connect();
let sampling = false;
process.on("SIGUSR2", () => {
  if (!sampling) {
    sampling = true;
    session.post("HeapProfiler.startSampling", {
      samplingInterval: 4096,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    return;
  }
  sampling = false;
  session.post("HeapProfiler.stopSampling", (err, r) => {
    if (err) throw err;
    fs.writeFileSync(process.env.HEAP_SAMPLE_OUT ?? "heap-sample.json", JSON.stringify(r.profile));
  });
});
