/**
 * Typed errors of the load generator (bench/load). Each carries a stable `code` so the CLI and the
 * comparison can tell a bad flag from a failed request from a dead connection.
 */

/** Base class: every error bench/load throws on purpose is one of these. */
export class LoadError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A flag or option is missing, unknown or out of range. */
export class LoadUsageError extends LoadError {
  constructor(message: string) {
    super("LOAD_USAGE", message);
  }
}

/**
 * A gRPC call finished with a non-zero grpc-status (or the stream broke before it finished).
 * `grpcStatus` is the status from the trailers (14 UNAVAILABLE when the stream was reset).
 */
export class GrpcCallError extends LoadError {
  readonly grpcStatus: number;
  readonly grpcMessage: string;
  constructor(path: string, grpcStatus: number, grpcMessage: string) {
    super("LOAD_GRPC_STATUS", `${path}: grpc-status ${grpcStatus}: ${grpcMessage}`);
    this.grpcStatus = grpcStatus;
    this.grpcMessage = grpcMessage;
  }
}

/** The HTTP/2 session to an endpoint failed or closed while calls were in flight. */
export class ConnectionLostError extends LoadError {
  constructor(endpoint: string, reason: string) {
    super("LOAD_CONNECTION_LOST", `${endpoint}: ${reason}`);
  }
}

/** A response message broke gRPC framing (bad prefix, compressed flag, over-long message). */
export class GrpcFramingError extends LoadError {
  constructor(reason: string) {
    super("LOAD_GRPC_FRAMING", reason);
  }
}

/** A worker process (--procs) failed or sent something unexpected. */
export class WorkerError extends LoadError {
  constructor(message: string) {
    super("LOAD_WORKER", message);
  }
}

/** --user could not log in: Authenticate failed on a connection (the server's answer in the message). */
export class AuthError extends LoadError {
  constructor(endpoint: string, reason: string) {
    super("LOAD_AUTH", `${endpoint}: Authenticate failed: ${reason}`);
  }
}
