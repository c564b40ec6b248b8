/**
 * The member's Prometheus metrics with etcd 3.4's names (etcdserver/metrics.go, wal/metrics.go,
 * mvcc/metrics.go) plus etcd-ts's group-commit figures. One registry per member so that several
 * members can run in one process (tests).
 */
import client from "prom-client";
import type { Logger } from "pino";
import type { WAL } from "../wal/index.js";
import { serverVersion } from "../version/index.js";
import { writeOffload } from "../h2/index.js";

/** etcd's WAL fsync buckets: 1 ms doubling 14 times (up to ~8 s). */
const fsyncBuckets = client.exponentialBuckets(0.001, 2, 14);

/** Buckets of one label set of a LabeledHistogram. */
interface HistogramSeries {
  labels: Record<string, string>;
  counts: number[];
  sum: number;
  count: number;
}

/** prom-client's metric interface (Registry.registerMetric): what a Histogram's get() returns. */
interface HistogramValues {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  values: { metricName: string; labels: Record<string, string | number>; value: number }[];
}

/** A new series of `upperBounds.length` empty buckets with `labels`. */
function emptySeries(labels: Record<string, string>, bucketCount: number): HistogramSeries {
  return { labels, counts: new Array<number>(bucketCount).fill(0), sum: 0, count: 0 };
}

/** Adds `value` to series `s`: its bucket (the first upper bound >= value, by binary search). */
function observeSeries(s: HistogramSeries, upperBounds: readonly number[], value: number): void {
  let lo = 0;
  let hi = upperBounds.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (value <= upperBounds[mid]!) hi = mid;
    else lo = mid + 1;
  }
  if (lo < upperBounds.length) s.counts[lo]!++;
  s.sum += value;
  s.count++;
}

/** The exposition of `series` as a prom-client Histogram gives it: cumulative buckets, _sum, _count. */
function histogramValues(
  h: { name: string; help: string; upperBounds: readonly number[] },
  series: Iterable<HistogramSeries>,
): HistogramValues {
  const values: HistogramValues["values"] = [];
  for (const s of series) {
    let acc = 0;
    for (let i = 0; i < h.upperBounds.length; i++) {
      acc += s.counts[i]!;
      values.push({
        metricName: `${h.name}_bucket`,
        labels: { ...s.labels, le: h.upperBounds[i]! },
        value: acc,
      });
    }
    values.push({
      metricName: `${h.name}_bucket`,
      labels: { ...s.labels, le: "+Inf" },
      value: s.count,
    });
    values.push({ metricName: `${h.name}_sum`, labels: s.labels, value: s.sum });
    values.push({ metricName: `${h.name}_count`, labels: s.labels, value: s.count });
  }
  return { name: h.name, help: h.help, type: "histogram", aggregator: "sum", values };
}

/**
 * A histogram observed on every apply. prom-client's Histogram hashes and validates the label set
 * on each observe (a measurable share of the put path at tens of thousands of applies a second);
 * this one finds its series by op in a Map and its bucket by binary search, and hands prom-client's
 * registry the same {name, help, type, values} a prom-client Histogram does, so the exposition
 * (text format, `le` labels, cumulative buckets, _sum, _count) is prom-client's own.
 */
export class LabeledHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  readonly #series = new Map<string, HistogramSeries>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly upperBounds: readonly number[],
  ) {}

  /**
   * Adds one observation of `value` (seconds) to the series {version: "v3", op, success}; `op` is
   * etcd's op name (Put, Txn, …).
   */
  observe(op: string, success: boolean, value: number): void {
    const k = success ? op : `${op}\0false`;
    let s = this.#series.get(k);
    if (s === undefined) {
      const labels = { version: "v3", op, success: success ? "true" : "false" };
      s = emptySeries(labels, this.upperBounds.length);
      this.#series.set(k, s);
    }
    observeSeries(s, this.upperBounds, value);
  }

  /** prom-client's metric interface: the values of every series, buckets cumulative. */
  get(): HistogramValues {
    return histogramValues(this, this.#series.values());
  }

  /** prom-client's metric interface. */
  reset(): void {
    this.#series.clear();
  }
}

/**
 * A histogram without labels, observed once per WAL write (once per put at one client): the same
 * exposition as an unlabeled prom-client Histogram (all buckets at 0 before the first observation)
 * without prom-client's per-observe label hashing and result objects (see LabeledHistogram).
 */
