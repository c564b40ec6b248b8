// Users, roles, permissions and the enabled flag live in the db file's auth buckets (etcd's
// auth, authUsers, authRoles): `etcdctl snapshot save` from etcd-ts, `snapshot restore`, and real
// etcd 3.4 enforces them; the reverse from real etcd to etcd-ts; and a restart of etcd-ts from its
// own db snapshot plus WAL tail (--snapshot-count 5) keeps them.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { etcdctl, freePort, startMember, type Member, type Target } from "../helpers/server.js";

const root = ["--user", "root:rootpw"];
const reader = ["--user", "reader:rp"];

describe("auth state in snapshots and across restarts", { timeout: 180_000 }, () => {
  const members: Member[] = [];
  const dir = mkdtempSync(join(tmpdir(), "auth-snap-"));
  after(async () => {
    await Promise.all(members.map((m) => m.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  async function ok(m: Member, args: string[]): Promise<string> {
    const r = await etcdctl(args, { member: m });
    assert.equal(r.code, 0, `${m.target}: etcdctl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  }
  async function fails(m: Member, args: string[], re: RegExp): Promise<void> {
    const r = await etcdctl(args, { member: m });
    assert.notEqual(r.code, 0, `${m.target}: etcdctl ${args.join(" ")} should fail`);
    assert.match(r.stderr, re, `${m.target}: etcdctl ${args.join(" ")}`);
  }

  /** root, a role reading /r/ and a user holding it; auth on; two keys. */
  async function setUp(m: Member): Promise<void> {
    await ok(m, ["user", "add", "root", "--new-user-password=rootpw"]);
    await ok(m, ["role", "add", "root"]);
    await ok(m, ["user", "grant-role", "root", "root"]);
    await ok(m, ["role", "add", "readers"]);
    await ok(m, ["role", "grant-permission", "readers", "read", "/r/", "--prefix"]);
    await ok(m, ["user", "add", "reader", "--new-user-password=rp"]);
    await ok(m, ["user", "grant-role", "reader", "readers"]);
    await ok(m, ["auth", "enable"]);
    await ok(m, [...root, "put", "/r/a", "1"]);
    await ok(m, [...root, "put", "/secret", "2"]);
  }

  /** What setUp made is in force on `m`. */
  async function enforced(m: Member): Promise<void> {
    await fails(m, ["get", "/r/a"], /user name is empty/);
    assert.equal(await ok(m, [...reader, "get", "/r/a", "--print-value-only"]), "1\n");
    await fails(m, [...reader, "get", "/secret"], /permission denied/);
    await fails(m, [...reader, "put", "/r/a", "x"], /permission denied/);
    await fails(m, ["--user", "reader:wrong", "get", "/r/a"], /authentication failed/);
    assert.equal(await ok(m, [...root, "get", "/secret", "--print-value-only"]), "2\n");
    assert.match(
      await ok(m, [...root, "role", "get", "readers"]),
      /\[\/r\/, \/r0\) \(prefix \/r\/\)/,
    );
    assert.equal(await ok(m, [...root, "user", "list"]), "reader\nroot\n");
  }

  async function snapshotInto(from: Member, to: Target, name: string): Promise<Member> {
    const file = join(dir, `${name}.db`);
    await ok(from, [...root, "snapshot", "save", file]);
    const dataDir = join(dir, name);
    const peerUrl = `http://127.0.0.1:${await freePort()}`;
    const r = await etcdctl(
      [
        "snapshot",
        "restore",
        file,
        "--name",
        name,
        "--data-dir",
        dataDir,
        "--initial-cluster",
        `${name}=${peerUrl}`,
        "--initial-advertise-peer-urls",
        peerUrl,
      ],
      { bare: true },
    );
    assert.equal(r.code, 0, r.stderr);
    const m = await startMember({ name, dataDir, target: to });
    members.push(m);
    return m;
  }

  test("etcd-ts → snapshot restore → real etcd 3.4 enforces the same users and roles", async () => {
    const ours = await startMember({ name: "auth-ours", extraArgs: ["--bcrypt-cost", "4"] });
    members.push(ours);
    await setUp(ours);
    await enforced(ours);
    await enforced(await snapshotInto(ours, "etcd", "to-etcd"));
  });

  test("real etcd 3.4 → snapshot restore → etcd-ts enforces them", async () => {
    const real = await startMember({
      name: "auth-real",
      target: "etcd",
      extraArgs: ["--bcrypt-cost", "4"],
    });
    members.push(real);
    await setUp(real);
    await enforced(await snapshotInto(real, "etcd-ts", "to-ours"));
  });

  test("a restart from the db snapshot and the WAL tail keeps auth (also after kill -9)", async () => {
    const m = await startMember({
      name: "auth-restart",
      extraArgs: ["--snapshot-count", "5", "--bcrypt-cost", "4"],
    });
    members.push(m);
    await setUp(m);
    await m.restart();
    await enforced(m);
    await ok(m, [...root, "role", "revoke-permission", "readers", "/r/", "--prefix"]);
    await m.kill9();
    await m.restart();
    await fails(m, [...reader, "get", "/r/a"], /permission denied/);
  });
});
