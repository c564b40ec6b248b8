/**
 * bench/load — a load generator for etcd's gRPC API with the flags of etcd's `benchmark` tool
 * (see options.ts), a lean HTTP/2 gRPC transport (h2-connection.ts), and HDR latency reports.
 * `runLoad` runs a whole load in this process or in --procs worker processes.
 */
import { performance } from "node:perf_hooks";
import type { LoadOptions } from "./options.js";
import { runInWorkers } from "./procs.js";
import { mergeShards, type LoadResult } from "./report.js";
import { runShard } from "./runner.js";
import { LoadUsageError } from "./errors.js";

export {
  parseLoadArgs,
  defaultLoadOptions,
  validateLoadOptions,
  parseDurationSeconds,
  WORKLOADS,
} from "./options.js";
export type { LoadOptions, Workload } from "./options.js";
export { formatLoadResult, mergeShards } from "./report.js";
export type { LoadResult } from "./report.js";
export type { LatencySummaryMs } from "./histogram.js";
export { H2GrpcConnection } from "./h2-connection.js";
export { framePut, frameRange, frameTxnPut, benchKey, GrpcPath } from "./messages.js";
export { frameMessage, GrpcMessageParser } from "./grpc-frame.js";
export {
  LoadError,
  LoadUsageError,
  GrpcCallError,
  ConnectionLostError,
  GrpcFramingError,
  WorkerError,
  AuthError,
} from "./errors.js";
export { ConnectionCredentials, frameAuthenticate, isStaleTokenError } from "./auth.js";
export { AckToEventLatency } from "./watch-ack.js";

/**
 * Runs the load `o` and resolves with the merged result. With `o.progress` a progress line goes
 * to stderr about once a second. In this process only (not with `o.procs` > 1): `control.ready`
 * runs once the set-up is done (connected, logged in, watchers created) and the load starts when
 * it resolves; `control.stop` ends the run early (no request starts after it fires). Rejects
 * with ConnectionLostError when an endpoint cannot be reached, AuthError when --user cannot log
 * in, WorkerError when a worker process fails, LoadUsageError for `control` with procs > 1.
 */
export async function runLoad(
  o: LoadOptions,
  control: { ready?: () => Promise<void>; stop?: AbortSignal } = {},
): Promise<LoadResult> {
  if ((control.stop !== undefined || control.ready !== undefined) && o.procs > 1)
    throw new LoadUsageError("ready and stop work in one process only (procs 1)");
  const target = o.durationSeconds > 0 || o.workload === "watch" ? 0 : o.total;
  const t0 = performance.now();
  let startedAt = 0;
  let lastDone = 0;
  let lastT = 0;
  const progress = o.progress
    ? (done: number): void => {
        const now = performance.now();
        if (startedAt === 0) startedAt = now;
        const rate = lastT === 0 ? 0 : ((done - lastDone) * 1000) / (now - lastT);
        lastDone = done;
        lastT = now;
        const of = target > 0 ? `/${target}` : "";
        const what = o.workload === "watch" ? "events" : "requests";
        process.stderr.write(
          `\r${((now - t0) / 1000).toFixed(0)}s  ${done}${of} ${what}  ${rate.toFixed(0)}/s   `,
        );
      }
    : undefined;
  let shards;
  if (o.procs <= 1) {
    shards = [
      await runShard(
        o,
        { index: 0, count: 1 },
        { ready: control.ready ?? (async () => {}), progress, stop: control.stop },
      ),
    ];
  } else {
    shards = await runInWorkers(o, progress);
  }
  if (progress !== undefined && lastT !== 0) process.stderr.write("\n");
  return mergeShards(o, shards);
}
