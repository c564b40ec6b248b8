/**
 * The `data` of a raft snapshot (.snap file) as etcd 3.4 writes it: its v2 store serialized as JSON
 * (etcdserver/api/v2store store.go Save). etcd 3.4 keeps its member list there (`/0/members/<id>/
 * raftAttributes` and `attributes`, `/0/removed_members/<id>`, `/0/version`) and reads it back from
 * the newest .snap when it starts (RaftCluster.Recover reads the v2 store), so a .snap etcd-ts
 * writes must carry that JSON for real etcd 3.4 to start on an etcd-ts data dir.
 *
 * etcd-ts itself reads its members from the db file's `members` bucket, as etcd 3.5 does; it only
 * writes this JSON, shaped as etcd writes it: every node with Path, CreatedIndex, ModifiedIndex,
 * ExpireTime (Go's zero time), Value and Children (null on a leaf), the watcher hub's event
 * history as an empty ring of etcd's capacity (1000 slots: a v2 write after recovery stores into
 * the ring, so it must have its slots), the store stats all zero, CurrentVersion 2.
 */
import { goJsonString, type MemberRecord } from "./membership.js";

/** etcd's v2 store event history capacity (newStore: newWatchHub(1000)). */
const eventHistoryCapacity = 1000;
/** Go's zero time.Time in JSON. */
const zeroTime = "0001-01-01T00:00:00Z";

interface V2Node {
  Path: string;
  CreatedIndex: number;
  ModifiedIndex: number;
  ExpireTime: string;
  Value: string;
  Children: Record<string, V2Node> | null;
}

/** Go's json.Marshal of a value built from plain objects, arrays, strings, numbers, null. */
function goJson(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "string") return goJsonString(v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return `[${v.map(goJson).join(",")}]`;
  const parts = Object.entries(v as Record<string, unknown>).map(
    ([k, x]) => `${goJsonString(k)}:${goJson(x)}`,
  );
  return `{${parts.join(",")}}`;
}

/**
 * The v2 store JSON for a .snap file: the members (raftAttributes {peerURLs, isLearner when set};
 * attributes {name, clientURLs} when the member has either), the removed member ids and the
 * cluster version (left out when undefined).
 */
export function encodeV2StoreSnapshot(
  members: readonly MemberRecord[],
  removedMemberIds: readonly bigint[],
  clusterVersion: string | undefined,
): Buffer {
  let index = 0;
  const dir = (path: string, children: Record<string, V2Node>, at = 0): V2Node => ({
    Path: path,
    CreatedIndex: at,
    ModifiedIndex: at,
    ExpireTime: zeroTime,
    Value: "",
    Children: children,
  });
  const leaf = (path: string, value: string): V2Node => {
    index++;
    return {
      Path: path,
      CreatedIndex: index,
      ModifiedIndex: index,
      ExpireTime: zeroTime,
      Value: value,
      Children: null,
    };
  };
  const zero: Record<string, V2Node> = {};
  const memberNodes: Record<string, V2Node> = {};
  for (const m of [...members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    const hex = m.id.toString(16);
    const p = `/0/members/${hex}`;
    const raft: Record<string, unknown> = { peerURLs: m.peerUrls.length > 0 ? m.peerUrls : null };
    if (m.isLearner) raft.isLearner = true;
    const children: Record<string, V2Node> = {};
    if (m.name !== "" || m.clientUrls.length > 0) {
      const attrs: Record<string, unknown> = {};
      if (m.name !== "") attrs.name = m.name;
      if (m.clientUrls.length > 0) attrs.clientURLs = m.clientUrls;
      children.attributes = leaf(`${p}/attributes`, goJson(attrs));
    }
    children.raftAttributes = leaf(`${p}/raftAttributes`, goJson(raft));
    memberNodes[hex] = dir(p, children, index);
  }
  zero.members = dir("/0/members", memberNodes, members.length > 0 ? 1 : 0);
  if (removedMemberIds.length > 0) {
    const removed: Record<string, V2Node> = {};
    for (const id of removedMemberIds) {
      removed[id.toString(16)] = leaf(`/0/removed_members/${id.toString(16)}`, "");
    }
    zero.removed_members = dir("/0/removed_members", removed, 1);
  }
  if (clusterVersion !== undefined) zero.version = leaf("/0/version", clusterVersion);
  const root = dir("/", { "0": dir("/0", zero), "1": dir("/1", {}) });
  const stats: Record<string, number> = {};
  for (const k of [
    "getsSuccess",
    "getsFail",
    "setsSuccess",
    "setsFail",
    "deleteSuccess",
    "deleteFail",
    "updateSuccess",
    "updateFail",
    "createSuccess",
    "createFail",
    "compareAndSwapSuccess",
    "compareAndSwapFail",
    "compareAndDeleteSuccess",
    "compareAndDeleteFail",
    "expireCount",
    "watchers",
  ]) {
    stats[k] = 0;
  }
  const store = {
    Root: root,
    WatcherHub: {
      EventHistory: {
        Queue: {
          Events: new Array<null>(eventHistoryCapacity).fill(null),
          Size: 0,
          Front: 0,
          Back: 0,
          Capacity: eventHistoryCapacity,
        },
        StartIndex: 0,
        LastIndex: 0,
      },
    },
    CurrentIndex: index,
    Stats: stats,
    CurrentVersion: 2,
  };
  return Buffer.from(goJson(store), "utf8");
}

/**
 * The members a .snap's v2 store JSON lists (etcd 3.4's membersFromStore: `/0/members/<id>/
 * raftAttributes` and `attributes`), or undefined when the data is not a v2 store with a members
 * directory. etcd 3.4 takes its member list from here, not from the db, so etcd-ts does too when a
 * snapshot has one (e.g. `etcdctl snapshot restore` of another cluster's snapshot leaves the old
 * members in the db's bucket).
 */
export function decodeV2StoreMembers(data: Uint8Array): MemberRecord[] | undefined {
  let store: { Root?: V2Node };
  try {
    store = JSON.parse(Buffer.from(data).toString("utf8")) as { Root?: V2Node };
  } catch {
    return undefined;
  }
  const dir = store.Root?.Children?.["0"]?.Children?.members?.Children;
  if (dir === undefined || dir === null) return undefined;
  const out: MemberRecord[] = [];
  for (const [hex, node] of Object.entries(dir)) {
    if (!/^[0-9a-f]{1,16}$/.test(hex)) return undefined;
    const attr = (name: string): Record<string, unknown> => {
      const v = node.Children?.[name]?.Value;
      if (v === undefined || v === "") return {};
      try {
        return JSON.parse(v) as Record<string, unknown>;
      } catch {
        return {};
      }
    };
    const raft = attr("raftAttributes");
    const a = attr("attributes");
    const strings = (v: unknown) =>
      Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
    out.push({
      id: BigInt("0x" + hex),
      name: typeof a.name === "string" ? a.name : "",
      peerUrls: strings(raft.peerURLs),
      clientUrls: strings(a.clientURLs),
      isLearner: raft.isLearner === true,
    });
  }
  return out;
}
