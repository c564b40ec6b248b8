/**
 * Latency histograms (hdr-histogram-js, values in microseconds) and their summary in
 * milliseconds, plus the wire form (compressed base64) worker processes send to be merged.
 */
import * as hdr from "hdr-histogram-js";

/** Highest latency tracked without resizing: 10 minutes, in µs (the histogram auto-resizes past it). */
export const HIGHEST_TRACKABLE_US = 600_000_000;
/** Significant decimal digits kept (0.1 % value resolution). */
export const SIGNIFICANT_DIGITS = 3;

/** A latency histogram in µs. */
export type LatencyHistogram = hdr.Histogram;

/** A new empty histogram (JS implementation: no WebAssembly start-up). */
export function newHistogram(): LatencyHistogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_TRACKABLE_US,
    numberOfSignificantValueDigits: SIGNIFICANT_DIGITS,
    autoResize: true,
    useWebAssembly: false,
  });
}

/** Records one latency given in milliseconds (fractional), clamped to ≥ 1 µs. */
export function recordMs(h: LatencyHistogram, ms: number): void {
  h.recordValue(Math.max(1, Math.round(ms * 1000)));
}

/** Compressed base64 of the histogram, for sending between processes. */
export function encodeHistogram(h: LatencyHistogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

/** Adds a histogram received from a worker (see encodeHistogram) into `into`. */
export function mergeEncoded(into: LatencyHistogram, encoded: string): void {
  const h = hdr.decodeFromCompressedBase64(encoded, 32, false);
  into.add(h);
}

/** Latency summary in milliseconds; all zero when nothing was recorded. */
export interface LatencySummaryMs {
  count: number;
  min: number;
  avg: number;
  stddev: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** Summarises `h` (µs) in ms. */
export function summarize(h: LatencyHistogram): LatencySummaryMs {
  const count = h.totalCount;
  if (count === 0)
    return { count: 0, min: 0, avg: 0, stddev: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
  const ms = (us: number): number => us / 1000;
  return {
    count,
    min: ms(h.minNonZeroValue),
    avg: ms(h.mean),
    stddev: ms(h.stdDeviation),
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
  };
}
