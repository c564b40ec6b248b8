// Spawns an etcd-ts (or real etcd) cluster of N members on loopback for end-to-end tests, and an
// optional TCP proxy in front of each member's peer port that can cut members off from each
// other (partitions) without touching the processes. Every process is ended by its own pid.
import { rmSync } from "node:fs";
import { after, before } from "node:test";
import { computeMemberId } from "../../lib/server/index.js";
import { PeerProxy, healProxies, partitionProxies } from "../../tools/torture/peer-proxy.js";
import { ConcurrencyClient } from "./concurrency-client.js";
import {
  type Member,
  type MemberOptions,
  type TlsFiles,
  etcdctl,
  freePort,
  generateTls,
  httpRequest,
  sleep,
  startMember,
} from "./server.js";

/** Options of {@link startCluster}. */
export interface ClusterOptions {
  /** Number of members (default 3). */
  size?: number;
  /** Client and peer TLS with these files (peer URLs https://, --peer-client-cert-auth). */
  tls?: TlsFiles;
  /** Flags appended to every member's command line. */
  extraArgs?: string[];
  /**
   * Put a PeerProxy in front of every member's peer port (plain http:// peer URLs only): the
   * advertised peer URL is the proxy's, the member listens behind it.
   */
  proxies?: boolean;
  /** Bound on each member becoming healthy, ms. */
  startTimeoutMs?: number;
  /** Extra environment variables of every member process (e.g. ETCD_TS_FAILPOINTS). */
  env?: Record<string, string>;
}

/** A running cluster. */
export interface Cluster {
  readonly members: Member[];
  readonly token: string;
  /** Client URLs of every member, comma separated (etcdctl --endpoints). */
  readonly endpoints: string;
  /** The proxies, one per member in member order, when started with `proxies`. */
  readonly proxies: PeerProxy[];
  /** Member ids in member order (derived as etcd does). */
  readonly ids: bigint[];
  /** The member every running member reports as leader; polls up to timeoutMs. */
  leader(timeoutMs?: number, among?: Member[]): Promise<Member>;
  /** Maintenance.Status of one member through the JSON gateway. */
  status(m: Member): Promise<MemberStatus>;
  /** Stops every member and proxy and removes their dirs. */
  close(): Promise<void>;
}

/** The parts of Maintenance.Status the tests read. */
export interface MemberStatus {
  memberId: bigint;
  leader: bigint;
  raftTerm: number;
  raftIndex: number;
  raftAppliedIndex: number;
  isLearner: boolean;
}

/** POSTs a JSON gateway call to a member; returns the parsed body. */
export async function gateway<T>(m: Member, path: string, body: unknown): Promise<T> {
  const r = await httpRequest(m.endpoint + path, {
    method: "POST",
    body: JSON.stringify(body),
    tls: m.tls,
    timeoutMs: 3000,
  });
  if (r.status !== 200) throw new Error(`${path} on ${m.name}: ${r.status} ${r.body}`);
  return JSON.parse(r.body) as T;
}

/**
 * HashKV of each member at its current revision, through the JSON gateway (every transport), as
 * "revision:hash" (or the error text of a member that does not answer), in member order.
 */
export async function hashKVs(members: Member[]): Promise<string[]> {
  return Promise.all(
    members.map(async (m) => {
      try {
        const r = await gateway<{ hash?: number; header: { revision?: string } }>(
          m,
          "/v3/maintenance/hashkv",
          {},
        );
        return `${r.header.revision ?? 0}:${r.hash ?? 0}`;
      } catch (err) {
        return `${m.name}: ${(err as Error).message}`;
      }
    }),
  );
}

/**
 * `etcdctl endpoint hashkv -w json` against `members` of `c` (default all; TLS files when the
 * cluster has them): each member's revision and hash, in member order, or etcdctl's stderr when it
 * fails. Through etcdctl rather than the JSON gateway, so it reads real etcd 3.4 too, whose gateway
 * has no hashkv.
 */
export async function etcdctlHashKVs(
  c: Cluster,
  members: Member[] = c.members,
): Promise<{ revision: number; hash: number }[] | string> {
  const r = await clusterctl(
    { ...c, members, endpoints: members.map((m) => m.endpoint).join(",") },
    ["endpoint", "hashkv", "-w", "json"],
  );
  if (r.code !== 0) return r.stderr;
  const rows = JSON.parse(r.stdout) as { HashKV: { header: { revision: number }; hash: number } }[];
  return rows.map((row) => ({ revision: row.HashKV.header.revision, hash: row.HashKV.hash }));
}

