/**
 * Errors of the bbolt-format file writer and reader (bolt.ts, bolt-reader.ts). Each carries a
 * stable `code` (STYLE §3) and says what is wrong and where (page id, byte offset), so a bad
 * db file is refused with a reason and never silently used (DESIGN §8).
 */
import { BTreeError } from "./errors.js";

/** Base class of every bolt file error. */
export class BoltError extends BTreeError {}

/**
 * A db file fails a check: a bad meta magic, version or FNV-64a checksum, a page whose header
 * disagrees with where it sits, an element running past its page, keys out of order, a page
 * reached twice, a file shorter than its high-water mark. `pgid` names the page when known.
 */
export class BoltCorruptError extends BoltError {
  /** The page the problem was found on, if it is about one page. */
  readonly pgid: number | undefined;
  constructor(message: string, pgid?: number) {
    super(
      "BOLT_CORRUPT",
      `bolt: corrupt db file: ${pgid === undefined ? "" : `page ${pgid}: `}${message}`,
    );
    this.pgid = pgid;
  }
}

/**
 * Input the writer cannot lay out: keys not strictly ascending, an empty or oversized key, an
 * oversized value, a duplicate bucket name, or entries that changed between the writer's two
 * passes over a bucket.
 */
export class BoltInputError extends BoltError {
  constructor(message: string) {
    super("BOLT_BAD_INPUT", `bolt: ${message}`);
  }
}
