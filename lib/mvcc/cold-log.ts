/**
 * Superseded records ("cold" history), packed in columns outside the V8 heap.
 *
 * Once a key gets a newer record, its previous one is only read for ranges at old revisions,
 * watch catch-up, HashKV, snapshots and compaction. Held as objects (a Rec plus its value string),
 * every revision of history cost the garbage collector two objects to mark on each full
 * collection: with ~1.7M revisions a full mark took ~140 ms of main-thread and helper time, and a
 * member under put load lost up to half its throughput and had p99 latency spikes as history grew
 * (bench/compare's later rounds). Here a revision costs typed-array slots, which the collector
 * does not scan; the key and value-chunk columns are plain arrays whose slots point at objects
 * shared by many rows. A row's value stays where the store's value arena (ByteArena) put it when
 * the record was written: packing a record copies no bytes.
 *
 * Rows are append-only and never change: a reader that captured this log (a snapshot) can keep
 * reading rows it saw while new rows are added. Compaction builds a new ColdLog instead of
 * editing this one.
 */
import { type ByteArena, Rec } from "./record.js";

const initialRows = 1024;

export class ColdLog {
  #rows = 0;
  #main = new Float64Array(initialRows);
  #sub = new Float64Array(initialRows);
  /** create_revision; 0 marks a tombstone, as Rec. */
  #create = new Float64Array(initialRows);
  #version = new Float64Array(initialRows);
  #lease = new BigInt64Array(initialRows);
  #valueOffset = new Int32Array(initialRows);
  #valueLength = new Int32Array(initialRows);
  readonly #keys: Buffer[] = [];
  readonly #valueChunks: Buffer[] = [];

  /** Rows held. */
  get length(): number {
    return this.#rows;
  }

  /** Packs `r` (its value stays in the chunk it is in); returns its row number. */
  append(r: Rec): number {
    const row = this.#rows;
    if (row === this.#main.length) this.#grow();
    this.#main[row] = r.main;
    this.#sub[row] = r.sub;
    this.#create[row] = r.createRevision;
    this.#version[row] = r.version;
    this.#lease[row] = r.lease;
    this.#valueOffset[row] = r.valueOffset;
    this.#valueLength[row] = r.valueLength;
    this.#keys.push(r.key);
    this.#valueChunks.push(r.valueChunk);
    this.#rows = row + 1;
    return row;
  }

  /**
   * Copies row `row` of `from` into this log, its value bytes into `values` (compaction moves
   * survivors to a fresh arena so the old chunks can be freed); returns the new row number.
   */
  copyRow(from: ColdLog, row: number, values: ByteArena): number {
    // a Rec per surviving row, only while compacting
    const r = from.rec(row);
    r.moveValueTo(values);
    return this.append(r);
  }

  main(row: number): number {
    return this.#main[row]!;
  }

  sub(row: number): number {
    return this.#sub[row]!;
  }

  key(row: number): Buffer {
    return this.#keys[row]!;
  }

  isTombstone(row: number): boolean {
    return this.#create[row] === 0;
  }

  /** Approximate backend bytes of the row, as Rec.approximateBytes. */
  approximateBytes(row: number): number {
    return Rec.approximateBytesOf(this.#keys[row]!.length, this.#valueLength[row]!);
  }

  /** The row as a fresh Rec (equal in every field to the record that was packed). */
  rec(row: number): Rec {
    return new Rec(
      this.#keys[row]!,
      this.#valueChunks[row]!,
      this.#valueOffset[row]!,
      this.#valueLength[row]!,
      this.#main[row]!,
      this.#sub[row]!,
      this.#create[row]!,
      this.#version[row]!,
      this.#lease[row]!,
    );
  }

  #grow(): void {
    const cap = this.#main.length * 2;
    const grow = <T extends Float64Array | Int32Array | BigInt64Array>(
      a: T,
      make: (n: number) => T,
    ): T => {
      const b = make(cap);
      b.set(a as never);
      return b;
    };
    this.#main = grow(this.#main, (n) => new Float64Array(n));
    this.#sub = grow(this.#sub, (n) => new Float64Array(n));
    this.#create = grow(this.#create, (n) => new Float64Array(n));
    this.#version = grow(this.#version, (n) => new Float64Array(n));
    this.#lease = grow(this.#lease, (n) => new BigInt64Array(n));
    this.#valueOffset = grow(this.#valueOffset, (n) => new Int32Array(n));
    this.#valueLength = grow(this.#valueLength, (n) => new Int32Array(n));
  }
}
