/**
 * The one table that maps errors to gRPC status codes (etcd's api/v3rpc/rpctypes/error.go).
 * Every part's typed errors carry etcd's exact string as their message; the code is looked up by
 * that string here, so the client sees the same code and text as from real etcd.
 */
import { status as GrpcStatus } from "@grpc/grpc-js";

/** etcd error string → gRPC status code. */
const codeByMessage = new Map<string, GrpcStatus>([
  ["etcdserver: key is not provided", GrpcStatus.INVALID_ARGUMENT],
  ["etcdserver: key not found", GrpcStatus.INVALID_ARGUMENT],
  ["etcdserver: value is provided", GrpcStatus.INVALID_ARGUMENT],
  ["etcdserver: lease is provided", GrpcStatus.INVALID_ARGUMENT],
  ["etcdserver: too many operations in txn request", GrpcStatus.INVALID_ARGUMENT],
  ["etcdserver: duplicate key given in txn request", GrpcStatus.INVALID_ARGUMENT],
  ["etcdserver: mvcc: required revision has been compacted", GrpcStatus.OUT_OF_RANGE],
  ["etcdserver: mvcc: required revision is a future revision", GrpcStatus.OUT_OF_RANGE],
  ["etcdserver: mvcc: database space exceeded", GrpcStatus.RESOURCE_EXHAUSTED],
  ["etcdserver: requested lease not found", GrpcStatus.NOT_FOUND],
  ["etcdserver: lease already exists", GrpcStatus.FAILED_PRECONDITION],
  ["etcdserver: too large lease TTL", GrpcStatus.OUT_OF_RANGE],
  ["etcdserver: watch canceled", GrpcStatus.CANCELLED],
  ["etcdserver: member ID already exist", GrpcStatus.FAILED_PRECONDITION],
  ["etcdserver: Peer URLs already exists", GrpcStatus.FAILED_PRECONDITION],
  ["etcdserver: given member URLs are invalid", GrpcStatus.INVALID_ARGUMENT],
  ["etcdserver: member not found", GrpcStatus.NOT_FOUND],
  ["etcdserver: can only promote a learner member", GrpcStatus.FAILED_PRECONDITION],
  [
    "etcdserver: can only promote a learner member which is in sync with leader",
    GrpcStatus.FAILED_PRECONDITION,
  ],
  ["etcdserver: too many learner members in cluster", GrpcStatus.FAILED_PRECONDITION],
  [
    "etcdserver: re-configuration failed due to not enough started members",
    GrpcStatus.FAILED_PRECONDITION,
  ],
  ["etcdserver: rpc not supported for learner", GrpcStatus.UNAVAILABLE],
  ["etcdserver: request is too large", GrpcStatus.INVALID_ARGUMENT],
  ["etcdserver: too many requests", GrpcStatus.RESOURCE_EXHAUSTED],
  ["etcdserver: root user does not exist", GrpcStatus.FAILED_PRECONDITION],
  ["etcdserver: root user does not have root role", GrpcStatus.FAILED_PRECONDITION],
  ["etcdserver: user name already exists", GrpcStatus.FAILED_PRECONDITION],
  ["etcdserver: user name is empty", GrpcStatus.INVALID_ARGUMENT],
  ["etcdserver: user name not found", GrpcStatus.FAILED_PRECONDITION],
  ["etcdserver: role name already exists", GrpcStatus.FAILED_PRECONDITION],
  ["etcdserver: role name not found", GrpcStatus.FAILED_PRECONDITION],
  ["etcdserver: role name is empty", GrpcStatus.INVALID_ARGUMENT],
  ["etcdserver: authentication failed, invalid user ID or password", GrpcStatus.INVALID_ARGUMENT],
  ["etcdserver: permission not given", GrpcStatus.INVALID_ARGUMENT],
  ["etcdserver: role is not granted to the user", GrpcStatus.FAILED_PRECONDITION],
  ["etcdserver: permission is not granted to the role", GrpcStatus.FAILED_PRECONDITION],
  ["etcdserver: invalid auth management", GrpcStatus.INVALID_ARGUMENT],
  ["etcdserver: revision of auth store is old", GrpcStatus.INVALID_ARGUMENT],
  // etcd's togRPCError has no entry for it: its clients see Unknown and auth's own words
  ["auth: authentication failed, password was given for no password user", GrpcStatus.UNKNOWN],
  ["etcdserver: authentication is not enabled", GrpcStatus.FAILED_PRECONDITION],
  ["etcdserver: permission denied", GrpcStatus.PERMISSION_DENIED],
  ["etcdserver: invalid auth token", GrpcStatus.UNAUTHENTICATED],
  ["etcdserver: no leader", GrpcStatus.UNAVAILABLE],
  // a proposal that found no leader within its request timeout (etcd passes the context's error on)
  ["context deadline exceeded", GrpcStatus.UNKNOWN],
  ["etcdserver: not leader", GrpcStatus.FAILED_PRECONDITION],
  ["etcdserver: leader changed", GrpcStatus.UNAVAILABLE],
  ["etcdserver: not capable", GrpcStatus.UNAVAILABLE],
  ["etcdserver: server stopped", GrpcStatus.UNAVAILABLE],
  ["etcdserver: request timed out", GrpcStatus.UNAVAILABLE],
  [
    "etcdserver: request timed out, possibly due to previous leader failure",
    GrpcStatus.UNAVAILABLE,
  ],
  ["etcdserver: request timed out, possibly due to connection lost", GrpcStatus.UNAVAILABLE],
  ["etcdserver: unhealthy cluster", GrpcStatus.UNAVAILABLE],
  ["etcdserver: corrupt cluster", GrpcStatus.DATA_LOSS],
  ["etcdserver: bad leader transferee", GrpcStatus.FAILED_PRECONDITION],
]);

