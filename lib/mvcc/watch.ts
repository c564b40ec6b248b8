/**
 * The watchable store (etcd mvcc/watchable_store.go, watcher.go, watcher_group.go) and one client
 * watch stream (etcd etcdserver/api/v3rpc/watch.go serverWatchStream) without the transport.
 *
 * Watchers are either synced (up to date: they get each write's events synchronously at the end of
 * the write) or unsynced (they remember `minRev`, the first revision they have not been sent, and
 * are caught up from the store's revision log in batches). Nothing is buffered per watcher: when a
 * stream's sink reports a full transport, every watcher of that stream that has something to
 * receive becomes unsynced and is caught up from the store after resume(), so memory stays bounded
 * and no event is lost. If the history a watcher needs was compacted meanwhile, it gets etcd's
 * compacted response (compact_revision set, canceled) and is removed.
 */
import {
  WatchCreateRequest_FilterType,
  type WatchCreateRequest,
  type WatchRequest,
  type WatchResponse,
  WatchResponse as WatchResponseMsg,
  type ResponseHeader,
} from "../proto/gen/etcdserverpb/rpc.js";
import { Event as EventMsg, type Event } from "../proto/gen/mvccpb/kv.js";
import { mvccAssert, WatchStreamOverloadedError } from "./errors.js";
import { type Rec, recToEvent, recToKeyValue, emptyBuffer } from "./record.js";
import { varintSize } from "../proto/varint.js";

/**
 * The transport's side of one watch stream. send() returns false when the client is not reading
 * (the transport's buffer is full). The response passed to that call counts as delivered (as a
 * Node stream's write() that returns false still takes the chunk); mvcc then sends nothing more
 * on this stream until WatchStream.resume() (except the remaining fragments of a response already
 * being fragmented, bounded by that one response). Event objects (and their Buffers) may be
 * shared by the responses of several watchers: the sink may set `header` but must not mutate
 * events.
 */
export interface WatchSink {
  send(resp: WatchResponse): boolean;
}

/** What the watch side reads from the store (implemented by MvccStore). */
export interface WatchSource {
  readonly currentRevision: number;
  readonly compactRevision: number;
  /** The records of `key` with main revision >= minRev, in revision order. */
  keyRecordsFrom(key: Buffer, minRev: number): Iterable<Rec>;
  /** Every record with main revision >= minRev whose key passes `match`, in revision order. */
  recordsFrom(minRev: number, match: (key: Buffer) => boolean): Iterable<Rec>;
  /** The record held just before `r` in its key's history; undefined if none or r is not held. */
  recordBefore(r: Rec): Rec | undefined;
}

/** Limits of the watch side; see MvccStore's constructor for the defaults. */
export interface WatchLimits {
  maxWatchersPerStream: number;
  /** Most revisions in one catch-up response (etcd watchBatchMaxRevs = 1000). */
  maxEventsPerWatchResponse: number;
  maxPendingResponsesPerStream: number;
  /** Fragmenting threshold for watchers that asked for fragment (etcd --max-request-bytes). */
  maxRequestBytes: number;
  /** Most catch-up rounds one handle()/resume()/write runs before yielding to the caller. */
  maxSyncStepsPerCall: number;
}

/** etcd's ErrEmptyWatcherRange. */
const errEmptyWatcherRange = "mvcc: watcher range is empty";
/** etcd's ErrWatcherDuplicateID. */
const errWatcherDuplicateId = "mvcc: duplicate watch ID provided on the WatchStream";
/** clientv3.InvalidWatchID: responses not tied to one watcher. */
const invalidWatchId = -1n;

/** A header with only the revision set; the server fills cluster id, member id and term. */
function header(revision: number): ResponseHeader {
  return { clusterId: 0n, memberId: 0n, revision, raftTerm: 0 };
}

function response(fields: Partial<WatchResponse>): WatchResponse {
  return {
    header: undefined,
    watchId: 0n,
    created: false,
    canceled: false,
    compactRevision: 0,
    cancelReason: "",
    fragment: false,
    events: [],
    ...fields,
  };
}

