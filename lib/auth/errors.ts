/**
 * Errors raised by lib/auth. Each message is etcd 3.4's client-facing string (etcd
 * api/v3rpc/rpctypes/error.go, the strings etcd's togRPCError turns auth/store.go's errors into),
 * so lib/api maps them to gRPC codes in its one table keyed by message; `code` names etcd's error.
 */
export class AuthError extends Error {
  /** etcd's error name, e.g. "ErrPermissionDenied" */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "AuthError";
    this.code = code;
  }
}

const make = (code: string, message: string) => () => new AuthError(code, message);

export const errRootUserNotExist = make(
  "ErrRootUserNotExist",
  "etcdserver: root user does not exist",
);
export const errRootRoleNotExist = make(
  "ErrRootRoleNotExist",
  "etcdserver: root user does not have root role",
);
export const errUserAlreadyExist = make(
  "ErrUserAlreadyExist",
  "etcdserver: user name already exists",
);
export const errUserEmpty = make("ErrUserEmpty", "etcdserver: user name is empty");
export const errUserNotFound = make("ErrUserNotFound", "etcdserver: user name not found");
export const errRoleAlreadyExist = make(
  "ErrRoleAlreadyExist",
  "etcdserver: role name already exists",
);
export const errRoleNotFound = make("ErrRoleNotFound", "etcdserver: role name not found");
export const errRoleEmpty = make("ErrRoleEmpty", "etcdserver: role name is empty");
export const errAuthFailed = make(
  "ErrAuthFailed",
  "etcdserver: authentication failed, invalid user ID or password",
);
/** etcd has no gRPC status for this one: its clients see code Unknown and auth's own text. */
export const errNoPasswordUser = make(
  "ErrNoPasswordUser",
  "auth: authentication failed, password was given for no password user",
);
export const errPermissionNotGiven = make(
  "ErrPermissionNotGiven",
  "etcdserver: permission not given",
);
export const errPermissionDenied = make("ErrPermissionDenied", "etcdserver: permission denied");
export const errRoleNotGranted = make(
  "ErrRoleNotGranted",
  "etcdserver: role is not granted to the user",
);
export const errPermissionNotGranted = make(
  "ErrPermissionNotGranted",
  "etcdserver: permission is not granted to the role",
);
export const errAuthNotEnabled = make(
  "ErrAuthNotEnabled",
  "etcdserver: authentication is not enabled",
);
export const errInvalidAuthToken = make("ErrInvalidAuthToken", "etcdserver: invalid auth token");
export const errInvalidAuthMgmt = make("ErrInvalidAuthMgmt", "etcdserver: invalid auth management");
export const errAuthOldRevision = make(
  "ErrAuthOldRevision",
  "etcdserver: revision of auth store is old",
);

/** A bad `--auth-token` value or key file (etcd auth.ErrInvalidAuthOpts and friends). */
export class AuthOptionsError extends AuthError {
  constructor(message: string) {
    super("ErrInvalidAuthOpts", `auth: invalid auth options: ${message}`);
  }
}
/** etcd's ErrTooManyRequests: here, more password checks queued than maxQueuedBcrypt. */
export const errTooManyRequests = make("ErrTooManyRequests", "etcdserver: too many requests");
