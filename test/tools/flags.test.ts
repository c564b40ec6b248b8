import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FlagError, parseCommandLine, parseGoDurationMs } from "../../tools/flags.js";

test("no flags gives etcd's defaults", () => {
  const { config } = parseCommandLine([], {});
  assert.equal(config.name, "default");
  assert.equal(config.dataDir, "default.etcd");
  assert.deepEqual(config.listenClientUrls, ["http://localhost:2379"]);
  assert.equal(config.initialCluster, "default=http://localhost:2380");
  assert.equal(config.maxRequestBytes, 1572864);
  assert.equal(config.maxTxnOps, 128);
  assert.equal(config.heartbeatIntervalMs, 100);
  assert.equal(config.electionTimeoutMs, 1000);
  assert.equal(config.snapshotCount, 100000); // etcd 3.4's (`etcd --help`: '100000')
  assert.equal(config.maxSnapshots, 5);
  assert.equal(config.maxWals, 5);
});

test("flags accept --f v, --f=v and -f v; bools need no value", () => {
  const { config } = parseCommandLine(
    ["--name", "n1", "-data-dir=/tmp/x", "--client-cert-auth", "--max-txn-ops", "7"],
    {},
  );
  assert.equal(config.name, "n1");
  assert.equal(config.dataDir, "/tmp/x");
  assert.equal(config.clientTls.clientCertAuth, true);
  assert.equal(config.maxTxnOps, 7);
});

test("ETCD_* variables apply unless the flag is given", () => {
  const { config, notes } = parseCommandLine(["--name", "flag"], {
    ETCD_NAME: "env",
    ETCD_QUOTA_BACKEND_BYTES: "1234",
    ETCD_UNKNOWN_THING: "1",
  });
  assert.equal(config.name, "flag");
  assert.equal(config.quotaBackendBytes, 1234);
  assert.ok(notes.some((n) => n.includes("unrecognized environment variable ETCD_UNKNOWN_THING")));
});

test("unknown flags and bad values are refused with Go flag's wording", () => {
  assert.throws(
    () => parseCommandLine(["--nope"], {}),
    (e: Error) => e instanceof FlagError && /flag provided but not defined: -nope/.test(e.message),
  );
  assert.throws(() => parseCommandLine(["--max-txn-ops", "x"], {}), /invalid value "x"/);
  assert.throws(
    () => parseCommandLine(["--listen-client-urls", "ftp://a:1"], {}),
    /URL scheme must be http/,
  );
  assert.throws(
    () => parseCommandLine(["--initial-cluster-state", "old"], {}),
    /initial-cluster-state/,
  );
});

test("--config-file reads YAML with etcd's keys and ignores flags and environment", () => {
  const dir = mkdtempSync(join(tmpdir(), "etcd-ts-cfg-"));
  const file = join(dir, "etcd.yaml");
  writeFileSync(
    file,
    [
      "name: yaml-member",
      "data-dir: /tmp/yaml-data",
      "listen-client-urls: https://127.0.0.1:3379",
      "auto-compaction-mode: revision",
      "auto-compaction-retention: '100'",
      "client-transport-security:",
      "  cert-file: /c.pem",
      "  key-file: /k.pem",
      "  client-cert-auth: true",
      "  trusted-ca-file: /ca.pem",
    ].join("\n"),
  );
  const { config } = parseCommandLine(["--config-file", file, "--name", "ignored"], {
    ETCD_NAME: "ignored",
  });
  assert.equal(config.name, "yaml-member");
  assert.equal(config.dataDir, "/tmp/yaml-data");
  assert.deepEqual(config.listenClientUrls, ["https://127.0.0.1:3379"]);
  assert.equal(config.autoCompactionMode, "revision");
  assert.equal(config.autoCompactionRetention, "100");
  assert.equal(config.clientTls.certFile, "/c.pem");
  assert.equal(config.clientTls.clientCertAuth, true);
});

test("Go durations parse to milliseconds", () => {
  assert.equal(parseGoDurationMs("100ms"), 100);
  assert.equal(parseGoDurationMs("1h30m"), 5400000);
  assert.equal(parseGoDurationMs("2s"), 2000);
  assert.throws(() => parseGoDurationMs("5 minutes"));
});

test("the WAL and snapshot tuning flags: defaults, values and bad values", () => {
  const d = parseCommandLine([], {}).config;
  assert.equal(d.walFillAheadBytes, 8 * 1024 * 1024);
  assert.equal(d.walSyncWriteMaxEntries, 1);
  assert.equal(d.walLoneVoterSyncWriteMaxEntries, 1024);
  assert.equal(d.snapshotMaxBusyPercent, 50);
  assert.equal(d.snapshotWalPercentOfDb, 50);
  const { config } = parseCommandLine(
    [
      "--experimental-wal-fill-ahead-bytes",
      "0",
      "--experimental-wal-lone-voter-sync-write-max-entries",
      "16",
      "--experimental-snapshot-max-busy-percent",
      "25",
      "--experimental-snapshot-wal-percent-of-db",
      "0",
    ],
    {},
  );
  assert.equal(config.walFillAheadBytes, 0);
  assert.equal(config.walLoneVoterSyncWriteMaxEntries, 16);
  assert.equal(config.snapshotMaxBusyPercent, 25);
  assert.equal(config.snapshotWalPercentOfDb, 0);
  for (const bad of [
    ["--experimental-wal-fill-ahead-bytes", "-1"],
    ["--experimental-wal-lone-voter-sync-write-max-entries", "-2"],
    ["--experimental-snapshot-max-busy-percent", "0"],
    ["--experimental-snapshot-max-busy-percent", "101"],
    ["--experimental-snapshot-wal-percent-of-db", "-1"],
  ])
    assert.throws(() => parseCommandLine(bad, {}), /must be/, bad.join(" "));
});
