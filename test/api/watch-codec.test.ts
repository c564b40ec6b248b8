import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeWatchResponse } from "../../lib/api/watch-codec.js";
import { WatchResponse } from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { Event, Event_EventType } from "../../lib/proto/gen/mvccpb/kv.js";

const seed = Number(process.env.SEED ?? Date.now() % 2 ** 31);

const kv = fc.record({
  key: fc.uint8Array({ maxLength: 20 }),
  createRevision: fc.nat(),
  modRevision: fc.nat(),
  version: fc.nat(1000),
  value: fc.uint8Array({ maxLength: 300 }),
  lease: fc.bigInt({ min: 0n, max: (1n << 63n) - 1n }),
});

const event = fc
  .record({
    type: fc.constantFrom(Event_EventType.PUT, Event_EventType.DELETE),
    kv,
    prevKv: fc.option(kv, { nil: undefined }),
  })
  .map((e) => Event.create(e));

const response = fc.record({
  header: fc.option(
    fc.record({
      clusterId: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      memberId: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      revision: fc.nat(),
      raftTerm: fc.nat(),
    }),
    { nil: undefined },
  ),
  watchId: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  created: fc.boolean(),
  canceled: fc.boolean(),
  compactRevision: fc.integer({ min: -1, max: 2 ** 40 }),
  cancelReason: fc.string({ maxLength: 40 }),
  fragment: fc.boolean(),
  events: fc.array(event, { maxLength: 6 }),
});

test("encodeWatchResponse is byte-identical to WatchResponse.toBinary", () => {
  try {
    fc.assert(
      fc.property(response, (r) => {
        const msg = WatchResponse.create(r);
        assert.deepEqual(
          Buffer.from(encodeWatchResponse(msg)),
          Buffer.from(WatchResponse.toBinary(msg)),
        );
        // the cached event bytes serve a second response with other header fields too
        msg.watchId = 7n;
        assert.deepEqual(
          Buffer.from(encodeWatchResponse(msg)),
          Buffer.from(WatchResponse.toBinary(msg)),
        );
      }),
      { seed, numRuns: 500 },
    );
  } catch (err) {
    console.error(`watch-codec property failed: SEED=${seed}`);
    throw err;
  }
});
