/**
 * `etcd-ts-util check perf`: etcdctl v3.4's `check perf` (etcdctl/ctlv3/command/check.go) for
 * any endpoint. Same load models — s: 150 writes/s from 50 clients, m: 1000/200, l: 8000/500,
 * xl: 15000/1000, each for 60 s — same requests (key = prefix + 256 bytes holding a varint of a
 * random int63, value = 1024 zero bytes), the same refusal when the prefix already has keys, the
 * same clean-up (delete the prefix) and the same pass rules: throughput above 90 % of the limit,
 * slowest request ≤ 0.5 s, standard deviation ≤ 0.1 s, no errors.
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import {
  CompactionRequest,
  DeleteRangeRequest,
  DeleteRangeResponse,
  RangeRequest,
  RangeResponse,
} from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { frameMessage } from "../../bench/load/grpc-frame.js";
import { framePut, GrpcPath } from "../../bench/load/messages.js";
import { RawH2Connection } from "../../bench/load/raw-connection.js";
import {
  newHistogram,
  recordMs,
  summarize,
  type LatencySummaryMs,
} from "../../bench/load/histogram.js";
import { GrpcCallError } from "../../bench/load/errors.js";
import { PrefixNotEmptyError, UtilUsageError } from "./errors.js";

/** One load model of etcdctl's check perf. */
export interface PerfLoad {
  limit: number;
  clients: number;
  durationSeconds: number;
}

/** etcdctl v3.4's load models, with its aliases. */
export const PERF_LOADS: Record<"s" | "m" | "l" | "xl", PerfLoad> = {
  s: { limit: 150, clients: 50, durationSeconds: 60 },
  m: { limit: 1000, clients: 200, durationSeconds: 60 },
  l: { limit: 8000, clients: 500, durationSeconds: 60 },
  xl: { limit: 15000, clients: 1000, durationSeconds: 60 },
};
const ALIASES: Record<string, keyof typeof PERF_LOADS> = {
  s: "s",
  small: "s",
  m: "m",
  medium: "m",
  l: "l",
  large: "l",
  xl: "xl",
  xLarge: "xl",
};

/** Connections used for the clients (etcdctl opens one per client; we share a few). */
export const PERF_MAX_CONNS = 16;

export interface CheckPerfOptions {
  endpoints: string[];
  load: string;
  prefix: string;
  autoCompact: boolean;
  autoDefrag: boolean;
  /** Overrides the model's 60 s (not an etcdctl flag; for short checks and tests). */
  durationSeconds?: number;
  /** Progress line to stderr once a second. */
  progress: boolean;
}

export interface CheckPerfResult {
  load: string;
  limit: number;
  clients: number;
  durationSeconds: number;
  requests: number;
  errors: Record<string, number>;
  writesPerSecond: number;
  latencyMs: LatencySummaryMs;
  /** etcdctl-style lines: PASS/FAIL per rule, then PASS or FAIL. */
  lines: string[];
  pass: boolean;
}

function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/** Writes Go's binary.PutVarint(k, n) (zig-zag varint) of a bigint into the start of k. */
function putVarint(k: Buffer, n: bigint): void {
  let u = n >= 0n ? n << 1n : (-n << 1n) - 1n;
  let i = 0;
  while (u >= 0x80n) {
    k[i++] = Number(u & 0x7fn) | 0x80;
    u >>= 7n;
  }
  k[i] = Number(u);
}

/**
 * Runs the check. Rejects with UtilUsageError for an unknown load, PrefixNotEmptyError when the
 * prefix has keys, ConnectionLostError when an endpoint is unreachable.
 */
