// Client TLS: with --client-cert-auth, clients without a certificate signed by the trusted CA are
// refused (etcdctl, etcd3, curl) and clients with one work (etcdctl, etcd3, curl, python3-etcd3).
// etcd 3.4 also demands a client certificate when only --trusted-ca-file is given; with just
// --cert-file/--key-file, clients that only verify the server are served.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import {
  curl,
  etcdctl,
  generateTls,
  python3,
  startMember,
  type Member,
  type TlsFiles,
} from "../helpers/server.js";
import { closeClient, newClient } from "../helpers/client.js";

/** etcdctl's per-command bound for attempts that must fail (the refusal shows as a timeout). */
const REFUSED_COMMAND_TIMEOUT = "--command-timeout=2s";

describe("client TLS", { timeout: 90_000 }, () => {
  let tls: TlsFiles;
  let member: Member;

  before(async () => {
    tls = await generateTls();
    member = await startMember({ tls, clientCertAuth: true });
  });
  after(async () => {
    await member?.close();
    if (tls) rmSync(tls.dir, { recursive: true, force: true });
  });

  test("the member advertises an https endpoint", () => {
    assert.match(member.endpoint, /^https:\/\/127\.0\.0\.1:\d+$/);
  });

  test("etcdctl with --cacert, --cert and --key works", async () => {
    const put = await etcdctl(["put", "tls/k", "v"], { member });
    assert.equal(put.code, 0, put.stderr);
    assert.equal(put.stdout, "OK\n");
    const get = await etcdctl(["get", "tls/k", "--print-value-only"], { member });
    assert.equal(get.stdout, "v\n");
  });

  test("etcdctl without a client certificate is refused", async () => {
    const r = await etcdctl(["put", "tls/no-cert", "v", REFUSED_COMMAND_TIMEOUT], {
      member,
      useClientCert: false,
    });
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, "");
  });

  test("etcdctl with a certificate from another CA is refused", async () => {
    const r = await etcdctl(
      [
        "put",
        "tls/other",
        "v",
        `--cert=${tls.otherClientCert}`,
        `--key=${tls.otherClientKey}`,
        REFUSED_COMMAND_TIMEOUT,
      ],
      { member, useClientCert: false },
    );
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, "");
    // Nothing was written by the refused clients.
    const get = await etcdctl(["get", "--prefix", "tls/", "--keys-only"], { member });
    assert.equal(get.stdout, "tls/k\n\n");
  });

  test("etcdctl without --cacert does not trust the server", async () => {
    const r = await etcdctl(["get", "tls/k", REFUSED_COMMAND_TIMEOUT], {
      endpoint: member.endpoint,
    });
    assert.notEqual(r.code, 0);
  });

  test("the etcd3 client with the client certificate works; without it fails", async () => {
    const good = newClient(member);
    try {
      assert.equal(await good.get("tls/k").string(), "v");
    } finally {
      closeClient(good);
    }
    const bad = newClient(member, { useClientCert: false, noRetry: true });
    try {
      await assert.rejects(
        bad
          .get("tls/k")
          .options({ deadline: Date.now() + 3000 })
          .string(),
      );
    } finally {
      closeClient(bad);
    }
  });

  test("curl on the gateway: with the client cert it works; without it the handshake fails", async () => {
    const ok = await curl([
      "--cacert",
      tls.caCert,
      "--cert",
      tls.clientCert,
      "--key",
      tls.clientKey,
      "-X",
      "POST",
      "-d",
      JSON.stringify({ key: Buffer.from("tls/k").toString("base64") }),
      member.endpoint + "/v3/kv/range",
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const body = JSON.parse(ok.stdout) as { kvs: { value: string }[] };
    assert.equal(Buffer.from(body.kvs[0]!.value, "base64").toString(), "v");
    const health = await curl([
      "--cacert",
      tls.caCert,
      "--cert",
      tls.clientCert,
      "--key",
      tls.clientKey,
      member.endpoint + "/health",
    ]);
    assert.deepEqual(JSON.parse(health.stdout), { health: "true" });

    const noCert = await curl(["--cacert", tls.caCert, member.endpoint + "/health"]);
    assert.notEqual(noCert.code, 0);
    assert.equal(noCert.stdout, "");
  });

  test("plain HTTP to the TLS port gets no answer", async () => {
    const r = await curl([`http://${member.hostPort}/health`]);
    assert.notEqual(r.code, 0);
    assert.ok(!r.stdout.includes("health"));
  });

  test("python3-etcd3 with ca_cert, cert_key and cert_cert works", async () => {
    const script = `\
import etcd3
c = etcd3.client(host='127.0.0.1', port=${member.clientPort}, ca_cert='${tls.caCert}',
                 cert_key='${tls.clientKey}', cert_cert='${tls.clientCert}')
c.put('tls/py', 'pv')
print(c.get('tls/py')[0].decode())
`;
    const r = await python3(script, { timeoutMs: 20_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "pv\n");
  });

  test("with --trusted-ca-file but no --client-cert-auth a client certificate is still required (etcd 3.4)", async () => {
    const m = await startMember({ tls });
    try {
      const refused = await etcdctl(["put", "k", "v", REFUSED_COMMAND_TIMEOUT], {
        member: m,
        useClientCert: false,
      });
      assert.notEqual(refused.code, 0);
      const ok = await etcdctl(["put", "k", "v"], { member: m });
      assert.equal(ok.code, 0, ok.stderr);
    } finally {
      await m.close();
    }
  });

  test("with only --cert-file/--key-file, a client that only verifies the server is served", async () => {
    const open = await startMember({ tls, noTrustedCa: true });
    try {
      const r = await etcdctl(["put", "k", "v"], { member: open, useClientCert: false });
      assert.equal(r.code, 0, r.stderr);
      const client = newClient(open, { useClientCert: false });
      try {
        assert.equal(await client.get("k").string(), "v");
      } finally {
        closeClient(client);
      }
      const h = await curl(["--cacert", tls.caCert, open.endpoint + "/health"]);
      assert.deepEqual(JSON.parse(h.stdout), { health: "true" });
    } finally {
      await open.close();
    }
  });
});
