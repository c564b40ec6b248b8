/**
 * Request validation done before a request reaches raft, as etcd's api/v3rpc/key.go does
 * (checkRangeRequest, checkPutRequest, checkDeleteRequest, checkTxnRequest, checkIntervals).
 * Each function throws the typed error whose message is etcd's string, or returns normally.
 */
import type {
  DeleteRangeRequest,
  PutRequest,
  RangeRequest,
  RequestOp,
  TxnRequest,
} from "../proto/gen/etcdserverpb/rpc.js";
import {
  DuplicateKeyError,
  EmptyKeyError,
  KeyNotFoundError,
  LeaseProvidedError,
  TooManyOpsError,
  ValueProvidedError,
} from "./errors.js";

/** Range: the key must be given. Throws EmptyKeyError. */
export function checkRangeRequest(req: RangeRequest): void {
  if (req.key.length === 0) throw new EmptyKeyError();
}

/**
 * Put: key given; ignore_value excludes a value and ignore_lease a lease (etcd checkPutRequest).
 * Throws EmptyKeyError, ValueProvidedError, LeaseProvidedError.
 */
export function checkPutRequest(req: PutRequest): void {
  if (req.key.length === 0) throw new EmptyKeyError();
  if (req.ignoreValue && req.value.length !== 0) throw new ValueProvidedError();
  if (req.ignoreLease && req.lease !== 0n) throw new LeaseProvidedError();
}

/** DeleteRange: the key must be given. Throws EmptyKeyError. */
export function checkDeleteRangeRequest(req: DeleteRangeRequest): void {
  if (req.key.length === 0) throw new EmptyKeyError();
}

/**
 * Txn: at most `maxTxnOps` compares and at most that many ops per branch (nested txns get what is
 * left, as etcd passes maxTxnOps - opc down), every compare has a key, every op is valid, and no
 * key is put twice or put inside a range the same txn deletes (etcd checkIntervals: then/else
 * branches of a nested txn may put the same key since only one runs).
 * Throws TooManyOpsError, EmptyKeyError, KeyNotFoundError (an op with no request set),
 * ValueProvidedError, LeaseProvidedError, DuplicateKeyError.
 */
export function checkTxnRequest(req: TxnRequest, maxTxnOps: number): void {
  checkTxnLevel(req, maxTxnOps);
  // etcd checks overlaps after the cheap checks, to avoid quadratic work on rejected input.
  checkIntervals(req.success);
  checkIntervals(req.failure);
}

function checkTxnLevel(req: TxnRequest, maxTxnOps: number): void {
  const opc = Math.max(req.compare.length, req.success.length, req.failure.length);
  if (opc > maxTxnOps) throw new TooManyOpsError();
  for (const c of req.compare) {
    if (c.key.length === 0) throw new EmptyKeyError();
  }
  for (const op of req.success) checkRequestOp(op, maxTxnOps - opc);
  for (const op of req.failure) checkRequestOp(op, maxTxnOps - opc);
}

function checkRequestOp(op: RequestOp, maxTxnOps: number): void {
  const r = op.request;
  switch (r.oneofKind) {
    case "requestRange":
      return checkRangeRequest(r.requestRange);
    case "requestPut":
      return checkPutRequest(r.requestPut);
    case "requestDeleteRange":
      return checkDeleteRangeRequest(r.requestDeleteRange);
    case "requestTxn":
      return checkTxnLevel(r.requestTxn, maxTxnOps);
    default:
      // etcd answers an empty op with ErrGRPCKeyNotFound.
      throw new KeyNotFoundError();
  }
}

/** A deleted interval [begin, end); `end === undefined` is the single key `begin`. */
interface DelInterval {
  begin: Buffer;
  end: Buffer | undefined;
}

function view(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/**
 * etcd's string-affine intervals: a range_end of "\0" is taken literally as the end "\0", which
 * gives an empty interval, so etcd 3.4 does not see a put inside a from-key delete; we follow it.
 */
function intersects(dels: DelInterval[], key: Buffer): boolean {
  for (const d of dels) {
    if (d.end === undefined) {
      if (d.begin.equals(key)) return true;
    } else if (Buffer.compare(d.begin, key) <= 0 && Buffer.compare(key, d.end) < 0) {
      return true;
    }
  }
  return false;
}

/** Returns the puts (latin1-keyed set) and deletes of `reqs` and nested txns; throws on overlap. */
function checkIntervals(reqs: RequestOp[]): { puts: Set<string>; dels: DelInterval[] } {
  const dels: DelInterval[] = [];
  for (const op of reqs) {
    if (op.request.oneofKind !== "requestDeleteRange") continue;
    const d = op.request.requestDeleteRange;
    dels.push({ begin: view(d.key), end: d.rangeEnd.length !== 0 ? view(d.rangeEnd) : undefined });
  }
  const puts = new Set<string>();
  for (const op of reqs) {
    if (op.request.oneofKind !== "requestTxn") continue;
    const t = op.request.requestTxn;
    const thenSide = checkIntervals(t.success);
    const elseSide = checkIntervals(t.failure);
    for (const k of thenSide.puts) {
      if (puts.has(k) || intersects(dels, Buffer.from(k, "latin1"))) throw new DuplicateKeyError();
      puts.add(k);
    }
    for (const k of elseSide.puts) {
      // then/else are exclusive: a key put by both branches is fine.
      if (puts.has(k) && !thenSide.puts.has(k)) throw new DuplicateKeyError();
      if (intersects(dels, Buffer.from(k, "latin1"))) throw new DuplicateKeyError();
      puts.add(k);
    }
    dels.push(...thenSide.dels, ...elseSide.dels);
  }
  for (const op of reqs) {
    if (op.request.oneofKind !== "requestPut") continue;
    const key = view(op.request.requestPut.key);
    const k = key.toString("latin1");
    if (puts.has(k) || intersects(dels, key)) throw new DuplicateKeyError();
    puts.add(k);
  }
  return { puts, dels };
}
