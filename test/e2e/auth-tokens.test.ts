// Auth tokens and the gateway's /v3/auth/* paths with curl: the whole flow over JSON with the
// Authorization header; simple tokens expire --auth-token-ttl after their last use; JWT tokens
// (RS256 and ES256, keys made by openssl) are signed JWTs whose claims are etcd's (username,
// revision, exp), verify with the public key, and are refused once expired.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importSPKI, jwtVerify } from "jose";
import { TARGET, curl, run, sleep, startMember, type Member } from "../helpers/server.js";

const b64 = (s: string) => Buffer.from(s).toString("base64");

/** POST a JSON body to the gateway; returns the HTTP status and the parsed answer. */
async function post(
  m: Member,
  path: string,
  body: object,
  token?: string,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const args = ["-X", "POST", "-w", "\n%{http_code}", "-d", JSON.stringify(body)];
  if (token !== undefined) args.push("-H", `Authorization: ${token}`);
  const r = await curl([...args, `${m.endpoint}/v3/${path}`]);
  assert.equal(r.code, 0, r.stderr);
  const nl = r.stdout.lastIndexOf("\n");
  return { status: Number(r.stdout.slice(nl + 1)), json: JSON.parse(r.stdout.slice(0, nl)) };
}

/** root (password rootpw) with the root role, and auth on, all over the gateway. */
async function enableWithRoot(m: Member): Promise<string> {
  for (const [path, body] of [
    ["auth/user/add", { name: "root", password: "rootpw" }],
    ["auth/role/add", { name: "root" }],
    ["auth/user/grant", { user: "root", role: "root" }],
    ["auth/enable", {}],
  ] as const) {
    const r = await post(m, path, body);
    assert.equal(r.status, 200, `${path}: ${JSON.stringify(r.json)}`);
  }
  const a = await post(m, "auth/authenticate", { name: "root", password: "rootpw" });
  assert.equal(a.status, 200, JSON.stringify(a.json));
  return a.json.token as string;
}

