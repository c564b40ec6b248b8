// Restart from db + WAL tail, and the faults issue 13 names: a corrupt db or .snap file (flipped
// byte, truncated, wrong magic, wrong checksum) is refused with an error naming the file and what
// failed; a corrupt newest .snap falls back to an older one whose WAL entries exist (logged); a db
// whose consistent index is ahead of the WAL is an error. In-process members (EtcdServer) for speed;
// one spawned etcd-ts checks the process exits non-zero with the message.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { BoltFile } from "../../lib/btree/index.js";
import { EtcdServer, defaultConfig, type ServerConfig } from "../../lib/server/index.js";
import { DataDirFileError } from "../../lib/server/errors.js";
import { WAL } from "../../lib/wal/index.js";
import { Metadata } from "../../lib/proto/gen/etcdserverpb/etcdserver.js";
import { run, serverCommand, freePort, waitFor } from "../helpers/server.js";

const SNAPSHOT_COUNT = 10;
const KEYS = 45;

interface Started {
  server: EtcdServer;
  logs: string[];
}

async function startServer(dataDir: string, extra: Partial<ServerConfig> = {}): Promise<Started> {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString());
      cb();
    },
  });
  const logger = pino({ level: "info" }, sink);
  const peer = "http://127.0.0.1:1";
  const config: ServerConfig = {
    ...defaultConfig(),
    name: "rec",
    dataDir,
    initialCluster: `rec=${peer}`,
    listenPeerUrls: [peer],
    initialAdvertisePeerUrls: [peer],
    listenClientUrls: ["http://127.0.0.1:0"],
    advertiseClientUrls: ["http://127.0.0.1:0"],
    snapshotCount: SNAPSHOT_COUNT,
    electionTimeoutMs: 200,
    heartbeatIntervalMs: 20,
    ...extra,
  };
  return { server: await EtcdServer.start({ config, logger }), logs };
}

const enc = (s: string) => Buffer.from(s);

/** Puts key-000.. with value "<prefix>-<i>", one at a time. */
async function putKeys(s: EtcdServer, n: number, prefix: string): Promise<void> {
  for (let i = 0; i < n; i++) {
    await s.put({
      key: enc(`key-${String(i).padStart(3, "0")}`),
      value: enc(`${prefix}-${i}`),
      lease: 0n,
      prevKv: false,
      ignoreValue: false,
      ignoreLease: false,
    });
  }
}

async function dump(s: EtcdServer): Promise<{ revision: number; kvs: string[] }> {
  const r = await s.range({
    key: enc("key-"),
    rangeEnd: enc("key."),
    limit: 0,
    revision: 0,
    sortOrder: 0,
    sortTarget: 0,
    serializable: true,
    keysOnly: false,
    countOnly: false,
    minModRevision: 0,
    maxModRevision: 0,
    minCreateRevision: 0,
    maxCreateRevision: 0,
  });
  return {
    revision: s.store.currentRevision,
    kvs: r.kvs.map(
      (kv) => `${Buffer.from(kv.key)}=${Buffer.from(kv.value)}@${kv.modRevision}/${kv.version}`,
    ),
  };
}

