/**
 * Linearizable reads (etcd 3.4's v3_server.go linearizableReadLoop, Raft thesis §6.4): requests
 * that arrive while a ReadIndex is in flight join the next batch; each batch asks raft for one
 * read index (a follower's request is forwarded to the leader, which confirms its leadership with
 * a heartbeat round) and is released once the member has applied up to it. A batch whose answer
 * does not come within readIndexRetryMs is asked again (the message or its answer may have been
 * dropped; etcd 3.5's readIndexRetryTime); a leader change fails the batches in flight with
 * "etcdserver: leader changed" (etcd's leaderChangedNotifier case), the request timeout with
 * "etcdserver: request timed out".
 */
import type { ReadState } from "../raft/index.js";
import {
  errLeaderChanged,
  errNoLeader,
  errStopped,
  errTimeout,
  errTooManyRequests,
} from "./errors.js";

/** An unanswered read index is asked again after this long (etcd 3.5's readIndexRetryTime). */
const readIndexRetryMs = 500;

/** What the read loop needs of the member. */
export interface ReadIndexHost {
  stopped(): boolean;
  leaderId(): bigint;
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

/** Batches linearizable reads into ReadIndex requests (see the module comment). */
export class ReadIndexLoop {
  readonly #host: ReadIndexHost;
  #pending: ReadWaiter[] = [];
  readonly #inFlight = new Map<string, ReadWaiter[]>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  #counter = 0n;

  constructor(host: ReadIndexHost) {
    this.#host = host;
  }

  /**
   * etcd's linearizableReadNotify: joins the next ReadIndex batch and resolves once the member has
   * applied up to the read index that batch got. Rejects with ErrNoLeader, ErrTimeout,
   * ErrTooManyRequests or ErrStopped.
   */
  notify(): Promise<void> {
    if (this.#host.stopped()) return Promise.reject(errStopped());
    return new Promise((resolve, reject) => {
      this.#pending.push({ resolve, reject });
      if (this.#pending.length === 1) setImmediate(() => this.#issue());
    });
  }

  #issue(): void {
    const batch = this.#pending;
    if (batch.length === 0) return;
    this.#pending = [];
    if (this.#host.leaderId() === 0n) {
      for (const w of batch) w.reject(errNoLeader());
      return;
    }
    this.#counter += 1n;
    const ctx = Buffer.alloc(8);
    ctx.writeBigUInt64BE(this.#counter);
    const key = ctx.toString("hex");
    this.#inFlight.set(key, batch);
    const deadlineMs = Date.now() + this.#host.requestTimeoutMs();
    const retry = (): void => {
      const waiting = this.#inFlight.get(key);
      if (waiting === undefined) return;
      if (Date.now() >= deadlineMs || this.#host.stopped()) {
        this.#inFlight.delete(key);
        this.#timers.delete(key);
        for (const w of waiting) w.reject(errTimeout());
        return;
      }
      try {
        if (this.#host.leaderId() !== 0n) this.#host.readIndex(ctx);
        this.#host.scheduleReady();
      } catch {
        // dropped again (no leader yet): the next retry or the deadline decides
      }
      const next = setTimeout(retry, Math.min(readIndexRetryMs, deadlineMs - Date.now()));
      next.unref();
      this.#timers.set(key, next);
    };
    const timer = setTimeout(retry, readIndexRetryMs);
    timer.unref();
    this.#timers.set(key, timer);
    try {
      this.#host.readIndex(ctx);
    } catch {
      // raft refuses reads while too many wait for the leader's first commit in its term
      clearTimeout(timer);
      this.#inFlight.delete(key);
      this.#timers.delete(key);
      for (const w of batch) w.reject(errTooManyRequests());
      return;
    }
    this.#host.scheduleReady();
  }

  /** A Ready's readStates: each answered batch waits for its index to be applied. */
  onReadStates(states: readonly ReadState[]): void {
    for (const rs of states) {
      const key = Buffer.from(rs.requestCtx).toString("hex");
      const waiting = this.#inFlight.get(key);
      if (waiting === undefined) continue;
      this.#inFlight.delete(key);
      clearTimeout(this.#timers.get(key));
      this.#timers.delete(key);
      this.#host.waitApplied(rs.index).then(
        () => {
          for (const w of waiting) w.resolve();
        },
        (err: Error) => {
          for (const w of waiting) w.reject(err);
        },
      );
    }
  }

  /**
   * The leader changed: batches still waiting for their read index fail with "leader changed"
   * (their answer, if any, would come from a leader that is gone).
   */
  onLeaderChange(): void {
    for (const [key, ws] of this.#inFlight) {
      clearTimeout(this.#timers.get(key));
      this.#timers.delete(key);
      this.#inFlight.delete(key);
      for (const w of ws) w.reject(errLeaderChanged());
    }
  }

  /** Fails every waiting read with ErrStopped. */
  stop(): void {
    for (const w of this.#pending) w.reject(errStopped());
    this.#pending = [];
    for (const ws of this.#inFlight.values()) for (const w of ws) w.reject(errStopped());
    this.#inFlight.clear();
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
  }
}
