/**
 * The member's state as an etcd 3.4 db (snapshot) file: the buckets etcd's backend keeps, with the
 * keys and value encodings etcd writes, laid out by lib/btree's bbolt writer (DESIGN §1 "snapshot
 * / db file"), so `etcdctl snapshot status` / `restore` and etcd itself read what we send.
 *
 * Buckets and their entries, as etcd 3.4 writes them:
 * - key: revision key → mvccpb.KeyValue (mvcc/kvstore.go), from MvccStore.snapshot();
 * - meta: consistent_index → u64 big-endian (etcdserver's consistentIndex);
 *   finishedCompactRev / scheduledCompactRev → 17-byte revision key {main, sub 0} once a
 *   compaction happened (mvcc/kvstore_compaction.go, kvstore.go);
 * - lease: u64 big-endian id → leasepb.Lease{ID, TTL, RemainingTTL} (lease/lessor.go);
 * - members / members_removed: the id in hex → member JSON / "removed" (membership/store.go);
 * - cluster: clusterVersion → "3.4.0";
 * - alarm: marshaled etcdserverpb.AlarmMember → empty value (etcdserver/api/v3alarm);
 * - auth: authRevision → u64 big-endian (1 on a fresh member, as etcd writes it), authEnabled →
 *   [1] while auth is on (auth/store.go);
 * - authUsers: user name → authpb.User; authRoles: role name → authpb.Role (lib/auth's store).
 */
import {
  BoltFile,
  BoltFileWriter,
  type BoltBucket,
  type BoltByteSource,
  type BoltBucketSource,
  type BoltWriteOptions,
} from "../btree/index.js";
import type { MvccSnapshot, RawKeyRecords } from "../mvcc/index.js";
import type { LeaseRecord } from "../lease/index.js";
import { Lease } from "../proto/gen/leasepb/lease.js";
import { AlarmMember, type AlarmType } from "../proto/gen/etcdserverpb/rpc.js";
import { clusterVersion as defaultClusterVersion } from "../version/index.js";
import { Role, User } from "../proto/gen/authpb/auth.js";
import type { AuthSnapshot } from "../auth/index.js";
import {
  encodeMemberJson,
  memberFromJson,
  type MemberJson,
  type MemberRecord,
} from "./membership.js";

export { encodeMemberJson };
import { ServerError } from "./errors.js";
import type { EtcdServer } from "./server.js";

/** Entries the planning pass walks per step in planDbFileInSteps (~10 ms at 1M keys' speed). */
export const dbFilePlanEntriesPerStep = 16_384;

/** etcd's snapshotSendBufferSize: the Snapshot RPC sends the file in messages of this many bytes. */
export const snapshotSendBufferBytes = 32 * 1024;

/** Everything a db file holds, captured at one instant (see captureDbFileState). */
export interface DbFileState {
  /** the key bucket's records at one revision */
  mvcc: MvccSnapshot;
  /** the raft index the state reflects (etcd's consistent_index) */
  consistentIndex: number;
  leases: readonly LeaseRecord[];
  members: readonly MemberRecord[];
  removedMemberIds: readonly bigint[];
  /** "3.4.0"; undefined leaves the cluster bucket empty (no version decided yet) */
  clusterVersion: string | undefined;
  alarms: readonly { memberID: bigint; alarm: AlarmType }[];
  /** the auth store: flag, revision (1 on a member that never changed auth), users, roles */
  auth: AuthSnapshot;
}

type Entry = readonly [Buffer, Buffer];

function u64be(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt.asUintN(64, BigInt(n)));
  return b;
}

/** etcd's revToBytes: 8-byte big-endian main, '_', 8-byte big-endian sub. */
function revisionKey(main: number, sub: number): Buffer {
  const b = Buffer.alloc(17);
  b.writeBigUInt64BE(BigInt(main), 0);
  b[8] = 0x5f;
  b.writeBigUInt64BE(BigInt(sub), 9);
  return b;
}

function sortedBucket(name: string, entries: Entry[]): BoltBucketSource {
  entries.sort((a, b) => Buffer.compare(a[0], b[0]));
  return { name: Buffer.from(name), entries: () => entries };
}

/**
 * etcd 3.4's buckets for `state`, each a sorted source for BoltFileWriter. The key bucket reads
 * the mvcc snapshot each time it is iterated (the writer walks it twice); the others are small
 * and built here. With `fromRecord`, the key bucket holds only the records from that one on (an
 * in-place commit on a file that has the others; the mvcc snapshot must have cursor()).
 */
