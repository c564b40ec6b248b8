/**
 * The peer transport's Prometheus metrics with etcd's names, labels and buckets
 * (server/etcdserver/api/rafthttp/metrics.go): etcd_network_peer_sent_bytes_total{To},
 * …_received_bytes_total{From}, …_sent_failures_total{To}, …_received_failures_total{From},
 * etcd_network_peer_round_trip_time_seconds{To}, etcd_network_active_peers{Local,Remote},
 * etcd_network_disconnected_peers_total{Local,Remote} and the snapshot send/receive counters.
 * Label values are member ids in etcd's hex form. One etcd-ts addition:
 * etcd_ts_network_peer_dropped_messages_total{To}, messages dropped because a peer's queue was
 * full (etcd counts those only as sent failures, which we do too).
 *
 * The byte and message counters change on every frame, so they are plain numbers per peer
 * (PeerCounts) that a registry reads when scraped, instead of prom-client Counters that hash
 * their label set on every inc().
 */
import client from "prom-client";

/** Per-peer running counts, bumped on the send and receive paths. */
export interface PeerCounts {
  sentBytes: number;
  sentFailures: number;
  droppedMessages: number;
  receivedBytes: number;
  receivedFailures: number;
}

type MetricValue = { labels: Record<string, string>; value: number };

/**
 * A counter whose values are read from PeerCounts when scraped; it implements the part of
 * prom-client's metric interface a Registry uses (get, reset and the name/help/type fields).
 */
class PeerCounter {
  readonly type = "counter";
  readonly aggregator = "sum";

  readonly #label: "To" | "From";
  readonly #peers: Map<string, PeerCounts>;
  readonly #read: (c: PeerCounts) => number;

