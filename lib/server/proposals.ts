/**
 * Proposals of this member and their waits (etcd 3.4's v3_server.go processInternalRaftRequest,
 * idutil's request ids and pkg/wait): a client write is encoded as an InternalRaftRequest with a
 * fresh request id, proposed to raft (which forwards it to the leader from a follower), and its
 * caller waits on that id until the apply loop answers it, it fails, or it times out.
 *
 * A proposal can be lost without raft saying so: the leader it went to lost its leadership before
 * replicating it, or the forwarded message was dropped. Each proposal remembers the raft term it
 * was made in; once the member applies the first entry of a later term (the new leader's empty
 * entry, Raft §5.4.2), every entry of the older terms that will ever commit has been applied
 * before it, so proposals of older terms still waiting fail with "etcdserver: leader changed"
 * (only a forwarded message that reaches a later leader can still apply after that: its client
 * saw an error for a write that happened, the same uncertainty as a timeout). A dropped message
 * with no leader change ends at the request timeout ("etcdserver: request timed out"). Either way
 * the wait is removed, so nothing blocks or answers a later request.
 *
 * While this member knows no leader, a proposal is not refused: it waits in a LeaderWaitQueue
 * (leader-wait.ts) and goes to raft once a leader is known, as etcd 3.4's node.Propose blocks. One
 * that never got to raft ends at the request timeout as etcd's does, with the context's own
 * error (gRPC Unknown "context deadline exceeded"); the timeout rules above apply from the moment
 * it reaches raft. One whose client gave up meanwhile (RequestCaller) never reaches raft.
 */
import { InternalRaftRequest } from "../proto/gen/etcdserverpb/raft_internal.js";
import type { ConfChange } from "../proto/gen/raftpb/raft.js";
import { randomBytes } from "node:crypto";
import type { AuthInfo } from "../auth/index.js";
import {
  errLeaderChanged,
  errProposeDeadlineExceeded,
  errRequestTooLarge,
  errStopped,
  errTooManyRequests,
} from "./errors.js";
import type { ServerMetrics } from "./metrics.js";
import { encodePutProposal, isPlainPutRequest } from "./raft-request-codec.js";
import { LeaderWaitQueue } from "./leader-wait.js";
import { RequestWaits } from "./wait.js";

/** Request-id counters wrap at 2^48 (the low 48 bits of an id; etcd idutil's suffix). */
const requestIdCounterModulus = 2 ** 48;

/** Consumed local proposals at the head of the queue before it is compacted. */
const localQueueCompactAt = 1024;

/** etcd's maxGapBetweenApplyAndCommitIndex: proposals are refused with "too many requests" beyond it. */
const maxGapBetweenApplyAndCommitIndex = 5000;

/** A proposal of this member awaiting apply: the entry bytes, its request object, its waits key. */
export interface LocalProposal {
  data: Uint8Array;
  request: InternalRaftRequest;
  waitKey: number;
  /** raft's term when it was proposed */
  term: number;
  /** its wait ended (applied, failed, timed out): the apply loop skips it */
  settled: boolean;
  /** raft took it (false while it waits for a leader) */
  proposed: boolean;
  /** set for a membership change (proposed as such, `data` unused) */
  confChange?: ConfChange;
  /** the client, when it can tell that it gave up (RequestCaller) */
  caller?: RequestCaller;
}

/**
 * The client's side of a request (lib/api's CallAuth is one): `cancelled` turns true once the
 * client gave up (cancelled, its deadline passed, its connection went). A proposal still waiting
 * for a leader then never goes to raft, as etcd's node.Propose returns when the request's context
 * ends: a write whose client saw it fail before any leader was known is never applied.
 */
export interface RequestCaller {
  readonly cancelled?: boolean;
}

