/**
 * Typed errors of lib/raft. Each class carries a stable `code` so callers (lib/server, lib/api)
 * map them in one table; the names and meanings follow etcd-io/raft's exported error values.
 */

/** Base class for every error thrown by lib/raft; `code` is stable across releases. */
export class RaftError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * A proposal (or forwarded request) was dropped: no known leader, forwarding disabled, a leader
 * transfer in progress, the uncommitted-size limit reached, or this node was removed.
 * etcd-io/raft's ErrProposalDropped; the client may retry.
 */
export class ErrProposalDropped extends RaftError {
  constructor(reason = "raft proposal dropped") {
    super("ERR_RAFT_PROPOSAL_DROPPED", reason);
  }
}

/** The requested index is older than the first index kept by storage (it was compacted). */
export class ErrCompacted extends RaftError {
  constructor() {
    super("ERR_RAFT_COMPACTED", "requested index is unavailable due to compaction");
  }
}

/** The requested index is newer than the last index in storage. */
export class ErrUnavailable extends RaftError {
  constructor() {
    super("ERR_RAFT_UNAVAILABLE", "requested entry at index is unavailable");
  }
}

/** A snapshot older than the one storage already holds was offered. */
export class ErrSnapOutOfDate extends RaftError {
  constructor() {
    super("ERR_RAFT_SNAP_OUT_OF_DATE", "requested index is older than the existing snapshot");
  }
}

/** Storage is producing a snapshot and cannot hand one out right now (etcd's ErrSnapshotTemporarilyUnavailable). */
export class ErrSnapshotTemporarilyUnavailable extends RaftError {
  constructor() {
    super("ERR_RAFT_SNAPSHOT_TEMPORARILY_UNAVAILABLE", "snapshot is temporarily unavailable");
  }
}

/** RawNode.step was handed a message type that only the local node may generate (MsgHup, MsgBeat, …). */
export class ErrStepLocalMsg extends RaftError {
  constructor() {
    super("ERR_RAFT_STEP_LOCAL_MSG", "raft: cannot step raft local message");
  }
}

/** RawNode.step was handed a response from a peer that is not in the configuration. */
export class ErrStepPeerNotFound extends RaftError {
  constructor() {
    super("ERR_RAFT_STEP_PEER_NOT_FOUND", "raft: cannot step as peer not found");
  }
}

/** RawNode.bootstrap was called on a node whose storage already holds entries. */
export class ErrBootstrapNonEmpty extends RaftError {
  constructor() {
    super("ERR_RAFT_BOOTSTRAP_NON_EMPTY", "raft: can't bootstrap a nonempty Storage");
  }
}

/** The configuration passed to RawNode is invalid (bad ids, ticks or limits). */
export class ErrInvalidConfig extends RaftError {
  constructor(reason: string) {
    super("ERR_RAFT_INVALID_CONFIG", `raft: invalid config: ${reason}`);
  }
}

/** A conf change that would break the configuration (e.g. remove the last voter). */
export class ErrInvalidConfChange extends RaftError {
  constructor(reason: string) {
    super("ERR_RAFT_INVALID_CONF_CHANGE", `raft: invalid conf change: ${reason}`);
  }
}

/** A broken internal invariant: a programmer error, never an operating condition (STYLE §2). */
export class RaftInvariantError extends RaftError {
  constructor(message: string) {
    super("ERR_RAFT_INVARIANT", `raft invariant violated: ${message}`);
  }
}

/**
 * Throws RaftInvariantError with `message` unless `cond` holds. A message function is a closure
 * (and a context for what it captures) made on every call, failing or not: the log's checks that
 * run several times per proposal (log.ts, log-unstable.ts, storage.ts) throw directly instead.
 */
export function invariant(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new RaftInvariantError(typeof message === "string" ? message : message());
}
