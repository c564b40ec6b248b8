// gRPC clients of the Lock and Election services (and the KV and Lease calls tests need beside
// them), built from the generated @grpc/grpc-js definitions, with promise-returning methods.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { LockClient } from "../../lib/proto/gen/v3lockpb/v3lock.grpc-client.js";
import { ElectionClient } from "../../lib/proto/gen/v3electionpb/v3election.grpc-client.js";
import {
  AuthClient,
  KVClient,
  LeaseClient,
} from "../../lib/proto/gen/etcdserverpb/rpc.grpc-client.js";
import * as v3lock from "../../lib/proto/gen/v3lockpb/v3lock.js";
import * as v3election from "../../lib/proto/gen/v3electionpb/v3election.js";
import * as rpc from "../../lib/proto/gen/etcdserverpb/rpc.js";
import type { TlsFiles } from "./server.js";

/** A failed call: the gRPC code and message the server sent. */
export interface CallError {
  code: number;
  details: string;
}

/** Asserts that `p` fails with gRPC code `code` and message `details` (etcd's exact string). */
export async function rejectsWith(
  p: Promise<unknown>,
  code: number,
  details: string,
): Promise<void> {
  await assert.rejects(p, (err: CallError) => {
    assert.equal(err.details, details);
    assert.equal(err.code, code);
    return true;
  });
}

type Callback<Res> = (err: grpc.ServiceError | null, res?: Res) => void;

/** Metadata carrying an auth token (etcd's "token" key) when there is one. */
function tokenMetadata(token: string | undefined): grpc.Metadata {
  const md = new grpc.Metadata();
  if (token !== undefined) md.set("token", token);
  return md;
}

/** Calls one unary method; rejects with the ServiceError (code, details). */
function unary<Req, Res>(
  fn: (req: Req, md: grpc.Metadata, opts: grpc.CallOptions, cb: Callback<Res>) => unknown,
  req: Req,
  deadlineMs?: number,
  token?: string,
): Promise<Res> {
  const opts: grpc.CallOptions =
    deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
  return new Promise((resolve, reject) => {
    fn(req, tokenMetadata(token), opts, (err, res) => {
      if (err !== null) reject(err);
      else resolve(res as Res);
    });
  });
}

/** Lock, Election, KV and Lease calls on one endpoint ("127.0.0.1:port"). Close with close(). */
export class ConcurrencyClient {
  readonly #lock: LockClient;
  readonly #election: ElectionClient;
  readonly #kv: KVClient;
  readonly #lease: LeaseClient;
  readonly #auth: AuthClient;
  /** the auth token every call carries (etcd's "token" metadata), once authenticate() ran */
  #token: string | undefined;

  /** `tls`: a TLS member's files (the test CA, and the client certificate it presents). */
  constructor(hostPort: string, tls?: TlsFiles) {
    const creds =
      tls === undefined
        ? grpc.credentials.createInsecure()
        : grpc.credentials.createSsl(
            readFileSync(tls.caCert),
            readFileSync(tls.clientKey),
            readFileSync(tls.clientCert),
          );
    this.#lock = new LockClient(hostPort, creds);
    this.#election = new ElectionClient(hostPort, creds);
    this.#kv = new KVClient(hostPort, creds);
    this.#lease = new LeaseClient(hostPort, creds);
    this.#auth = new AuthClient(hostPort, creds);
  }