/** One watcher: a key or range of one stream, and where it is in the history. */
class Watcher {
  /** First revision not yet sent to this watcher. */
  minRev: number;
  synced = false;
  /** etcd sws.progress[id]: true when no events went out since the last progress tick. */
  progressDue = true;
  /** latin1 form of `key` for single-key watchers (the synced group's map key). */
  readonly keyString: string | undefined;

  constructor(
    readonly id: bigint,
    readonly stream: WatchStream,
    readonly key: Buffer,
    /** undefined: the single key `key`; empty: every key >= key; else the end (exclusive). */
    readonly end: Buffer | undefined,
    startRev: number,
    readonly noPut: boolean,
    readonly noDelete: boolean,
    readonly prevKv: boolean,
    readonly fragment: boolean,
    readonly progressNotify: boolean,
  ) {
    this.minRev = startRev;
    this.keyString = end === undefined ? key.toString("latin1") : undefined;
  }

  matches(key: Buffer): boolean {
    if (this.end === undefined) return this.key.equals(key);
    if (Buffer.compare(key, this.key) < 0) return false;
    return this.end.length === 0 || Buffer.compare(key, this.end) < 0;
  }
}

/**
 * The store's registry of watchers across streams. Internal to lib/mvcc (MvccStore owns one).
 */
/**
 * A copy of `u` in its own allocation. Buffer.from(u) would copy into Node's shared 8 KiB pool
 * slab, and a long-lived watcher's key would then pin that whole slab (request and response
 * bytes around it included) for as long as the watcher lives.
 */
function unpooledCopy(u: Uint8Array): Buffer {
  const b = Buffer.allocUnsafeSlow(u.length);
  b.set(u);
  return b;
}

export class WatchHub {
  readonly #src: WatchSource;
  readonly limits: WatchLimits;
  readonly #streams = new Set<WatchStream>();
  /** Synced single-key watchers by latin1 key. */
  readonly #keyWatchers = new Map<string, Set<Watcher>>();
  /** Synced range watchers (checked one by one per event: fine for tens of thousands). */
  readonly #rangeWatchers = new Set<Watcher>();
  /**
   * Streams that may have catch-up work: every stream with unsynced watchers that could send
   * when it was added. A paused stream is dropped at the next round and re-added by resume(), so
   * a write never walks streams whose clients are not reading.
   */
  readonly #unsyncedStreams = new Set<WatchStream>();
  #watcherCount = 0;

  constructor(src: WatchSource, limits: WatchLimits) {
    this.#src = src;
    this.limits = limits;
  }

  get src(): WatchSource {
    return this.#src;
  }

  get watcherCount(): number {
    return this.#watcherCount;
  }

  /** Whether a write's changes can reach a synced watcher (else notify() needs none). */
  get hasSyncedWatchers(): boolean {
    return this.#keyWatchers.size > 0 || this.#rangeWatchers.size > 0;
  }

  newStream(sink: WatchSink): WatchStream {
    const s = new WatchStream(this, sink);
    this.#streams.add(s);
    return s;
  }

  /** @internal */
  streamClosed(s: WatchStream): void {
    this.#streams.delete(s);
    this.#unsyncedStreams.delete(s);
  }

  /** @internal registers a new watcher (synced or not, as its minRev says). */
  addWatcher(w: Watcher): void {
    this.#watcherCount++;
    if (w.minRev > this.#src.currentRevision) this.#toSynced(w);
    else this.#toUnsynced(w, w.minRev);
  }

  /** @internal */
  removeWatcher(w: Watcher): void {
    this.#watcherCount--;
    if (w.synced) this.#leaveSynced(w);
    else w.stream.unsynced.delete(w);
    w.synced = false;
  }

  #leaveSynced(w: Watcher): void {
    if (w.keyString !== undefined) {
      const set = this.#keyWatchers.get(w.keyString);
      set?.delete(w);
      if (set !== undefined && set.size === 0) this.#keyWatchers.delete(w.keyString);
    } else {
      this.#rangeWatchers.delete(w);
    }
  }

  /** @internal a stream that can send again and has unsynced watchers. */
  wantsSync(s: WatchStream): void {
    this.#unsyncedStreams.add(s);
  }

  /** @internal */
  toSynced(w: Watcher): void {
    this.#toSynced(w);
  }

