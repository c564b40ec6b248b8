/**
 * Golden test against real etcd 3.4.23: the same writes and watch requests were sent to a fresh
 * etcd over gRPC (@grpc/grpc-js with our generated WatchClient/KVClient; one request every
 * 100 ms) and every WatchResponse it sent was recorded, normalised as below (header revision,
 * watch id, created, canceled, compact_revision, cancel_reason, fragment, events as
 * [type, key, mod, create, version, value, prev value]). Our WatchStream must answer the same.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { MvccStore } from "../../lib/mvcc/index.js";
import { WatchRequest, type WatchResponse } from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { b, delReq, putReq } from "./helpers.js";

const etcdResponses = [
  '{"rev":5,"id":0,"cr":true,"ca":false,"comp":0,"why":"","frag":false,"ev":[]}',
  '{"rev":0,"id":0,"cr":false,"ca":true,"comp":3,"why":"","frag":false,"ev":[]}',
  '{"rev":5,"id":1,"cr":true,"ca":false,"comp":0,"why":"","frag":false,"ev":[]}',
  '{"rev":5,"id":1,"cr":false,"ca":false,"comp":0,"why":"","frag":false,"ev":[[0,"a",3,2,2,"2",null],[1,"a",5,0,0,"","2"]]}',
  '{"rev":5,"id":2,"cr":true,"ca":false,"comp":0,"why":"","frag":false,"ev":[]}',
  '{"rev":5,"id":-1,"cr":true,"ca":true,"comp":0,"why":"mvcc: watcher range is empty","frag":false,"ev":[]}',
  '{"rev":5,"id":5,"cr":true,"ca":false,"comp":0,"why":"","frag":false,"ev":[]}',
  '{"rev":5,"id":-1,"cr":true,"ca":true,"comp":0,"why":"mvcc: duplicate watch ID provided on the WatchStream","frag":false,"ev":[]}',
  '{"rev":5,"id":3,"cr":true,"ca":false,"comp":0,"why":"","frag":false,"ev":[]}',
  '{"rev":5,"id":-1,"cr":false,"ca":false,"comp":0,"why":"","frag":false,"ev":[]}',
  '{"rev":5,"id":1,"cr":false,"ca":true,"comp":0,"why":"","frag":false,"ev":[]}',
  '{"rev":7,"id":2,"cr":false,"ca":false,"comp":0,"why":"","frag":false,"ev":[[0,"c",7,7,1,"1",null]]}',
  '{"rev":8,"id":3,"cr":false,"ca":false,"comp":0,"why":"","frag":false,"ev":[[1,"c",8,0,0,"",null]]}',
  '{"rev":8,"id":2,"cr":false,"ca":false,"comp":0,"why":"","frag":false,"ev":[[1,"c",8,0,0,"",null]]}',
  '{"rev":9,"id":2,"cr":false,"ca":false,"comp":0,"why":"","frag":false,"ev":[[0,"b",9,4,2,"2",null]]}',
];

function norm(r: WatchResponse): string {
  return JSON.stringify({
    rev: r.header?.revision,
    id: Number(r.watchId),
    cr: r.created,
    ca: r.canceled,
    comp: r.compactRevision,
    why: r.cancelReason,
    frag: r.fragment,
    ev: r.events.map((e) => [
      e.type,
      Buffer.from(e.kv!.key).toString(),
      e.kv!.modRevision,
      e.kv!.createRevision,
      e.kv!.version,
      Buffer.from(e.kv!.value).toString(),
      e.prevKv ? Buffer.from(e.prevKv.value).toString() : null,
    ]),
  });
}

test("watch responses match real etcd 3.4.23 for creates, compacted start, bad creates, progress, cancel, events", () => {
  const store = new MvccStore();
  store.put(putReq("a", "1"));
  store.put(putReq("a", "2"));
  store.put(putReq("b", "1"));
  store.deleteRange(delReq("a"));
  store.compact(3);
  const got: string[] = [];
  const ws = store.newWatchStream({ send: (r) => (got.push(norm(r)), true) });
  const creates = [
    { key: b("a"), startRevision: 2 },
    { key: b("a"), startRevision: 3, prevKv: true },
    { key: b("b"), rangeEnd: Buffer.from([0]) },
    { key: b("b"), rangeEnd: b("a") },
    { key: b("x"), watchId: 5n },
    { key: b("x"), watchId: 5n },
    { key: b("c"), filters: [0] },
  ];
  for (const c of creates) {
    ws.handle(
      WatchRequest.create({
        requestUnion: { oneofKind: "createRequest", createRequest: c as never },
      }),
    );
  }
  ws.handle(
    WatchRequest.create({ requestUnion: { oneofKind: "progressRequest", progressRequest: {} } }),
  );
  for (const watchId of [1n, 99n]) {
    ws.handle(
      WatchRequest.create({
        requestUnion: { oneofKind: "cancelRequest", cancelRequest: { watchId } },
      }),
    );
  }
  store.put(putReq("a", "3"));
  store.put(putReq("c", "1"));
  store.deleteRange(delReq("c"));
  store.put(putReq("b", "2"));
  assert.deepEqual(got, etcdResponses);
});
