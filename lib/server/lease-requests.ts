/**
 * The member's lease requests (etcd 3.4's v3_server.go LeaseGrant … LeaseLeases, its leasehttp
 * forwarding, and the leader's expiry loop in etcdserver.run):
 *
 * - Grant and Revoke go through raft (the applier creates and revokes, apply.ts).
 * - Renew (keep-alive) and TimeToLive are answered by the leader alone, which alone tracks the
 *   remaining TTLs; a follower forwards them over the peer port (leader-call.ts), and serves them
 *   itself if it became the leader meanwhile.
 * - Only the leader expires leases: on each tick it proposes a revoke for each expired lease, at
 *   most 1,000 a second (etcd's leaseRevokeRate). A new leader first extends every remaining TTL
 *   (Lessor.promote, etcd's lessor.Promote), from RaftNode's role change.
 */
import type { Logger } from "pino";
import type { InternalRaftRequest } from "../proto/gen/etcdserverpb/raft_internal.js";
import { LeaseInternalRequest, LeaseInternalResponse } from "../proto/gen/leasepb/lease.js";
import {
  LeaseKeepAliveRequest,
  LeaseKeepAliveResponse,
  type LeaseGrantRequest,
  type LeaseGrantResponse,
  type LeaseLeasesResponse,
  type LeaseRevokeRequest,
  type LeaseRevokeResponse,
  type LeaseTimeToLiveRequest,
  type LeaseTimeToLiveResponse,
  type ResponseHeader,
} from "../proto/gen/etcdserverpb/rpc.js";
import { type Lessor, maxLeaseTtlSeconds } from "../lease/index.js";
import type { AuthInfo } from "../auth/index.js";
import { errLeaseExists, errLeaseNotFound, errLeaseTtlTooLarge, errNotLeader } from "./errors.js";
import { callLeader, type LeaderCallHost } from "./leader-call.js";
import type { Proposals, RequestCaller } from "./proposals.js";
import { leaseOverheadBytes } from "./quota.js";

/** etcd: a lease is revoked at most this many times per second by the leader (leaseRevokeRate). */
const maxLeaseRevokesPerSecond = 1000;

/** What the lease requests need of the member. */
export interface LeaseRequestsHost extends LeaderCallHost {
  readonly lessor: Lessor;
  readonly proposals: Proposals;
  readonly logger: Logger;
  /** Throws NOSPACE when `costBytes` more would pass the quota (and raises the alarm). */
  checkQuota(costBytes: number): void;
  commitIndex(): number;
  waitApplied(index: number): Promise<void>;
  /** Resolves once a read index taken now is applied (ReadIndex, Raft thesis §6.4). */
  linearizableReadNotify(): Promise<void>;
  header(): ResponseHeader;
  /** Who revokes expired leases: root while auth is on (etcd's WithRoot). */
  rootInfo(): AuthInfo | undefined;
}

/** The lease requests of one member (see the module comment). */
export class LeaseRequests {
  readonly #host: LeaseRequestsHost;
  #lastRevokeMs = 0;

  constructor(host: LeaseRequestsHost) {
    this.#host = host;
  }

  /**
   * Lease.LeaseGrant: picks an id when the client gave 0 (etcd: reqIDGen.Next() & MaxInt64).
   * Throws "etcdserver: too large lease TTL", "etcdserver: lease already exists", NOSPACE.
   */
  async grant(
    req: LeaseGrantRequest,
    ai?: AuthInfo,
    caller?: RequestCaller,
  ): Promise<LeaseGrantResponse> {
    const h = this.#host;
    if (req.tTL > maxLeaseTtlSeconds) throw errLeaseTtlTooLarge();
    let id = req.iD;
    while (id === 0n || h.lessor.has(id)) {
      if (id !== 0n) throw errLeaseExists();
      id = h.proposals.nextRequestId() & ((1n << 63n) - 1n);
    }
    h.checkQuota(leaseOverheadBytes);
    return h.proposals.propose<LeaseGrantResponse>(
      { iD: 0n, leaseGrant: { tTL: req.tTL, iD: id } } as InternalRaftRequest,
      ai,
      caller,
    );
  }

