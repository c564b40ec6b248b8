/**
 * lib/wal — etcd v3.4's write-ahead log in etcd's on-disk format (DESIGN §4): CRC-32C chained
 * records in preallocated segments, group commit, torn-tail repair, and the data-dir lock; the file
 * writes it shares with the snapshot writers, with a simulated power loss for tests
 * (power-loss.ts).
 */
export { WAL, DEFAULT_SEGMENT_SIZE_BYTES, DEFAULT_FILL_AHEAD_BYTES } from "./wal.js";
export type { WalOptions, WalReadResult, WalLogger, WalSnapshot, TornTail } from "./wal.js";
export { lockDataDir } from "./lock.js";
export {
  simulatePowerLoss,
  powerLossSimulated,
  pendingSyncBytes,
  writeAt,
  writeAtSync,
  datasync,
  datasyncSync,
  releaseFd,
  MAX_PENDING_BYTES,
  PAGE_BYTES,
} from "./power-loss.js";
export type { PowerLossOptions, TornSync } from "./power-loss.js";
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