export function etcdDbBuckets(state: DbFileState, fromRecord = 0): BoltBucketSource[] {
  const meta: Entry[] = [[Buffer.from("consistent_index"), u64be(state.consistentIndex)]];
  // a snapshot taken while a compaction's physical part runs holds records it drops: etcd's
  // finishedCompactRev below scheduledCompactRev, so that loading the file compacts again
  const scheduled = state.mvcc.compactRevision;
  const finished = Math.min(scheduled, state.mvcc.finishedCompactRevision ?? scheduled);
  if (finished > 0) meta.push([Buffer.from("finishedCompactRev"), revisionKey(finished, 0)]);
  if (scheduled > 0) meta.push([Buffer.from("scheduledCompactRev"), revisionKey(scheduled, 0)]);
  const leases: Entry[] = state.leases.map((l) => [
    u64be(l.id),
    Buffer.from(
      Lease.toBinary({ iD: l.id, tTL: l.ttlSeconds, remainingTTL: l.remainingTtlSeconds }),
    ),
  ]);
  const members: Entry[] = state.members.map((m) => [
    Buffer.from(m.id.toString(16)),
    encodeMemberJson(m),
  ]);
  const removed: Entry[] = state.removedMemberIds.map((id) => [
    Buffer.from(id.toString(16)),
    Buffer.from("removed"),
  ]);
  const cluster: Entry[] =
    state.clusterVersion === undefined
      ? []
      : [[Buffer.from("clusterVersion"), Buffer.from(state.clusterVersion)]];
  const alarms: Entry[] = state.alarms.map((a) => [
    Buffer.from(AlarmMember.toBinary({ memberID: a.memberID, alarm: a.alarm })),
    Buffer.alloc(0),
  ]);
  const authEntries: Entry[] = [[Buffer.from("authRevision"), u64be(state.auth.revision)]];
  if (state.auth.enabled) authEntries.push([Buffer.from("authEnabled"), Buffer.from([1])]);
  const snap = state.mvcc;
  return [
    sortedBucket("alarm", alarms),
    sortedBucket("auth", authEntries),
    sortedBucket(
      "authRoles",
      state.auth.roles.map((r) => [Buffer.from(r.name), Buffer.from(Role.toBinary(r))]),
    ),
    sortedBucket(
      "authUsers",
      state.auth.users.map((u) => [Buffer.from(u.name), Buffer.from(User.toBinary(u))]),
    ),
    sortedBucket("cluster", cluster),
    fromRecord === 0
      ? {
          name: Buffer.from("key"),
          entries: () => snap.records(),
          cursor:
            snap.cursor === undefined ? undefined : (forPlanning) => snap.cursor!(forPlanning),
        }
      : keyRecordsFrom(snap, fromRecord),
    sortedBucket("lease", leases),
    sortedBucket("members", members),
    sortedBucket("members_removed", removed),
    sortedBucket("meta", meta),
  ];
}

/** The key bucket's records from `fromRecord` on (an in-place commit's new ones). */
function keyRecordsFrom(snap: DbFileState["mvcc"], fromRecord: number): BoltBucketSource {
  const cursor = snap.cursor?.bind(snap);
  if (cursor === undefined) {
    throw new Error("etcdDbBuckets: records from an offset need an mvcc snapshot with cursor()");
  }
  return {
    name: Buffer.from("key"),
    entries: () => {
      throw new Error("etcdDbBuckets: the key bucket's new records are read through cursor()");
    },
    cursor: (forPlanning) => cursor(forPlanning, fromRecord),
  };
}

/**
 * What a db file is captured from: the member's parts (EtcdServer, or the Raft simulator's
 * member, which runs the same applier without a server).
 */
export type DbFileSource = Pick<
  EtcdServer,
  "store" | "appliedIndex" | "lessor" | "members" | "alarms" | "auth"
>;

/**
 * The member's state at this instant: the mvcc snapshot (O(1)), copies of the leases, members
 * and alarms, and the applied index. Synchronous, so nothing is applied in between and the parts
 * agree with each other and with consistent_index.
 */
export function captureDbFileState(server: DbFileSource): DbFileState {
  return {
    mvcc: server.store.snapshot(),
    consistentIndex: server.appliedIndex,
    leases: server.lessor.exportRecords(),
    members: [...server.members.values()].map((m) => ({ ...m })),
    removedMemberIds: [],
    clusterVersion: defaultClusterVersion,
    alarms: server.alarms.map((a) => ({ memberID: a.memberID, alarm: a.alarm })),
    auth: server.auth.store.snapshot(),
  };
}

