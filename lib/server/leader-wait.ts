/**
 * Requests held while this member knows no leader (etcd-io/raft's node.run sets its proposal
 * channel to nil while there is no leader, so etcd 3.4's node.Propose blocks until a leader is
 * known or the request's context ends). Proposals, conf changes and ReadIndex batches made during
 * an election wait here and go out, in the order they came, as soon as raft knows a leader (this
 * member may be that leader); each holder bounds its own wait (the request timeout) and ignores a
 * release that comes after it gave up.
 *
 * Two things release the queue: the raft loop reporting a known leader (RaftNode's
 * onLeaderChange), and a poll every `pollMs` while anything is held, which covers a leader that
 * raft lost and found again between two Readys (no leader change is then reported).
 */

/** Work held until a leader is known; released in arrival order. */
export class LeaderWaitQueue {
  readonly #knowsLeader: () => boolean;
  readonly #pollMs: number;
  #held: (() => void)[] = [];
  #poll: NodeJS.Timeout | undefined;

  /** `knowsLeader()`: raft's current view (not the last Ready's); `pollMs`: the poll period. */
  constructor(knowsLeader: () => boolean, pollMs: number) {
    this.#knowsLeader = knowsLeader;
    this.#pollMs = pollMs;
  }

  /** True while something waits for a leader: later requests queue behind it to keep the order. */
  get holding(): boolean {
    return this.#held.length > 0;
  }

  /** Holds `release` until a leader is known; it runs once, from release(). */
  hold(release: () => void): void {
    this.#held.push(release);
    if (this.#poll === undefined) {
      this.#poll = setInterval(() => this.release(), this.#pollMs);
      this.#poll.unref();
    }
  }

  /**
   * Runs what is held, in order, if raft knows a leader now. A released function may hold itself
   * again (raft dropped it: the leader was lost meanwhile); it then queues in the same order.
   */
  release(): void {
    if (this.#held.length === 0 || !this.#knowsLeader()) return;
    const held = this.#held;
    this.#held = [];
    this.#stopPollWhenEmpty();
    for (const run of held) run();
  }

  /** Drops everything held (the member stops; each holder fails its own request). */
  clear(): void {
    this.#held = [];
    this.#stopPollWhenEmpty();
  }

  #stopPollWhenEmpty(): void {
    if (this.#held.length > 0 || this.#poll === undefined) return;
    clearInterval(this.#poll);
    this.#poll = undefined;
  }
}