/** What the proposals need of the member. */
export interface ProposalsHost {
  readonly metrics: ServerMetrics;
  readonly maxRequestBytes: number;
  requestTimeoutMs(): number;
  stopped(): boolean;
  commitIndex(): number;
  appliedIndex(): number;
  /** raft knows a leader right now (raft's own view, ahead of the last Ready's) */
  knowsLeader(): boolean;
  /** how often proposals waiting for a leader look whether raft knows one, in ms (a tick) */
  readonly leaderPollMs: number;
  /** raft's current term */
  term(): number;
  /** Hands the entry bytes to raft; throws when raft drops the proposal. */
  propose(data: Uint8Array): void;
  /** Hands a membership change to raft; throws when raft drops it. */
  proposeConfChange(cc: ConfChange): void;
  /** Runs the ready loop soon. */
  scheduleReady(): void;
  /**
   * The error a proposal made at `startedMs` (performance.now()) fails with when it times out
   * (timeout-cause.ts: etcd's parseProposeCtxErr).
   */
  timeoutError(startedMs: number): Error;
  /**
   * Where request ids start: the 16-bit prefix and the 48-bit counter. Default: a random prefix
   * and a counter from the clock (etcd idutil). Given only by deterministic tests (the Raft
   * simulator), so ids, entry bytes and entry sizes are the same on every run of a seed.
   */
  readonly requestIdStart?: { prefix16: number; counter: number };
}

/**
 * Request ids, waits and the queue of this member's proposals. Request ids follow etcd's idutil
 * layout: a random 16-bit prefix for this run, then a 48-bit counter started from the clock. They
 * are held as numbers so the put path makes no BigInt: the counter alone is the waits key, and the
 * id's two 32-bit words are what the proposal encoder writes.
 */