/**
 * A writer of the member's db file as of now (captureDbFileState, then the writer's planning
 * pass over every record: O(records) on the calling turn). `sizeBytes` is the file size;
 * `chunks()` yields it. Throws BoltInputError only on a broken mvcc invariant (unsorted records).
 */
export function createDbFileWriter(
  server: EtcdServer,
  options: Partial<BoltWriteOptions> = {},
): BoltFileWriter {
  return new BoltFileWriter(etcdDbBuckets(captureDbFileState(server)), options);
}

/**
 * createDbFileWriter in steps: the state is captured now (so the file is as of this call), the
 * planning pass runs `entriesPerStep` entries per next() so the caller can yield the event loop
 * between steps; the generator returns the writer.
 */
export function planDbFileInSteps(
  server: EtcdServer,
  options: Partial<BoltWriteOptions> = {},
  entriesPerStep = dbFilePlanEntriesPerStep,
): Generator<void, BoltFileWriter, void> {
  return BoltFileWriter.planInSteps(
    etcdDbBuckets(captureDbFileState(server)),
    options,
    entriesPerStep,
  );
}

/**
 * A db file whose bbolt structure is sound but whose etcd content is not (a missing bucket, a
 * malformed meta value, a lease or member entry that does not decode). Code "ErrDbFileFormat".
 */
export class DbFileFormatError extends ServerError {
  constructor(message: string) {
    super("ErrDbFileFormat", `etcdserver: bad db file: ${message}`);
  }
}

/** A db file's key bucket entries: iterable, or walked as byte ranges (MvccStore.restore). */
export type KeyRecords = IterableIterator<[Buffer, Buffer]> & RawKeyRecords;

/** What an etcd 3.4 db file holds, as parseEtcdDbFile reads it. */
export interface ParsedDbFile {
  /** the raft index the file reflects (meta consistent_index; 0 when absent) */
  consistentIndex: number;
  /** meta finishedCompactRev's main revision, -1 when the file was never compacted */
  compactRevision: number;
  /** meta scheduledCompactRev's main revision, -1 when absent */
  scheduledCompactRevision: number;
  /**
   * the key bucket's entries in revision order, as views into the file or into the block read for
   * their page (MvccStore.restore copies what it keeps); also as byte ranges (RawKeyRecords, no
   * object per entry)
   */
  keyRecords(): KeyRecords;
  leases: LeaseRecord[];
  members: MemberRecord[];
  removedMemberIds: bigint[];
  clusterVersion: string | undefined;
  alarms: { memberID: bigint; alarm: AlarmType }[];
  authRevision: number;
  /** the auth buckets (authEnabled, authRevision, authUsers, authRoles) */
  auth: AuthSnapshot;
  /**
   * bytes of the pages the file's meta reaches (etcd's dbSizeInUse: its size less its free
   * pages, counted whether or not the file lists them on a freelist page)
   */
  inUseBytes: number;
}

function mainRevision(v: Buffer, what: string): number {
  if (v.length !== 17 || v[8] !== 0x5f) throw new DbFileFormatError(`${what} is not a revision`);
  const main = v.readBigUInt64BE(0);
  if (main > BigInt(Number.MAX_SAFE_INTEGER)) throw new DbFileFormatError(`${what} out of range`);
  return Number(main);
}

function u64Value(v: Buffer, what: string): number {
  if (v.length !== 8) throw new DbFileFormatError(`${what} is ${v.length} bytes, want 8`);
  const n = v.readBigUInt64BE(0);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new DbFileFormatError(`${what} out of range`);
  return Number(n);
}

/** An authUsers / authRoles value, whose name must be its key. */
function decodeAuthValue<T extends { name: Uint8Array }>(
  type: { fromBinary(b: Uint8Array): T },
  key: Buffer,
  value: Buffer,
  what: string,
): T {
  let v: T;
  try {
    v = type.fromBinary(value);
  } catch {
    throw new DbFileFormatError(`${what} ${key.toString("latin1")}: value does not decode`);
  }
  if (!key.equals(Buffer.from(v.name))) {
    throw new DbFileFormatError(`${what} ${key.toString("latin1")}: name does not match its key`);
  }
  return v;
}

/** A member id key: etcd's types.ID in hex. */
function hexId(k: Buffer, what: string): bigint {
  const t = k.toString("latin1");
  if (!/^[0-9a-f]{1,16}$/.test(t))
    throw new DbFileFormatError(`${what} key "${t}" is not a hex id`);
  return BigInt("0x" + t);
}

