/**
 * A follower's call to the leader's peer endpoint, for the requests etcd 3.4 serves only on the
 * leader and forwards over the peer port: lease keep-alives and TimeToLive (etcd's leasehttp,
 * `/leases` and `/leases/internal`) and MemberPromote (`/members/promote/<id>`). The call goes to
 * whichever member leads at each try and is retried, every 50 ms (etcd's forward throttling),
 * while the leader is unknown, unreachable or answers with a status the caller did not name as
 * final, until the member's request timeout.
 */
import type { PeerHttpResponse } from "./peer-http.js";
import type { MemberRecord } from "./membership.js";
import type { PeerNet } from "./peer-net.js";
import { errNoLeader, errStopped, errTimeout } from "./errors.js";

/** How long a try waits before the next one, ms (etcd throttles its forwards at 50 ms). */
const retryAfterMs = 50;

/** What a call to the leader needs of the member. */
export interface LeaderCallHost {
  /** The peer network; undefined on a member started without peers (a lone test member). */
  peers(): PeerNet | undefined;
  members(): Map<bigint, MemberRecord>;
  memberId(): bigint;
  /** The leader as the last Ready reported it (0 while unknown). */
  leaderId(): bigint;
  isLeader(): boolean;
  /** etcd's request timeout (5 s + 2 election timeouts), ms. */
  requestTimeoutMs(): number;
  stopped(): boolean;
}

/**
 * POSTs `body` to `path` on the leader's peer endpoint. Resolves with the response once its status
 * is one `isFinal` accepts, or "self" when this member is the leader (it became leader while the
 * call waited: the caller answers it here, as etcd's forward to its own peer URL does). Throws
 * ErrNoLeader ("etcdserver: no leader") on a member without peers, ErrStopped when the member
 * stops, and ErrTimeout ("etcdserver: request timed out") at the request timeout.
 */
export async function callLeader(
  host: LeaderCallHost,
  path: string,
  body: Uint8Array | undefined,
  isFinal: (status: number) => boolean,
): Promise<PeerHttpResponse | "self"> {
  const peers = host.peers();
  if (peers === undefined) throw errNoLeader();
  const deadline = Date.now() + host.requestTimeoutMs();
  while (Date.now() < deadline && !host.stopped()) {
    const leader = host.members().get(host.leaderId());
    if (leader !== undefined && leader.id !== host.memberId()) {
      try {
        const r = await peers.request(leader, "POST", path, body);
        if (isFinal(r.status)) return r;
      } catch {
        // the leader is unreachable or changing: try again
      }
    } else if (leader !== undefined && host.isLeader()) {
      return "self";
    }
    await new Promise((r) => setTimeout(r, retryAfterMs));
  }
  if (host.stopped()) throw errStopped();
  throw errTimeout();
}
