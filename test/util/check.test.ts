// etcd-ts-util check disk / check perf / wal dump, bounded: a disk check of a few hundred syncs,
// check perf with the smallest load for 3 s against a member started here, and a WAL dump of the
// member's data dir after it wrote known keys.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { etcdctl, repoRoot, startMember, type Member } from "../helpers/server.js";
import { TOOLS_TEST_TARGET } from "../bench/target.js";
import { checkDisk, defaultCheckDiskOptions } from "../../tools/util/check-disk.js";
import { checkPerf } from "../../tools/util/check-perf.js";
import { PrefixNotEmptyError, UtilUsageError } from "../../tools/util/errors.js";
import { walDump } from "../../tools/util/wal-dump.js";

const bin = (): string => join(repoRoot(), "dist", "tools", "etcd-ts-util.js");

function runUtil(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [bin(), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    c.stdout.on("data", (d: Buffer) => (out += d.toString()));
    c.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const t = setTimeout(() => c.kill("SIGKILL"), 60_000);
    c.on("close", (code) => {
      clearTimeout(t);
      resolve({ code, out, err });
    });
  });
}

describe("check disk", () => {
  test("measures bounded fdatasync latency and batch throughput, removes its scratch file", () => {
    const dir = mkdtempSync(join(tmpdir(), "check-disk-"));
    try {
      const o = defaultCheckDiskOptions(dir);
      o.syncCount = 200;
      o.syncSeconds = 3;
      o.batchSeconds = 0.3;
      o.scratchBytes = 8 * 1024 * 1024;
      const r = checkDisk(o);
      assert.ok(r.syncs > 0 && r.syncs <= 200);
      assert.equal(r.syncLatencyMs.count, r.syncs);
      assert.deepEqual(
        r.batches.map((b) => b.recordsPerSync),
        [1, 10, 100, 1000],
      );
      for (const b of r.batches)
        assert.ok(b.records >= b.recordsPerSync && b.mebibytesPerSecond > 0);
      assert.equal(r.pass, r.syncLatencyMs.p99 < 10);
      assert.match(r.verdict, r.pass ? /^PASS/ : /^FAIL/);
      assert.deepEqual(readdirSync(dir), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("CLI prints the table and the verdict", async () => {
    const dir = mkdtempSync(join(tmpdir(), "check-disk-"));
    try {
      const r = await runUtil([
        "check",
        "disk",
        "--data-dir",
        dir,
        "--count",
        "100",
        "--seconds",
        "2",
        "--batch-seconds",
        "0.2",
      ]);
      assert.ok(r.code === 0 || r.code === 2, r.err);
      assert.match(r.out, /syncs\/s/);
      assert.match(r.out, /records\/sync/);
      assert.match(r.out, /^(PASS|FAIL): p99 fdatasync/m);
      assert.equal((await runUtil(["check", "disk"])).code, 1); // --data-dir is required
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe(`check perf and wal dump against ${TOOLS_TEST_TARGET}`, { timeout: 120_000 }, () => {
  let m: Member;
  before(async () => {
    m = await startMember({ target: TOOLS_TEST_TARGET });
  });
  after(async () => {
    await m?.close();
  });

  test("check perf -load s for 3 s: etcdctl's load, lines and clean-up (verdict not asserted: timing)", async () => {
    const r = await checkPerf({
      endpoints: [m.hostPort],
      load: "s",
      prefix: "/check-perf-test/",
      autoCompact: false,
      autoDefrag: false,
      durationSeconds: 3,
      progress: false,
    });
    assert.equal(r.limit, 150);
    assert.equal(r.clients, 50);
    assert.ok(r.requests >= 400 && r.requests <= 460, String(r.requests));
    assert.deepEqual(r.errors, {});
    // Performance is measured, never asserted: only the shape of etcdctl's lines is checked.
    assert.match(r.lines[0]!, /^(PASS: Throughput is|FAIL: Throughput too low:) \d+ writes\/s$/);
    assert.match(
      r.lines[1]!,
      /^(PASS: Slowest request took|Slowest request took too long:) \d+\.\d{6}s$/,
    );
    assert.match(r.lines[2]!, /^(PASS: Stddev is|Stddev too high:) \d+\.\d{6}s$/);
    assert.equal(r.lines.at(-1), r.pass ? "PASS" : "FAIL");
    assert.equal(
      r.pass,
      r.lines.slice(0, 3).every((l) => l.startsWith("PASS")),
    );
    const left = await etcdctl(["get", "--prefix", "/check-perf-test/", "--keys-only"], {
      member: m,
    });
    assert.equal(left.stdout.trim(), "");
  });

  test("check perf refuses a prefix that has keys, and unknown loads", async () => {
    await etcdctl(["put", "/busy/x", "1"], { member: m });
    await assert.rejects(
      checkPerf({
        endpoints: [m.hostPort],
        load: "s",
        prefix: "/busy/",
        autoCompact: false,
        autoDefrag: false,
        durationSeconds: 1,
        progress: false,
      }),
      PrefixNotEmptyError,
    );
    await assert.rejects(
      checkPerf({
        endpoints: [m.hostPort],
        load: "xxl",
        prefix: "/p/",
        autoCompact: false,
        autoDefrag: false,
        durationSeconds: 1,
        progress: false,
      }),
      UtilUsageError,
    );
  });

  test("check perf CLI with --auto-compact prints the verdict and compacts (exit 0 PASS, 2 FAIL)", async () => {
    const r = await runUtil([
      "check",
      "perf",
      "--endpoints",
      m.hostPort,
      "--load",
      "s",
      "--duration",
      "2s",
      "--auto-compact",
      "--prefix",
      "/cp2/",
    ]);
    assert.ok(r.code === 0 || r.code === 2, r.out + r.err);
    assert.match(r.out, r.code === 0 ? /^PASS$/m : /^FAIL$/m);
    assert.match(r.out, /Compacted with revision \d+/);
  });

  test("wal dump lists the member's entries with the puts it served", async () => {
    await etcdctl(["put", "dump-key-1", "v1"], { member: m });
    await etcdctl(["put", "dump-key-2", "v2"], { member: m });
    const lines = await walDump({ dataDir: m.dataDir, json: false, maxEntries: 1_000_000 });
    const text = lines.join("\n");
    assert.match(text, /nodeID=[0-9a-f]+ clusterID=[0-9a-f]+/);
    assert.match(text, /\tconf\tmethod=ConfChangeAddNode id=[0-9a-f]+/);
    const b64 = Buffer.from("dump-key-2").toString("base64");
    assert.ok(text.includes(b64), "the put of dump-key-2 is in the dump");
    const r = await runUtil(["wal", "dump", "--data-dir", m.dataDir, "--json"]);
    assert.equal(r.code, 0, r.err);
    const rows = r.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(rows.length > 3);
    assert.ok(
      rows.slice(1).every((e) => typeof e["index"] === "number" && typeof e["term"] === "number"),
    );
  });
});

describe("wal dump errors", () => {
  test("a dir without a WAL fails with lib/wal's error, CLI exit 1", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wal-dump-"));
    try {
      await assert.rejects(walDump({ dataDir: dir, json: false, maxEntries: 10 }));
      assert.equal((await runUtil(["wal", "dump", "--data-dir", dir])).code, 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
