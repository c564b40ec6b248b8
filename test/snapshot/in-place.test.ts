// Snapshots that extend the db file in place (lib/server/snapshotter.ts, lib/btree's in-place
// commits): after the first snapshot writes the whole db, the next ones write only the new
// records' leaves and the pages above them, then a new meta, as a bbolt commit does. A real
// client reads every value back (some values span several pages), etcd's own bbolt reads the
// file (`etcdctl snapshot status` on a copy), Status reports the freed pages as not in use, and
// a member killed with SIGKILL comes back with every value from the file, and its first snapshot
// after the restart extends the file it loaded. A compaction makes the next snapshot a whole
// rewrite again.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BoltFile } from "../../lib/btree/index.js";
import {
  endpointDbSizes as status,
  etcdctl,
  inBatches,
  metricValue as metric,
  prng,
  startMember,
  testSeed,
  waitFor,
  type Member,
} from "../helpers/server.js";
import { assertServesLatest, closeClient, newClient } from "../helpers/client.js";

const SNAPSHOT_COUNT = 40;
const seed = testSeed();
const rand = prng(seed);

/** A value for write `n` of `key`: empty, short, or up to ~9 KiB (two pages and more), seeded. */
function valueOf(key: string, n: number): string {
  const r = rand();
  const len = r < 0.05 ? 0 : Math.floor(rand() * (r < 0.2 ? 9000 : 300));
  return `${key}@${n}:`.padEnd(len, String.fromCharCode(97 + (n % 26)));
}

