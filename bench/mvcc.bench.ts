/**
 * lib/mvcc micro-benchmarks on a 1M-key store with 256-byte values (issue 3, Performance).
 *
 *   npx tsc -p . && node --expose-gc dist/bench/mvcc.bench.js
 *
 * MVCC_BENCH_KEYS=<n> changes the key count (default 1,000,000). Memory per key is the growth of
 * V8 heap + ArrayBuffer memory (after global.gc()) while 1M keys of 256 B are put, so it counts
 * the key index, the records, the key and value bytes and the revision log.
 */
import { bench, do_not_optimize, group, run, summary } from "mitata";
import { MvccStore } from "../lib/mvcc/index.js";
import { PutRequest, RangeRequest } from "../lib/proto/gen/etcdserverpb/rpc.js";

const keyCount = Number(process.env.MVCC_BENCH_KEYS ?? 1_000_000);
const valueBytes = 256;
const gc = (globalThis as { gc?: () => void }).gc;
const value = Buffer.alloc(valueBytes, 0x61);

/** 17-byte keys in put order: "bench/key/0000000". */
function keyOf(i: number): Buffer {
  return Buffer.from(`bench/key/${String(i).padStart(7, "0")}`);
}

function heapBytes(): { heap: number; rss: number } {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return { heap: m.heapUsed + m.arrayBuffers, rss: m.rss };
}

/**
 * Puts `n` keys the way the server hands them over: a decoded request's key and value are views
 * into the request's bytes, here a fresh request-sized Buffer from Node's shared pool per put.
 * A store that kept such a view, or copied keys into that same pool, would pin a pool slab per
 * few keys, and the memory figure below shows it (it did: ~200 B/key in a member).
 */
function build(n: number): MvccStore {
  // stepped: the end measures a compaction both in steps and in one piece (finishCompaction)
  const s = new MvccStore({ physicalCompaction: "stepped" });
  const req = PutRequest.create();
  for (let i = 0; i < n; i++) {
    const key = keyOf(i);
    const wire = Buffer.allocUnsafe(key.length + valueBytes + 8);
    key.copy(wire, 4);
    value.copy(wire, key.length + 6);
    req.key = wire.subarray(4, 4 + key.length);
    req.value = wire.subarray(key.length + 6, key.length + 6 + valueBytes);
    s.put(req);
  }
  return s;
}

const before = heapBytes();
let t0 = performance.now();
const store = build(keyCount);
const buildMs = performance.now() - t0;
const after = heapBytes();
console.log(`build: ${keyCount} puts of ${valueBytes} B values in ${buildMs.toFixed(0)} ms`);
if (gc !== undefined) {
  console.log(
    `memory for ${keyCount} keys of 17 B with ${valueBytes} B values: ` +
      `${((after.heap - before.heap) / keyCount).toFixed(1)} B/key (heap + array buffers), ` +
      `${((after.rss - before.rss) / keyCount).toFixed(1)} B/key (rss growth)`,
  );
} else {
  console.log("memory: skipped (run node with --expose-gc)");
}
console.log(`stats: ${JSON.stringify(store.stats())}`);
t0 = performance.now();
const h = store.hashKV(0);
console.log(
  `hashKV over ${keyCount} keys: ${(performance.now() - t0).toFixed(0)} ms (hash ${h.hash})`,
);

t0 = performance.now();
const entries = [...store.snapshot().records()];
console.log(
  `snapshot: ${entries.length} key-bucket entries encoded in ${(performance.now() - t0).toFixed(0)} ms`,
);
t0 = performance.now();
const restored = new MvccStore();
restored.restore(entries, -1);
console.log(
  `restore: ${entries.length} entries into an empty store in ${(performance.now() - t0).toFixed(0)} ms`,
);
entries.length = 0;

