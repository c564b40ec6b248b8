/**
 * What a learner serves, as etcd 3.4's gRPC interceptors decide it (api/v3rpc/interceptor.go and
 * util.go isRPCSupportedForLearner): while this member is a learner in the member list, it answers
 * Maintenance.Status and serializable KV.Range only; every other unary call, and every stream
 * (Watch, LeaseKeepAlive, Snapshot, Observe), fails with `etcdserver: rpc not supported for
 * learner` (UNAVAILABLE). The Lock and Election services sit behind the same interceptors, and
 * etcd's JSON gateway reaches them through a gRPC connection, so all three surfaces refuse alike.
 * A member not (yet) in its own member list is not a learner (etcd's IsMemberExist check).
 */
import type { RangeRequest } from "../proto/gen/etcdserverpb/rpc.js";

/** The gRPC paths a learner may serve (a Range only when serializable). */
const statusPath = "/etcdserverpb.Maintenance/Status";
const rangePath = "/etcdserverpb.KV/Range";

/** The gateway routes (after /v3/) of the same calls. */
const gatewayPathOf: ReadonlyMap<string, string> = new Map([
  ["maintenance/status", statusPath],
  ["kv/range", rangePath],
]);

/**
 * True when a learner serves the unary call `grpcPath` (e.g. "/etcdserverpb.KV/Range") with
 * request `req`: etcd 3.4's isRPCSupportedForLearner.
 */
export function servedByLearner(grpcPath: string, req: unknown): boolean {
  if (grpcPath === statusPath) return true;
  if (grpcPath === rangePath) return (req as RangeRequest).serializable === true;
  return false;
}

/** servedByLearner for a gateway route (the path after the /v3/ prefix, e.g. "kv/range"). */
export function servedByLearnerOnGateway(route: string, req: unknown): boolean {
  const grpcPath = gatewayPathOf.get(route);
  return grpcPath !== undefined && servedByLearner(grpcPath, req);
}
