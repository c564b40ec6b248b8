/**
 * Errors raised by lib/checker. A history that breaks etcd's guarantees is not an error: the
 * checkers return it as a verdict. These are for input the checkers cannot read at all (a
 * malformed operation, an output of the wrong kind, an invoke time after the complete time), which
 * is a bug in whoever recorded the history (STYLE §3: one class per failure, stable codes).
 */

/** Base class for every lib/checker error. */
export class CheckerError extends Error {
  /** Stable machine-readable code. */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * The history handed to a checker is malformed: `index` is the position of the offending
 * operation (or watch) in its input array, `reason` says what is wrong with it.
 */
export class CheckerInputError extends CheckerError {
  readonly index: number;
  readonly reason: string;
  constructor(index: number, reason: string) {
    super("CHECKER_BAD_INPUT", `checker: bad input at #${index}: ${reason}`);
    this.index = index;
    this.reason = reason;
  }
}

/** A broken invariant of the checker itself (a programmer error, STYLE §2). */
export function checkerAssert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new CheckerError("CHECKER_INVARIANT", `checker: invariant broken: ${message}`);
}
