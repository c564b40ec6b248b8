/**
 * RaftLog: the whole log as raft sees it, stable part in Storage plus the Unstable tail, with the
 * committed/applying/applied cursors (etcd-io/raft's log.go). Invariant:
 * applied ≤ applying ≤ committed, and firstIndex-1 ≤ committed ≤ lastIndex.
 */
import type { Entry, Snapshot } from "../proto/gen/raftpb/raft.js";
import { ErrCompacted, ErrUnavailable, RaftInvariantError } from "./errors.js";
import { limitSize } from "./entry-size.js";
import { Unstable } from "./log-unstable.js";
import { type Storage, snapshotIndex } from "./storage.js";

/**
 * The raft log (stable Storage + Unstable tail) with commit/applying/applied cursors. Term and
 * slice reads throw ErrCompacted / ErrUnavailable from storage; broken cursors throw
 * RaftInvariantError.
 */
export class RaftLog {
  readonly storage: Storage;
  readonly unstable: Unstable;
  /** Highest index known to be committed by a quorum. */
  committed: number;
  /** Highest index handed to the application to apply (in a Ready not yet advanced). */
  applying: number;
  /** Highest index the application has applied. */
  applied: number;
  /** Bound on committed entries handed out per Ready, in bytes (at least one entry). */
  readonly maxApplyingEntsSizeBytes: number;

  constructor(storage: Storage, maxApplyingEntsSizeBytes: number) {
    this.storage = storage;
    this.maxApplyingEntsSizeBytes = maxApplyingEntsSizeBytes;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    // The log starts at the last snapshot (or the dummy index 0).
    this.committed = first - 1;
    this.applying = first - 1;
    this.applied = first - 1;
  }

