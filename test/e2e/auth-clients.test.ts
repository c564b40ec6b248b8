// Auth through the client libraries: the etcd3 npm client's roles and users API and its `auth:`
// option (token fetched and sent as `token` metadata, renewed when the server says it is
// invalid), and python3-etcd3's user/password client (over TLS).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { rmSync } from "node:fs";
import {
  etcdctl,
  generateTls,
  python3,
  startMember,
  type Member,
  type TlsFiles,
} from "../helpers/server.js";
import { closeClient, newClient } from "../helpers/client.js";

describe("auth with the etcd3 npm client and python3-etcd3", { timeout: 90_000 }, () => {
  let member: Member;
  const clients: Etcd3[] = [];
  before(async () => {
    member = await startMember({ name: "auth-clients", extraArgs: ["--bcrypt-cost", "4"] });
  });
  after(async () => {
    for (const c of clients) closeClient(c);
    await member?.close();
  });
  const client = (auth?: { username: string; password: string }) => {
    const c = newClient(member, { extra: auth === undefined ? {} : { auth } });
    clients.push(c);
    return c;
  };

  test("etcd3: roles, users and permissions through its API, then auth: logins", async () => {
    const admin = client();
    await admin.user("root").create("rootpw");
    await admin.role("root").create();
    await admin.user("root").addRole("root");
    const app = await admin.role("app").create();
    await app.grant({ permission: "Readwrite", range: admin.range({ prefix: "app/" }) });
    await app.grant({ permission: "Read", key: "config" });
    await admin.user("svc").create("svcpw");
    await admin.user("svc").addRole("app");
    assert.deepEqual((await admin.getRoles()).map((r) => r.name).sort(), ["app", "root"]);
    assert.deepEqual((await admin.getUsers()).map((u) => u.name).sort(), ["root", "svc"]);
    const perms = await app.permissions();
    assert.deepEqual(
      perms.map((p) => [p.permission, p.range.start.toString(), p.range.end.toString()]),
      [
        ["Readwrite", "app/", "app0"],
        ["Read", "config", ""],
      ],
    );
    await admin.auth.authEnable({});

    const root = client({ username: "root", password: "rootpw" });
    await root.put("config").value("c1");
    const svc = client({ username: "svc", password: "svcpw" });
    await svc.put("app/a").value("1");
    assert.equal(await svc.get("app/a").string(), "1");
    assert.equal(await svc.get("config").string(), "c1");
    await assert.rejects(svc.put("config").value("x").exec(), /permission denied/);
    await assert.rejects(admin.get("config").string(), /user name is empty/);
    const wrong = client({ username: "svc", password: "nope" });
    await assert.rejects(wrong.get("app/a").string(), /authentication failed/);
  });
});

// grpcio sends call credentials (python3-etcd3's token) only over TLS, against real etcd too
describe("auth with python3-etcd3 over TLS", { timeout: 90_000 }, () => {
  let tlsFiles: TlsFiles;
  let member: Member;
  before(async () => {
    tlsFiles = await generateTls();
    member = await startMember({
      name: "auth-py",
      tls: tlsFiles,
      extraArgs: ["--bcrypt-cost", "4"],
    });
    for (const args of [
      ["user", "add", "root", "--new-user-password=rootpw"],
      ["role", "add", "root"],
      ["user", "grant-role", "root", "root"],
      ["role", "add", "app"],
      ["role", "grant-permission", "app", "readwrite", "app/", "--prefix"],
      ["user", "add", "svc", "--new-user-password=svcpw"],
      ["user", "grant-role", "svc", "app"],
      ["auth", "enable"],
      ["--user", "root:rootpw", "put", "app/a", "1"],
    ]) {
      const r = await etcdctl(args, { member });
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    }
  });
  after(async () => {
    await member?.close();
    rmSync(tlsFiles.dir, { recursive: true, force: true });
  });

  test("user/password client reads and writes what its roles allow, and no more", async () => {
    const [host, port] = member.hostPort.split(":");
    const t = tlsFiles;
    const r = await python3(
      [
        "import etcd3",
        `c = etcd3.client(host="${host}", port=${port}, user="svc", password="svcpw", timeout=10,`,
        `    ca_cert="${t.caCert}", cert_key="${t.clientKey}", cert_cert="${t.clientCert}")`,
        "v, _ = c.get('app/a')",
        "print(v.decode())",
        "c.put('app/py', 'p')",
        "print(c.get('app/py')[0].decode())",
        "try:",
        "    c.put('config', 'x')",
        "    print('allowed')",
        "except Exception as e:",
        "    print(type(e).__name__, e)",
      ].join("\n"),
      { timeoutMs: 30_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.deepEqual(lines.slice(0, 2), ["1", "p"]);
    assert.match(lines.slice(2).join("\n"), /permission denied/);
  });
});
