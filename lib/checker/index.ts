/**
 * lib/checker public face: history checkers for etcd's guarantees, used by the cluster's
 * linearizability tests and by `etcd-ts-util torture` (issues 14 and 16).
 * - checkLinearizability: a recorded key-value history (put, get, delete, txn, prefix range, with
 *   revisions) against etcd's semantics: Wing & Gong's search with Lowe's memoisation (as
 *   Porcupine), partitioned by key, bounded by a step and time budget.
 * - checkWatches: recorded watch streams against etcd's watch API guarantees.
 * - HistoryRecorder: stamps client calls with invoke / complete times and classifies failures as
 *   definite or "may have happened".
 */
export * from "./errors.js";
export * from "./history.js";
export {
  checkLinearizability,
  DEFAULT_MAX_STEPS,
  DEFAULT_TIME_BUDGET_MS,
  DEFAULT_MAX_MEMO_BYTES,
} from "./linearizability.js";
export type { WatchedWrites } from "./patch.js";
export type {
  LinearizabilityOptions,
  LinearizabilityResult,
  StuckOperation,
} from "./linearizability.js";
export { checkWatches, prefixRangeEnd, MAX_WATCH_VIOLATIONS, writesOfHistory } from "./watch.js";
export type {
  PossibleWrite,
  WatchCheckResult,
  WatchEventRecord,
  WatchGuarantee,
  WatchHistory,
  WatchRecord,
  WatchResponseRecord,
  WatchViolation,
  WatchWrite,
} from "./watch.js";
export {
  classifyEtcdError,
  DEFAULT_MAX_RECORDED_OPERATIONS,
  etcd3Call,
  HistoryRecorder,
  MAX_RECORDED_WATCH_RESPONSES,
  RecorderFullError,
  recordEtcd3Watch,
} from "./recorder.js";
export type {
  CallOutcome,
  Etcd3Kv,
  Etcd3KeyValue,
  Etcd3WatchResponse,
  Etcd3Watcher,
  RecorderOptions,
} from "./recorder.js";
