/**
 * lib/mvcc public face: etcd's revisioned store with the applier's request semantics, the
 * watchable store and watch streams, and the request checks of etcd's api/v3rpc.
 */
export { MvccStore, isTxnReadOnly } from "./store.js";
export type {
  LeaseHooks,
  MvccStoreOptions,
  MvccStats,
  MvccHash,
  MvccSnapshot,
  RawKeyRecords,
} from "./store.js";
export type { ValueFile } from "./record-log.js";
export { WatchStream } from "./watch.js";
export type { WatchSink } from "./watch.js";
export {
  checkRangeRequest,
  checkPutRequest,
  checkDeleteRangeRequest,
  checkTxnRequest,
} from "./checks.js";
export * from "./errors.js";
