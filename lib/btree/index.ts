/**
 * lib/btree public face: the copy-on-write B-tree used by lib/mvcc for its key index and for
 * O(1) point-in-time clones (DESIGN §2, §3 step 5).
 */
export { BTree, defaultBTreeDegree } from "./btree.js";
export type { BTreeVisitor, BTreeEntriesOptions } from "./btree.js";
export { BTreeError, BTreeInvalidDegreeError, BTreeInvariantError } from "./errors.js";
