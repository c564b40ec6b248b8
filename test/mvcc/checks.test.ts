import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  checkDeleteRangeRequest,
  checkPutRequest,
  checkRangeRequest,
  checkTxnRequest,
  DuplicateKeyError,
  EmptyKeyError,
  KeyNotFoundError,
  LeaseProvidedError,
  TooManyOpsError,
  ValueProvidedError,
} from "../../lib/mvcc/index.js";
import {
  Compare_CompareResult as R,
  Compare_CompareTarget as T,
  RequestOp,
} from "../../lib/proto/gen/etcdserverpb/rpc.js";
import {
  b,
  cmp,
  delReq,
  opDel,
  opPut,
  opRange,
  opTxn,
  putReq,
  rangeReq,
  txnReq,
} from "./helpers.js";

const errIs = (cls: new () => Error, message: string) => (e: unknown) =>
  e instanceof cls && (e as Error).message === message;

describe("request checks (etcd api/v3rpc key.go)", () => {
  test("empty key: range, put, delete", () => {
    const m = "etcdserver: key is not provided";
    assert.throws(() => checkRangeRequest(rangeReq("")), errIs(EmptyKeyError, m));
    assert.throws(() => checkPutRequest(putReq("", "v")), errIs(EmptyKeyError, m));
    assert.throws(() => checkDeleteRangeRequest(delReq("")), errIs(EmptyKeyError, m));
    checkRangeRequest(rangeReq("k"));
    checkPutRequest(putReq("k", "v"));
    checkDeleteRangeRequest(delReq("k"));
  });

  test("ignore_value with a value and ignore_lease with a lease", () => {
    assert.throws(
      () => checkPutRequest(putReq("k", "v", { ignoreValue: true })),
      errIs(ValueProvidedError, "etcdserver: value is provided"),
    );
    assert.throws(
      () => checkPutRequest(putReq("k", "", { ignoreLease: true, lease: 5n })),
      errIs(LeaseProvidedError, "etcdserver: lease is provided"),
    );
    checkPutRequest(putReq("k", "", { ignoreValue: true, ignoreLease: true }));
  });

  test("too many ops: compares or either branch above maxTxnOps", () => {
    const m = "etcdserver: too many operations in txn request";
    const ops = (n: number) => Array.from({ length: n }, (_, i) => opPut(`k${i}`, "v"));
    checkTxnRequest(txnReq({ success: ops(128) }), 128);
    assert.throws(
      () => checkTxnRequest(txnReq({ success: ops(129) }), 128),
      errIs(TooManyOpsError, m),
    );
    assert.throws(() => checkTxnRequest(txnReq({ failure: ops(3) }), 2), errIs(TooManyOpsError, m));
    const compares = Array.from({ length: 3 }, () => cmp("a", T.VERSION, R.EQUAL, 0));
    assert.throws(
      () => checkTxnRequest(txnReq({ compare: compares }), 2),
      errIs(TooManyOpsError, m),
    );
    // a nested txn gets what is left: maxTxnOps - ops of this level
    assert.throws(
      () => checkTxnRequest(txnReq({ success: [opPut("a", "1"), opTxn({ success: ops(2) })] }), 3),
      TooManyOpsError,
    );
    checkTxnRequest(txnReq({ success: [opPut("a", "1"), opTxn({ success: ops(1) })] }), 3);
  });

  test("empty compare key, empty op", () => {
    assert.throws(
      () => checkTxnRequest(txnReq({ compare: [cmp("", T.VERSION, R.EQUAL, 0)] }), 128),
      EmptyKeyError,
    );
    assert.throws(
      () => checkTxnRequest(txnReq({ success: [RequestOp.create()] }), 128),
      errIs(KeyNotFoundError, "etcdserver: key not found"),
    );
    assert.throws(() => checkTxnRequest(txnReq({ failure: [opRange("")] }), 128), EmptyKeyError);
  });

  test("duplicate key rule", () => {
    const m = "etcdserver: duplicate key given in txn request";
    const bad = (t: Parameters<typeof txnReq>[0]) =>
      assert.throws(() => checkTxnRequest(txnReq(t), 128), errIs(DuplicateKeyError, m));
    const ok = (t: Parameters<typeof txnReq>[0]) => checkTxnRequest(txnReq(t), 128);
    bad({ success: [opPut("a", "1"), opPut("a", "2")] });
    bad({ success: [opDel("a"), opPut("a", "2")] });
    bad({ success: [opDel("a", { rangeEnd: b("c") }), opPut("b", "2")] });
    ok({ success: [opDel("a", { rangeEnd: b("c") }), opPut("c", "2")] });
    ok({ success: [opPut("a", "1")], failure: [opPut("a", "2")] });
    ok({ success: [opDel("a"), opDel("a")] });
    ok({ success: [opRange("a"), opPut("a", "1")] });
    // nested: a put inside a nested txn overlapping an outer put or delete
    bad({ success: [opPut("a", "1"), opTxn({ success: [opPut("a", "2")] })] });
    bad({ success: [opDel("a", { rangeEnd: b("z") }), opTxn({ failure: [opPut("m", "2")] })] });
    bad({ success: [opTxn({ success: [opDel("a")] }), opPut("a", "1")] });
    // then and else of one nested txn may put the same key
    ok({ success: [opTxn({ success: [opPut("a", "1")], failure: [opPut("a", "2")] })] });
    // but two nested txns may not
    bad({
      success: [opTxn({ success: [opPut("a", "1")] }), opTxn({ failure: [opPut("a", "2")] })],
    });
    // etcd 3.4 takes a from-key ("\0") delete end literally: no overlap detected
    ok({ success: [opDel("a", { rangeEnd: Buffer.from([0]) }), opPut("b", "1")] });
  });
});
