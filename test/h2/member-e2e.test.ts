// The real member's handlers (lib/api EtcdApi on an in-process EtcdServer) served through lib/h2,
// driven by the three real client stacks: etcdctl 3.4 (Go gRPC), the etcd3 npm client (grpc-js)
// and Debian's python3-etcd3 (gRPC C core), plain and over TLS (ALPN h2).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { Etcd3 } from "etcd3";
import { EtcdServer, defaultConfig } from "../../lib/server/index.js";
import { EtcdApi } from "../../lib/api/index.js";
import { createH2Server } from "../../lib/api/h2.js";
import type { H2GrpcServer } from "../../lib/h2/index.js";
import { etcdctl, freePort, generateTls, python3, type TlsFiles } from "../helpers/server.js";

interface Served {
  port: number;
  tlsPort: number;
  close(): Promise<void>;
}

async function serve(files: TlsFiles): Promise<Served> {
  const dataDir = mkdtempSync(join(tmpdir(), "h2-member-"));
  const peerPort = await freePort();
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const logger = pino({ level: "silent" });
  const config = {
    ...defaultConfig(),
    name: "h2",
    dataDir,
    listenPeerUrls: [peerUrl],
    initialAdvertisePeerUrls: [peerUrl],
    initialCluster: `h2=${peerUrl}`,
    listenClientUrls: ["http://127.0.0.1:0"],
    advertiseClientUrls: ["http://127.0.0.1:0"],
  };
  const server = await EtcdServer.start({ config, logger });
  const h2: H2GrpcServer = createH2Server(new EtcdApi(server), logger, config.maxRequestBytes);
  const plain = net.createServer((s) => {
    s.setNoDelay(true);
    h2.handleConnection(s);
  });
  const secure = tls.createServer(
    {
      cert: readFileSync(files.serverCert),
      key: readFileSync(files.serverKey),
      ALPNProtocols: ["h2"],
    },
    (s) => h2.handleConnection(s),
  );
  await new Promise<void>((r) => plain.listen(0, "127.0.0.1", r));
  await new Promise<void>((r) => secure.listen(0, "127.0.0.1", r));
  return {
    port: (plain.address() as net.AddressInfo).port,
    tlsPort: (secure.address() as net.AddressInfo).port,
    close: async () => {
      plain.close();
      secure.close();
      h2.forceClose();
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

describe("real clients against the member through lib/h2", { timeout: 90_000 }, () => {
  let files: TlsFiles;
  let m: Served;
  before(async () => {
    files = await generateTls();
    m = await serve(files);
  });
  after(async () => {
    await m?.close();
    rmSync(files.dir, { recursive: true, force: true });
  });

  test("etcdctl put / get / txn / lease / endpoint status / member list", async () => {
    const ep = `127.0.0.1:${m.port}`;
    let r = await etcdctl(["put", "foo", "bar"], { endpoint: ep });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "OK");
    r = await etcdctl(["get", "foo"], { endpoint: ep });
    assert.equal(r.stdout, "foo\nbar\n");
    r = await etcdctl(["txn"], {
      endpoint: ep,
      input: 'value("foo") = "bar"\n\nput foo baz\n\n\n',
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /SUCCESS/);
    r = await etcdctl(["lease", "grant", "60"], { endpoint: ep });
    assert.match(r.stdout, /lease [0-9a-f]+ granted with TTL\(60s\)/);
    const id = /lease ([0-9a-f]+)/.exec(r.stdout)![1];
    r = await etcdctl(["lease", "keep-alive", "--once", id], { endpoint: ep });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /keepalived with TTL\(60\)/);
    r = await etcdctl(["endpoint", "status", "-w", "json"], { endpoint: ep });
    assert.equal(r.code, 0, r.stderr);
    r = await etcdctl(["member", "list"], { endpoint: ep });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /started, h2,/);
  });

  test("etcdctl errors keep etcd's text (compacted revision)", async () => {
    const ep = `127.0.0.1:${m.port}`;
    for (let i = 0; i < 3; i++) await etcdctl(["put", "c", String(i)], { endpoint: ep });
    const st = JSON.parse(
      (await etcdctl(["endpoint", "status", "-w", "json"], { endpoint: ep })).stdout,
    );
    const rev = st[0].Status.header.revision;
    assert.equal((await etcdctl(["compact", String(rev)], { endpoint: ep })).code, 0);
    const r = await etcdctl(["get", "c", `--rev=${rev - 1}`], { endpoint: ep });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /required revision has been compacted/);
  });

  test("etcdctl watch sees a put (bidi stream)", async () => {
    const ep = `127.0.0.1:${m.port}`;
    const watching = etcdctl(["watch", "w"], {
      endpoint: ep,
      until: (out) => out.includes("w\nhello\n"),
      timeoutMs: 10_000,
    });
    await new Promise((r) => setTimeout(r, 500));
    await etcdctl(["put", "w", "hello"], { endpoint: ep });
    const r = await watching;
    assert.match(r.stdout, /PUT\nw\nhello\n/);
  });

  test("etcdctl over TLS", async () => {
    const ep = `127.0.0.1:${m.tlsPort}`;
    let r = await etcdctl(["--cacert", files.caCert, "put", "t", "tls"], { endpoint: ep });
    assert.equal(r.code, 0, r.stderr);
    r = await etcdctl(["--cacert", files.caCert, "get", "t", "--print-value-only"], {
      endpoint: ep,
    });
    assert.equal(r.stdout, "tls\n");
  });

  test("etcd3 npm client: put, get, delete, watch", async () => {
    const c = new Etcd3({ hosts: `127.0.0.1:${m.port}` });
    try {
      await c.put("npm").value("1");
      assert.equal(await c.get("npm").string(), "1");
      const w = await c.watch().key("npm-w").create();
      const got = new Promise<string>((r) => w.on("put", (kv) => r(kv.value.toString())));
      await c.put("npm-w").value("ev");
      assert.equal(await got, "ev");
      await w.cancel();
      await c.delete().key("npm");
      assert.equal(await c.get("npm").string(), null);
    } finally {
      c.close();
    }
  });

  test("python3-etcd3: put, get, prefix, lease, watch; plain and TLS", async () => {
    const script = (port: number, ca?: string) => `
import etcd3, threading
c = etcd3.client(host='127.0.0.1', port=${port}${ca ? `, ca_cert='${ca}'` : ""})
c.put('py', 'val')
v, meta = c.get('py')
assert v == b'val', v
c.put('pfx/a', '1'); c.put('pfx/b', '2')
assert sorted(k.key for _, k in c.get_prefix('pfx/')) == [b'pfx/a', b'pfx/b']
l = c.lease(30)
c.put('leased', 'x', lease=l)
assert l.remaining_ttl > 0
got = threading.Event()
wid = c.add_watch_callback('pw', lambda resp: got.set())
c.put('pw', 'z')
assert got.wait(5)
c.cancel_watch(wid)
print('ok')
`;
    let r = await python3(script(m.port), { timeoutMs: 30_000 });
    assert.equal(r.stdout.trim(), "ok", r.stderr);
    r = await python3(script(m.tlsPort, files.caCert), { timeoutMs: 30_000 });
    assert.equal(r.stdout.trim(), "ok", r.stderr);
  });
});
