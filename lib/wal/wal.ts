/**
 * The write-ahead log: etcd v3.4's WAL (wal/wal.go) in etcd's on-disk format, with group commit.
 *
 * Layout: `walDir` (the data dir's `member/wal`) holds segments `%016x-%016x.wal`
 * (sequence-firstIndex). Each segment opens with a crc record (the running CRC carried over),
 * the metadata record, and (after the first) the latest hardState; then entry / hardState /
 * snapshot records. Segments are preallocated to `segmentSizeBytes` and cut once a write crosses
 * that size.
 */
import { copyFile, mkdir, open, rename, rm, type FileHandle } from "node:fs/promises";
import { closeSync, constants, openSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Entry, HardState } from "../proto/gen/raftpb/raft.js";
import type { Snapshot as WalSnapshot } from "../proto/gen/walpb/record.js";
import {
  decodeEntry,
  decodeHardState,
  decodeSnapshot,
  MAX_RECORD_BYTES,
  ProtoDecodeError,
  SegmentDecoder,
} from "./decoder.js";
import {
  entrySize,
  FrameWriter,
  hardStateSize,
  isEmptyHardState,
  marshalSnapshot,
  maxFrameSize,
  RecordType,
} from "./encoder.js";
import {
  WalClosedError,
  WalCorruptError,
  WalError,
  WalExistsError,
  WalInvalidArgumentError,
  WalInvariantError,
  WalIoError,
  WalMissingSegmentError,
  WalQueueFullError,
  WalSnapshotMismatchError,
  WalSnapshotNotFoundError,
} from "./errors.js";
import { failpoint } from "../failpoint/index.js";
import { createPreallocated, FilePipeline } from "./pipeline.js";
import { FillAhead } from "./fill-ahead.js";
import {
  datasync,
  datasyncSync,
  powerLossSimulated,
  releaseFd,
  writeAt,
  writeAtSync,
} from "./power-loss.js";
import {
  findSequenceGap,
  hasSegments,
  listSegments,
  parseWalName,
  searchIndex,
  walName,
  type SegmentName,
} from "./segments.js";

export type { WalSnapshot };

/** etcd's wal.SegmentSizeBytes: 64 * 1000 * 1000 bytes (decimal, as etcd). */
export const DEFAULT_SEGMENT_SIZE_BYTES = 64 * 1000 * 1000;
/** Default bound on saves waiting behind the one being written. */
export const DEFAULT_MAX_PENDING_SAVES = 100_000;
/** Default bound on the bytes one merged write may carry (a single larger save still goes alone). */
export const DEFAULT_MAX_BATCH_BYTES = 16 * 1024 * 1024;
/** etcd's --max-wals default: segment files kept by releaseLockTo's purge (0 keeps all). */
export const DEFAULT_MAX_WAL_FILES = 5;
/**
 * The largest batch written with blocking calls (syncWriteMaxEntries), in bytes: a blocking write
 * stalls the whole event loop for its write and fdatasync, which grow with its size.
 */
export const SYNC_WRITE_MAX_BYTES = 512 * 1024;
/** Default of WalOptions.fillAheadBytes. */
export const DEFAULT_FILL_AHEAD_BYTES = 8 * 1024 * 1024;
/**
 * Largest entry data a record can carry and still be read back: etcd's decoder refuses records of
 * 10 MiB (maxWALEntrySizeLimit) or more; 64 bytes cover the record and entry headers.
 */
const MAX_ENTRY_DATA_BYTES = MAX_RECORD_BYTES - 64;
/** An fdatasync slower than this is logged (etcd's warnSyncDuration). */
const WARN_SYNC_SECONDS = 1;
/** The encode buffer is kept between batches up to this size; larger ones are dropped after use. */
const RETAINED_BUFFER_BYTES = 4 * 1024 * 1024;

/** Structured logger the WAL reports to (pino-compatible subset). */
export interface WalLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** Options of WAL.create / WAL.open. */
export interface WalOptions {
  /** Preallocated segment size; a segment is cut once a write ends at or past it. Default 64,000,000. */
  segmentSizeBytes?: number;
  logger?: WalLogger;
  /** Saves allowed to wait behind the in-flight write before save() rejects with WalQueueFullError. */
  maxPendingSaves?: number;
  /** Upper bound of one merged write of queued saves, in bytes. Default 16 MiB. */
  maxBatchBytes?: number;
  /** Segment files kept on disk when releaseLockTo purges released ones (etcd --max-wals). 0 keeps all. */
  maxWalFiles?: number;
  /**
   * A merged write of at most this many entries (and at most SYNC_WRITE_MAX_BYTES) is written
   * and fdatasynced with blocking calls on the caller's thread instead of through the libuv thread
   * pool. At low concurrency nothing else is waiting for the event loop and the thread-pool round
   * trips are a large part of a put's latency; with writes in flight together (a cluster member)
   * a blocking write would serialise them. setSyncWriteMaxEntries changes it on an open WAL.
   * Default 0 (always asynchronous).
   */
  syncWriteMaxEntries?: number;
  /**
   * The blocking path of syncWriteMaxEntries is taken only while the previous durable write took
   * at most this long, in ms: on a slow or busy disk (fdatasyncs of tens of ms, as right after a
   * leader election on a shared disk) a blocking write would stall every client of the member
   * for that long, so small batches go asynchronous until a durable write is fast again.
   * Default 5.
   */
  syncWriteMaxLastSyncMs?: number;
  /**
   * Durable writes (merged batches) that may be in flight at once; 1 writes one batch at a time.
   * Concurrent O_DSYNC writes overlap in the disk's queue: on this project's test box (ext4 on a
   * virtual disk) 4 KiB appends went from ~1,700-3,900/s one at a time to ~5,900-6,200/s two at a
   * time. Saves still resolve in order. Default 2.
   */
  maxWritesInFlight?: number;
  /**
   * Bytes past the write position kept zero-filled in the background (fill-ahead.ts): appends
   * then overwrite allocated blocks, which an O_DSYNC write flushes without a journal commit.
   * 0 turns it off. Off under simulated power loss. Default 8 MiB.
   */
  fillAheadBytes?: number;
}

/** A torn record found at the end of the last segment: where and why. */
export interface TornTail {
  file: string;
  offsetBytes: number;
  reason: string;
}

interface ReadState {
  metadata: Uint8Array | null;
  state: HardState;
  entries: Entry[];
  lastIndex: number;
  crc: number;
  tailFh: FileHandle | null;
  tailOffset: number;
  match: boolean;
  torn: TornTail | null;
}

/** What WAL.open read back. */
export interface WalReadResult {
  /** The metadata record's bytes (etcd: a marshalled etcdserverpb.Metadata{NodeID, ClusterID}). */
  metadata: Uint8Array;
  /** The last hardState record read (all zeros if none). */
  hardState: HardState;
  /** Entries after `snapshot.index`, later records overriding earlier ones at the same index. */
  entries: Entry[];
  /** The walpb.Snapshot the read started from. */
  snapshot: WalSnapshot;
}

const noopLogger: WalLogger = { info() {}, warn() {} };