/** True when every one of `members` answers the same revision and HashKV. */
export async function sameHashKV(members: Member[]): Promise<boolean> {
  return new Set(await hashKVs(members)).size === 1;
}

async function memberStatus(m: Member): Promise<MemberStatus> {
  const s = await gateway<{
    header: { member_id: string; raft_term: string };
    leader?: string;
    raftIndex?: string;
    raftTerm?: string;
    raftAppliedIndex?: string;
    isLearner?: boolean;
  }>(m, "/v3/maintenance/status", {});
  return {
    memberId: BigInt(s.header.member_id),
    leader: BigInt(s.leader ?? "0"),
    raftTerm: Number(s.raftTerm ?? 0),
    raftIndex: Number(s.raftIndex ?? 0),
    raftAppliedIndex: Number(s.raftAppliedIndex ?? 0),
    isLearner: s.isLearner === true,
  };
}

/** Cluster starts tried when a port picked for it was taken before its member listened. */
const CLUSTER_START_ATTEMPTS = 3;

/**
 * Starts `size` members with one --initial-cluster, all at once (a member reports healthy once a
 * quorum is up), and resolves when every one is healthy. freePort() hands out a port that is free
 * now; something else may bind it before the member does (CI saw a member exit with EADDRINUSE).
 * Then every member started is closed and the whole cluster is started again on new ports and a
 * new token, at most CLUSTER_START_ATTEMPTS times; any other failure is thrown at once.
 */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startClusterOnce(opts);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const portTaken = e.code === "EADDRINUSE" || /EADDRINUSE/.test(String(e.message));
      if (!portTaken || attempt >= CLUSTER_START_ATTEMPTS) throw err;
    }
  }
}

async function startClusterOnce(opts: ClusterOptions): Promise<Cluster> {
  const size = opts.size ?? 3;
  const token = `etcd-ts-test-${process.pid}-${Date.now().toString(36)}`;
  const peerScheme = opts.tls ? "https" : "http";
  if (opts.proxies && opts.tls) throw new Error("startCluster: proxies need plain http peers");
  const plan: { name: string; clientPort: number; peerPort: number; advertisedPort: number }[] = [];
  const used = new Set<number>();
  const port = async (): Promise<number> => {
    for (;;) {
      const p = await freePort();
      if (!used.has(p)) {
        used.add(p);
        return p;
      }
    }
  };
  for (let i = 1; i <= size; i++) {
    const clientPort = await port();
    const peerPort = await port();
    const advertisedPort = opts.proxies ? await port() : peerPort;
    plan.push({ name: `m${i}`, clientPort, peerPort, advertisedPort });
  }
  const url = (p: number) => `${peerScheme}://127.0.0.1:${p}`;
  const initialCluster = plan.map((p) => `${p.name}=${url(p.advertisedPort)}`).join(",");
  const ids = plan.map((p) => computeMemberId([url(p.advertisedPort)], token));
  const proxies: PeerProxy[] = [];
  if (opts.proxies) {
    try {
      for (let i = 0; i < size; i++) {
        proxies.push(await PeerProxy.start(plan[i]!.advertisedPort, plan[i]!.peerPort, ids[i]!));
      }
    } catch (err) {
      for (const p of proxies) p.close();
      throw err;
    }
  }
  const started = await Promise.allSettled(
    plan.map((p) =>
      startMember({
        name: p.name,
        clientPort: p.clientPort,
        peerPort: p.peerPort,
        tls: opts.tls,
        peerTls: opts.tls !== undefined,
        initialCluster,
        startTimeoutMs: opts.startTimeoutMs ?? 30_000,
        ...(opts.env !== undefined ? { env: opts.env } : {}),
        extraArgs: [
          "--initial-cluster-token",
          token,
          ...(opts.proxies ? ["--initial-advertise-peer-urls", url(p.advertisedPort)] : []),
          ...(opts.extraArgs ?? []),
        ],
      } satisfies MemberOptions),
    ),
  );
  const members = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = started.find((r) => r.status === "rejected");
  if (failed !== undefined) {
    await Promise.all(members.map((m) => m.close()));
    for (const p of proxies) p.close();
    throw (failed as PromiseRejectedResult).reason;
  }
  const cluster: Cluster = {
    members,
    token,
    endpoints: members.map((m) => m.endpoint).join(","),
    proxies,
    ids,
    status: memberStatus,
    async leader(timeoutMs = 15_000, among = members) {
      const deadline = Date.now() + timeoutMs;
      let last = "";
      while (Date.now() < deadline) {
        try {
          const st = await Promise.all(among.map((m) => memberStatus(m)));
          const leads = new Set(st.map((s) => s.leader));
          const lead = st[0]!.leader;
          const i = ids.indexOf(lead);
          if (leads.size === 1 && lead !== 0n && i >= 0 && among.includes(members[i]!)) {
            return members[i]!;
          }
          last = st.map((s) => s.leader.toString(16)).join(",");
        } catch (err) {
          last = (err as Error).message;
        }
        await sleep(100);
      }
      throw new Error(`no leader agreed within ${timeoutMs} ms (last: ${last})`);
    },
    async close() {
      await Promise.all(members.map((m) => m.close()));
      for (const p of proxies) p.close();
    },
  };
  return cluster;
}

