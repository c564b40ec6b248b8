/**
 * Linearizable reads (etcd 3.4's v3_server.go linearizableReadLoop, Raft thesis §6.4): requests
 * that arrive while a ReadIndex is in flight join the next batch; each batch asks raft for one
 * read index (a follower's request is forwarded to the leader, which confirms its leadership with
 * a heartbeat round) and is released once the member has applied up to it. A batch whose answer
 * does not come within readIndexRetryMs is asked again (the message or its answer may have been
 * dropped; etcd 3.5's readIndexRetryTime); the request timeout ends it with "etcdserver: request
 * timed out", as etcd's read loop does.
 *
 * While no leader is known a batch waits instead of failing (etcd 3.4's read loop also waits, for
 * its request timeout, for an answer to a ReadIndex raft dropped), and it is asked of the next
 * leader as soon as one is known. A batch in flight when the leader changes is asked again of the
 * new leader at once: etcd fails it with "etcdserver: leader changed" (its clients retry a read),
 * but any read index got after the request arrived is as good, and the old leader's answer, if it
 * ever comes, is still one (it confirmed its leadership for it).
 */
import type { ReadState } from "../raft/index.js";
import { errStopped, errTimeout, errTooManyRequests } from "./errors.js";

/** An unanswered read index is asked again after this long (etcd 3.5's readIndexRetryTime). */
const readIndexRetryMs = 500;

/** What the read loop needs of the member. */
export interface ReadIndexHost {
  stopped(): boolean;
  /** raft knows a leader right now (raft's own view, ahead of the last Ready's) */
  knowsLeader(): boolean;
  requestTimeoutMs(): number;
  /** Asks raft for a read index under `ctx`; throws when raft drops the request. */
  readIndex(ctx: Uint8Array): void;
  scheduleReady(): void;
  /** Resolves once the member has applied `index`. */
  waitApplied(index: number): Promise<void>;
}

interface ReadWaiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

/** One ReadIndex request and the reads waiting on its answer. */
interface ReadBatch {
  /** the request context raft echoes back in its ReadState */
  ctx: Uint8Array;
  waiters: ReadWaiter[];
  /** Date.now() milliseconds after which it fails with "request timed out" */
  deadlineMs: number;
  /** the retry (or deadline) timer */
  timer: NodeJS.Timeout | undefined;
}

/** Batches linearizable reads into ReadIndex requests (see the module comment). */
export class ReadIndexLoop {
  readonly #host: ReadIndexHost;
  #pending: ReadWaiter[] = [];
  /** batches asked (or waiting for a leader to ask), by their ctx in hex */
  readonly #inFlight = new Map<string, ReadBatch>();
  #counter = 0n;

  constructor(host: ReadIndexHost) {
    this.#host = host;
  }

  /**
   * etcd's linearizableReadNotify: joins the next ReadIndex batch and resolves once the member has
   * applied up to the read index that batch got. Waits for a leader while none is known. Rejects
   * with ErrTimeout (no answer within the request timeout), ErrTooManyRequests or ErrStopped.
   */
  notify(): Promise<void> {
    if (this.#host.stopped()) return Promise.reject(errStopped());
    return new Promise((resolve, reject) => {
      this.#pending.push({ resolve, reject });
      if (this.#pending.length === 1) setImmediate(() => this.#issue());
    });
  }

  #issue(): void {
    const waiters = this.#pending;
    if (waiters.length === 0) return;
    this.#pending = [];
    this.#counter += 1n;
    const ctx = Buffer.alloc(8);
    ctx.writeBigUInt64BE(this.#counter);
    const key = ctx.toString("hex");
    const batch: ReadBatch = {
      ctx,
      waiters,
      deadlineMs: Date.now() + this.#host.requestTimeoutMs(),
      timer: undefined,
    };
    this.#inFlight.set(key, batch);
    this.#armRetry(key, batch);
    if (this.#host.knowsLeader() && !this.#ask(batch)) {
      // raft refuses reads while too many wait for the leader's first commit in its term
      this.#end(key, batch);
      for (const w of waiters) w.reject(errTooManyRequests());
      return;
    }
    this.#host.scheduleReady();
  }

  /** Asks raft for the batch's read index; false when raft refused it with a leader known. */
  #ask(batch: ReadBatch): boolean {
    try {
      this.#host.readIndex(batch.ctx);
      return true;
    } catch {
      // dropped for want of a leader: the next leader (onLeaderChange) or retry asks again
      return !this.#host.knowsLeader();
    }
  }

  /**
   * The batch's timer: every readIndexRetryMs it is asked again if a leader is known (the request
   * or its answer may have been lost); at its deadline it fails with "request timed out".
   */
  #armRetry(key: string, batch: ReadBatch): void {
    const waitMs = Math.max(0, Math.min(readIndexRetryMs, batch.deadlineMs - Date.now()));
    batch.timer = setTimeout(() => {
      if (this.#inFlight.get(key) !== batch) return;
      if (Date.now() >= batch.deadlineMs || this.#host.stopped()) {
        this.#end(key, batch);
        for (const w of batch.waiters) w.reject(errTimeout());
        return;
      }
      if (this.#host.knowsLeader()) {
        this.#ask(batch);
        this.#host.scheduleReady();
      }
      this.#armRetry(key, batch);
    }, waitMs);
    batch.timer.unref();
  }

  #end(key: string, batch: ReadBatch): void {
    this.#inFlight.delete(key);
    clearTimeout(batch.timer);
  }

  /** A Ready's readStates: each answered batch waits for its index to be applied. */
  onReadStates(states: readonly ReadState[]): void {
    for (const rs of states) {
      const key = Buffer.from(rs.requestCtx).toString("hex");
      const batch = this.#inFlight.get(key);
      if (batch === undefined) continue;
      this.#end(key, batch);
      this.#host.waitApplied(rs.index).then(
        () => {
          for (const w of batch.waiters) w.resolve();
        },
        (err: Error) => {
          for (const w of batch.waiters) w.reject(err);
        },
      );
    }
  }

  /**
   * The leader this member knows changed (RaftNode's onLeaderChange): with a new leader known,
   * every batch still waiting is asked of it at once (see the module comment).
   */
  onLeaderChange(lead: bigint): void {
    if (lead === 0n || this.#inFlight.size === 0) return;
    for (const batch of this.#inFlight.values()) this.#ask(batch);
    this.#host.scheduleReady();
  }

  /** Fails every waiting read with ErrStopped. */
  stop(): void {
    for (const w of this.#pending) w.reject(errStopped());
    this.#pending = [];
    for (const batch of this.#inFlight.values()) {
      clearTimeout(batch.timer);
      for (const w of batch.waiters) w.reject(errStopped());
    }
    this.#inFlight.clear();
  }
}