/** A batch's records, encoded (see WAL.#encode). */
interface EncodedBatch {
  buf: Buffer;
  fw: FrameWriter;
  mustSync: boolean;
  entryCount: number;
  hasSnapshot: boolean;
}

/** A queued call; `maxBytes` bounds its encoded size (computed once, at enqueue). */
type Pending =
  | {
      kind: "save";
      hardState: HardState | undefined;
      entries: Entry[];
      maxBytes: number;
      resolve(): void;
      reject(e: unknown): void;
    }
  | {
      kind: "snapshot";
      snapshot: WalSnapshot;
      maxBytes: number;
      resolve(): void;
      reject(e: unknown): void;
    };

function isUint(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** 2^64, the bound of a uint64 vote (a constant: `1n << 64n` made a BigInt on every save). */
const uint64Limit = 1n << 64n;

/** Checks a save's arguments; returns why they are unusable, or null. */
function invalidSave(hardState: HardState | undefined, entries: Entry[]): string | null {
  if (!Array.isArray(entries)) return "entries must be an array";
  for (const e of entries) {
    if (!isUint(e.index) || !isUint(e.term) || !isUint(e.type)) {
      return `entry index, term and type must be non-negative safe integers (index ${e.index}, term ${e.term})`;
    }
    if (!(e.data instanceof Uint8Array)) return `entry ${e.index} data must be a Uint8Array`;
    // A record etcd's decoder (and ours) would refuse to read back must never be written.
    if (e.data.length > MAX_ENTRY_DATA_BYTES) {
      return `entry ${e.index} data is ${e.data.length} bytes, over the ${MAX_ENTRY_DATA_BYTES}-byte WAL record limit`;
    }
  }
  if (hardState !== undefined) {
    const { term, vote, commit } = hardState;
    if (!isUint(term) || !isUint(commit))
      return "hardState term and commit must be non-negative safe integers";
    if (typeof vote !== "bigint" || vote < 0n || vote >= uint64Limit)
      return "hardState vote must be a uint64 bigint";
  }
  return null;
}

interface Tail {
  fh: FileHandle;
  path: string;
  seg: SegmentName;
  /**
   * A second descriptor on the same file opened with O_DSYNC, made on first use: a write through
   * it returns once its data is durable, like write + fdatasync, in ONE thread-pool job instead of
   * two. With two, the fdatasync cannot start until the main thread has run the write's
   * completion, which waits behind whatever request work that turn is doing.
   */
  dsyncFd: number | null;
}

interface ResolvedOptions {
  segmentSizeBytes: number;
  logger: WalLogger;
  maxPendingSaves: number;
  maxBatchBytes: number;
  maxWalFiles: number;
  fillAheadBytes: number;
  syncWriteMaxEntries: number;
  syncWriteMaxLastSyncMs: number;
  maxWritesInFlight: number;
}

function resolveOptions(opts: WalOptions | undefined): ResolvedOptions {
  const o: ResolvedOptions = {
    segmentSizeBytes: opts?.segmentSizeBytes ?? DEFAULT_SEGMENT_SIZE_BYTES,
    logger: opts?.logger ?? noopLogger,
    maxPendingSaves: opts?.maxPendingSaves ?? DEFAULT_MAX_PENDING_SAVES,
    maxBatchBytes: opts?.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES,
    maxWalFiles: opts?.maxWalFiles ?? DEFAULT_MAX_WAL_FILES,
    syncWriteMaxEntries: opts?.syncWriteMaxEntries ?? 0,
    syncWriteMaxLastSyncMs: opts?.syncWriteMaxLastSyncMs ?? 5,
    maxWritesInFlight: opts?.maxWritesInFlight ?? 2,
    fillAheadBytes: opts?.fillAheadBytes ?? DEFAULT_FILL_AHEAD_BYTES,
  };
  for (const k of [
    "segmentSizeBytes",
    "maxPendingSaves",
    "maxBatchBytes",
    "maxWritesInFlight",
  ] as const) {
    if (!Number.isSafeInteger(o[k]) || o[k] <= 0)
      throw new WalInvalidArgumentError(`${k} must be a positive integer`);
  }
  if (!Number.isSafeInteger(o.maxWalFiles) || o.maxWalFiles < 0) {
    throw new WalInvalidArgumentError("maxWalFiles must be a non-negative integer");
  }
  if (!Number.isSafeInteger(o.fillAheadBytes) || o.fillAheadBytes < 0) {
    throw new WalInvalidArgumentError("fillAheadBytes must be a non-negative integer");
  }
  if (!(o.syncWriteMaxLastSyncMs >= 0))
    throw new WalInvalidArgumentError("syncWriteMaxLastSyncMs must be a number >= 0");
  return o;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function isEnoent(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === "ENOENT";
}

/** Closes a tail's O_DSYNC descriptor, if it has one (errors ignored: its writes were synced). */
function closeDsync(tail: Tail): void {
  if (tail.dsyncFd === null) return;
  try {
    closeSync(tail.dsyncFd);
  } catch {
    // nothing was pending on it
  }
  tail.dsyncFd = null;
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * An open WAL positioned for appending. Obtain one with `WAL.create` or `WAL.open`.
 *
 * Writes go through one queue: `save` and `saveSnapshot` calls are written in call order; all calls
 * that arrive while a write + fdatasync is in flight are merged into the next single write and
 * single fdatasync (group commit, DESIGN §3), and each promise resolves once its own bytes are
 * written and, when they must be, synced. A failed write or sync poisons the WAL: every pending
 * and later call rejects with the same WalIoError (what reached the disk is unknown after a
 * failed fsync; etcd stops the member).
 */
export class WAL {
  /**
   * Counters since open: fdatasyncs (or O_DSYNC writes), entries and bytes written, the last
   * durable write's duration, the durable writes done with blocking calls (syncWriteMaxEntries),
   * and those started while another was in flight (maxWritesInFlight).
   */
  readonly stats = {
    fsyncs: 0,
    entries: 0,
    bytes: 0,
    lastFsyncSeconds: 0,
    blockingWrites: 0,
    overlappedWrites: 0,
    /** Batches written (fdatasynced or not; a segment cut's header not counted). */
    writes: 0,
  };
  /**
   * Changes syncWriteMaxEntries (see WalOptions) for the batches written from now on; the raft
   * loop sets it per Ready, as the member is or is not a lone voter. Throws
   * WalInvalidArgumentError unless `n` is a non-negative integer.
   */
  setSyncWriteMaxEntries(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0)
      throw new WalInvalidArgumentError("syncWriteMaxEntries must be a non-negative integer");
    this.#opts.syncWriteMaxEntries = n;
  }

  /**
   * The zero-filler's counts (fillAheadBytes): bytes filled ahead of the tail so far, and writes
   * that waited for a fill over their range. Zeros when it is off.
   */
  get fillAheadStats(): { filledBytes: number; writesWaited: number } {
    const f = this.#filler;
    return { filledBytes: f?.filledBytes ?? 0, writesWaited: f?.writesWaited ?? 0 };
  }
  /** Called after every fdatasync with its duration and the entries/bytes it made durable. */
  onSync?: (info: { durationSeconds: number; entries: number; bytes: number }) => void;

  #dir: string;
  #opts: ResolvedOptions;
  #tail: Tail;
  /** Write position in the tail segment: just past the last record. */
  #offsetBytes: number;
  /** Running CRC-32C after the last record written. */
  #crc: number;
  #metadata: Uint8Array;
  /** The last non-empty hardState written (written again at the head of every new segment). */
  #state: HardState;
  /** Index of the last entry written (etcd's enti); names the next segment. */
  #lastIndex: number;
  /** Segments this WAL still holds, oldest first; the last is the tail (etcd's locks). */
  #segments: SegmentName[];
  #pipeline: FilePipeline;
  /** Zero-fills the tail ahead of the write position; null when off. */
  #filler: FillAhead | null = null;
  #queue: Pending[] = [];
  #pump: Promise<void> | null = null;
  #failed: WalError | null = null;
  #closed = false;
  #closing: Promise<void> | null = null;
  /** Encode buffers not in use (one per write in flight at most). */
  #freeBufs: Buffer[] = [];
  /** Set while #drain waits for in-flight writes with nothing queued: wakes it for a new save. */
  #wakePump: (() => void) | null = null;
  /** Settles (never rejects) once the last batch started and all before it have settled. */
  #lastSettled: Promise<void> = Promise.resolve();
  /** Pipelined batches not yet settled (see #drain); one set for the WAL's life. */
  readonly #inFlight = new Set<Promise<void>>();

  private constructor(init: {
    dir: string;
    opts: ResolvedOptions;
    tail: Tail;
    offsetBytes: number;
    crc: number;
    metadata: Uint8Array;
    state: HardState;
    lastIndex: number;
    segments: SegmentName[];
  }) {
    this.#dir = init.dir;
    this.#opts = init.opts;
    this.#tail = init.tail;
    this.#offsetBytes = init.offsetBytes;
    this.#crc = init.crc;
    this.#metadata = init.metadata;
    this.#state = init.state;
    this.#lastIndex = init.lastIndex;
    this.#segments = init.segments;
    this.#pipeline = new FilePipeline(init.dir, init.opts.segmentSizeBytes);
    const ahead = init.opts.fillAheadBytes;
    if (ahead > 0 && !powerLossSimulated()) {
      this.#filler = new FillAhead({
        aheadBytes: ahead,
        chunkBytes: Math.min(1024 * 1024, Math.max(4096, Math.floor(ahead / 8 / 4096) * 4096)),
        segmentSizeBytes: init.opts.segmentSizeBytes,
        onError: (err, path) =>
          this.#opts.logger.warn(
            { file: path, err: String(err) },
            "wal: zero-filling ahead of the tail failed; appends go on into sparse space",
          ),
      });
      this.#filler.retarget({ fd: init.tail.fh.fd, path: init.tail.path }, init.offsetBytes);
    }
  }

  /** True when `walDir` holds any `.wal` file (etcd wal.Exist). */
  static exists(walDir: string): boolean {
    return hasSegments(walDir);
  }

  /**
   * Creates a new WAL in `walDir` (the `.../member/wal` directory) as etcd's wal.Create does: the
   * first segment `0000000000000000-0000000000000000.wal` is built in `walDir.tmp` (crc record 0,
   * the metadata record, snapshot {0,0}), synced, the directory renamed into place and its parent
   * fsynced, so a crash leaves either no WAL or a whole one. `metadata` is written at the head of
   * every segment. Throws WalExistsError if `walDir` already holds segments.
   */
  static async create(walDir: string, metadata: Uint8Array, opts?: WalOptions): Promise<WAL> {
    const o = resolveOptions(opts);
    if (hasSegments(walDir)) throw new WalExistsError(walDir);
    if (metadata.length > MAX_ENTRY_DATA_BYTES) {
      throw new WalInvalidArgumentError(
        `metadata of ${metadata.length} bytes is over the record limit`,
      );
    }
    const dir = walDir.replace(/\/+$/, "");
    const tmpDir = `${dir}.tmp`;
    await rm(tmpDir, { recursive: true, force: true });
    await mkdir(tmpDir, { recursive: true, mode: 0o700 });
    const name = walName(0, 0);
    const fh = await createPreallocated(join(tmpDir, name), o.segmentSizeBytes);
    let headerBytes: number;
    let crc: number;
    try {
      const snap = marshalSnapshot({ index: 0, term: 0 });
      const buf = Buffer.allocUnsafe(
        maxFrameSize(0) + maxFrameSize(metadata.length) + maxFrameSize(snap.length),
      );
      const fw = new FrameWriter(buf, 0, 0);
      fw.crcRecord(0);
      fw.bytes(RecordType.metadata, metadata);
      fw.bytes(RecordType.snapshot, snap);
      await writeAt(fh.fd, buf, 0, fw.pos, 0);
      await datasync(fh.fd);
      headerBytes = fw.pos;
      crc = fw.crc;
      // The segment's entry in the tmp dir must be durable before the rename publishes it.
      await fsyncDir(tmpDir);
      await rm(dir, { recursive: true, force: true });
      await rename(tmpDir, dir);
      // The rename lives in the parent (etcd fsyncs it); `member/` may itself be new, so its
      // entry in the data dir is synced too.
      await fsyncDir(dirname(dir));
      await fsyncDir(dirname(dirname(dir)));
    } catch (err) {
      releaseFd(fh.fd);
      await fh.close();
      throw err;
    }
    const seg = parseWalName(name)!;
    return new WAL({
      dir,
      opts: o,
      tail: { fh, path: join(dir, name), seg, dsyncFd: null },
      offsetBytes: headerBytes,
      crc,
      metadata: Uint8Array.from(metadata),
      state: { term: 0, vote: 0n, commit: 0 },
      lastIndex: 0,
      segments: [seg],
    });
  }

  /**
   * Opens the WAL in `walDir` and reads every record from the segment holding `opts.snapshot`
   * (default {index: 0, term: 0}) onwards, as etcd's wal.Open + ReadAll (+ Repair on a torn tail):
   *
   * - entries after the snapshot's index are returned; a later entry at an index overrides the
   *   earlier ones from there on (raft log truncation);
   * - a torn record at the end of the LAST segment (cut short, or unparsable / bad CRC with an
   *   all-zero sector, see decoder.ts) is cut off: the file is copied to `<segment>.broken`,
   *   zeroed from the last whole record on, synced, and the repair is logged with file and offset;
   * - anything else that fails a check throws WalCorruptError naming the file and byte offset;
   *   a gap in segment sequence numbers throws WalMissingSegmentError; no snapshot record with the
   *   requested index throws WalSnapshotNotFoundError, one with another term
   *   WalSnapshotMismatchError.
   *
   * Returns the WAL positioned to append after the last whole record, with the CRC chain resumed.
   */
  static async open(
    walDir: string,
    opts?: WalOptions & { snapshot?: WalSnapshot },
  ): Promise<{ wal: WAL } & WalReadResult> {
    const o = resolveOptions(opts);
    const dir = walDir.replace(/\/+$/, "");
    const start: WalSnapshot = {
      index: opts?.snapshot?.index ?? 0,
      term: opts?.snapshot?.term ?? 0,
    };
    const segs = await WAL.#select(dir, start, o.logger);
    await rm(join(dir, "0.tmp"), { force: true });
    await rm(join(dir, "1.tmp"), { force: true });
    const { metadata, state, entries, lastIndex, crc, tailFh, tailOffset, match } =
      await WAL.#readAll(dir, segs, start, true, o.logger);
    if (tailFh === null) throw new Error("wal: unreachable: no tail segment");
    try {
      if (!match) {
        throw new WalSnapshotNotFoundError(
          dir,
          start.index,
          start.term,
          "no snapshot record with its index",
        );
      }
      // etcd's ReadAll zeroes the tail from the last valid record on: a zero length word may be
      // followed by non-zero bytes of a torn write, which later appends would only partly cover.
      const sizeBytes = (await tailFh.stat()).size;
      if (sizeBytes > tailOffset) {
        await tailFh.truncate(tailOffset);
        await tailFh.truncate(sizeBytes);
        await tailFh.datasync();
      }
    } catch (err) {
      await tailFh.close();
      throw err;
    }
    const tailSeg = segs[segs.length - 1]!;
    const wal = new WAL({
      dir,
      opts: o,
      tail: { fh: tailFh, path: join(dir, tailSeg.name), seg: tailSeg, dsyncFd: null },
      offsetBytes: tailOffset,
      crc,
      metadata: metadata === null ? new Uint8Array(0) : Uint8Array.from(metadata),
      state,
      lastIndex,
      segments: segs,
    });
    return {
      wal,
      metadata: metadata ?? new Uint8Array(0),
      hardState: { ...state },
      entries,
      snapshot: start,
    };
  }

  /**
   * Reads a WAL without changing it (etcd's OpenForRead + ReadAll, as etcd-dump-logs and Verify
   * use): the same records, checks and errors as `open`, except that a torn tail of the last
   * segment is reported in `tornTail` (file and byte offset) instead of repaired, nothing is
   * truncated or zeroed, and no write handle or lock is kept. For offline tools (dump, verify)
   * and for inspecting a data dir another process may hold.
   */
  static async read(
    walDir: string,
    opts?: { snapshot?: WalSnapshot; logger?: WalLogger },
  ): Promise<WalReadResult & { tornTail: TornTail | null }> {
    const logger = opts?.logger ?? noopLogger;
    const dir = walDir.replace(/\/+$/, "");
    const start: WalSnapshot = {
      index: opts?.snapshot?.index ?? 0,
      term: opts?.snapshot?.term ?? 0,
    };
    const segs = await WAL.#select(dir, start, logger);
    const r = await WAL.#readAll(dir, segs, start, false, logger);
    if (!r.match) {
      throw new WalSnapshotNotFoundError(
        dir,
        start.index,
        start.term,
        "no snapshot record with its index",
      );
    }
    return {
      metadata: r.metadata ?? new Uint8Array(0),
      hardState: r.state,
      entries: r.entries,
      snapshot: start,
      tornTail: r.torn,
    };
  }

  /**
   * The snapshot records of every segment still in `walDir` whose index is at or below the last
   * hardState's commit (etcd 3.4's ValidSnapshotEntries), oldest first, with {0, 0} when the first
   * segment is the WAL's first: which raft snapshots a restart may start the WAL read from. Reads
   * without changing anything; a torn tail of the last segment ends the read; a CRC or parse
   * failure elsewhere throws WalCorruptError (file and offset), a sequence gap
   * WalMissingSegmentError.
   */
  static async validSnapshotEntries(
    walDir: string,
    opts?: {
      logger?: WalLogger;
      /** called before each segment is read: its path, its position and the segment count */
      onSegment?: (path: string, position: number, count: number) => void;
    },
  ): Promise<{ snapshots: WalSnapshot[]; hardState: HardState; lastIndex: number }> {
    const logger = opts?.logger ?? noopLogger;
    const dir = walDir.replace(/\/+$/, "");
    const segs = await listSegments(dir, (name) =>
      logger.warn({ dir, file: name }, "wal: ignored file in WAL directory"),
    );
    if (segs.length === 0) throw new WalSnapshotNotFoundError(dir, 0, 0, "no segments");
    const gap = findSequenceGap(segs);
    if (gap !== null) throw new WalMissingSegmentError(dir, gap.expected, gap.found);
    const snapshots: WalSnapshot[] = [];
    let state: HardState = { term: 0, vote: 0n, commit: 0 };
    let lastIndex = 0;
    let crc = 0;
    for (let k = 0; k < segs.length; k++) {
      const path = join(dir, segs[k]!.name);
      opts?.onSegment?.(path, k + 1, segs.length);
      const fh = await open(path, "r");
      try {
        const dec = new SegmentDecoder(fh, k === segs.length - 1);
        dec.crc = crc;
        for (;;) {
          const out = await dec.next();
          if (out.kind === "eof" || out.kind === "torn") break;
          if (out.kind === "corrupt") throw new WalCorruptError(path, out.offsetBytes, out.reason);
          const rec = out.record;
          try {
            if (rec.type === RecordType.snapshot) snapshots.push(decodeSnapshot(rec.data));
            else if (rec.type === RecordType.hardState) state = decodeHardState(rec.data);
            // only the last segment's entries matter for lastIndex (earlier ones are below them)
            else if (rec.type === RecordType.entry && k === segs.length - 1) {
              lastIndex = decodeEntry(rec.data).index;
            } else if (rec.type === RecordType.crc) {
              if (dec.crc !== 0 && rec.crc !== dec.crc) {
                throw new WalCorruptError(path, rec.offsetBytes, "crc record breaks the chain");
              }
              dec.crc = rec.crc;
            }
          } catch (err) {
            if (err instanceof ProtoDecodeError) {
              throw new WalCorruptError(path, rec.offsetBytes, `record data does not parse`);
            }
            throw err;
          }
        }
        crc = dec.crc;
      } finally {
        await fh.close();
      }
    }
    // a last segment without entries: its name says the next index it would hold
    lastIndex = Math.max(lastIndex, segs[segs.length - 1]!.index - 1);
    return {
      snapshots: snapshots.filter((s) => s.index <= state.commit),
      hardState: state,
      lastIndex,
    };
  }

  /**
   * The segments to read for `start` (etcd selectWALFiles): from the last one whose first index is
   * at or below `start.index`, checked for sequence gaps.
   */
  static async #select(dir: string, start: WalSnapshot, logger: WalLogger): Promise<SegmentName[]> {
    let all: SegmentName[];
    try {
      all = await listSegments(dir, (name) =>
        logger.warn({ dir, file: name }, "wal: ignored file in WAL directory"),
      );
    } catch (err) {
      if (!isEnoent(err)) throw err;
      all = [];
    }
    if (all.length === 0)
      throw new WalSnapshotNotFoundError(dir, start.index, start.term, "no segments");
    const first = searchIndex(all, start.index);
    if (first < 0) {
      throw new WalSnapshotNotFoundError(
        dir,
        start.index,
        start.term,
        "no segment starts at or before its index",
      );
    }
    const segs = all.slice(first);
    const gap = findSequenceGap(segs);
    if (gap !== null) throw new WalMissingSegmentError(dir, gap.expected, gap.found);
    return segs;
  }

  /**
   * Reads the records of `segs` in order, chaining the CRC across them (etcd ReadAll). With
   * `write`, the last segment is opened read-write, a torn tail is repaired and the handle is
   * returned for appending; without, nothing is modified, a torn tail ends the read and is
   * reported, and every handle is closed.
   */
  static async #readAll(
    dir: string,
    segs: SegmentName[],
    start: WalSnapshot,
    write: boolean,
    logger: WalLogger,
  ): Promise<ReadState> {
    let metadata: Uint8Array | null = null;
    let state: HardState = { term: 0, vote: 0n, commit: 0 };
    const entries: Entry[] = [];
    let lastIndex = 0;
    let match = false;
    let crc = 0;
    let tailFh: FileHandle | null = null;
    let tailOffset = 0;
    let torn: TornTail | null = null;

    for (let k = 0; k < segs.length; k++) {
      const isLast = k === segs.length - 1;
      const path = join(dir, segs[k]!.name);
      const fh = await open(path, isLast && write ? "r+" : "r");
      try {
        const dec = new SegmentDecoder(fh, isLast);
        dec.crc = crc;
        for (;;) {
          const out = await dec.next();
          if (out.kind === "eof") break;
          if (out.kind === "corrupt") throw new WalCorruptError(path, out.offsetBytes, out.reason);
          if (out.kind === "torn") {
            if (write) await WAL.#repairTornTail(fh, path, out.offsetBytes, out.reason, logger);
            torn = { file: path, offsetBytes: out.offsetBytes, reason: out.reason };
            break;
          }
          const rec = out.record;
          const corrupt = (reason: string) => new WalCorruptError(path, rec.offsetBytes, reason);
          try {
            switch (rec.type) {
              case RecordType.entry: {
                const e = decodeEntry(rec.data);
                if (e.index > start.index) {
                  const up = e.index - start.index - 1;
                  if (up > entries.length) {
                    throw corrupt(
                      `entry index ${e.index} leaves a gap after index ${start.index + entries.length}`,
                    );
                  }
                  entries.length = up;
                  entries.push(e);
                } else {
                  // Every append at index i truncates the log after i. etcd's ReadAll skips entries
                  // at or below the snapshot without truncating, which can hand back stale entries
                  // read earlier (an overwrite at i <= snapshot.index followed by no later entry).
                  entries.length = 0;
                }
                lastIndex = e.index;
                break;
              }
              case RecordType.hardState:
                state = decodeHardState(rec.data);
                break;
              case RecordType.metadata:
                if (metadata !== null && !equalBytes(metadata, rec.data))
                  throw corrupt("conflicting metadata");
                metadata = Uint8Array.from(rec.data); // a copy: rec.data is a view into the reader
                break;
              case RecordType.crc:
                // A fresh chain (first segment read) has nothing to compare with (etcd: crc != 0).
                if (dec.crc !== 0 && rec.crc !== dec.crc) {
                  throw corrupt(
                    `crc record ${rec.crc.toString(16)} does not continue the chain ${dec.crc.toString(16)}`,
                  );
                }
                dec.crc = rec.crc;
                break;
              case RecordType.snapshot: {
                const s = decodeSnapshot(rec.data);
                // As saveSnapshot does (etcd SaveSnapshot): the next segment is named past the
                // snapshot, so opening at this snapshot later finds the segment holding its record.
                // etcd's ReadAll skips this, and a cut after a restart can then hide the record.
                if (lastIndex < s.index) lastIndex = s.index;
                if (s.index === start.index) {
                  if (s.term !== start.term)
                    throw new WalSnapshotMismatchError(path, s.index, start.term, s.term);
                  match = true;
                }
                break;
              }
              default:
                throw corrupt(`unexpected record type ${rec.type}`);
            }
          } catch (err) {
            if (err instanceof ProtoDecodeError)
              throw corrupt(`record data does not parse: ${err.message}`);
            throw err;
          }
        }
        crc = dec.crc;
        if (isLast) tailOffset = dec.lastValidOffsetBytes;
        if (isLast && write) tailFh = fh;
      } catch (err) {
        await fh.close();
        throw err;
      }
      if (fh !== tailFh) await fh.close();
    }
    return { metadata, state, entries, lastIndex, crc, tailFh, tailOffset, match, torn };
  }

  /** etcd's Repair: keep a `.broken` copy, cut the file at the last whole record, sync, log it. */
  static async #repairTornTail(
    fh: FileHandle,
    path: string,
    offsetBytes: number,
    reason: string,
    logger: WalLogger,
  ): Promise<void> {
    const brokenPath = `${path}.broken`;
    await copyFile(path, brokenPath);
    await fh.truncate(offsetBytes);
    await fh.datasync();
    logger.warn(
      { file: path, offsetBytes, reason, brokenCopy: brokenPath },
      `wal: repaired torn tail of ${path}: truncated at byte offset ${offsetBytes} (${reason})`,
    );
  }

  /**
   * Appends `entries` then `hardState` (skipped when undefined or empty) as etcd's WAL.Save, in one
   * write. It is fdatasynced when raft requires it (raft.MustSync: there are entries, or term or
   * vote changed); a commit-only hardState is written without a sync, as etcd does. Cuts a new
   * segment when the write ends at or past `segmentSizeBytes`. Calls queue behind the one in flight
   * and are merged into the next write + sync. Rejects with WalInvalidArgumentError (nothing queued)
   * when an index, term, type or commit is not a non-negative safe integer or vote not a uint64,
   * with WalClosedError after close, with WalQueueFullError past `maxPendingSaves`, and with
   * WalIoError when the disk fails. The entries are encoded when their turn comes, not at the
   * call: do not mutate them (or their data) until the promise settles.
   */
  save(hardState: HardState | undefined, entries: Entry[]): Promise<void> {
    const bad = invalidSave(hardState, entries);
    if (bad !== null) return Promise.reject(new WalInvalidArgumentError(bad));
    let maxBytes = 0;
    for (const e of entries) maxBytes += maxFrameSize(entrySize(e));
    if (hardState !== undefined) maxBytes += maxFrameSize(hardStateSize(hardState));
    return new Promise((resolve, reject) => {
      this.#enqueue({ kind: "save", hardState, entries, maxBytes, resolve, reject });
    });
  }

  /**
   * Appends a snapshot record (etcd WAL.SaveSnapshot) and syncs: marks that a raft snapshot at
   * `snapshot.index` exists, so a later open may start from it. Same queue and errors as save.
   */
  saveSnapshot(snapshot: WalSnapshot): Promise<void> {
    if (!isUint(snapshot.index) || !isUint(snapshot.term)) {
      return Promise.reject(
        new WalInvalidArgumentError("snapshot index and term must be non-negative safe integers"),
      );
    }
    const s = { index: snapshot.index, term: snapshot.term };
    return new Promise((resolve, reject) => {
      this.#enqueue({
        kind: "snapshot",
        snapshot: s,
        maxBytes: maxFrameSize(marshalSnapshot(s).length),
        resolve,
        reject,
      });
    });
  }

  #enqueue(p: Pending): void {
    if (this.#failed !== null) return p.reject(this.#failed);
    if (this.#closed) return p.reject(new WalClosedError());
    if (this.#queue.length >= this.#opts.maxPendingSaves)
      return p.reject(new WalQueueFullError(this.#opts.maxPendingSaves));
    this.#queue.push(p);
    if (this.#pump === null) this.#pump = this.#drain();
    else this.#wakePump?.();
  }

  /**
   * Writes queued saves in merged batches. A batch whose write returns only once it is durable
   * (the O_DSYNC path, see #pipelinable) starts while up to maxWritesInFlight - 1 earlier ones
   * are still in flight, each in its own buffer at its own offset, so concurrent durable writes
   * overlap in the disk's queue instead of each waiting for the previous one. Batches settle in
   * order: a save resolves only once it and every save queued before it are durable. After a power
   * loss a later batch may be on disk while an earlier one is not; it then lies past a zero length
   * word (the preallocated space the earlier batch never filled), which ends the segment when read,
   * and open() zeroes the tail from there before appending. Any other batch (a segment cut, a
   * snapshot record, the blocking path) waits for every earlier one first. One async call per
   * pump (a save with nothing queued or in flight starts one): the passes over the queue are
   * inline, and the blocking path's write has no await.
   */
  async #drain(): Promise<void> {
    const inFlight = this.#inFlight;
    for (;;) {
      while (this.#queue.length > 0 && this.#failed === null) {
        while (inFlight.size >= this.#opts.maxWritesInFlight) await Promise.race(inFlight);
        if (this.#failed !== null) break;
        const batch = this.#takeBatch();
        let enc: EncodedBatch;
        try {
          enc = this.#encode(batch);
        } catch (err) {
          await this.#lastSettled;
          this.#fail(err, batch);
          break;
        }
        if (this.#pipelinable(enc)) {
          this.#startSettling(enc, batch);
          continue;
        }
        await this.#lastSettled;
        if (this.#failed !== null) {
          this.#releaseBuffer(enc.buf);
          for (const p of batch) p.reject(this.#failed);
          break;
        }
        try {
          const written = this.#writeEncoded(enc);
          if (written !== undefined) await written;
        } catch (err) {
          this.#fail(err, batch);
          break;
        } finally {
          this.#releaseBuffer(enc.buf);
        }
        for (const p of batch) p.resolve();
      }
      if (this.#failed !== null) break;
      if (this.#queue.length > 0) continue;
      // nothing in flight: every batch has settled (a pipelined one leaves #inFlight only once
      // its promise has), so there is nothing to wait for; no await between the queue check
      // above and #pump = null: a save queued after it starts a new pump. Every path through
      // the loop has awaited by now, so #drain never finishes inside #enqueue's call.
      if (inFlight.size === 0) break;
      // writes in flight, nothing queued: a save queued now may start at once (#enqueue wakes us)
      await new Promise<void>((resolve) => {
        this.#wakePump = resolve;
        void Promise.race(inFlight).then(() => resolve());
      });
      this.#wakePump = null;
    }
    if (this.#failed !== null) for (const p of this.#queue.splice(0)) p.reject(this.#failed);
    this.#pump = null;
  }

  /**
   * Starts a pipelined batch's write; it settles (#lastSettled, #inFlight) once it and every
   * earlier batch have, resolving or rejecting the batch's saves.
   */
  #startSettling(enc: EncodedBatch, batch: Pending[]): void {
    const inFlight = this.#inFlight;
    if (inFlight.size > 0) this.stats.overlappedWrites++;
    const write = this.#startPipelinedWrite(enc);
    const after = this.#lastSettled;
    const settled = (async () => {
      let error: unknown;
      try {
        await write;
      } catch (err) {
        error = err;
      }
      this.#releaseBuffer(enc.buf);
      await after; // never rejects
      if (error !== undefined && this.#failed === null) this.#fail(error, []);
      if (this.#failed !== null) for (const p of batch) p.reject(this.#failed);
      else for (const p of batch) p.resolve();
    })();
    inFlight.add(settled);
    void settled.finally(() => inFlight.delete(settled));
    this.#lastSettled = settled;
  }

  /** Marks the WAL failed (first error wins), logs it, and rejects `batch`. */
  #fail(err: unknown, batch: Pending[]): void {
    if (this.#failed === null) {
      this.#failed = err instanceof WalError ? err : new WalIoError("write", this.#tail.path, err);
      this.#opts.logger.warn(
        { file: this.#tail.path, err: String(err) },
        "wal: write failed; WAL refuses further writes",
      );
    }
    for (const p of batch) p.reject(this.#failed);
  }

  /** Takes queued calls from the front, up to maxBatchBytes (always at least one). */
  #takeBatch(): Pending[] {
    let bytes = 0;
    let n = 0;
    while (n < this.#queue.length) {
      const b = this.#queue[n]!.maxBytes;
      if (n > 0 && bytes + b > this.#opts.maxBatchBytes) break;
      bytes += b;
      n++;
    }
    return this.#queue.splice(0, n);
  }

  /** A buffer of at least `bytes`: a free retained one, or a new one (kept if small enough). */
  #takeBuffer(bytes: number): Buffer {
    const free = this.#freeBufs;
    for (let i = free.length - 1; i >= 0; i--) {
      const buf = free[i]!;
      if (buf.length < bytes) continue;
      free[i] = free[free.length - 1]!; // order does not matter; splice would make an array
      free.pop();
      return buf;
    }
    return Buffer.allocUnsafe(Math.max(bytes, 64 * 1024));
  }

  #releaseBuffer(buf: Buffer): void {
    if (buf.length <= RETAINED_BUFFER_BYTES && this.#freeBufs.length < this.#opts.maxWritesInFlight)
      this.#freeBufs.push(buf);
  }

  /**
   * Encodes a batch's records into a buffer of its own (the running CRC, lastIndex and the last
   * hardState move on at once: the next batch encodes after this one, whatever its write does).
   */
  #encode(batch: Pending[]): EncodedBatch {
    let estimate = 0;
    for (const p of batch) estimate += p.maxBytes;
    const buf = this.#takeBuffer(estimate);
    const fw = new FrameWriter(buf, 0, this.#crc);
    let mustSync = false;
    let entryCount = 0;
    let hasSnapshot = false;
    for (const p of batch) {
      if (p.kind === "snapshot") {
        fw.bytes(RecordType.snapshot, marshalSnapshot(p.snapshot));
        if (this.#lastIndex < p.snapshot.index) this.#lastIndex = p.snapshot.index;
        mustSync = true;
        hasSnapshot = true;
        continue;
      }
      for (const e of p.entries) {
        fw.entry(e);
        this.#lastIndex = e.index;
      }
      entryCount += p.entries.length;
      if (p.entries.length > 0) mustSync = true;
      const hs = p.hardState;
      if (hs !== undefined && !isEmptyHardState(hs)) {
        if (hs.term !== this.#state.term || hs.vote !== this.#state.vote) mustSync = true;
        fw.hardState(hs);
        this.#state = { term: hs.term, vote: hs.vote, commit: hs.commit };
      }
    }
    if (fw.pos > estimate)
      throw new WalInvariantError(`encoded ${fw.pos} bytes past the estimate ${estimate}`);
    return { buf, fw, mustSync, entryCount, hasSnapshot };
  }

  /**
   * Whether `enc` may be written while earlier batches are in flight: a save of records that must
   * be durable (one O_DSYNC write; write + fdatasync under simulated power loss), that stays
   * inside the tail segment, when the blocking path does not apply.
   */
  #pipelinable(enc: EncodedBatch): boolean {
    return (
      this.#opts.maxWritesInFlight > 1 &&
      enc.mustSync &&
      !enc.hasSnapshot &&
      enc.fw.pos > 0 &&
      this.#offsetBytes + enc.fw.pos < this.#opts.segmentSizeBytes &&
      !this.#blockingPath(enc.entryCount, enc.fw.pos)
    );
  }

  /**
   * The blocking path of syncWriteMaxEntries applies to a batch of `entryCount` entries, `bytes`
   * long (see SYNC_WRITE_MAX_BYTES).
   */
  #blockingPath(entryCount: number, bytes: number): boolean {
    return (
      entryCount <= this.#opts.syncWriteMaxEntries &&
      bytes <= SYNC_WRITE_MAX_BYTES &&
      this.stats.lastFsyncSeconds * 1000 <= this.#opts.syncWriteMaxLastSyncMs
    );
  }

  /**
   * Starts `enc`'s write at the tail's offset (one O_DSYNC write, or write + fdatasync under
   * simulated power loss) and moves the offset past it now; the returned promise settles when the
   * bytes are durable (#writeSynced, whose failpoints it reaches, then walAfterSync).
   */
  #startPipelinedWrite(enc: EncodedBatch): Promise<void> {
    const tail = this.#tail;
    const at = this.#offsetBytes;
    const n = enc.fw.pos;
    const fill = this.#filler?.clear(at + n) ?? null;
    this.#wrote(enc.fw, enc.entryCount);
    const t0 = process.hrtime.bigint();
    return (async () => {
      if (fill !== null) await fill;
      await this.#writeSynced(tail, enc.buf, n, at, failpoint("walBeforeWrite"));
      this.#synced(tail, Number(process.hrtime.bigint() - t0) / 1e9, enc.entryCount, n);
      failpoint("walAfterSync");
    })();
  }

  /**
   * Writes an encoded batch with nothing else in flight (the sequential paths). The blocking path
   * (and an empty batch) completes before it returns, and returns undefined: no promise and no
   * microtask turn per save there; otherwise the returned promise settles when the write does.
   */
  #writeEncoded(enc: EncodedBatch): Promise<void> | undefined {
    if (enc.fw.pos === 0) return undefined;
    const fill = this.#filler?.clear(this.#offsetBytes + enc.fw.pos) ?? null;
    if (fill === null && this.#writesBlocking(enc)) {
      this.#writeEncodedBlocking(enc);
      return undefined;
    }
    return this.#writeEncodedAsync(enc, fill);
  }

  /** Whether #writeEncoded takes the blocking path (see syncWriteMaxEntries) for `enc`. */
  #writesBlocking(enc: EncodedBatch): boolean {
    return (
      enc.mustSync &&
      this.#offsetBytes + enc.fw.pos < this.#opts.segmentSizeBytes &&
      this.#blockingPath(enc.entryCount, enc.fw.pos)
    );
  }

  /** #writeEncoded's blocking path: a blocking write and fdatasync, then the bookkeeping. */
  #writeEncodedBlocking(enc: EncodedBatch): void {
    const tail = this.#tail;
    const dropWrite = failpoint("walBeforeWrite");
    const t0 = process.hrtime.bigint();
    this.#writeBlocking(tail, enc.buf, enc.fw.pos, dropWrite);
    this.#wrote(enc.fw, enc.entryCount);
    this.#synced(tail, Number(process.hrtime.bigint() - t0) / 1e9, enc.entryCount, enc.fw.pos);
    failpoint("walAfterSync");
  }

  /** #writeEncoded's paths that wait: a zero-fill to finish, a write, a sync or a segment cut. */
  async #writeEncodedAsync(enc: EncodedBatch, fill: Promise<void> | null): Promise<void> {
    const { buf, fw, mustSync, entryCount } = enc;
    if (fill !== null) await fill;
    if (this.#writesBlocking(enc)) return this.#writeEncodedBlocking(enc);
    const tail = this.#tail;
    const dropWrite = failpoint("walBeforeWrite");
    if (mustSync && this.#offsetBytes + fw.pos < this.#opts.segmentSizeBytes) {
      const t0 = process.hrtime.bigint();
      await this.#writeSynced(tail, buf, fw.pos, this.#offsetBytes, dropWrite);
      this.#wrote(fw, entryCount);
      this.#synced(tail, Number(process.hrtime.bigint() - t0) / 1e9, entryCount, fw.pos);
      failpoint("walAfterSync");
      return;
    }
    if (!dropWrite) {
      try {
        await writeAt(tail.fh.fd, buf, 0, fw.pos, this.#offsetBytes);
      } catch (err) {
        throw new WalIoError("write", tail.path, err);
      }
    }
    failpoint("walAfterWrite");
    this.#wrote(fw, entryCount);
    if (this.#offsetBytes >= this.#opts.segmentSizeBytes) {
      await this.#cut(entryCount, fw.pos);
    } else if (mustSync) {
      await this.#sync(tail, entryCount, fw.pos);
    }
  }

  /**
   * Writes `buf[0, n)` at byte `at` of the tail and makes it durable, off the event loop: as one
   * O_DSYNC write (see Tail.dsyncFd), or as a write and an fdatasync when power loss is simulated
   * (the kept bytes need the sync call). The blocking path for small batches is #writeBlocking.
   * Failpoints: walAfterWrite and walBeforeSync between the write and the sync, or both before the
   * one O_DSYNC write; `dropWrite` (walBeforeWrite=drop) skips the write, walBeforeSync=drop the
   * sync.
   */
  async #writeSynced(
    tail: Tail,
    buf: Buffer,
    n: number,
    at: number,
    dropWrite: boolean,
  ): Promise<void> {
    const fd = tail.fh.fd;
    if (powerLossSimulated()) {
      try {
        if (!dropWrite) await writeAt(fd, buf, 0, n, at);
      } catch (err) {
        throw new WalIoError("write", tail.path, err);
      }
      failpoint("walAfterWrite");
      const skipSync = failpoint("walBeforeSync");
      try {
        if (!skipSync) await datasync(fd);
      } catch (err) {
        throw new WalIoError("fdatasync", tail.path, err);
      }
      return;
    }
    const skipSync = failpoint("walBeforeSync");
    try {
      if (skipSync && !dropWrite) await writeAt(fd, buf, 0, n, at);
      else if (!dropWrite) {
        tail.dsyncFd ??= openSync(tail.path, constants.O_WRONLY | constants.O_DSYNC);
        await writeAt(tail.dsyncFd, buf, 0, n, at);
      }
    } catch (err) {
      throw new WalIoError("write", tail.path, err);
    }
    failpoint("walAfterWrite");
  }

  /** #writeSynced's blocking path (see syncWriteMaxEntries): a blocking write, then fdatasync. */
  #writeBlocking(tail: Tail, buf: Buffer, n: number, dropWrite: boolean): void {
    const fd = tail.fh.fd;
    this.stats.blockingWrites++;
    try {
      if (!dropWrite) writeAtSync(fd, buf, 0, n, this.#offsetBytes);
    } catch (err) {
      throw new WalIoError("write", tail.path, err);
    }
    failpoint("walAfterWrite");
    const skipSync = failpoint("walBeforeSync");
    try {
      if (!skipSync) datasyncSync(fd);
    } catch (err) {
      throw new WalIoError("fdatasync", tail.path, err);
    }
  }

  /** Bookkeeping after a batch's bytes are in the file: tail offset, running CRC, stats. */
  #wrote(fw: FrameWriter, entryCount: number): void {
    this.#offsetBytes += fw.pos;
    this.#crc = fw.crc;
    this.stats.writes++;
    this.stats.bytes += fw.pos;
    this.stats.entries += entryCount;
    this.#filler?.maybeStart();
  }

  async #sync(tail: Tail, entries: number, bytes: number): Promise<void> {
    const skipSync = failpoint("walBeforeSync");
    const t0 = process.hrtime.bigint();
    try {
      if (!skipSync) await datasync(tail.fh.fd);
    } catch (err) {
      throw new WalIoError("fdatasync", tail.path, err);
    }
    this.#synced(tail, Number(process.hrtime.bigint() - t0) / 1e9, entries, bytes);
    failpoint("walAfterSync");
  }

  /** Bookkeeping after an fdatasync: stats, slow-sync warning, the onSync hook. */
  #synced(tail: Tail, durationSeconds: number, entries: number, bytes: number): void {
    this.stats.fsyncs++;
    this.stats.lastFsyncSeconds = durationSeconds;
    if (durationSeconds > WARN_SYNC_SECONDS) {
      this.#opts.logger.warn(
        { file: tail.path, tookSeconds: durationSeconds },
        "wal: slow fdatasync",
      );
    }
    try {
      this.onSync?.({ durationSeconds, entries, bytes });
    } catch (err) {
      // A metrics hook must not poison the log.
      this.#opts.logger.warn({ err: String(err) }, "wal: onSync hook threw");
    }
  }

  /**
   * etcd's cut: trim and sync the full segment, take the prepared file, write the crc record
   * (running CRC), metadata and latest hardState at its head, sync it, rename it to
   * `<seq+1>-<lastIndex+1>.wal` and fsync the directory.
   */
  async #cut(entries: number, bytes: number): Promise<void> {
    const old = this.#tail;
    // a fill in flight on the old segment would extend it again after the truncate
    await this.#filler?.detach();
    try {
      await old.fh.truncate(this.#offsetBytes);
    } catch (err) {
      throw new WalIoError("truncate", old.path, err);
    }
    await this.#sync(old, entries, bytes);

    let prepared;
    try {
      prepared = await this.#pipeline.take();
    } catch (err) {
      throw new WalIoError("preallocate", join(this.#dir, "*.tmp"), err);
    }
    const name = walName(old.seg.seq + 1, this.#lastIndex + 1);
    const path = join(this.#dir, name);
    const head = Buffer.allocUnsafe(
      maxFrameSize(0) + maxFrameSize(this.#metadata.length) + maxFrameSize(40),
    );
    const fw = new FrameWriter(head, 0, this.#crc);
    fw.crcRecord(this.#crc);
    fw.bytes(RecordType.metadata, this.#metadata);
    if (!isEmptyHardState(this.#state)) fw.hardState(this.#state);
    const next: Tail = { fh: prepared.fh, path, seg: parseWalName(name)!, dsyncFd: null };
    try {
      await writeAt(prepared.fh.fd, head, 0, fw.pos, 0);
    } catch (err) {
      throw new WalIoError("write", prepared.path, err);
    }
    await this.#sync({ ...next, path: prepared.path }, 0, fw.pos);
    failpoint("walBeforeSegmentRename");
    try {
      await rename(prepared.path, path);
      await fsyncDir(this.#dir);
    } catch (err) {
      throw new WalIoError("rename", path, err);
    }
    failpoint("walAfterSegmentRename");
    this.stats.bytes += fw.pos;
    this.#tail = next;
    this.#offsetBytes = fw.pos;
    this.#crc = fw.crc;
    this.#segments.push(next.seg);
    this.#filler?.retarget({ fd: next.fh.fd, path }, fw.pos);
    closeDsync(old);
    releaseFd(old.fh.fd);
    await old.fh.close().catch(() => {});
    this.#opts.logger.info({ path }, "wal: created a new WAL segment");
  }

  /**
   * Releases the segments that hold only entries before `index` (etcd ReleaseLockTo: of the
   * segments whose first index is below `index`, all but the newest are released; the tail is never
   * released), then purges released segment files, oldest first, while more than `maxWalFiles`
   * segment files exist (etcd's purge loop with --max-wals). Call it after a snapshot at `index`
   * is durable.
   */
  async releaseLockTo(index: number): Promise<void> {
    const segs = this.#segments;
    let smaller = segs.length - 1;
    for (let i = 0; i < segs.length; i++) {
      if (segs[i]!.index >= index) {
        smaller = i - 1;
        break;
      }
    }
    if (smaller > 0) segs.splice(0, smaller);
    if (this.#opts.maxWalFiles === 0) return;
    const held = new Set(segs.map((s) => s.name));
    const all = await listSegments(this.#dir);
    let excess = all.length - this.#opts.maxWalFiles;
    if (excess > 0) failpoint("walBeforePurge");
    let removed = false;
    for (const s of all) {
      if (excess <= 0 || held.has(s.name)) break;
      await rm(join(this.#dir, s.name), { force: true });
      this.#opts.logger.info({ path: join(this.#dir, s.name) }, "wal: purged released segment");
      excess--;
      removed = true;
    }
    if (removed) await fsyncDir(this.#dir);
  }

  /**
   * Waits for queued saves, stops the segment pipeline (removing its prepared file), syncs the tail
   * and closes it (etcd WAL.Close). Later saves reject with WalClosedError. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing === null) {
      this.#closed = true;
      this.#closing = this.#close();
    }
    return this.#closing;
  }

  async #close(): Promise<void> {
    while (this.#pump !== null) await this.#pump;
    await this.#filler?.stop();
    await this.#pipeline.close();
    closeDsync(this.#tail);
    if (this.#failed !== null) {
      // The failure was reported to every save; closing a descriptor in an unknown state may fail
      // too, and there is nothing more to tell.
      releaseFd(this.#tail.fh.fd);
      await this.#tail.fh.close().catch(() => {});
      return;
    }
    try {
      await datasync(this.#tail.fh.fd);
    } finally {
      await this.#tail.fh.close();
    }
  }
}