  #toSynced(w: Watcher): void {
    if (w.synced) return;
    w.stream.unsynced.delete(w);
    w.synced = true;
    if (w.keyString !== undefined) {
      let set = this.#keyWatchers.get(w.keyString);
      if (set === undefined) {
        set = new Set();
        this.#keyWatchers.set(w.keyString, set);
      }
      set.add(w);
    } else {
      this.#rangeWatchers.add(w);
    }
  }

  /** @internal */
  toUnsynced(w: Watcher, minRev: number): void {
    this.#toUnsynced(w, minRev);
  }

  #toUnsynced(w: Watcher, minRev: number): void {
    if (w.synced) this.#leaveSynced(w);
    w.synced = false;
    w.minRev = minRev;
    w.stream.unsynced.add(w);
    this.#unsyncedStreams.add(w.stream);
  }

  /**
   * Delivers the changes of the write that made revision `rev` to synced watchers (etcd
   * watchableStore.notify), then gives unsynced watchers one catch-up round.
   */
  notify(rev: number, changes: readonly Rec[]): void {
    if (this.#keyWatchers.size > 0 || this.#rangeWatchers.size > 0) {
      const batches = new Map<Watcher, Rec[]>();
      for (const rec of changes) {
        if (this.#keyWatchers.size > 0) {
          const set = this.#keyWatchers.get(rec.key.toString("latin1"));
          if (set !== undefined) for (const w of set) addTo(batches, w, rec);
        }
        for (const w of this.#rangeWatchers) if (w.matches(rec.key)) addTo(batches, w, rec);
      }
      // One Event object per change, shared by every watcher's response (never mutated after).
      const shared = new Map<Rec, Event>();
      for (const [w, recs] of batches) {
        // A watcher created with a future start revision waits for it (etcd: don't double notify).
        const due = recs.filter((r) => r.main >= w.minRev);
        if (due.length > 0) w.stream.deliverSynced(w, rev, due, shared);
      }
    }
    this.syncWatchers();
  }

  /**
   * One catch-up round: every unsynced watcher of every stream that can send gets at most one
   * batch. Returns true when unsynced watchers remain on streams that can send (call again).
   */
  syncWatchers(): boolean {
    let more = false;
    for (const s of [...this.#unsyncedStreams]) {
      if (s.syncRound()) more = true;
      else this.#unsyncedStreams.delete(s);
    }
    return more;
  }

  /**
   * Makes every synced watcher unsynced from `minRev` (the store's history was replaced by a
   * snapshot: etcd's watchableStore.Restore), so the next catch-up rounds feed it from there.
   */
  unsyncAll(minRev: number): void {
    const synced = [...this.#rangeWatchers];
    for (const set of this.#keyWatchers.values()) synced.push(...set);
    for (const w of synced) this.#toUnsynced(w, minRev);
  }

  /** etcd's progress ticker for every stream (sendLoop's progressTicker case). */
  progressNotify(): void {
    for (const s of this.#streams) s.progressTick();
  }
}

function addTo(batches: Map<Watcher, Rec[]>, w: Watcher, rec: Rec): void {
  const list = batches.get(w);
  if (list === undefined) batches.set(w, [rec]);
  else list.push(rec);
}

/**
 * One client Watch stream: etcd's serverWatchStream minus the transport. Create with
 * MvccStore.newWatchStream(sink); feed it every WatchRequest with handle(); call resume() when the
 * transport drains after a send() returned false; close() when the stream ends.
 *
 * Responses carry a header with only `revision` set (the revision etcd puts there: the store
 * revision at creation for created/canceled/progress responses, the write's revision for events);
 * the server fills cluster id, member id and raft term.
 */
export class WatchStream {
  readonly #hub: WatchHub;
  readonly #sink: WatchSink;
  readonly #watchers = new Map<bigint, Watcher>();
  /** @internal unsynced watchers of this stream. */
  readonly unsynced = new Set<Watcher>();
  /** Control responses waiting for the client to read (bounded by maxPendingResponsesPerStream). */
  readonly #pending: WatchResponse[] = [];
  #paused = false;
  #closed = false;
  #nextId = 0n;
  /**
   * A progress request came while a watcher of this stream was unsynced: it is answered once
   * every watcher is synced (etcd 3.5's deferredProgress, RequestProgressAll).
   */
  #deferredProgress = false;

  /** @internal use MvccStore.newWatchStream. */
  constructor(hub: WatchHub, sink: WatchSink) {
    this.#hub = hub;
    this.#sink = sink;
  }

  /** Number of watchers on this stream. */
  get size(): number {
    return this.#watchers.size;
  }

  /**
   * Handles one WatchRequest: create, cancel or progress, answering as etcd 3.4 does (a bad create
   * gets created=true, canceled=true, watch_id -1 and cancel_reason; cancel of an unknown id gets
   * nothing; progress gets watch_id -1 with the current revision). Client mistakes are answered,
   * not thrown. Throws WatchStreamOverloadedError only when the client keeps sending requests
   * while not reading its responses (more than maxPendingResponsesPerStream pending).
   */
  handle(req: WatchRequest): void {
    if (this.#closed) return;
    const u = req.requestUnion;
    switch (u.oneofKind) {
      case "createRequest":
        this.#create(u.createRequest);
        break;
      case "cancelRequest":
        this.#cancel(u.cancelRequest.watchId);
        break;
      case "progressRequest":
        // A progress response says every event up to its revision was sent: while a watcher
        // still catches up (a start revision in the past, a history replaced by a snapshot) that
        // would be false, so it waits until every watcher is synced (etcd's RequestProgressAll and
        // deferredProgress, etcd-io/etcd#15220 fixed by #15237 and #17557).
        this.#deferredProgress = true;
        break;
      default:
        // etcd ignores requests it does not understand and keeps the stream.
        return;
    }
    this.#catchUp();
  }

  /**
   * The transport drained: send what waited (control responses first, in order), then catch
   * unsynced watchers up from the store, until caught up, the sink is full again, or
   * maxSyncStepsPerCall rounds ran (then MvccStore.syncWatchers() or the next write continues).
   */
  resume(): void {
    if (this.#closed) return;
    this.#paused = false;
    this.#flushPending();
    this.#catchUp();
    if (this.unsynced.size > 0 && this.#ready) this.#hub.wantsSync(this);
  }

  /** Ends the stream: every watcher is removed; later calls do nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#watchers.values()) this.#hub.removeWatcher(w);
    this.#watchers.clear();
    this.#pending.length = 0;
    this.#hub.streamClosed(this);
  }

  get #ready(): boolean {
    return !this.#closed && !this.#paused && this.#pending.length === 0;
  }

  /**
   * A sink that throws is a broken transport: the stream is closed so that one bad client cannot
   * stop the other watchers of the same write from hearing about it.
   */
  #send(resp: WatchResponse): void {
    if (this.#closed) return;
    let ok: boolean;
    try {
      ok = this.#sink.send(resp);
    } catch {
      this.close();
      return;
    }
    if (!ok) this.#paused = true;
  }

  #sendCtrl(resp: WatchResponse, isProgress = false): void {
    if (this.#ready) {
      this.#send(resp);
      return;
    }
    if (isProgress) {
      // A waiting progress response only needs the newest revision: coalesce.
      const last = this.#pending[this.#pending.length - 1];
      if (
        last !== undefined &&
        last.watchId === invalidWatchId &&
        !last.created &&
        !last.canceled
      ) {
        last.header = resp.header;
        return;
      }
    }
    const limit = this.#hub.limits.maxPendingResponsesPerStream;
    if (this.#pending.length >= limit) throw new WatchStreamOverloadedError(limit);
    this.#pending.push(resp);
  }

  #flushPending(): void {
    let i = 0;
    while (i < this.#pending.length && !this.#paused) this.#send(this.#pending[i++]!);
    this.#pending.splice(0, i);
  }

  #catchUp(): void {
    const steps = this.#hub.limits.maxSyncStepsPerCall;
    for (let i = 0; i < steps && this.unsynced.size > 0 && this.#ready; i++) this.syncRound();
    this.#maybeSendProgress();
  }

  /** Answers a deferred progress request once no watcher of this stream is unsynced. */
  #maybeSendProgress(): void {
    if (!this.#deferredProgress || this.unsynced.size > 0 || this.#closed) return;
    this.#deferredProgress = false;
    this.#sendCtrl(
      response({ header: header(this.#hub.src.currentRevision), watchId: invalidWatchId }),
      true,
    );
  }

  #create(c: WatchCreateRequest): void {
    const src = this.#hub.src;
    const wsrev = src.currentRevision;
    // etcd: an empty key means "\0", the smallest key; range_end "\0" means every key >= key.
    const key = c.key.length === 0 ? Buffer.from([0]) : unpooledCopy(c.key);
    let end: Buffer | undefined;
    if (c.rangeEnd.length === 0) end = undefined;
    else if (c.rangeEnd.length === 1 && c.rangeEnd[0] === 0) end = emptyBuffer;
    else end = unpooledCopy(c.rangeEnd);
    const fail = (reason: string): void =>
      this.#sendCtrl(
        response({
          header: header(wsrev),
          watchId: invalidWatchId,
          created: true,
          canceled: true,
          cancelReason: reason,
        }),
      );
    if (end !== undefined && end.length !== 0 && Buffer.compare(key, end) >= 0) {
      return fail(errEmptyWatcherRange);
    }
    const maxWatchers = this.#hub.limits.maxWatchersPerStream;
    if (this.#watchers.size >= maxWatchers) {
      return fail(`etcd-ts: too many watchers on one watch stream (limit ${maxWatchers})`);
    }
    let id = c.watchId;
    if (id === 0n) {
      // clientv3.AutoWatchID: the next free id of this stream, as etcd's watchStream.Watch.
      while (this.#watchers.has(this.#nextId)) this.#nextId++;
      id = this.#nextId++;
    } else if (this.#watchers.has(id)) {
      return fail(errWatcherDuplicateId);
    }
    const startRev = c.startRevision === 0 ? wsrev + 1 : c.startRevision;
    const w = new Watcher(
      id,
      this,
      key,
      end,
      startRev,
      c.filters.includes(WatchCreateRequest_FilterType.NOPUT),
      c.filters.includes(WatchCreateRequest_FilterType.NODELETE),
      c.prevKv,
      c.fragment,
      c.progressNotify,
    );
    // The created response goes first: events of this watcher may only follow it.
    this.#sendCtrl(response({ header: header(wsrev), watchId: id, created: true }));
    if (this.#closed) return; // the sink threw: the stream is gone
    this.#watchers.set(id, w);
    this.#hub.addWatcher(w);
  }

  #cancel(id: bigint): void {
    const w = this.#watchers.get(id);
    if (w === undefined) return;
    this.#watchers.delete(id);
    this.#hub.removeWatcher(w);
    this.#sendCtrl(
      response({ header: header(this.#hub.src.currentRevision), watchId: id, canceled: true }),
    );
  }

  /** @internal the events of one write for synced watcher `w` (all with main >= w.minRev). */
  deliverSynced(w: Watcher, rev: number, recs: Rec[], shared: Map<Rec, Event>): void {
    if (this.#closed) return;
    if (!this.#ready) {
      // Not sent, not buffered: the store still has these revisions; catch up after resume().
      this.#hub.toUnsynced(w, recs[0]!.main);
      return;
    }
    w.minRev = rev + 1;
    this.#sendEvents(w, rev, recs, shared);
  }

  /**
   * @internal one catch-up batch for each unsynced watcher (etcd syncWatchers). Returns true when
   * this stream still has unsynced watchers and can send.
   */
  syncRound(): boolean {
    const src = this.#hub.src;
    for (const w of [...this.unsynced]) {
      if (!this.#ready) return false;
      this.#syncStep(w, src);
    }
    this.#maybeSendProgress();
    return this.unsynced.size > 0 && this.#ready;
  }

  #syncStep(w: Watcher, src: WatchSource): void {
    const curRev = src.currentRevision;
    const compactRev = src.compactRevision;
    if (w.minRev < compactRev) {
      // etcd chooseAll: the history this watcher needs is gone.
      this.#watchers.delete(w.id);
      this.#hub.removeWatcher(w);
      this.#send(
        response({
          // etcd sends this one with header revision 0 (its WatchResponse carries no revision).
          header: header(0),
          watchId: w.id,
          compactRevision: compactRev,
          canceled: true,
        }),
      );
      return;
    }
    mvccAssert(
      w.minRev <= curRev + 1,
      `unsynced watcher minRev ${w.minRev} > current ${curRev} + 1`,
    );
    const maxRevs = this.#hub.limits.maxEventsPerWatchResponse;
    const recs: Rec[] = [];
    let revs = 0;
    let lastMain = -1;
    let moreRev = 0;
    const take = (r: Rec): boolean => {
      if (r.main !== lastMain) {
        if (revs === maxRevs) {
          moreRev = r.main;
          return false;
        }
        revs++;
        lastMain = r.main;
      }
      recs.push(r);
      return true;
    };
    const records =
      w.end === undefined
        ? src.keyRecordsFrom(w.key, w.minRev)
        : src.recordsFrom(w.minRev, (k) => w.matches(k));
    for (const r of records) if (!take(r)) break;
    if (moreRev !== 0) {
      w.minRev = moreRev;
    } else {
      w.minRev = curRev + 1;
      this.#hub.toSynced(w);
    }
    if (recs.length > 0) this.#sendEvents(w, curRev, recs);
  }

  /** Filters, adds prev_kv, and sends (fragmenting if asked). Sends nothing if all filtered. */
  #sendEvents(w: Watcher, rev: number, recs: readonly Rec[], shared?: Map<Rec, Event>): void {
    const src = this.#hub.src;
    const events: Event[] = [];
    for (const r of recs) {
      if (r.isTombstone ? w.noDelete : w.noPut) continue;
      let ev = shared?.get(r);
      if (ev === undefined) {
        ev = recToEvent(r);
        shared?.set(r, ev);
      }
      // etcd: prev_kv is a range at mod_revision - 1, skipped for create events.
      if (w.prevKv && !(r.createRevision === r.main)) {
        const prev = prevRecord(src, r);
        if (prev !== undefined) ev = { ...ev, prevKv: recToKeyValue(prev) };
      }
      events.push(ev);
    }
    if (events.length === 0) return;
    w.progressDue = false;
    const resp = response({ header: header(rev), watchId: w.id, events });
    if (!w.fragment) {
      this.#send(resp);
      return;
    }
    this.#sendFragments(resp);
  }

  /** etcd sendFragments: split so that each part stays under maxRequestBytes (>= 1 event each). */
  #sendFragments(resp: WatchResponse): void {
    const max = this.#hub.limits.maxRequestBytes;
    const events = resp.events;
    const baseBytes = WatchResponseMsg.toBinary({ ...resp, events: [] }).length;
    const sizes = events.map((e) => {
      const n = EventMsg.toBinary(e).length;
      return 1 + varintSize(n) + n;
    });
    const total = baseBytes + sizes.reduce((a, b) => a + b, 0);
    if (total < max || events.length < 2) {
      this.#send(resp);
      return;
    }
    // The fragment flag itself costs 2 bytes (tag + bool), as etcd's Size() counts it.
    const fragBase = baseBytes + 2;
    let idx = 0;
    while (idx < events.length) {
      const start = idx;
      let bytes = fragBase;
      while (idx < events.length) {
        bytes += sizes[idx]!;
        if (idx > start && bytes >= max) break;
        idx++;
      }
      // Fragments of one response go out together even if the sink fills (bounded by this one).
      const wasPaused = this.#paused;
      this.#paused = false;
      this.#send({ ...resp, events: events.slice(start, idx), fragment: idx < events.length });
      this.#paused ||= wasPaused;
    }
  }

  /**
   * etcd sendLoop's progress ticker: a progress_notify watcher that got no events since the last
   * tick and is synced gets an empty response with the current revision.
   */
  progressTick(): void {
    if (this.#closed) return;
    const rev = this.#hub.src.currentRevision;
    for (const w of this.#watchers.values()) {
      if (!w.progressNotify) continue;
      if (w.progressDue && w.synced && this.#ready) {
        this.#send(response({ header: header(rev), watchId: w.id }));
      }
      w.progressDue = true;
    }
  }
}

/** The record of the same key visible at r.main - 1, unless that revision is compacted. */
function prevRecord(src: WatchSource, r: Rec): Rec | undefined {
  if (r.main - 1 < src.compactRevision) return undefined;
  const prev = src.recordBefore(r);
  return prev === undefined || prev.isTombstone ? undefined : prev;
}
