/**
 * lib/lease public face: the lessor (lease bookkeeping, expiry and checkpoints as a pure state
 * machine driven by the server; DESIGN §2) and its typed errors.
 */
export {
  Lessor,
  maxLeaseTtlSeconds,
  computeMinLeaseTtlSeconds,
  defaultLeaseCheckpointIntervalMs,
  defaultLeaseRevokeRatePerSecond,
  defaultExpiredLeaseRetryMs,
} from "./lessor.js";
export type {
  LeaseInfo,
  LeaseRecord,
  LeaseTimeToLive,
  LeaseCheckpoint,
  LessorOptions,
} from "./lessor.js";
export {
  LeaseError,
  LeaseNotFoundError,
  LeaseExistsError,
  LeaseTtlTooLargeError,
  LeaseNotPrimaryError,
  LeaseExpiredError,
  LeaseInvalidOptionError,
  LeaseInvariantError,
} from "./errors.js";