/**
 * Typed errors of lib parts whose own message is descriptive rather than etcd's string: their
 * stable `code` → etcd's string (then looked up in codeByMessage).
 */
const etcdMessageByErrorCode = new Map<string, string>([
  ["LEASE_NOT_FOUND", "etcdserver: requested lease not found"],
  ["LEASE_EXPIRED", "etcdserver: requested lease not found"],
  ["LEASE_EXISTS", "etcdserver: lease already exists"],
  ["LEASE_TTL_TOO_LARGE", "etcdserver: too large lease TTL"],
  ["LEASE_NOT_PRIMARY", "etcdserver: not leader"],
]);

/** Typed errors with their own message that still need a specific gRPC code. */
const grpcCodeByErrorCode = new Map<string, GrpcStatus>([
  // a client that sends watch requests without reading the answers (lib/mvcc's bound)
  ["ErrWatchStreamOverloaded", GrpcStatus.RESOURCE_EXHAUSTED],
]);

/** A gRPC status for the wire: code and the message clients parse. */
export interface ApiStatus {
  code: GrpcStatus;
  message: string;
}

/** An error raised by lib/api itself with an explicit gRPC code. */
export class ApiError extends Error {
  constructor(
    readonly grpcCode: GrpcStatus,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Maps any thrown value to the status the client gets. Errors with a known etcd string get etcd's
 * code; ApiError keeps its own; anything else is INTERNAL (and `unexpected` is true so the caller
 * logs it: an unexpected exception fails that request only, DESIGN §8).
 */
export function toApiStatus(err: unknown): ApiStatus & { unexpected: boolean } {
  if (err instanceof ApiError)
    return { code: err.grpcCode, message: err.message, unexpected: false };
  const errorCode = (err as { code?: unknown } | null)?.code;
  const mapped = typeof errorCode === "string" ? etcdMessageByErrorCode.get(errorCode) : undefined;
  const message = mapped ?? (err instanceof Error ? err.message : String(err));
  const code =
    codeByMessage.get(message) ??
    (typeof errorCode === "string" ? grpcCodeByErrorCode.get(errorCode) : undefined);
  if (code !== undefined) return { code, message, unexpected: false };
  return { code: GrpcStatus.INTERNAL, message, unexpected: true };
}

/** gRPC code → HTTP status, as grpc-gateway's runtime.HTTPStatusFromCode. */
export function httpStatusFromGrpc(code: GrpcStatus): number {
  switch (code) {
    case GrpcStatus.OK:
      return 200;
    case GrpcStatus.CANCELLED:
      return 408;
    case GrpcStatus.UNKNOWN:
      return 500;
    case GrpcStatus.INVALID_ARGUMENT:
      return 400;
    case GrpcStatus.DEADLINE_EXCEEDED:
      return 504;
    case GrpcStatus.NOT_FOUND:
      return 404;
    case GrpcStatus.ALREADY_EXISTS:
      return 409;
    case GrpcStatus.PERMISSION_DENIED:
      return 403;
    case GrpcStatus.UNAUTHENTICATED:
      return 401;
    case GrpcStatus.RESOURCE_EXHAUSTED:
      return 429;
    case GrpcStatus.FAILED_PRECONDITION:
      return 412; // grpc-gateway v1 (etcd 3.4): http.StatusPreconditionFailed
    case GrpcStatus.ABORTED:
      return 409;
    case GrpcStatus.OUT_OF_RANGE:
      return 400;
    case GrpcStatus.UNIMPLEMENTED:
      return 501;
    case GrpcStatus.INTERNAL:
      return 500;
    case GrpcStatus.UNAVAILABLE:
      return 503;
    case GrpcStatus.DATA_LOSS:
      return 500;
    default:
      return 500;
  }
}
