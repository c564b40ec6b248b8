/**
 * `etcd-ts-util snapshot status FILE [-w simple|table|json|fields]` and `etcd-ts-util snapshot
 * restore FILE [--data-dir …] …`: etcdctl 3.4's `snapshot status` / `snapshot restore` (same flags,
 * same output), on lib/btree's bbolt reader and lib/server's restore.
 */
import { readFileSync } from "node:fs";
import CRC32C from "crc-32/crc32c.js";
import { BoltError, BoltFile } from "../../lib/btree/index.js";
import { restoreSnapshot, defaultWalDir } from "../../lib/server/restore.js";
import { UtilError, UtilUsageError } from "./errors.js";

/** etcdctl's snapshot.Status: hash, revision, total keys, total size. */
export interface SnapshotStatus {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

/**
 * etcdctl 3.4's Status (clientv3/snapshot v3_snapshot.go): a CRC-32C over every bucket name and
 * every key and value in bucket order; the revision is the main revision of the last key of the
 * `key` bucket; total keys counts the entries of every bucket; total size is the bbolt file size
 * (pages × page size).
 * @throws UtilError for a file that is not a sound bbolt file
 */
export function snapshotStatus(path: string): SnapshotStatus {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new UtilError("UTIL_SNAPSHOT", (err as Error).message);
  }
  try {
    return snapshotStatusOf(bytes);
  } catch (err) {
    if (err instanceof BoltError) throw new UtilError("UTIL_SNAPSHOT", `${path}: ${err.message}`);
    throw err;
  }
}

/** snapshotStatus of a file's bytes. @throws BoltError for a file that is not a bbolt file */
export function snapshotStatusOf(bytes: Buffer): SnapshotStatus {
  const f = BoltFile.open(bytes);
  let crc = 0;
  let revision = 0;
  let totalKey = 0;
  for (const [name, bucket] of f.buckets()) {
    crc = CRC32C.buf(name, crc);
    const isKey = name.toString("latin1") === "key";
    for (const [k, v] of bucket.entries()) {
      crc = CRC32C.buf(k, crc);
      crc = CRC32C.buf(v, crc);
      if (isKey) revision = Number(k.readBigUInt64BE(0));
      totalKey++;
    }
  }
  return {
    hash: crc >>> 0,
    revision,
    totalKey,
    totalSize: f.meta.pageCount * f.meta.pageSizeBytes,
  };
}

/** Go's fmt %.Nf of a value with one decimal: ties round to even, as strconv does. */
function goFixed(v: number, digits: 0 | 1): string {
  if (digits === 1) return v.toFixed(1);
  const whole = Math.floor(v);
  const frac = v - whole;
  if (Math.abs(frac - 0.5) < 1e-9) return String(whole % 2 === 0 ? whole : whole + 1);
  return String(Math.round(v));
}

/** go-humanize's Bytes (SI units, as etcdctl prints sizes): "20 kB", "2.1 MB", "7 B". */
export function humanizeBytes(n: number): string {
  if (n < 10) return `${n} B`;
  const sizes = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
  const e = Math.floor(Math.log(n) / Math.log(1000));
  const val = Math.floor((n / 1000 ** e) * 10 + 0.5) / 10;
  return `${goFixed(val, val < 10 ? 1 : 0)} ${sizes[e]}`;
}

/** etcdctl's tablewriter: centred upper-case header, right-aligned cells, +---+ borders. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const border = "+" + widths.map((w) => "-".repeat(w + 2)).join("+") + "+";
  const center = (s: string, w: number) => {
    const gap = w - s.length;
    const left = Math.floor(gap / 2);
    return " ".repeat(left) + s + " ".repeat(gap - left);
  };
  const line = (cells: string[], fmt: (s: string, w: number) => string) =>
    "| " + cells.map((c, i) => fmt(c, widths[i]!)).join(" | ") + " |";
  return [
    border,
    line(header, center),
    border,
    ...rows.map((r) => line(r, (s, w) => s.padStart(w))),
    border,
  ].join("\n");
}

/** etcdctl snapshot status's output in format `w` (simple, table, json, fields). */
export function formatSnapshotStatus(s: SnapshotStatus, w: string): string {
  const hash = s.hash.toString(16);
  switch (w) {
    case "simple":
      return `${hash}, ${s.revision}, ${s.totalKey}, ${humanizeBytes(s.totalSize)}`;
    case "table":
      return formatTable(
        ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
        [[hash, String(s.revision), String(s.totalKey), humanizeBytes(s.totalSize)]],
      );
    case "json":
      return JSON.stringify(s);
    case "fields":
      return [
        `"Hash" : ${s.hash}`,
        `"Revision" : ${s.revision}`,
        `"Keys" : ${s.totalKey}`,
        `"Size" : ${s.totalSize}`,
      ].join("\n");
    default:
      throw new UtilUsageError(`${w} not supported as output format`);
  }
}

/** The flags of `snapshot restore`, with etcdctl 3.4's defaults. */
export const restoreFlagNames = [
  "data-dir",
  "wal-dir",
  "name",
  "initial-cluster",
  "initial-cluster-token",
  "initial-advertise-peer-urls",
  "skip-hash-check",
];

/**
 * etcdctl snapshot restore: builds the data dir (lib/server restore.ts) and reports, on stderr,
 * the lines etcdctl logs ("added member", "restored snapshot").
 */
export async function snapshotRestore(file: string, flags: Map<string, string>): Promise<string[]> {
  const name = flags.get("name") ?? "default";
  const dataDir = flags.get("data-dir") || `${name}.etcd`;
  const walDir = flags.get("wal-dir") || defaultWalDir(dataDir);
  const r = await restoreSnapshot({
    snapshotPath: file,
    name,
    dataDir,
    walDir,
    initialCluster: flags.get("initial-cluster") ?? `${name}=http://localhost:2380`,
    initialClusterToken: flags.get("initial-cluster-token") ?? "etcd-cluster",
    initialAdvertisePeerUrls: (flags.get("initial-advertise-peer-urls") ?? "http://localhost:2380")
      .split(",")
      .filter((u) => u !== ""),
    skipHashCheck: flags.get("skip-hash-check") === "true",
  });
  const lines = r.members.map((m) =>
    JSON.stringify({
      level: "info",
      msg: "added member",
      "cluster-id": r.clusterId.toString(16),
      "local-member-id": "0",
      "added-peer-id": m.id.toString(16),
      "added-peer-peer-urls": m.peerUrls,
    }),
  );
  lines.push(
    JSON.stringify({
      level: "info",
      msg: "restored snapshot",
      path: file,
      "wal-dir": r.walDir,
      "data-dir": r.dataDir,
      "snap-dir": r.snapDir,
    }),
  );
  return lines;
}