  #unary<Req, Res>(
    fn: (req: Req, md: grpc.Metadata, opts: grpc.CallOptions, cb: Callback<Res>) => unknown,
    req: Req,
    deadlineMs?: number,
  ): Promise<Res> {
    return unary(fn, req, deadlineMs, this.#token);
  }

  /** Auth.Authenticate; later calls carry the token. */
  async authenticate(name: string, password: string): Promise<void> {
    const c = this.#auth;
    const r = await this.#unary(
      c.authenticate.bind(c),
      rpc.AuthenticateRequest.create({ name, password }),
    );
    this.#token = r.token;
  }

  /** The token later calls carry (one Authenticate made, maybe on another member); undefined: none. */
  useToken(token: string | undefined): void {
    this.#token = token;
  }

  get token(): string | undefined {
    return this.#token;
  }

  /** Auth.AuthStatus (etcd 3.5's call): whether auth is on, and the auth revision. */
  authStatus(): Promise<rpc.AuthStatusResponse> {
    const c = this.#auth;
    return this.#unary(c.authStatus.bind(c), rpc.AuthStatusRequest.create());
  }

  lock(name: string, lease: bigint, deadlineMs?: number): Promise<v3lock.LockResponse> {
    const c = this.#lock;
    return this.#unary(
      c.lock.bind(c),
      v3lock.LockRequest.create({ name: Buffer.from(name), lease }),
      deadlineMs,
    );
  }

  unlock(key: Uint8Array): Promise<v3lock.UnlockResponse> {
    const c = this.#lock;
    return this.#unary(c.unlock.bind(c), v3lock.UnlockRequest.create({ key }));
  }

  campaign(
    name: string,
    lease: bigint,
    value: string,
    deadlineMs?: number,
  ): Promise<v3election.CampaignResponse> {
    const c = this.#election;
    const req = v3election.CampaignRequest.create({
      name: Buffer.from(name),
      lease,
      value: Buffer.from(value),
    });
    return this.#unary(c.campaign.bind(c), req, deadlineMs);
  }

  proclaim(leader: v3election.LeaderKey | undefined, value: string) {
    const c = this.#election;
    const req = v3election.ProclaimRequest.create({ leader, value: Buffer.from(value) });
    return this.#unary(c.proclaim.bind(c), req);
  }

  leader(name: string): Promise<v3election.LeaderResponse> {
    const c = this.#election;
    return this.#unary(
      c.leader.bind(c),
      v3election.LeaderRequest.create({ name: Buffer.from(name) }),
    );
  }

  resign(leader: v3election.LeaderKey | undefined): Promise<v3election.ResignResponse> {
    const c = this.#election;
    return this.#unary(c.resign.bind(c), v3election.ResignRequest.create({ leader }));
  }

  /** Election.Observe: `onLeader` gets each response; cancel() ends the stream. */
  observe(
    name: string,
    onLeader: (r: v3election.LeaderResponse) => void,
  ): { cancel(): void; ended: Promise<void> } {
    const call = this.#election.observe(
      v3election.LeaderRequest.create({ name: Buffer.from(name) }),
      tokenMetadata(this.#token),
    );
    call.on("data", onLeader);
    const ended = new Promise<void>((resolve) => {
      call.on("error", () => resolve());
      call.on("end", () => resolve());
    });
    return { cancel: () => call.cancel(), ended };
  }

  async grant(ttlSeconds: number): Promise<bigint> {
    const c = this.#lease;
    const r = await this.#unary(
      c.leaseGrant.bind(c),
      rpc.LeaseGrantRequest.create({ tTL: ttlSeconds, iD: 0n }),
    );
    return r.iD;
  }

  /**
   * Keeps lease `id` alive over one LeaseKeepAlive stream: a request every `everyMs`, as clientv3
   * sends them (every TTL/3). `ttls` collects the TTL of each answer (0: the lease is gone);
   * `stop()` ends the stream. A stream that fails stops sending and records the error.
   */
  keepAlive(
    id: bigint,
    everyMs: number,
  ): { ttls: number[]; error: () => Error | undefined; stop(): void } {
    const stream = this.#lease.leaseKeepAlive(tokenMetadata(this.#token));
    const ttls: number[] = [];
    let error: Error | undefined;
    const send = () => stream.write(rpc.LeaseKeepAliveRequest.create({ iD: id }));
    stream.on("data", (r: rpc.LeaseKeepAliveResponse) => ttls.push(Number(r.tTL)));
    stream.on("error", (err: Error) => {
      error = err;
      clearInterval(timer);
    });
    const timer = setInterval(send, everyMs);
    send();
    return {
      ttls,
      error: () => error,
      stop() {
        clearInterval(timer);
        stream.cancel();
      },
    };
  }

  async timeToLive(id: bigint): Promise<rpc.LeaseTimeToLiveResponse> {
    const c = this.#lease;
    return this.#unary(c.leaseTimeToLive.bind(c), rpc.LeaseTimeToLiveRequest.create({ iD: id }));
  }

  async revoke(id: bigint): Promise<void> {
    const c = this.#lease;
    await this.#unary(c.leaseRevoke.bind(c), rpc.LeaseRevokeRequest.create({ iD: id }));
  }

  /** The keys under `prefix`, in key order. */
  async keys(prefix: string): Promise<string[]> {
    const c = this.#kv;
    const key = Buffer.from(prefix);
    const end = Buffer.from(key);
    end[end.length - 1]! += 1;
    const r = await this.#unary(c.range.bind(c), rpc.RangeRequest.create({ key, rangeEnd: end }));
    return r.kvs.map((kv) => Buffer.from(kv.key).toString());
  }

  async get(key: string): Promise<string | undefined> {
    const c = this.#kv;
    const r = await this.#unary(
      c.range.bind(c),
      rpc.RangeRequest.create({ key: Buffer.from(key) }),
    );
    const kv = r.kvs[0];
    return kv === undefined ? undefined : Buffer.from(kv.value).toString();
  }

  async put(key: string, value: string): Promise<void> {
    const c = this.#kv;
    await this.#unary(
      c.put.bind(c),
      rpc.PutRequest.create({ key: Buffer.from(key), value: Buffer.from(value) }),
    );
  }

  async delete(key: string): Promise<void> {
    const c = this.#kv;
    await this.#unary(
      c.deleteRange.bind(c),
      rpc.DeleteRangeRequest.create({ key: Buffer.from(key) }),
    );
  }

  close(): void {
    this.#lock.close();
    this.#election.close();
    this.#kv.close();
    this.#lease.close();
    this.#auth.close();
  }
}