describe(`snapshots extend the db file in place (SEED=${seed})`, { timeout: 120_000 }, () => {
  let m: Member;
  const latest = new Map<string, string>();
  let writes = 0;

  before(async () => {
    m = await startMember({
      name: "inplace",
      extraArgs: ["--snapshot-count", String(SNAPSHOT_COUNT)],
    });
  });
  after(async () => {
    await m?.close();
  });

  async function putSome(count: number): Promise<void> {
    const client = newClient(m);
    try {
      await inBatches(count, 8, async () => {
        const key = `ip/${String(Math.floor(rand() * 120)).padStart(3, "0")}`;
        const value = valueOf(key, ++writes);
        latest.set(key, value);
        await client.put(key).value(value).exec();
      });
    } finally {
      closeClient(client);
    }
  }

  function checkAll(why: string): Promise<void> {
    return assertServesLatest(m, "ip/", latest, why, seed);
  }

  test("later snapshots write only what changed, every value reads back, bbolt reads the file", async () => {
    // values written concurrently: some land in the same batch as others
    await putSome(SNAPSHOT_COUNT + 5);
    await waitFor(
      "the first snapshot (a whole db file)",
      async () => (await metric(m, "etcd_debugging_snap_save_total_duration_seconds_count")) >= 1,
      20_000,
    );
    assert.equal(await metric(m, "etcd_ts_snapshot_db_in_place_total"), 0);
    for (let round = 1; round <= 4; round++) {
      await putSome(SNAPSHOT_COUNT + 5);
      await waitFor(
        `in-place snapshot ${round}`,
        async () => (await metric(m, "etcd_ts_snapshot_db_in_place_total")) >= round,
        20_000,
      );
      await checkAll(`after in-place snapshot ${round}`);
    }
    const written = await metric(m, "etcd_ts_snapshot_db_written_bytes_total");
    const st = await status(m);
    // five whole rewrites would have written at least 5 files of the current size minus growth
    assert.ok(written < 3 * st.dbSize, `db bytes written ${written} against size ${st.dbSize}`);
    assert.ok(st.dbSizeInUse <= st.dbSize, `in use ${st.dbSizeInUse} of ${st.dbSize}`);

    // no snapshot runs now (no puts): copy the file and let bbolt (etcdctl) and ours read it
    const dir = mkdtempSync(join(tmpdir(), "inplace-"));
    try {
      const copy = join(dir, "db");
      copyFileSync(join(m.dataDir, "member", "snap", "db"), copy);
      const f = BoltFile.open(readFileSync(copy));
      f.check();
      assert.ok(f.meta.txid > 2, `the meta in use is an in-place commit's: txid ${f.meta.txid}`);
      const r = await etcdctl(["snapshot", "status", copy, "-w", "json"]);
      assert.equal(r.code, 0, r.stderr);
      const s = JSON.parse(r.stdout) as { totalKey: number; totalSize: number };
      assert.equal(s.totalSize, st.dbSize, "bbolt's size of the file");
      // bbolt's count is every top-level bucket's entries: the same as ours
      let entries = 0;
      for (const [, b] of f.buckets()) for (const _ of b.entries()) entries++;
      assert.equal(s.totalKey, entries, "bbolt and BoltFile count the same entries");
      assert.ok(entries > 4 * SNAPSHOT_COUNT, `${entries} entries`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("SIGKILL and restart: every value from the extended file and the WAL", async () => {
    await putSome(10);
    await m.kill9();
    await m.restart();
    await checkAll("after a restart");
    // Status counts the file's free pages from the start, as etcd's bbolt does when it opens a
    // file without a freelist page (before any snapshot of this run replaced those figures)
    const snapshots = "etcd_debugging_snap_save_total_duration_seconds_count";
    const st = await status(m);
    if ((await metric(m, snapshots)) === 0) {
      assert.ok(
        st.dbSizeInUse < st.dbSize,
        `in use ${st.dbSizeInUse} of ${st.dbSize} after a restart`,
      );
    }
  });

  test("after a restart the first snapshot extends the file the member started from", async () => {
    // the member runs since the restart above: every snapshot it takes extends the loaded file
    const snapshots = "etcd_debugging_snap_save_total_duration_seconds_count";
    const before = await metric(m, snapshots);
    const sizeBefore = (await status(m)).dbSize;
    await putSome(SNAPSHOT_COUNT + 5);
    await waitFor(
      "a snapshot since the restart",
      async () => (await metric(m, snapshots)) > before,
      20_000,
    );
    assert.equal(
      await metric(m, "etcd_ts_snapshot_db_in_place_total"),
      await metric(m, snapshots),
      "every snapshot since the restart extended the file, the first one included",
    );
    const written = await metric(m, "etcd_ts_snapshot_db_written_bytes_total");
    assert.ok(written < sizeBefore, `wrote ${written} bytes of a ${sizeBefore}-byte db`);
    await checkAll("after the first snapshot since the restart");
    const dir = mkdtempSync(join(tmpdir(), "inplace-"));
    try {
      const copy = join(dir, "db");
      copyFileSync(join(m.dataDir, "member", "snap", "db"), copy);
      BoltFile.open(readFileSync(copy)).check();
      const r = await etcdctl(["snapshot", "status", copy, "-w", "json"]);
      assert.equal(r.code, 0, r.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // and once more through a SIGKILL: the file extended after the restart loads again
    await m.kill9();
    await m.restart();
    await checkAll("after a second restart");
  });

  test("after a compaction the next snapshot rewrites the whole file, then extends it again", async () => {
    const client = newClient(m);
    let rev: number;
    try {
      rev = Number((await client.get("ip/000").exec()).header.revision);
    } finally {
      closeClient(client);
    }
    const c = await etcdctl(["compact", String(rev), "--physical"], { member: m });
    assert.equal(c.code, 0, c.stderr);
    const inPlaceBefore = await metric(m, "etcd_ts_snapshot_db_in_place_total");
    const savesBefore = await metric(m, "etcd_debugging_snap_save_total_duration_seconds_count");
    await putSome(SNAPSHOT_COUNT + 5);
    await waitFor(
      "a snapshot after the compaction",
      async () =>
        (await metric(m, "etcd_debugging_snap_save_total_duration_seconds_count")) > savesBefore,
      20_000,
    );
    assert.equal(
      await metric(m, "etcd_ts_snapshot_db_in_place_total"),
      inPlaceBefore,
      "the first snapshot after a compaction is a whole rewrite",
    );
    await putSome(SNAPSHOT_COUNT + 5);
    await waitFor(
      "an in-place snapshot again",
      async () => (await metric(m, "etcd_ts_snapshot_db_in_place_total")) > inPlaceBefore,
      20_000,
    );
    await checkAll("after the compaction and two snapshots");
  });
});
