/**
 * The revisioned key-value store: etcd's mvcc kvstore (revision model, key index with
 * generations, ranges, compaction, HashKV) plus etcd's applier semantics for Range / Put /
 * DeleteRange / Txn (etcdserver/apply.go) and the watchable store.
 *
 * Layout (memory per key matters, DESIGN §7; issue 13 measured it at 1M keys):
 * - `#log`: every record held (puts and tombstones), in revision order, as rows of typed-array
 *   columns (RecordLog): etcd's bbolt "key" bucket (revision -> KeyValue). Each row links to the
 *   previous record of its key, and its key table (KeyTable) gives each distinct key a slot: its
 *   bytes in the key arena and its newest row. A tombstone ends a generation, as etcd's keyIndex
 *   generations. Values live in the log's value arena, outside the V8 heap.
 * - `#index`: the key slots in key order (lib/btree SlotBTree, typed-array nodes).
 * Nothing here is an object per key or per record: a read, a watch event or a write's changes
 * get short-lived Rec objects made from rows. Rows never change, so a snapshot reads the log it
 * captured while writes go on; compaction builds a new log. The store never mutates a returned
 * Buffer.
 */
import CRC32C from "crc-32/crc32c.js";
import { SlotBTree, type BoltEntryCursor } from "../btree/index.js";
import {
  Compare_CompareResult,
  Compare_CompareTarget,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  type Compare,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type ResponseHeader,
  type ResponseOp,
  type TxnRequest,
  type TxnResponse,
} from "../proto/gen/etcdserverpb/rpc.js";
import {
  KeyNotFoundError,
  LeaseNotFoundError,
  MvccRestoreError,
  MvccCompactedError,
  MvccFutureRevError,
  mvccAssert,
} from "./errors.js";
import { Rec, compareRecValues, emptyBuffer, recToKeyValue } from "./record.js";
import type { KeyValue } from "../proto/gen/mvccpb/kv.js";
import {
  RecordLog,
  fileChunkWord,
  fileOffsetWord,
  forgetValueFileCaches,
  maxSubRevision,
  type ValueFile,
} from "./record-log.js";
import { CompactionJob } from "./compaction.js";
import { WatchHub, type WatchSink, type WatchSource, type WatchStream } from "./watch.js";
import { putVarint, putVarint64, varintSize, varintSize64 } from "../proto/varint.js";

/**
 * How mvcc talks to the lessor (lib/lease) without importing it: `exists` answers whether a lease
 * is granted; attach/detach keep the lessor's key sets in step with puts and deletes, as etcd's
 * kvstore_txn.go calls lessor.Attach / Detach. The `key` passed is the store's own copy (see
 * ByteArena), never mutated and never a view into a request, so a lessor may keep it as is.
 */
export interface LeaseHooks {
  exists(id: bigint): boolean;
  attach(id: bigint, key: Buffer): void;
  detach(id: bigint, key: Buffer): void;
}

/** Options of MvccStore; every limit has a default. */
export interface MvccStoreOptions {
  leaseHooks?: LeaseHooks;
  /** Watchers one stream may hold (default 10,000); more are answered as a failed create. */
  maxWatchersPerStream?: number;
  /** Most revisions per catch-up watch response (default 1000, etcd's watchBatchMaxRevs). */
  maxEventsPerWatchResponse?: number;
  /** Control responses kept for a stream whose client is not reading (default 1024). */
  maxPendingResponsesPerStream?: number;
  /** Fragment threshold for watchers that ask for fragment (default 1.5 MiB, etcd's). */
  maxRequestBytes?: number;
  /**
   * Catch-up rounds run inside one handle()/resume() (default 1000: with 1000 revisions a round,
   * a million revisions; a transport that applies backpressure pauses the stream long before).
   */
  maxSyncStepsPerCall?: number;
  /**
   * Bytes per chunk the store copies keys into (default 64 KiB; see ByteArena). A request's key
   * is a view into the request's buffer and must be copied; keys copied into Node's shared
   * Buffer pool pinned a pool slab each.
   */
  keyArenaChunkBytes?: number;
  /** Bytes per chunk the store copies values into (default 1 MiB; see ByteArena). */
  valueArenaChunkBytes?: number;
  /**
   * "sync" (default): compact() does the physical part (the new record log and key index) before
   * it returns. "stepped": compact() does the logical part only and the caller runs the physical
   * part with compactionStep() (the server, between other work: see compactionStep).
   */
  physicalCompaction?: "sync" | "stepped";
  /**
   * Work units of one compactionStep() (default 8192; see CompactionJob.step). Measured on the
   * shared 2-core box (bench/mvcc.bench.ts' sizes, 256-byte values, 20 puts between steps): at 1M
   * keys 1,620 steps, median 0.3 ms, p99 1.0-1.3 ms, max 4.7-5.5 ms; 16,384 gave p99 6-9 ms.
   */
  compactionStepUnits?: number;
  /** Called when compact() leaves physical work to compactionStep() ("stepped" only). */
  onCompactionPending?: () => void;
}

/** Counts for quota, status and metrics. */
export interface MvccStats {
  /** Live keys. */
  keys: number;
  /** Records held (puts and tombstones, every revision since the last compaction). */
  revisions: number;
  /** Approximate bytes the same records take in etcd's bbolt key bucket. */
  approximateBytes: number;
}

/** etcd's HashKV answer. */
export interface MvccHash {
  hash: number;
  compactRevision: number;
  revision: number;
}

/**
 * A point-in-time view of every record the store holds, as etcd's bbolt "key" bucket: what the
 * server writes into a db (snapshot) file. Taking one is O(1) and writes may continue while it is
 * read: records are immutable and the log it reads is only ever appended to (compaction builds a
 * new one).
 */
export interface MvccSnapshot {
  readonly revision: number;
  /** etcd's compactMainRev (-1 if never compacted); the db file's meta bucket records it. */
  readonly compactRevision: number;
  /**
   * The compaction revision the records are physically compacted to, when below compactRevision
   * (a snapshot taken while a stepped compaction runs holds records it will drop): a db file
   * records it as etcd's finishedCompactRev (compactRevision as scheduledCompactRev), and loading
   * it compacts again, as etcd does after a crash mid-compaction. Absent: compactRevision.
   */
  readonly finishedCompactRevision?: number;
  readonly recordCount: number;
  /**
   * Which history the records are of (opaque): two snapshots with the same one share their
   * records up to the smaller recordCount (records are only appended to it; a compaction or a
   * restore starts another). What lets a db file be extended in place with only the records
   * since the last one (lib/btree's in-place commits). Optional for other MvccSnapshot makers.
   */
  readonly history?: object;
  /**
   * The key bucket's entries in bbolt key order: [revision key (8-byte big-endian main, '_',
   * 8-byte sub, plus 't' for a tombstone), marshaled mvccpb.KeyValue]. Views into chunks that
   * are never reused, so they stay valid as long as the caller keeps them; never mutate them.
   */
  records(): IterableIterator<[Buffer, Buffer]>;
  /**
   * The same entries through a cursor (lib/btree's BoltEntryCursor: one reused buffer, no object
   * per record): what the db file writer reads. Optional for other MvccSnapshot makers. With
   * `forPlanning`, as lib/btree's BoltBucketSource.cursor: revision keys and value lengths only.
   * `fromRecord` skips the records before it (those an earlier snapshot of the same history
   * already wrote).
   */
  cursor?(forPlanning?: boolean, fromRecord?: number): BoltEntryCursor;
  /**
   * Makes the cursors made from now on record, as a writer lays their entries out in a file
   * (BoltEntryCursor.placed), where each value lands: for moveValuesTo, which then moves the
   * records from `fromRecord` on (default 0). Costs 8 bytes per record until moveValuesTo ends.
   */
  recordValuePositions?(fromRecord?: number): void;
  /**
   * The file a cursor's entries were last written to (recordValuePositions) is durable and opened
   * as `file`: the captured records read their values from it from now on and the memory that held
   * them goes (RecordLog, "Values in a db file"). A generator: each next() moves at most
   * `rowsPerStep` rows (a reader between two steps sees either place; both hold the same bytes).
   * Returns false, moving nothing, when no full write was recorded (e.g. an inline key bucket).
   */
  moveValuesTo?(file: ValueFile, rowsPerStep: number): Generator<void, boolean, void>;
}

