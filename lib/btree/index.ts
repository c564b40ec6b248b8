/**
 * lib/btree public face: the copy-on-write B-tree used by lib/mvcc for its key index and for
 * O(1) point-in-time clones (DESIGN §2, §3 step 5), and the bbolt-format db file writer and
 * reader used for snapshot (db) files (DESIGN §1).
 */
export { BTree, defaultBTreeDegree } from "./btree.js";
export type { BTreeVisitor, BTreeEntriesOptions } from "./btree.js";
export { BTreeError, BTreeInvalidDegreeError, BTreeInvariantError } from "./errors.js";
export { BoltFileWriter, defaultBoltWriteOptions } from "./bolt.js";
export type { BoltBucketSource, BoltWriteOptions } from "./bolt.js";
export { BoltFile, BoltBucket, boltMaxTreeDepth } from "./bolt-reader.js";
export type { BoltMeta } from "./bolt-reader.js";
export { BoltError, BoltCorruptError, BoltInputError } from "./bolt-errors.js";
export {
  boltMaxKeyBytes,
  boltMaxValueBytes,
  defaultBoltPageSizeBytes,
  fnv64a,
} from "./bolt-format.js";