  /**
   * Appends ents after checking that the entry at `index` has `logTerm` (the Raft paper's
   * AppendEntries consistency check). Returns the index of the last new entry, or undefined on a
   * mismatch. Commits up to min(committed, last new index).
   */
  maybeAppend(
    index: number,
    logTerm: number,
    committed: number,
    ents: Entry[],
  ): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNewIndex = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      if (!(ci > this.committed))
        throw new RaftInvariantError(
          `entry ${ci} conflict with committed entry [committed(${this.committed})]`,
        );
      this.append(ents.slice(ci - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastNewIndex));
    return lastNewIndex;
  }

  /** Appends ents (which must follow on from or overwrite uncommitted entries); returns the new last index. */
  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index - 1;
    if (!(after >= this.committed))
      throw new RaftInvariantError(
        `after(${after}) is out of range [committed(${this.committed})]`,
      );
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /**
   * The index of the first entry of `ents` that is not already in the log with the same term,
   * or 0 when all are present (then nothing needs appending).
   */
  findConflict(ents: Entry[]): number {
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i]!;
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Fast back-tracking (etcd's findConflictByTerm): the largest index ≤ `index` whose term is ≤
   * `term`, with that term. The leader uses it to skip a whole term of mismatching entries.
   */
  findConflictByTerm(index: number, term: number): [number, number] {
    for (; index > 0; index--) {
      let t: number;
      try {
        t = this.term(index);
      } catch (e) {
        if (e instanceof ErrCompacted || e instanceof ErrUnavailable) return [index, 0];
        throw e;
      }
      if (t <= term) return [index, t];
    }
    return [0, 0];
  }

  /** Unstable entries not yet handed out in a Ready. */
  nextUnstableEnts(): Entry[] {
    return this.unstable.nextEntries();
  }

  /** True when there are unstable entries not yet handed out. */
  hasNextUnstableEnts(): boolean {
    return this.unstable.offsetInProgress < this.unstable.offset + this.unstable.entries.length;
  }

  /** True when an unstable snapshot exists (handed out or not). */
  hasNextOrInProgressSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  /** The unstable snapshot if not yet handed out. */
  nextUnstableSnapshot(): Snapshot | undefined {
    return this.unstable.nextSnapshot();
  }

  /**
   * True when committed entries await application. Synchronous storage (this library's mode):
   * committed entries may still be unstable because the application persists a Ready's entries
   * before applying its committed entries (etcd's applyUnstableEntries when writes are synchronous).
   */
  hasNextCommittedEnts(): boolean {
    if (this.unstable.snapshot !== undefined) return false; // a pending snapshot must be applied first
    return this.committed > this.applying;
  }

  /** Committed entries after `applying`, bounded by maxApplyingEntsSizeBytes (at least one). */
  nextCommittedEnts(): Entry[] {
    if (!this.hasNextCommittedEnts()) return [];
    const lo = Math.max(this.applying + 1, this.firstIndex());
    const hi = this.committed + 1;
    if (lo >= hi) return [];
    return this.slice(lo, hi, this.maxApplyingEntsSizeBytes);
  }

  /** The latest snapshot: the unstable one if present, else storage's. */
  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /** Raises committed to tocommit (never lowers it). Asserts tocommit ≤ lastIndex. */
  commitTo(tocommit: number): void {
    if (this.committed >= tocommit) return;
    if (!(this.lastIndex() >= tocommit))
      throw new RaftInvariantError(
        `tocommit(${tocommit}) is out of range [lastIndex(${this.lastIndex()})]. Was the raft log corrupted, truncated, or lost?`,
      );
    this.committed = tocommit;
  }

  /** Records that the application has applied up to index i. */
  appliedTo(i: number): void {
    if (i === 0) return;
    if (!(this.committed >= i && i >= this.applied))
      throw new RaftInvariantError(
        `applied(${i}) is out of range [prevApplied(${this.applied}), committed(${this.committed})]`,
      );
    this.applied = i;
    this.applying = Math.max(this.applying, i);
  }

  /** Records that committed entries up to i were handed out to be applied. */
  acceptApplying(i: number): void {
    if (!(i <= this.committed))
      throw new RaftInvariantError(`applying(${i}) > committed(${this.committed})`);
    this.applying = i;
  }

  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  lastTerm(): number {
    return this.termOrZero(this.lastIndex());
  }

  /**
   * Term of entry i. Returns 0 for i outside [firstIndex-1, lastIndex] (etcd's convention: the
   * dummy entry before the log has term 0); throws ErrCompacted / ErrUnavailable from storage.
   */
  term(i: number): number {
    const dummyIndex = this.firstIndex() - 1;
    if (i < dummyIndex || i > this.lastIndex()) return 0;
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    return this.storage.term(i);
  }

  /** term(i), but 0 when storage says compacted/unavailable. */
  termOrZero(i: number): number {
    try {
      return this.term(i);
    } catch (e) {
      if (e instanceof ErrCompacted || e instanceof ErrUnavailable) return 0;
      throw e;
    }
  }

  /** Entries from i to the end, at most maxSizeBytes. Throws ErrCompacted if i is compacted. */
  entries(i: number, maxSizeBytes: number): Entry[] {
    if (i > this.lastIndex()) return [];
    return this.slice(i, this.lastIndex() + 1, maxSizeBytes);
  }

  /** Every entry in the log (tests only). */
  allEntries(): Entry[] {
    for (;;) {
      try {
        return this.entries(this.firstIndex(), Number.MAX_SAFE_INTEGER);
      } catch (e) {
        // A concurrent compaction cannot happen here (single-threaded) but follow etcd's retry.
        if (!(e instanceof ErrCompacted)) throw e;
      }
    }
  }

  /**
   * Raft §5.4.1 election restriction: a log ending in (lasti, term) is at least as up-to-date as
   * ours if its last term is higher, or equal with an index at least ours.
   */
  isUpToDate(lasti: number, term: number): boolean {
    const lt = this.lastTerm();
    return term > lt || (term === lt && lasti >= this.lastIndex());
  }

  matchTerm(i: number, term: number): boolean {
    return this.termOrZero(i) === term;
  }

  /**
   * Commits maxIndex if it is beyond committed and holds an entry of `term` (the leader's current
   * term — Raft §5.4.2: never commit an earlier term's entry by counting replicas).
   */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.termOrZero(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  /** Replaces the log with snapshot s (received from the leader); committed becomes its index. */
  restore(s: Snapshot): void {
    this.committed = snapshotIndex(s);
    this.unstable.restore(s);
  }

  /** Entries [lo, hi), at most maxSizeBytes (at least one). Throws ErrCompacted if lo is compacted. */
  slice(lo: number, hi: number, maxSizeBytes: number): Entry[] {
    this.#mustCheckOutOfBounds(lo, hi);
    if (lo === hi) return [];
    const uOffset = this.unstable.offset;
    let ents: Entry[] = [];
    if (lo < uOffset) {
      const stored = this.storage.entries(lo, Math.min(hi, uOffset), maxSizeBytes);
      // Storage returned fewer than asked (size limit): done.
      if (stored.length < Math.min(hi, uOffset) - lo) return stored;
      ents = stored;
    }
    if (hi > uOffset) {
      const unstable = this.unstable.slice(Math.max(lo, uOffset), hi);
      ents = ents.length > 0 ? ents.concat(unstable) : unstable;
    }
    return limitSize(ents, maxSizeBytes);
  }

  #mustCheckOutOfBounds(lo: number, hi: number): void {
    if (!(lo <= hi)) throw new RaftInvariantError(`invalid slice ${lo} > ${hi}`);
    const fi = this.firstIndex();
    if (lo < fi) throw new ErrCompacted();
    const length = this.lastIndex() + 1 - fi;
    if (!(hi <= fi + length))
      throw new RaftInvariantError(`slice[${lo},${hi}) out of bound [${fi},${this.lastIndex()}]`);
  }
}
