/**
 * The unstable tail of the raft log: entries (and possibly a snapshot) not yet persisted by the
 * application (etcd-io/raft's log_unstable.go). entries[i] has log index offset + i. Entries
 * before offsetInProgress have been handed out in a Ready and are being written; stableTo()
 * drops them once advance() reports them persisted.
 */
import type { Entry, Snapshot } from "../proto/gen/raftpb/raft.js";
import { RaftInvariantError } from "./errors.js";
import { snapshotIndex, snapshotTerm } from "./storage.js";

/** The unstable log tail; see the file comment for the index conventions. */
export class Unstable {
  /** Incoming snapshot not yet persisted, if any. */
  snapshot: Snapshot | undefined = undefined;
  /** Entries not yet persisted; entries[i] is index offset + i. */
  entries: Entry[] = [];
  offset: number;
  /** True when `snapshot` has been handed out in a Ready. */
  snapshotInProgress = false;
  /** Entries with index < offsetInProgress have been handed out in a Ready. */
  offsetInProgress: number;

  constructor(offset: number) {
    this.offset = offset;
    this.offsetInProgress = offset;
  }

  /** First index if there is an unstable snapshot (its index + 1), else undefined. */
  maybeFirstIndex(): number | undefined {
    return this.snapshot !== undefined ? snapshotIndex(this.snapshot) + 1 : undefined;
  }

  /** Last index of the unstable entries or snapshot, else undefined. */
  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    if (this.snapshot !== undefined) return snapshotIndex(this.snapshot);
    return undefined;
  }

  /** Term of entry i if this unstable log knows it, else undefined. */
  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot !== undefined && snapshotIndex(this.snapshot) === i)
        return snapshotTerm(this.snapshot);
      return undefined;
    }
    const last = this.maybeLastIndex();
    if (last === undefined || i > last) return undefined;
    return this.entries[i - this.offset]!.term;
  }

  /** Entries not yet handed out in a Ready. */
  nextEntries(): Entry[] {
    const inProgress = this.offsetInProgress - this.offset;
    if (this.entries.length === inProgress) return [];
    return inProgress === 0 ? this.entries.slice() : this.entries.slice(inProgress);
  }

  /** The snapshot if it has not yet been handed out in a Ready. */
  nextSnapshot(): Snapshot | undefined {
    return this.snapshot === undefined || this.snapshotInProgress ? undefined : this.snapshot;
  }

  /** Marks everything currently unstable as handed out (being persisted). */
  acceptInProgress(): void {
    if (this.entries.length > 0)
      this.offsetInProgress = this.entries[this.entries.length - 1]!.index + 1;
    if (this.snapshot !== undefined) this.snapshotInProgress = true;
  }

  /**
   * Entries up to (index, term) are persisted: drop them. Ignored if the entry at index was since
   * replaced by one of another term (a later append truncated it) or is not unstable any more.
   */
  stableTo(index: number, term: number): void {
    const gt = this.maybeTerm(index);
    if (gt === undefined || gt !== term || index < this.offset) return;
    const num = index + 1 - this.offset;
    this.entries = this.entries.slice(num);
    this.offset = index + 1;
    this.offsetInProgress = Math.max(this.offsetInProgress, this.offset);
  }

  /** The unstable snapshot at index i is persisted: drop it. */
  stableSnapTo(i: number): void {
    if (this.snapshot !== undefined && snapshotIndex(this.snapshot) === i) {
      this.snapshot = undefined;
      this.snapshotInProgress = false;
    }
  }

  /** Replaces everything with snapshot `s` (received from the leader). */
  restore(s: Snapshot): void {
    this.offset = snapshotIndex(s) + 1;
    this.offsetInProgress = this.offset;
    this.entries = [];
    this.snapshot = s;
    this.snapshotInProgress = false;
  }

  /** Appends `ents` (consecutive indexes), truncating any conflicting unstable suffix first. */
  truncateAndAppend(ents: Entry[]): void {
    const fromIndex = ents[0]!.index;
    const after = this.offset + this.entries.length;
    if (fromIndex === after) {
      for (let i = 0; i < ents.length; i++) this.entries.push(ents[i]!);
    } else if (fromIndex <= this.offset) {
      // The log is being replaced from before the unstable offset; storage's copy is truncated
      // by the application when it appends these.
      this.entries = ents.slice();
      this.offset = fromIndex;
      this.offsetInProgress = this.offset;
    } else {
      // Keep [offset, fromIndex), then append.
      const kept = this.slice(this.offset, fromIndex);
      for (let i = 0; i < ents.length; i++) kept.push(ents[i]!);
      this.entries = kept;
      // Entries at fromIndex and after were replaced: they must be handed out again.
      this.offsetInProgress = Math.min(this.offsetInProgress, fromIndex);
    }
  }

  /** Entries [lo, hi) from the unstable log (a new array). */
  slice(lo: number, hi: number): Entry[] {
    if (!(lo <= hi && lo >= this.offset && hi <= this.offset + this.entries.length))
      throw new RaftInvariantError(
        `unstable.slice[${lo},${hi}) out of bound [${this.offset},${this.offset + this.entries.length})`,
      );
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}
