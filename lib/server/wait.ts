/**
 * Request-id waits (etcd's pkg/wait): a proposal registers its request id, the apply loop triggers
 * it with the result. Every wait has a deadline so a lost proposal cannot hold a client forever.
 */
import { errTimeout } from "./errors.js";

interface Waiter<T, Tag> {
  resolve: (value: T) => void;
  reject: (err: Error) => void;
  /** performance.now() milliseconds after which the wait fails with ErrTimeout. */
  deadlineMs: number;
  tag: Tag;
}

/** How often pending waits are checked against their deadlines. */
export const waitSweepIntervalMs = 100;

/**
 * Request-id waits. Deadlines are checked by one sweep every waitSweepIntervalMs while any wait is
 * pending, not by a timer per request: arming and clearing a timer per proposal was a measurable
 * share of the put path at thousands of proposals a second. A wait may so outlive its deadline by
 * up to one sweep interval. The promise register() returns IS the caller's answer (resolved with
 * the apply's response or rejected with its error), so no wrapper promise or async frame is needed
 * per request; `onSettled(tag, ok)` runs once per wait, however it ends, for the caller's
 * bookkeeping.
 */
export class RequestWaits<T, Tag = undefined> {
  readonly #waiters = new Map<number, Waiter<T, Tag>>();
  readonly #onSettled: ((tag: Tag, ok: boolean) => void) | undefined;
  #sweep: NodeJS.Timeout | undefined;

  constructor(onSettled?: (tag: Tag, ok: boolean) => void) {
    this.#onSettled = onSettled;
  }

  /**
   * Registers `id` (unique among pending waits); the promise resolves on trigger, rejects on fail,
   * or with ErrTimeout after timeoutMs. `tag` is handed back to onSettled.
   */
  register(id: number, timeoutMs: number, tag: Tag): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#waiters.set(id, { resolve, reject, deadlineMs: performance.now() + timeoutMs, tag });
      if (this.#sweep === undefined) {
        this.#sweep = setInterval(() => this.#expire(), waitSweepIntervalMs);
        this.#sweep.unref();
      }
    });
  }

  #expire(): void {
    const now = performance.now();
    for (const [id, w] of this.#waiters) {
      if (w.deadlineMs <= now) this.fail(id, errTimeout());
    }
    if (this.#waiters.size === 0) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }

  /** Resolves the wait for id with value; returns false when nobody waits (e.g. a replayed entry). */
  trigger(id: number, value: T): boolean {
    const w = this.#waiters.get(id);
    if (w === undefined) return false;
    this.#waiters.delete(id);
    this.#onSettled?.(w.tag, true);
    w.resolve(value);
    return true;
  }

  /**
   * Rejects the wait for id with err (nothing when nobody waits). `completed` tells onSettled the
   * request itself went through and only its answer is an error (an apply error), as opposed to a
   * timeout, a stop or a dropped proposal.
   */
  fail(id: number, err: Error, completed = false): void {
    const w = this.#waiters.get(id);
    if (w === undefined) return;
    this.#waiters.delete(id);
    this.#onSettled?.(w.tag, completed);
    w.reject(err);
  }

  failAll(err: Error): void {
    for (const id of [...this.#waiters.keys()]) this.fail(id, err);
  }

  get size(): number {
    return this.#waiters.size;
  }
}

/**
 * Waits for the applied index to reach a value (etcd's wait.WaitTime keyed by index): used by
 * linearizable reads after a read index is known. Waiters are kept sorted by index.
 */
export class AppliedIndexWaits {
  #waiters: { index: number; resolve: () => void; reject: (err: Error) => void }[] = [];

  wait(index: number, appliedIndex: number): Promise<void> {
    if (appliedIndex >= index) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#waiters.push({ index, resolve, reject });
    });
  }

  /** Rejects every waiter (the member stopped). */
  failAll(err: Error): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(err);
  }

  /** Called after each apply batch. */
  appliedTo(appliedIndex: number): void {
    if (this.#waiters.length === 0) return;
    const keep: { index: number; resolve: () => void; reject: (err: Error) => void }[] = [];
    for (const w of this.#waiters) {
      if (w.index <= appliedIndex) w.resolve();
      else keep.push(w);
    }
    this.#waiters = keep;
  }
}
