// Watch service through the `etcd3` npm client: key and prefix watchers, put and delete events,
// start revision in the past, prev_kv, filters, cancel, several watchers on one stream.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Etcd3, IKeyValue, Watcher } from "etcd3";
import { startMember, waitFor, sleep, within, type Member } from "../helpers/server.js";
import { closeClient, newClient } from "../helpers/client.js";

/** One observed watch event, flattened for comparison. */
interface Seen {
  type: "put" | "delete";
  key: string;
  value: string;
  modRevision: number;
  prevValue?: string;
}

/** Bound on events a recorder keeps; tests write far fewer. */
const MAX_RECORDED_EVENTS = 10_000;

/** Records a watcher's put/delete events in arrival order. */
function record(w: Watcher): Seen[] {
  const seen: Seen[] = [];
  const push = (type: "put" | "delete") => (kv: IKeyValue, prev?: IKeyValue) => {
    if (seen.length >= MAX_RECORDED_EVENTS) return;
    const e: Seen = {
      type,
      key: kv.key.toString(),
      value: kv.value.toString(),
      modRevision: Number(kv.mod_revision),
    };
    if (prev) e.prevValue = prev.value.toString();
    seen.push(e);
  };
  w.on("put", push("put"));
  w.on("delete", push("delete"));
  return seen;
}

