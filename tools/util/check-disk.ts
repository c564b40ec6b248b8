/**
 * `etcd-ts-util check disk`: how fast this filesystem makes a WAL append durable. It writes
 * WAL-sized records (2 KiB) into a preallocated scratch file in the data dir, as etcd's WAL
 * writes into its preallocated 64 MB segments, and measures (1) write + fdatasync latency one
 * record at a time, (2) throughput when 1, 10, 100 and 1000 records share one fdatasync (what
 * group commit buys). The verdict follows etcd's hardware guidance: the 99th percentile of
 * wal_fsync_duration_seconds should be under 10 ms.
 */
import { closeSync, fdatasyncSync, mkdirSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import {
  newHistogram,
  recordMs,
  summarize,
  type LatencySummaryMs,
} from "../../bench/load/histogram.js";

/** Limits and sizes of one disk check. */
export interface CheckDiskOptions {
  dataDir: string;
  /** Bytes of one record (etcd WAL entries of small puts are a few hundred bytes to a few KiB). */
  recordBytes: number;
  /** Phase 1: at most this many write + fdatasync rounds ... */
  syncCount: number;
  /** ... and at most this long, seconds. */
  syncSeconds: number;
  /** Phase 2: records per fdatasync to try. */
  batchSizes: number[];
  /** Phase 2: time per batch size, seconds. */
  batchSeconds: number;
  /** Phase 2: at most this many records per batch size. */
  batchMaxRecords: number;
  /** Size of the preallocated scratch file, bytes (writes wrap around inside it). */
  scratchBytes: number;
}

/** p99 fdatasync under this passes (etcd: "p99 of wal_fsync_duration_seconds should be < 10ms"). */
export const FSYNC_P99_LIMIT_MS = 10;

/** Defaults: 2 KiB records, up to 1000 syncs or 10 s, batches 1/10/100/1000 for 2 s each, 64 MiB scratch. */
export function defaultCheckDiskOptions(dataDir: string): CheckDiskOptions {
  return {
    dataDir,
    recordBytes: 2048,
    syncCount: 1000,
    syncSeconds: 10,
    batchSizes: [1, 10, 100, 1000],
    batchSeconds: 2,
    batchMaxRecords: 200_000,
    scratchBytes: 64 * 1024 * 1024,
  };
}

/** One batch size's result. */
export interface BatchThroughput {
  recordsPerSync: number;
  syncs: number;
  records: number;
  seconds: number;
  recordsPerSecond: number;
  mebibytesPerSecond: number;
  /** Mean time of one write + fdatasync of the batch, ms. */
  syncMsAvg: number;
}

/** What a disk check measured. */
export interface CheckDiskResult {
  dataDir: string;
  recordBytes: number;
  syncs: number;
  syncSeconds: number;
  syncsPerSecond: number;
  /** write + fdatasync latency of one record. */
  syncLatencyMs: LatencySummaryMs;
  batches: BatchThroughput[];
  pass: boolean;
  verdict: string;
}

/**
 * Runs the check in `o.dataDir` (created if missing) with a scratch file it removes afterwards.
 * Synchronous I/O on purpose: the latency measured is the disk's, not the thread pool's.
 * Throws the underlying fs error (ENOSPC, EACCES, …) when the directory is unusable.
 */
export function checkDisk(o: CheckDiskOptions): CheckDiskResult {
  mkdirSync(o.dataDir, { recursive: true });
  const path = join(o.dataDir, `.etcd-ts-check-disk-${process.pid}.tmp`);
  const maxBatch = Math.max(1, ...o.batchSizes);
  const scratchBytes = Math.max(o.scratchBytes, o.recordBytes * maxBatch * 2);
  const fd = openSync(path, "w+");
  try {
    // Preallocate by writing zeros and syncing, as a WAL segment is preallocated: later
    // fdatasyncs then flush data only, not block allocation.
    const zeros = Buffer.alloc(1024 * 1024);
    for (let off = 0; off < scratchBytes; off += zeros.length)
      writeSync(fd, zeros, 0, Math.min(zeros.length, scratchBytes - off), off);
    fdatasyncSync(fd);
    const record = Buffer.alloc(o.recordBytes, 0x5a);
    let off = 0;
    const nextOffset = (n: number): number => {
      if (off + n > scratchBytes) off = 0;
      const at = off;
      off += n;
      return at;
    };
    // Phase 1: one record per fdatasync.
    const hist = newHistogram();
    const t0 = performance.now();
    const deadline = t0 + o.syncSeconds * 1000;
    let syncs = 0;
    while (syncs < o.syncCount && performance.now() < deadline) {
      const s = performance.now();
      writeSync(fd, record, 0, record.length, nextOffset(record.length));
      fdatasyncSync(fd);
      recordMs(hist, performance.now() - s);
      syncs++;
    }
    const syncSeconds = (performance.now() - t0) / 1000;
    // Phase 2: batches.
    const batches: BatchThroughput[] = [];
    for (const n of o.batchSizes) {
      const buf = Buffer.alloc(o.recordBytes * n, 0x5a);
      const b0 = performance.now();
      const bDeadline = b0 + o.batchSeconds * 1000;
      let bSyncs = 0;
      let records = 0;
      while (records + n <= Math.max(o.batchMaxRecords, n) && performance.now() < bDeadline) {
        writeSync(fd, buf, 0, buf.length, nextOffset(buf.length));
        fdatasyncSync(fd);
        bSyncs++;
        records += n;
      }
      const seconds = (performance.now() - b0) / 1000;
      batches.push({
        recordsPerSync: n,
        syncs: bSyncs,
        records,
        seconds,
        recordsPerSecond: records / seconds,
        mebibytesPerSecond: (records * o.recordBytes) / seconds / (1024 * 1024),
        syncMsAvg: bSyncs > 0 ? (seconds * 1000) / bSyncs : 0,
      });
    }
    const lat = summarize(hist);
    const pass = lat.p99 < FSYNC_P99_LIMIT_MS;
    const verdict = pass
      ? `PASS: p99 fdatasync ${lat.p99.toFixed(3)} ms < ${FSYNC_P99_LIMIT_MS} ms (etcd's guidance for WAL fsync)`
      : `FAIL: p99 fdatasync ${lat.p99.toFixed(3)} ms >= ${FSYNC_P99_LIMIT_MS} ms: etcd's guidance asks for p99 WAL fsync under 10 ms; expect slow commits and leader loss under load`;
    return {
      dataDir: o.dataDir,
      recordBytes: o.recordBytes,
      syncs,
      syncSeconds,
      syncsPerSecond: syncs / syncSeconds,
      syncLatencyMs: lat,
      batches,
      pass,
      verdict,
    };
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
}

/** The human-readable report of a disk check. */
export function formatCheckDisk(r: CheckDiskResult): string {
  const l = r.syncLatencyMs;
  const lines = [
    `Disk check in ${r.dataDir} (${r.recordBytes}-byte records, preallocated file)`,
    `fdatasync (write 1 record + fdatasync): ${r.syncs} in ${r.syncSeconds.toFixed(2)} s = ${r.syncsPerSecond.toFixed(0)} syncs/s`,
    `  min ${l.min.toFixed(3)} ms  avg ${l.avg.toFixed(3)} ms  p50 ${l.p50.toFixed(3)} ms  p90 ${l.p90.toFixed(3)} ms  p99 ${l.p99.toFixed(3)} ms  p99.9 ${l.p999.toFixed(3)} ms  max ${l.max.toFixed(3)} ms`,
    "Throughput by records per fdatasync (group commit):",
    "  records/sync  syncs/s   records/s     MiB/s   ms/sync",
  ];
  for (const b of r.batches) {
    lines.push(
      `  ${String(b.recordsPerSync).padStart(12)}  ${(b.syncs / b.seconds).toFixed(0).padStart(7)}  ${b.recordsPerSecond.toFixed(0).padStart(10)}  ${b.mebibytesPerSecond.toFixed(1).padStart(8)}  ${b.syncMsAvg.toFixed(3).padStart(8)}`,
    );
  }
  lines.push(r.verdict);
  return lines.join("\n");
}
