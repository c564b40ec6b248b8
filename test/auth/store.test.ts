// lib/auth's store as etcd 3.4's auth/store.go: enable rules, users, roles, the root rules,
// permission intervals (key, prefix, from-key, merged grants) and the auth revision.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { AuthStore, UnifiedRangePermissions, SimpleTokens } from "../../lib/auth/index.js";
import { Permission_Type } from "../../lib/proto/gen/authpb/auth.js";

const b = (s: string) => Buffer.from(s);
const none = new Uint8Array(0);

function storeWithRoot(): AuthStore {
  const s = new AuthStore();
  s.userAdd({ name: "root", password: "", hashedPassword: "$2a$04$x", options: undefined });
  s.roleAdd("root");
  s.userGrantRole("root", "root");
  return s;
}

function grant(s: AuthStore, role: string, type: Permission_Type, key: string, end = "") {
  s.roleGrantPermission({ name: role, perm: { permType: type, key: b(key), rangeEnd: b(end) } });
}

describe("auth store", () => {
  test("enable needs a root user holding the root role", () => {
    const s = new AuthStore();
    assert.throws(() => s.authEnable(), /etcdserver: root user does not exist/);
    s.userAdd({ name: "root", password: "", hashedPassword: "h", options: undefined });
    assert.throws(() => s.authEnable(), /etcdserver: root user does not have root role/);
    s.userGrantRole("root", "root"); // the root role need not exist as a role
    s.authEnable();
    assert.equal(s.enabled, true);
  });

  test("root cannot be deleted, lose the root role or the role be deleted while auth is on", () => {
    const s = storeWithRoot();
    s.authEnable();
    assert.throws(() => s.userDelete("root"), /invalid auth management/);
    assert.throws(() => s.userRevokeRole("root", "root"), /invalid auth management/);
    assert.throws(() => s.roleDelete("root"), /invalid auth management/);
    s.authDisable();
    s.userRevokeRole("root", "root");
  });

  test("every change moves the revision; enable does not, disable does", () => {
    const s = new AuthStore();
    assert.equal(s.revision, 1);
    s.userAdd({ name: "root", password: "", hashedPassword: "h", options: undefined });
    s.userGrantRole("root", "root");
    assert.equal(s.revision, 3);
    s.userGrantRole("root", "root"); // already held: nothing changes
    assert.equal(s.revision, 3);
    s.authEnable();
    assert.equal(s.revision, 3);
    s.authDisable();
    assert.equal(s.revision, 4);
  });

  test("errors as etcd's for missing and duplicate users, roles and permissions", () => {
    const s = storeWithRoot();
    assert.throws(
      () => s.userAdd({ name: "", password: "", hashedPassword: "", options: undefined }),
      /user name is empty/,
    );
    assert.throws(
      () => s.userAdd({ name: "root", password: "", hashedPassword: "", options: undefined }),
      /user name already exists/,
    );
    assert.throws(() => s.userGet("nobody"), /user name not found/);
    assert.throws(() => s.roleAdd(""), /role name is empty/);
    assert.throws(() => s.roleAdd("root"), /role name already exists/);
    assert.throws(() => s.roleGet("nope"), /role name not found/);
    assert.throws(() => s.userGrantRole("root", "nope"), /role name not found/);
    assert.throws(() => s.userRevokeRole("root", "nope"), /role is not granted to the user/);
    assert.throws(
      () => s.roleRevokePermission({ role: "root", key: b("a"), rangeEnd: none }),
      /permission is not granted/,
    );
    assert.throws(
      () => s.roleGrantPermission({ name: "root", perm: undefined }),
      /permission not given/,
    );
    assert.throws(
      () => grant(s, "root", Permission_Type.READ, "b", "a"),
      /invalid auth management/,
    );
  });

  test("deleting a role takes it from every user", () => {
    const s = storeWithRoot();
    s.roleAdd("r");
    s.userAdd({ name: "u", password: "", hashedPassword: "h", options: undefined });
    s.userGrantRole("u", "r");
    s.roleDelete("r");
    assert.deepEqual(s.userGet("u"), []);
  });

  test("permission checks: off → all allowed; on → credentials, revision, grants", () => {
    const s = storeWithRoot();
    s.roleAdd("r");
    grant(s, "r", Permission_Type.READ, "k");
    grant(s, "r", Permission_Type.READWRITE, "p/", "p0");
    grant(s, "r", Permission_Type.WRITE, "z", "\0");
    s.userAdd({ name: "u", password: "", hashedPassword: "h", options: undefined });
    s.userGrantRole("u", "r");
    s.checkPut(undefined, b("anything"));
    s.authEnable();
    const u = { username: "u", revision: s.revision };
    assert.throws(() => s.checkPut(undefined, b("k")), /user name is empty/);
    s.checkRange(u, b("k"), none);
    assert.throws(() => s.checkPut(u, b("k")), /permission denied/);
    s.checkPut(u, b("p/x"));
    s.checkRange(u, b("p/"), b("p0"));
    assert.throws(() => s.checkRange(u, b("p/"), b("p1")), /permission denied/);
    s.checkDeleteRange(u, b("zz"), b("\0"));
    assert.throws(() => s.checkDeleteRange(u, b("y"), b("\0")), /permission denied/);
    s.checkPut({ username: "root", revision: s.revision }, b("anything"));
    s.roleAdd("other"); // revision moves: u's credentials are old
    assert.throws(() => s.checkRange(u, b("k"), none), /revision of auth store is old/);
    assert.throws(() => s.checkAdmin(u), /permission denied/);
    assert.throws(() => s.checkAdmin({ username: "ghost", revision: 9 }), /user name not found/);
  });

  test("snapshot and restore carry users, roles, the flag and the revision", () => {
    const s = storeWithRoot();
    s.roleAdd("r");
    grant(s, "r", Permission_Type.READ, "a", "b");
    s.authEnable();
    const t = new AuthStore();
    t.restore(s.snapshot());
    assert.deepEqual(t.snapshot(), s.snapshot());
    assert.equal(t.enabled, true);
  });

  test("a restore keeps the tokens of users whose password did not change while auth stays on", () => {
    const tokens = new SimpleTokens(60);
    const s = new AuthStore(tokens);
    s.restore(storeWithRoot().snapshot());
    const hash = (name: string) => ({ name, password: "", hashedPassword: "$2a$04$" + name });
    for (const name of ["kept", "gone", "newpw"]) s.userAdd({ ...hash(name), options: undefined });
    s.authEnable();
    const tok = (name: string, index: number) => tokens.assign("p", index, name, 0);
    const [kept, gone, newpw] = [tok("kept", 1), tok("gone", 2), tok("newpw", 3)];
    // the leader's state some entries later: gone deleted, newpw with another password
    const leader = new AuthStore();
    leader.restore(s.snapshot());
    leader.userDelete("gone");
    leader.userChangePassword({ name: "newpw", password: "", hashedPassword: "$2a$04$other" });
    s.restore(leader.snapshot());
    assert.equal(tokens.lookup(kept, 1), "kept");
    assert.equal(tokens.lookup(gone, 1), undefined);
    assert.equal(tokens.lookup(newpw, 1), undefined);
    assert.equal(s.revision, leader.revision);
    // auth turned off in the snapshot: every token goes
    leader.authDisable();
    s.restore(leader.snapshot());
    assert.equal(tokens.lookup(kept, 1), undefined);
    assert.equal(s.enabled, false);
  });
});

