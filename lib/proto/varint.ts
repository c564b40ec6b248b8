/**
 * Protobuf base-128 varints for the hand-written encoders (WAL records, mvcc's snapshot and hash
 * bytes, the WatchResponse encoder, the load generator's request bodies). One implementation so
 * they agree on every value up to 2^53 (protobuf encoding spec, "Base 128 Varints").
 */

/** Bytes of the varint encoding of `v`, a non-negative safe integer. */
export function varintSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  let n = 4;
  let x = Math.floor(v / 0x10000000);
  while (x > 0) {
    n++;
    x = Math.floor(x / 0x80);
  }
  return n;
}

/** Bytes of the varint encoding of `v`, a uint64 given as a bigint. */
export function varintSizeBig(v: bigint): number {
  let n = 1;
  while (v >= 0x80n) {
    n++;
    v >>= 7n;
  }
  return n;
}

/**
 * Writes `v` (a non-negative safe integer) as a varint at `pos` of `buf`; returns the position
 * after it. Values of 2^31 and more are split with division, not 32-bit operators.
 */
export function putVarint(buf: Uint8Array, pos: number, v: number): number {
  while (v >= 0x80000000) {
    buf[pos++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  while (v >= 0x80) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
  return pos;
}

/** Writes `v`, a uint64 given as a bigint, as a varint at `pos`; returns the position after it. */
export function putVarintBig(buf: Uint8Array, pos: number, v: bigint): number {
  while (v >= 0x80n) {
    buf[pos++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  buf[pos++] = Number(v);
  return pos;
}

/**
 * Bytes of the varint encoding of the uint64 whose high and low 32-bit words are `hi` and `lo`
 * (each an integer in [0, 2^32)).
 */
export function varintSize64Parts(hi: number, lo: number): number {
  let n = 1;
  while (hi !== 0 || lo > 0x7f) {
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
    n++;
  }
  return n;
}

/** Writes the uint64 with 32-bit words `hi`, `lo` as a varint at `pos`; returns the end. */
export function putVarint64Parts(buf: Uint8Array, pos: number, hi: number, lo: number): number {
  while (hi !== 0 || lo > 0x7f) {
    buf[pos++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  buf[pos++] = lo;
  return pos;
}

/** Bytes of the varint encoding of uint64 `v` (same as varintSizeBig, two BigInt steps). */
export function varintSize64(v: bigint): number {
  return varintSize64Parts(Number(v >> 32n), Number(BigInt.asUintN(32, v)));
}

/**
 * Writes uint64 `v` (a bigint in [0, 2^64); an int64 goes through BigInt.asUintN(64, v) first) as
 * a varint at `pos`; returns the position after it. Same bytes as putVarintBig with two BigInt
 * operations instead of two per byte.
 */
export function putVarint64(buf: Uint8Array, pos: number, v: bigint): number {
  return putVarint64Parts(buf, pos, Number(v >> 32n), Number(BigInt.asUintN(32, v)));
}
