/**
 * Periodic snapshots of a member (DESIGN §3 step 5), as etcd 3.4's triggerSnapshot / snapshot /
 * purgeFile: every `snapshotCount` applied entries (spaced further apart while the db is large,
 * see walPercentOfDb, and at most maxBusyPercent of the time, see #nextAllowedMs), capture the
 * state at the applied index (mvcc's O(1) snapshot, copies of the small tables), then, while
 * writes keep flowing:
 *
 * 1. write `member/snap/db` from that capture: planned in steps and streamed in chunks with the
 *    event loop free in between, to `db.tmp`, fsync, rename over `db`, fsync the directory. Or,
 *    when the db file this snapshotter wrote last (or, for the first snapshot, the one the member
 *    started from: its layout is read back from it) is still in place and the store only
 *    appended records since (no compaction, no restore), extend it in place as a bbolt commit
 *    does: only the new records' leaves and the pages above them, on pages the file's current
 *    meta does not reach, fdatasync, then the new meta, fdatasync (lib/btree's in-place
 *    commits). A snapshot then writes what changed, not the whole db; the first after a
 *    compaction, a received snapshot or a failure, every Defragment, and the first after a start
 *    from a file that cannot be extended (one with bbolt's freelist page) rewrite the whole file;
 * 2. write `member/snap/<term>-<index>.snap` (raftpb.Snapshot with the v2 store JSON real etcd 3.4
 *    reads its members from);
 * 3. append the WAL's hardState + snapshot record (etcd's WAL.SaveSnapshot) and fsync;
 * 4. compact raft's in-memory log (keeping a catch-up window), release the WAL segments wholly
 *    before the snapshot and purge them beyond --max-wals; purge .snap files beyond
 *    --max-snapshots.
 *
 * Order matters for crashes (each step is a failpoint, lib/failpoint/points.ts): the db is always
 * at or ahead of the newest .snap, and a .snap counts only once its WAL record exists, so a restart
 * after a crash anywhere finds a db, a snapshot the WAL has, and the entries after it
 * (recovery.ts). A failed snapshot (disk full) is logged, its temp file removed, and retried after
 * `retryAfterMs`; the member keeps serving from memory and nothing acknowledged is lost (it is all
 * in the WAL, which is released only after a snapshot succeeds).
 *
 * A capture never reaches past the local WAL: a follower applies committed entries while its own
 * write of them is still in flight, and a db renamed into place ahead of the WAL before a crash
 * would make recovery refuse to start. So a snapshot due while the applied index is past the
 * durable index waits for the save to end (etcd 3.4's applyAll waits on the raft loop's notifyc
 * before triggerSnapshot), and captures then.
 */
