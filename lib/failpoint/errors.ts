/**
 * Errors raised by lib/failpoint. Each carries a stable `code` (STYLE §3).
 */

/** Base class for every lib/failpoint error. */
export class FailpointError extends Error {
  /** Stable machine-readable code. */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A terms string that does not parse (gofail's ErrBadParse); says where the parse stopped. */
export class FailpointSyntaxError extends FailpointError {
  constructor(terms: string, reason: string) {
    super(
      "FAILPOINT_SYNTAX",
      `failpoint: could not parse terms ${JSON.stringify(terms)}: ${reason}`,
    );
  }
}

/** A name that is not a registered failpoint (gofail's ErrNoExist). */
export class FailpointUnknownError extends FailpointError {
  readonly failpoint: string;
  constructor(name: string) {
    super("FAILPOINT_UNKNOWN", `failpoint: failpoint ${JSON.stringify(name)} does not exist`);
    this.failpoint = name;
  }
}

/** An action the named point cannot carry out (`drop` or `error` where the point has no such effect). */
export class FailpointUnsupportedError extends FailpointError {
  constructor(name: string, action: string) {
    super(
      "FAILPOINT_UNSUPPORTED",
      `failpoint: ${name} does not support the action ${JSON.stringify(action)}`,
    );
  }
}

/**
 * What the `error` action throws at the point: the caller handles it as the operating error the
 * point stands for (a WAL write that failed, a snapshot that failed, ...).
 */
export class FailpointInjectedError extends FailpointError {
  readonly failpoint: string;
  constructor(name: string, message: string | undefined) {
    super("FAILPOINT_INJECTED", `failpoint ${name}: ${message ?? "injected error"}`);
    this.failpoint = name;
  }
}
