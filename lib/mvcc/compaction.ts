/**
 * The physical part of a compaction (MvccStore.compact): copying the records a compaction keeps
 * into a new record log and building the key index over it, in bounded steps, while the store
 * keeps writing to the old log (etcd's kvstore_compaction.go deletes the compacted revisions from
 * its backend in batches in the background in the same way, after the logical compaction, which
 * etcd's kvindex.Compact does at once, has answered the request).
 *
 * Issue 13 measured the one-piece copy at 110-180 ms of blocked event loop at 100k keys with
 * 256-byte values (the puts' longest stall during the defragment benchmark); a step here does
 * `units` of work plus the copy of the rows written since the previous step (see step()).
 *
 * What is kept (etcd keyIndex.compact): for each key, its newest record at or below the revision
 * unless that is a tombstone, and every record above the revision. Rows at or below the revision
 * are all in the old log when the job starts (writes only append above the current revision), so
 * which of them survive is settled then; rows appended while the job runs are above it and all
 * kept. The job:
 * 1. mark: one pass over the rows at or below the revision finds each key's newest there;
 * 2. walk: the old key index in key order (resumed from the last key visited after each step;
 *    keys only enter it meanwhile) gives each surviving key a slot in the new key table, in key
 *    order, and the new index is built from them in full nodes (SlotBTree.builder); a key that
 *    enters behind the walk, or lives again after its tombstone, gets its slot in step 3;
 * 3. copy: the kept rows, in row (revision) order, then every row appended since, until the copy
 *    has caught up with the old log: the store then switches to the new log in the same turn.
 * Rows never change (a value moving into a db file reads the same bytes), so a row copied before
 * a later write is still right, and snapshots taken before or during the job keep reading the old
 * log.
 */
import { SlotBTree, type SlotBTreeBuilder } from "../btree/index.js";
import { Rec, emptyBuffer } from "./record.js";
import { RecordLog } from "./record-log.js";
import { mvccAssert } from "./errors.js";

/** Work units of one mark row, one key walked, and one row copied (plus its value bytes / 64). */
const markRowUnits = 1;
const walkKeyUnits = 4;
const copyRowUnits = 4;

/** One compaction's physical part over `old` (see the module comment). */
export class CompactionJob {
  /** The compaction revision. */
  readonly revision: number;
  /** The new log: every row of the old one the compaction keeps, once done. */
  readonly log: RecordLog;
  /** Approximate backend bytes of the new log's rows (Rec.approximateBytes). */
  bytes = 0;
  readonly #old: RecordLog;
  readonly #oldIndex: SlotBTree;
  /** First row of the old log above the revision: rows below it are the ones compacted. */
  readonly #firstAbove: number;
  /** Key slots of the old log when the job started: only these have rows below #firstAbove. */
  readonly #oldSlots: number;
  /**
   * Each old slot's newest row below #firstAbove (-1: none), from the mark pass. Allocated by the
   * first step, not by compact() (4 MiB each at 1M keys).
   */
  #newestAtRevision = new Int32Array(0);
  /** New slot of each old slot below #oldSlots (-1: none yet), and of later ones. */
  #slotMap = new Int32Array(0);
  readonly #laterSlotMap = new Map<number, number>();
  #index: SlotBTree | undefined;
  #builder: SlotBTreeBuilder | undefined;
  /** Tombstones at exactly the revision (dropped), see MvccStore #tombstonesAtCompactRev. */
  readonly #dropped: Rec[] = [];
  #phase: "mark" | "walk" | "copy" | "done" = "mark";
  /** mark and copy: the next old row. */
  #row = 0;
  /** walk: the last old slot visited (-1: none yet). */
  #walked = -1;
  /** Rows of the old log whose copy cost a step has added to its budget (see step()). */
  #accountedRows: number;

  /**
   * Starts compacting `old` (whose key index is `oldIndex`) at `revision`; nothing is done until
   * step(). `keyChunkBytes`, `valueChunkBytes`: the new log's arena chunk sizes. The caller goes
   * on appending to `old` and inserting into `oldIndex` only (rows above `revision`).
   */
  constructor(
    old: RecordLog,
    oldIndex: SlotBTree,
    revision: number,
    keyChunkBytes: number,
    valueChunkBytes: number,
  ) {
    this.revision = revision;
    this.#old = old;
    this.#oldIndex = oldIndex;
    this.#firstAbove = old.firstRowAtOrAfter(revision + 1);
    this.#oldSlots = old.keys.length;
    this.#accountedRows = old.length;
    this.log = new RecordLog(keyChunkBytes, valueChunkBytes);
  }

  /** True once step() has returned true: log and index hold every kept row of the old log. */
  get done(): boolean {
    return this.#phase === "done";
  }

