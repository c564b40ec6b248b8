/**
 * Says why a client connection ended (issue 12): every connection error is logged at debug with
 * its HTTP/2 code and reason and counted in etcd_ts_grpc_connection_errors_total{reason}; a GOAWAY
 * we send as a defence (too_many_pings, rapid_reset, slow_reader, …) is also logged at warn, at
 * most once per reason per warnIntervalMs, with the number of such closes since the last warning.
 * grpc-go logs its own too_many_pings closes the same way ("Got too many pings from the client").
 */
import type { Counter } from "prom-client";
import type { Logger } from "pino";
import { type H2ConnectionErrorInfo, h2DefenceReasons } from "../h2/index.js";

/** Shortest interval between two warn lines for the same defence reason. */
export const connectionErrorWarnIntervalMs = 10_000;

/**
 * Builds the onConnectionError hook of lib/h2's server (H2GrpcServerOptions).
 * `counter` has one label, `reason`; `nowMs` is injectable for tests.
 */
export function connectionErrorReporter(
  logger: Logger,
  counter: Counter<"reason">,
  warnIntervalMs: number = connectionErrorWarnIntervalMs,
  nowMs: () => number = Date.now,
): (info: H2ConnectionErrorInfo, remoteAddress: string) => void {
  // per defence reason: when we last warned, and closes since then
  const lastWarnMs = new Map<string, number>();
  const suppressed = new Map<string, number>();
  return (info, remoteAddress) => {
    const fields = { reason: info.reason, h2Code: info.h2Code, remote: remoteAddress };
    logger.debug({ ...fields, detail: info.message }, "client connection error");
    if (info.reason === "socket_error") return; // the client's doing: logged, not counted
    counter.inc({ reason: info.reason });
    if (!h2DefenceReasons.has(info.reason)) return;
    const now = nowMs();
    const last = lastWarnMs.get(info.reason);
    if (last !== undefined && now - last < warnIntervalMs) {
      suppressed.set(info.reason, (suppressed.get(info.reason) ?? 0) + 1);
      return;
    }
    const more = suppressed.get(info.reason) ?? 0;
    lastWarnMs.set(info.reason, now);
    suppressed.set(info.reason, 0);
    logger.warn(
      { ...fields, closedSinceLastWarning: more },
      `closed a client connection with GOAWAY: ${info.message}`,
    );
  };
}
