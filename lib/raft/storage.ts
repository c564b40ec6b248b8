/**
 * The Storage interface lib/raft reads its stable log from, and MemoryStorage, an in-memory
 * implementation (etcd-io/raft's storage.go). The server keeps a MemoryStorage mirroring its WAL.
 */
import {
  ConfState,
  type Entry,
  EntryType,
  type HardState,
  type Snapshot,
} from "../proto/gen/raftpb/raft.js";
import { ErrCompacted, ErrSnapOutOfDate, ErrUnavailable, RaftInvariantError } from "./errors.js";
import { limitSize } from "./entry-size.js";

/**
 * Read access to the stable (persisted) part of the raft log.
 * Indexes are 1-based raft log indexes; ranges are [lo, hi) (hi exclusive).
 */
export interface Storage {
  /** The persisted HardState and the ConfState of the latest snapshot/config. */
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries in [lo, hi), at most maxSizeBytes total (but at least one). Throws ErrCompacted / ErrUnavailable. */
  entries(lo: number, hi: number, maxSizeBytes: number): Entry[];
  /** Term of entry i; i may be firstIndex()-1 (the snapshot's index). Throws ErrCompacted / ErrUnavailable. */
  term(index: number): number;
  /** Index of the first entry still available (snapshot index + 1). */
  firstIndex(): number;
  /** Index of the last entry in storage. */
  lastIndex(): number;
  /** The most recent snapshot. May throw ErrSnapshotTemporarilyUnavailable. */
  snapshot(): Snapshot;
}

/** A HardState with all fields zero. */
export function emptyHardState(): HardState {
  return { term: 0, vote: 0n, commit: 0 };
}

/** True when `hs` carries no information (term, vote and commit all zero). */
export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === 0n && hs.commit === 0;
}

/** True when the snapshot's metadata index is 0 (no snapshot). */
export function isEmptySnapshot(s: Snapshot | undefined): boolean {
  return s === undefined || s.metadata === undefined || s.metadata.index === 0;
}

/** Snapshot metadata index (0 when absent). */
export function snapshotIndex(s: Snapshot): number {
  return s.metadata?.index ?? 0;
}

/** Snapshot metadata term (0 when absent). */
export function snapshotTerm(s: Snapshot): number {
  return s.metadata?.term ?? 0;
}

function emptySnapshot(): Snapshot {
  return {
    data: new Uint8Array(0),
    metadata: { index: 0, term: 0, confState: ConfState.create() },
  };
}

function dummyEntry(index: number, term: number): Entry {
  return { type: EntryType.EntryNormal, index, term, data: new Uint8Array(0) };
}

/**
 * In-memory Storage. ents[0] is a dummy entry holding the snapshot's index and term, so
 * ents[i] is log index ents[0].index + i and firstIndex() = ents[0].index + 1.
 */
export class MemoryStorage implements Storage {
  #hardState: HardState = emptyHardState();
  #snapshot: Snapshot = emptySnapshot();
  #ents: Entry[] = [dummyEntry(0, 0)];

  /** See Storage.initialState. */
  initialState(): { hardState: HardState; confState: ConfState } {
    return {
      hardState: { ...this.#hardState },
      confState: this.#snapshot.metadata?.confState ?? ConfState.create(),
    };
  }

  /** Records the HardState the application has persisted. */
  setHardState(hs: HardState): void {
    this.#hardState = { term: hs.term, vote: hs.vote, commit: hs.commit };
  }

  /** See Storage.entries. */
  entries(lo: number, hi: number, maxSizeBytes: number): Entry[] {
    const offset = this.#ents[0]!.index;
    if (lo <= offset) throw new ErrCompacted();
    if (!(hi <= this.lastIndex() + 1))
      throw new RaftInvariantError(`entries hi ${hi} out of bound lastIndex ${this.lastIndex()}`);
    if (!(lo <= hi)) throw new RaftInvariantError(`entries lo ${lo} > hi ${hi}`);
    // Only the dummy entry: nothing to return.
    if (this.#ents.length === 1) throw new ErrUnavailable();
    return limitSize(this.#ents.slice(lo - offset, hi - offset), maxSizeBytes);
  }

  /** See Storage.term. */
  term(index: number): number {
    const offset = this.#ents[0]!.index;
    if (index < offset) throw new ErrCompacted();
    if (index - offset >= this.#ents.length) throw new ErrUnavailable();
    return this.#ents[index - offset]!.term;
  }

  /** See Storage.lastIndex. */
  lastIndex(): number {
    return this.#ents[0]!.index + this.#ents.length - 1;
  }

  /** See Storage.firstIndex. */
  firstIndex(): number {
    return this.#ents[0]!.index + 1;
  }

  /** See Storage.snapshot. */
  snapshot(): Snapshot {
    return this.#snapshot;
  }

  /** Replaces the whole contents with `snap` (a snapshot received from the leader). Throws ErrSnapOutOfDate if older. */
  applySnapshot(snap: Snapshot): void {
    const idx = snapshotIndex(snap);
    if (snapshotIndex(this.#snapshot) >= idx) throw new ErrSnapOutOfDate();
    this.#snapshot = snap;
    this.#ents = [dummyEntry(idx, snapshotTerm(snap))];
  }

  /**
   * Makes a snapshot at `index` (≤ lastIndex, > the current snapshot's index) with `data` and,
   * if given, `cs`; returns it. Throws ErrSnapOutOfDate if index is not newer. Call compact() after.
   */
  createSnapshot(index: number, cs: ConfState | undefined, data: Uint8Array): Snapshot {
    if (index <= snapshotIndex(this.#snapshot)) throw new ErrSnapOutOfDate();
    const offset = this.#ents[0]!.index;
    if (!(index <= this.lastIndex()))
      throw new RaftInvariantError(
        `snapshot ${index} is out of bound lastindex(${this.lastIndex()})`,
      );
    const confState = cs ?? this.#snapshot.metadata?.confState ?? ConfState.create();
    this.#snapshot = {
      data,
      metadata: { index, term: this.#ents[index - offset]!.term, confState },
    };
    return this.#snapshot;
  }

  /** Discards entries before `compactIndex` (it becomes the dummy). Throws ErrCompacted if already compacted. */
  compact(compactIndex: number): void {
    const offset = this.#ents[0]!.index;
    if (compactIndex <= offset) throw new ErrCompacted();
    if (!(compactIndex <= this.lastIndex()))
      throw new RaftInvariantError(
        `compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`,
      );
    const i = compactIndex - offset;
    const rest = this.#ents.slice(i);
    rest[0] = dummyEntry(this.#ents[i]!.index, this.#ents[i]!.term);
    this.#ents = rest;
  }

  /**
   * Appends entries (consecutive indexes) to storage, truncating any conflicting suffix first;
   * entries at or before the compaction point are ignored. The caller must have persisted them.
   */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0]!.index + entries.length - 1;
    if (last < first) return;
    if (first > entries[0]!.index) entries = entries.slice(first - entries[0]!.index);
    const offset = entries[0]!.index - this.#ents[0]!.index;
    if (!(offset <= this.#ents.length))
      throw new RaftInvariantError(
        `missing log entry [last: ${this.lastIndex()}, append at: ${entries[0]!.index}]`,
      );
    if (offset < this.#ents.length) this.#ents.length = offset;
    for (let i = 0; i < entries.length; i++) this.#ents.push(entries[i]!);
  }
}
