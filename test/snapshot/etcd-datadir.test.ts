// Data moves both ways between real etcd 3.4 and etcd-ts (issue 13): a data dir real etcd wrote
// (its live db, .snap files with v2 store data, its WAL with v2 member-attribute and cluster-version
// entries) starts as etcd-ts; so does a dir `etcdctl snapshot restore` made from a real etcd
// snapshot; and real etcd starts from a dir etcd-ts wrote after periodic snapshots and WAL release.
// Each side serves the same keys, revisions, leases and compaction revision (etcdctl get -w json).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  etcdctl,
  metricValue,
  repoRoot,
  startMember,
  waitFor,
  type Member,
  type MemberOptions,
} from "../helpers/server.js";
import { closeClient, newClient } from "../helpers/client.js";

const SNAPSHOT_COUNT = 20;

async function ctl(member: Member, args: string[]): Promise<string> {
  const r = await etcdctl(args, { member, timeoutMs: 30_000 });
  assert.equal(r.code, 0, `etcdctl ${args.join(" ")} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** What a member serves: every kv with its revisions, the store revision, leases and their keys. */
interface Served {
  revision: string;
  kvs: unknown;
  leases: Record<string, string[]>;
  compactedError: string;
}

async function served(member: Member, compactedRev: number): Promise<Served> {
  const get = JSON.parse(await ctl(member, ["get", "", "--from-key", "-w", "json"])) as {
    header: { revision: number };
    kvs?: unknown[];
  };
  const leases: Record<string, string[]> = {};
  const list = await ctl(member, ["lease", "list"]);
  for (const id of list
    .split("\n")
    .slice(1)
    .map((l) => l.trim())
    .filter((l) => l !== "")) {
    const ttl = await ctl(member, ["lease", "timetolive", id, "--keys"]);
    leases[id] = (/attached keys \[(.*)\]/.exec(ttl)?.[1] ?? "").split(" ").sort();
  }
  const old = await etcdctl(["get", "k", "--rev", String(compactedRev - 1)], { member });
  return {
    revision: String(get.header.revision),
    kvs: get.kvs ?? [],
    leases,
    compactedError: old.stderr.trim().replace(/^\{.*\}\s*/s, ""),
  };
}

/** Puts, a delete, a lease with a key, a compaction, then more puts past a few snapshot counts. */
async function populate(member: Member, puts: number): Promise<{ compactRev: number }> {
  await ctl(member, ["put", "k", "v1"]);
  await ctl(member, ["put", "gone", "x"]);
  await ctl(member, ["del", "gone"]);
  const grant = await ctl(member, ["lease", "grant", "900"]);
  const id = /lease ([0-9a-f]+) granted/.exec(grant)?.[1];
  assert.ok(id !== undefined, grant);
  await ctl(member, ["put", "--lease=" + id, "leased", "yes"]);
  await ctl(member, ["put", "k", "v2"]);
  const compactRev = 5;
  await ctl(member, ["compact", String(compactRev)]);
  const client = newClient(member);
  try {
    for (let i = 0; i < puts; i++) {
      await client
        .put(`bulk/${String(i % 40).padStart(3, "0")}`)
        .value(`value-${i}`)
        .exec();
    }
  } finally {
    await closeClient(client);
  }
  return { compactRev };
}

describe("etcd 3.4 and etcd-ts data dirs, both ways", { timeout: 240_000 }, () => {
  let dir: string;
  const members: Member[] = [];

  async function start(opts: MemberOptions): Promise<Member> {
    const m = await startMember(opts);
    members.push(m);
    return m;
  }

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "etcd-datadir-"));
  });
  after(async () => {
    for (const m of members) await m.close();
    if (!process.env.KEEP_TEST_DIRS) rmSync(dir, { recursive: true, force: true });
  });

  test("a dir real etcd wrote (db, .snap files, WAL with v2 entries) starts as etcd-ts; so does its restored snapshot", async () => {
    const realDir = join(dir, "real");
    const real = await start({
      target: "etcd",
      name: "r1",
      dataDir: realDir,
      extraArgs: ["--snapshot-count", String(SNAPSHOT_COUNT)],
    });
    const { compactRev } = await populate(real, 3 * SNAPSHOT_COUNT);
    const want = await served(real, compactRev);
    assert.ok(want.compactedError.includes("required revision has been compacted"));
    await ctl(real, ["snapshot", "save", join(dir, "real.db")]);
    await real.stop();
    assert.ok(
      readdirSync(join(realDir, "member", "snap")).some((n) => n.endsWith(".snap")),
      "real etcd wrote .snap files",
    );

    // the same dir, copied, under etcd-ts
    const copy = join(dir, "real-as-ts");
    cpSync(realDir, copy, { recursive: true });
    const ours = await start({
      name: "r1",
      dataDir: copy,
      extraArgs: ["--snapshot-count", String(SNAPSHOT_COUNT)],
    });
    assert.deepEqual(await served(ours, compactRev), want);
    // and it keeps working: a write gets the next revision
    await ctl(ours, ["put", "after", "restart"]);
    const j = JSON.parse(await ctl(ours, ["get", "after", "-w", "json"])) as {
      kvs: { mod_revision: number }[];
    };
    assert.equal(String(j.kvs[0]!.mod_revision), String(Number(want.revision) + 1));
    // its first snapshot extends the db file real etcd wrote (bbolt keeps no freelist page in it),
    // and real etcd opens that file again
    const client = newClient(ours);
    try {
      for (let i = 0; i < 2 * SNAPSHOT_COUNT; i++) {
        await client
          .put(`more/${String(i).padStart(3, "0")}`)
          .value(`more-${i}`)
          .exec();
      }
    } finally {
      await closeClient(client);
    }
    const snapshots = "etcd_debugging_snap_save_total_duration_seconds_count";
    await waitFor("a snapshot by etcd-ts", async () => (await metricValue(ours, snapshots)) >= 1);
    assert.equal(
      await metricValue(ours, "etcd_ts_snapshot_db_in_place_total"),
      await metricValue(ours, snapshots),
      "every snapshot extended real etcd's db file in place, the first one included",
    );
    const wantAfter = await served(ours, compactRev);
    await ours.stop();
    const back = join(dir, "real-ts-real");
    cpSync(copy, back, { recursive: true });
    const realAgain = await start({ target: "etcd", name: "r1", dataDir: back });
    assert.deepEqual(await served(realAgain, compactRev), wantAfter);
    await realAgain.stop();

    // etcdctl snapshot restore of the real etcd's snapshot, under etcd-ts
    const restored = join(dir, "restored");
    const r = await etcdctl([
      "snapshot",
      "restore",
      join(dir, "real.db"),
      "--data-dir",
      restored,
      "--name",
      "r1",
      "--initial-cluster",
      "r1=http://127.0.0.1:2380",
      "--initial-advertise-peer-urls",
      "http://127.0.0.1:2380",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const fromRestore = await start({ name: "r1", dataDir: restored });
    assert.deepEqual(await served(fromRestore, compactRev), want);
    await fromRestore.stop();
  });

  test("the WAL-only dir of the etcd 3.4 fixture replays (v2 Request entries applied as etcd does)", async () => {
    const d = join(dir, "fixture");
    mkdirSync(join(d, "member", "wal"), { recursive: true });
    cpSync(
      join(repoRoot(), "test", "fixtures", "etcd-3.4-wal", "0000000000000000-0000000000000000.wal"),
      join(d, "member", "wal", "0000000000000000-0000000000000000.wal"),
    );
    const m = await start({ name: "fixture", dataDir: d });
    const j = JSON.parse(await ctl(m, ["get", "fixture-key", "--prefix", "-w", "json"])) as {
      kvs: { key: string; value: string }[];
    };
    assert.deepEqual(
      j.kvs.map((kv) => [
        Buffer.from(kv.key, "base64").toString(),
        Buffer.from(kv.value, "base64").toString(),
      ]),
      [["fixture-key-1", "value-1b"]],
    );
    const list = await ctl(m, ["member", "list"]);
    assert.match(
      list,
      /, started, fixture, /,
      "the member's name comes from its v2 attributes entry",
    );
    await m.stop();
  });

  test("real etcd starts from a young etcd-ts dir (bootstrap ConfChange contexts as etcd's JSON)", async () => {
    const d = join(dir, "young");
    const ours = await start({ name: "y1", dataDir: d });
    await ctl(ours, ["put", "young", "dir"]);
    await ctl(ours, ["del", "nothing"]);
    const want = await served(ours, 1);
    await ours.stop();
    const real = await start({ target: "etcd", name: "y1", dataDir: d });
    assert.deepEqual(await served(real, 1), want);
    await real.stop();
  });

  test("real etcd starts from a dir etcd-ts wrote after snapshots and WAL release", async () => {
    const tsDir = join(dir, "ts");
    const ours = await start({
      name: "t1",
      dataDir: tsDir,
      extraArgs: [
        "--snapshot-count",
        String(SNAPSHOT_COUNT),
        "--max-snapshots",
        "2",
        "--max-wals",
        "2",
        "--experimental-wal-segment-size-bytes",
        "8192",
      ],
    });
    const { compactRev } = await populate(ours, 12 * SNAPSHOT_COUNT);
    const want = await served(ours, compactRev);
    // the db file real etcd opens below was extended in place by later snapshots (bbolt commits)
    const inPlace = await metricValue(ours, "etcd_ts_snapshot_db_in_place_total");
    assert.ok(inPlace > 0, "snapshots extended the db in place");
    await ours.stop();
    const wals = readdirSync(join(tsDir, "member", "wal")).filter((n) => n.endsWith(".wal"));
    const snaps = readdirSync(join(tsDir, "member", "snap")).filter((n) => n.endsWith(".snap"));
    assert.ok(wals.length <= 3, `WAL segments released and purged: ${wals.join(" ")}`);
    assert.ok(!wals.includes("0000000000000000-0000000000000000.wal"), "the first segment is gone");
    assert.equal(snaps.length, 2, `--max-snapshots 2: ${snaps.join(" ")}`);

    const copy = join(dir, "ts-as-real");
    cpSync(tsDir, copy, { recursive: true });
    const real = await start({ target: "etcd", name: "t1", dataDir: copy });
    assert.deepEqual(await served(real, compactRev), want);
    await real.stop();

    // etcd-ts itself restarts from its db and the WAL tail
    await ours.restart();
    assert.deepEqual(await served(ours, compactRev), want);
    assert.match(ours.logTail(20_000), /restarting member from db and WAL/);
    await ours.stop();
  });
});
