// Raw gRPC calls to a member with @grpc/grpc-js (no client library between the test and the
// server's answer: no retries, no failover), each reported as "ok" or "CODE: details" with how
// long it took. Shared by the cluster tests that check etcd's exact errors.
import * as grpc from "@grpc/grpc-js";
import * as rpc from "../../lib/proto/gen/etcdserverpb/rpc.js";
import type { Member } from "./server.js";

/** A generated message type: what unary() encodes and decodes with. */
export interface Codec<T> {
  create(v?: object): T;
  toBinary(m: T): Uint8Array;
  fromBinary(b: Uint8Array): T;
}

/** What a call ended with and after how long. */
export interface Outcome {
  result: string;
  ms: number;
  /** the response of a call that succeeded */
  response?: unknown;
}

/** A plain-text gRPC channel to `m`'s client port. */
export function client(m: Member): grpc.Client {
  return new grpc.Client(m.hostPort, grpc.credentials.createInsecure());
}

/** clientv3.WithRequireLeader's metadata (`hasleader: true`) when `requireLeader`. */
export function metadata(requireLeader: boolean): grpc.Metadata {
  const md = new grpc.Metadata();
  if (requireLeader) md.set("hasleader", "true");
  return md;
}

/** One unary call with a deadline of `deadlineMs`; never rejects (see Outcome). */
export function unary<Req, Res>(
  c: grpc.Client,
  path: string,
  req: Codec<Req>,
  res: Codec<Res>,
  body: object,
  requireLeader: boolean,
  deadlineMs: number,
): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve) => {
    c.makeUnaryRequest(
      path,
      (m: Req) => Buffer.from(req.toBinary(m)),
      (b: Buffer) => res.fromBinary(b),
      req.create(body),
      metadata(requireLeader),
      { deadline: started + deadlineMs },
      (err, response) => {
        const result = err === null ? "ok" : `${grpc.status[err.code]}: ${err.details}`;
        resolve({ result, ms: Date.now() - started, response });
      },
    );
  });
}

/** KV.Put of `key` = "v". */
export const put = (c: grpc.Client, key: string, requireLeader: boolean, deadlineMs: number) =>
  unary(
    c,
    "/etcdserverpb.KV/Put",
    rpc.PutRequest,
    rpc.PutResponse,
    { key: Buffer.from(key), value: Buffer.from("v") },
    requireLeader,
    deadlineMs,
  );
