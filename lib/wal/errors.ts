/**
 * Errors raised by lib/wal. Each carries a stable `code` so callers (the server, etcd-ts-util)
 * branch on it without matching message text (STYLE §3).
 */

/** Base class for every lib/wal error. */
export class WalError extends Error {
  /** Stable machine-readable code. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * A record that is not the torn tail of the last segment failed its check: bad CRC, a frame or
 * protobuf that does not parse, non-zero padding, an unknown record type, conflicting metadata,
 * or an entry index that leaves a hole. etcd's ReadAll refuses to open in these cases
 * (ErrCRCMismatch, "unexpected block type", ErrMetadataConflict, ErrSliceOutOfRange); so do we.
 * `file` is the segment's path and `offsetBytes` the byte offset of the record's length word.
 */
export class WalCorruptError extends WalError {
  readonly file: string;
  readonly offsetBytes: number;
  readonly reason: string;
  constructor(file: string, offsetBytes: number, reason: string) {
    super("WAL_CORRUPT", `wal: corrupt record in ${file} at byte offset ${offsetBytes}: ${reason}`);
    this.file = file;
    this.offsetBytes = offsetBytes;
    this.reason = reason;
  }
}

/**
 * The segment sequence numbers from the segment that holds the requested snapshot onwards are not
 * contiguous (etcd's isValidSeq): a segment file is missing, so entries would be lost.
 */
export class WalMissingSegmentError extends WalError {
  readonly dir: string;
  readonly expectedSeq: number;
  readonly foundSeq: number;
  constructor(dir: string, expectedSeq: number, foundSeq: number) {
    super(
      "WAL_MISSING_SEGMENT",
      `wal: missing segment in ${dir}: expected sequence ${expectedSeq.toString(16).padStart(16, "0")}, ` +
        `found ${foundSeq.toString(16).padStart(16, "0")}`,
    );
    this.dir = dir;
    this.expectedSeq = expectedSeq;
    this.foundSeq = foundSeq;
  }
}

/**
 * No segment can hold the requested snapshot (etcd's ErrFileNotFound), or the segments were read
 * to the end without meeting a snapshot record with the requested index (ErrSnapshotNotFound).
 */
export class WalSnapshotNotFoundError extends WalError {
  constructor(dir: string, index: number, term: number, detail: string) {
    super(
      "WAL_SNAPSHOT_NOT_FOUND",
      `wal: snapshot {index: ${index}, term: ${term}} not found in ${dir}: ${detail}`,
    );
  }
}

/** A snapshot record with the requested index carries another term (etcd's ErrSnapshotMismatch). */
export class WalSnapshotMismatchError extends WalError {
  constructor(file: string, index: number, wantTerm: number, gotTerm: number) {
    super(
      "WAL_SNAPSHOT_MISMATCH",
      `wal: snapshot at index ${index} in ${file} has term ${gotTerm}, expected ${wantTerm}`,
    );
  }
}

/** `WAL.create` was called on a directory that already holds `.wal` segments (etcd: os.ErrExist). */
export class WalExistsError extends WalError {
  constructor(dir: string) {
    super("WAL_EXISTS", `wal: ${dir} already holds WAL segments`);
  }
}

/** The WAL was closed; no more saves are accepted. */
export class WalClosedError extends WalError {
  constructor() {
    super("WAL_CLOSED", "wal: closed");
  }
}

/**
 * A write, fdatasync, rename or directory fsync failed. After such a failure what reached the disk
 * is unknown (a failed fsync may have dropped dirty pages), so the WAL refuses every later save
 * with this same error; etcd stops the member in this case (it panics on WAL save errors).
 */
export class WalIoError extends WalError {
  constructor(operation: string, file: string, cause: unknown) {
    super(
      "WAL_IO",
      `wal: ${operation} failed on ${file}: ${(cause as Error)?.message ?? String(cause)}`,
      { cause },
    );
  }
}

/** More saves are queued than `maxPendingSaves` allows; the caller must wait for earlier saves. */
export class WalQueueFullError extends WalError {
  constructor(limit: number) {
    super("WAL_QUEUE_FULL", `wal: more than ${limit} saves pending`);
  }
}

/** An argument breaks the WAL's contract (for example an option out of range). */
export class WalInvalidArgumentError extends WalError {
  constructor(message: string) {
    super("WAL_INVALID_ARGUMENT", `wal: ${message}`);
  }
}

/** A WAL invariant does not hold: a bug, not an operating error. The member should stop. */
export class WalInvariantError extends WalError {
  constructor(message: string) {
    super("WAL_INVARIANT", `wal: invariant broken: ${message}`);
  }
}

/**
 * Another process holds the exclusive lock on the data directory (DESIGN §4): two members must
 * never write the same WAL. `dir` is the data directory.
 */
export class DataDirLockedError extends WalError {
  readonly dir: string;
  constructor(dir: string, cause?: unknown) {
    super("DATA_DIR_LOCKED", `data dir ${dir} is locked by another process`, { cause });
    this.dir = dir;
  }
}
