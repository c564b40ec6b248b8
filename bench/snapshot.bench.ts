/**
 * Snapshot cost of one member, in process (issue 13, Benchmarks): load N keys of 256 B through
 * raft, then write a db snapshot (EtcdServer.defragment: the periodic snapshot's path) while a
 * steady stream of puts goes on, and report the snapshot's time, db size and MB/s, the event
 * loop's worst delay and the puts' p50/p99/max during it; then restart the member from its db +
 * WAL tail and report the time to ready and the RSS after it.
 *
 *   npx tsc -p . && node --expose-gc dist/bench/snapshot.bench.js
 *
 * SNAPSHOT_BENCH_KEYS=<n> (default 100,000). Numbers are meaningful only on a quiet machine;
 * there is no real etcd beside it here (bench/compare runs the side-by-side rows).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { pino } from "pino";
import { EtcdServer, defaultConfig, type ServerConfig } from "../lib/server/index.js";

const keys = Number(process.env.SNAPSHOT_BENCH_KEYS ?? 100_000);
const value = Buffer.alloc(256, 0x61);
const concurrency = 256;
const gc = (globalThis as { gc?: () => void }).gc;

function config(dataDir: string): ServerConfig {
  const peer = "http://127.0.0.1:1";
  return {
    ...defaultConfig(),
    name: "bench",
    dataDir,
    initialCluster: `bench=${peer}`,
    listenPeerUrls: [peer],
    initialAdvertisePeerUrls: [peer],
    // no periodic snapshot during the load: the measured one is the only one
    snapshotCount: 10 * keys,
  };
}

function put(s: EtcdServer, i: number): Promise<unknown> {
  return s.put({
    key: Buffer.from(`bench/key/${String(i).padStart(8, "0")}`),
    value,
    lease: 0n,
    prevKv: false,
    ignoreValue: false,
    ignoreLease: false,
  });
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "snapshot-bench-"));
  const logger = pino({ level: "warn" });
  try {
    const s = await EtcdServer.start({ config: config(dir), logger });
    const t0 = performance.now();
    for (let i = 0; i < keys; i += concurrency) {
      const batch: Promise<unknown>[] = [];
      for (let j = i; j < Math.min(keys, i + concurrency); j++) batch.push(put(s, j));
      await Promise.all(batch);
    }
    console.log(
      `loaded ${keys} keys of 256 B in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );

    // puts flowing one at a time (latency, not throughput): first alone for as long as the
    // snapshot takes (the baseline, the machine's own noise), then during the snapshot
    let n = keys;
    const window = async (during: () => Promise<void>, label: string): Promise<number> => {
      const latencies: number[] = [];
      let writing = true;
      const writer = (async () => {
        while (writing) {
          const a = performance.now();
          await put(s, n++);
          latencies.push(performance.now() - a);
        }
      })();
      const loop = monitorEventLoopDelay({ resolution: 1 });
      loop.enable();
      const s0 = performance.now();
      await during();
      const seconds = (performance.now() - s0) / 1000;
      loop.disable();
      writing = false;
      await writer;
      latencies.sort((a, b) => a - b);
      console.log(
        `${label}: ${seconds.toFixed(2)} s; event loop delay max ${(loop.max / 1e6).toFixed(1)} ms, ` +
          `p99 ${(loop.percentile(99) / 1e6).toFixed(1)} ms; ${latencies.length} puts: ` +
          `p50 ${pct(latencies, 50).toFixed(2)} ms, p99 ${pct(latencies, 99).toFixed(2)} ms, ` +
          `max ${(latencies.at(-1) ?? 0).toFixed(2)} ms`,
      );
      return seconds;
    };
    const seconds = await window(() => s.defragment(), "snapshot");
    await window(() => new Promise((r) => setTimeout(r, seconds * 1000)), "baseline (no snapshot)");
    const dbBytes = s.status().dbSize;
    console.log(
      `snapshot db ${(dbBytes / 1e6).toFixed(1)} MB written at ${(dbBytes / 1e6 / seconds).toFixed(1)} MB/s`,
    );
    await s.stop();

    gc?.();
    const r0 = performance.now();
    const again = await EtcdServer.start({ config: config(dir), logger });
    const restartSeconds = (performance.now() - r0) / 1000;
    gc?.();
    const rssMiB = process.memoryUsage().rss / 2 ** 20;
    console.log(
      `restart from db + WAL tail: ${restartSeconds.toFixed(2)} s to ready, ` +
        `${again.store.currentRevision - 1} revisions, RSS after ${rssMiB.toFixed(0)} MiB`,
    );
    await again.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