export class Proposals {
  readonly #host: ProposalsHost;
  readonly #waits = new RequestWaits<unknown, LocalProposal>(
    (local, ok) => this.#onWaitSettled(local, ok),
    (local, startedMs) =>
      local.proposed ? this.#host.timeoutError(startedMs) : errProposeDeadlineExceeded(),
  );
  /** proposals made while no leader is known, in order (see the module comment) */
  readonly #leaderWait: LeaderWaitQueue;
  /**
   * Proposals of this member in the order they went to raft: the apply loop takes the request
   * object from the head instead of decoding the entry when the entry is the very bytes proposed
   * (see takeLocal). Raft appends a leader's proposals in order, so the head is the next one
   * to apply; settled ones (failed, timed out) are skipped. A proposal raft dropped without an
   * error (it cannot on a lone member) only makes later entries take the decoding path until its
   * wait times out. A queue, not a Map by entry bytes: the Map's hash table grew and shrank with
   * every group-commit wave.
   */
  #localQueue: LocalProposal[] = [];
  #localHead = 0;
  #requestIdCounter = 0;
  readonly #requestIdPrefix16: number;

  constructor(host: ProposalsHost) {
    this.#host = host;
    this.#leaderWait = new LeaderWaitQueue(() => host.knowsLeader(), host.leaderPollMs);
    const start = host.requestIdStart;
    this.#requestIdPrefix16 = start?.prefix16 ?? randomBytes(2).readUInt16BE(0);
    this.#requestIdCounter = (start?.counter ?? Date.now() * 256) % requestIdCounterModulus;
  }

  /** Advances the 48-bit request counter and returns it (the waits key of the new id). */
  #nextRequestCounter(): number {
    this.#requestIdCounter = (this.#requestIdCounter + 1) % requestIdCounterModulus;
    return this.#requestIdCounter;
  }

  /** The 64-bit request id of counter value `counter`. */
  #requestIdOf(counter: number): bigint {
    return (BigInt(this.#requestIdPrefix16) << 48n) | BigInt(counter);
  }

  /** A fresh 64-bit request id (also used for lease ids, as etcd's reqIDGen). */
  nextRequestId(): bigint {
    return this.#requestIdOf(this.#nextRequestCounter());
  }

  /** The waits key of a request id this member made; undefined for another member's (or 0). */
  waitKeyOf(id: bigint): number | undefined {
    if (id === 0n || Number(id >> 48n) !== this.#requestIdPrefix16) return undefined;
    return Number(BigInt.asUintN(48, id));
  }

  /**
   * Proposes an InternalRaftRequest and waits until it is applied. Throws ErrRequestTooLarge when
   * the encoded request exceeds --max-request-bytes (etcd's processInternalRaftRequestOnce),
   * ErrTimeout (or its variants), "context deadline exceeded" when no leader was known for the whole
   * request timeout, ErrLeaderChanged, ErrStopped, or the error the apply produced.
   */
  propose<T>(r: InternalRaftRequest, ai?: AuthInfo, caller?: RequestCaller): Promise<T> {
    const host = this.#host;
    if (host.stopped()) return Promise.reject(errStopped());
    if (host.commitIndex() - host.appliedIndex() > maxGapBetweenApplyAndCommitIndex) {
      return Promise.reject(errTooManyRequests());
    }
    const waitKey = this.#nextRequestCounter();
    let data: Uint8Array;
    if (r.put !== undefined && r.iD === 0n && ai === undefined && isPlainPutRequest(r.put)) {
      // the header is only in the bytes: the apply loop finds this request by them (LocalProposal)
      const hi = this.#requestIdPrefix16 * 0x10000 + Math.floor(waitKey / 0x100000000);
      data = encodePutProposal(hi, waitKey % 0x100000000, r.put);
    } else {
      // etcd's processInternalRaftRequestOnce: the caller's user and auth revision ride along
      r.header = {
        iD: this.#requestIdOf(waitKey),
        username: ai?.username ?? "",
        authRevision: ai?.revision ?? 0,
      };
      // etcd 3.4's v2 requests (the member attribute publish) carry their own id
      if (r.v2 !== undefined) r.v2.iD = r.header.iD;
      data = InternalRaftRequest.toBinary(r);
    }
    if (data.length > host.maxRequestBytes) return Promise.reject(errRequestTooLarge());
    // settled by the apply loop (or a failure, timeout or stop); #onWaitSettled cleans up
    const local: LocalProposal = {
      data,
      request: r,
      waitKey,
      term: 0,
      settled: false,
      proposed: false,
      confChange: undefined,
      caller,
    };
    const done = this.#waits.register(waitKey, host.requestTimeoutMs(), local) as Promise<T>;
    host.metrics.counts.proposalsPending++;
    this.#submit(local);
    return done;
  }

  /**
   * Hands `local` to raft, or holds it until a leader is known (behind anything already held, so
   * proposals reach raft in the order they were made). Raft dropping it for want of a leader holds
   * it again; a leader that is handing over its leadership takes no proposals: "leader changed".
   */
  #submit(local: LocalProposal): void {
    if (local.settled) return;
    const host = this.#host;
    if (this.#leaderWait.holding || !host.knowsLeader()) {
      this.#leaderWait.hold(() => this.#afterHold(local));
      return;
    }
    local.term = host.term();
    try {
      if (local.confChange !== undefined) host.proposeConfChange(local.confChange);
      else host.propose(local.data);
    } catch {
      if (!host.knowsLeader()) this.#leaderWait.hold(() => this.#afterHold(local));
      else this.#waits.fail(local.waitKey, errLeaderChanged());
      return;
    }
    local.proposed = true;
    this.#localQueue.push(local);
    host.scheduleReady();
  }

  /** A held proposal is released: to raft, unless its client gave up while it waited. */
  #afterHold(local: LocalProposal): void {
    if (!local.settled && local.caller?.cancelled === true) {
      this.#waits.fail(local.waitKey, errProposeDeadlineExceeded());
      return;
    }
    this.#submit(local);
  }

  /** A leader is known (RaftNode's onLeaderChange): proposals held for one go to raft now. */
  onLeaderChange(lead: bigint): void {
    if (lead !== 0n) this.#leaderWait.release();
  }

  /**
   * Proposes a membership change (etcd's configure): `cc.iD` is set to a fresh request id, and the
   * promise settles when the change is applied, with what the apply answered (the member list)
   * or its error. Waits for a leader as propose(); errors as propose().
   */
  proposeConfChange<T>(cc: ConfChange): Promise<T> {
    const host = this.#host;
    if (host.stopped()) return Promise.reject(errStopped());
    const waitKey = this.#nextRequestCounter();
    cc.iD = this.#requestIdOf(waitKey);
    const local: LocalProposal = {
      data: new Uint8Array(0),
      request: InternalRaftRequest.create(),
      waitKey,
      term: 0,
      settled: false,
      proposed: false,
      confChange: cc,
      caller: undefined,
    };
    const done = this.#waits.register(waitKey, host.requestTimeoutMs(), local) as Promise<T>;
    host.metrics.counts.proposalsPending++;
    this.#submit(local);
    return done;
  }

  /**
   * The member is about to apply the first entry of `term`: proposals of older terms still waiting
   * can no longer commit (see the module comment) and fail with "leader changed".
   */
  failProposedBefore(term: number): void {
    const q = this.#localQueue;
    const pending: LocalProposal[] = [];
    for (let i = this.#localHead; i < q.length; i++) {
      const p = q[i]!;
      if (p.term >= term) break;
      if (!p.settled) pending.push(p);
    }
    for (const p of pending) this.#waits.fail(p.waitKey, errLeaderChanged());
  }

  /**
   * The local proposal whose bytes `data` are, if it is the next one in proposal order; undefined
   * for an entry another member proposed (or replayed from the WAL), which is then decoded. On the
   * leader the entry holds the very array proposed; on a follower the entry came back from the
   * leader in a MsgApp, a copy of the bytes it forwarded: equal bytes are the same proposal (they
   * carry its request id, this member's prefix and counter, unique among its pending proposals).
   */
  takeLocal(data: Uint8Array): LocalProposal | undefined {
    const q = this.#localQueue;
    let head = this.#skipSettledLocal();
    let found: LocalProposal | undefined;
    if (head < q.length && sameBytes(q[head]!.data, data)) found = q[head++];
    this.#localHead = head;
    return found;
  }

  /** Moves the queue head past settled proposals, compacting the queue; returns the head. */
  #skipSettledLocal(): number {
    const q = this.#localQueue;
    let head = this.#localHead;
    while (head < q.length && q[head]!.settled) head++;
    if (head >= localQueueCompactAt && head * 2 >= q.length) {
      q.splice(0, head);
      head = 0;
    }
    this.#localHead = head;
    return head;
  }

  /** Answers the proposal waiting on `waitKey` with its apply's response. */
  trigger(waitKey: number, response: unknown): void {
    this.#waits.trigger(waitKey, response);
  }

  /**
   * Fails the proposal waiting on `waitKey`. `completed`: the request was applied and its answer
   * is an error (etcd counts proposals_failed_total only for proposals that time out or are
   * dropped).
   */
  fail(waitKey: number, err: Error, completed = false): void {
    this.#waits.fail(waitKey, err, completed);
  }

  /** Fails every waiting proposal (the member stops). */
  failAll(err: Error): void {
    this.#leaderWait.clear();
    this.#waits.failAll(err);
  }

  /**
   * Bookkeeping when a proposal's wait settles, however it ends (RequestWaits' onSettled); `ok` is
   * false for a proposal that timed out, was dropped or was cut short by a stop.
   */
  #onWaitSettled(local: LocalProposal, ok: boolean): void {
    local.settled = true;
    this.#host.metrics.counts.proposalsPending--;
    if (!ok) {
      this.#host.metrics.proposalsFailedTotal.inc();
      // proposals that never reach apply must not pile up at the head of the queue
      this.#skipSettledLocal();
    }
  }
}

/** True when `a` and `b` hold the same bytes (the same array, or equal contents). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a === b || (a.length === b.length && Buffer.compare(a, b) === 0);
}
