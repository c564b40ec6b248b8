// Property: no sequence of user, role and permission changes (grants, revokes, role deletes,
// user deletes and re-adds, enable/disable) lets a user read or write a key outside what its
// roles grant. After every step, each user's checks on every key of a small alphabet (single
// keys, prefixes and from-key ranges) are compared with a model that knows only the rules:
// root may do anything; others need a permission of the right type whose interval holds every
// key of the request (or the key itself). Replay a failure with SEED=<seed>.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { AuthStore } from "../../lib/auth/index.js";
import { Permission_Type } from "../../lib/proto/gen/authpb/auth.js";

const seed = Number(process.env.SEED ?? Date.now() % 2 ** 31);
const users = ["root", "u1", "u2"];
const roles = ["root", "r1", "r2"];
// keys are one or two letters of "abc": every request's keys are enumerable
const letters = ["a", "b", "c"];
const allKeys = letters.flatMap((x) => [x, ...letters.map((y) => x + y)]).sort();

type Op =
  | { op: "userAdd" | "userDelete"; user: string }
  | { op: "grantRole" | "revokeRole"; user: string; role: string }
  | { op: "roleAdd" | "roleDelete"; role: string }
  | {
      op: "grantPerm" | "revokePerm";
      role: string;
      type: Permission_Type;
      key: string;
      end: string;
    }
  | { op: "enable" | "disable" };

const keyArb = fc.constantFrom(...allKeys);
// "" = one key, "\0" = from key, else a range end after the key ("b" as a prefix end of "a")
const rangeEnds = ["b", "c", "d", "ab", "bc"];
const endArb = fc.constantFrom("", "\0", ...rangeEnds);
const probePoints = [
  ...new Set([...allKeys, ...allKeys.map((k) => k + "\0"), ...rangeEnds]),
].sort();
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    op: fc.constantFrom("userAdd", "userDelete" as const),
    user: fc.constantFrom(...users),
  }),
  fc.record({
    op: fc.constantFrom("grantRole", "revokeRole" as const),
    user: fc.constantFrom(...users),
    role: fc.constantFrom(...roles),
  }),
  fc.record({
    op: fc.constantFrom("roleAdd", "roleDelete" as const),
    role: fc.constantFrom(...roles),
  }),
  fc.record({
    op: fc.constantFrom("grantPerm", "revokePerm" as const),
    role: fc.constantFrom(...roles),
    type: fc.constantFrom(Permission_Type.READ, Permission_Type.WRITE, Permission_Type.READWRITE),
    key: keyArb,
    end: endArb,
  }),
  fc.record({ op: fc.constantFrom("enable", "disable" as const) }),
);

const b = (s: string) => Buffer.from(s, "latin1");

/** The model: per role, its grants; per user, its roles. */
interface Model {
  users: Map<string, Set<string>>;
  roles: Map<string, Map<string, Permission_Type>>; // "key\u0001end" → type
  enabled: boolean;
}

/** Keys of the alphabet a request touches: [key, end) with "" one key and "\0" no end. */
function keysOf(key: string, end: string): string[] {
  if (end === "") return [key];
  return allKeys.filter((k) => k >= key && (end === "\0" || k < end));
}

/** Whether a permission's interval holds `k`: the same encoding. */
function holds(permKey: string, permEnd: string, k: string): boolean {
  if (permEnd === "") return k === permKey;
  return k >= permKey && (permEnd === "\0" || k < permEnd);
}

function modelAllows(m: Model, user: string, read: boolean, key: string, end: string): boolean {
  const rs = m.users.get(user);
  if (rs === undefined) return false;
  if (rs.has("root")) return true;
  const need = read
    ? [Permission_Type.READ, Permission_Type.READWRITE]
    : [Permission_Type.WRITE, Permission_Type.READWRITE];
  // a range is covered when no gap opens inside it; a gap can only open at the end of a
  // permission interval (an alphabet key, a key + "\0", or a range end), so probing those points
  // inside the request decides it
  const probes =
    end === "" ? [key] : probePoints.filter((k) => k >= key && (end === "\0" || k < end));
  return probes.every((k) =>
    [...rs].some((r) =>
      [...(m.roles.get(r) ?? [])].some(([pk, t]) => {
        const [permKey, permEnd] = pk.split("\u0001") as [string, string];
        return need.includes(t) && holds(permKey, permEnd, k);
      }),
    ),
  );
}

