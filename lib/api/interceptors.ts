/**
 * etcd 3.4's gRPC interceptors (api/v3rpc/interceptor.go), the rules both gRPC transports (h2.ts,
 * grpc.ts) apply before a handler runs: first the learner check (learner.ts: while this member is
 * a learner, a unary call it does not serve and every stream fail with `etcdserver: rpc not
 * supported for learner`), then the leader requirement (require-leader.ts: a call with
 * `hasleader: true` fails with `etcdserver: no leader` while no leader is known, and such a
 * stream is ended so when the leader stays lost).
 */
import type { EtcdServer } from "../server/index.js";
import { errNoLeader, errNotSupportedForLearner } from "../server/errors.js";
import { servedByLearner } from "./learner.js";
import { type LeaderStreamMonitor, leaderMissingFor, requiresLeader } from "./require-leader.js";

type InterceptedServer = Pick<EtcdServer, "isLearner" | "leaderId">;

/** The error unary call `path` with request `req` gets before its handler runs, if any. */
export function unaryRefusal(
  server: InterceptedServer,
  path: string,
  req: unknown,
  call: { readonly metadata: ReadonlyMap<string, string> },
): Error | undefined {
  if (server.isLearner && !servedByLearner(path, req)) return errNotSupportedForLearner();
  if (leaderMissingFor(server, call)) return errNoLeader();
  return undefined;
}

/** The sending side of a stream, as far as the interceptors need it. */
interface InterceptedStream {
  end(err?: Error): void;
  onClose(fn: () => void): void;
}

/**
 * The error a stream with `metadata` gets before its handler runs, if any. A stream that requires
 * a leader and has one is tracked by `leaderStreams`, ending through `stream()` (called only
 * then) with `etcdserver: no leader` once the leader stays lost.
 */
export function streamRefusal(
  server: InterceptedServer,
  leaderStreams: LeaderStreamMonitor,
  metadata: ReadonlyMap<string, string>,
  stream: () => InterceptedStream,
): Error | undefined {
  if (server.isLearner) return errNotSupportedForLearner();
  if (!requiresLeader(metadata)) return undefined;
  if (server.leaderId === 0n) return errNoLeader();
  const s = stream();
  s.onClose(leaderStreams.track(() => s.end(errNoLeader())));
  return undefined;
}