  /** The new key index (once done). */
  get index(): SlotBTree {
    mvccAssert(this.#index !== undefined, "compaction index read before the walk ended");
    return this.#index;
  }

  /** Tombstones at exactly the revision that the compaction drops, in sub revision order. */
  droppedTombstones(): Rec[] {
    return this.#dropped.sort((a, b) => a.sub - b.sub);
  }

  /**
   * Does about `units` of work (a row marked: 1, a key walked: 4, a row copied: 4 + its value
   * bytes / 64; Infinity: all of it), plus the copy cost of the rows appended to the old log since
   * the previous step, and returns true when the new log has caught up with every row of the old
   * one, so the caller can switch to it before the next write. The second part keeps the copy
   * ahead of any write rate (a lone voter applies up to 1,024 entries between two steps): the job
   * takes as many steps as with no writes, each longer by a fraction of those writes' own cost.
   */
  step(units: number): boolean {
    const old = this.#old;
    let budget = units;
    for (let r = this.#accountedRows; r < old.length; r++) {
      budget += copyRowUnits + (old.valueLength(r) >>> 6);
    }
    this.#accountedRows = old.length;
    while (budget > 0 && this.#phase !== "done") {
      if (this.#phase === "mark") budget = this.#mark(budget);
      else if (this.#phase === "walk") budget = this.#walk(budget);
      else budget = this.#copy(budget);
    }
    return this.#phase === "done";
  }

  #mark(budget: number): number {
    if (this.#newestAtRevision.length < this.#oldSlots) {
      this.#newestAtRevision = new Int32Array(this.#oldSlots).fill(-1);
      this.#slotMap = new Int32Array(this.#oldSlots).fill(-1);
    }
    const old = this.#old;
    const newest = this.#newestAtRevision;
    const end = Math.min(this.#firstAbove, this.#row + Math.ceil(budget / markRowUnits));
    let r = this.#row;
    for (; r < end; r++) newest[old.keySlot(r)] = r;
    budget -= (r - this.#row) * markRowUnits;
    this.#row = r;
    if (r === this.#firstAbove) {
      this.#phase = "walk";
      this.#builder = SlotBTree.builder(this.log.keys, { memory: this.log.slabs });
    }
    return budget;
  }

  #walk(budget: number): number {
    const old = this.#old;
    const last = this.#walked;
    let finished = true;
    this.#oldIndex.ascend(last < 0 ? undefined : old.keys.key(last), undefined, (slot) => {
      if (slot === last) return true;
      if (budget <= 0) {
        finished = false;
        return false;
      }
      budget -= walkKeyUnits;
      this.#walked = slot;
      this.#walkKey(slot);
      return true;
    });
    if (finished) {
      this.#index = this.#builder!.finish();
      this.#builder = undefined;
      this.#phase = "copy";
      this.#row = 0;
    }
    return budget;
  }

  /** Step 2 for one old slot: a slot in the new key table if anything of the key is kept. */
  #walkKey(slot: number): void {
    const old = this.#old;
    const r = slot < this.#oldSlots ? this.#newestAtRevision[slot]! : -1;
    const put = r >= 0 && !old.isTombstone(r);
    if (r >= 0 && !put && old.main(r) === this.revision) {
      // a tombstone at the compaction revision itself (the key may live again after it)
      const key = Buffer.from(old.keys.key(slot));
      this.#dropped.push(new Rec(key, emptyBuffer, 0, 0, this.revision, old.sub(r), 0, 0, 0n));
    }
    if (!put && old.keys.newest(slot) < this.#firstAbove) return;
    const mine = this.log.keys.addFrom(old.keys, slot);
    this.#mapSlot(slot, mine);
    this.#builder!.add(mine);
  }

  #mapSlot(oldSlot: number, slot: number): void {
    if (oldSlot < this.#oldSlots) this.#slotMap[oldSlot] = slot;
    else this.#laterSlotMap.set(oldSlot, slot);
  }

  #slotOf(oldSlot: number): number {
    return oldSlot < this.#oldSlots
      ? this.#slotMap[oldSlot]!
      : (this.#laterSlotMap.get(oldSlot) ?? -1);
  }

  #copy(budget: number): number {
    const old = this.#old;
    const log = this.log;
    const firstAbove = this.#firstAbove;
    let r = this.#row;
    for (; budget > 0 && r < old.length; r++) {
      const oldSlot = old.keySlot(r);
      if (r < firstAbove && (this.#newestAtRevision[oldSlot] !== r || old.isTombstone(r))) {
        budget -= markRowUnits;
        continue;
      }
      let slot = this.#slotOf(oldSlot);
      if (slot < 0) {
        // a key that entered the old index behind the walk, or lives again after a tombstone
        slot = log.keys.addFrom(old.keys, oldSlot);
        this.#mapSlot(oldSlot, slot);
        this.#index!.insert(log.keys.key(slot), slot);
      }
      const row = log.copyRow(old, r, slot);
      this.bytes += log.approximateBytes(row);
      budget -= copyRowUnits + (log.valueLength(row) >>> 6);
    }
    this.#row = r;
    if (r === old.length) this.#phase = "done";
    return budget;
  }
}