/** Waits (bounded) until the member's newest snapshot is at or past `index`. */
async function waitSnapshot(s: EtcdServer, index: number): Promise<void> {
  for (let i = 0; i < 500 && s.snapshotIndex < index; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(s.snapshotIndex >= index, `snapshot reached ${s.snapshotIndex}, want ${index}`);
}

async function expectRefused(dataDir: string, file: RegExp, reason: RegExp): Promise<void> {
  await assert.rejects(startServer(dataDir), (err: Error) => {
    assert.ok(err instanceof DataDirFileError, `${err.constructor.name}: ${err.message}`);
    assert.match(err.file, file);
    assert.match(err.message, reason);
    return true;
  });
}

describe("restart from db + WAL tail; corrupt files refused", { timeout: 120_000 }, () => {
  let base: string;
  let golden: string;
  let want: { revision: number; kvs: string[] };

  before(async () => {
    base = mkdtempSync(join(tmpdir(), "etcd-recovery-"));
    golden = join(base, "golden");
    const { server } = await startServer(golden);
    await putKeys(server, KEYS, "a");
    await putKeys(server, 7, "b");
    await waitSnapshot(server, 4 * SNAPSHOT_COUNT);
    want = await dump(server);
    await server.stop();
  });
  after(() => {
    if (!process.env.KEEP_TEST_DIRS) rmSync(base, { recursive: true, force: true });
  });

  function copy(name: string): string {
    const d = join(base, name);
    cpSync(golden, d, { recursive: true });
    return d;
  }
  const snapDir = (d: string) => join(d, "member", "snap");
  const snaps = (d: string) =>
    readdirSync(snapDir(d))
      .filter((n) => n.endsWith(".snap"))
      .sort();

  test("a restart loads the db and replays only the WAL entries after its consistent index", async () => {
    const d = copy("restart");
    const db = (await import("../../lib/server/recovery.js")).readDbFile(join(snapDir(d), "db"));
    const dbIndex = db.consistentIndex;
    db.close();
    const { server, logs } = await startServer(d);
    try {
      assert.deepEqual(await dump(server), want);
      const line = logs.find((l) => l.includes("restarting member from db and WAL"));
      assert.ok(line !== undefined);
      const info = JSON.parse(line) as { snapshotIndex: number; consistentIndex: number };
      assert.equal(info.consistentIndex, dbIndex);
      assert.ok(info.snapshotIndex > 0 && info.snapshotIndex <= dbIndex, line);
      // writes go on, and a later restart still sees them
      await putKeys(server, 3, "c");
      const after1 = await dump(server);
      await server.stop();
      const again = await startServer(d);
      assert.deepEqual(await dump(again.server), after1);
      await again.server.stop();
    } finally {
      await server.stop();
    }
  });

  test("db with a wrong magic in both meta pages is refused", async () => {
    const d = copy("db-magic");
    const db = join(snapDir(d), "db");
    const b = readFileSync(db);
    const ps = BoltFile.open(b).meta.pageSizeBytes;
    b.writeUInt32LE(0xdeadbeef, 16);
    b.writeUInt32LE(0xdeadbeef, ps + 16);
    writeFileSync(db, b);
    await expectRefused(d, /member\/snap\/db$/, /magic/);
  });

  test("db whose meta pages fail their checksum is refused", async () => {
    const d = copy("db-checksum");
    const db = join(snapDir(d), "db");
    const b = readFileSync(db);
    const ps = BoltFile.open(b).meta.pageSizeBytes;
    b[16 + 40] ^= 0x01; // inside the checksummed part of each meta (its txid)
    b[ps + 16 + 40] ^= 0x01;
    writeFileSync(db, b);
    await expectRefused(d, /member\/snap\/db$/, /checksum/);
  });

  test("truncated db is refused", async () => {
    const d = copy("db-truncated");
    const db = join(snapDir(d), "db");
    truncateSync(db, Math.floor(readFileSync(db).length / 2));
    await expectRefused(d, /member\/snap\/db$/, /bytes, its meta says/);
  });

  test("db with a flipped byte in a page header is refused", async () => {
    const d = copy("db-flipped");
    const db = join(snapDir(d), "db");
    const b = readFileSync(db);
    const { rootPgid, pageSizeBytes } = BoltFile.open(b).meta;
    b[rootPgid * pageSizeBytes + 8] ^= 0xff; // the root page's flags
    writeFileSync(db, b);
    await expectRefused(d, /member\/snap\/db$/, /page/);
  });

  test("a corrupt newest .snap falls back to an older one whose WAL entries exist, logged", async () => {
    const d = copy("snap-fallback");
    const names = snaps(d);
    assert.ok(names.length >= 2, names.join(" "));
    const newest = join(snapDir(d), names[names.length - 1]!);
    const b = readFileSync(newest);
    b[Math.floor(b.length / 2)] ^= 0x20;
    writeFileSync(newest, b);
    const { server, logs } = await startServer(d);
    try {
      assert.deepEqual(await dump(server), want);
      assert.ok(
        logs.some((l) => l.includes("falling back to an older one") && l.includes("crc mismatch")),
        logs.join(""),
      );
      assert.ok(existsSync(newest + ".broken"), "the corrupt file is kept as .broken");
    } finally {
      await server.stop();
    }
  });

  test("a truncated or empty .snap with nothing older to fall back to is refused", async () => {
    // small segments and --max-wals 1: the first segment is purged, so index 0 is gone too
    const d = join(base, "snap-only");
    const { server } = await startServer(d, {
      walSegmentSizeBytes: 1024,
      maxWals: 1,
      maxSnapshots: 1,
    });
    await putKeys(server, KEYS, "z");
    await waitSnapshot(server, 3 * SNAPSHOT_COUNT);
    await server.stop();
    assert.ok(!existsSync(join(d, "member", "wal", "0000000000000000-0000000000000000.wal")));
    const only = snaps(d);
    assert.equal(only.length, 1);
    const path = join(snapDir(d), only[0]!);
    const good = readFileSync(path);
    truncateSync(path, Math.floor(good.length / 3));
    await expectRefused(d, new RegExp(only[0]!.replace(".", "\\.")), /snappb|crc|empty/);
    writeFileSync(path, Buffer.alloc(0));
    rmSync(path + ".broken");
    await expectRefused(d, new RegExp(only[0]!.replace(".", "\\.")), /empty/);
  });

  test("a db whose consistent index is ahead of the WAL is an error", async () => {
    const early = join(base, "early");
    const { server } = await startServer(early);
    await putKeys(server, 3, "e");
    await server.stop();
    cpSync(join(snapDir(golden), "db"), join(snapDir(early), "db"));
    await expectRefused(early, /member\/snap\/db$/, /consistent index \d+ is ahead of the WAL/);
    // and the snapshot records of a WAL can be listed without opening it for writing
    const v = await WAL.validSnapshotEntries(join(early, "member", "wal"));
    assert.deepEqual(v.snapshots, [{ index: 0, term: 0 }]);
  });

  test("a WAL that lost its bootstrap entries (no entries, no snapshot) is refused, naming the data dir", async () => {
    // what a power loss before the first fdatasync leaves: WAL.create's durable head (metadata,
    // snapshot {0,0}) and nothing of the first save's bootstrap ConfChanges
    const lost = join(base, "lost-bootstrap");
    const wal = await WAL.create(
      join(lost, "member", "wal"),
      Metadata.toBinary(Metadata.create({ nodeID: 0x1234n, clusterID: 0x5678n })),
    );
    await wal.close();
    await expectRefused(
      lost,
      /member\/wal$/,
      new RegExp(
        `no entries and there is no snapshot: this member's bootstrap entries were lost.*${lost}`,
      ),
    );
  });

  test("a snapshot that cannot be written is logged and retried; the member keeps serving", async () => {
    const d = join(base, "write-fails");
    const { server, logs } = await startServer(d);
    try {
      // db.tmp as a non-empty directory: opening it for writing fails like a full disk would
      mkdirSync(join(snapDir(d), "db.tmp", "blocker"), { recursive: true });
      await putKeys(server, 2 * SNAPSHOT_COUNT, "f");
      await waitFor("a failed snapshot", () =>
        logs.some((l) => l.includes("snapshot failed; serving from memory and retrying later")),
      );
      assert.equal(server.snapshotIndex, 0);
      await putKeys(server, 5, "g"); // still serving
      rmSync(join(snapDir(d), "db.tmp"), { recursive: true });
      // the retry comes with a later apply once its back-off (5 s) has passed: bounded wait
      for (let i = 0; i < 100 && server.snapshotIndex === 0; i++) {
        await putKeys(server, 1, "h");
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(server.snapshotIndex > 0, "the snapshot was retried and written");
      const before = await dump(server);
      await server.stop();
      const again = await startServer(d);
      assert.deepEqual(await dump(again.server), before);
      await again.server.stop();
    } finally {
      await server.stop();
    }
  });

  test("etcd-ts exits non-zero on a corrupt db, naming the file", async () => {
    const d = copy("db-process");
    const db = join(snapDir(d), "db");
    truncateSync(db, 4096 * 3);
    const { cmd, args } = serverCommand("etcd-ts");
    const port = await freePort();
    const r = await run(
      cmd,
      [
        ...args,
        "--name",
        "rec",
        "--data-dir",
        d,
        "--listen-client-urls",
        `http://127.0.0.1:${port}`,
        "--advertise-client-urls",
        `http://127.0.0.1:${port}`,
      ],
      { timeoutMs: 20_000 },
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`etcd-ts: ${db.replace(/[.]/g, "\\.")}: `));
  });
});
