// HistoryRecorder, classifyEtcdError and recordEtcd3Watch without a server: fake calls and a fake
// watcher (an EventEmitter emitting what etcd3's Watcher emits).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import {
  checkWatches,
  classifyEtcdError,
  HistoryRecorder,
  RecorderFullError,
  recordEtcd3Watch,
  type Etcd3Watcher,
} from "../../lib/checker/index.js";

class GrpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

describe("classifyEtcdError", () => {
  test("timeouts, leader changes and UNAVAILABLE after send may have happened", () => {
    for (const err of [
      new Error("etcdserver: request timed out"),
      new GrpcError(
        14,
        "14 UNAVAILABLE: etcdserver: request timed out, possibly due to previous leader failure",
      ),
      new GrpcError(14, "14 UNAVAILABLE: etcdserver: leader changed"),
      new GrpcError(14, "14 UNAVAILABLE: Connection dropped"),
      new GrpcError(4, "4 DEADLINE_EXCEEDED: Deadline exceeded"),
      new GrpcError(1, "1 CANCELLED: Cancelled on client"),
      new Error("socket hang up"),
      "not even an error",
    ]) {
      assert.equal(classifyEtcdError(err), "may-have-happened", String(err));
    }
  });

  test("refusals and calls never sent are definite failures", () => {
    for (const err of [
      new GrpcError(3, "3 INVALID_ARGUMENT: etcdserver: duplicate key given in txn request"),
      new GrpcError(11, "11 OUT_OF_RANGE: etcdserver: mvcc: required revision has been compacted"),
      new GrpcError(8, "8 RESOURCE_EXHAUSTED: etcdserver: mvcc: database space exceeded"),
      new GrpcError(7, "7 PERMISSION_DENIED: etcdserver: permission denied"),
      new Error("etcdserver: too many requests"),
      new GrpcError(
        14,
        "14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED",
      ),
    ]) {
      assert.equal(classifyEtcdError(err), "definite-failure", String(err));
    }
    class GRPCOutOfRangeError extends Error {}
    assert.equal(classifyEtcdError(new GRPCOutOfRangeError("x")), "definite-failure");
  });
});

describe("HistoryRecorder", () => {
  test("records outputs with times, pending calls, and leaves definite failures out", async () => {
    const rec = new HistoryRecorder();
    const out = await rec.record(1, { type: "put", key: "a", value: "1" }, async () => ({
      type: "put",
      revision: 2,
    }));
    assert.deepEqual(out, { type: "put", revision: 2 });
    await assert.rejects(
      rec.record(2, { type: "put", key: "a", value: "2" }, async () => {
        throw new Error("etcdserver: request timed out");
      }),
      /timed out/,
    );
    await assert.rejects(
      rec.record(3, { type: "put", key: "", value: "3" }, async () => {
        throw new GrpcError(3, "3 INVALID_ARGUMENT: etcdserver: key is not provided");
      }),
    );
    const h = rec.history();
    assert.equal(h.length, 2);
    assert.ok(h[0]!.invokeNs <= h[0]!.completeNs && Number.isFinite(h[0]!.completeNs));
    assert.equal(h[1]!.output, undefined);
    assert.equal(h[1]!.completeNs, Infinity);
    assert.deepEqual(
      h.map((o) => o.id),
      [0, 1],
    );
    assert.deepEqual(rec.stats(), { recorded: 2, pending: 1, definiteFailures: 1 });
  });

  test("is bounded", async () => {
    const rec = new HistoryRecorder({ maxOperations: 1 });
    await rec.record(1, { type: "get", key: "a" }, async () => ({ type: "get", kv: null }));
    let called = false;
    await assert.rejects(
      rec.record(1, { type: "get", key: "a" }, async () => {
        called = true;
        return { type: "get", kv: null };
      }),
      RecorderFullError,
    );
    assert.equal(called, false);
  });
});

describe("recordEtcd3Watch", () => {
  const kv = (key: string, value: string, rev: number) => ({
    key: Buffer.from(key),
    value: Buffer.from(value),
    mod_revision: String(rev),
    create_revision: String(rev),
    version: "1",
  });

  test("records responses, and a resumption after a broken stream as a new linked record", () => {
    const w = new EventEmitter();
    const rec = recordEtcd3Watch(w as unknown as Etcd3Watcher, {
      id: "w",
      key: "a",
      startRevision: 2,
    });
    w.emit("connecting", { start_revision: "2" });
    w.emit("data", { header: { revision: "2" }, events: [{ type: "Put", kv: kv("a", "1", 2) }] });
    w.emit("disconnected", new Error("gone"));
    w.emit("connecting", { start_revision: "3" });
    w.emit("data", { header: { revision: "3" }, events: [{ type: "Delete", kv: kv("a", "", 3) }] });
    w.emit("data", { header: { revision: "3" }, events: [] });
    assert.equal(rec.records.length, 2);
    assert.deepEqual(rec.records[1]!.resumes, "w");
    assert.equal(rec.records[1]!.startRevision, 3);
    assert.deepEqual(rec.records[1]!.responses[0]!.events, [
      { type: "delete", key: "a", modRevision: 3 },
    ]);
    assert.equal(rec.records[1]!.responses[1]!.progressNotify, true);
    const r = checkWatches({
      writes: [
        { revision: 2, key: "a", type: "put", value: "1" },
        { revision: 3, key: "a", type: "delete" },
      ],
      watches: rec.records,
    });
    assert.equal(r.verdict, "ok", JSON.stringify(r));
  });
});
