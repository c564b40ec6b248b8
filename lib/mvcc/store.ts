/**
 * The revisioned key-value store: etcd's mvcc kvstore (revision model, key index with
 * generations, ranges, compaction, HashKV) plus etcd's applier semantics for Range / Put /
 * DeleteRange / Txn (etcdserver/apply.go) and the watchable store.
 *
 * Layout (memory per key matters, DESIGN §7):
 * - `#index`: a B-tree from key to that key's records in revision order (puts and tombstones;
 *   a tombstone ends a generation, as etcd's keyIndex generations). The key Buffer is stored once
 *   and shared by the tree and every record of the key.
 * - `#log`: every record held, in revision order: etcd's bbolt "key" bucket (revision -> KeyValue)
 *   without the bytes. It serves watch catch-up, HashKV and stats; compaction rebuilds it.
 * - `#cold`: records that are no longer the newest of their key, packed outside the V8 heap
 *   (ColdLog). The index and the log hold a Rec object for each key's newest record and a ColdLog
 *   row number for every older one (`Held`); a read of an old revision gets a fresh Rec.
 * Records are immutable, so a reader may keep them; the store never mutates a returned Buffer.
 */
import CRC32C from "crc-32/crc32c.js";
import { BTree } from "../btree/index.js";
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
import {
  ByteArena,
  Rec,
  bytesToLatin1,
  compareRecRevision,
  compareRecValues,
  emptyBuffer,
  recToKeyValue,
} from "./record.js";
import { ColdLog } from "./cold-log.js";
import { WatchHub, type WatchSink, type WatchSource, type WatchStream } from "./watch.js";
import { putVarint, putVarintBig } from "../proto/varint.js";

/**
 * How mvcc talks to the lessor (lib/lease) without importing it: `exists` answers whether a lease
 * is granted; attach/detach keep the lessor's key sets in step with puts and deletes, as etcd's
 * kvstore_txn.go calls lessor.Attach / Detach. The `key` passed is the store's own copy (see
 * KeyArena), never mutated and never a view into a request, so a lessor may keep it as is.
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
  readonly recordCount: number;
  /**
   * The key bucket's entries in bbolt key order: [revision key (8-byte big-endian main, '_',
   * 8-byte sub, plus 't' for a tombstone), marshaled mvccpb.KeyValue]. Views into chunks that
   * are never reused, so they stay valid as long as the caller keeps them; never mutate them.
   */
  records(): IterableIterator<[Buffer, Buffer]>;
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

/** A held record: the Rec of a key's newest record, or the ColdLog row of an older one. */
type Held = Rec | number;

/**
 * A key's records in revision order. Most keys hold one record (always so right after a
 * compaction), so a lone record is stored bare: an array costs ~56 bytes per key. In an array,
 * the last entry is the newest record's Rec and every other entry a ColdLog row.
 */
type History = Rec | Held[];

function lastOf(hist: History): Rec {
  return hist instanceof Rec ? hist : (hist[hist.length - 1] as Rec);
}

