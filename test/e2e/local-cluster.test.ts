// `etcd-ts-util local-cluster --members 3 --tls` (issue 14): starts a TLS cluster on loopback
// with generated certificates, prints the endpoints and an etcdctl line that works as printed,
// and stops its members on SIGINT.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { portsFree, repoRoot, run, waitFor } from "../helpers/server.js";

const offsets = [0, 20_000, 30_000];

test(
  "local-cluster --members 3 --tls serves a TLS cluster its etcdctl line reaches",
  { timeout: 90_000 },
  async () => {
    let base = 0;
    for (let i = 0; i < 20 && base === 0; i++) {
      const b = 10_000 + 2 * Math.floor(Math.random() * 2500);
      const ports = offsets.flatMap((o) => [b + o, b + o + 1]);
      if (await portsFree(ports)) base = b;
    }
    assert.ok(base > 0, "no free port range");
    const dir = mkdtempSync(join(tmpdir(), "local-cluster-"));
    const util = join(repoRoot(), "dist", "tools", "etcd-ts-util.js");
    const child = spawn(
      process.execPath,
      [util, "local-cluster", "--members", "3", "--tls", "--dir", dir, "--base-port", String(base)],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (out += b.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    try {
      await waitFor("the members are up", () => out.includes("Ctrl-C stops"), 60_000);
      const line = out.split("\n").find((l) => l.startsWith("etcdctl "));
      assert.ok(line, out);
      const args = line.split(" ").slice(1);
      assert.ok(args.includes("--cacert"), line);
      const r = await run("/usr/bin/etcdctl", args, {
        env: { ETCDCTL_API: "3" },
        timeoutMs: 20_000,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal((r.stdout.match(/\| started \|/g) ?? []).length, 3, r.stdout);
      assert.match(r.stdout, /https:\/\/127\.0\.0\.1/);
    } finally {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, "SIGINT");
      const code = await Promise.race([
        exited,
        new Promise((r) => setTimeout(() => r("timeout"), 20_000)),
      ]);
      if (code === "timeout" && child.pid !== undefined) process.kill(child.pid, "SIGKILL");
      assert.equal(code, 0, out);
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
