/**
 * What a request costs against the backend quota, as etcd 3.4's etcdserver/quota.go counts it
 * (backendQuota.Cost). The capped applier (apply.go applierV3Capped) refuses, while the NOSPACE
 * alarm is raised, every put, every lease grant and every txn whose cost is above 0.
 */
import type { PutRequest, RequestOp, TxnRequest } from "../proto/gen/etcdserverpb/rpc.js";

/** etcd's kvOverhead: the estimated cost of a key's metadata, in bytes. */
export const kvOverheadBytes = 256;
/** etcd's leaseOverhead: the cost of a lease grant, in bytes. */
export const leaseOverheadBytes = 64;

/** etcd costPut: kvOverhead + key + value bytes. */
export function putCost(req: PutRequest): number {
  return kvOverheadBytes + req.key.length + req.value.length;
}

/**
 * etcd costTxn: the costlier of the two branches, each the sum of its puts' costs. Only the
 * txn's own puts count: a nested txn costs 0 (etcd's costTxnReq looks at RequestPut alone), so a
 * txn whose puts are all nested passes both the quota check and the NOSPACE alarm, as with etcd
 * 3.4.23. A txn without puts costs 0.
 */
export function txnCost(req: TxnRequest): number {
  const branch = (ops: RequestOp[]) => {
    let n = 0;
    for (const op of ops) {
      if (op.request.oneofKind === "requestPut") n += putCost(op.request.requestPut);
    }
    return n;
  };
  return Math.max(branch(req.success), branch(req.failure));
}
