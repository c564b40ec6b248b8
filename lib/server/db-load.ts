/**
 * Loading a db file's state into a member (etcd 3.4's server.go applySnapshot and its start from
 * the backend): the lessor, the keys, the member list, the alarms and the auth store. Used by the
 * server at start and when a snapshot from the leader is applied, and by the Raft simulator's
 * members (tools/sim/member.ts), so both load a db the same way.
 */
import type { MvccStore, ValueFile } from "../mvcc/index.js";
import type { Lessor } from "../lease/index.js";
import type { AlarmMember } from "../proto/gen/etcdserverpb/rpc.js";
import type { MemberAuth } from "./apply-auth.js";
import type { RaftCluster } from "./cluster.js";
import type { ParsedDbFile } from "./db-file.js";
import type { MemberRecord } from "./membership.js";

/** The parts of a member whose state a db file holds. */
export interface DbLoadTarget {
  readonly store: MvccStore;
  readonly lessor: Lessor;
  readonly cluster: RaftCluster;
  /** the applier's alarm list, replaced in place */
  readonly alarms: AlarmMember[];
  readonly auth: MemberAuth;
}

/**
 * Loads `db` into `t`: leases first (restoring the keys re-attaches them through the store's lease
 * hooks), then the keys — into the empty store of a starting member, or (`replace`) in place of a
 * running member's (watchers kept, MvccStore.replaceFromSnapshot) — finishing a compaction that
 * was scheduled but not finished (etcd's kvstore.restore); then the member list from `members`
 * with the db's removed ids, the alarms and the auth store.
 * `members`: etcd 3.4 takes the list from the snapshot's v2 store, not the db, since ConfChanges
 * after the snapshot are applied again on replay (see EtcdServer's restore).
 * `valueFile`: the db file itself, durable, opened as a ValueFile: the keys' values stay in it
 * (MvccStore.restore) instead of being copied into memory.
 * @throws MvccRestoreError for a malformed key entry or a starting store that is not empty.
 */
export function loadDbIntoMember(
  t: DbLoadTarget,
  db: ParsedDbFile,
  opts: { replace: boolean; members: readonly MemberRecord[]; valueFile?: ValueFile },
): void {
  t.lessor.restore(db.leases);
  const records = db.keyRecords();
  if (opts.replace) t.store.replaceFromSnapshot(records, db.compactRevision, opts.valueFile);
  else t.store.restore(records, db.compactRevision, opts.valueFile);
  if (db.scheduledCompactRevision > db.compactRevision) {
    // a compaction the db's writer had not finished (etcd: restore re-runs it), done now
    t.store.compact(db.scheduledCompactRevision);
    t.store.finishCompaction();
  }
  t.cluster.restore(opts.members, db.removedMemberIds);
  t.alarms.length = 0;
  for (const a of db.alarms) t.alarms.push({ memberID: a.memberID, alarm: a.alarm });
  t.auth.store.restore(db.auth);
}
