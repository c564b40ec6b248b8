/** Typed errors of etcd-ts-util's commands (tools/util), with stable codes. */

/** Base class of the errors etcd-ts-util reports on purpose. */
export class UtilError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A bad command line: unknown command or flag, missing or malformed value. Exit status 1. */
export class UtilUsageError extends UtilError {
  constructor(message: string) {
    super("UTIL_USAGE", message);
  }
}

/** check perf: the prefix already holds keys (etcdctl refuses the same way). */
export class PrefixNotEmptyError extends UtilError {
  constructor(prefix: string) {
    super(
      "UTIL_PREFIX_NOT_EMPTY",
      `prefix ${JSON.stringify(prefix)} has keys. Delete with etcdctl del --prefix ${prefix} first`,
    );
  }
}
