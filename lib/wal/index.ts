/**
 * lib/wal — etcd v3.4's write-ahead log in etcd's on-disk format (DESIGN §4): CRC-32C chained
 * records in preallocated segments, group commit, torn-tail repair, and the data-dir lock.
 */
export { WAL, DEFAULT_SEGMENT_SIZE_BYTES } from "./wal.js";
export type { WalOptions, WalReadResult, WalLogger, WalSnapshot, TornTail } from "./wal.js";
export { lockDataDir } from "./lock.js";
export {
  WalError,
  WalCorruptError,
  WalMissingSegmentError,
  WalSnapshotNotFoundError,
  WalSnapshotMismatchError,
  WalExistsError,
  WalClosedError,
  WalIoError,
  WalQueueFullError,
  WalInvalidArgumentError,
  WalInvariantError,
  DataDirLockedError,
} from "./errors.js";
