/**
 * etcd 3.4's leader requirement (api/v3rpc/interceptor.go, clientv3.WithRequireLeader): a call
 * whose metadata has `hasleader: true` fails at once with `etcdserver: no leader` (UNAVAILABLE)
 * while this member knows no leader, unary calls and streams alike (serializable reads included).
 * A stream that asked for it is also ended with that error once the member has known no leader at
 * maxNoLeaderChecks checks in a row, one check per election timeout (etcd's monitorLeader).
 * Calls without the metadata wait for a leader instead (lib/server/leader-wait.ts). etcdctl sets
 * it on `watch` (which so fails at once during an election), not on its unary commands.
 *
 * The JSON gateway does not pass it: etcd's grpc-gateway forwards only `Grpc-Metadata-*` headers,
 * which lib/api's gateway does not read.
 */
import type { EtcdServer } from "../server/index.js";

/** The metadata key and value clientv3.WithRequireLeader sets (rpctypes.MetadataRequireLeaderKey). */
export const requireLeaderKey = "hasleader";
export const requireLeaderValue = "true";

/** etcd's maxNoLeaderCnt: leaderless checks in a row before streams that require one are ended. */
const maxNoLeaderChecks = 3;

/** True when the call asked for a leader (`hasleader: true`). */
export function requiresLeader(metadata: ReadonlyMap<string, string>): boolean {
  return metadata.get(requireLeaderKey) === requireLeaderValue;
}

/**
 * True when the call asked for a leader and this member knows none: refuse it with ErrNoLeader.
 * The call's metadata is read only while no leader is known (the transports build it lazily).
 */
export function leaderMissingFor(
  server: Pick<EtcdServer, "leaderId">,
  call: { readonly metadata: ReadonlyMap<string, string> },
): boolean {
  return server.leaderId === 0n && requiresLeader(call.metadata);
}

/**
 * Streams that require a leader (etcd's streamsMap and monitorLeader): checks the member's leader
 * every election timeout while any such stream is open, and ends them all with the caller's
 * `end` once no leader was known at maxNoLeaderChecks checks in a row.
 */
export class LeaderStreamMonitor {
  readonly #server: Pick<EtcdServer, "leaderId">;
  readonly #checkEveryMs: number;
  readonly #streams = new Set<() => void>();
  #noLeaderChecks = 0;
  #timer: NodeJS.Timeout | undefined;

  /** `checkEveryMs`: the member's election timeout. */
  constructor(server: Pick<EtcdServer, "leaderId">, checkEveryMs: number) {
    this.#server = server;
    this.#checkEveryMs = checkEveryMs;
  }

  /**
   * Tracks a stream: `end()` ends it with ErrNoLeader when the leader stays lost. Returns the
   * function that stops tracking it (call it when the stream closes).
   */
  track(end: () => void): () => void {
    this.#streams.add(end);
    if (this.#timer === undefined) {
      this.#noLeaderChecks = 0;
      this.#timer = setInterval(() => this.#check(), this.#checkEveryMs);
      this.#timer.unref();
    }
    return () => this.#untrack(end);
  }

  #untrack(end: () => void): void {
    this.#streams.delete(end);
    if (this.#streams.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #check(): void {
    this.#noLeaderChecks = this.#server.leaderId === 0n ? this.#noLeaderChecks + 1 : 0;
    if (this.#noLeaderChecks < maxNoLeaderChecks) return;
    const ends = [...this.#streams];
    for (const end of ends) {
      this.#untrack(end);
      end();
    }
  }
}
