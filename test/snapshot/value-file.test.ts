// Values read from the db file (issue 13, lib/mvcc RecordLog "Values in a db file"): once a
// snapshot's db file is durable, the member reads the values it holds from it (one pread each)
// instead of keeping them in memory. A real client then reads every value back right after a
// snapshot, during a defragment, at old revisions across a compaction and two db generations,
// through the Snapshot RPC (etcdctl snapshot save, the file's key bucket checked record by
// record), and after a restart, where the records read their values from the db file loaded.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  etcdctl,
  inBatches,
  metricValue,
  prng,
  startMember,
  testSeed,
  waitFor,
  type Member,
} from "../helpers/server.js";
import { assertServesLatest, closeClient, newClient } from "../helpers/client.js";
import { parseEtcdDbFile } from "../../lib/server/db-file.js";
import { MvccStore } from "../../lib/mvcc/index.js";
import { RangeRequest } from "../../lib/proto/gen/etcdserverpb/rpc.js";

const KEYS = 150;
const SNAPSHOT_COUNT = 50;

const seed = testSeed();
const rand = prng(seed);

/** A value for `key` at write `n`: 0 to ~5 KiB (larger than a page sometimes), seeded. */
function valueOf(key: string, n: number): string {
  const len = rand() < 0.1 ? 0 : Math.floor(rand() * (rand() < 0.1 ? 5000 : 400));
  return `${key}@${n}:`.padEnd(len, String.fromCharCode(97 + (n % 26)));
}

/** Links of the process's open descriptors that name member/snap/db (a moved-over one: "(deleted)"). */
function openDbFiles(m: Member): string[] {
  const dir = `/proc/${m.pid}/fd`;
  const out: string[] = [];
  for (const fd of readdirSync(dir)) {
    try {
      const link = readlinkSync(join(dir, fd));
      if (link.startsWith(join(m.dataDir, "member", "snap", "db"))) out.push(link);
    } catch {
      // closed since the listing
    }
  }
  return out;
}

/** etcd_ts_mvcc_value_files: db files the member's records read their values from. */
function valueFiles(m: Member): Promise<number> {
  return metricValue(m, "etcd_ts_mvcc_value_files");
}

describe(`values read from the db file (SEED=${seed})`, { timeout: 120_000 }, () => {
  let m: Member;
  /** key -> its value at every revision it was written at */
  const history = new Map<string, Map<number, string>>();
  const latest = new Map<string, string>();

  before(async () => {
    m = await startMember({
      name: "valuefile",
      extraArgs: ["--snapshot-count", String(SNAPSHOT_COUNT)],
    });
  });
  after(async () => {
    await m?.close();
  });

  async function putAll(round: number): Promise<void> {
    const client = newClient(m);
    try {
      await inBatches(KEYS, 10, async (i) => {
        const key = `vf/${String(i).padStart(4, "0")}`;
        const value = valueOf(key, round);
        const r = await client.put(key).value(value).exec();
        const rev = Number(r.header.revision);
        if (!history.has(key)) history.set(key, new Map());
        history.get(key)!.set(rev, value);
        latest.set(key, value);
      });
    } finally {
      closeClient(client);
    }
  }

  function checkLatest(why: string): Promise<void> {
    return assertServesLatest(m, "vf/", latest, why, seed);
  }

  test("after a snapshot the member holds the db file open and serves every value from it", async () => {
    await putAll(1);
    await waitFor("a snapshot's db file held open", () => openDbFiles(m).length > 0, 20_000);
    assert.equal(await valueFiles(m), 1, "the records read their values from the db file");
    await checkLatest("after the first snapshot");
  });

  test("reads during a defragment and across a compaction and two db generations", async () => {
    await putAll(2);
    const client = newClient(m);
    try {
      const top = Number((await client.get("vf/0000").exec()).header.revision);
      let reads = 0;
      let reading = true;
      const reader = (async () => {
        while (reading) {
          await checkLatest(`during the defragment (read ${++reads})`);
        }
      })();
      const d = await etcdctl(["defrag"], { member: m });
      reading = false;
      await reader;
      assert.equal(d.code, 0, d.stderr);
      assert.ok(reads >= 1);
      await putAll(3);
      const c = await etcdctl(["compact", String(top)], { member: m });
      assert.equal(c.code, 0, c.stderr);
      await putAll(4);
      await waitFor(
        "another snapshot after the compaction",
        () => openDbFiles(m).length > 0,
        20_000,
      );
      await checkLatest("after the compaction");
      // every write after the compaction revision reads back at its revision (rounds 3 and 4:
      // the older ones in the first db generation, until the compaction, then the next)
      let checked = 0;
      for (const [key, revs] of history) {
        for (const [rev, value] of revs) {
          if (rev <= top) continue;
          assert.equal(await client.get(key).revision(rev).string(), value, `${key} at ${rev}`);
          checked++;
        }
      }
      assert.equal(checked, 2 * KEYS);
    } finally {
      closeClient(client);
    }
  });

  test("the Snapshot RPC streams every value while they are read from the db file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vf-snap-"));
    try {
      const file = join(dir, "snap.db");
      const s = await etcdctl(["snapshot", "save", file], { member: m });
      assert.equal(s.code, 0, s.stderr);
      const db = parseEtcdDbFile(readFileSync(file));
      const store = new MvccStore();
      store.restore(db.keyRecords(), db.compactRevision);
      const got = store.range(
        RangeRequest.create({ key: Buffer.from("vf/"), rangeEnd: Buffer.from("vf0") }),
      );
      assert.equal(got.kvs.length, latest.size);
      for (const kv of got.kvs) {
        assert.equal(Buffer.from(kv.value).toString(), latest.get(Buffer.from(kv.key).toString()));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a restart serves every value, read from the db file it started from", async () => {
    await m.restart();
    assert.equal(await valueFiles(m), 1, "the restored records read their values from the db");
    assert.ok(openDbFiles(m).length > 0);
    await checkLatest("after a restart");
    // and again after a kill -9, with writes after the restart in the WAL only
    await putAll(5);
    await m.kill9();
    await m.restart();
    await checkLatest("after a kill -9 and a restart");
  });
});