let cursor = 0;
const nextIndex = (): number => (cursor = (cursor + 7919) % keyCount);
const keys = Array.from({ length: 1 << 16 }, (_, i) => keyOf((i * 7919) % keyCount));
const mask = (1 << 16) - 1;
const putReq = PutRequest.create({ value });
const getReq = RangeRequest.create({});
const range100 = RangeRequest.create({});

group(`mvcc, ${keyCount} keys, ${valueBytes} B values`, () => {
  summary(() => {
    bench("put (overwrite an existing key)", () => {
      putReq.key = keys[cursor++ & mask]!;
      do_not_optimize(store.put(putReq));
    });
    bench("range single key", () => {
      getReq.key = keys[cursor++ & mask]!;
      do_not_optimize(store.range(getReq));
    });
    bench("range 100 keys", () => {
      const i = nextIndex() % (keyCount - 100);
      range100.key = keyOf(i);
      range100.rangeEnd = keyOf(i + 100);
      do_not_optimize(store.range(range100));
    });
  });
});

// Watch fan-out: a second store with 1 stream x 100 prefix watchers and 100 single-key watchers.
const watched = new MvccStore();
let eventsSeen = 0;
const stream = watched.newWatchStream({
  send: (r) => {
    eventsSeen += r.events.length;
    return true;
  },
});
for (let i = 0; i < 100; i++) {
  stream.handle({
    requestUnion: {
      oneofKind: "createRequest",
      createRequest: {
        key: Buffer.from("bench/"),
        rangeEnd: Buffer.from("bench0"),
        startRevision: 0,
        progressNotify: false,
        filters: [],
        prevKv: false,
        watchId: 0n,
        fragment: false,
      },
    },
  });
  stream.handle({
    requestUnion: {
      oneofKind: "createRequest",
      createRequest: {
        key: keyOf(i),
        rangeEnd: Buffer.alloc(0),
        startRevision: 0,
        progressNotify: false,
        filters: [],
        prevKv: true,
        watchId: 0n,
        fragment: false,
      },
    },
  });
}
const watchedPut = PutRequest.create({ value });
group("watch fan-out (events delivered synchronously at the end of each write)", () => {
  bench("put seen by 100 prefix watchers (100 events out)", () => {
    watchedPut.key = keyOf(1000 + (cursor++ & mask));
    do_not_optimize(watched.put(watchedPut));
  });
  bench("put seen by 100 prefix + 1 single-key prev_kv watcher", () => {
    watchedPut.key = keyOf(cursor++ % 100);
    do_not_optimize(watched.put(watchedPut));
  });
});

await run();
console.log(`watch events delivered during the run: ${eventsSeen}`);

// A compaction in steps (as the server runs it, 20 puts between steps), then one in one piece.
const stepMs: number[] = [];
t0 = performance.now();
store.compact(store.currentRevision);
const logicalMs = performance.now() - t0;
for (let more = true; more;) {
  for (let i = 0; i < 20; i++) {
    putReq.key = keys[cursor++ & mask]!;
    store.put(putReq);
  }
  const s0 = performance.now();
  more = store.compactionStep();
  stepMs.push(performance.now() - s0);
}
stepMs.sort((a, b) => a - b);
const sumMs = stepMs.reduce((a, b) => a + b, 0);
console.log(
  `compact in steps after the benchmarks: logical part ${logicalMs.toFixed(1)} ms, ` +
    `${stepMs.length} steps of ${sumMs.toFixed(0)} ms in all, step p50 ` +
    `${stepMs[stepMs.length >> 1]!.toFixed(2)} ms, p99 ${stepMs[Math.floor(stepMs.length * 0.99)]!.toFixed(2)} ms, ` +
    `max ${stepMs.at(-1)!.toFixed(2)} ms (${store.stats().revisions} records kept)`,
);
t0 = performance.now();
store.compact(store.currentRevision);
store.finishCompaction();
console.log(
  `compact in one piece (${store.stats().revisions} records kept): ${(performance.now() - t0).toFixed(0)} ms`,
);