describe("etcd3 client: Watch", { timeout: 60_000 }, () => {
  let member: Member;
  let client: Etcd3;

  before(async () => {
    member = await startMember();
    client = newClient(member);
  });
  after(async () => {
    // Cancel whatever a failed test left open, so no reconnect timer keeps the process alive.
    await within(Promise.allSettled(opened.map((w) => w.cancel())), 2000);
    closeClient(client);
    await member?.close();
  });

  /** Watchers created by the tests, cancelled in `after` even when a test fails. */
  const opened: Watcher[] = [];
  const track = (w: Watcher): Watcher => {
    opened.push(w);
    return w;
  };

  test("a key watcher sees the put and the delete of that key only, with mod revisions", async () => {
    const w = track(await client.watch().key("w/k").create());
    const seen = record(w);
    const p = await client.put("w/k").value("v1").exec();
    await client.put("w/k2").value("other").exec();
    const d = await client.delete().key("w/k").exec();
    await waitFor("2 events", () => seen.length >= 2);
    await sleep(100);
    assert.deepEqual(seen, [
      { type: "put", key: "w/k", value: "v1", modRevision: Number(p.header.revision) },
      { type: "delete", key: "w/k", value: "", modRevision: Number(d.header.revision) },
    ]);
    await w.cancel();
  });

  test("a prefix watcher sees every key under the prefix and nothing else", async () => {
    const w = track(await client.watch().prefix("wp/").create());
    const seen = record(w);
    await client.put("wp/a").value("1").exec();
    await client.put("wq").value("x").exec();
    await client.put("wp/b").value("2").exec();
    await client.delete().prefix("wp/").exec();
    await waitFor("4 events", () => seen.length >= 4);
    await sleep(100);
    assert.deepEqual(
      seen.map((e) => `${e.type} ${e.key}`),
      ["put wp/a", "put wp/b", "delete wp/a", "delete wp/b"],
    );
    // The delete of two keys happens at one revision.
    assert.equal(seen[2]!.modRevision, seen[3]!.modRevision);
    await w.cancel();
  });

  test("a watcher with a start revision in the past replays history from that revision", async () => {
    const r1 = await client.put("wh/k").value("1").exec();
    await client.put("wh/k").value("2").exec();
    await client.delete().key("wh/k").exec();
    await client.put("wh/k").value("3").exec();
    const w = track(
      await client
        .watch()
        .key("wh/k")
        .startRevision(String(Number(r1.header.revision) + 1))
        .create(),
    );
    const seen = record(w);
    await waitFor("3 replayed events", () => seen.length >= 3);
    await client.put("wh/k").value("4").exec();
    await waitFor("live event", () => seen.length >= 4);
    assert.deepEqual(
      seen.map((e) => `${e.type}:${e.value}`),
      ["put:2", "delete:", "put:3", "put:4"],
    );
    for (let i = 1; i < seen.length; i++)
      assert.ok(seen[i]!.modRevision > seen[i - 1]!.modRevision);
    await w.cancel();
  });

  test("prev_kv on watch events carries the previous value", async () => {
    await client.put("wv/k").value("old").exec();
    const w = track(await client.watch().key("wv/k").withPreviousKV().create());
    const seen = record(w);
    await client.put("wv/k").value("new").exec();
    await client.delete().key("wv/k").exec();
    await waitFor("2 events", () => seen.length >= 2);
    assert.equal(seen[0]!.prevValue, "old");
    assert.equal(seen[1]!.prevValue, "new");
    await w.cancel();
  });

  // etcd3 1.1.2's ignore() is an alias of only() (a client bug), so the filters are set with only():
  // only("put") sends NODELETE, only("delete") sends NOPUT.
  test("filters: NODELETE drops delete events, NOPUT drops put events", async () => {
    const noDel = track(await client.watch().prefix("wf/").only("put").create());
    const onlyDel = track(await client.watch().prefix("wf/").only("delete").create());
    const a = record(noDel);
    const b = record(onlyDel);
    await client.put("wf/a").value("1").exec();
    await client.delete().key("wf/a").exec();
    await client.put("wf/b").value("2").exec();
    await waitFor("events", () => a.length >= 2 && b.length >= 1);
    await sleep(100);
    assert.deepEqual(
      a.map((e) => `${e.type} ${e.key}`),
      ["put wf/a", "put wf/b"],
    );
    assert.deepEqual(
      b.map((e) => `${e.type} ${e.key}`),
      ["delete wf/a"],
    );
    await noDel.cancel();
    await onlyDel.cancel();
  });

  test("several watchers on one stream each get their own events; cancel stops one only", async () => {
    const ws = (
      await Promise.all([
        client.watch().key("wm/1").create(),
        client.watch().key("wm/2").create(),
        client.watch().prefix("wm/").create(),
      ])
    ).map(track);
    const seen = ws.map(record);
    await client.put("wm/1").value("a").exec();
    await client.put("wm/2").value("b").exec();
    await waitFor(
      "events on all watchers",
      () => seen[0]!.length >= 1 && seen[1]!.length >= 1 && seen[2]!.length >= 2,
    );
    assert.deepEqual(
      seen[0]!.map((e) => e.key),
      ["wm/1"],
    );
    assert.deepEqual(
      seen[1]!.map((e) => e.key),
      ["wm/2"],
    );
    assert.deepEqual(
      seen[2]!.map((e) => e.key),
      ["wm/1", "wm/2"],
    );

    await ws[0]!.cancel();
    await client.put("wm/1").value("c").exec();
    await client.put("wm/2").value("d").exec();
    await waitFor("events after cancel", () => seen[1]!.length >= 2 && seen[2]!.length >= 4);
    await sleep(200);
    assert.equal(seen[0]!.length, 1, "a cancelled watcher gets no more events");
    assert.deepEqual(
      seen[2]!.map((e) => e.value),
      ["a", "b", "c", "d"],
    );
    await ws[1]!.cancel();
    await ws[2]!.cancel();
  });

  test("a burst of writes reaches the watcher complete and in order", async () => {
    const n = 500;
    const w = track(await client.watch().prefix("wb/").create());
    const seen = record(w);
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < n; i++)
      writes.push(
        client
          .put(`wb/${i % 37}`)
          .value(String(i))
          .exec(),
      );
    await Promise.all(writes);
    await waitFor(`${n} events`, () => seen.length >= n, 15_000);
    for (let i = 1; i < seen.length; i++)
      assert.ok(seen[i]!.modRevision > seen[i - 1]!.modRevision);
    assert.equal(seen.length, n);
    await w.cancel();
  });
  // Last in the file: it compacts the store.
  test("a watcher from a compacted revision is canceled by the member", async () => {
    const r1 = await client.put("wc/k").value("1").exec();
    const r2 = await client.put("wc/k").value("2").exec();
    await client.kv.compact({ revision: r2.header.revision });
    const w = track(await client.watch().key("wc/k").startRevision(r1.header.revision).create());
    // etcd answers created, then a response with canceled=true and compact_revision set; the
    // etcd3 client turns that into an 'error' event ("Watcher canceled: ...").
    const err = await within(new Promise<Error>((resolve) => w.once("error", resolve)), 10_000);
    assert.ok(err, "no cancel within 10 s");
    assert.match(err.message, /^Watcher canceled/);
  });
});
