/**
 * Errors of lib/server. Each message is etcd's exact string (etcdserver/errors.go,
 * api/v3rpc/rpctypes), so lib/api maps them to gRPC codes in one table keyed by message.
 */
export class ServerError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const errStopped = () => new ServerError("ErrStopped", "etcdserver: server stopped");
export const errTimeout = () => new ServerError("ErrTimeout", "etcdserver: request timed out");
export const errTimeoutDueToLeaderFail = () =>
  new ServerError(
    "ErrTimeoutDueToLeaderFail",
    "etcdserver: request timed out, possibly due to previous leader failure",
  );
export const errTimeoutDueToConnectionLost = () =>
  new ServerError(
    "ErrTimeoutDueToConnectionLost",
    "etcdserver: request timed out, possibly due to connection lost",
  );
/**
 * A proposal that waited its whole request timeout for a leader and never reached raft: etcd 3.4's
 * node.Propose returns the request context's own error, which its gRPC layer does not translate
 * (clients see code Unknown and this text).
 */
export const errProposeDeadlineExceeded = () =>
  new ServerError("ErrProposeDeadlineExceeded", "context deadline exceeded");
export const errNoLeader = () => new ServerError("ErrNoLeader", "etcdserver: no leader");
export const errNotLeader = () => new ServerError("ErrNotLeader", "etcdserver: not leader");
export const errRequestTooLarge = () =>
  new ServerError("ErrRequestTooLarge", "etcdserver: request is too large");
export const errNoSpace = () =>
  new ServerError("ErrNoSpace", "etcdserver: mvcc: database space exceeded");
export const errLeaseNotFound = () =>
  new ServerError("ErrLeaseNotFound", "etcdserver: requested lease not found");
export const errLeaseExists = () =>
  new ServerError("ErrLeaseExists", "etcdserver: lease already exists");
export const errLeaseTtlTooLarge = () =>
  new ServerError("ErrLeaseTTLTooLarge", "etcdserver: too large lease TTL");
export const errMemberNotFound = () =>
  new ServerError("ErrMemberNotFound", "etcdserver: member not found");
export const errNotCapable = () => new ServerError("ErrNotCapable", "etcdserver: not capable");
export const errTooManyRequests = () =>
  new ServerError("ErrTooManyRequests", "etcdserver: too many requests");
export const errCorrupt = () => new ServerError("ErrCorrupt", "etcdserver: corrupt cluster");
export const errBadLeaderTransferee = () =>
  new ServerError("ErrBadLeaderTransferee", "etcdserver: bad leader transferee");
export const errLeaderChanged = () =>
  new ServerError("ErrLeaderChanged", "etcdserver: leader changed");
export const errTimeoutLeaderTransfer = () =>
  new ServerError(
    "ErrTimeoutLeaderTransfer",
    "etcdserver: request timed out, leader transfer took too long",
  );
export const errUnhealthy = () => new ServerError("ErrUnhealthy", "etcdserver: unhealthy cluster");
export const errNotSupportedForLearner = () =>
  new ServerError("ErrNotSupportedForLearner", "etcdserver: rpc not supported for learner");
// membership errors, as etcd's togRPCError shows them to clients (v3rpc/util.go)
export const errMemberExist = () =>
  new ServerError("ErrMemberExist", "etcdserver: member ID already exist");
export const errPeerUrlExist = () =>
  new ServerError("ErrPeerURLExist", "etcdserver: Peer URLs already exists");
export const errMemberBadUrls = () =>
  new ServerError("ErrMemberBadURLs", "etcdserver: given member URLs are invalid");
export const errMemberNotLearner = () =>
  new ServerError("ErrMemberNotLearner", "etcdserver: can only promote a learner member");
export const errLearnerNotReady = () =>
  new ServerError(
    "ErrLearnerNotReady",
    "etcdserver: can only promote a learner member which is in sync with leader",
  );
export const errTooManyLearners = () =>
  new ServerError("ErrTooManyLearners", "etcdserver: too many learner members in cluster");
export const errNotEnoughStartedMembers = () =>
  new ServerError(
    "ErrNotEnoughStartedMembers",
    "etcdserver: re-configuration failed due to not enough started members",
  );
/** The member was removed from the cluster (etcd's rafthttp errMemberRemoved). */
export const errMemberRemoved = () =>
  new ServerError("ErrMemberRemoved", "the member has been permanently removed from the cluster");

/**
 * A data-dir file (the db file or a .snap file) that must not be used: it fails a check (bad magic,
 * checksum, truncated, does not parse) or disagrees with the WAL. Names the file and what failed;
 * the member refuses to start rather than serve wrong data. Code "ErrDataDirFile".
 */
export class DataDirFileError extends ServerError {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super("ErrDataDirFile", `${file}: ${reason}`);
  }
}
