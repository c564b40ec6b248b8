// etcd-ts-util snapshot status / snapshot restore / verify (issue 13): status prints what
// `etcdctl snapshot status` prints, in every format, for a real etcd snapshot and for an etcd-ts
// one; a restore (etcdctl's flags) makes a data dir that etcd-ts and real etcd 3.4 both start from,
// serving the snapshot's keys, lease and compaction; a bad hash is refused as etcdctl refuses it;
// verify passes a sound data dir and names what is wrong in a damaged one.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { etcdctl, repoRoot, run, startMember, type Member } from "../helpers/server.js";

function util(args: string[]) {
  return run(process.execPath, [join(repoRoot(), "dist", "tools", "etcd-ts-util.js"), ...args], {
    timeoutMs: 30_000,
  });
}

async function ctl(member: Member | undefined, args: string[]): Promise<string> {
  const r = await etcdctl(args, member === undefined ? { bare: true } : { member });
  assert.equal(r.code, 0, `etcdctl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

async function served(m: Member): Promise<string> {
  const j = JSON.parse(await ctl(m, ["get", "", "--from-key", "-w", "json"])) as {
    header: { revision: number };
    kvs: unknown[];
  };
  const leases = await ctl(m, ["lease", "list"]);
  const old = await etcdctl(["get", "a", "--rev", "2"], { member: m });
  return JSON.stringify({
    rev: j.header.revision,
    kvs: j.kvs,
    leases,
    compacted: /compacted/.test(old.stderr),
  });
}

describe("etcd-ts-util snapshot status / restore and verify", { timeout: 180_000 }, () => {
  let dir: string;
  let real: Member;
  let saved: string;
  let want: string;
  const members: Member[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "etcd-util-"));
    real = await startMember({ target: "etcd", name: "u1", dataDir: join(dir, "real") });
    members.push(real);
    for (let i = 0; i < 30; i++) await ctl(real, ["put", i % 2 ? "a" : `k${i}`, `v${i}`]);
    const grant = await ctl(real, ["lease", "grant", "900"]);
    const id = /lease ([0-9a-f]+) granted/.exec(grant)![1]!;
    await ctl(real, ["put", "--lease=" + id, "leased", "x"]);
    await ctl(real, ["compact", "10"]);
    want = await served(real);
    saved = join(dir, "saved.db");
    await ctl(real, ["snapshot", "save", saved]);
  });
  after(async () => {
    for (const m of members) await m.close();
    if (!process.env.KEEP_TEST_DIRS) rmSync(dir, { recursive: true, force: true });
  });

  test("snapshot status prints what etcdctl prints, in every format", async () => {
    await real.stop();
    const files = [saved, join(dir, "real", "member", "snap", "db")];
    for (const file of files) {
      for (const w of ["simple", "table", "json", "fields"]) {
        const theirs = await ctl(undefined, ["snapshot", "status", file, "-w", w]);
        const ours = await util(["snapshot", "status", file, "-w", w]);
        assert.equal(ours.code, 0, ours.stderr);
        assert.equal(ours.stdout, theirs, `${file} -w ${w}`);
      }
    }
  });

  test("snapshot restore makes a dir that etcd-ts and real etcd both serve", async () => {
    for (const target of ["etcd-ts", "etcd"] as const) {
      const d = join(dir, `restored-${target}`);
      const r = await util([
        "snapshot",
        "restore",
        saved,
        "--data-dir",
        d,
        "--name",
        "u1",
        "--initial-cluster",
        "u1=http://127.0.0.1:2380",
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:2380",
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /"msg":"restored snapshot"/);
      const v = await util(["verify", "--data-dir", d]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
      const m = await startMember({ target, name: "u1", dataDir: d });
      members.push(m);
      assert.equal(await served(m), want, `${target} on the restored dir`);
      await m.stop();
    }
  });

  test("restore refuses a bad hash, a missing hash and an existing data dir, as etcdctl", async () => {
    const bad = join(dir, "bad.db");
    const b = readFileSync(saved);
    b[100] ^= 0x01;
    writeFileSync(bad, b);
    const r1 = await util(["snapshot", "restore", bad, "--data-dir", join(dir, "x1")]);
    assert.equal(r1.code, 1);
    assert.match(r1.stderr, /expected sha256/);
    const db = join(dir, "real", "member", "snap", "db");
    const r2 = await util(["snapshot", "restore", db, "--data-dir", join(dir, "x2")]);
    assert.match(r2.stderr, /snapshot missing hash but --skip-hash-check=false/);
    const r3 = await util(["snapshot", "restore", saved, "--data-dir", join(dir, "real")]);
    assert.match(r3.stderr, /data-dir ".*real" exists/);
  });

  test("verify passes a sound data dir and names the damage in a broken one", async () => {
    const good = await util(["verify", "--data-dir", join(dir, "real"), "--progress"]);
    assert.equal(good.code, 0, good.stdout);
    assert.match(good.stdout, /^wal: ok/m);
    assert.match(good.stdout, /^db: ok/m);
    assert.match(good.stderr, /verifying/);
    const broken = join(dir, "broken");
    cpSync(join(dir, "real"), broken, { recursive: true });
    const db = join(broken, "member", "snap", "db");
    const bytes = readFileSync(db);
    bytes.writeUInt32LE(0, 16); // meta 0's magic
    bytes.writeUInt32LE(0, 4096 + 16); // meta 1's magic
    writeFileSync(db, bytes);
    const v = await util(["verify", "--data-dir", broken]);
    assert.equal(v.code, 2, v.stdout);
    assert.match(v.stdout, /FAILED db: .*member\/snap\/db: .*magic/);
  });
});
