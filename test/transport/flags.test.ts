// The --peer-* TLS flags reach a ServerConfig whose peerTls is what PeerTransport takes: etcd's
// --peer-cert-allowed-cn (flag, ETCD_PEER_CERT_ALLOWED_CN, config file) included.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PeerTlsFiles } from "../../lib/transport/index.js";
import { parseCommandLine } from "../../tools/flags.js";

test("--peer-* flags fill the peer TLS files the transport takes", () => {
  const { config } = parseCommandLine(
    [
      "--peer-cert-file=/p/m1.crt",
      "--peer-key-file",
      "/p/m1.key",
      "--peer-trusted-ca-file=/p/ca.crt",
      "--peer-client-cert-auth",
      "--peer-cert-allowed-cn",
      "etcd-peer",
    ],
    {},
  );
  const files: PeerTlsFiles = config.peerTls;
  assert.deepEqual(
    { ...files },
    {
      certFile: "/p/m1.crt",
      keyFile: "/p/m1.key",
      trustedCaFile: "/p/ca.crt",
      clientCertAuth: true,
      autoTls: false,
      allowedCn: "etcd-peer",
    },
  );
  assert.equal(config.clientTls.allowedCn, "");
});

test("ETCD_PEER_CERT_ALLOWED_CN and the config file set the allowed CN", () => {
  const fromEnv = parseCommandLine([], { ETCD_PEER_CERT_ALLOWED_CN: "from-env" });
  assert.equal(fromEnv.config.peerTls.allowedCn, "from-env");
  const dir = mkdtempSync(join(tmpdir(), "etcd-ts-peer-flags-"));
  try {
    const file = join(dir, "etcd.yaml");
    writeFileSync(file, "name: m1\npeer-cert-allowed-cn: from-file\n");
    const fromFile = parseCommandLine(["--config-file", file], {});
    assert.equal(fromFile.config.peerTls.allowedCn, "from-file");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
