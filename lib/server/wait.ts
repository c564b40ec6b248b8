/**
 * Request-id waits (etcd's pkg/wait): a proposal registers its request id, the apply loop triggers
 * it with the result. Every wait has a deadline so a lost proposal cannot hold a client forever.
 */
import { errTimeout } from "./errors.js";

interface Waiter<T, Tag> {
  id: number;
  resolve: (value: T) => void;
  reject: (err: Error) => void;
  /** performance.now() milliseconds when it was registered, and after which it times out. */
  startedMs: number;
  deadlineMs: number;
  tag: Tag;
}

/** How often pending waits are checked against their deadlines. */
export const waitSweepIntervalMs = 100;

const initialSlots = 1024;

/**
 * Request-id waits. Deadlines are checked by one sweep every waitSweepIntervalMs while any wait is
 * pending, not by a timer per request: arming and clearing a timer per proposal was a measurable
 * share of the put path at thousands of proposals a second. A wait may so outlive its deadline by
 * up to one sweep interval. The promise register() returns IS the caller's answer (resolved with
 * the apply's response or rejected with its error), so no wrapper promise or async frame is needed
 * per request; `onSettled(tag, ok)` runs once per wait, however it ends, for the caller's
 * bookkeeping.
 *
 * Waits sit in a ring of slots indexed by id modulo its size, which doubles when half full and
 * never shrinks; a wait whose slot another pending id holds goes to a small overflow map. Ids are
 * the server's request counter, so pending ids are consecutive and almost never meet. (A Map for
 * all of them grew and shrank its hash table with every wave of group-committed proposals: ~10 %
 * of the bytes that survived young-generation collections under put load.)
 */
export class RequestWaits<T, Tag = undefined> {
  #slots: (Waiter<T, Tag> | undefined)[] = new Array<Waiter<T, Tag> | undefined>(initialSlots).fill(
    undefined,
  );
  /** Waits whose slot was taken by another pending id (rare: ids are a counter). */
  readonly #overflow = new Map<number, Waiter<T, Tag>>();
  #size = 0;
  readonly #onSettled: ((tag: Tag, ok: boolean) => void) | undefined;
  readonly #timeoutError: (tag: Tag, startedMs: number) => Error;
  #sweep: NodeJS.Timeout | undefined;

  /**
   * `timeoutError(tag, startedMs)` gives the error a wait registered at `startedMs`
   * (performance.now()) fails with at its deadline (default ErrTimeout).
   */
  constructor(
    onSettled?: (tag: Tag, ok: boolean) => void,
    timeoutError: (tag: Tag, startedMs: number) => Error = () => errTimeout(),
  ) {
    this.#onSettled = onSettled;
    this.#timeoutError = timeoutError;
  }

  /**
   * Registers `id` (a non-negative integer, unique among pending waits; a second register of a
   * pending id replaces the first without settling it); the promise resolves on trigger, rejects
   * on fail, or with the timeout error (see the constructor) after timeoutMs. `tag` is handed back to onSettled.
   */
  register(id: number, timeoutMs: number, tag: Tag): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const startedMs = performance.now();
      this.#put({ id, resolve, reject, startedMs, deadlineMs: startedMs + timeoutMs, tag });
      if (this.#sweep === undefined) {
        this.#sweep = setInterval(() => this.#expire(), waitSweepIntervalMs);
        this.#sweep.unref();
      }
    });
  }

  #put(w: Waiter<T, Tag>): void {
    if (this.#size >= this.#slots.length >>> 1) this.#grow();
    const slots = this.#slots;
    const i = w.id % slots.length;
    const there = slots[i];
    if (there === undefined || there.id === w.id) {
      if (there === undefined) this.#size++;
      slots[i] = w;
      return;
    }
    // two pending ids in one slot: the newer goes to the overflow map
    if (!this.#overflow.has(w.id)) this.#size++;
    this.#overflow.set(w.id, w);
  }

  /** Doubles the ring; waits that then share a slot go to the overflow map. */
  #grow(): void {
    const old = this.#slots;
    const n = old.length * 2;
    const slots = new Array<Waiter<T, Tag> | undefined>(n).fill(undefined);
    const moved = [...old, ...this.#overflow.values()];
    this.#overflow.clear();
    for (const w of moved) {
      if (w === undefined) continue;
      const i = w.id % n;
      if (slots[i] === undefined) slots[i] = w;
      else this.#overflow.set(w.id, w);
    }
    this.#slots = slots;
  }

  /** The pending wait for id, removed; undefined if none. */
  #take(id: number): Waiter<T, Tag> | undefined {
    const slots = this.#slots;
    const i = id % slots.length;
    const w = slots[i];
    if (w !== undefined && w.id === id) {
      slots[i] = undefined;
      this.#size--;
      return w;
    }
    if (this.#overflow.size === 0) return undefined;
    const o = this.#overflow.get(id);
    if (o === undefined) return undefined;
    this.#overflow.delete(id);
    this.#size--;
    return o;
  }

  #expire(): void {
    const now = performance.now();
    const slots = this.#slots;
    for (let i = 0; i < slots.length; i++) {
      const w = slots[i];
      if (w !== undefined && w.deadlineMs <= now) this.fail(w.id, this.#timedOut(w));
    }
    for (const w of [...this.#overflow.values()]) {
      if (w.deadlineMs <= now) this.fail(w.id, this.#timedOut(w));
    }
    if (this.#size === 0) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }

  #timedOut(w: Waiter<T, Tag>): Error {
    return this.#timeoutError(w.tag, w.startedMs);
  }

  /** Resolves the wait for id with value; returns false when nobody waits (e.g. a replayed entry). */
  trigger(id: number, value: T): boolean {
    const w = this.#take(id);
    if (w === undefined) return false;
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
    const w = this.#take(id);
    if (w === undefined) return;
    this.#onSettled?.(w.tag, completed);
    w.reject(err);
  }

  failAll(err: Error): void {
    for (const w of this.#slots) if (w !== undefined) this.fail(w.id, err);
    for (const w of [...this.#overflow.values()]) this.fail(w.id, err);
  }

  get size(): number {
    return this.#size;
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
