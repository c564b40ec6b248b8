import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfChange } from "../../lib/proto/gen/raftpb/raft.js";
import { InternalRaftRequest } from "../../lib/proto/gen/etcdserverpb/raft_internal.js";
import { Metadata, Request } from "../../lib/proto/gen/etcdserverpb/etcdserver.js";
import { WAL } from "../../lib/wal/index.js";
import { decodeEntry, decodeHardState } from "../../lib/wal/decoder.js";
import { copyWalDir, listRecords, tempDataDir } from "./harness.js";

// dist/test/wal -> repo root
const fixtureDir = join(
  fileURLToPath(new URL("../../../", import.meta.url)),
  "test",
  "fixtures",
  "etcd-3.4-wal",
);
const segmentName = "0000000000000000-0000000000000000.wal";

describe("WAL written by real etcd 3.4", () => {
  test("WAL.open reads etcd's segment: metadata, hardState, and entries that decode as etcd requests", async () => {
    const c = copyWalDir(fixtureDir);
    try {
      const r = await WAL.open(c.walDir);
      const meta = Metadata.fromBinary(r.metadata);
      assert.notEqual(meta.nodeID, 0n);
      assert.notEqual(meta.clusterID, 0n);
      assert.deepEqual(
        r.entries.map((e) => [e.index, e.term, e.type]),
        [
          [1, 1, 1],
          [2, 2, 0],
          [3, 2, 0],
          [4, 2, 0],
          [5, 2, 0],
          [6, 2, 0],
          [7, 2, 0],
          [8, 2, 0],
        ],
      );
      // Entry 1: the bootstrap ConfChange adding this member.
      const cc = ConfChange.fromBinary(r.entries[0]!.data);
      assert.equal(cc.nodeID, meta.nodeID);
      // Entry 2: the new leader's empty entry (no Data field at all, as raft writes it).
      assert.equal(r.entries[1]!.data.length, 0);
      // Entries 3-4: the member-attributes and cluster-version PUTs, which etcd 3.4 still writes as
      // bare v2 etcdserverpb.Request messages; 5-8: the client requests as InternalRaftRequest.
      const v2 = r.entries.slice(2, 4).map((e) => Request.fromBinary(e.data));
      assert.deepEqual(
        v2.map((q) => q.method),
        ["PUT", "PUT"],
      );
      assert.match(v2[0]!.path, /^\/0\/members\/[0-9a-f]+\/attributes$/);
      assert.equal(v2[1]!.path, "/0/version");
      const reqs = r.entries.slice(4).map((e) => InternalRaftRequest.fromBinary(e.data));
      const text = (b: Uint8Array | undefined) => Buffer.from(b ?? []).toString();
      assert.deepEqual(
        reqs.map((q) =>
          q.put ? ["put", text(q.put.key), text(q.put.value)] : ["del", text(q.deleteRange?.key)],
        ),
        [
          ["put", "fixture-key-1", "value-1"],
          ["put", "fixture-key-2", "value-2"],
          ["put", "fixture-key-1", "value-1b"],
          ["del", "fixture-key-2"],
        ],
      );
      assert.equal(r.hardState.term, 2);
      assert.equal(r.hardState.commit, 8);
      assert.equal(r.hardState.vote, meta.nodeID);
      // Appending to etcd's segment continues its CRC chain.
      await r.wal.save({ ...r.hardState, commit: 9 }, [
        { type: 0, term: 2, index: 9, data: Buffer.from("ours") } as never,
      ]);
      await r.wal.close();
      const r2 = await WAL.open(c.walDir);
      assert.equal(r2.entries.length, 9);
      assert.equal(Buffer.from(r2.entries[8]!.data).toString(), "ours");
      await r2.wal.close();
    } finally {
      c.cleanup();
    }
  });

  test("re-encoding etcd's records with lib/wal's writer gives etcd's bytes exactly", async () => {
    const original = readFileSync(join(fixtureDir, segmentName));
    const recs = await listRecords(join(fixtureDir, segmentName));
    assert.deepEqual(
      recs.slice(0, 3).map((r) => r.type),
      [4, 1, 5],
    );
    const t = tempDataDir();
    try {
      const wal = await WAL.create(t.walDir, recs[1]!.data, { segmentSizeBytes: 1 << 20 });
      for (const rec of recs.slice(3)) {
        if (rec.type === 2) await wal.save(undefined, [decodeEntry(rec.data)]);
        else if (rec.type === 3) await wal.save(decodeHardState(rec.data), []);
        else assert.fail(`unexpected record type ${rec.type}`);
      }
      await wal.close();
      const ours = readFileSync(join(t.walDir, segmentName));
      assert.equal(ours.length, 1 << 20, "preallocated");
      assert.ok(
        ours.subarray(original.length).every((b) => b === 0),
        "zeros after the last record",
      );
      assert.ok(
        ours.subarray(0, original.length).equals(original),
        "byte-identical to etcd's segment",
      );
    } finally {
      t.cleanup();
    }
  });

  test("the fixture directory holds only the segment and its README", () => {
    assert.deepEqual(readdirSync(fixtureDir).sort(), [segmentName, "README.md"].sort());
  });
});