  /** Lease.LeaseRevoke through raft; the keys attached go in one revision. */
  revoke(
    req: LeaseRevokeRequest,
    ai?: AuthInfo,
    caller?: RequestCaller,
  ): Promise<LeaseRevokeResponse> {
    return this.#host.proposals.propose<LeaseRevokeResponse>(
      { iD: 0n, leaseRevoke: req } as InternalRaftRequest,
      ai,
      caller,
    );
  }

  /**
   * Lease keep-alive (not through raft, as etcd's LeaseRenew): on the leader, or forwarded to it.
   * Returns the new TTL in seconds. Throws ErrLeaseNotFound, and as callLeader.
   */
  async renew(id: bigint): Promise<number> {
    if (this.#host.isLeader()) return this.renewLocal(id);
    const r = await callLeader(
      this.#host,
      "/leases",
      LeaseKeepAliveRequest.toBinary({ iD: id }),
      leaseCallDone,
    );
    if (r === "self") return this.renewLocal(id);
    if (r.status === 404) throw errLeaseNotFound();
    return Number(LeaseKeepAliveResponse.fromBinary(r.body).tTL);
  }

  /**
   * Lease keep-alive on the leader: returns the new TTL. Throws ErrLeaseNotFound; "etcdserver: not
   * leader" on a member that is not the leader (the peer handler's answer to a stale forward).
   */
  async renewLocal(id: bigint): Promise<number> {
    const h = this.#host;
    if (!h.isLeader()) throw errNotLeader();
    // etcd waits for the applied index to catch up with the commit index first, so a lease
    // revoked by an entry not yet applied is not renewed.
    await h.waitApplied(h.commitIndex());
    try {
      return h.lessor.renew(id, Date.now());
    } catch (err) {
      // etcd's Renew of an expired lease waits for its revoke, then answers "not found"
      const code = (err as { code?: string }).code;
      if (code === "LEASE_NOT_FOUND" || code === "LEASE_EXPIRED") throw errLeaseNotFound();
      if (code === "LEASE_NOT_PRIMARY") throw errNotLeader();
      throw err;
    }
  }

  /**
   * Lease.LeaseTimeToLive: answered by the leader; a follower forwards it (etcd's LeaseTimeToLive
   * over leasehttp). Throws ErrLeaseNotFound, and as callLeader.
   */
  async timeToLive(req: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    const h = this.#host;
    if (h.isLeader() || h.peers() === undefined) return this.timeToLiveLocal(req);
    const body = LeaseInternalRequest.toBinary({ leaseTimeToLiveRequest: req });
    const r = await callLeader(h, "/leases/internal", body, leaseCallDone);
    if (r === "self") return this.timeToLiveLocal(req);
    if (r.status === 404) throw errLeaseNotFound();
    const resp = LeaseInternalResponse.fromBinary(r.body).leaseTimeToLiveResponse;
    if (resp === undefined) throw errLeaseNotFound();
    return { ...resp, header: h.header() };
  }

  /** TimeToLive from this member's lessor, after a read index. Throws ErrLeaseNotFound. */
  async timeToLiveLocal(req: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    const h = this.#host;
    await h.linearizableReadNotify();
    const t = h.lessor.timeToLive(req.iD, Date.now(), req.keys);
    if (t === undefined) throw errLeaseNotFound();
    return {
      header: h.header(),
      iD: t.id,
      tTL: t.ttlSeconds,
      grantedTTL: t.grantedTtlSeconds,
      keys: t.keys,
    };
  }

  /** Lease.LeaseLeases, after a read index. */
  async leases(): Promise<LeaseLeasesResponse> {
    const h = this.#host;
    await h.linearizableReadNotify();
    return { header: h.header(), leases: h.lessor.leases().map((id) => ({ iD: id })) };
  }

  /** On the leader, each tick: proposes a revoke for each expired lease, rate-limited. */
  revokeExpired(): void {
    const h = this.#host;
    const now = Date.now();
    const elapsedMs = Math.min(1000, now - this.#lastRevokeMs);
    this.#lastRevokeMs = now;
    const limit = Math.max(1, Math.floor((maxLeaseRevokesPerSecond * elapsedMs) / 1000));
    for (const id of h.lessor.expired(now, limit)) {
      // as root while auth is on: an expired lease goes whoever holds keys on it
      void this.revoke({ iD: id }, h.rootInfo()).catch((err: Error) => {
        if (err.message !== errLeaseNotFound().message) {
          h.logger.warn(
            { lease: id.toString(16), err: err.message },
            "failed to revoke expired lease",
          );
        }
      });
    }
  }
}

/** The leader's lease endpoints answer 200, or 404 for a lease it does not have. */
function leaseCallDone(status: number): boolean {
  return status === 200 || status === 404;
}
