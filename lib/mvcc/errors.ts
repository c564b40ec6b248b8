/**
 * Errors raised by lib/mvcc. Each carries a stable `code` (etcd's Go error variable name where one
 * exists) and, as its message, etcd's exact client-visible string without the gRPC code
 * (etcdserver/api/v3rpc/rpctypes/error.go), so lib/api maps them to etcd's status by message.
 */

/** Base class for every lib/mvcc error. */
export class MvccError extends Error {
  /** Stable machine-readable code, e.g. "ErrCompacted". */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The requested revision is at or below the compaction point (rpctypes ErrGRPCCompacted). */
export class MvccCompactedError extends MvccError {
  constructor() {
    super("ErrCompacted", "etcdserver: mvcc: required revision has been compacted");
  }
}

/** The requested revision is above the current revision (rpctypes ErrGRPCFutureRev). */
export class MvccFutureRevError extends MvccError {
  constructor() {
    super("ErrFutureRev", "etcdserver: mvcc: required revision is a future revision");
  }
}

/** A request without a key (rpctypes ErrGRPCEmptyKey). */
export class EmptyKeyError extends MvccError {
  constructor() {
    super("ErrEmptyKey", "etcdserver: key is not provided");
  }
}

/**
 * ignore_value / ignore_lease on a key that does not exist, or an empty RequestOp in a txn
 * (rpctypes ErrGRPCKeyNotFound).
 */
export class KeyNotFoundError extends MvccError {
  constructor() {
    super("ErrKeyNotFound", "etcdserver: key not found");
  }
}

/** ignore_value together with a non-empty value (rpctypes ErrGRPCValueProvided). */
export class ValueProvidedError extends MvccError {
  constructor() {
    super("ErrValueProvided", "etcdserver: value is provided");
  }
}

/** ignore_lease together with a non-zero lease (rpctypes ErrGRPCLeaseProvided). */
export class LeaseProvidedError extends MvccError {
  constructor() {
    super("ErrLeaseProvided", "etcdserver: lease is provided");
  }
}

/** More compares or ops in one txn level than --max-txn-ops (rpctypes ErrGRPCTooManyOps). */
export class TooManyOpsError extends MvccError {
  constructor() {
    super("ErrTooManyOps", "etcdserver: too many operations in txn request");
  }
}

/** Two puts of one key, or a put inside a deleted range, in one txn (rpctypes ErrGRPCDuplicateKey). */
export class DuplicateKeyError extends MvccError {
  constructor() {
    super("ErrDuplicateKey", "etcdserver: duplicate key given in txn request");
  }
}

/** A put names a lease the lessor does not know (rpctypes ErrGRPCLeaseNotFound). */
export class LeaseNotFoundError extends MvccError {
  constructor() {
    super("ErrLeaseNotFound", "etcdserver: requested lease not found");
  }
}

/**
 * A watch stream whose client is not reading kept sending requests until more than
 * maxPendingResponsesPerStream control responses (created / canceled / progress) waited for it.
 * etcd blocks such a client's sends instead; we cannot, so WatchStream.handle() throws this and the
 * transport should end the stream (RESOURCE_EXHAUSTED).
 */
export class WatchStreamOverloadedError extends MvccError {
  constructor(limit: number) {
    super(
      "ErrWatchStreamOverloaded",
      `etcd-ts: watch stream has more than ${limit} responses pending for a client that is not reading`,
    );
  }
}

/**
 * restore() was given a store that is not empty (code ErrRestoreNotEmpty) or a key-bucket entry
 * that is not etcd's format (code ErrRestoreBadEntry). The db file is not used.
 */
export class MvccRestoreError extends MvccError {
  constructor(code: "ErrRestoreNotEmpty" | "ErrRestoreBadEntry", detail: string) {
    super(code, `mvcc: restore: ${detail}`);
  }
}

/** A broken internal invariant of the store: a bug. The member should stop, not carry on. */
export class MvccInvariantError extends MvccError {
  constructor(message: string) {
    super("ErrMvccInvariant", `mvcc: invariant broken: ${message}`);
  }
}

/** Throws MvccInvariantError with `message` unless `cond` holds. */
export function mvccAssert(cond: boolean, message: string): asserts cond {
  if (!cond) throw new MvccInvariantError(message);
}