/** Size of the chunks snapshot().records() encodes into (records larger get their own). */
const snapshotChunkBytes = 1 << 20;

/** Which branch each (nested) txn takes, decided before any write (etcd compareToPath). */
interface TxnPath {
  succeeded: boolean;
  /** One entry per RequestTxn op of the chosen branch, in order. */
  nested: TxnPath[];
}

function view(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** etcd mkGteRange: a range_end of "\0" means every key >= key (open end). */
type RangeEnd = Buffer | "single" | "open";
function rangeEndOf(rangeEnd: Uint8Array): RangeEnd {
  if (rangeEnd.length === 0) return "single";
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return "open";
  return view(rangeEnd);
}

/** Shared zero lease: decoded requests carry a fresh 0n BigInt object each. */
const noLease = 0n;

/**
 * Longest walk back along one key's chain of records before a watch catch-up reads the log
 * forward instead (see #keyRecordsFrom).
 */
const keyChainWalkMaxRows = 4096;

function innerHeader(revision: number): ResponseHeader {
  return { clusterId: 0n, memberId: 0n, revision, raftTerm: 0 };
}

function compareBig(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * etcd isTxnReadonly (etcdserver/apply.go): every op of both branches is a range; a nested txn
 * counts as a write, whatever it holds. The server uses the same rule to serve a txn without raft.
 */
export function isTxnReadOnly(req: TxnRequest): boolean {
  for (const op of req.success) if (op.request.oneofKind !== "requestRange") return false;
  for (const op of req.failure) if (op.request.oneofKind !== "requestRange") return false;
  return true;
}

/**
 * etcd's mvcc store with the applier's request semantics. Synchronous and single-threaded: the
 * server applies committed entries one at a time; reads see the last applied state.
 */
export class MvccStore {
  /** Every record held, in revision order, and the keys (see record-log.ts). */
  #log: RecordLog;
  /** Key order: the slots of #log.keys by key bytes. */
  #index: SlotBTree;
  /** etcd starts at revision 1 with nothing in it. */
  #currentRev = 1;
  /** etcd's compactMainRev: -1 until the first compaction. */
  #compactRev = -1;
  /** The compaction revision #log is physically compacted to (below #compactRev while a job runs). */
  #finishedCompactRev = -1;
  /** The physical part of a compaction in progress ("stepped"), whose log is #log. */
  #compaction: CompactionJob | undefined = undefined;
  /** A compaction revision above the running job's, to start once it is done (-1: none). */
  #queuedCompactRev = -1;
  readonly #steppedCompaction: boolean;
  readonly #compactionStepUnits: number;
  readonly #onCompactionPending: (() => void) | undefined;
  /**
   * Tombstones at exactly #compactRev that the last compaction dropped (etcd drops them too), in
   * sub revision order, keys copied: a watch catching up from #compactRev still gets their delete
   * events, which etcd's chooseAll (minRev < compactRev) would lose. Held until the next
   * compaction or restore; a restart from a db file no longer has them, as etcd.
   */
  #tombstonesAtCompactRev: Rec[] = [];
  #liveKeys = 0;
  #bytes = 0;
  /** First row of the write in progress (its changes are the rows from here); -1 outside one. */
  #writeStart = -1;
  readonly #hooks: LeaseHooks | undefined;
  readonly #hub: WatchHub;
  readonly #keyArenaChunkBytes: number;
  readonly #valueArenaChunkBytes: number;

  /** See MvccStoreOptions for the limits and their defaults. */
  constructor(opts?: MvccStoreOptions) {
    this.#hooks = opts?.leaseHooks;
    this.#keyArenaChunkBytes = opts?.keyArenaChunkBytes ?? 64 * 1024;
    this.#valueArenaChunkBytes = opts?.valueArenaChunkBytes ?? 1024 * 1024;
    this.#steppedCompaction = opts?.physicalCompaction === "stepped";
    this.#compactionStepUnits = opts?.compactionStepUnits ?? 8192;
    this.#onCompactionPending = opts?.onCompactionPending;
    this.#log = new RecordLog(this.#keyArenaChunkBytes, this.#valueArenaChunkBytes);
    this.#index = new SlotBTree(this.#log.keys, { memory: this.#log.slabs });
    // Getters (not arrows) so the watch side always sees the live revisions.
    const store = this;
    const src: WatchSource = {
      get currentRevision() {
        return store.#currentRev;
      },
      get compactRevision() {
        return store.#compactRev;
      },
      keyRecordsFrom: (key, minRev) => this.#keyRecordsFrom(key, minRev),
      recordsFrom: (minRev, match) => this.#recordsFrom(minRev, match),
      recordBefore: (r) => this.#recordBefore(r),
    };
    this.#hub = new WatchHub(src, {
      maxWatchersPerStream: opts?.maxWatchersPerStream ?? 10_000,
      maxEventsPerWatchResponse: opts?.maxEventsPerWatchResponse ?? 1000,
      maxPendingResponsesPerStream: opts?.maxPendingResponsesPerStream ?? 1024,
      maxRequestBytes: opts?.maxRequestBytes ?? 1.5 * 1024 * 1024,
      maxSyncStepsPerCall: opts?.maxSyncStepsPerCall ?? 1000,
    });
  }

  /** The revision of the last write; 1 for an empty store (as etcd). */
  get currentRevision(): number {
    return this.#currentRev;
  }

  /** The last compaction revision; -1 until the first compaction (etcd's compactMainRev). */
  get compactRevision(): number {
    return this.#compactRev;
  }

  /** Watchers on every stream (etcd_debugging_mvcc_watcher_total). */
  get watcherCount(): number {
    return this.#hub.watcherCount;
  }

  // ------------------------------------------------------------------ reads

  /**
   * etcd's Range with every RangeRequest option (apply.go Range over kvstore_txn rangeKeys):
   * range_end empty = one key, "\0" = every key >= key; revision 0 = current; count is the number
   * of keys in the range before limit and min/max filters; limit sets `more`; sort and the
   * min/max filters run on the whole range first; keys_only drops values; count_only returns only
   * the count. The header is left unset (the server fills it with currentRevision).
   * Throws MvccFutureRevError (revision > current) or MvccCompactedError (revision < compacted).
   */
  range(req: RangeRequest): RangeResponse {
    return this.#rangeAt(req, this.#readRev());
  }

  /** Inside a write, reads see its changes at currentRevision + 1 (etcd storeTxnWrite.Range). */
  #readRev(): number {
    return this.#writeStart >= 0 && this.#log.length > this.#writeStart
      ? this.#currentRev + 1
      : this.#currentRev;
  }

  #rangeAt(req: RangeRequest, curRev: number): RangeResponse {
    let rev = req.revision;
    if (rev > curRev) throw new MvccFutureRevError();
    if (rev <= 0) rev = curRev;
    if (rev < this.#compactRev) throw new MvccCompactedError();
    const key = view(req.key);
    const end = rangeEndOf(req.rangeEnd);
    if (req.countOnly) {
      let count = 0;
      this.#visit(key, end, rev, () => void count++);
      return { header: undefined, kvs: [], more: false, count };
    }
    const filtered =
      req.sortOrder !== RangeRequest_SortOrder.NONE ||
      req.minModRevision !== 0 ||
      req.maxModRevision !== 0 ||
      req.minCreateRevision !== 0 ||
      req.maxCreateRevision !== 0;
    const log = this.#log;
    if (!filtered && req.sortTarget === RangeRequest_SortTarget.KEY) {
      // key order as visited, no filter: KeyValues straight from the rows (no Rec each)
      const kvs: KeyValue[] = [];
      const max = req.limit > 0 ? req.limit : Infinity;
      const keysOnly = req.keysOnly;
      let count = 0;
      this.#visit(key, end, rev, (row) => {
        if (count++ < max) kvs.push(log.keyValue(row, keysOnly));
      });
      return { header: undefined, kvs, more: count > kvs.length, count };
    }
    // Fetch one extra to know `more`, unless sorting/filtering needs everything.
    const fetch = !filtered && req.limit > 0 ? req.limit + 1 : 0;
    let recs: Rec[] = [];
    let count = 0;
    this.#visit(key, end, rev, (row) => {
      count++;
      if (fetch === 0 || recs.length < fetch) recs.push(log.rec(row));
    });
    if (req.maxModRevision !== 0) recs = recs.filter((r) => r.main <= req.maxModRevision);
    if (req.minModRevision !== 0) recs = recs.filter((r) => r.main >= req.minModRevision);
    if (req.maxCreateRevision !== 0) {
      recs = recs.filter((r) => r.createRevision <= req.maxCreateRevision);
    }
    if (req.minCreateRevision !== 0) {
      recs = recs.filter((r) => r.createRevision >= req.minCreateRevision);
    }
    let order = req.sortOrder;
    // etcd: results come in key order, so a non-key target without an order sorts ascending.
    if (req.sortTarget !== RangeRequest_SortTarget.KEY && order === RangeRequest_SortOrder.NONE) {
      order = RangeRequest_SortOrder.ASCEND;
    }
    if (order === RangeRequest_SortOrder.ASCEND || order === RangeRequest_SortOrder.DESCEND) {
      const cmp = sortComparator(req.sortTarget);
      if (cmp !== undefined) {
        recs.sort(order === RangeRequest_SortOrder.ASCEND ? cmp : (a, b) => cmp(b, a));
      }
    }
    let more = false;
    if (req.limit > 0 && recs.length > req.limit) {
      recs.length = req.limit;
      more = true;
    }
    const kvs = recs.map((r) => recToKeyValue(r, req.keysOnly));
    return { header: undefined, kvs, more, count };
  }

  /** Calls fn with the row of each key of the range that is live at rev, in key order. */
  #visit(key: Buffer, end: RangeEnd, rev: number, fn: (row: number) => void): void {
    if (end === "single") {
      const slot = this.#index.find(key);
      const row = slot < 0 ? -1 : this.#visibleRow(slot, rev);
      if (row >= 0) fn(row);
      return;
    }
    this.#index.ascend(key, end === "open" ? undefined : end, (slot) => {
      const row = this.#visibleRow(slot, rev);
      if (row >= 0) fn(row);
    });
  }

  // ------------------------------------------------------------------ writes

  /**
   * etcd's Put (apply.go): optional prev_kv, ignore_value (keep the current value), ignore_lease
   * (keep the current lease), lease attach/detach through the hooks. One new revision.
   * The header is left unset. Throws LeaseNotFoundError (lease != 0 unknown to the hooks; without
   * hooks every non-zero lease is unknown), KeyNotFoundError (ignore_value / ignore_lease on a
   * missing key). A failed put changes nothing.
   */
  put(req: PutRequest): PutResponse {
    if (req.lease !== 0n && !this.#leaseExists(req.lease)) throw new LeaseNotFoundError();
    // #write without its closure: this is the hottest write
    this.#beginWrite();
    try {
      return this.#applyPut(req);
    } finally {
      this.#endWrite();
    }
  }

  /**
   * etcd's DeleteRange: deletes the live keys of the range (range_end rules as range()) in one
   * revision, returns how many, and their previous values with prev_kv. Deleting nothing does not
   * advance the revision. The header is left unset.
   */
  deleteRange(req: DeleteRangeRequest): DeleteRangeResponse {
    return this.#write(() => this.#applyDeleteRange(req));
  }

  /**
   * etcd's Txn: every compare (and the compares of nested txns in the chosen branches) is
   * evaluated against the state before the txn; then every put of the chosen path is checked
   * (ignore_value / ignore_lease need the key, the lease must exist) and every range's revision,
   * before anything is written, so a failing txn changes nothing. The ops then run in one
   * revision (one sub-revision per change); ranges see the txn's earlier writes. Inner responses
   * carry a header with only `revision` (as etcd's applier); the top-level header is left unset.
   * Throws KeyNotFoundError, LeaseNotFoundError, MvccFutureRevError, MvccCompactedError.
   */
  txn(req: TxnRequest): TxnResponse {
    const path = this.#compareToPath(req);
    const readOnly = isTxnReadOnly(req);
    if (!readOnly) this.#checkTxnOps(req, path, "put");
    this.#checkTxnOps(req, path, "range");
    if (readOnly) return this.#applyTxnOps(req, path);
    return this.#write(() => this.#applyTxnOps(req, path));
  }

  /**
   * Deletes `keys` in ONE revision (lease revoke, etcd lessor.Revoke's txn), detaching their
   * leases. Keys that do not exist are skipped. Returns how many existed.
   */
  deleteKeys(keys: Buffer[]): number {
    return this.#write(() => {
      const log = this.#log;
      let n = 0;
      for (const k of keys) {
        const slot = this.#index.find(view(k));
        if (slot < 0) continue;
        const last = log.keys.newest(slot);
        if (log.isTombstone(last)) continue;
        this.#appendTombstone(slot, last);
        n++;
      }
      return n;
    });
  }

  /**
   * Compaction (etcd kvstore.Compact + keyIndex.compact): history at and below `revision` is
   * dropped, keeping for each key the latest record at or below it unless that is a tombstone;
   * keys left with nothing leave the index. Reads below `revision` fail with MvccCompactedError
   * from now on, and watchers below it get their compacted response. Throws MvccCompactedError if
   * revision <= compactRevision, MvccFutureRevError if revision > currentRevision.
   *
   * The physical part copies the survivors into a new record log (keys and values into fresh
   * arenas, keys renumbered in key order) and builds the key index over it (CompactionJob); a
   * snapshot taken before keeps reading the old log. With physicalCompaction "sync" it runs here,
   * O(keys + records); with "stepped" it is left to compactionStep() (reads, writes and
   * snapshots meanwhile use the old log and give the same answers), and a compaction arriving
   * while one runs is done after it (the later revision only: compacting at r1 then r2 keeps what
   * compacting at r2 alone keeps).
   */
  compact(revision: number): void {
    if (revision <= this.#compactRev) throw new MvccCompactedError();
    if (revision > this.#currentRev) throw new MvccFutureRevError();
    this.#compactRev = revision;
    // the dropped tombstones of the previous compaction are below it; this one's are in the log
    // until its job is done
    this.#tombstonesAtCompactRev = [];
    if (this.#compaction === undefined) this.#startCompaction(revision);
    else this.#queuedCompactRev = revision;
    if (this.#steppedCompaction) this.#onCompactionPending?.();
    else this.finishCompaction();
    // Unsynced watchers below the new compaction point get their compacted response now.
    this.#hub.syncWatchers();
  }

  /** True while the physical part of a compaction is left to do (compactionStep). */
  get compactionPending(): boolean {
    return this.#compaction !== undefined;
  }

  /**
   * One bounded step (compactionStepUnits of work) of the pending physical compaction; when it
   * completes, the store switches to the new log at once. Returns true while work remains. The
   * server calls it between other work (setImmediate) until it returns false.
   */
  compactionStep(): boolean {
    return this.#runCompaction(this.#compactionStepUnits);
  }

  /** Runs the pending physical compaction (and a queued one) to the end now. */
  finishCompaction(): void {
    this.#runCompaction(Infinity);
  }

  /**
   * Drops a pending physical compaction without finishing it (the store is closing): the store
   * keeps its current log, whose reads stay right, and holds nothing more.
   */
  close(): void {
    this.#compaction = undefined;
    this.#queuedCompactRev = -1;
  }

  #startCompaction(revision: number): void {
    this.#compaction = new CompactionJob(
      this.#log,
      this.#index,
      revision,
      this.#keyArenaChunkBytes,
      this.#valueArenaChunkBytes,
    );
  }

  #runCompaction(units: number): boolean {
    const job = this.#compaction;
    if (job === undefined) return false;
    if (!job.step(units)) return true;
    this.#log = job.log;
    this.#index = job.index;
    this.#bytes = job.bytes;
    this.#finishedCompactRev = job.revision;
    if (job.revision === this.#compactRev) this.#tombstonesAtCompactRev = job.droppedTombstones();
    this.#compaction = undefined;
    const queued = this.#queuedCompactRev;
    this.#queuedCompactRev = -1;
    if (queued < 0) return false;
    this.#startCompaction(queued);
    if (units === Infinity) return this.#runCompaction(units);
    return true;
  }

  /**
   * Checks the store's invariants, O(records): the log is in strictly increasing revision order;
   * each row links to the previous row of its key and each key to its newest row; the index holds
   * every key once in key order; no key's only record is a tombstone at or below the compaction
   * point; counts match. Throws MvccInvariantError naming the first broken one (BTreeInvariantError
   * for the index). For tests and debugging; never needed in normal operation.
   */
  checkInvariants(): void {
    const log = this.#log;
    const keys = log.keys;
    const lastRow = new Int32Array(keys.length).fill(-1);
    const records = new Int32Array(keys.length);
    let bytes = 0;
    for (let r = 0; r < log.length; r++) {
      if (r > 0) {
        const m0 = log.main(r - 1);
        const m1 = log.main(r);
        mvccAssert(
          m0 < m1 || (m0 === m1 && log.sub(r - 1) < log.sub(r)),
          `log out of order at ${r}`,
        );
      }
      const slot = log.keySlot(r);
      mvccAssert(slot >= 0 && slot < keys.length, `row ${r} names slot ${slot}`);
      mvccAssert(
        log.prevRow(r) === lastRow[slot],
        `row ${r} does not link to its key's previous row`,
      );
      lastRow[slot] = r;
      records[slot]!++;
      bytes += log.approximateBytes(r);
    }
    mvccAssert(
      log.length === 0 || log.main(log.length - 1) <= this.#currentRev,
      "record above current revision",
    );
    this.#index.checkInvariants();
    mvccAssert(
      this.#index.size === keys.length,
      `index holds ${this.#index.size} of ${keys.length} keys`,
    );
    let live = 0;
    const seen = new Uint8Array(keys.length);
    this.#index.ascend(undefined, undefined, (slot) => {
      mvccAssert(seen[slot] === 0, `slot ${slot} twice in the index`);
      seen[slot] = 1;
      const newest = keys.newest(slot);
      mvccAssert(newest === lastRow[slot] && newest >= 0, `slot ${slot}: newest row ${newest}`);
      mvccAssert(
        records[slot]! > 1 ||
          !log.isTombstone(newest) ||
          log.main(newest) > this.#finishedCompactRev,
        `lone tombstone at or below the compaction point for ${keys.key(slot).toString("hex")}`,
      );
      if (!log.isTombstone(newest)) live++;
    });
    mvccAssert(live === this.#liveKeys, `live keys ${live}, counted ${this.#liveKeys}`);
    mvccAssert(bytes === this.#bytes, `bytes ${bytes}, counted ${this.#bytes}`);
  }

  /**
   * Where the values are: bytes of value arena chunks held in memory, and the value files the
   * records read values from (RecordLog, "Values in a db file").
   */
  valueMemory(): { arenaBytes: number; files: number } {
    return { arenaBytes: this.#log.values.allocatedBytes, files: this.#log.fileCount };
  }

  /** Live keys, records held and approximate backend bytes (for quota, status, metrics). */
  stats(): MvccStats {
    return { keys: this.#liveKeys, revisions: this.#log.length, approximateBytes: this.#bytes };
  }

  /**
   * etcd's HashByRev: CRC-32C (Castagnoli) over "key" then, in revision order, each held record
   * with main revision <= `revision` as etcd's backend stores it (17-byte revision key, 't'
   * appended for tombstones, then the marshaled KeyValue; a tombstone's is only the key); records
   * at or below the compaction point count only if a compaction at `revision` would keep them.
   * `revision` 0 = current. Matches real etcd's hash for the same history. O(records). While a
   * compaction's physical part is pending (compactionStep) the log still holds records it drops:
   * they never count, so the hash is the one after it (the same on every member, whatever its
   * progress).
   * Throws MvccCompactedError (0 < revision <= compactRevision), MvccFutureRevError.
   */
  hashKV(revision: number): MvccHash {
    const compactRev = this.#compactRev;
    if (revision > 0 && revision <= compactRev) throw new MvccCompactedError();
    if (revision > 0 && revision > this.#currentRev) throw new MvccFutureRevError();
    const rev = revision === 0 ? this.#currentRev : revision;
    const log = this.#log;
    // etcd kvindex.Keep(rev): the record each key shows at rev; only consulted for records at or
    // below the compaction point (rows [0, compacted)), so only those are marked. `kept`: the
    // records there the compaction keeps (each key's newest, unless a tombstone), which are all
    // the rows there once its physical part is done.
    const compacted = log.firstRowAtOrAfter(compactRev + 1);
    const keep = new Uint8Array(compacted);
    const kept = new Uint8Array(compacted);
    let keepAny = false;
    this.#index.ascend(undefined, undefined, (slot) => {
      let r = log.keys.newest(slot);
      while (r >= 0 && log.main(r) > rev) r = log.prevRow(r);
      if (r >= 0 && !log.isTombstone(r)) {
        keepAny = true;
        if (r < compacted) keep[r] = 1;
      }
      while (r >= 0 && log.main(r) > compactRev) r = log.prevRow(r);
      if (r >= 0 && !log.isTombstone(r)) kept[r] = 1;
    });
    let crc = CRC32C.buf(Buffer.from("key"));
    let scratch = Buffer.allocUnsafe(4096);
    for (let r = 0; r < log.length; r++) {
      if (log.main(r) > rev) break;
      if (r < compacted && (keepAny ? keep[r] : kept[r]) === 0) continue;
      const need = rowEncodedMaxBytes(log, r);
      if (need > scratch.length) scratch = Buffer.allocUnsafe(need * 2);
      const n = encodeRow(log, r, scratch, 0);
      crc = CRC32C.buf(scratch.subarray(0, n), crc);
    }
    return { hash: crc >>> 0, compactRevision: compactRev, revision: this.#currentRev };
  }

  // ------------------------------------------------------------------ snapshot / restore

  /** A point-in-time view of every record, for the db (snapshot) file writer. O(1). */
  snapshot(): MvccSnapshot {
    // rows [0, count) of this log never change; a compaction replaces the log, not its rows
    const log = this.#log;
    const count = log.length;
    /** File position of each row's value bytes (-1: none), while recording (see MvccSnapshot). */
    let positions: Float64Array | undefined;
    /** The first row positions are recorded for (recordValuePositions). */
    let fromRow = 0;
    return {
      revision: this.#currentRev,
      compactRevision: this.#compactRev,
      finishedCompactRevision: this.#finishedCompactRev,
      recordCount: count,
      history: log,
      *records(): IterableIterator<[Buffer, Buffer]> {
        // Records are encoded back to back into chunks that are never reused, and handed out as
        // views: no per-record allocation of backing memory, no copy.
        let chunk = Buffer.allocUnsafeSlow(snapshotChunkBytes);
        let used = 0;
        for (let r = 0; r < count; r++) {
          const need = rowEncodedMaxBytes(log, r);
          if (used + need > chunk.length) {
            chunk = Buffer.allocUnsafeSlow(Math.max(snapshotChunkBytes, need));
            used = 0;
          }
          const n = encodeRow(log, r, chunk, used) - used;
          const keyBytes = log.isTombstone(r) ? 18 : 17;
          yield [chunk.subarray(used, used + keyBytes), chunk.subarray(used + keyBytes, used + n)];
          used += n;
        }
      },
      cursor: (forPlanning = false, fromRecord = 0) =>
        forPlanning
          ? new RowCursor(log, count, undefined, true, fromRecord)
          : new RowCursor(log, count, positions, false, fromRecord),
      recordValuePositions: (fromRecord = 0) => {
        positions = new Float64Array(count).fill(-1);
        fromRow = fromRecord;
      },
      *moveValuesTo(file: ValueFile, rowsPerStep: number): Generator<void, boolean, void> {
        const at = positions;
        if (at === undefined) return false;
        // every value must have been placed: checked in steps too (millions of rows at scale)
        for (let r = fromRow; r < count; r++) {
          if (log.valueLength(r) > 0 && !(at[r]! >= 0)) return false;
          if ((r + 1) % rowsPerStep === 0) yield;
        }
        const slot = log.addFile(file);
        // a block read ahead before the write may hold what those pages held before (in place)
        forgetValueFileCaches();
        for (let r = fromRow; r < count; r++) {
          const p = at[r]!;
          if (p >= 0) log.moveValueToFile(r, slot, p);
          if ((r + 1) % rowsPerStep === 0) yield;
        }
        positions = undefined;
        // the block read ahead may be of the file the values left: let that file go
        forgetValueFileCaches();
        return true;
      },
    };
  }

  /**
   * Replaces the whole state with a snapshot's (etcd's kvstore.Restore after a follower received
   * the leader's db file): the store is emptied and restored from `records` as restore() does, and
   * watchers stay open: every synced watcher becomes unsynced from the revision after the old
   * current revision, so it catches up from the new history (or is told its revision was
   * compacted), as etcd's watchableStore.Restore. Lease attachments of the old keys are the
   * caller's to drop (restore the lessor first). `valueFile` as restore's. Throws
   * MvccRestoreError for a malformed entry.
   */
  replaceFromSnapshot(
    records: Iterable<[Uint8Array, Uint8Array]> | RawKeyRecords,
    compactRevision: number,
    valueFile?: ValueFile,
  ): void {
    if (this.#writeStart !== -1) {
      throw new MvccRestoreError("ErrRestoreNotEmpty", "a write is in progress");
    }
    const nextRev = this.#currentRev + 1;
    this.close();
    this.#log = new RecordLog(this.#keyArenaChunkBytes, this.#valueArenaChunkBytes);
    this.#index = new SlotBTree(this.#log.keys, { memory: this.#log.slabs });
    this.#currentRev = 1;
    this.#compactRev = -1;
    this.#finishedCompactRev = -1;
    this.#tombstonesAtCompactRev = [];
    this.#liveKeys = 0;
    this.#bytes = 0;
    // blocks of the files the old records read from would keep those files open
    forgetValueFileCaches();
    this.restore(records, compactRevision, valueFile);
    this.#hub.unsyncAll(nextRev);
  }

  /**
   * Loads an empty store from etcd's key-bucket entries (any order; as read from a db file made
   * by etcd or by snapshot()), as etcd's kvstore.restore: the current revision is the highest main
   * revision seen (at least `compactRevision`, and 1 for an empty bucket); leases of live keys are
   * re-attached through the hooks. `compactRevision` comes from the db's meta bucket (etcd's
   * finishedCompactRev; -1 if none). Entries are copied as they are read, so the source may reuse
   * its buffers (a db file read page by page); a source that also offers RawKeyRecords is read
   * through it (no object per entry). With `valueFile` (the db file the raw entries are read from,
   * durable), the values of entries whose file position the source gives stay in that file and are
   * read from it (RecordLog, "Values in a db file"), not copied. Throws MvccRestoreError if the
   * store is not empty or an entry is malformed.
   */
  restore(
    records: Iterable<[Uint8Array, Uint8Array]> | RawKeyRecords,
    compactRevision: number,
    valueFile?: ValueFile,
  ): void {
    if (this.#log.length !== 0 || this.#currentRev !== 1 || this.#index.size !== 0) {
      throw new MvccRestoreError("ErrRestoreNotEmpty", "the store is not empty");
    }
    // an empty store's pending compaction (at revision 1) would replace the restored log
    this.close();
    // keys are deduped through a scratch index with nodes of its own (filled in the file's order,
    // ~70 % full); the store's index is that one packed, in the log's slabs
    const r = new RestoreRun(this.#log, new SlotBTree(this.#log.keys), valueFile);
    if ("forEachRaw" in records) {
      records.forEachRaw((buf, keyStart, keyEnd, valueEnd, bufPosition = -1) => {
        r.add(buf, keyStart, keyEnd, buf, keyEnd, valueEnd, bufPosition);
      });
    } else {
      for (const [k, v] of records) r.add(view(k), 0, k.length, view(v), 0, v.length);
    }
    if (r.spilled !== undefined) {
      // A db file yields revision order; another source may not: sort, then load again.
      const all: [Buffer, Buffer][] = [];
      for (const [k, v] of this.snapshot().records()) all.push([k, v]);
      all.push(...r.spilled);
      all.sort((a, b) => Buffer.compare(a[0].subarray(0, 17), b[0].subarray(0, 17)));
      this.#log = new RecordLog(this.#keyArenaChunkBytes, this.#valueArenaChunkBytes);
      this.#index = new SlotBTree(this.#log.keys, { memory: this.#log.slabs });
      this.restore(all, compactRevision);
      return;
    }
    const log = this.#log;
    this.#index = r.index.repacked({ memory: log.slabs });
    // Slot order follows the file's, so these reads go through the tables in memory order.
    let live = 0;
    for (let slot = 0; slot < log.keys.length; slot++) {
      const last = log.keys.newest(slot);
      if (log.isTombstone(last)) continue;
      live++;
      const lease = log.lease(last);
      if (lease !== 0n) this.#hooks?.attach(lease, log.keys.key(slot));
    }
    this.#liveKeys = live;
    this.#bytes = r.bytes;
    const top = log.length > 0 ? log.main(log.length - 1) : 1;
    this.#currentRev = Math.max(top, compactRevision, 1);
    this.#compactRev = compactRevision;
    this.#finishedCompactRev = compactRevision;
    this.#tombstonesAtCompactRev = [];
  }

  // ------------------------------------------------------------------ watch

  /** Opens one client watch stream (etcd's serverWatchStream minus the transport). */
  newWatchStream(sink: WatchSink): WatchStream {
    return this.#hub.newStream(sink);
  }

  /**
   * etcd's progress ticker: each progress_notify watcher that is synced and got no events since
   * the previous call receives an empty response with the current revision. Call on a timer
   * (etcd: every 10 minutes).
   */
  progressNotify(): void {
    this.#hub.progressNotify();
  }

  /**
   * One catch-up round for unsynced watchers on streams that can send. Writes and resume() already
   * run rounds; call this periodically (etcd: every 100 ms) so a stream created with an old
   * start_revision on an idle store finishes catching up. Returns true while work remains.
   */
  syncWatchers(): boolean {
    return this.#hub.syncWatchers();
  }

  // ------------------------------------------------------------------ internals

  #leaseExists(id: bigint): boolean {
    return this.#hooks !== undefined && this.#hooks.exists(id);
  }

  /** Runs fn as one write; its changes become revision currentRevision + 1, then watchers hear. */
  #write<T>(fn: () => T): T {
    this.#beginWrite();
    try {
      return fn();
    } finally {
      this.#endWrite();
    }
  }

  /** Opens a write: rows appended until #endWrite share one new revision. */
  #beginWrite(): void {
    mvccAssert(this.#writeStart < 0, "nested write");
    this.#writeStart = this.#log.length;
  }

  /** Closes a write (always call it, in a finally): advances the revision if anything changed. */
  #endWrite(): void {
    const start = this.#writeStart;
    this.#writeStart = -1;
    const log = this.#log;
    // Changes already made stay made even if the write threw after them (it should not: txn
    // checks first), so the revision must still advance.
    if (log.length === start) return;
    this.#currentRev++;
    const changes: Rec[] = [];
    if (this.#hub.hasSyncedWatchers)
      for (let r = start; r < log.length; r++) changes.push(log.rec(r));
    this.#hub.notify(this.#currentRev, changes);
  }

  #applyPut(req: PutRequest): PutResponse {
    const key = view(req.key);
    const log = this.#log;
    const slot = this.#index.find(key);
    const last = slot < 0 ? -1 : log.keys.newest(slot);
    const prev = last >= 0 && !log.isTombstone(last) ? last : -1;
    if ((req.ignoreValue || req.ignoreLease) && prev < 0) throw new KeyNotFoundError();
    const lease = req.ignoreLease ? log.lease(prev) : req.lease;
    const resp: PutResponse = {
      header: undefined,
      prevKv: req.prevKv && prev >= 0 ? recToKeyValue(log.rec(prev)) : undefined,
    };
    if (req.ignoreValue) {
      const p = prev;
      this.#appendPut(
        key,
        slot,
        p,
        log.valueChunkId(p),
        log.valueOffset(p),
        log.valueLength(p),
        lease,
      );
    } else {
      const v = req.value;
      const chunk = log.values.place(v, 0, v.length);
      this.#appendPut(key, slot, prev, chunk, log.values.placedOffset, v.length, lease);
    }
    return resp;
  }

  /** Appends a put of `key` (slot -1: a key not yet in the index) whose value is in the arena. */
  #appendPut(
    key: Buffer,
    slot: number,
    prev: number,
    valueChunk: number,
    valueOffset: number,
    valueLength: number,
    lease: bigint,
  ): void {
    const log = this.#log;
    const rev = this.#currentRev + 1;
    if (slot < 0) {
      slot = log.keys.add(key);
      this.#index.insert(key, slot);
    }
    log.append(
      slot,
      valueChunk,
      valueOffset,
      valueLength,
      rev,
      log.length - this.#writeStart,
      prev >= 0 ? log.createRevision(prev) : rev,
      prev >= 0 ? log.version(prev) + 1 : 1,
      lease === 0n ? noLease : lease,
    );
    if (prev < 0) this.#liveKeys++;
    this.#bytes += Rec.approximateBytesOf(key.length, valueLength);
    // etcd kvstore_txn put: detach from the old lease, attach to the new one.
    if (this.#hooks !== undefined) {
      const prevLease = prev >= 0 ? log.lease(prev) : noLease;
      if (prevLease !== 0n || lease !== 0n) {
        const stored = log.keys.key(slot);
        if (prevLease !== 0n) this.#detach(prevLease, stored);
        if (lease !== 0n) this.#hooks.attach(lease, stored);
      }
    }
  }

  /** The row of key `slot` visible at `rev` (a put, not a tombstone), -1 if none. */
  #visibleRow(slot: number, rev: number): number {
    const log = this.#log;
    let r = log.keys.newest(slot);
    while (r >= 0 && log.main(r) > rev) r = log.prevRow(r);
    return r >= 0 && !log.isTombstone(r) ? r : -1;
  }

  /**
   * Records of `key` with main revision >= minRev, in revision order (WatchSource). Walks the
   * key's chain back from its newest row; a chain longer than keyChainWalkMaxRows (a hot key with
   * a long uncompacted history) is read forward from the log instead, lazily, so a catch-up that
   * takes a batch at a time does not walk the whole history for each batch.
   */
  *#keyRecordsFrom(key: Buffer, minRev: number): Generator<Rec> {
    if (minRev <= this.#compactRev) {
      // the key's record at the compaction point is its newest at or below it: nothing before
      for (const t of this.#tombstonesAtCompactRev) if (t.key.equals(key)) yield t;
    }
    const slot = this.#index.find(key);
    if (slot < 0) return;
    const log = this.#log;
    const rows: number[] = [];
    let r = log.keys.newest(slot);
    for (; r >= 0 && log.main(r) >= minRev; r = log.prevRow(r)) {
      if (rows.length === keyChainWalkMaxRows) break;
      rows.push(r);
    }
    const stored = log.keys.key(slot);
    if (rows.length === keyChainWalkMaxRows && r >= 0 && log.main(r) >= minRev) {
      const last = log.keys.newest(slot);
      for (let i = log.firstRowAtOrAfter(minRev); i <= last; i++) {
        if (log.keySlot(i) === slot) yield log.rec(i, stored);
      }
      return;
    }
    for (let i = rows.length - 1; i >= 0; i--) yield log.rec(rows[i]!, stored);
  }

  /** Records with main revision >= minRev whose key passes `match`, in revision order. */
  *#recordsFrom(minRev: number, match: (key: Buffer) => boolean): Generator<Rec> {
    const log = this.#log;
    let r = log.firstRowAtOrAfter(minRev);
    const dropped = this.#tombstonesAtCompactRev;
    if (minRev <= this.#compactRev && dropped.length > 0) {
      // the compaction point's revision: held rows and dropped tombstones merged by sub revision
      const at: Rec[] = dropped.filter((t) => match(t.key));
      for (; r < log.length && log.main(r) === this.#compactRev; r++) {
        const key = log.key(r);
        if (match(key)) at.push(log.rec(r, key));
      }
      yield* at.sort((a, b) => a.sub - b.sub);
    }
    for (; r < log.length; r++) {
      const key = log.key(r);
      if (match(key)) yield log.rec(r, key);
    }
  }

  /** The record held just before `r` in its key's history, undefined if none or r is not held. */
  #recordBefore(r: Rec): Rec | undefined {
    const log = this.#log;
    let row = r.log === log ? r.row : -1;
    if (row < 0) {
      // a record read before a compaction: find it in this log by key and revision
      const slot = this.#index.find(r.key);
      if (slot < 0) return undefined;
      row = log.keys.newest(slot);
      while (
        row >= 0 &&
        (log.main(row) > r.main || (log.main(row) === r.main && log.sub(row) > r.sub))
      ) {
        row = log.prevRow(row);
      }
      if (row < 0 || log.main(row) !== r.main || log.sub(row) !== r.sub) return undefined;
    }
    const prev = log.prevRow(row);
    return prev < 0 ? undefined : log.rec(prev, r.key);
  }

  /** Appends a tombstone for key `slot`, whose newest row `live` is a put. */
  #appendTombstone(slot: number, live: number): void {
    const log = this.#log;
    log.append(slot, -1, 0, 0, this.#currentRev + 1, log.length - this.#writeStart, 0, 0, noLease);
    this.#liveKeys--;
    this.#bytes += Rec.approximateBytesOf(log.keys.keyLength(slot), 0);
    const lease = log.lease(live);
    if (lease !== 0n) this.#detach(lease, log.keys.key(slot));
  }

  /**
   * etcd's kvstore_txn logs a failed Detach and goes on (the lease may already be revoked, as
   * during lease revoke's own deletes): the write is already made and must not fail now.
   */
  #detach(lease: bigint, key: Buffer): void {
    try {
      this.#hooks?.detach(lease, key);
    } catch {
      // nothing to undo: the key simply is no longer attached anywhere
    }
  }

  #applyDeleteRange(req: DeleteRangeRequest): DeleteRangeResponse {
    const key = view(req.key);
    const end = rangeEndOf(req.rangeEnd);
    const log = this.#log;
    const live: number[] = [];
    this.#visit(key, end, this.#readRev(), (row) => void live.push(row));
    const prevKvs = req.prevKv ? live.map((row) => recToKeyValue(log.rec(row))) : [];
    for (const row of live) this.#appendTombstone(log.keySlot(row), row);
    return { header: undefined, deleted: live.length, prevKvs };
  }

  #compareToPath(req: TxnRequest): TxnPath {
    let ok = true;
    for (const c of req.compare) {
      if (!this.#applyCompare(c)) {
        ok = false;
        break;
      }
    }
    const nested: TxnPath[] = [];
    for (const op of ok ? req.success : req.failure) {
      if (op.request.oneofKind === "requestTxn")
        nested.push(this.#compareToPath(op.request.requestTxn));
    }
    return { succeeded: ok, nested };
  }

  /** etcd applyCompare: every key of the range must satisfy it; none = a zero KeyValue. */
  #applyCompare(c: Compare): boolean {
    const log = this.#log;
    const recs: Rec[] = [];
    this.#visit(view(c.key), rangeEndOf(c.rangeEnd), this.#currentRev, (row) => {
      recs.push(log.rec(row));
    });
    if (recs.length === 0) {
      // A value compare on a missing key always fails: there is no value to compare.
      if (c.target === Compare_CompareTarget.VALUE) return false;
      return compareKV(c, undefined);
    }
    for (const r of recs) if (!compareKV(c, r)) return false;
    return true;
  }

  /** etcd checkRequests with checkRequestPut / checkRequestRange over the chosen path. */
  #checkTxnOps(req: TxnRequest, path: TxnPath, kind: "put" | "range"): void {
    let n = 0;
    for (const op of path.succeeded ? req.success : req.failure) {
      const r = op.request;
      if (r.oneofKind === "requestTxn") {
        this.#checkTxnOps(r.requestTxn, path.nested[n++]!, kind);
      } else if (kind === "put" && r.oneofKind === "requestPut") {
        const p = r.requestPut;
        if (p.ignoreValue || p.ignoreLease) {
          const slot = this.#index.find(view(p.key));
          if (slot < 0 || this.#visibleRow(slot, this.#currentRev) < 0) {
            throw new KeyNotFoundError();
          }
        }
        if (p.lease !== 0n && !this.#leaseExists(p.lease)) throw new LeaseNotFoundError();
      } else if (kind === "range" && r.oneofKind === "requestRange") {
        const rev = r.requestRange.revision;
        if (rev === 0) continue;
        if (rev > this.#currentRev) throw new MvccFutureRevError();
        if (rev < this.#compactRev) throw new MvccCompactedError();
      }
    }
  }

  #applyTxnOps(req: TxnRequest, path: TxnPath): TxnResponse {
    const responses: ResponseOp[] = [];
    let n = 0;
    for (const op of path.succeeded ? req.success : req.failure) {
      const r = op.request;
      switch (r.oneofKind) {
        case "requestRange": {
          const curRev = this.#readRev();
          const resp = this.#rangeAt(r.requestRange, curRev);
          resp.header = innerHeader(curRev);
          responses.push({ response: { oneofKind: "responseRange", responseRange: resp } });
          break;
        }
        case "requestPut": {
          const resp = this.#applyPut(r.requestPut);
          resp.header = innerHeader(this.#currentRev + 1);
          responses.push({ response: { oneofKind: "responsePut", responsePut: resp } });
          break;
        }
        case "requestDeleteRange": {
          const resp = this.#applyDeleteRange(r.requestDeleteRange);
          resp.header = innerHeader(this.#readRev());
          responses.push({
            response: { oneofKind: "responseDeleteRange", responseDeleteRange: resp },
          });
          break;
        }
        case "requestTxn": {
          const resp = this.#applyTxnOps(r.requestTxn, path.nested[n++]!);
          // etcd's newTxnResp gives nested txns an empty header.
          resp.header = innerHeader(0);
          responses.push({ response: { oneofKind: "responseTxn", responseTxn: resp } });
          break;
        }
        default:
          // checkTxnRequest rejects empty ops before raft; etcd's applier skips them.
          responses.push({ response: { oneofKind: undefined } });
      }
    }
    return { header: undefined, succeeded: path.succeeded, responses };
  }
}

/** etcd compareKV; `kv` undefined is the zero KeyValue of a missing key. */
function compareKV(c: Compare, r: Rec | undefined): boolean {
  const u = c.targetUnion;
  let result: number;
  switch (c.target) {
    case Compare_CompareTarget.VALUE: {
      const mine = r?.value ?? emptyBuffer;
      result = Buffer.compare(mine, u.oneofKind === "value" ? view(u.value) : emptyBuffer);
      break;
    }
    case Compare_CompareTarget.CREATE:
      result = Math.sign(
        (r?.createRevision ?? 0) - (u.oneofKind === "createRevision" ? u.createRevision : 0),
      );
      break;
    case Compare_CompareTarget.MOD:
      result = Math.sign((r?.main ?? 0) - (u.oneofKind === "modRevision" ? u.modRevision : 0));
      break;
    case Compare_CompareTarget.VERSION:
      result = Math.sign((r?.version ?? 0) - (u.oneofKind === "version" ? u.version : 0));
      break;
    case Compare_CompareTarget.LEASE:
      result = compareBig(r?.lease ?? 0n, u.oneofKind === "lease" ? u.lease : 0n);
      break;
    default:
      result = 0;
  }
  switch (c.result) {
    case Compare_CompareResult.EQUAL:
      return result === 0;
    case Compare_CompareResult.NOT_EQUAL:
      return result !== 0;
    case Compare_CompareResult.GREATER:
      return result > 0;
    case Compare_CompareResult.LESS:
      return result < 0;
    default:
      return true;
  }
}

function sortComparator(target: RangeRequest_SortTarget): ((a: Rec, b: Rec) => number) | undefined {
  switch (target) {
    case RangeRequest_SortTarget.KEY:
      return (a, b) => Buffer.compare(a.key, b.key);
    case RangeRequest_SortTarget.VERSION:
      return (a, b) => a.version - b.version;
    case RangeRequest_SortTarget.CREATE:
      return (a, b) => a.createRevision - b.createRevision;
    case RangeRequest_SortTarget.MOD:
      return (a, b) => a.main - b.main;
    case RangeRequest_SortTarget.VALUE:
      return compareRecValues;
    default:
      return undefined;
  }
}

/**
 * Rows [0, count) of a log as a BoltEntryCursor: each record encoded as etcd's backend stores it
 * (encodeRow) into one reused buffer; the revision key is the first 17 (18 for a tombstone)
 * bytes, the marshaled KeyValue the rest. With `sizesOnly` (a writer's planning walk) only the
 * revision key is written and valueEnd − valueStart is the KeyValue's length (encodedRowBytes):
 * no value is copied or read from a file.
 */
class RowCursor implements BoltEntryCursor {
  readonly #log: RecordLog;
  readonly #count: number;
  /** Where placed() records each row's value position, when recording (MvccSnapshot). */
  readonly #positions: Float64Array | undefined;
  /** Offset of the current row's value bytes in keyBuf (-1: no value bytes). */
  #valueAt = -1;
  #row = -1;
  keyBuf: Buffer = Buffer.allocUnsafe(1024);
  readonly keyStart = 0;
  keyEnd = 0;
  valueBuf: Buffer = this.keyBuf;
  valueStart = 0;
  valueEnd = 0;

  readonly #sizesOnly: boolean;

  constructor(
    log: RecordLog,
    count: number,
    positions?: Float64Array,
    sizesOnly = false,
    fromRow = 0,
  ) {
    this.#log = log;
    this.#count = count;
    this.#positions = positions;
    this.#sizesOnly = sizesOnly;
    this.#row = fromRow - 1;
  }

  placed(filePosition: number): void {
    if (this.#positions !== undefined && this.#valueAt >= 0) {
      this.#positions[this.#row] = filePosition + this.#valueAt - this.valueStart;
    }
  }

  next(): boolean {
    const row = ++this.#row;
    if (row >= this.#count) return false;
    const log = this.#log;
    if (this.#sizesOnly) {
      const keyEnd = writeRevisionKey(log, row, this.keyBuf, 0);
      this.keyEnd = this.valueStart = keyEnd;
      this.valueEnd = encodedRowBytes(log, row);
      return true;
    }
    const need = rowEncodedMaxBytes(log, row);
    if (need > this.keyBuf.length) {
      this.keyBuf = this.valueBuf = Buffer.allocUnsafe(Math.max(need, 2 * this.keyBuf.length));
    }
    encodedValueAt = -1;
    this.valueEnd = encodeRow(log, row, this.keyBuf, 0);
    this.#valueAt = encodedValueAt;
    this.keyEnd = this.valueStart = log.isTombstone(row) ? 18 : 17;
    return true;
  }
}

/** Upper bound of encodeRow's output for `row`. */
function rowEncodedMaxBytes(log: RecordLog, row: number): number {
  return 18 + 6 * 11 + log.keys.keyLength(log.keySlot(row)) + log.valueLength(row);
}

/** Where the last encodeRow with value bytes put them (RowCursor resets it to -1 before each). */
let encodedValueAt = -1;

/**
 * Writes at `at` what etcd's backend stores for one record (and HashByRev feeds its hash): the
 * bbolt key (8-byte big-endian main, '_', 8-byte sub, 't' for a tombstone) then the proto3
 * KeyValue as gogo-protobuf marshals it (fields 1-6 in order, zero values omitted; a tombstone
 * stores only its key). Returns the end offset. Its callers visit rows in row order, so values in
 * a file are read through RecordLog.writeValueInOrder.
 */
function encodeRow(log: RecordLog, row: number, out: Buffer, at: number): number {
  const main = log.main(row);
  const tomb = log.isTombstone(row);
  let p = writeRevisionKey(log, row, out, at);
  const slot = log.keySlot(row);
  const keyBytes = log.keys.keyLength(slot);
  if (keyBytes > 0) {
    out[p++] = 0x0a;
    p = putVarint(out, p, keyBytes);
    p = log.keys.writeKey(slot, out, p);
  }
  if (tomb) return p;
  p = writeVarintField(out, p, 0x10, log.createRevision(row));
  p = writeVarintField(out, p, 0x18, main);
  p = writeVarintField(out, p, 0x20, log.version(row));
  const len = log.valueLength(row);
  if (len > 0) {
    out[p++] = 0x2a;
    p = putVarint(out, p, len);
    encodedValueAt = p;
    p = log.writeValueInOrder(row, out, p);
  }
  const lease = log.lease(row);
  if (lease !== 0n) {
    out[p++] = 0x30;
    p = putVarint64(out, p, BigInt.asUintN(64, lease));
  }
  return p;
}

/** Writes the bbolt key of `row` at `at` (encodeRow's first 17 or 18 bytes); returns its end. */
function writeRevisionKey(log: RecordLog, row: number, out: Buffer, at: number): number {
  writeUint64BE(out, at, log.main(row));
  out[at + 8] = 0x5f;
  writeUint64BE(out, at + 9, log.sub(row));
  if (!log.isTombstone(row)) return at + 17;
  out[at + 17] = 0x74;
  return at + 18;
}

/** Bytes encodeRow writes for `row` (revision key included), without writing them. */
function encodedRowBytes(log: RecordLog, row: number): number {
  const tomb = log.isTombstone(row);
  const keyBytes = log.keys.keyLength(log.keySlot(row));
  let n = tomb ? 18 : 17;
  if (keyBytes > 0) n += 1 + varintSize(keyBytes) + keyBytes;
  if (tomb) return n;
  n += varintFieldBytes(log.createRevision(row));
  n += varintFieldBytes(log.main(row));
  n += varintFieldBytes(log.version(row));
  const len = log.valueLength(row);
  if (len > 0) n += 1 + varintSize(len) + len;
  const lease = log.lease(row);
  if (lease !== 0n) n += 1 + varintSize64(BigInt.asUintN(64, lease));
  return n;
}

/** Bytes writeVarintField writes for `n` (none for 0). */
function varintFieldBytes(n: number): number {
  return n === 0 ? 0 : 1 + varintSize(n);
}

function writeUint64BE(out: Buffer, at: number, n: number): void {
  out.writeUInt32BE(Math.floor(n / 0x100000000), at);
  out.writeUInt32BE(n >>> 0, at + 4);
}

function writeVarintField(out: Buffer, p: number, tag: number, n: number): number {
  if (n === 0) return p;
  out[p++] = tag;
  return putVarint(out, p, n);
}

/**
 * Key-bucket entries handed out as byte ranges of a buffer, without an object per entry: what
 * MvccStore.restore reads fastest (a db file's key bucket offers it, lib/server db-file.ts).
 */
export interface RawKeyRecords {
  /**
   * Calls `fn` for each entry: the revision key is buf[keyStart, keyEnd), the marshaled KeyValue
   * buf[keyEnd, valueEnd). `buf` may be reused after the call. `bufPosition`, when >= 0, says
   * buf[i] is byte bufPosition + i of the db file the entries are read from (so a restore given
   * that file as a ValueFile can leave the values in it); -1 or absent when not known.
   */
  forEachRaw(
    fn: (
      buf: Buffer,
      keyStart: number,
      keyEnd: number,
      valueEnd: number,
      bufPosition?: number,
    ) => void,
  ): void;
}

/**
 * One restore: appends entries in revision order to an empty log and index; once an entry comes
 * out of order, it and every later entry are copied into `spilled` instead (restore then sorts
 * and starts again).
 */
class RestoreRun {
  readonly #log: RecordLog;
  readonly index: SlotBTree;
  readonly #kv = new KeyValueDecoder();
  #lastMain = -1;
  #lastSub = -1;
  bytes = 0;
  spilled: [Buffer, Buffer][] | undefined = undefined;

  /** The value file given to restore() and its slot in the log (-1 until a row points into it). */
  readonly #valueFile: ValueFile | undefined;
  #fileSlot = -1;

  constructor(log: RecordLog, index: SlotBTree, valueFile: ValueFile | undefined) {
    this.#log = log;
    this.index = index;
    this.#valueFile = valueFile;
  }

  /**
   * The entry with revision key rk[rkStart, rkEnd) and KeyValue kv[kvStart, kvEnd); kv[i] is byte
   * kvPosition + i of the value file when kvPosition >= 0.
   */
  add(
    rk: Buffer,
    rkStart: number,
    rkEnd: number,
    kv: Buffer,
    kvStart: number,
    kvEnd: number,
    kvPosition = -1,
  ): void {
    const len = rkEnd - rkStart;
    if (!(len === 17 || (len === 18 && rk[rkStart + 17] === 0x74)) || rk[rkStart + 8] !== 0x5f) {
      throw new MvccRestoreError("ErrRestoreBadEntry", "malformed revision key");
    }
    if (this.spilled !== undefined) {
      this.spilled.push([copyOf(rk, rkStart, rkEnd), copyOf(kv, kvStart, kvEnd)]);
      return;
    }
    const main = rk.readUInt32BE(rkStart) * 0x100000000 + rk.readUInt32BE(rkStart + 4);
    const sub = rk.readUInt32BE(rkStart + 9) * 0x100000000 + rk.readUInt32BE(rkStart + 13);
    if (sub > maxSubRevision || main > Number.MAX_SAFE_INTEGER) {
      // a revision with 2^31 changes cannot be written; etcd's are far fewer
      throw new MvccRestoreError("ErrRestoreBadEntry", "revision out of range");
    }
    if (main < this.#lastMain || (main === this.#lastMain && sub <= this.#lastSub)) {
      this.spilled = [[copyOf(rk, rkStart, rkEnd), copyOf(kv, kvStart, kvEnd)]];
      return;
    }
    this.#lastMain = main;
    this.#lastSub = sub;
    const d = this.#kv;
    d.decode(kv, kvStart, kvEnd);
    const log = this.#log;
    const next = log.keys.length;
    const slot = this.index.insertOrFind(kv, next, d.keyStart, d.keyEnd);
    if (slot === next) log.keys.add(kv, d.keyStart, d.keyEnd);
    const valueLength = d.valueEnd - d.valueStart;
    if (len === 18) {
      log.append(slot, -1, 0, 0, main, sub, 0, 0, noLease);
    } else {
      let chunk: number;
      let off: number;
      if (kvPosition >= 0 && valueLength > 0 && this.#valueFile !== undefined) {
        // the value stays in the file: nothing copied
        if (this.#fileSlot < 0) this.#fileSlot = log.addFile(this.#valueFile);
        const at = kvPosition + d.valueStart;
        chunk = fileChunkWord(this.#fileSlot, at);
        off = fileOffsetWord(at);
      } else {
        chunk = log.values.place(kv, d.valueStart, d.valueEnd);
        off = log.values.placedOffset;
      }
      log.append(slot, chunk, off, valueLength, main, sub, d.createRevision, d.version, d.lease);
    }
    this.bytes += Rec.approximateBytesOf(d.keyEnd - d.keyStart, len === 18 ? 0 : valueLength);
  }
}

function copyOf(b: Buffer, start: number, end: number): Buffer {
  return Buffer.from(b.subarray(start, end));
}

/**
 * Decodes the fields of a marshaled mvccpb.KeyValue that restore needs, by hand (hot path: one
 * decoder per restore, no object per entry); unknown fields are skipped. After decode(), the key
 * and value are byte ranges of the decoded buffer.
 */
class KeyValueDecoder {
  keyStart = 0;
  keyEnd = 0;
  valueStart = 0;
  valueEnd = 0;
  createRevision = 0;
  version = 0;
  lease: bigint = noLease;
  #buf: Buffer = emptyBuffer;
  #p = 0;
  #end = 0;

  /** Decodes buf[start, end). Throws MvccRestoreError on bad input. */
  decode(buf: Buffer, start: number, end: number): void {
    this.keyStart = this.keyEnd = this.valueStart = this.valueEnd = start;
    this.createRevision = 0;
    this.version = 0;
    this.lease = noLease;
    this.#buf = buf;
    this.#p = start;
    this.#end = end;
    while (this.#p < end) {
      const tag = this.#varint();
      const field = Math.floor(tag / 8);
      const wire = tag & 7;
      if (wire === 2) {
        const len = this.#varint();
        const at = this.#p;
        this.#skip(len);
        if (field === 1) {
          this.keyStart = at;
          this.keyEnd = at + len;
        } else if (field === 5) {
          this.valueStart = at;
          this.valueEnd = at + len;
        }
      } else if (wire === 0) {
        if (field === 6) this.lease = this.#varintBig();
        else {
          const n = this.#varint();
          if (field === 2) this.createRevision = n;
          else if (field === 4) this.version = n;
        }
      } else if (wire === 1) this.#skip(8);
      else if (wire === 5) this.#skip(4);
      else bad();
    }
    this.#buf = emptyBuffer;
  }

  #skip(n: number): void {
    if (this.#p + n > this.#end) bad();
    this.#p += n;
  }

  #varint(): number {
    const buf = this.#buf;
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.#p >= this.#end) bad();
      const byte = buf[this.#p++]!;
      n += (byte & 0x7f) * mul;
      if (byte < 0x80) return n;
      mul *= 128;
    }
    return bad();
  }

  /** An int64 varint (lease ids use all 64 bits) as a BigInt; the shared 0n for zero. */
  #varintBig(): bigint {
    const buf = this.#buf;
    let v = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.#p >= this.#end) bad();
      const byte = buf[this.#p++]!;
      v |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) {
        const id = BigInt.asIntN(64, v);
        return id === 0n ? noLease : id;
      }
      shift += 7n;
    }
    return bad();
  }
}

function bad(): never {
  throw new MvccRestoreError("ErrRestoreBadEntry", "malformed KeyValue");
}
