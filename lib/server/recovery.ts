/**
 * Restart from the data dir (DESIGN §4 "Recovery = open db + replay WAL entries after it"), as etcd
 * 3.4's NewServer with an existing WAL: load `member/snap/db` (its meta consistent_index says which
 * raft index the state reflects), pick the newest .snap whose WAL snapshot record exists and whose
 * index the db covers (snap-file.ts loadNewestAvailableSnap, falling back past corrupt files), read
 * the WAL from that snapshot, and hand back what the member needs: the raft snapshot for raft's
 * storage, the entries after it, and the db's contents. The member then applies only the entries
 * after the db's consistent index (etcd's applier skips entries at or below it).
 *
 * Works on a data dir real etcd 3.4 wrote (its live bbolt db, its .snap files with v2 store data,
 * its WAL), on one `etcdctl snapshot restore` made, and on etcd-ts's own.
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
} from "node:fs";
import { join } from "node:path";
import { BoltError, type BoltByteSource } from "../btree/index.js";
import type { Entry, HardState } from "../proto/gen/raftpb/raft.js";
import { WAL, type WalOptions, type WalSnapshot } from "../wal/index.js";
import {
  DbFileFormatError,
  parseEtcdDbFile,
  type KeyRecords,
  type ParsedDbFile,
} from "./db-file.js";
import { DataDirFileError } from "./errors.js";
import {
  fsyncDirSync,
  loadNewestAvailableSnap,
  type RaftSnapshot,
  type SnapLogger,
} from "./snap-file.js";

/** The db file of a data dir: `member/snap/db` (etcd's backend path). */
export function dbFilePath(dataDir: string): string {
  return join(dataDir, "member", "snap", "db");
}

/** The snap dir of a data dir: `member/snap`. */
export function snapDirPath(dataDir: string): string {
  return join(dataDir, "member", "snap");
}

/** The name the db file is written under before its rename (a crash may leave it behind). */
export const dbTempSuffix = ".tmp";

/**
 * A db file opened by readDbFile: its file stays open until keyRecords() ends or close(). Also
 * the file's size and the bytes of it not on bbolt's freelist.
 */
export interface OpenDbFile extends ParsedDbFile {
  /** Closes the file (idempotent); keyRecords() closes it when its walk ends. */
  close(): void;
  /**
   * Hands the file's descriptor (open for reading) to the caller, who closes it: close() and the
   * end of the keyRecords() walk then leave it open (the store reads values from it,
   * value-file.ts). Throws if the file is closed already.
   */
  takeFd(): number;
  sizeBytes: number;
  sizeInUseBytes: number;
}

/**
 * Reads and checks a db file: bbolt's page checks and etcd's buckets. The file is read page by
 * page as it is walked (never whole: at 1M keys it is ~300 MB, which a restart held in memory
 * until a later garbage collection; issue 13), once for the checks and the small buckets, once
 * more when keyRecords() is walked.
 * @throws DataDirFileError naming the file and what failed (bad magic, checksum, truncated file,
 * missing bucket, malformed meta value, an I/O error).
 */
export function readDbFile(path: string): OpenDbFile {
  let fd: number | undefined;
  let taken = false;
  const close = (): void => {
    if (fd !== undefined && !taken) closeSync(fd);
    fd = undefined;
  };
  const takeFd = (): number => {
    if (fd === undefined || taken) throw new Error(`${path}: the db file is closed or taken`);
    taken = true;
    return fd;
  };
  const fail = (err: unknown): never => {
    close();
    if (err instanceof BoltError || err instanceof DbFileFormatError) {
      throw new DataDirFileError(path, err.message);
    }
    throw err;
  };
  // while the key bucket is walked: the file's errors name it; the consumer's pass through
  const walkFail = (err: unknown): never => {
    if (err instanceof BoltError) throw new DataDirFileError(path, err.message);
    throw err;
  };
  let source: BoltByteSource;
  try {
    fd = openSync(path, "r");
    source = fileByteSource(path, fd, fstatSync(fd).size);
  } catch (err) {
    close();
    throw new DataDirFileError(path, `cannot read: ${(err as Error).message}`);
  }
  try {
    const parsed = parseEtcdDbFile(source);
    // the pages its meta does not reach are free, listed on a freelist page or not (etcd's
    // bbolt counts them the same way when it opens a file without one)
    const sizeInUseBytes = Math.min(source.byteLength, parsed.inUseBytes);
    return {
      ...parsed,
      keyRecords(): KeyRecords {
        const walk = function* (): IterableIterator<[Buffer, Buffer]> {
          try {
            yield* parsed.keyRecords();
          } catch (err) {
            walkFail(err);
          } finally {
            close();
          }
        };
        return Object.assign(walk(), {
          forEachRaw(fn: Parameters<KeyRecords["forEachRaw"]>[0]): void {
            try {
              parsed.keyRecords().forEachRaw(fn);
            } catch (err) {
              walkFail(err);
            } finally {
              close();
            }
          },
        });
      },
      close,
      takeFd,
      sizeBytes: source.byteLength,
      sizeInUseBytes,
    };
  } catch (err) {
    return fail(err);
  }
}

