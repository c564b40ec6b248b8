/**
 * Errors raised by lib/lease, each with a stable `code`. lib/api maps them to etcd's gRPC
 * statuses and strings in one table (etcd 3.4 rpctypes):
 *   LEASE_NOT_FOUND     -> NotFound,         "etcdserver: requested lease not found"
 *   LEASE_EXISTS        -> FailedPrecondition, "etcdserver: lease already exists"
 *   LEASE_TTL_TOO_LARGE -> OutOfRange,       "etcdserver: too large lease TTL"
 * LEASE_NOT_PRIMARY and LEASE_EXPIRED are internal: the server forwards the keep-alive to the
 * leader, or waits for the pending revoke and then answers "lease not found" (etcd's Renew).
 */

/** Base class for every lib/lease error. */
export class LeaseError extends Error {
  /** Stable machine-readable code. */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** No lease with this id (etcd lease.ErrLeaseNotFound). Also thrown for id 0, as etcd's Grant. */
export class LeaseNotFoundError extends LeaseError {
  readonly leaseId: bigint;
  constructor(leaseId: bigint) {
    super("LEASE_NOT_FOUND", `lease not found (id ${leaseId.toString(16)})`);
    this.leaseId = leaseId;
  }
}

/** A lease with this id already exists (etcd lease.ErrLeaseExists). */
export class LeaseExistsError extends LeaseError {
  readonly leaseId: bigint;
  constructor(leaseId: bigint) {
    super("LEASE_EXISTS", `lease already exists (id ${leaseId.toString(16)})`);
    this.leaseId = leaseId;
  }
}

/** Requested TTL above MaxLeaseTTL = 9,000,000,000 s (etcd lease.ErrLeaseTTLTooLarge). */
export class LeaseTtlTooLargeError extends LeaseError {
  readonly ttlSeconds: number;
  constructor(ttlSeconds: number) {
    super("LEASE_TTL_TOO_LARGE", `too large lease TTL (${ttlSeconds} s)`);
    this.ttlSeconds = ttlSeconds;
  }
}

/** Keep-alive on a member that is not the primary lessor (etcd lease.ErrNotPrimary). */
export class LeaseNotPrimaryError extends LeaseError {
  constructor() {
    super("LEASE_NOT_PRIMARY", "not a primary lessor");
  }
}

/**
 * Keep-alive on a lease that is past its expiry but not yet revoked. etcd's Renew blocks until
 * the revoke is applied (then: lease not found) or the member is demoted (then: not primary);
 * the pure lessor cannot block, so it tells the caller to do that waiting.
 */
export class LeaseExpiredError extends LeaseError {
  readonly leaseId: bigint;
  constructor(leaseId: bigint) {
    super("LEASE_EXPIRED", `lease expired and awaits revocation (id ${leaseId.toString(16)})`);
    this.leaseId = leaseId;
  }
}

/** A Lessor option is out of range (programmer or configuration error). */
export class LeaseInvalidOptionError extends LeaseError {
  constructor(message: string) {
    super("LEASE_INVALID_OPTION", `lessor: ${message}`);
  }
}

/** A lessor invariant does not hold (a bug): stop, do not carry on. */
export class LeaseInvariantError extends LeaseError {
  constructor(message: string) {
    super("LEASE_INVARIANT", `lessor: invariant broken: ${message}`);
  }
}
