/**
 * int64 request fields that the client API keeps as JS numbers (revisions, revision filters,
 * limits, TTLs): a value outside ±(2^53 − 1) saturates at that bound instead of failing
 * the whole request.
 *
 * Why saturate: etcd reads these fields as Go int64, so a client may send any value up to 2^63 − 1
 * (`etcdctl get k --rev 9223372036854775807`), and etcd answers by the value's meaning: a revision
 * past the current one is "etcdserver: mvcc: required revision is a future revision" (OutOfRange),
 * a TTL over 9,000,000,000 s is "etcdserver: too large lease TTL", a non-positive revision means
 * "current". A member's revisions never reach 2^53, so a saturated value keeps its sign and its
 * order against every real revision and TTL bound, and the handler gives etcd's answer. protobuf-ts
 * would instead throw "cannot convert to safe number", which reached clients as INTERNAL.
 *
 * `lib/proto/generate.sh` rewrites the generated readers of etcdserverpb/rpc.ts and
 * v3electionpb/v3election.ts to call {@link saturatingInt64}; the JSON gateway applies
 * {@link saturateJsonInt64} before decoding. Ids are never clamped, since two ids must not become
 * one: they are bigint fields (lease, member, cluster and watch ids), exact over all of int64 as
 * etcd reads them. The raft, WAL and snapshot codecs still refuse unsafe numbers (a data file with
 * one is corrupt, never silently clamped).
 */
import type { IMessageType } from "@protobuf-ts/runtime";

const TWO_POW_32 = 0x1_0000_0000;
const MAX = Number.MAX_SAFE_INTEGER;

/**
 * A signed 64-bit value given as two 32-bit halves (protobuf-ts's PbLong: `hi` signed, `lo` as
 * bits) as a number clamped to [−(2^53 − 1), 2^53 − 1]. Exact inside that range.
 */
export function saturatingInt64(v: { lo: number; hi: number }): number {
  const n = v.hi * TWO_POW_32 + (v.lo >>> 0);
  return n > MAX ? MAX : n < -MAX ? -MAX : n;
}

// protobuf-ts field info codes (ScalarType.INT64, SFIXED64, SINT64; LongType.NUMBER)
const SIGNED_64 = new Set([3, 16, 18]);
const LONG_NUMBER = 2;

interface FieldInfoLike {
  name: string;
  jsonName?: string;
  kind: string;
  T: unknown;
  L?: number;
}

/** A JSON int64 (number, or string of an integer) clamped as above; anything else unchanged. */
function saturateJsonValue(v: unknown): unknown {
  if (typeof v === "number") {
    if (!Number.isInteger(v)) return v;
    return v > MAX ? MAX : v < -MAX ? -MAX : v;
  }
  if (typeof v === "string" && /^\s*-?[0-9]+\s*$/.test(v)) {
    const b = BigInt(v.trim());
    if (b > BigInt(MAX)) return MAX;
    if (b < -BigInt(MAX)) return -MAX;
  }
  return v;
}

/**
 * Clamps, in place, every number-typed signed int64 field of a parsed protobuf-JSON object (by
 * proto or JSON field name, through nested and repeated messages) as {@link saturatingInt64}
 * does. Values that are not integers are left for the decoder to refuse. Returns `json`.
 */
export function saturateJsonInt64(type: IMessageType<object>, json: unknown): unknown {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return json;
  const obj = json as Record<string, unknown>;
  for (const f of type.fields as readonly FieldInfoLike[]) {
    for (const key of f.jsonName === undefined || f.jsonName === f.name
      ? [f.name]
      : [f.name, f.jsonName]) {
      const v = obj[key];
      if (v === undefined || v === null) continue;
      if (f.kind === "scalar" && SIGNED_64.has(f.T as number) && f.L === LONG_NUMBER) {
        obj[key] = Array.isArray(v) ? v.map(saturateJsonValue) : saturateJsonValue(v);
      } else if (f.kind === "message") {
        const t = (f.T as () => IMessageType<object>)();
        if (Array.isArray(v)) for (const m of v) saturateJsonInt64(t, m);
        else saturateJsonInt64(t, v);
      }
    }
  }
  return json;
}