function apply(s: AuthStore, m: Model, o: Op): void {
  const tryIt = (f: () => void): boolean => {
    try {
      f();
      return true;
    } catch {
      return false;
    }
  };
  switch (o.op) {
    case "userAdd":
      if (
        tryIt(() =>
          s.userAdd({ name: o.user, password: "", hashedPassword: "h", options: undefined }),
        )
      )
        m.users.set(o.user, new Set());
      break;
    case "userDelete":
      if (tryIt(() => s.userDelete(o.user))) m.users.delete(o.user);
      break;
    case "grantRole":
      if (tryIt(() => s.userGrantRole(o.user, o.role))) m.users.get(o.user)!.add(o.role);
      break;
    case "revokeRole":
      if (tryIt(() => s.userRevokeRole(o.user, o.role))) m.users.get(o.user)!.delete(o.role);
      break;
    case "roleAdd":
      if (tryIt(() => s.roleAdd(o.role))) m.roles.set(o.role, new Map());
      break;
    case "roleDelete":
      if (tryIt(() => s.roleDelete(o.role))) {
        m.roles.delete(o.role);
        for (const rs of m.users.values()) rs.delete(o.role);
      }
      break;
    case "grantPerm":
      if (
        tryIt(() =>
          s.roleGrantPermission({
            name: o.role,
            perm: { permType: o.type, key: b(o.key), rangeEnd: b(o.end) },
          }),
        )
      )
        m.roles.get(o.role)!.set(`${o.key}\u0001${o.end}`, o.type);
      break;
    case "revokePerm":
      if (tryIt(() => s.roleRevokePermission({ role: o.role, key: b(o.key), rangeEnd: b(o.end) })))
        m.roles.get(o.role)!.delete(`${o.key}\u0001${o.end}`);
      break;
    case "enable":
      if (tryIt(() => s.authEnable())) m.enabled = true;
      break;
    case "disable":
      s.authDisable();
      m.enabled = false;
      break;
  }
}

function check(s: AuthStore, m: Model): void {
  assert.equal(s.enabled, m.enabled);
  for (const user of users) {
    const ai = { username: user, revision: s.revision };
    for (const key of allKeys) {
      for (const end of ["", "\0", ...allKeys.filter((k) => k > key)]) {
        for (const read of [true, false]) {
          let allowed = true;
          try {
            if (read) s.checkRange(ai, b(key), b(end));
            else s.checkDeleteRange(ai, b(key), b(end));
          } catch {
            allowed = false;
          }
          const want = !m.enabled || modelAllows(m, user, read, key, end);
          if (allowed && !want) {
            assert.fail(
              `${user} may ${read ? "read" : "write"} [${key}, ${JSON.stringify(end)}) outside its roles`,
            );
          }
          if (!allowed && want && m.enabled) {
            assert.fail(
              `${user} is refused ${read ? "read" : "write"} [${key}, ${JSON.stringify(end)}) its roles grant`,
            );
          }
        }
      }
    }
  }
}

/** A fresh enabled store and model: root (root role), u1, u2, roles r1, r2. */
function enabledStart(): { s: AuthStore; m: Model } {
  const s = new AuthStore();
  const m: Model = { users: new Map(), roles: new Map(), enabled: false };
  const start: Op[] = [
    ...users.map((user) => ({ op: "userAdd", user }) as Op),
    ...roles.map((role) => ({ op: "roleAdd", role }) as Op),
    { op: "grantRole", user: "root", role: "root" },
    { op: "enable" },
  ];
  for (const o of start) apply(s, m, o);
  assert.equal(m.enabled, true);
  return { s, m };
}

describe("auth store: permissions property", () => {
  test("the checker itself: a one-key grant does not open the range after it", () => {
    const { s, m } = enabledStart();
    apply(s, m, { op: "grantPerm", role: "r1", type: Permission_Type.READ, key: "cb", end: "" });
    apply(s, m, { op: "grantRole", user: "u1", role: "r1" });
    check(s, m);
    assert.throws(() => s.checkRange({ username: "u1", revision: s.revision }, b("cb"), b("cc")));
  });

  test("no change sequence lets a user touch a key outside its roles (and none takes granted ones away)", () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 40, size: "max" }), (ops) => {
        const { s, m } = enabledStart();
        for (const o of ops) {
          apply(s, m, o);
          check(s, m);
        }
      }),
      { seed, numRuns: 40 },
    );
  });
});
