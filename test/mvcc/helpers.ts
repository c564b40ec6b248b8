/** Request builders and small helpers shared by the mvcc tests. */
import {
  Compare,
  Compare_CompareResult,
  Compare_CompareTarget,
  DeleteRangeRequest,
  PutRequest,
  RangeRequest,
  RequestOp,
  TxnRequest,
  WatchRequest,
  type WatchResponse,
} from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { MvccStore, type LeaseHooks } from "../../lib/mvcc/index.js";

export const b = (s: string): Buffer => Buffer.from(s);

export function rangeReq(key: string, fields: Partial<RangeRequest> = {}): RangeRequest {
  return RangeRequest.create({ key: b(key), ...fields });
}
export function putReq(key: string, value: string, fields: Partial<PutRequest> = {}): PutRequest {
  return PutRequest.create({ key: b(key), value: b(value), ...fields });
}
export function delReq(key: string, fields: Partial<DeleteRangeRequest> = {}): DeleteRangeRequest {
  return DeleteRangeRequest.create({ key: b(key), ...fields });
}
export const opPut = (key: string, value: string, f: Partial<PutRequest> = {}): RequestOp =>
  RequestOp.create({ request: { oneofKind: "requestPut", requestPut: putReq(key, value, f) } });
export const opRange = (key: string, f: Partial<RangeRequest> = {}): RequestOp =>
  RequestOp.create({ request: { oneofKind: "requestRange", requestRange: rangeReq(key, f) } });
export const opDel = (key: string, f: Partial<DeleteRangeRequest> = {}): RequestOp =>
  RequestOp.create({
    request: { oneofKind: "requestDeleteRange", requestDeleteRange: delReq(key, f) },
  });
export const opTxn = (t: Partial<TxnRequest>): RequestOp =>
  RequestOp.create({ request: { oneofKind: "requestTxn", requestTxn: TxnRequest.create(t) } });

export function cmp(
  key: string,
  target: Compare_CompareTarget,
  result: Compare_CompareResult,
  v: number | string | bigint,
  rangeEnd?: string,
): Compare {
  let targetUnion: Compare["targetUnion"];
  switch (target) {
    case Compare_CompareTarget.VALUE:
      targetUnion = { oneofKind: "value", value: b(String(v)) };
      break;
    case Compare_CompareTarget.VERSION:
      targetUnion = { oneofKind: "version", version: Number(v) };
      break;
    case Compare_CompareTarget.CREATE:
      targetUnion = { oneofKind: "createRevision", createRevision: Number(v) };
      break;
    case Compare_CompareTarget.MOD:
      targetUnion = { oneofKind: "modRevision", modRevision: Number(v) };
      break;
    default:
      targetUnion = { oneofKind: "lease", lease: BigInt(v) };
  }
  return Compare.create({
    key: b(key),
    target,
    result,
    targetUnion,
    rangeEnd: rangeEnd === undefined ? Buffer.alloc(0) : b(rangeEnd),
  });
}

export function txnReq(t: Partial<TxnRequest>): TxnRequest {
  return TxnRequest.create(t);
}

export function keysOf(kvs: { key: Uint8Array }[]): string[] {
  return kvs.map((kv) => Buffer.from(kv.key).toString());
}

/** A store with a simple in-memory lessor behind the hooks. */
export function storeWithLeases(ids: bigint[]): {
  store: MvccStore;
  attached: Map<bigint, Set<string>>;
} {
  const attached = new Map<bigint, Set<string>>(ids.map((id) => [id, new Set<string>()]));
  const hooks: LeaseHooks = {
    exists: (id) => attached.has(id),
    attach: (id, key) => attached.get(id)!.add(key.toString()),
    detach: (id, key) => attached.get(id)?.delete(key.toString()),
  };
  return { store: new MvccStore({ leaseHooks: hooks }), attached };
}

export function createWatch(fields: Record<string, unknown>): WatchRequest {
  return WatchRequest.create({
    requestUnion: { oneofKind: "createRequest", createRequest: fields as never },
  });
}

/** A sink that records responses; `full` makes send() return false (client not reading). */
export class TestSink {
  readonly got: WatchResponse[] = [];
  full = false;
  send(resp: WatchResponse): boolean {
    this.got.push(resp);
    return !this.full;
  }
  events(): { type: number; key: string; rev: number; value: string; prev?: string }[] {
    const out = [];
    for (const r of this.got) {
      for (const e of r.events) {
        out.push({
          type: e.type,
          key: Buffer.from(e.kv!.key).toString(),
          rev: e.kv!.modRevision,
          value: Buffer.from(e.kv!.value).toString(),
          ...(e.prevKv ? { prev: Buffer.from(e.prevKv.value).toString() } : {}),
        });
      }
    }
    return out;
  }
}

/** The seed for property tests: $SEED or one from the clock, printed so a failure replays. */
export function testSeed(name: string): number {
  const seed = process.env.SEED !== undefined ? Number(process.env.SEED) : Date.now() % 2147483647;
  console.log(`# ${name}: SEED=${seed}`);
  return seed;
}