/**
 * Positioned reads of an open file, each into a fresh Buffer (views of it may be kept): how a db
 * file is read page by page, here and when the snapshotter reads the layout of the one loaded.
 * A failed or short read throws DataDirFileError naming `path`.
 */
export function fileByteSource(path: string, fd: number, byteLength: number): BoltByteSource {
  return {
    byteLength,
    read(offset: number, length: number): Buffer {
      const buf = Buffer.allocUnsafeSlow(length);
      let got = 0;
      while (got < length) {
        let n: number;
        try {
          n = readSync(fd, buf, got, length - got, offset + got);
        } catch (err) {
          throw new DataDirFileError(path, `cannot read: ${(err as Error).message}`);
        }
        if (n === 0) {
          throw new DataDirFileError(path, `ends at byte ${offset + got}, want ${offset + length}`);
        }
        got += n;
      }
      return buf;
    },
  };
}

/** readDbFile of bytes already read from `path` (named in errors). @throws DataDirFileError */
export function readDbBytes(path: string, bytes: Buffer): ParsedDbFile {
  try {
    return parseEtcdDbFile(bytes);
  } catch (err) {
    if (err instanceof BoltError || err instanceof DbFileFormatError) {
      throw new DataDirFileError(path, err.message);
    }
    throw err;
  }
}

const receivedDbNameRe = /^([0-9a-f]{16})\.snap\.db$/;

/**
 * A db file received with a snapshot from the leader (`%016x.snap.db`) whose WAL snapshot record
 * is valid but that was not yet renamed over the db when the member stopped: renamed into place
 * now, as etcd 3.4's recoverSnapshotBackend does when the db is behind the snapshot. The newest
 * such file wins; a crash before its WAL record leaves it unused (it is removed later).
 */
function installReceivedSnapshotDb(
  dataDir: string,
  walSnapshots: readonly WalSnapshot[],
  logger: SnapLogger,
): void {
  const dir = snapDirPath(dataDir);
  if (!existsSync(dir)) return;
  const recorded = new Set(walSnapshots.map((s) => s.index));
  const candidates = readdirSync(dir)
    .map((n) => receivedDbNameRe.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ name: m[0], index: parseInt(m[1]!, 16) }))
    .filter((c) => recorded.has(c.index))
    .sort((a, b) => b.index - a.index);
  const newest = candidates[0];
  if (newest === undefined) return;
  const dbPath = dbFilePath(dataDir);
  let current = 0;
  if (existsSync(dbPath)) {
    const db = readDbFile(dbPath);
    current = db.consistentIndex;
    db.close();
  }
  if (newest.index <= current) return;
  logger.warn(
    { file: join(dir, newest.name), index: newest.index, dbConsistentIndex: current },
    "installing the db file received with a snapshot before the restart",
  );
  renameSync(join(dir, newest.name), dbPath);
  fsyncDirSync(dir);
}

/** What a restart found in the data dir. */
export interface RecoveredDataDir {
  wal: WAL;
  /** the WAL's metadata record (etcdserverpb.Metadata) */
  metadata: Uint8Array;
  hardState: HardState;
  /** WAL entries after `snapshot`'s index */
  entries: Entry[];
  /** the raft snapshot the WAL read started from; undefined when it started at index 0 */
  snapshot: RaftSnapshot | undefined;
  /** the db file's contents; undefined when the data dir has none (an etcd-ts dir before its first snapshot) */
  db: OpenDbFile | undefined;
  /** the db's consistent index (0 without a db): entries at or below it are in the db already */
  consistentIndex: number;
  /** the db file's size, and the bytes of it not on bbolt's freelist (0 without a db) */
  dbSizeBytes: number;
  dbSizeInUseBytes: number;
}