export async function checkPerf(o: CheckPerfOptions): Promise<CheckPerfResult> {
  const model = ALIASES[o.load];
  if (model === undefined) throw new UtilUsageError(`unknown load option ${o.load}`);
  const cfg = PERF_LOADS[model];
  const durationSeconds = o.durationSeconds ?? cfg.durationSeconds;
  const nConns = Math.min(cfg.clients, PERF_MAX_CONNS);
  const conns: RawH2Connection[] = [];
  try {
    for (let i = 0; i < nConns; i++)
      conns.push(await RawH2Connection.connect(o.endpoints[i % o.endpoints.length]!));
    const prefix = Buffer.from(o.prefix);
    const end = prefixEnd(prefix);
    const first = RangeResponse.fromBinary(
      await conns[0]!.unary(
        GrpcPath.range,
        frameMessage(
          RangeRequest.toBinary(RangeRequest.create({ key: prefix, rangeEnd: end, limit: 1 })),
        ),
      ),
    );
    if (first.kvs.length > 0) throw new PrefixNotEmptyError(o.prefix);

    const value = Buffer.alloc(1024);
    const hist = newHistogram();
    const errors: Record<string, number> = {};
    let requests = 0;
    const t0 = performance.now();
    const deadline = t0 + durationSeconds * 1000;
    let issued = 0;
    // etcdctl: a token bucket of `limit`/s, burst 1, feeding `clients` workers.
    const take = async (): Promise<boolean> => {
      const due = t0 + (issued++ * 1000) / cfg.limit;
      const wait = due - performance.now();
      if (due >= deadline) return false;
      if (wait > 1) await sleep(wait);
      return true;
    };
    const progress = o.progress
      ? setInterval(
          () =>
            process.stderr.write(
              `\r${((performance.now() - t0) / 1000).toFixed(0)}s / ${durationSeconds}s  ${requests} writes`,
            ),
          1000,
        )
      : null;
    const worker = async (conn: RawH2Connection): Promise<void> => {
      while (await take()) {
        const k = Buffer.alloc(prefix.length + 256);
        prefix.copy(k);
        putVarint(k.subarray(prefix.length), randomBytes(8).readBigUInt64LE(0) >> 1n); // rand.Int63
        const s = performance.now();
        try {
          await conn.unary(GrpcPath.put, framePut(k, value));
          recordMs(hist, performance.now() - s);
        } catch (err) {
          const key = err instanceof GrpcCallError ? err.grpcMessage : (err as Error).message;
          errors[key] = (errors[key] ?? 0) + 1;
        }
        requests++;
      }
    };
    const workers: Promise<void>[] = [];
    for (let c = 0; c < cfg.clients; c++) workers.push(worker(conns[c % conns.length]!));
    await Promise.all(workers);
    const elapsed = (performance.now() - t0) / 1000;
    if (progress !== null) {
      clearInterval(progress);
      process.stderr.write("\n");
    }

    const del = DeleteRangeResponse.fromBinary(
      await conns[0]!.unary(
        GrpcPath.deleteRange,
        frameMessage(
          DeleteRangeRequest.toBinary(DeleteRangeRequest.create({ key: prefix, rangeEnd: end })),
        ),
      ),
    );
    const lines: string[] = [];
    if (o.autoCompact && del.header !== undefined) {
      await conns[0]!.unary(
        "/etcdserverpb.KV/Compact",
        frameMessage(
          CompactionRequest.toBinary(
            CompactionRequest.create({ revision: del.header.revision, physical: true }),
          ),
        ),
      );
      lines.push(`Compacted with revision ${del.header.revision}`);
    }
    if (o.autoDefrag) {
      for (const c of conns.slice(0, o.endpoints.length)) {
        await c.unary("/etcdserverpb.Maintenance/Defragment", frameMessage(new Uint8Array(0)));
        lines.push(`Defragmented ${JSON.stringify(c.endpoint)}`);
      }
    }

    const lat = summarize(hist);
    const rps = hist.totalCount / elapsed;
    let pass = true;
    if (Object.keys(errors).length > 0) {
      lines.push("FAIL: too many errors");
      for (const [k, v] of Object.entries(errors)) lines.push(`FAIL: ERROR(${k}) -> ${v}`);
      pass = false;
    }
    if (rps / cfg.limit <= 0.9) {
      lines.push(`FAIL: Throughput too low: ${Math.floor(rps) + 1} writes/s`);
      pass = false;
    } else lines.push(`PASS: Throughput is ${Math.floor(rps) + 1} writes/s`);
    const slowestS = lat.max / 1000;
    const stddevS = lat.stddev / 1000;
    if (slowestS > 0.5) {
      lines.push(`Slowest request took too long: ${slowestS.toFixed(6)}s`);
      pass = false;
    } else lines.push(`PASS: Slowest request took ${slowestS.toFixed(6)}s`);
    if (stddevS > 0.1) {
      lines.push(`Stddev too high: ${stddevS.toFixed(6)}s`);
      pass = false;
    } else lines.push(`PASS: Stddev is ${stddevS.toFixed(6)}s`);
    lines.push(pass ? "PASS" : "FAIL");
    return {
      load: model,
      limit: cfg.limit,
      clients: cfg.clients,
      durationSeconds,
      requests,
      errors,
      writesPerSecond: rps,
      latencyMs: lat,
      lines,
      pass,
    };
  } finally {
    await Promise.all(conns.map((c) => c.close()));
  }
}