/** Shared zero lease: decoded requests carry a fresh 0n BigInt object each. */
const noLease = 0n;

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
  readonly #index = new BTree<History>();
  #log: Held[] = [];
  #cold = new ColdLog();
  /** etcd starts at revision 1 with nothing in it. */
  #currentRev = 1;
  /** etcd's compactMainRev: -1 until the first compaction. */
  #compactRev = -1;
  #liveKeys = 0;
  #bytes = 0;
  /** Changes of the write in progress (sub-revision = position), undefined outside a write. */
  #writing: Rec[] | undefined = undefined;
  readonly #hooks: LeaseHooks | undefined;
  readonly #hub: WatchHub;
  /** Owns every stored key's bytes (a request's key is a view into the request). */
  readonly #keys: ByteArena;
  /** Owns every held value's bytes; a compaction moves the survivors to a fresh one. */
  #values: ByteArena;
  readonly #valueArenaChunkBytes: number;

  /** See MvccStoreOptions for the limits and their defaults. */
  constructor(opts?: MvccStoreOptions) {
    this.#hooks = opts?.leaseHooks;
    this.#keys = new ByteArena(opts?.keyArenaChunkBytes ?? 64 * 1024);
    this.#valueArenaChunkBytes = opts?.valueArenaChunkBytes ?? 1024 * 1024;
    this.#values = new ByteArena(this.#valueArenaChunkBytes);
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
    return this.#writing !== undefined && this.#writing.length > 0
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
    // Fetch one extra to know `more`, unless sorting/filtering needs everything.
    const fetch = !filtered && req.limit > 0 ? req.limit + 1 : 0;
    let recs: Rec[] = [];
    let count = 0;
    this.#visit(key, end, rev, (r) => {
      count++;
      if (fetch === 0 || recs.length < fetch) recs.push(r);
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

  /** Calls fn for each key of the range that is live at rev, in key order. */
  #visit(key: Buffer, end: RangeEnd, rev: number, fn: (r: Rec) => void): void {
    if (end === "single") {
      const hist = this.#index.get(key);
      const r = hist === undefined ? undefined : this.#visibleAt(hist, rev);
      if (r !== undefined) fn(r);
      return;
    }
    this.#index.ascend(key, end === "open" ? undefined : end, (_k, hist) => {
      const r = this.#visibleAt(hist, rev);
      if (r !== undefined) fn(r);
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
    const changes = this.#beginWrite();
    try {
      return this.#applyPut(req);
    } finally {
      this.#endWrite(changes);
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
      let n = 0;
      for (const k of keys) {
        const hist = this.#index.get(view(k));
        if (hist === undefined) continue;
        const last = lastOf(hist);
        if (last.isTombstone) continue;
        this.#appendTombstone(hist, last);
        n++;
      }
      return n;
    });
  }

  /**
   * Compaction (etcd kvstore.Compact + keyIndex.compact): history at and below `revision` is
   * dropped, keeping for each key the latest record at or below it unless that is a tombstone;
   * keys left with nothing leave the index. Reads below `revision` then fail with
   * MvccCompactedError. Throws MvccCompactedError if revision <= compactRevision,
   * MvccFutureRevError if revision > currentRevision. Runs synchronously, O(keys + records).
   */
  compact(revision: number): void {
    if (revision <= this.#compactRev) throw new MvccCompactedError();
    if (revision > this.#currentRev) throw new MvccFutureRevError();
    this.#compactRev = revision;
    // Survivors move to a new ColdLog (dropping the dead rows and their value bytes); a snapshot
    // taken before keeps reading the old one.
    const oldCold = this.#cold;
    const cold = new ColdLog();
    const values = new ByteArena(this.#valueArenaChunkBytes);
    const remap = new Int32Array(oldCold.length).fill(-1);
    const tailStart = this.#logIndexAtOrAfter(revision + 1);
    const keptOld: Held[] = [];
    const emptied: Buffer[] = [];
    const single: Rec[] = [];
    this.#index.ascend(undefined, undefined, (key, hist) => {
      if (hist instanceof Rec) {
        if (hist.main > revision) return;
        if (hist.isTombstone) emptied.push(key);
        else keptOld.push(hist);
        return;
      }
      let i = hist.length - 1;
      while (i >= 0 && this.#mainOf(hist[i]!) > revision) i--;
      let keepsOld = false;
      if (i >= 0) {
        const tomb = this.#isTombstone(hist[i]!);
        keepsOld = !tomb;
        const drop = tomb ? i + 1 : i;
        if (drop > 0) hist.splice(0, drop);
      }
      for (let j = 0; j < hist.length; j++) {
        const h = hist[j]!;
        if (typeof h === "number") {
          const n = cold.copyRow(oldCold, h, values);
          remap[h] = n;
          hist[j] = n;
        }
      }
      if (keepsOld) keptOld.push(hist[0]!);
      if (hist.length === 0) emptied.push(key);
      else if (hist.length === 1) single.push(hist[0] as Rec);
    });
    // The tree is not changed while it is walked: deletions and bare-record swaps come after.
    for (const k of emptied) this.#index.delete(k);
    for (const r of single) this.#index.set(r.key, r);
    const tail = this.#log.slice(tailStart);
    this.#cold = cold;
    this.#values = values;
    keptOld.sort((x, y) => this.#compareHeld(x, y));
    for (let j = 0; j < tail.length; j++) {
      const h = tail[j]!;
      if (typeof h === "number") tail[j] = remap[h]!;
    }
    this.#log = keptOld.concat(tail);
    let bytes = 0;
    for (let j = 0; j < this.#log.length; j++) {
      const h = this.#log[j]!;
      if (typeof h === "number") bytes += cold.approximateBytes(h);
      else {
        h.logPos = j;
        bytes += h.approximateBytes;
        h.moveValueTo(values);
      }
    }
    this.#bytes = bytes;
    // Unsynced watchers below the new compaction point get their compacted response now.
    this.#hub.syncWatchers();
  }

  /**
   * Checks the store's invariants, O(records): the log is in strictly increasing revision order
   * and holds exactly the records of the index; each key's history is non-empty, in order, and
   * never holds a tombstone first after the compaction point; counts match. Throws
   * MvccInvariantError naming the first broken one. For tests and debugging; never needed in
   * normal operation.
   */
  checkInvariants(): void {
    const log = this.#log;
    for (let i = 1; i < log.length; i++) {
      mvccAssert(this.#compareHeld(log[i - 1]!, log[i]!) < 0, `log out of order at ${i}`);
    }
    for (let i = 0; i < log.length; i++) {
      const h = log[i]!;
      if (typeof h === "number") mvccAssert(h >= 0 && h < this.#cold.length, `bad row at ${i}`);
      else mvccAssert(h.logPos === i, `record at ${i} says it is at ${h.logPos}`);
    }
    const last = log[log.length - 1];
    mvccAssert(
      last === undefined || this.#mainOf(last) <= this.#currentRev,
      "record above current revision",
    );
    const inLog = new Set<Held>(log);
    let held = 0;
    let live = 0;
    let bytes = 0;
    this.#index.ascend(undefined, undefined, (key, hist) => {
      const recs: Held[] = hist instanceof Rec ? [hist] : hist;
      mvccAssert(recs.length > 0, `empty history for key ${key.toString("hex")}`);
      mvccAssert(
        !(hist instanceof Rec) || !hist.isTombstone || hist.main > this.#compactRev,
        `bare tombstone at or below the compaction point for ${key.toString("hex")}`,
      );
      const newest = recs[recs.length - 1]!;
      mvccAssert(newest instanceof Rec, `newest record of ${key.toString("hex")} is packed`);
      for (let i = 0; i < recs.length; i++) {
        const h = recs[i]!;
        mvccAssert(i === recs.length - 1 || typeof h === "number", "older record not packed");
        const k = typeof h === "number" ? this.#cold.key(h) : h.key;
        mvccAssert(k === newest.key && k.equals(key), "record key differs from its index key");
        mvccAssert(i === 0 || this.#compareHeld(recs[i - 1]!, h) < 0, "history out of order");
        mvccAssert(inLog.has(h), `record ${this.#mainOf(h)} in the index but not in the log`);
        bytes += typeof h === "number" ? this.#cold.approximateBytes(h) : h.approximateBytes;
      }
      held += recs.length;
      if (!newest.isTombstone) live++;
    });
    mvccAssert(held === log.length, `index holds ${held} records, log ${log.length}`);
    mvccAssert(live === this.#liveKeys, `live keys ${live}, counted ${this.#liveKeys}`);
    mvccAssert(bytes === this.#bytes, `bytes ${bytes}, counted ${this.#bytes}`);
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
   * `revision` 0 = current. Matches real etcd's hash for the same history.
   * Throws MvccCompactedError (0 < revision <= compactRevision), MvccFutureRevError.
   */
  hashKV(revision: number): MvccHash {
    const compactRev = this.#compactRev;
    if (revision > 0 && revision <= compactRev) throw new MvccCompactedError();
    if (revision > 0 && revision > this.#currentRev) throw new MvccFutureRevError();
    const rev = revision === 0 ? this.#currentRev : revision;
    // etcd kvindex.Keep(rev): the record each key shows at rev; only consulted for records at or
    // below the compaction point, so only those are collected (one in-order walk, no lookups).
    const keep = new Set<Held>();
    let keepAny = false;
    this.#index.ascend(undefined, undefined, (_k, hist) => {
      const h = this.#heldVisibleAt(hist, rev);
      if (h === undefined) return;
      keepAny = true;
      if (this.#mainOf(h) <= compactRev) keep.add(h);
    });
    let crc = CRC32C.buf(Buffer.from("key"));
    let scratch = Buffer.allocUnsafe(4096);
    for (const h of this.#log) {
      if (this.#mainOf(h) > rev) break;
      if (this.#mainOf(h) <= compactRev && keepAny && !keep.has(h)) continue;
      const r = this.#recOf(h);
      const need = hashRecordMaxBytes(r);
      if (need > scratch.length) scratch = Buffer.allocUnsafe(need * 2);
      const n = encodeHashRecord(r, scratch);
      crc = CRC32C.buf(scratch.subarray(0, n), crc);
    }
    return { hash: crc >>> 0, compactRevision: compactRev, revision: this.#currentRev };
  }

  // ------------------------------------------------------------------ snapshot / restore

  /** A point-in-time view of every record, for the db (snapshot) file writer. O(1). */
  snapshot(): MvccSnapshot {
    const log = this.#log;
    const cold = this.#cold;
    const count = log.length;
    return {
      revision: this.#currentRev,
      compactRevision: this.#compactRev,
      recordCount: count,
      *records(): IterableIterator<[Buffer, Buffer]> {
        // Records are encoded back to back into chunks that are never reused, and handed out as
        // views: no per-record allocation of backing memory, no copy.
        let chunk = Buffer.allocUnsafeSlow(snapshotChunkBytes);
        let used = 0;
        for (let i = 0; i < count; i++) {
          // a record packed after the snapshot was taken reads the same from the ColdLog
          const h = log[i]!;
          const r = typeof h === "number" ? cold.rec(h) : h;
          const need = hashRecordMaxBytes(r);
          if (used + need > chunk.length) {
            chunk = Buffer.allocUnsafeSlow(Math.max(snapshotChunkBytes, need));
            used = 0;
          }
          const n = encodeHashRecord(r, chunk.subarray(used));
          const keyBytes = r.isTombstone ? 18 : 17;
          yield [chunk.subarray(used, used + keyBytes), chunk.subarray(used + keyBytes, used + n)];
          used += n;
        }
      },
    };
  }

  /**
   * Loads an empty store from etcd's key-bucket entries (any order; as read from a db file made
   * by etcd or by snapshot()), as etcd's kvstore.restore: the current revision is the highest main
   * revision seen (at least `compactRevision`, and 1 for an empty bucket); leases of live keys are
   * re-attached through the hooks. `compactRevision` comes from the db's meta bucket (etcd's
   * finishedCompactRev; -1 if none). Throws MvccRestoreError if the store is not empty or an entry
   * is malformed.
   */
  restore(records: Iterable<[Uint8Array, Uint8Array]>, compactRevision: number): void {
    if (this.#log.length !== 0 || this.#currentRev !== 1 || this.#index.size !== 0) {
      throw new MvccRestoreError("ErrRestoreNotEmpty", "the store is not empty");
    }
    const recs: Rec[] = [];
    // Records of one key share one key Buffer; the latin1 form is a fast Map key.
    const byKey = new Map<string, Rec[]>();
    let sorted = true;
    for (const [revKey, value] of records) {
      if (
        !(revKey.length === 17 || (revKey.length === 18 && revKey[17] === 0x74)) ||
        revKey[8] !== 0x5f
      ) {
        throw new MvccRestoreError("ErrRestoreBadEntry", "malformed revision key");
      }
      const rk = view(revKey);
      const main = rk.readUInt32BE(0) * 0x100000000 + rk.readUInt32BE(4);
      const sub = rk.readUInt32BE(9) * 0x100000000 + rk.readUInt32BE(13);
      const kv = decodeKeyValue(view(value));
      const ks = bytesToLatin1(kv.key);
      let list = byKey.get(ks);
      const key = list === undefined ? this.#keys.copy(kv.key) : list[0]!.key;
      const rec =
        revKey.length === 18
          ? new Rec(key, emptyBuffer, 0, 0, main, sub, 0, 0, noLease)
          : new Rec(
              key,
              this.#values.place(kv.value, 0, kv.value.length),
              this.#values.placedOffset,
              kv.value.length,
              main,
              sub,
              kv.createRevision,
              kv.version,
              kv.lease,
            );
      if (list === undefined) byKey.set(ks, [rec]);
      else list.push(rec);
      const prev = recs[recs.length - 1];
      if (prev !== undefined && compareRecRevision(prev, rec) >= 0) sorted = false;
      recs.push(rec);
    }
    // A db file yields revision order already; other sources may not.
    if (!sorted) {
      recs.sort(compareRecRevision);
      for (const list of byKey.values()) list.sort(compareRecRevision);
    }
    const log: Held[] = recs;
    for (let j = 0; j < recs.length; j++) recs[j]!.logPos = j;
    this.#log = log;
    let bytes = 0;
    for (const r of recs) bytes += r.approximateBytes;
    // Key order (latin1 strings sort by code unit = byte order) makes the tree build cheap.
    const sortedKeys = [...byKey.keys()].sort();
    let live = 0;
    for (const ks of sortedKeys) {
      const list = byKey.get(ks)!;
      const k = list[0]!.key;
      if (list.length === 1) this.#index.set(k, list[0]!);
      else {
        const hist: Held[] = list;
        for (let j = 0; j < list.length - 1; j++) hist[j] = this.#freeze(list[j] as Rec);
        this.#index.set(k, hist);
      }
      const last = list[list.length - 1]!;
      if (!last.isTombstone) {
        live++;
        if (last.lease !== 0n) this.#hooks?.attach(last.lease, k);
      }
    }
    this.#liveKeys = live;
    this.#bytes = bytes;
    const top = log.length > 0 ? this.#mainOf(log[log.length - 1]!) : 1;
    this.#currentRev = Math.max(top, compactRevision, 1);
    this.#compactRev = compactRevision;
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

  #logIndexAtOrAfter(rev: number): number {
    return this.#indexAtOrAfter(this.#log, rev);
  }

  /** Index of the first entry of revision-ordered `list` with main revision >= rev. */
  #indexAtOrAfter(list: readonly Held[], rev: number): number {
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#mainOf(list[mid]!) < rev) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Runs fn as one write; its changes become revision currentRevision + 1, then watchers hear. */
  #write<T>(fn: () => T): T {
    const changes = this.#beginWrite();
    try {
      return fn();
    } finally {
      this.#endWrite(changes);
    }
  }

  /** Opens a write: records made until #endWrite share one new revision. */
  #beginWrite(): Rec[] {
    mvccAssert(this.#writing === undefined, "nested write");
    const changes: Rec[] = [];
    this.#writing = changes;
    return changes;
  }

  /** Closes a write (always call it, in a finally): advances the revision if anything changed. */
  #endWrite(changes: Rec[]): void {
    this.#writing = undefined;
    // Changes already made stay made even if the write threw after them (it should not: txn
    // checks first), so the revision must still advance.
    if (changes.length > 0) {
      this.#currentRev++;
      this.#hub.notify(this.#currentRev, changes);
    }
  }

  #applyPut(req: PutRequest): PutResponse {
    const key = view(req.key);
    const hist = this.#index.get(key);
    const last = hist === undefined ? undefined : lastOf(hist);
    const prev = last !== undefined && !last.isTombstone ? last : undefined;
    if ((req.ignoreValue || req.ignoreLease) && prev === undefined) throw new KeyNotFoundError();
    const lease = req.ignoreLease ? prev!.lease : req.lease;
    const resp: PutResponse = {
      header: undefined,
      prevKv: req.prevKv && prev !== undefined ? recToKeyValue(prev) : undefined,
    };
    if (req.ignoreValue) {
      const p = prev!;
      this.#appendPut(key, hist, prev, p.valueChunk, p.valueOffset, p.valueLength, lease);
    } else {
      const v = req.value;
      const chunk = this.#values.place(v, 0, v.length);
      this.#appendPut(key, hist, prev, chunk, this.#values.placedOffset, v.length, lease);
    }
    return resp;
  }

  #appendPut(
    key: Buffer,
    hist: History | undefined,
    prev: Rec | undefined,
    valueChunk: Buffer,
    valueOffset: number,
    valueLength: number,
    lease: bigint,
  ): void {
    const changes = this.#writing!;
    const rev = this.#currentRev + 1;
    const keyBuf = hist !== undefined ? lastOf(hist).key : this.#keys.copy(key);
    const rec = new Rec(
      keyBuf,
      valueChunk,
      valueOffset,
      valueLength,
      rev,
      changes.length,
      prev !== undefined ? prev.createRevision : rev,
      prev !== undefined ? prev.version + 1 : 1,
      lease === 0n ? noLease : lease,
    );
    this.#pushRec(hist, rec);
    if (prev === undefined) this.#liveKeys++;
    this.#record(rec);
    // etcd kvstore_txn put: detach from the old lease, attach to the new one.
    if (this.#hooks !== undefined) {
      if (prev !== undefined && prev.lease !== 0n) this.#detach(prev.lease, keyBuf);
      if (lease !== 0n) this.#hooks.attach(lease, keyBuf);
    }
  }

  /** Adds `rec` as the newest record of its key (the tree is touched only for a key's 1st/2nd). */
  #pushRec(hist: History | undefined, rec: Rec): void {
    if (hist === undefined) this.#index.set(rec.key, rec);
    else if (hist instanceof Rec) this.#index.set(rec.key, [this.#freeze(hist), rec]);
    else {
      hist[hist.length - 1] = this.#freeze(hist[hist.length - 1] as Rec);
      hist.push(rec);
    }
  }

  /** Packs a record that is no longer its key's newest into the ColdLog; returns its row. */
  #freeze(r: Rec): number {
    const row = this.#cold.append(r);
    this.#log[r.logPos] = row;
    return row;
  }

  #mainOf(h: Held): number {
    return typeof h === "number" ? this.#cold.main(h) : h.main;
  }

  #subOf(h: Held): number {
    return typeof h === "number" ? this.#cold.sub(h) : h.sub;
  }

  #isTombstone(h: Held): boolean {
    return typeof h === "number" ? this.#cold.isTombstone(h) : h.isTombstone;
  }

  #recOf(h: Held): Rec {
    return typeof h === "number" ? this.#cold.rec(h) : h;
  }

  /** Orders held records by revision (main, then sub). */
  #compareHeld(a: Held, b: Held): number {
    const cold = this.#cold;
    const am = typeof a === "number" ? cold.main(a) : a.main;
    const bm = typeof b === "number" ? cold.main(b) : b.main;
    return am !== bm ? am - bm : this.#subOf(a) - this.#subOf(b);
  }

  /** The entry of `hist` visible at `rev` (a put, not a tombstone), undefined if none. */
  #heldVisibleAt(hist: History, rev: number): Held | undefined {
    if (hist instanceof Rec) return hist.main <= rev && !hist.isTombstone ? hist : undefined;
    for (let i = hist.length - 1; i >= 0; i--) {
      const h = hist[i]!;
      if (this.#mainOf(h) <= rev) return this.#isTombstone(h) ? undefined : h;
    }
    return undefined;
  }

  /** The record of `hist` visible at `rev`, undefined if none or deleted. */
  #visibleAt(hist: History, rev: number): Rec | undefined {
    if (hist instanceof Rec) return hist.main <= rev && !hist.isTombstone ? hist : undefined;
    const newest = hist[hist.length - 1] as Rec;
    if (newest.main <= rev) return newest.isTombstone ? undefined : newest;
    const h = this.#heldVisibleAt(hist, rev);
    return h === undefined ? undefined : this.#recOf(h);
  }

  /** Records of `key` with main revision >= minRev, in revision order (WatchSource). */
  *#keyRecordsFrom(key: Buffer, minRev: number): Generator<Rec> {
    const hist = this.#index.get(key);
    if (hist === undefined) return;
    if (hist instanceof Rec) {
      if (hist.main >= minRev) yield hist;
      return;
    }
    for (let i = this.#indexAtOrAfter(hist, minRev); i < hist.length; i++) {
      yield this.#recOf(hist[i]!);
    }
  }

  /** Records with main revision >= minRev whose key passes `match`, in revision order. */
  *#recordsFrom(minRev: number, match: (key: Buffer) => boolean): Generator<Rec> {
    const log = this.#log;
    const cold = this.#cold;
    for (let i = this.#logIndexAtOrAfter(minRev); i < log.length; i++) {
      const h = log[i]!;
      if (typeof h === "number") {
        if (match(cold.key(h))) yield cold.rec(h);
      } else if (match(h.key)) yield h;
    }
  }

  /** The record held just before `r` in its key's history, undefined if none or r is not held. */
  #recordBefore(r: Rec): Rec | undefined {
    const hist = this.#index.get(r.key);
    if (hist === undefined || hist instanceof Rec) return undefined;
    let lo = 0;
    let hi = hist.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const h = hist[mid]!;
      const m = this.#mainOf(h);
      if (m < r.main || (m === r.main && this.#subOf(h) < r.sub)) lo = mid + 1;
      else hi = mid;
    }
    if (lo === 0 || lo >= hist.length) return undefined;
    const at = hist[lo]!;
    if (this.#mainOf(at) !== r.main || this.#subOf(at) !== r.sub) return undefined;
    return this.#recOf(hist[lo - 1]!);
  }

  #appendTombstone(hist: History, live: Rec): void {
    const changes = this.#writing!;
    const rec = new Rec(
      live.key,
      emptyBuffer,
      0,
      0,
      this.#currentRev + 1,
      changes.length,
      0,
      0,
      noLease,
    );
    this.#pushRec(hist, rec);
    this.#liveKeys--;
    this.#record(rec);
    if (live.lease !== 0n) this.#detach(live.lease, live.key);
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

  #record(rec: Rec): void {
    this.#writing!.push(rec);
    rec.logPos = this.#log.length;
    this.#log.push(rec);
    this.#bytes += rec.approximateBytes;
  }

  #applyDeleteRange(req: DeleteRangeRequest): DeleteRangeResponse {
    const key = view(req.key);
    const end = rangeEndOf(req.rangeEnd);
    const live: Rec[] = [];
    this.#visit(key, end, this.#readRev(), (r) => void live.push(r));
    const prevKvs = req.prevKv ? live.map((r) => recToKeyValue(r)) : [];
    for (const r of live) this.#appendTombstone(this.#index.get(r.key)!, r);
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
    const recs: Rec[] = [];
    this.#visit(view(c.key), rangeEndOf(c.rangeEnd), this.#currentRev, (r) => void recs.push(r));
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
          const hist = this.#index.get(view(p.key));
          if (hist === undefined || this.#visibleAt(hist, this.#currentRev) === undefined) {
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

/** Upper bound of encodeHashRecord's output for `r`. */
function hashRecordMaxBytes(r: Rec): number {
  return 18 + 6 * 11 + r.key.length + r.valueLength;
}

/**
 * Writes at `at` what etcd's HashByRev feeds its hash for one record: the bbolt key (8-byte big-endian
 * main, '_', 8-byte sub, 't' for a tombstone) then the proto3 KeyValue as gogo-protobuf marshals
 * it (fields 1-6 in order, zero values omitted; a tombstone stores only its key). Returns the end offset.
 */
function encodeHashRecord(r: Rec, out: Buffer, at = 0): number {
  writeUint64BE(out, at, r.main);
  out[at + 8] = 0x5f;
  writeUint64BE(out, at + 9, r.sub);
  let p = at + 17;
  if (r.isTombstone) out[p++] = 0x74;
  p = writeBytesField(out, p, 0x0a, r.key);
  if (r.isTombstone) return p;
  p = writeVarintField(out, p, 0x10, r.createRevision);
  p = writeVarintField(out, p, 0x18, r.main);
  p = writeVarintField(out, p, 0x20, r.version);
  if (r.valueLength > 0) {
    out[p++] = 0x2a;
    p = putVarint(out, p, r.valueLength);
    p += r.valueChunk.copy(out, p, r.valueOffset, r.valueOffset + r.valueLength);
  }
  if (r.lease !== 0n) {
    out[p++] = 0x30;
    p = putVarintBig(out, p, BigInt.asUintN(64, r.lease));
  }
  return p;
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

function writeBytesField(out: Buffer, p: number, tag: number, b: Buffer): number {
  if (b.length === 0) return p;
  out[p++] = tag;
  p = putVarint(out, p, b.length);
  b.copy(out, p);
  return p + b.length;
}

/** The fields of a marshaled mvccpb.KeyValue that restore needs, decoded by hand (hot path). */
interface DecodedKeyValue {
  key: Buffer;
  /** A view into the decoded bytes: copy it before keeping it. */
  value: Buffer;
  createRevision: number;
  version: number;
  lease: bigint;
}

/** Decodes a proto3 KeyValue; unknown fields are skipped. Throws MvccRestoreError on bad input. */
function decodeKeyValue(buf: Buffer): DecodedKeyValue {
  const out: DecodedKeyValue = {
    key: emptyBuffer,
    value: emptyBuffer,
    createRevision: 0,
    version: 0,
    lease: noLease,
  };
  let p = 0;
  const bad = (): never => {
    throw new MvccRestoreError("ErrRestoreBadEntry", "malformed KeyValue");
  };
  const varint = (): number => {
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (p >= buf.length) bad();
      const byte = buf[p++]!;
      n += (byte & 0x7f) * mul;
      if (byte < 0x80) return n;
      mul *= 128;
    }
    return bad();
  };
  while (p < buf.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 2) {
      const len = varint();
      if (p + len > buf.length) bad();
      const bytes = buf.subarray(p, p + len);
      p += len;
      if (field === 1) out.key = bytes;
      else if (field === 5) out.value = bytes;
    } else if (wire === 0) {
      if (field === 6) {
        // int64 lease id: read the varint as a BigInt (ids use all 64 bits).
        let v = 0n;
        let shift = 0n;
        for (let i = 0; i < 10; i++) {
          if (p >= buf.length) bad();
          const byte = buf[p++]!;
          v |= BigInt(byte & 0x7f) << shift;
          if (byte < 0x80) break;
          shift += 7n;
        }
        const id = BigInt.asIntN(64, v);
        out.lease = id === 0n ? noLease : id;
      } else {
        const n = varint();
        if (field === 2) out.createRevision = n;
        else if (field === 4) out.version = n;
      }
    } else if (wire === 1) {
      p += 8;
    } else if (wire === 5) {
      p += 4;
    } else {
      bad();
    }
  }
  return out;
}