/**
 * Opens the data dir for a restart (see the module comment). `walDir` must hold segments.
 * @throws DataDirFileError for a corrupt db, a db whose consistent index is ahead of the WAL, or
 * no usable snapshot for the db's index; WalCorruptError / WalMissingSegmentError /
 * WalSnapshotNotFoundError from the WAL.
 */
export async function recoverDataDir(
  dataDir: string,
  walDir: string,
  walOptions: WalOptions,
  logger: SnapLogger,
): Promise<RecoveredDataDir> {
  const dbPath = dbFilePath(dataDir);
  if (existsSync(dbPath + dbTempSuffix)) {
    // a snapshot was cut short before its rename: the db in place is the last whole one
    logger.warn({ file: dbPath + dbTempSuffix }, "removing a partly written db file");
    rmSync(dbPath + dbTempSuffix, { force: true, recursive: true });
  }
  installReceivedSnapshotDb(
    dataDir,
    (await WAL.validSnapshotEntries(walDir, { logger: walOptions.logger })).snapshots,
    logger,
  );
  const db = existsSync(dbPath) ? readDbFile(dbPath) : undefined;
  try {
    return await recoverWithDb(dataDir, walDir, walOptions, logger, db);
  } catch (err) {
    db?.close();
    throw err;
  }
}

async function recoverWithDb(
  dataDir: string,
  walDir: string,
  walOptions: WalOptions,
  logger: SnapLogger,
  db: OpenDbFile | undefined,
): Promise<RecoveredDataDir> {
  const dbPath = dbFilePath(dataDir);
  const consistentIndex = db?.consistentIndex ?? 0;
  const valid = await WAL.validSnapshotEntries(walDir, { logger: walOptions.logger });
  // only snapshots the db covers: entries between the snapshot and the db's index are skipped
  // on apply, entries after it replayed; a snapshot past the db would leave a hole
  const usable = valid.snapshots.filter((s) => s.index <= consistentIndex);
  const loaded = loadNewestAvailableSnap(snapDirPath(dataDir), usable, logger);
  let start: WalSnapshot;
  if (loaded.snapshot !== undefined) {
    start = { index: loaded.snapshot.metadata!.index, term: loaded.snapshot.metadata!.term };
    logger.info({ file: loaded.file, ...start }, "loaded snapshot file");
  } else if (usable.some((s) => s.index === 0)) {
    start = { index: 0, term: 0 };
  } else if (loaded.failures.length > 0) {
    // the newest usable snapshot is corrupt and nothing older is left to fall back to
    const f = loaded.failures[loaded.failures.length - 1]!;
    throw new DataDirFileError(f.file, `${f.reason}; no older snapshot whose WAL entries exist`);
  } else {
    throw new DataDirFileError(
      db === undefined ? dbPath : snapDirPath(dataDir),
      db === undefined
        ? "no db file, and the WAL no longer starts at index 0"
        : `no .snap file at or below the db's consistent index ${consistentIndex} whose WAL snapshot record exists`,
    );
  }
  const r = await WAL.open(walDir, { ...walOptions, snapshot: start });
  if (loaded.snapshot === undefined && r.entries.length === 0) {
    // A member's log starts with the ConfChanges that name its cluster (the bootstrap entries of
    // a new cluster, or the leader's log for a joiner); with neither them nor a snapshot it knows
    // no voter and no peer, refuses every peer's hello and never elects: refuse to start instead.
    // It happens when the WAL's first save was lost (a power loss before its first fdatasync).
    await r.wal.close();
    throw new DataDirFileError(
      walDir,
      `the WAL holds no entries and there is no snapshot: this member's bootstrap entries were lost ` +
        `(e.g. a power loss before its first fdatasync), so it cannot know its cluster; remove ` +
        `the data dir ${dataDir} and start the member again (a new cluster), or remove and re-add ` +
        `it with etcdctl member remove / member add (an existing cluster)`,
    );
  }
  const lastIndex = r.entries.length > 0 ? r.entries[r.entries.length - 1]!.index : start.index;
  if (consistentIndex > lastIndex) {
    await r.wal.close();
    throw new DataDirFileError(
      dbPath,
      `consistent index ${consistentIndex} is ahead of the WAL, whose last entry is ${lastIndex}`,
    );
  }
  return {
    wal: r.wal,
    metadata: r.metadata,
    hardState: r.hardState,
    entries: r.entries,
    snapshot: loaded.snapshot,
    db,
    consistentIndex,
    dbSizeBytes: db?.sizeBytes ?? 0,
    dbSizeInUseBytes: db?.sizeInUseBytes ?? 0,
  };
}
