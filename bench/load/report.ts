/**
 * The result of a whole load run (all shards merged) and its text form, laid out like etcd's
 * benchmark report (Summary: Total, Slowest, Fastest, Average, Stddev, Requests/sec, then the
 * latency distribution).
 */
import { mergeEncoded, newHistogram, summarize, type LatencySummaryMs } from "./histogram.js";
import type { LoadOptions, Workload } from "./options.js";
import type { ErrorCounts, ShardResult } from "./runner.js";

/**
 * A finished run. Latencies in ms; for watch, `latencyMs` is the latency from the put's send to
 * each watcher's event and `watch.ackLatencyMs` from the put's acknowledgement (etcd's
 * watch-latency definition).
 */
export interface LoadResult {
  workload: Workload;
  endpoints: string[];
  conns: number;
  clients: number;
  procs: number;
  /** Requests completed, ok or not (watch: puts). */
  requests: number;
  errors: number;
  errorCounts: ErrorCounts;
  elapsedSeconds: number;
  /** Successful requests per second (watch: events per second). */
  requestsPerSecond: number;
  latencyMs: LatencySummaryMs;
  /** With --user: Authenticate calls made again after a token went stale (0 without auth). */
  reauthentications: number;
  watch?: {
    watchers: number;
    expectedEvents: number;
    events: number;
    eventsPerSecond: number;
    putsPerSecond: number;
    putLatencyMs: LatencySummaryMs;
    /**
     * From the put's response at the client to the event at each watcher (events before the
     * response count as 0); measured for each process's own puts, so with --procs N about 1/N of
     * the events.
     */
    ackLatencyMs: LatencySummaryMs;
    /** Events that reached a watcher before their put's response reached the putter. */
    eventsBeforeAck: number;
  };
}

/** Merges shard results into one run result (histograms added, wall time = slowest shard). */
export function mergeShards(o: LoadOptions, shards: readonly ShardResult[]): LoadResult {
  const hist = newHistogram();
  let requests = 0;
  let errors = 0;
  let elapsedMs = 0;
  let reauthentications = 0;
  const errorCounts: ErrorCounts = {};
  for (const s of shards) {
    mergeEncoded(hist, s.histogram);
    reauthentications += s.reauthentications;
    requests += s.requests;
    errors += s.errors;
    elapsedMs = Math.max(elapsedMs, s.elapsedMs);
    for (const [k, v] of Object.entries(s.errorCounts)) errorCounts[k] = (errorCounts[k] ?? 0) + v;
  }
  const elapsedSeconds = elapsedMs / 1000;
  const base = {
    workload: o.workload,
    endpoints: o.endpoints,
    conns: o.conns,
    clients: o.clients,
    procs: shards.length,
    requests,
    errors,
    errorCounts,
    elapsedSeconds,
    reauthentications,
  };
  if (o.workload !== "watch") {
    const ok = hist.totalCount;
    return {
      ...base,
      requestsPerSecond: elapsedSeconds > 0 ? ok / elapsedSeconds : 0,
      latencyMs: summarize(hist),
    };
  }
  const eventHist = newHistogram();
  const ackHist = newHistogram();
  let eventsBeforeAck = 0;
  let watchers = 0;
  let expectedEvents = 0;
  let events = 0;
  let first = Infinity;
  let last = 0;
  for (const s of shards) {
    const w = s.watch!;
    mergeEncoded(eventHist, w.eventHistogram);
    mergeEncoded(ackHist, w.ackEventHistogram);
    eventsBeforeAck += w.eventsBeforeAck;
    watchers += w.watchers;
    expectedEvents += w.expectedEvents;
    events += w.events;
    first = Math.min(first, w.firstPutWallMs);
    last = Math.max(last, w.lastEventWallMs);
  }
  const windowSeconds = Math.max(last - first, 1) / 1000;
  const eventsPerSecond = events / windowSeconds;
  return {
    ...base,
    requestsPerSecond: eventsPerSecond,
    latencyMs: summarize(eventHist),
    watch: {
      watchers,
      expectedEvents,
      events,
      eventsPerSecond,
      putsPerSecond: elapsedSeconds > 0 ? hist.totalCount / elapsedSeconds : 0,
      putLatencyMs: summarize(hist),
      ackLatencyMs: summarize(ackHist),
      eventsBeforeAck,
    },
  };
}

function f4(n: number): string {
  return n.toFixed(4);
}

function latencyLines(l: LatencySummaryMs, indent: string): string[] {
  return [
    `${indent}min ${f4(l.min)} ms  avg ${f4(l.avg)} ms  stddev ${f4(l.stddev)} ms  max ${f4(l.max)} ms`,
    `${indent}p50 ${f4(l.p50)} ms  p90 ${f4(l.p90)} ms  p99 ${f4(l.p99)} ms  p99.9 ${f4(l.p999)} ms`,
  ];
}

/** The human-readable report. */
export function formatLoadResult(r: LoadResult): string {
  const lines: string[] = [];
  lines.push(
    `Workload: ${r.workload}  endpoints ${r.endpoints.join(",")}  conns ${r.conns}  clients ${r.clients}  procs ${r.procs}`,
  );
  lines.push("Summary:");
  lines.push(`  Total:\t${f4(r.elapsedSeconds)} secs.`);
  lines.push(`  Slowest:\t${f4(r.latencyMs.max / 1000)} secs.`);
  lines.push(`  Fastest:\t${f4(r.latencyMs.min / 1000)} secs.`);
  lines.push(`  Average:\t${f4(r.latencyMs.avg / 1000)} secs.`);
  lines.push(`  Stddev:\t${f4(r.latencyMs.stddev / 1000)} secs.`);
  if (r.watch === undefined) {
    lines.push(`  Requests/sec:\t${f4(r.requestsPerSecond)}`);
    lines.push(`  Requests:\t${r.requests} (${r.errors} failed)`);
    lines.push("Latency:");
  } else {
    const w = r.watch;
    lines.push(`  Events/sec:\t${f4(w.eventsPerSecond)}`);
    lines.push(`  Events:\t${w.events} of ${w.expectedEvents} expected (${w.watchers} watchers)`);
    lines.push(`  Puts/sec:\t${f4(w.putsPerSecond)} (${r.requests} puts, ${r.errors} errors)`);
    lines.push("Put-to-watcher latency, from the put's send:");
  }
  lines.push(...latencyLines(r.latencyMs, "  "));
  if (r.watch !== undefined) {
    const w = r.watch;
    lines.push(
      `Put-to-watcher latency, from the put's acknowledgement (etcd's watch-latency; ${w.ackLatencyMs.count} events, ${w.eventsBeforeAck} before the ack counted as 0):`,
    );
    lines.push(...latencyLines(w.ackLatencyMs, "  "));
    lines.push("Put latency:");
    lines.push(...latencyLines(r.watch.putLatencyMs, "  "));
  }
  if (r.reauthentications > 0)
    lines.push(`Authenticated again after a stale token: ${r.reauthentications} times`);
  const kinds = Object.entries(r.errorCounts);
  if (kinds.length > 0) {
    lines.push("Error distribution:");
    for (const [k, v] of kinds) lines.push(`  [${v}]\t${k}`);
  }
  return lines.join("\n");
}