describe("auth tokens and the /v3/auth gateway", { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "auth-tokens-"));
  const members: Member[] = [];
  before(async () => {
    const sh = (cmd: string) => run("/bin/sh", ["-c", cmd], { timeoutMs: 20_000 });
    const r = await sh(
      `cd ${dir} && openssl genrsa -out rsa.key 2048 2>/dev/null && openssl rsa -in rsa.key -pubout -out rsa.pub 2>/dev/null && ` +
        `openssl ecparam -name prime256v1 -genkey -noout -out ec.key && openssl ec -in ec.key -pubout -out ec.pub 2>/dev/null`,
    );
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await Promise.all(members.map((m) => m.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  test("the whole auth flow over JSON, the Authorization header, etcd's errors and codes", async () => {
    const m = await startMember({ name: "gw-auth", extraArgs: ["--bcrypt-cost", "4"] });
    members.push(m);
    const root = await enableWithRoot(m);
    assert.match(root, /^[a-zA-Z]{16}\.\d+$/);
    const noToken = await post(m, "kv/put", { key: b64("k"), value: b64("v") });
    assert.equal(noToken.status, 400);
    assert.equal(noToken.json.error, "etcdserver: user name is empty");
    assert.equal(noToken.json.code, 3);
    const bad = await post(m, "kv/range", { key: b64("k") }, "nope.1");
    assert.equal(bad.status, 401);
    assert.equal(bad.json.error, "etcdserver: invalid auth token");
    assert.equal((await post(m, "kv/put", { key: b64("k"), value: b64("v") }, root)).status, 200);
    for (const [path, body] of [
      ["auth/role/add", { name: "r" }],
      ["auth/role/grant", { name: "r", perm: { permType: "READ", key: b64("k") } }],
      ["auth/user/add", { name: "u", password: "up" }],
      ["auth/user/grant", { user: "u", role: "r" }],
    ] as const) {
      assert.equal((await post(m, path, body, root)).status, 200, path);
    }
    const users = await post(m, "auth/user/list", {}, root);
    assert.deepEqual(users.json.users, ["root", "u"]);
    const role = await post(m, "auth/role/get", { role: "r" }, root);
    assert.deepEqual(role.json.perm, [{ key: b64("k") }]);
    if (TARGET === "etcd-ts") {
      // etcd 3.5's path (3.4 has the request but no route for it)
      const st = await post(m, "auth/status", {}, root);
      assert.equal(st.json.enabled, true);
    }
    const u = (await post(m, "auth/authenticate", { name: "u", password: "up" })).json
      .token as string;
    const got = await post(m, "kv/range", { key: b64("k") }, u);
    assert.equal((got.json.kvs as { value: string }[])[0]!.value, b64("v"));
    const denied = await post(m, "kv/put", { key: b64("k"), value: b64("x") }, u);
    assert.equal(denied.status, 403);
    assert.equal(denied.json.error, "etcdserver: permission denied");
    const wrong = await post(m, "auth/authenticate", { name: "u", password: "no" });
    assert.equal(wrong.status, 400);
    assert.equal(
      wrong.json.error,
      "etcdserver: authentication failed, invalid user ID or password",
    );
    assert.equal(
      (await post(m, "auth/user/changepw", { name: "u", password: "up2" }, root)).status,
      200,
    );
    assert.equal((await post(m, "kv/range", { key: b64("k") }, u)).status, 401, "old tokens go");
    assert.equal((await post(m, "auth/disable", {}, root)).status, 200);
    const off = await post(m, "auth/authenticate", { name: "root", password: "rootpw" });
    assert.equal(off.status, 412);
    assert.equal(off.json.error, "etcdserver: authentication is not enabled");
  });

  test("a simple token expires --auth-token-ttl seconds after its last use", async () => {
    const m = await startMember({
      name: "ttl",
      extraArgs: ["--auth-token-ttl", "1", "--bcrypt-cost", "4"],
    });
    members.push(m);
    const root = await enableWithRoot(m);
    for (let i = 0; i < 3; i++) {
      await sleep(500); // each use restarts the TTL
      assert.equal((await post(m, "kv/range", { key: b64("k") }, root)).status, 200);
    }
    await sleep(2200);
    assert.equal((await post(m, "kv/range", { key: b64("k") }, root)).status, 401);
  });

  for (const [alg, key] of [
    ["RS256", "rsa"],
    ["ES256", "ec"],
  ] as const) {
    test(`JWT ${alg}: etcd's claims, verified with the public key, refused once expired`, async () => {
      const opt = `jwt,pub-key=${join(dir, `${key}.pub`)},priv-key=${join(dir, `${key}.key`)},sign-method=${alg},ttl=2s`;
      const m = await startMember({
        name: `jwt-${key}`,
        extraArgs: ["--auth-token", opt, "--bcrypt-cost", "4"],
      });
      members.push(m);
      const token = await enableWithRoot(m);
      const pub = await importSPKI(readFileSync(join(dir, `${key}.pub`), "utf8"), alg);
      const { payload, protectedHeader } = await jwtVerify(token, pub);
      assert.equal(protectedHeader.alg, alg);
      assert.equal(payload.username, "root");
      assert.equal(typeof payload.revision, "number");
      assert.ok(payload.exp! * 1000 > Date.now());
      assert.equal(
        (await post(m, "kv/put", { key: b64("j"), value: b64("1") }, token)).status,
        200,
      );
      const forged = token.slice(0, -4) + (token.endsWith("AAAA") ? "BBBB" : "AAAA");
      assert.equal((await post(m, "kv/range", { key: b64("j") }, forged)).status, 401);
      await sleep(3100);
      const late = await post(m, "kv/range", { key: b64("j") }, token);
      assert.equal(late.status, 401);
      assert.equal(late.json.error, "etcdserver: invalid auth token");
    });
  }
});