/** etcd's member JSON (see encodeMemberJson); the id is re-read from the text to keep 64 bits. */
function decodeMemberJson(key: Buffer, value: Buffer): MemberRecord {
  const text = value.toString("utf8");
  const idText = /"id":\s*(\d+)/.exec(text)?.[1];
  let j: MemberJson;
  try {
    j = JSON.parse(text) as MemberJson;
  } catch {
    throw new DbFileFormatError(`member ${key.toString("latin1")}: value is not JSON`);
  }
  const id = hexId(key, "member");
  if (idText === undefined || BigInt(idText) !== id) {
    throw new DbFileFormatError(`member ${key.toString("latin1")}: id does not match its key`);
  }
  return memberFromJson(id, j);
}

/**
 * Reads an etcd 3.4 db file (one etcd wrote, or one createDbFileWriter produced): bbolt's checks
 * first (BoltFile.open and check(): BoltCorruptError on any structural damage), then etcd's
 * buckets. `key` and `meta` must exist; the others may be missing (an older etcd) and read as
 * empty. Keys of the key bucket are not decoded here (MvccStore.restore does that). `bytes` is the
 * file in memory, or a source its pages are read from as they are walked (recovery.ts).
 * @throws BoltCorruptError, DbFileFormatError
 */
export function parseEtcdDbFile(bytes: Uint8Array | BoltByteSource): ParsedDbFile {
  const file = BoltFile.open(bytes);
  const inUseBytes = file.check() * file.meta.pageSizeBytes;
  const need = (name: string): BoltBucket => {
    const b = file.bucket(name);
    if (b === undefined) throw new DbFileFormatError(`no "${name}" bucket`);
    return b;
  };
  const keyBucket = need("key");
  const entries = (name: string) => [...(file.bucket(name)?.entries() ?? [])];
  const meta = new Map(entries("meta").map(([k, v]) => [k.toString("latin1"), v]));
  need("meta");
  const ci = meta.get("consistent_index");
  const fin = meta.get("finishedCompactRev");
  const sched = meta.get("scheduledCompactRev");
  const leases = entries("lease").map(([k, v]): LeaseRecord => {
    let l: ReturnType<typeof Lease.fromBinary>;
    try {
      l = Lease.fromBinary(v);
    } catch {
      throw new DbFileFormatError(`lease ${k.toString("hex")}: value does not decode`);
    }
    if (k.length !== 8 || BigInt.asUintN(64, l.iD) !== k.readBigUInt64BE(0)) {
      throw new DbFileFormatError(`lease ${k.toString("hex")}: id does not match its key`);
    }
    return { id: l.iD, ttlSeconds: l.tTL, remainingTtlSeconds: l.remainingTTL };
  });
  const alarms = entries("alarm").map(([k]) => {
    try {
      const a = AlarmMember.fromBinary(k);
      return { memberID: a.memberID, alarm: a.alarm };
    } catch {
      throw new DbFileFormatError(`alarm ${k.toString("hex")}: key does not decode`);
    }
  });
  const auth = new Map(entries("auth").map(([k, v]) => [k.toString("latin1"), v]));
  const authRev = auth.get("authRevision");
  const cv = new Map(entries("cluster").map(([k, v]) => [k.toString("latin1"), v]));
  return {
    consistentIndex: ci === undefined ? 0 : u64Value(ci, "consistent_index"),
    compactRevision: fin === undefined ? -1 : mainRevision(fin, "finishedCompactRev"),
    scheduledCompactRevision: sched === undefined ? -1 : mainRevision(sched, "scheduledCompactRev"),
    keyRecords: () =>
      Object.assign(keyBucket.entries(), {
        forEachRaw: (fn: Parameters<RawKeyRecords["forEachRaw"]>[0]) => keyBucket.forEachEntry(fn),
      }),
    leases,
    members: entries("members").map(([k, v]) => decodeMemberJson(k, v)),
    removedMemberIds: entries("members_removed").map(([k]) => hexId(k, "members_removed")),
    clusterVersion: cv.get("clusterVersion")?.toString("latin1"),
    alarms,
    authRevision: authRev === undefined ? 0 : u64Value(authRev, "authRevision"),
    auth: {
      enabled: auth.get("authEnabled")?.equals(Buffer.from([1])) ?? false,
      revision: authRev === undefined ? 0 : u64Value(authRev, "authRevision"),
      users: entries("authUsers").map(([k, v]) => decodeAuthValue(User, k, v, "user")),
      roles: entries("authRoles").map(([k, v]) => decodeAuthValue(Role, k, v, "role")),
    },
    inUseBytes,
  };
}
