/**
 * Real etcd 3.4 starts from a WAL written by lib/wal (several small segments, so our cuts, crc
 * records and segment headers are what etcd reads), serves the replayed keys, appends to it, and
 * lib/wal then reads etcd's appends back. Skipped when `etcd` / `etcdctl` are not installed.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { InternalRaftRequest } from "../../lib/proto/gen/etcdserverpb/raft_internal.js";
import { WAL } from "../../lib/wal/index.js";
import { decodeEntry, decodeHardState } from "../../lib/wal/decoder.js";
import { listRecords, tempDataDir } from "./harness.js";

const fixture = join(
  fileURLToPath(new URL("../../../", import.meta.url)),
  "test/fixtures/etcd-3.4-wal/0000000000000000-0000000000000000.wal",
);

function onPath(bin: string): boolean {
  return (process.env.PATH ?? "").split(":").some((d) => {
    try {
      return readdirSync(d).includes(bin);
    } catch {
      return false;
    }
  });
}

const haveEtcd = onPath("etcd") && onPath("etcdctl");

function etcdctl(
  endpoint: string,
  ...args: string[]
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync("etcdctl", ["--endpoints", endpoint, "--command-timeout=3s", ...args], {
    encoding: "utf8",
    env: { ...process.env, ETCDCTL_API: "3" },
    timeout: 10_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface RunningEtcd {
  child: ChildProcess;
  client: string;
  exited: Promise<void>;
}

/**
 * Starts etcd on random high loopback ports and waits until it is healthy; a start that dies
 * (a port already taken) is retried on other ports, up to three times.
 */
async function startEtcd(dataDir: string): Promise<RunningEtcd> {
  let lastErr = "";
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const client = `http://127.0.0.1:${port}`;
    const peer = `http://127.0.0.1:${port + 1}`;
    const child = spawn(
      "etcd",
      [
        ...["--name", "fixture", "--data-dir", dataDir, "--log-level", "error"],
        ...["--listen-client-urls", client, "--advertise-client-urls", client],
        ...["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer],
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    let dead = false;
    const exited = new Promise<void>((resolve) =>
      child.once("exit", () => {
        dead = true;
        resolve();
      }),
    );
    for (let i = 0; i < 60 && !dead; i++) {
      if (etcdctl(client, "endpoint", "health").status === 0) return { child, client, exited };
      await new Promise((r) => setTimeout(r, 250));
    }
    child.kill("SIGKILL");
    await exited;
    lastErr = stderr;
  }
  throw new Error(`etcd did not come up: ${lastErr}`);
}

describe(
  "interoperation with real etcd 3.4",
  { skip: !haveEtcd && "etcd/etcdctl not installed" },
  () => {
    test("etcd restarts from our multi-segment WAL, serves its keys, and we read etcd's appends", async () => {
      const t = tempDataDir("wal-etcd-");
      try {
        await runInterop(t.dataDir);
      } finally {
        t.cleanup();
      }
    });
  },
);

async function runInterop(dataDir: string): Promise<void> {
  const walDir = join(dataDir, "data.etcd", "member", "wal");
  const recs = await listRecords(fixture);
  const wal = await WAL.create(walDir, recs[1]!.data, { segmentSizeBytes: 300 });
  for (const rec of recs.slice(3)) {
    if (rec.type === 2) await wal.save(undefined, [decodeEntry(rec.data)]);
    else await wal.save(decodeHardState(rec.data), []);
  }
  await wal.close();
  assert.ok(readdirSync(walDir).length >= 3, "several segments");

  const { child, client, exited } = await startEtcd(join(dataDir, "data.etcd"));
  try {
    const got = JSON.parse(etcdctl(client, "get", "--prefix", "fixture-key", "-w", "json").stdout);
    assert.equal(got.header.revision, 5);
    assert.deepEqual(
      got.kvs.map((kv: { key: string; value: string }) => [
        Buffer.from(kv.key, "base64").toString(),
        Buffer.from(kv.value, "base64").toString(),
      ]),
      [["fixture-key-1", "value-1b"]],
    );
    assert.equal(etcdctl(client, "put", "written-by-etcd", "after-restart").status, 0);
  } finally {
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }

  {
    const r = await WAL.open(walDir);
    const puts = r.entries
      .filter((e) => e.type === 0 && e.data.length > 0)
      .map((e) => {
        try {
          return InternalRaftRequest.fromBinary(e.data).put;
        } catch {
          return undefined; // v2 Request entries
        }
      })
      .filter((p) => p !== undefined)
      .map((p) => Buffer.from(p!.key).toString());
    assert.ok(puts.includes("written-by-etcd"), `etcd's append read back: ${puts}`);
    assert.ok(r.hardState.term >= 3);
    await r.wal.close();
  }
}
