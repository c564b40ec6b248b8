/**
 * lib/wal's writes in flight together (maxWritesInFlight): saves queued while a durable write
 * runs start at once in their own batch, still resolve in the order they were made, and read back
 * whole; a failed write rejects itself and every later save, never an earlier one.
 */
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import type { Entry } from "../../lib/proto/gen/raftpb/raft.js";
import { WAL, WalIoError, WalInvalidArgumentError } from "../../lib/wal/index.js";
import { SYNC_WRITE_MAX_BYTES } from "../../lib/wal/wal.js";
import { clearAllFailpoints, setFailpoint } from "../../lib/failpoint/index.js";
import { tempDataDir } from "./harness.js";

afterEach(() => clearAllFailpoints());

function entries(from: number, n: number, bytes = 200): Entry[] {
  return Array.from({ length: n }, (_, i) => ({
    type: 0,
    term: 1,
    index: from + i,
    data: Buffer.alloc(bytes, (from + i) & 0xff),
  }));
}

/**
 * Saves `rounds` x 3 entries (indexes from `from`), a new save each turn of the event loop, not
 * awaiting any; `order` gets each save's number as it resolves. Returns every save's outcome.
 */
async function saveEachTurn(
  wal: WAL,
  rounds: number,
  order: number[],
  from = 1,
): Promise<PromiseSettledResult<void>[]> {
  const outcomes: Promise<PromiseSettledResult<void>>[] = [];
  for (let k = 0; k < rounds; k++) {
    const p = wal.save({ term: 1, vote: 1n, commit: 0 }, entries(from + 3 * k, 3));
    // settled at once, so no rejection is ever left unhandled for a turn
    outcomes.push(
      p.then(
        () => (order.push(k), { status: "fulfilled", value: undefined }),
        (reason: unknown) => ({ status: "rejected", reason }),
      ),
    );
    await new Promise((r) => setImmediate(r));
  }
  return Promise.all(outcomes);
}

test("saves made while a durable write runs start at once, resolve in order and read back", async (t) => {
  const d = tempDataDir();
  t.after(d.cleanup);
  const wal = await WAL.create(d.walDir, Buffer.from("m"), { maxWritesInFlight: 2 });
  const order: number[] = [];
  const results = await saveEachTurn(wal, 60, order);
  assert.ok(results.every((r) => r.status === "fulfilled"));
  assert.deepEqual(order, [...Array(60).keys()]);
  // with one write in flight at a time this stays 0: the overlap is what the option is for
  assert.ok(wal.stats.overlappedWrites > 0, `overlapped ${wal.stats.overlappedWrites}`);
  await wal.close();
  const r = await WAL.read(d.walDir);
  assert.deepEqual(
    r.entries.map((e) => e.index),
    Array.from({ length: 180 }, (_, i) => i + 1),
  );
  for (const e of r.entries) assert.equal(e.data[0], e.index & 0xff);
});

test("maxWritesInFlight 1 writes one batch at a time", async (t) => {
  const d = tempDataDir();
  t.after(d.cleanup);
  const wal = await WAL.create(d.walDir, Buffer.from("m"), { maxWritesInFlight: 1 });
  const order: number[] = [];
  await saveEachTurn(wal, 20, order);
  assert.deepEqual(order, [...Array(20).keys()]);
  assert.equal(wal.stats.overlappedWrites, 0);
  await wal.close();
});

test("a failed write in flight rejects its save and every later one, never an earlier one", async (t) => {
  const d = tempDataDir();
  t.after(d.cleanup);
  const wal = await WAL.create(d.walDir, Buffer.from("m"), { maxWritesInFlight: 2 });
  await wal.save({ term: 1, vote: 1n, commit: 0 }, entries(1, 3));
  // the second write from now fails (the first save below starts a write of its own; later
  // ones may merge into fewer writes when the disk is slow)
  setFailpoint("walBeforeWrite", '1*off->error("injected")');
  const order: number[] = [];
  const results = await saveEachTurn(wal, 30, order, 4);
  const firstRejected = results.findIndex((r) => r.status === "rejected");
  assert.ok(firstRejected > 0, `first rejected save: ${firstRejected}`);
  for (let k = 0; k < results.length; k++) {
    const r = results[k]!;
    if (k < firstRejected) assert.equal(r.status, "fulfilled", `save ${k}`);
    else {
      assert.equal(r.status, "rejected", `save ${k}`);
      assert.ok((r as PromiseRejectedResult).reason instanceof WalIoError);
    }
  }
  assert.deepEqual(order, [...Array(firstRejected).keys()]);
  clearAllFailpoints();
  await assert.rejects(wal.save(undefined, entries(1000, 1)), WalIoError);
  await wal.close();
  // what was acknowledged reads back (a failed batch may or may not have reached the file)
  const r = await WAL.read(d.walDir);
  const acked = 3 + 3 * firstRejected;
  assert.ok(r.entries.length >= acked, `${r.entries.length} entries read, ${acked} acknowledged`);
});

test("setSyncWriteMaxEntries changes which batches block; a batch over SYNC_WRITE_MAX_BYTES never does", async (t) => {
  const d = tempDataDir();
  t.after(d.cleanup);
  // a fast-disk bound no write here can miss, so only the entry and byte limits decide
  const wal = await WAL.create(d.walDir, Buffer.from("m"), {
    syncWriteMaxEntries: 1,
    syncWriteMaxLastSyncMs: 60_000,
  });
  await wal.save({ term: 1, vote: 1n, commit: 0 }, entries(1, 4));
  assert.equal(wal.stats.blockingWrites, 0, "4 entries over a limit of 1: thread pool");
  wal.setSyncWriteMaxEntries(8);
  await wal.save(undefined, entries(5, 4));
  assert.equal(wal.stats.blockingWrites, 1, "4 entries within 8: blocking calls");
  const big = Math.ceil(SYNC_WRITE_MAX_BYTES / 4) + 1;
  await wal.save(undefined, entries(9, 4, big));
  assert.equal(wal.stats.blockingWrites, 1, "over SYNC_WRITE_MAX_BYTES: thread pool");
  assert.throws(() => wal.setSyncWriteMaxEntries(-1), WalInvalidArgumentError);
  assert.throws(() => wal.setSyncWriteMaxEntries(1.5), WalInvalidArgumentError);
  await wal.close();
  const r = await WAL.read(d.walDir);
  assert.equal(r.entries.length, 12);
});
