// --client-cert-auth identity: with auth on, a call with no token is from the user named by the
// verified client certificate's common name (etcd's AuthInfoFromTLS); a token still wins.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import {
  etcdctl,
  generateTls,
  startMember,
  type Member,
  type TlsFiles,
} from "../helpers/server.js";

const certUser = "etcd-ts-test-client"; // test/fixtures/tls/gen.sh's client CN

describe("client certificate common name as the user", { timeout: 90_000 }, () => {
  let tlsFiles: TlsFiles;
  let member: Member;
  before(async () => {
    tlsFiles = await generateTls();
    member = await startMember({
      name: "cert-auth",
      tls: tlsFiles,
      clientCertAuth: true,
      extraArgs: ["--bcrypt-cost", "4"],
    });
  });
  after(async () => {
    await member?.close();
    rmSync(tlsFiles.dir, { recursive: true, force: true });
  });

  async function ctl(args: string[]): Promise<{ code: number | null; out: string }> {
    const r = await etcdctl(args, { member });
    return { code: r.code, out: r.stdout + r.stderr };
  }

  test("the CN's user and its roles decide; a --user token overrides the certificate", async () => {
    for (const args of [
      ["user", "add", "root", "--new-user-password=rootpw"],
      ["role", "add", "root"],
      ["user", "grant-role", "root", "root"],
      ["user", "add", certUser, "--no-password"],
      ["role", "add", "certs"],
      ["role", "grant-permission", "certs", "readwrite", "cc/", "--prefix"],
      ["user", "grant-role", certUser, "certs"],
      ["auth", "enable"],
    ]) {
      const r = await ctl(args);
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.out}`);
    }
    const put = await ctl(["put", "cc/x", "1"]);
    assert.equal(put.code, 0, put.out);
    assert.equal((await ctl(["get", "cc/x", "--print-value-only"])).out, "1\n");
    const denied = await ctl(["put", "other", "1"]);
    assert.notEqual(denied.code, 0);
    assert.match(denied.out, /etcdserver: permission denied/);
    const asRoot = await ctl(["--user", "root:rootpw", "put", "other", "1"]);
    assert.equal(asRoot.code, 0, asRoot.out);
    const noPw = await ctl(["--user", `${certUser}:x`, "get", "cc/x"]);
    assert.notEqual(noPw.code, 0, "a no-password user cannot log in with a password");
  });
});
