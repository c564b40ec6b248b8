/** Go's time.ParseDuration for the forms etcd flags use ("100ms", "1h30m", "5s"), in milliseconds. */
export class DurationError extends Error {
  readonly code = "ErrDuration";
}

/** Parses a Go duration string into milliseconds. Throws DurationError on anything else. */
export function parseGoDurationMs(v: string): number {
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(v); m !== null; m = re.exec(v)) {
    const n = Number(m[1]);
    const unit = m[2];
    const scale =
      unit === "h"
        ? 3600e3
        : unit === "m"
          ? 60e3
          : unit === "s"
            ? 1e3
            : unit === "ms"
              ? 1
              : unit === "ns"
                ? 1e-6
                : 1e-3;
    total += n * scale;
    consumed += m[0].length;
  }
  if (consumed !== v.length || v.length === 0)
    throw new DurationError(`time: invalid duration "${v}"`);
  return total;
}
