/**
 * Errors raised by lib/btree. Each carries a stable `code` so callers can branch on it without
 * matching message text (STYLE §3).
 */

/** Base class for every lib/btree error. */
export class BTreeError extends Error {
  /** Stable machine-readable code. */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The `degree` option is not an integer in [4, 1024]. Thrown by the BTree constructor. */
export class BTreeInvalidDegreeError extends BTreeError {
  constructor(degree: number) {
    super("BTREE_INVALID_DEGREE", `btree: degree must be an integer in [4, 1024], got ${degree}`);
  }
}

/**
 * A structural invariant of the tree does not hold (a bug, not an operating error). Thrown by
 * `checkInvariants()` and by internal assertions; the caller should stop, not carry on.
 */
export class BTreeInvariantError extends BTreeError {
  constructor(message: string) {
    super("BTREE_INVARIANT", `btree: invariant broken: ${message}`);
  }
}
