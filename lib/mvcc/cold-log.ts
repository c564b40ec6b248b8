/**
 * Superseded records ("cold" history), packed in columns outside the V8 heap.
 *
 * Once a key gets a newer record, its previous one is only read for ranges at old revisions,
 * watch catch-up, HashKV, snapshots and compaction. Held as objects (a Rec plus its value string),
 * every revision of history cost the garbage collector two objects to mark on each full
 * collection: with ~1.7M revisions a full mark took ~140 ms of main-thread and helper time, and a
 * member under put load lost up to half its throughput and had p99 latency spikes as history grew
 * (bench/compare's later rounds). Here a revision costs typed-array slots and its value bytes in
 * a shared chunk, which the collector does not scan; the key and chunk columns are plain arrays
 * whose slots point at objects shared by many rows.
 *
 * Rows are append-only and never change: a reader that captured this log (a snapshot) can keep
 * reading rows it saw while new rows are added. Compaction builds a new ColdLog instead of
 * editing this one.
 */
import { Rec, emptyBuffer, latin1Write, latin1Slice } from "./record.js";

/** Value bytes per shared chunk; larger values get their own allocation. */
const valueChunkBytes = 1024 * 1024;
const maxSharedValueBytes = valueChunkBytes >>> 3;
const initialRows = 1024;

export class ColdLog {
  #rows = 0;
  #main = new Float64Array(initialRows);
  #sub = new Int32Array(initialRows);
  /** create_revision; 0 marks a tombstone, as Rec. */
  #create = new Float64Array(initialRows);
  #version = new Float64Array(initialRows);
  #lease = new BigInt64Array(initialRows);
  #valueOffset = new Int32Array(initialRows);
  #valueLength = new Int32Array(initialRows);
  readonly #keys: Buffer[] = [];
  readonly #valueChunks: Buffer[] = [];
  #chunk: Buffer = emptyBuffer;
  #chunkUsed = 0;

  /** Rows held. */
  get length(): number {
    return this.#rows;
  }

  /** Packs `r` (its value bytes are copied); returns its row number. */
  append(r: Rec): number {
    const row = this.#newRow(r.key, r.main, r.sub, r.createRevision, r.version, r.lease);
    const s = r.valueLatin1;
    this.#placeValue(row, s.length);
    if (s.length > 0) latin1Write(this.#valueChunks[row]!, s, this.#valueOffset[row]!);
    return row;
  }

  /** Copies row `row` of `from` into this log; returns the new row number. */
  copyRow(from: ColdLog, row: number): number {
    const n = this.#newRow(
      from.#keys[row]!,
      from.#main[row]!,
      from.#sub[row]!,
      from.#create[row]!,
      from.#version[row]!,
      from.#lease[row]!,
    );
    const len = from.#valueLength[row]!;
    this.#placeValue(n, len);
    if (len > 0) {
      const at = from.#valueOffset[row]!;
      from.#valueChunks[row]!.copy(this.#valueChunks[n]!, this.#valueOffset[n]!, at, at + len);
    }
    return n;
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
    const len = this.#valueLength[row]!;
    const at = this.#valueOffset[row]!;
    return new Rec(
      this.#keys[row]!,
      len === 0 ? "" : latin1Slice(this.#valueChunks[row]!, at, at + len),
      this.#main[row]!,
      this.#sub[row]!,
      this.#create[row]!,
      this.#version[row]!,
      this.#lease[row]!,
    );
  }

  #newRow(
    key: Buffer,
    main: number,
    sub: number,
    create: number,
    version: number,
    lease: bigint,
  ): number {
    const row = this.#rows;
    if (row === this.#main.length) this.#grow();
    this.#main[row] = main;
    this.#sub[row] = sub;
    this.#create[row] = create;
    this.#version[row] = version;
    this.#lease[row] = lease;
    this.#keys.push(key);
    this.#rows = row + 1;
    return row;
  }

  /** Reserves `len` value bytes for `row` in a chunk (or its own Buffer). */
  #placeValue(row: number, len: number): void {
    if (len === 0) {
      this.#valueChunks.push(emptyBuffer);
      this.#valueOffset[row] = 0;
      this.#valueLength[row] = 0;
      return;
    }
    if (len > maxSharedValueBytes) {
      this.#valueChunks.push(Buffer.allocUnsafeSlow(len));
      this.#valueOffset[row] = 0;
      this.#valueLength[row] = len;
      return;
    }
    if (this.#chunkUsed + len > this.#chunk.length) {
      this.#chunk = Buffer.allocUnsafeSlow(valueChunkBytes);
      this.#chunkUsed = 0;
    }
    this.#valueChunks.push(this.#chunk);
    this.#valueOffset[row] = this.#chunkUsed;
    this.#valueLength[row] = len;
    this.#chunkUsed += len;
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
    this.#sub = grow(this.#sub, (n) => new Int32Array(n));
    this.#create = grow(this.#create, (n) => new Float64Array(n));
    this.#version = grow(this.#version, (n) => new Float64Array(n));
    this.#lease = grow(this.#lease, (n) => new BigInt64Array(n));
    this.#valueOffset = grow(this.#valueOffset, (n) => new Int32Array(n));
    this.#valueLength = grow(this.#valueLength, (n) => new Int32Array(n));
  }
}