export class PlainHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  #series: HistogramSeries;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly upperBounds: readonly number[],
  ) {
    this.#series = emptySeries({}, upperBounds.length);
  }

  /** Adds one observation of `value` (in the metric's unit). */
  observe(value: number): void {
    observeSeries(this.#series, this.upperBounds, value);
  }

  /** prom-client's metric interface: the one series, buckets cumulative. */
  get(): HistogramValues {
    return histogramValues(this, [this.#series]);
  }

  /** prom-client's metric interface. */
  reset(): void {
    this.#series = emptySeries({}, this.upperBounds.length);
  }
}

/** Registers `h` (a histogram of ours) in `registry` where a prom-client metric would be; returns it. */
function registered<H extends LabeledHistogram | PlainHistogram>(
  registry: client.Registry,
  h: H,
): H {
  registry.registerMetric(h as unknown as client.Metric<string>);
  return h;
}

/**
 * A prom-client `collect` hook that brings a Counter up to a plain running count. Counter.inc()
 * allocates a label object and a result object on every call; counts bumped once per request are
 * kept as numbers (ServerMetrics.counts) and handed over when /metrics is read.
 */
function syncCounter(read: () => number): (this: client.Counter) => void {
  let synced = 0;
  return function (this: client.Counter) {
    const now = read();
    if (now > synced) this.inc(now - synced);
    synced = now;
  };
}

/** A prom-client `collect` hook that sets a Gauge to a plain number (see syncCounter). */
function syncGauge(read: () => number): (this: client.Gauge) => void {
  return function (this: client.Gauge) {
    this.set(read());
  };
}

export class ServerMetrics {
  readonly registry = new client.Registry();

  /** A PlainHistogram registered in this member's registry. */
  #plainHistogram(name: string, help: string, upperBounds: readonly number[]): PlainHistogram {
    return registered(this.registry, new PlainHistogram(name, help, upperBounds));
  }
  /**
   * Per-request figures as plain numbers, read by the collect hooks of the metrics named beside
   * each: puts (etcd_mvcc_put_total), deletes, ranges, txns (etcd_mvcc_*_total) and
   * proposalsPending (etcd_server_proposals_pending).
   */
  readonly counts = {
    puts: 0,
    deletes: 0,
    ranges: 0,
    txns: 0,
    proposalsPending: 0,
    proposalsCommitted: 0,
    proposalsApplied: 0,
    walWriteBytes: 0,
    walFsyncs: 0,
    walEntries: 0,
  };
  /**
   * The WAL's own counts, read when /metrics is scraped (the server points this at its WAL):
   * writes (synced or not), writes made with blocking calls, bytes zero-filled ahead.
   */
  walStats: () => { writes: number; blockingWrites: number; zeroFilledBytes: number } = () => ({
    writes: 0,
    blockingWrites: 0,
    zeroFilledBytes: 0,
  });
  readonly walFsyncDurationSeconds = this.#plainHistogram(
    "etcd_disk_wal_fsync_duration_seconds",
    "The latency distributions of fsync called by WAL.",
    fsyncBuckets,
  );
  readonly walWriteBytesTotal = new client.Counter({
    name: "etcd_disk_wal_write_bytes_total",
    help: "Total number of bytes written in WAL.",
    registers: [this.registry],
    collect: syncCounter(() => this.counts.walWriteBytes),
  });
  readonly walEntriesPerFsync = this.#plainHistogram(
    "etcd_ts_wal_entries_per_fsync",
    "Raft entries made durable by one WAL fdatasync (group commit batch size).",
    [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096],
  );
  readonly walBytesPerFsync = this.#plainHistogram(
    "etcd_ts_wal_bytes_per_fsync",
    "Bytes made durable by one WAL fdatasync (group commit batch size).",
    client.exponentialBuckets(256, 4, 10),
  );
  readonly walFsyncsTotal = new client.Counter({
    name: "etcd_ts_wal_fsyncs_total",
    help: "Number of WAL fdatasync calls.",
    registers: [this.registry],
    collect: syncCounter(() => this.counts.walFsyncs),
  });
  readonly walBlockingWritesTotal = new client.Counter({
    name: "etcd_ts_wal_blocking_writes_total",
    help: "WAL writes made durable with blocking calls on the event loop (small batches on a fast disk).",
    registers: [this.registry],
    collect: syncCounter(() => this.walStats().blockingWrites),
  });
  readonly walZeroFilledBytesTotal = new client.Counter({
    name: "etcd_ts_wal_zero_filled_bytes_total",
    help: "Bytes of WAL segment zero-filled ahead of the write position.",
    registers: [this.registry],
    collect: syncCounter(() => this.walStats().zeroFilledBytes),
  });
  readonly walWritesTotal = new client.Counter({
    name: "etcd_ts_wal_writes_total",
    help: "WAL writes (one per merged batch of saves, fdatasynced or not).",
    registers: [this.registry],
    collect: syncCounter(() => this.walStats().writes),
  });
  readonly walEntriesTotal = new client.Counter({
    name: "etcd_ts_wal_entries_total",
    help: "Number of raft entries written to the WAL.",
    registers: [this.registry],
    collect: syncCounter(() => this.counts.walEntries),
  });
  /** etcd_server_apply_duration_seconds{version, op, success} (etcd 3.5's name and buckets). */
  readonly applyDurationSeconds = registered(
    this.registry,
    new LabeledHistogram(
      "etcd_server_apply_duration_seconds",
      "The latency distributions of v2 apply called by backend.",
      client.exponentialBuckets(0.0001, 2, 20),
    ),
  );

  readonly hasLeader = new client.Gauge({
    name: "etcd_server_has_leader",
    help: "Whether or not a leader exists. 1 is existence, 0 is not.",
    registers: [this.registry],
  });
  readonly isLeader = new client.Gauge({
    name: "etcd_server_is_leader",
    help: "Whether or not this member is a leader. 1 if is, 0 otherwise.",
    registers: [this.registry],
  });
  readonly leaderChangesSeenTotal = new client.Counter({
    name: "etcd_server_leader_changes_seen_total",
    help: "The number of leader changes seen.",
    registers: [this.registry],
  });
  readonly leaderForgottenTotal = new client.Counter({
    name: "etcd_ts_leader_forgotten_total",
    help: "Times this follower forgot its leader because the leader's peer port refused connections (its process gone), then campaigned.",
    registers: [this.registry],
  });
  readonly proposalsCommittedTotal = new client.Gauge({
    name: "etcd_server_proposals_committed_total",
    help: "The total number of consensus proposals committed.",
    registers: [this.registry],
    collect: syncGauge(() => this.counts.proposalsCommitted),
  });
  readonly proposalsAppliedTotal = new client.Gauge({
    name: "etcd_server_proposals_applied_total",
    help: "The total number of consensus proposals applied.",
    registers: [this.registry],
    collect: syncGauge(() => this.counts.proposalsApplied),
  });
  readonly proposalsPending = new client.Gauge({
    name: "etcd_server_proposals_pending",
    help: "The current number of pending proposals to commit.",
    registers: [this.registry],
    collect: syncGauge(() => this.counts.proposalsPending),
  });
  readonly proposalsFailedTotal = new client.Counter({
    name: "etcd_server_proposals_failed_total",
    help: "The total number of failed proposals seen.",
    registers: [this.registry],
  });
  readonly slowApplyTotal = new client.Counter({
    name: "etcd_server_slow_apply_total",
    help: "The total number of slow apply requests (likely overloaded from slow disk).",
    registers: [this.registry],
  });
  readonly dbTotalSizeInBytes = new client.Gauge({
    name: "etcd_mvcc_db_total_size_in_bytes",
    help: "Total size of the underlying database physically allocated in bytes.",
    registers: [this.registry],
  });
  readonly dbTotalSizeInUseInBytes = new client.Gauge({
    name: "etcd_mvcc_db_total_size_in_use_in_bytes",
    help: "Total size of the underlying database logically in use in bytes.",
    registers: [this.registry],
  });
  readonly keysTotal = new client.Gauge({
    name: "etcd_debugging_mvcc_keys_total",
    help: "Total number of keys.",
    registers: [this.registry],
  });
  readonly valueArenaBytes = new client.Gauge({
    name: "etcd_ts_mvcc_value_arena_bytes",
    help: "Bytes of values held in memory (values in a durable db file are read from it instead).",
    registers: [this.registry],
  });
  readonly valueFiles = new client.Gauge({
    name: "etcd_ts_mvcc_value_files",
    help: "db files the store reads values from (held open while any record points into one).",
    registers: [this.registry],
  });
  readonly watcherTotal = new client.Gauge({
    name: "etcd_debugging_mvcc_watcher_total",
    help: "Total number of watchers.",
    registers: [this.registry],
  });
  readonly putTotal = new client.Counter({
    name: "etcd_mvcc_put_total",
    help: "Total number of puts seen by this member.",
    registers: [this.registry],
    collect: syncCounter(() => this.counts.puts),
  });
  readonly deleteTotal = new client.Counter({
    name: "etcd_mvcc_delete_total",
    help: "Total number of deletes seen by this member.",
    registers: [this.registry],
    collect: syncCounter(() => this.counts.deletes),
  });
  readonly rangeTotal = new client.Counter({
    name: "etcd_mvcc_range_total",
    help: "Total number of ranges seen by this member.",
    registers: [this.registry],
    collect: syncCounter(() => this.counts.ranges),
  });
  readonly txnTotal = new client.Counter({
    name: "etcd_mvcc_txn_total",
    help: "Total number of txns seen by this member.",
    registers: [this.registry],
    collect: syncCounter(() => this.counts.txns),
  });
  readonly serverVersionGauge = new client.Gauge({
    name: "etcd_server_version",
    help: "Which version is running. 1 for 'server_version' label with current version.",
    labelNames: ["server_version"],
    registers: [this.registry],
  });
  /**
   * Client connections the member ended for an error, by H2CloseReason (lib/h2): a defence
   * (too_many_pings, rapid_reset, slow_reader, …) or a protocol violation. A client that resets
   * its own connection is logged at debug, not counted. etcd-ts only (issue 12).
   */
  readonly grpcConnectionErrorsTotal = new client.Counter({
    name: "etcd_ts_grpc_connection_errors_total",
    help: "Client connections closed by the member for an error, by reason.",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  /**
   * Client socket writes made by a libuv pool thread (lib/h2/write-offload.ts: the writes of a
   * fan-out, such as a put's event to watchers on several connections). Counts the process's, so
   * members sharing a process (tests) share it. etcd-ts only (issue 12).
   */
  readonly grpcPoolWritesTotal = new client.Counter({
    name: "etcd_ts_grpc_pool_writes_total",
    help: "Client socket writes made on the thread pool (fan-out bursts).",
    registers: [this.registry],
    collect: syncCounter(() => writeOffload.started),
  });
  /** etcd's name: the .snap file's save (etcd 3.4 snap.Snapshotter.SaveSnap). */
  readonly snapSaveTotalDurationSeconds = new client.Histogram({
    name: "etcd_debugging_snap_save_total_duration_seconds",
    help: "The total latency distributions of save called by snapshot.",
    buckets: fsyncBuckets,
    registers: [this.registry],
  });
  /** etcd's name: Maintenance.Defragment (etcd 3.4 backend.defrag). */
  readonly backendDefragDurationSeconds = new client.Histogram({
    name: "etcd_disk_backend_defrag_duration_seconds",
    help: "The latency distribution of backend defragmentation.",
    buckets: client.exponentialBuckets(0.1, 2, 13),
    registers: [this.registry],
  });
  /**
   * etcd-ts's periodic snapshot (and Defragment's): the whole of it (capture to WAL release), the
   * db file's write, and the bytes written. etcd has no such figures: its db is already on disk.
   */
  readonly snapshotDurationSeconds = new client.Histogram({
    name: "etcd_ts_snapshot_duration_seconds",
    help: "The latency distribution of snapshots: capture, db file, .snap file, WAL record and release.",
    buckets: client.exponentialBuckets(0.01, 2, 14),
    registers: [this.registry],
  });
  readonly snapshotDbWriteDurationSeconds = new client.Histogram({
    name: "etcd_ts_snapshot_db_write_duration_seconds",
    help: "The latency distribution of writing the db file of a snapshot (fsync and rename included).",
    buckets: client.exponentialBuckets(0.01, 2, 14),
    registers: [this.registry],
  });
  readonly snapshotDbWrittenBytesTotal = new client.Counter({
    name: "etcd_ts_snapshot_db_written_bytes_total",
    help: "Bytes of db files written by snapshots.",
    registers: [this.registry],
  });
  readonly snapshotDbInPlaceTotal = new client.Counter({
    name: "etcd_ts_snapshot_db_in_place_total",
    help: "Snapshots that extended the db file in place (its new records and the pages above them) instead of rewriting it.",
    registers: [this.registry],
  });
  readonly heartbeatSendFailuresTotal = new client.Counter({
    name: "etcd_server_heartbeat_send_failures_total",
    help: "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
    registers: [this.registry],
  });

  constructor() {
    this.serverVersionGauge.set({ server_version: serverVersion }, 1);
    client.collectDefaultMetrics({ register: this.registry });
  }

  /**
   * Feeds `wal`'s fsyncs into the WAL metrics (fsync duration, entries and bytes per group commit,
   * the counts behind the write and fsync totals) and warns on an fdatasync over 1 s, as etcd's
   * wal.warnSyncDuration. Replaces `onSync` on the WAL.
   */
  observeWal(wal: WAL, logger: Pick<Logger, "warn">): void {
    this.walStats = () => ({
      writes: wal.stats.writes,
      blockingWrites: wal.stats.blockingWrites,
      zeroFilledBytes: wal.fillAheadStats.filledBytes,
    });
    wal.onSync = (info) => {
      this.walFsyncDurationSeconds.observe(info.durationSeconds);
      // a segment cut syncs its header with no entries: not a group-commit batch
      if (info.entries > 0) {
        this.walEntriesPerFsync.observe(info.entries);
        this.walBytesPerFsync.observe(info.bytes);
      }
      const counts = this.counts;
      counts.walWriteBytes += info.bytes;
      counts.walFsyncs++;
      counts.walEntries += info.entries;
      if (info.durationSeconds > 1) {
        logger.warn(
          { tookSeconds: info.durationSeconds, entries: info.entries, bytes: info.bytes },
          "slow fdatasync",
        );
      }
    };
  }
}
