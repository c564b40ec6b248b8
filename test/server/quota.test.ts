// lib/server/quota.ts: a request's cost against the backend quota, as etcd 3.4's quota.go counts it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PutRequest, type RequestOp, TxnRequest } from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { kvOverheadBytes, putCost, txnCost } from "../../lib/server/quota.js";

const put = (key: string, value: string): RequestOp => ({
  request: {
    oneofKind: "requestPut",
    requestPut: PutRequest.create({ key: Buffer.from(key), value: Buffer.from(value) }),
  },
});

test("a put costs etcd's kvOverhead plus its key and value bytes", () => {
  const req = PutRequest.create({ key: Buffer.from("abc"), value: Buffer.alloc(1000) });
  assert.equal(putCost(req), kvOverheadBytes + 3 + 1000);
});

test("a txn costs its costlier branch, not both branches together", () => {
  const req = TxnRequest.create({
    success: [put("a", "1"), put("b", "22")],
    failure: [put("c", "x".repeat(100))],
  });
  assert.equal(txnCost(req), Math.max(2 * kvOverheadBytes + 5, kvOverheadBytes + 101));
  assert.equal(
    txnCost(TxnRequest.create({ failure: [put("k", "v")] })),
    kvOverheadBytes + 2,
    "a put in the branch that may not run still costs",
  );
});

test("a txn without puts of its own costs nothing, nested puts included", () => {
  const nested: RequestOp = {
    request: {
      oneofKind: "requestTxn",
      requestTxn: TxnRequest.create({ success: [put("k", "v")] }),
    },
  };
  assert.equal(txnCost(TxnRequest.create({ success: [nested] })), 0);
  assert.equal(txnCost(TxnRequest.create({})), 0);
});