  constructor(
    readonly name: string,
    readonly help: string,
    label: "To" | "From",
    peers: Map<string, PeerCounts>,
    read: (c: PeerCounts) => number,
  ) {
    this.#label = label;
    this.#peers = peers;
    this.#read = read;
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: MetricValue[] } {
    const values: MetricValue[] = [];
    for (const [id, counts] of this.#peers)
      values.push({ labels: { [this.#label]: id }, value: this.#read(counts) });
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    };
  }

  reset(): void {}
}

/** etcd's round-trip buckets: 0.1 ms doubling 16 times (up to ~3.3 s). */
const rttBuckets = client.exponentialBuckets(0.0001, 2, 16);
/** etcd's snapshot duration buckets: 100 ms doubling 10 times (up to ~51 s). */
const snapshotBuckets = client.exponentialBuckets(0.1, 2, 10);

/**
 * The metrics of one PeerTransport, registered in the registry it is given (the member's, so
 * they show on its /metrics). Registering two transports in one registry throws (prom-client
 * refuses duplicate names).
 */
export class TransportMetrics {
  readonly registry: client.Registry;
  readonly #peers = new Map<string, PeerCounts>();
  readonly roundTripTimeSeconds: client.Histogram<"To">;
  readonly activePeers: client.Gauge<"Local" | "Remote">;
  readonly disconnectedPeersTotal: client.Counter<"Local" | "Remote">;
  readonly snapshotSendSuccess: client.Counter<"To">;
  readonly snapshotSendFailures: client.Counter<"To">;
  readonly snapshotSendInflights: client.Gauge<"To">;
  readonly snapshotSendSeconds: client.Histogram<"To">;
  readonly snapshotReceiveSuccess: client.Counter<"From">;
  readonly snapshotReceiveFailures: client.Counter<"From">;
  readonly snapshotReceiveInflights: client.Gauge<"From">;
  readonly snapshotReceiveSeconds: client.Histogram<"From">;

  constructor(registry: client.Registry) {
    this.registry = registry;
    const registers = [registry];
    const counter = (
      name: string,
      help: string,
      label: "To" | "From",
      read: (c: PeerCounts) => number,
    ): void => {
      const m = new PeerCounter(name, help, label, this.#peers, read);
      registry.registerMetric(m as unknown as client.Metric<string>);
    };
    counter(
      "etcd_network_peer_sent_bytes_total",
      "The total number of bytes sent to peers.",
      "To",
      (c) => c.sentBytes,
    );
    counter(
      "etcd_network_peer_received_bytes_total",
      "The total number of bytes received from peers.",
      "From",
      (c) => c.receivedBytes,
    );
    counter(
      "etcd_network_peer_sent_failures_total",
      "The total number of send failures from peers.",
      "To",
      (c) => c.sentFailures,
    );
    counter(
      "etcd_network_peer_received_failures_total",
      "The total number of receive failures from peers.",
      "From",
      (c) => c.receivedFailures,
    );
    counter(
      "etcd_ts_network_peer_dropped_messages_total",
      "The total number of raft messages dropped because the peer's send queue was full.",
      "To",
      (c) => c.droppedMessages,
    );
    this.roundTripTimeSeconds = new client.Histogram({
      name: "etcd_network_peer_round_trip_time_seconds",
      help: "Round-Trip-Time histogram between peers",
      labelNames: ["To"],
      buckets: rttBuckets,
      registers,
    });
    this.activePeers = new client.Gauge({
      name: "etcd_network_active_peers",
      help: "The current number of active peer connections.",
      labelNames: ["Local", "Remote"],
      registers,
    });
    this.disconnectedPeersTotal = new client.Counter({
      name: "etcd_network_disconnected_peers_total",
      help: "The total number of disconnected peers.",
      labelNames: ["Local", "Remote"],
      registers,
    });
    this.snapshotSendSuccess = new client.Counter({
      name: "etcd_network_snapshot_send_success",
      help: "Total number of successful snapshot sends",
      labelNames: ["To"],
      registers,
    });
    this.snapshotSendFailures = new client.Counter({
      name: "etcd_network_snapshot_send_failures",
      help: "Total number of snapshot send failures",
      labelNames: ["To"],
      registers,
    });
    this.snapshotSendInflights = new client.Gauge({
      name: "etcd_network_snapshot_send_inflights_total",
      help: "Total number of inflight snapshot sends",
      labelNames: ["To"],
      registers,
    });
    this.snapshotSendSeconds = new client.Histogram({
      name: "etcd_network_snapshot_send_total_duration_seconds",
      help: "Total latency distributions of v3 snapshot sends",
      labelNames: ["To"],
      buckets: snapshotBuckets,
      registers,
    });
    this.snapshotReceiveSuccess = new client.Counter({
      name: "etcd_network_snapshot_receive_success",
      help: "Total number of successful snapshot receives",
      labelNames: ["From"],
      registers,
    });
    this.snapshotReceiveFailures = new client.Counter({
      name: "etcd_network_snapshot_receive_failures",
      help: "Total number of snapshot receive failures",
      labelNames: ["From"],
      registers,
    });
    this.snapshotReceiveInflights = new client.Gauge({
      name: "etcd_network_snapshot_receive_inflights_total",
      help: "Total number of inflight snapshot receives",
      labelNames: ["From"],
      registers,
    });
    this.snapshotReceiveSeconds = new client.Histogram({
      name: "etcd_network_snapshot_receive_total_duration_seconds",
      help: "Total latency distributions of v3 snapshot receives",
      labelNames: ["From"],
      buckets: snapshotBuckets,
      registers,
    });
  }

  /** The running counts for the peer with hex id `idHex` (created at zero on first use). */
  peer(idHex: string): PeerCounts {
    let c = this.#peers.get(idHex);
    if (c === undefined) {
      c = {
        sentBytes: 0,
        sentFailures: 0,
        droppedMessages: 0,
        receivedBytes: 0,
        receivedFailures: 0,
      };
      this.#peers.set(idHex, c);
    }
    return c;
  }
}
