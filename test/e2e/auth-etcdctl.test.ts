// Auth with real etcdctl (3.4) against a spawned member: root, enable, --user logins, roles with
// key / prefix / from-key permissions, permission denied, root rules, a refused watch, disable.
// The expected texts are real etcd 3.4.23's (ETCD_TS_TARGET=etcd runs the same file against it).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { etcdctl, startMember, type Member } from "../helpers/server.js";

describe("auth with etcdctl", { timeout: 120_000 }, () => {
  let member: Member;
  const root = ["--user", "root:rootpw"];
  const u1 = ["--user", "u1:p1"];

  before(async () => {
    member = await startMember({ name: "auth-1", extraArgs: ["--bcrypt-cost", "4"] });
  });
  after(async () => {
    await member?.close();
  });

  async function ok(args: string[], input?: string): Promise<string> {
    const r = await etcdctl(args, { member, input });
    assert.equal(r.code, 0, `etcdctl ${args.join(" ")}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  }
  async function fails(args: string[]): Promise<string> {
    const r = await etcdctl(args, { member });
    assert.notEqual(r.code, 0, `etcdctl ${args.join(" ")} should fail: ${r.stdout}`);
    return (
      r.stderr.split("\n").filter((l) => l.startsWith("Error:") || l.includes("canceled"))[0] ??
      r.stderr
    );
  }

  test("enable is refused until root exists with the root role", async () => {
    assert.match(await fails(["auth", "enable"]), /Error: etcdserver: root user does not exist/);
    assert.equal(
      await ok(["user", "add", "root", "--new-user-password=rootpw"]),
      "User root created\n",
    );
    // etcdctl answers "root user does not have root role" by adding the role and granting it
    assert.equal(await ok(["auth", "enable"]), "Authentication Enabled\n");
    assert.equal(await ok([...root, "user", "get", "root"]), "User: root\nRoles: root\n");
  });

  test("without credentials: user name is empty; a wrong password fails", async () => {
    assert.equal(await fails(["put", "a", "b"]), "Error: etcdserver: user name is empty");
    assert.equal(
      await fails(["--user", "root:bad", "get", "a"]),
      "Error: etcdserver: authentication failed, invalid user ID or password",
    );
    assert.equal(await ok([...root, "put", "a", "b"]), "OK\n");
  });

  test("a role's prefix, key and from-key permissions, and nothing else", async () => {
    await ok([...root, "role", "add", "r1"]);
    await ok([...root, "role", "grant-permission", "r1", "readwrite", "/foo/", "--prefix"]);
    await ok([...root, "role", "grant-permission", "r1", "read", "ro"]);
    await ok([...root, "role", "grant-permission", "r1", "write", "w/", "--from-key"]);
    await ok([...root, "user", "add", "u1", "--new-user-password=p1"]);
    await ok([...root, "user", "grant-role", "u1", "r1"]);
    assert.equal(await ok([...u1, "put", "/foo/x", "1"]), "OK\n");
    assert.equal(await ok([...u1, "get", "/foo/", "--prefix"]), "/foo/x\n1\n");
    assert.equal(await ok([...u1, "get", "ro"]), "");
    assert.equal(await fails([...u1, "put", "ro", "1"]), "Error: etcdserver: permission denied");
    assert.equal(await ok([...u1, "put", "zzz", "1"]), "OK\n");
    assert.equal(await fails([...u1, "get", "zzz"]), "Error: etcdserver: permission denied");
    assert.equal(await fails([...u1, "get", "a"]), "Error: etcdserver: permission denied");
    assert.equal(
      await fails([...u1, "get", "/foo", "--prefix"]),
      "Error: etcdserver: permission denied",
    );
    assert.equal(await fails([...u1, "del", "a"]), "Error: etcdserver: permission denied");
    assert.equal(await fails([...u1, "user", "list"]), "Error: etcdserver: permission denied");
    assert.equal(await ok([...u1, "user", "get", "u1"]), "User: u1\nRoles: r1\n");
    assert.match(
      await ok([...u1, "role", "get", "r1"]),
      /KV Read:\n\t\[\/foo\/, \/foo0\) \(prefix \/foo\/\)\n\tro\n/,
    );
    assert.equal(
      await fails([...u1, "role", "get", "root"]),
      "Error: etcdserver: permission denied",
    );
  });

  test("a txn is checked op by op, compares included", async () => {
    const denied = await etcdctl([...u1, "txn"], {
      member,
      input: 'value("a") = "b"\n\nput /foo/t 1\n\n\n',
    });
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /etcdserver: permission denied/);
    const allowed = await etcdctl([...u1, "txn"], {
      member,
      input: 'value("/foo/x") = "1"\n\nput /foo/t 1\n\n\n',
    });
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.equal(allowed.stdout, "SUCCESS\n\nOK\n");
  });

  test("a watch on a range the user cannot read is canceled", async () => {
    const r = await etcdctl([...u1, "watch", "a"], { member });
    assert.match(
      r.stdout + r.stderr,
      /watch was canceled \(rpc error: code = PermissionDenied desc = etcdserver: permission denied\)/,
    );
  });

  test("root rules and management errors are etcd's", async () => {
    assert.equal(
      await fails([...root, "user", "delete", "root"]),
      "Error: etcdserver: invalid auth management",
    );
    assert.equal(
      await fails([...root, "role", "delete", "root"]),
      "Error: etcdserver: invalid auth management",
    );
    assert.equal(
      await fails([...root, "user", "add", "u1", "--new-user-password=x"]),
      "Error: etcdserver: user name already exists",
    );
    assert.equal(
      await fails([...root, "role", "revoke-permission", "r1", "nothing"]),
      "Error: etcdserver: permission is not granted to the role",
    );
    assert.equal(
      await fails([...root, "user", "revoke-role", "u1", "nope"]),
      "Error: etcdserver: role is not granted to the user",
    );
    assert.equal(await ok([...root, "user", "list"]), "root\nu1\n");
    assert.equal(await ok([...root, "role", "list"]), "r1\nroot\n");
  });

  test("a changed password and a revoked role take effect at once", async () => {
    await ok([...root, "user", "passwd", "u1", "--interactive=false"], "p2\n");
    assert.match(await fails([...u1, "get", "ro"]), /authentication failed/);
    await ok([...root, "user", "revoke-role", "u1", "r1"]);
    assert.equal(
      await fails(["--user", "u1:p2", "get", "ro"]),
      "Error: etcdserver: permission denied",
    );
  });

  test("disable: anyone may write again, and only root may disable", async () => {
    assert.equal(
      await fails(["--user", "u1:p2", "auth", "disable"]),
      "Error: etcdserver: permission denied",
    );
    assert.equal(await ok([...root, "auth", "disable"]), "Authentication Disabled\n");
    assert.equal(await ok(["put", "a", "c"]), "OK\n");
    assert.equal(await ok(["get", "zzz", "--print-value-only"]), "1\n");
  });
});