import { closeSync, fstatSync, openSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import type { ConfState } from "../proto/gen/raftpb/raft.js";
import type { DbFileState } from "./db-file.js";
import { planDbFile } from "./snapshot-transfer.js";
import {
  BoltFile,
  BoltFileWriter,
  type BoltAppendBase,
  type BoltPageWrite,
} from "../btree/index.js";
import { etcdDbBuckets } from "./db-file.js";
import { failpoint } from "../failpoint/index.js";
import { datasync, releaseFd, writeAt } from "../wal/index.js";
import { dbFilePath, dbTempSuffix, fileByteSource, snapDirPath } from "./recovery.js";
import { fsyncDir, purgeSnapFiles, writeSnapFile, type SnapLogger } from "./snap-file.js";
import { encodeV2StoreSnapshot } from "./v2-store.js";
import { DbValueFile } from "./value-file.js";
import { runInTurns, yieldWhenDue } from "./turns.js";

/** etcd's snapshotCatchUpEntries: entries kept in raft's log after a snapshot for slow followers. */
export const snapshotCatchUpEntries = 5_000;
/**
 * Work per event-loop turn while a snapshot is written: records planned per step and bytes encoded
 * per chunk (each well under a millisecond on a quiet machine), so puts are not held up behind the snapshot.
 */
const planEntriesPerStep = 1_024;
/**
 * Pages of the db file visited per step when the first snapshot after a start reads the file's
 * layout (#loadedBase): ~32 leaves, each two small reads of its headers, about a thousand records.
 */
const planPagesPerStep = 32;
const writeChunkBytes = 64 * 1024;
/**
 * The db file is fdatasynced each time this many more bytes were written, not only at the end:
 * a whole db's dirty pages flushed at once (hundreds of MB at 1M keys) held the WAL's
 * fdatasyncs, which wait for the same ext4 journal commit, for tens of ms (puts' slowest 69 ms
 * during snapshots against 21 ms without, at 100k keys and 128 clients). Overridable for
 * benchmarks with ETCD_TS_SNAPSHOT_SYNC_EVERY_BYTES (0: only at the end).
 */
const dbSyncEveryBytes = Number(process.env.ETCD_TS_SNAPSHOT_SYNC_EVERY_BYTES ?? 2 * 1024 * 1024);
/**
 * Rows checked, then re-pointed at the new db file, per event-loop turn once it is durable (the
 * check of every row, like the move, is stepped: stores hold millions of records).
 */
const moveRowsPerStep = 8_192;
/**
 * walPercentOfDb counts the db's size beyond this: a db this small is rewritten in tens of ms, so
 * small stores (and tests with a small --snapshot-count) snapshot every snapshotCount entries.
 */
const deferDbBytesFloor = 16 * 1024 * 1024;
/**
 * A periodic snapshot is never deferred past this many entries (etcd 3.4's default
 * --snapshot-count): raft's in-memory log and a restart's replay stay within what etcd 3.4 has.
 */
const maxDeferredEntries = 100_000;
/** A failed snapshot is tried again after this long. */
const retryAfterMs = 5_000;

/** What the member hands the snapshotter: a capture at one instant, and the WAL steps. */
export interface SnapshotHost {
  /**
   * The state at the applied index, synchronously: the db contents, the index and its term,
   * and raft's conf state.
   */
  capture(): { state: DbFileState; term: number; confState: ConfState };
  /** The member's applied index now (checked again when a snapshot ends). */
  appliedIndex(): number;
  /**
   * The member is applying again entries its db already holds (Applier.replayingDb): its state is
   * ahead of the applied index and must not be captured.
   */
  replayingDb(): boolean;
  /** Index of the last entry the local WAL holds durably (RaftNode.durableIndex). */
  durableIndex(): number;
  /** Writes the newest hardState and a WAL snapshot record at (index, term), fsynced. */
  saveWalSnapshot(index: number, term: number): Promise<void>;
  /** Compacts raft's in-memory log to `index` and releases the WAL segments before `index`. */
  releaseTo(index: number): Promise<void>;
}

/**
 * The db file the member started from (recovery.ts), which its first snapshot may extend in place
 * rather than rewrite: the store history its records were loaded into and how many (the key
 * bucket's entries, in order), the DbValueFile the store reads their values through, and the
 * file's inode. Its layout is read from the file when that snapshot comes (#loadedBase).
 */
export interface LoadedDbFile {
  history: object | undefined;
  recordCount: number;
  valueFile: DbValueFile | undefined;
  ino: number;
}

/** The db file a snapshot can extend in place (Snapshotter #inPlace): one known, with its layout. */
interface InPlace extends LoadedDbFile {
  history: object;
  base: BoltAppendBase;
}

/** Options of Snapshotter. */
export interface SnapshotterOptions {
  dataDir: string;
  /** --snapshot-count: applied entries between snapshots */
  snapshotCount: number;
  /**
   * The largest share of the time periodic snapshots may take, in percent (1-100): after one that
   * took d, the next waits at least d × (100 / percent − 1). Default 50 (as long as it took).
   */
  maxBusyPercent?: number;
  /**
   * A periodic snapshot also waits until the entry bytes applied since the last one reach this
   * percent of the db file's size beyond its first 16 MiB (deferDbBytesFloor), up to
   * max(snapshotCount, 100,000) entries (maxDeferredEntries), when it would rewrite the whole db
   * (one that extends the file in place does not wait). Rewritten every snapshotCount entries, a
   * store of 100 MB wrote about 7 KB of db per 350-byte put (28 snapshots of ~100 MB over 400,000
   * puts at 16 clients, a third of the member's CPU per put); with 50 the db bytes written stay
   * near 2x the entry bytes. Raft's in-memory log does not grow
   * with the spacing (it is compacted on its own, RaftNode), the WAL and a restart's replay do,
   * within the cap. 0: every snapshotCount entries, as etcd. Default 0 here (the member's default
   * is in config.ts).
   */
  walPercentOfDb?: number;
  /** --max-snapshots: .snap files kept (0 = all) */
  maxSnapshots: number;
  host: SnapshotHost;
  logger: SnapLogger;
  /** index of the snapshot the member started from (0 for none) */
  startIndex: number;
  /** size of the db file the member started with (0 for none) and its bytes in use */
  dbSizeBytes: number;
  dbSizeInUseBytes: number;
  /** the db file the member started from, when it may be extended in place (LoadedDbFile) */
  loadedDb?: LoadedDbFile;
  /** Called after each completed snapshot (the member's metrics); must not throw. */
  onDone?: (stats: SnapshotStats) => void;
  /**
   * Values read from the db files written (see #moveValues) and a read failed: the member must
   * stop (its fatal path). Without it, values are not read from the db files (kept in memory).
   */
  onValueFileError?: (err: Error) => void;
}

/** Figures of the last snapshot, for logs and metrics. Durations in seconds. */
export interface SnapshotStats {
  index: number;
  dbBytes: number;
  /** the whole snapshot: capture to WAL release */
  durationSeconds: number;
  /** bytes written to the db file: all of it, or an in-place commit's pages */
  dbWrittenBytes: number;
  /** the db file was extended in place (not rewritten) */
  inPlace: boolean;
  /** planning and writing member/snap/db (fsync, rename and directory fsync included) */
  dbWriteSeconds: number;
  /** writing the .snap file (etcd's SaveSnap, etcd_debugging_snap_save_total_duration_seconds) */
  snapSaveSeconds: number;
}

/** Runs the periodic snapshots of one member (see the module comment). One at a time. */
export class Snapshotter {
  readonly #o: SnapshotterOptions;
  #snapshotIndex: number;
  #running: Promise<void> | undefined;
  /** A snapshot waits for the local WAL to catch up with the applied index (see durableAdvanced). */
  #pending: { start: () => void; done: Promise<void> } | undefined;
  #retryAtMs = 0;
  /** appliedEntryBytes as last passed to maybeTrigger, and when the last snapshot was captured */
  #appliedEntryBytes = 0;
  #appliedEntryBytesAtSnapshot = 0;
  /**
   * Periodic snapshots run at most maxBusyPercent of the time: the next may start once the last
   * one's duration × (100 / maxBusyPercent − 1) has passed since it ended (with 50, as long as it
   * took). etcd's snapshot is cheap (its bbolt file is already on disk); here one that rewrites
   * the whole db (the first, one after a compaction) on a large store under a heavy load would take
   * a core from the requests if they came back to back. The WAL holds everything meanwhile.
   */
  #nextAllowedMs = 0;
  #recheck: NodeJS.Timeout | undefined;
  #stopped = false;
  /** A snapshot received from the leader is being installed: none starts until restoredTo(). */
  #held = false;
  /**
   * The db file the last snapshot wrote, for the next to extend in place: its layout, which
   * store history and how many of its records it holds, the DbValueFile its values are read
   * through (if any) and its inode (a file renamed over it since is not extended). Undefined
   * when the next snapshot rewrites the whole file.
   */
  #inPlace: InPlace | undefined;
  /**
   * The db file the member started from, until the first snapshot reads its layout (or a
   * Defragment or a received snapshot makes that moot): see LoadedDbFile.
   */
  #loaded: LoadedDbFile | undefined;
  /** Snapshots completed since start. */
  completed = 0;
  last: SnapshotStats | undefined;

  /** Size of member/snap/db as last written or found at start (0 when there is none). */
  dbSizeBytes: number;
  /** Its bytes not on bbolt's freelist (the files etcd-ts writes have no free pages). */
  dbSizeInUseBytes: number;

  constructor(o: SnapshotterOptions) {
    this.#o = o;
    this.#snapshotIndex = o.startIndex;
    this.dbSizeBytes = o.dbSizeBytes;
    this.dbSizeInUseBytes = o.dbSizeInUseBytes;
    this.#loaded = o.loadedDb;
  }

  /** Index of the newest snapshot written (or started from). */
  get snapshotIndex(): number {
    return this.#snapshotIndex;
  }

  /**
   * Called after every applied batch: starts a snapshot once `appliedIndex` is more than
   * snapshotCount past the last one (etcd's `appliedi - snapi > SnapshotCount`) and, on a large
   * db, enough entry bytes were applied since (walPercentOfDb), unless one is running or a failed
   * one waits for its retry time. The capture happens now, synchronously.
   *
   * @param appliedEntryBytes bytes of entry data applied since the member started (a running
   *   total; the last value is kept when omitted)
   */
  maybeTrigger(appliedIndex: number, appliedEntryBytes = this.#appliedEntryBytes): void {
    this.#appliedEntryBytes = appliedEntryBytes;
    if (this.#running !== undefined || this.#stopped || this.#held) return;
    const entries = appliedIndex - this.#snapshotIndex;
    if (entries <= this.#o.snapshotCount) return;
    if (
      entries <= Math.max(this.#o.snapshotCount, maxDeferredEntries) &&
      appliedEntryBytes - this.#appliedEntryBytesAtSnapshot < this.#deferBytes()
    ) {
      return;
    }
    // after a restart from a db ahead of the last snapshot, the snapshot waits for the replay to
    // pass the db's consistent index (the next applied batch calls again)
    if (this.#o.host.replayingDb()) return;
    const now = Date.now();
    const notBeforeMs = Math.max(this.#retryAtMs, this.#nextAllowedMs);
    if (now < notBeforeMs) {
      // due but held back: check again then, whether or not more entries are applied
      this.#recheck ??= setTimeout(() => {
        this.#recheck = undefined;
        this.maybeTrigger(this.#o.host.appliedIndex());
      }, notBeforeMs - now).unref();
      return;
    }
    this.trigger();
  }

  /**
   * Entry bytes a periodic snapshot waits for after the last one (see walPercentOfDb): none when
   * it can extend the db file in place (it writes what changed, not the db's size).
   */
  #deferBytes(): number {
    if (this.#inPlace !== undefined) return 0;
    const percent = this.#o.walPercentOfDb ?? 0;
    return (Math.max(0, this.dbSizeBytes - deferDbBytesFloor) * percent) / 100;
  }

  /** True while a snapshot (periodic or a Defragment) is being captured and written. */
  get busy(): boolean {
    return this.#running !== undefined;
  }

  /**
   * Maintenance.Defragment: waits for a running snapshot, then writes a fresh one (the db file is
   * rewritten compactly from an O(1) capture while writes go on). Rejects when it fails.
   */
  async rewriteNow(): Promise<void> {
    if (this.#running !== undefined) await this.#running;
    const before = this.completed;
    // a compact file: written whole, not extended
    this.#inPlace = undefined;
    this.#loaded = undefined;
    await this.trigger();
    if (this.completed === before) throw new Error("etcdserver: defragment failed (see the log)");
  }

  /**
   * Starts a snapshot at the current applied index (no-op while one runs or waits): now, or, when
   * the applied index is past what the local WAL holds, once durableAdvanced() says it caught up.
   */
  trigger(): Promise<void> {
    if (this.#running !== undefined) return this.#running;
    if (this.#pending !== undefined) return this.#pending.done;
    if (this.#held || this.#stopped) return Promise.resolve();
    if (this.#o.host.appliedIndex() > this.#o.host.durableIndex()) {
      let start!: () => void;
      const done = new Promise<void>((resolve) => {
        start = () => resolve(this.trigger());
      });
      this.#pending = { start, done };
      return done;
    }
    const cap = this.#o.host.capture();
    const p = this.#run(cap, this.#appliedEntryBytes).finally(() => {
      this.#running = undefined;
      // entries applied while this one ran may already call for the next
      this.maybeTrigger(this.#o.host.appliedIndex());
    });
    this.#running = p;
    return p;
  }

  /**
   * The local WAL holds every entry up to `durableIndex` now (called synchronously after a save,
   * before more entries apply): a snapshot waiting for it captures now.
   */
  durableAdvanced(durableIndex: number): void {
    const p = this.#pending;
    if (p === undefined || this.#o.host.appliedIndex() > durableIndex) return;
    this.#pending = undefined;
    p.start();
  }

  /**
   * A snapshot from the leader is about to replace the db: no snapshot starts until restoredTo(),
   * and a running one is waited for (it would rename an older db over the received one).
   */
  async holdOff(): Promise<void> {
    this.#held = true;
    if (this.#running !== undefined) await this.#running.catch(() => {});
    this.#inPlace = undefined;
    this.#loaded = undefined;
  }

  /** The received snapshot at `index` is the db now (`dbBytes` long): snapshots may start again. */
  restoredTo(index: number, dbBytes: number): void {
    this.#snapshotIndex = Math.max(this.#snapshotIndex, index);
    this.dbSizeBytes = dbBytes;
    this.dbSizeInUseBytes = dbBytes;
    this.#held = false;
  }

  /** Stops triggering and waits for a running snapshot to end. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#recheck);
    this.durableAdvanced(Number.MAX_SAFE_INTEGER);
    if (this.#running !== undefined) await this.#running.catch(() => {});
  }

  async #run(
    cap: { state: DbFileState; term: number; confState: ConfState },
    appliedEntryBytes: number,
  ): Promise<void> {
    const index = cap.state.consistentIndex;
    const started = performance.now();
    const log = this.#o.logger;
    log.info({ index, term: cap.term }, "triggering snapshot");
    let dbBytes: number;
    let dbWriteSeconds: number;
    let snapSaveSeconds: number;
    let dbWrittenBytes: number;
    if (this.#loaded !== undefined) {
      // the first snapshot since start: the file the member loaded may be extended in place
      const loaded = this.#loaded;
      this.#loaded = undefined;
      this.#inPlace ??= await this.#loadedBase(loaded);
    }
    const inPlace = this.#inPlace;
    const extend =
      inPlace !== undefined &&
      cap.state.mvcc.history === inPlace.history &&
      cap.state.mvcc.recordCount >= inPlace.recordCount &&
      cap.state.mvcc.cursor !== undefined;
    // whatever happens, the next snapshot extends only what this one leaves (see #inPlace)
    this.#inPlace = undefined;
    try {
      if (extend) {
        const db = await this.#extendDb(cap.state, inPlace);
        dbBytes = db.bytes;
        dbWrittenBytes = db.written;
        this.dbSizeInUseBytes = db.next.base.sizeInUseBytes;
        this.#inPlace = db.next;
      } else {
        const db = await this.#writeDb(cap.state);
        dbBytes = dbWrittenBytes = db.bytes;
        const valueFile = await this.#moveValues(cap.state, db.fd);
        const base = db.writer.appendBase(Buffer.from("key"));
        if (base !== undefined && cap.state.mvcc.history !== undefined) {
          this.#inPlace = {
            base,
            history: cap.state.mvcc.history,
            recordCount: cap.state.mvcc.recordCount,
            valueFile,
            ino: db.ino,
          };
        }
        this.dbSizeInUseBytes = dbBytes;
      }
      dbWriteSeconds = (performance.now() - started) / 1000;
      this.dbSizeBytes = dbBytes;
      failpoint("afterCommit");
      const st = cap.state;
      failpoint("raftBeforeSaveSnap");
      const snapStarted = performance.now();
      const snapPath = await writeSnapFile(snapDirPath(this.#o.dataDir), {
        data: encodeV2StoreSnapshot(st.members, st.removedMemberIds, st.clusterVersion),
        metadata: { index, term: cap.term, confState: cap.confState },
      });
      snapSaveSeconds = (performance.now() - snapStarted) / 1000;
      failpoint("snapshotAfterSnapFile");
      await this.#o.host.saveWalSnapshot(index, cap.term);
      failpoint("raftAfterSaveSnap");
      log.info({ index, file: snapPath }, "saved snapshot");
    } catch (err) {
      this.#inPlace = undefined;
      this.#retryAtMs = Date.now() + retryAfterMs;
      await rm(dbFilePath(this.#o.dataDir) + dbTempSuffix, { force: true }).catch(() => {});
      log.warn(
        { index, err: (err as Error).message, retryAfterMs },
        "snapshot failed; serving from memory and retrying later",
      );
      return;
    }
    this.#snapshotIndex = index;
    this.#appliedEntryBytesAtSnapshot = appliedEntryBytes;
    try {
      await this.#o.host.releaseTo(index);
      failpoint("raftAfterWALRelease");
      for (const f of await purgeSnapFiles(snapDirPath(this.#o.dataDir), this.#o.maxSnapshots)) {
        log.info({ file: f }, "purged snapshot file");
      }
    } catch (err) {
      log.warn({ index, err: (err as Error).message }, "releasing WAL or purging snapshots failed");
    }
    const durationSeconds = (performance.now() - started) / 1000;
    const busyPercent = this.#o.maxBusyPercent ?? 50;
    this.#nextAllowedMs = Date.now() + durationSeconds * 1000 * (100 / busyPercent - 1);
    this.completed++;
    this.last = {
      index,
      dbBytes,
      durationSeconds,
      dbWriteSeconds,
      snapSaveSeconds,
      dbWrittenBytes,
      inPlace: extend,
    };
    log.info(
      { index, dbBytes, dbWrittenBytes, inPlace: extend, durationSeconds, dbWriteSeconds },
      "snapshot done",
    );
    this.#o.onDone?.(this.last);
  }

  /**
   * The db file `fd` (open for reading, durable, renamed into place) holds the captured records:
   * they read their values from it from now on, and the memory that held them goes (lib/mvcc
   * RecordLog, "Values in a db file"), in steps of moveRowsPerStep rows (several per turn,
   * turns.ts). The file's descriptor is then owned by the DbValueFile (closed once nothing reaches
   * it); closed here if nothing moved.
   */
  async #moveValues(state: DbFileState, fd: number): Promise<DbValueFile | undefined> {
    const onError = this.#o.onValueFileError;
    const file =
      onError === undefined ? undefined : new DbValueFile(fd, dbFilePath(this.#o.dataDir), onError);
    const move = file === undefined ? undefined : state.mvcc.moveValuesTo?.(file, moveRowsPerStep);
    if (move === undefined) {
      closeSync(fd);
      return undefined;
    }
    await runInTurns(move);
    return file;
  }

  /**
   * What the first snapshot needs to extend the db file the member started from: its layout, read
   * from the file in steps (BoltFile.appendBaseInSteps). Undefined, so the snapshot rewrites the
   * whole file as before, when the file cannot be extended (one with a freelist page) or is not
   * the one loaded (another inode, or a key bucket whose entry count is not the records loaded);
   * a read error is logged and gives undefined too.
   */
  async #loadedBase(loaded: LoadedDbFile): Promise<InPlace | undefined> {
    if (loaded.history === undefined) return undefined;
    const path = dbFilePath(this.#o.dataDir);
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch {
      return undefined;
    }
    try {
      const st = fstatSync(fd);
      if (st.ino !== loaded.ino) return undefined;
      const file = BoltFile.open(fileByteSource(path, fd, st.size));
      const base = await runInTurns(
        file.appendBaseInSteps(Buffer.from("key"), planPagesPerStep),
        () => this.#stopped,
      );
      if (base === undefined) return undefined;
      if (base.entryCount !== loaded.recordCount) {
        this.#o.logger.warn(
          { file: path, entries: base.entryCount, records: loaded.recordCount },
          "the db file's key bucket does not match the records loaded from it; rewriting it whole",
        );
        return undefined;
      }
      return { ...loaded, history: loaded.history, base };
    } catch (err) {
      this.#o.logger.warn(
        { file: path, err: (err as Error).message },
        "cannot read the db file's layout; the snapshot rewrites it whole",
      );
      return undefined;
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Extends the db file in place with `state` (module comment, step 1): the records after the
   * `from.recordCount` it holds and every other bucket, planned in steps, their pages written in
   * chunks (fdatasynced every dbSyncEveryBytes and at the end), then the new meta, fdatasynced;
   * then the new records read their values from the file (through the same DbValueFile as the
   * old). Returns the file's size, the bytes written and what the next extension builds on.
   * Throws when the file at the db path is not the one `from` describes, or on a write error; the
   * file then still holds its previous commit whole.
   */
  async #extendDb(
    state: DbFileState,
    from: InPlace,
  ): Promise<{ bytes: number; written: number; next: InPlace }> {
    failpoint("commitBeforePreCommitHook");
    if (from.valueFile !== undefined) state.mvcc.recordValuePositions?.(from.recordCount);
    const writer: BoltFileWriter = await runInTurns(
      BoltFileWriter.planAppendInSteps(
        etcdDbBuckets(state, from.recordCount),
        { chunkBytes: writeChunkBytes },
        from.base,
        planEntriesPerStep,
      ),
      () => this.#stopped,
    );
    failpoint("commitAfterPreCommitHook");
    const fd = openSync(dbFilePath(this.#o.dataDir), "r+");
    let written = 0;
    try {
      if (fstatSync(fd).ino !== from.ino) throw new Error("the db file was replaced");
      // the mid-write failpoint after the first write (its size is not known ahead, unlike a
      // whole file's)
      written = await this.#writeInTurns(fd, writer.pageWrites(), 1);
      await datasync(fd);
      failpoint("beforeCommit");
      const meta = writer.metaWrite();
      await writeAt(fd, meta.bytes, 0, meta.bytes.length, meta.position);
      await datasync(fd);
      written += meta.bytes.length;
    } finally {
      releaseFd(fd);
      closeSync(fd);
    }
    // the read caches stop at the size the file had: the new records' values are past it
    from.valueFile?.refreshSize();
    const move =
      from.valueFile === undefined
        ? undefined
        : state.mvcc.moveValuesTo?.(from.valueFile, moveRowsPerStep);
    if (move !== undefined && !(await runInTurns(move))) {
      throw new Error("the new records' values were not all placed in the db file");
    }
    const base = writer.appendBase(Buffer.from("key"))!;
    return {
      bytes: writer.sizeBytes,
      written,
      next: { ...from, base, recordCount: state.mvcc.recordCount },
    };
  }

  /**
   * Writes `writes` to `fd` in order, each when the turn's budget allows (encoding the next one
   * is synchronous: past the budget, requests go first), fdatasyncing every dbSyncEveryBytes, the
   * failpoint snapshotDbMidWrite once `midWriteBytes` are written; returns the bytes written.
   * Writes go through lib/wal's file writes (under simulated power loss they stay in the process
   * until synced). Throws when the member stops, or on a write error.
   */
  async #writeInTurns(
    fd: number,
    writes: Iterable<BoltPageWrite>,
    midWriteBytes: number,
  ): Promise<number> {
    let written = 0;
    let synced = 0;
    let mid = false;
    const turn = { startedMs: performance.now() };
    for (const w of writes) {
      await yieldWhenDue(turn);
      await writeAt(fd, w.bytes, 0, w.bytes.length, w.position);
      written += w.bytes.length;
      if (dbSyncEveryBytes > 0 && written - synced >= dbSyncEveryBytes) {
        await datasync(fd);
        synced = written;
      }
      if (!mid && written >= midWriteBytes) {
        mid = true;
        failpoint("snapshotDbMidWrite");
      }
      if (this.#stopped) throw new Error("member stopping");
    }
    return written;
  }

  /**
   * Writes the db file for `state` to db.tmp in steps (planning in steps of planEntriesPerStep
   * records, writing awaits each chunk; both yield to the event loop once a turn's budget is
   * spent, turns.ts), fsyncs it, renames it over the
   * db and fsyncs the directory. Returns its size in bytes and a descriptor of it open for
   * reading (the caller's to close), once all of that is done.
   */
  async #writeDb(
    state: DbFileState,
  ): Promise<{ bytes: number; fd: number; writer: BoltFileWriter; ino: number }> {
    failpoint("commitBeforePreCommitHook");
    if (this.#o.onValueFileError !== undefined) state.mvcc.recordValuePositions?.();
    const writer = await planDbFile(
      state,
      { chunkBytes: writeChunkBytes },
      planEntriesPerStep,
      () => this.#stopped,
    );
    failpoint("commitAfterPreCommitHook");
    const path = dbFilePath(this.#o.dataDir);
    const tmp = path + dbTempSuffix;
    // read and write: once durable, the store reads values from it (#moveValues)
    const fd = openSync(tmp, "w+", 0o600);
    let written = 0;
    try {
      // each chunk is written before the next is made: its buffer is reused (see chunks())
      written = await this.#writeInTurns(fd, atOffsets(writer.chunks(true)), writer.sizeBytes / 2);
      await datasync(fd, { full: true });
      failpoint("beforeCommit");
      await rename(tmp, path);
      await fsyncDir(snapDirPath(this.#o.dataDir));
    } catch (err) {
      releaseFd(fd);
      closeSync(fd);
      throw err;
    }
    return { bytes: written, fd, writer, ino: fstatSync(fd).ino };
  }
}

/** Chunks written back to back from offset 0, as positioned writes. */
function* atOffsets(chunks: Iterable<Buffer>): Generator<BoltPageWrite, void, void> {
  let position = 0;
  for (const bytes of chunks) {
    yield { position, bytes };
    position += bytes.length;
  }
}
