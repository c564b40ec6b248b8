/**
 * bbolt's on-disk format (go.etcd.io/bbolt v1.3.6, the version etcd 3.4 links), shared by the
 * writer (bolt.ts) and the reader (bolt-reader.ts). All integers are little-endian (bbolt writes
 * its structs in host order; etcd runs on little-endian machines).
 *
 * A file is an array of pages of `pageSize` bytes; page `n` starts at byte `n * pageSize`. Every
 * page starts with a 16-byte header: id u64 @0, flags u16 @8, count u16 @10, overflow u32 @12
 * (the page spans 1 + overflow pages). Pages 0 and 1 are the two meta pages; bbolt uses the valid
 * one with the higher txid.
 *
 * Meta (at byte 16 of a meta page): magic u32 @0, version u32 @4, pageSize u32 @8, flags u32 @12,
 * root bucket {root pgid u64 @16, sequence u64 @24}, freelist pgid u64 @32 (all ones when the
 * freelist is not stored, bbolt's NoFreelistSync as etcd 3.4 runs it), high-water pgid u64 @40
 * (pages in use), txid u64 @48, checksum u64 @56 = FNV-64a of bytes @0..@55.
 *
 * Leaf element (16 bytes each, after the header): flags u32, pos u32, ksize u32, vsize u32; the
 * key starts `pos` bytes after the element itself, the value right after the key. flags bit 0
 * marks a nested bucket, whose value is a bucket header {root pgid u64, sequence u64} and, when
 * root is 0 (an inline bucket), a whole leaf page follows the header inside the value.
 * Branch element (16 bytes): pos u32, ksize u32, child pgid u64; the key is the child's first key.
 */

/** bbolt's meta magic. */
export const boltMagic = 0xed0cdaed;
/** bbolt's data format version. */
export const boltVersion = 2;
/** The page size etcd's files use (the OS page size on its platforms). */
export const defaultBoltPageSizeBytes = 4096;

export const pageHeaderBytes = 16;
export const leafElementBytes = 16;
export const branchElementBytes = 16;
export const bucketHeaderBytes = 16;
/** Bytes of the meta struct after the page header; the checksum covers the first 56. */
export const metaBytes = 64;
export const metaChecksummedBytes = 56;

export const branchPageFlag = 0x01;
export const leafPageFlag = 0x02;
export const metaPageFlag = 0x04;
export const freelistPageFlag = 0x10;
/** Leaf element flag: the value is a nested bucket. */
export const bucketLeafFlag = 0x01;

/** bbolt's MaxKeySize. */
export const boltMaxKeyBytes = 32768;
/** bbolt's MaxValueSize ((1 << 31) - 2). */
export const boltMaxValueBytes = 2 ** 31 - 2;
/** bbolt's minKeysPerPage: a split leaves at least this many elements on a page. */
export const minKeysPerPage = 2;
/** page.count is a u16; bbolt refuses a node of 0xFFFF elements or more. */
export const maxElementsPerPage = 0xfffe;
/** The meta freelist value meaning "no freelist page; rebuild it by scanning" (pgidNoFreelist). */
export const noFreelistPgid = 0xffffffffffffffffn;

const fnvOffset64 = 0xcbf29ce484222325n;
const fnvPrime64 = 0x100000001b3n;
const mask64 = 0xffffffffffffffffn;

/** FNV-1a 64-bit hash (Go's hash/fnv New64a), the meta page checksum. */
export function fnv64a(bytes: Uint8Array): bigint {
  let h = fnvOffset64;
  for (let i = 0; i < bytes.length; i++) {
    h ^= BigInt(bytes[i]!);
    h = (h * fnvPrime64) & mask64;
  }
  return h;
}
