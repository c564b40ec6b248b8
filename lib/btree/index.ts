/**
 * lib/btree public face: the copy-on-write B-tree (O(1) point-in-time clones), the slot B+tree in
 * typed arrays that lib/mvcc uses as its key index (no object per key), and the bbolt-format db
 * file writer and reader used for snapshot (db) files (DESIGN §1, §2).
 */
export { BTree, defaultBTreeDegree } from "./btree.js";
export type { BTreeVisitor, BTreeEntriesOptions } from "./btree.js";
export { SlotBTree, defaultSlotNodeCapacity, headOfKey } from "./slot-btree.js";
export type { SlotBTreeBuilder } from "./slot-btree.js";
export type { SlotKeys, SlotBTreeOptions, SlotNodeMemory } from "./slot-btree.js";
export { BTreeError, BTreeInvalidDegreeError, BTreeInvariantError } from "./errors.js";
export { BoltAppendBase, BoltFileWriter, defaultBoltWriteOptions } from "./bolt.js";
export type { BoltBucketSource, BoltEntryCursor, BoltPageWrite, BoltWriteOptions } from "./bolt.js";
export { BoltFile, BoltBucket, boltMaxTreeDepth, boltReadAheadMaxPages } from "./bolt-reader.js";
export type { BoltMeta, BoltByteSource } from "./bolt-reader.js";
export { BoltError, BoltCorruptError, BoltInputError } from "./bolt-errors.js";
export {
  boltMaxKeyBytes,
  boltMaxValueBytes,
  defaultBoltPageSizeBytes,
  fnv64a,
} from "./bolt-format.js";