describe("range permissions", () => {
  const perms = (list: [Permission_Type, string, string][]) =>
    new UnifiedRangePermissions(
      list.map(([permType, key, rangeEnd]) => ({ permType, key: b(key), rangeEnd: b(rangeEnd) })),
    );

  test("adjacent and overlapping grants cover a range together (etcd's IntervalTree.Contains)", () => {
    const p = perms([
      [Permission_Type.READ, "a", "c"],
      [Permission_Type.READ, "c", "e"],
      [Permission_Type.READ, "x", ""],
    ]);
    assert.equal(p.allows(Permission_Type.READ, b("a"), b("e")), true);
    assert.equal(p.allows(Permission_Type.READ, b("b"), b("f")), false);
    assert.equal(p.allows(Permission_Type.READ, b("x"), none), true);
    assert.equal(p.allows(Permission_Type.READ, b("x"), b("x\0")), true);
    assert.equal(p.allows(Permission_Type.READ, b("x"), b("y")), false);
    assert.equal(p.allows(Permission_Type.READ, b("e"), none), false);
    assert.equal(p.allows(Permission_Type.WRITE, b("a"), none), false);
  });

  test("from-key grants cover every later key and open-ended ranges", () => {
    const p = perms([[Permission_Type.WRITE, "m", "\0"]]);
    assert.equal(p.allows(Permission_Type.WRITE, b("m"), b("\0")), true);
    assert.equal(p.allows(Permission_Type.WRITE, b("zzz"), none), true);
    assert.equal(p.allows(Permission_Type.WRITE, b("l"), b("\0")), false);
  });
});

describe("simple tokens", () => {
  test("prefix.index, sliding TTL, dropped on disable and per user", () => {
    const t = new SimpleTokens(10);
    t.enable();
    const tok = t.assign(t.genTokenPrefix(), 42, "u", 1000);
    assert.match(tok, /^[a-zA-Z]{16}\.42$/);
    assert.equal(SimpleTokens.indexOf(tok), 42);
    assert.equal(t.lookup(tok, 9000), "u");
    assert.equal(t.lookup(tok, 18_000), "u"); // the TTL restarted at 9000
    assert.equal(t.lookup(tok, 28_001), undefined);
    const tok2 = t.assign("abc", 43, "v", 30_000);
    t.invalidateUser("v");
    assert.equal(t.lookup(tok2, 30_001), undefined);
    const tok3 = t.assign("abd", 44, "w", 30_000);
    t.disable();
    assert.equal(t.lookup(tok3, 30_001), undefined);
  });
});
