/**
 * `etcd-ts-util wal dump`: prints a data dir's WAL the way etcd's etcd-dump-logs does — the
 * metadata (node and cluster ids), the hard state, then one line per entry (term, index, type,
 * decoded request) — reading read-only through lib/wal's WAL.read (etcd's OpenForRead), so it is
 * safe on a data dir a running member holds. It starts from the newest snapshot named in
 * member/snap (as etcd-dump-logs does) when older segments were purged.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { WAL, type WalSnapshot } from "../../lib/wal/index.js";
import { decodeEntryData } from "../../lib/server/v2-request.js";
import { Metadata } from "../../lib/proto/gen/etcdserverpb/etcdserver.js";
import { InternalRaftRequest } from "../../lib/proto/gen/etcdserverpb/raft_internal.js";
import {
  ConfChange,
  ConfChangeType,
  EntryType,
  type Entry,
} from "../../lib/proto/gen/raftpb/raft.js";

export interface WalDumpOptions {
  dataDir: string;
  /** Start after this snapshot instead of the newest in member/snap. */
  snapshot?: WalSnapshot;
  /** One JSON object per line instead of the table. */
  json: boolean;
  /** Print at most this many entries (the newest are cut). */
  maxEntries: number;
}

/** Longest decoded request printed per entry, characters (the rest is cut with an ellipsis). */
export const MAX_DATA_CHARS = 160;

/** Most entries printed unless told otherwise. */
export const DEFAULT_MAX_DUMP_ENTRIES = 1_000_000;

function hex(n: bigint): string {
  return n.toString(16);
}

/** The newest `%016x-%016x.snap` (term-index) in member/snap, or index 0. */
export function newestSnapName(dataDir: string): WalSnapshot {
  let best: WalSnapshot = { index: 0, term: 0 };
  let names: string[] = [];
  try {
    names = readdirSync(join(dataDir, "member", "snap"));
  } catch {
    return best;
  }
  for (const n of names) {
    const m = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/.exec(n);
    if (m === null) continue;
    const term = parseInt(m[1]!, 16);
    const index = parseInt(m[2]!, 16);
    if (index > best.index) best = { index, term };
  }
  return best;
}

/** One entry as text: type and, for normal entries, the request it carries. */
export function describeEntry(e: Entry): { type: string; data: string } {
  if (e.type === EntryType.EntryConfChange) {
    try {
      const cc = ConfChange.fromBinary(e.data);
      return { type: "conf", data: `method=${ConfChangeType[cc.type]} id=${hex(cc.nodeID)}` };
    } catch {
      return { type: "conf", data: `undecodable (${e.data.length} bytes)` };
    }
  }
  if (e.type === EntryType.EntryConfChangeV2)
    return { type: "confv2", data: `${e.data.length} bytes` };
  if (e.data.length === 0) return { type: "norm", data: "" };
  let decoded: ReturnType<typeof decodeEntryData>;
  try {
    decoded = decodeEntryData(e.data);
  } catch {
    return { type: "norm", data: `undecodable (${e.data.length} bytes)` };
  }
  if (decoded.kind === "v2") {
    // etcd 3.4's v2 Request entries (member attributes, cluster version), as etcd-dump-logs prints
    const q = decoded.request;
    return { type: "norm", data: `ID=${hex(q.iD)} method=${q.method} path=${q.path} val=${q.val}` };
  }
  try {
    const r = decoded.request;
    const json = InternalRaftRequest.toJson(r, { emitDefaultValues: false }) as Record<
      string,
      unknown
    >;
    delete json["header"];
    delete json["ID"];
    delete json["iD"];
    // etcd 3.4 puts the request id in the header; InternalRaftRequest.ID is the v2-era field.
    const id = r.header !== undefined && r.header.iD !== 0n ? r.header.iD : r.iD;
    let body = JSON.stringify(json);
    if (body.length > MAX_DATA_CHARS) body = body.slice(0, MAX_DATA_CHARS) + "…";
    return { type: "norm", data: `ID=${hex(id)} ${body}` };
  } catch {
    return { type: "norm", data: `undecodable (${e.data.length} bytes)` };
  }
}

/**
 * Where the dump starts without --start-index: the newest .snap file the WAL has a snapshot record
 * for (a .snap written just before a crash may have none), else the oldest record the WAL still
 * holds (index 0 on a WAL that was never released).
 */
async function startSnapshot(dataDir: string, walDir: string): Promise<WalSnapshot> {
  const { snapshots } = await WAL.validSnapshotEntries(walDir);
  const held = (s: WalSnapshot) => snapshots.some((w) => w.index === s.index && w.term === s.term);
  const newest = newestSnapName(dataDir);
  if (held(newest)) return newest;
  return snapshots[0] ?? { index: 0, term: 0 };
}

/**
 * Reads the WAL under `<dataDir>/member/wal` and returns the dump as lines. Throws lib/wal's
 * errors (WalCorruptError naming file and offset, WalSnapshotNotFoundError, …) unchanged.
 */
export async function walDump(o: WalDumpOptions): Promise<string[]> {
  const walDir = join(o.dataDir, "member", "wal");
  const snap = o.snapshot ?? (await startSnapshot(o.dataDir, walDir));
  const r = await WAL.read(walDir, { snapshot: snap });
  const lines: string[] = [];
  let md = "";
  try {
    const m = Metadata.fromBinary(r.metadata);
    md = `nodeID=${hex(m.nodeID)} clusterID=${hex(m.clusterID)}`;
  } catch {
    md = `metadata ${r.metadata.length} bytes (not etcdserverpb.Metadata)`;
  }
  const hs = r.hardState;
  const entries = r.entries.slice(0, o.maxEntries);
  if (o.json) {
    lines.push(
      JSON.stringify({
        snapshot: r.snapshot,
        metadata: md,
        hardState: { term: hs.term, vote: hex(hs.vote), commit: hs.commit },
        entries: r.entries.length,
        tornTail: r.tornTail,
      }),
    );
    for (const e of entries) {
      const d = describeEntry(e);
      lines.push(JSON.stringify({ term: e.term, index: e.index, type: d.type, data: d.data }));
    }
    return lines;
  }
  lines.push(`Snapshot:\nterm=${r.snapshot.term} index=${r.snapshot.index}`);
  lines.push("WAL metadata:");
  lines.push(`${md} term=${hs.term} commitIndex=${hs.commit} vote=${hex(hs.vote)}`);
  if (r.tornTail !== null)
    lines.push(
      `torn tail: ${r.tornTail.file} at byte ${r.tornTail.offsetBytes}: ${r.tornTail.reason}`,
    );
  lines.push("WAL entries:");
  lines.push(
    `lastIndex=${r.entries.length > 0 ? r.entries[r.entries.length - 1]!.index : r.snapshot.index}`,
  );
  lines.push("term\t     index\ttype\tdata");
  for (const e of entries) {
    const d = describeEntry(e);
    lines.push(
      `${String(e.term).padStart(4)}\t${String(e.index).padStart(10)}\t${d.type}\t${d.data}`,
    );
  }
  if (entries.length < r.entries.length)
    lines.push(`... ${r.entries.length - entries.length} more entries not shown (--max-entries)`);
  lines.push(`\nEntry types (Normal,ConfigChange) count is : ${r.entries.length}`);
  return lines;
}