/** What {@link tlsClusterSuite} gives the tests of its describe block. */
export interface TlsClusterSuite {
  /** The running cluster (once `before` ran). */
  readonly cluster: Cluster;
  readonly tls: TlsFiles;
  /** A new gRPC client (Lock, Election, KV, Lease, Auth) of `m` over TLS, closed in `after`. */
  client(m: Member): ConcurrencyClient;
}

/**
 * Registers `before` and `after` hooks in the calling describe block: a cluster over client and
 * peer TLS with fresh certificates, started with `extraArgs(tls)` (it may write files, e.g. JWT
 * keys, into `tls.dir`), then `setup(suite)`; afterwards its gRPC clients, members and
 * certificates go.
 */
export function tlsClusterSuite(
  extraArgs: (tls: TlsFiles) => string[] | Promise<string[]>,
  setup?: (suite: TlsClusterSuite) => Promise<void>,
): TlsClusterSuite {
  let cluster: Cluster | undefined;
  let tls: TlsFiles | undefined;
  const clients: ConcurrencyClient[] = [];
  const suite: TlsClusterSuite = {
    get cluster() {
      if (cluster === undefined) throw new Error("tlsClusterSuite: the cluster is not started");
      return cluster;
    },
    get tls() {
      if (tls === undefined) throw new Error("tlsClusterSuite: no certificates yet");
      return tls;
    },
    client(m) {
      const cl = new ConcurrencyClient(m.hostPort, suite.tls);
      clients.push(cl);
      return cl;
    },
  };
  before(async () => {
    tls = await generateTls();
    cluster = await startCluster({ tls, extraArgs: await extraArgs(tls) });
    await setup?.(suite);
  });
  after(async () => {
    for (const cl of clients) cl.close();
    await cluster?.close();
    if (tls !== undefined) rmSync(tls.dir, { recursive: true, force: true });
  });
  return suite;
}

/**
 * Runs etcdctl against one member (its endpoint and, with TLS, the client certificate), bounded
 * at 20 s; `input` goes to its stdin (e.g. a put's value).
 */
export function memberctl(m: Member, args: string[], input?: string) {
  return etcdctl(args, { member: m, timeoutMs: 20_000, input });
}

/** Runs etcdctl against every member of a cluster (endpoints and, with TLS, client certs). */
export function clusterctl(c: Cluster, args: string[], timeoutMs = 20_000) {
  const m = c.members[0]!;
  return etcdctl(args, {
    endpoint: c.endpoints,
    member: m.tls === undefined ? undefined : { ...m, endpoint: c.endpoints },
    timeoutMs,
  });
}

/**
 * Cuts `cut` off from the rest: every proxy of the rest refuses `cut`'s members and the proxies of
 * `cut` refuse everyone else.
 */
export function partition(c: Cluster, cut: Member[]): void {
  partitionProxies(c.proxies, c.ids, new Set(cut.map((m) => c.ids[c.members.indexOf(m)]!)));
}

/** Heals every partition. */
export function heal(c: Cluster): void {
  healProxies(c.proxies);
}
