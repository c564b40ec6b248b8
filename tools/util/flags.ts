/** The command-line form every etcd-ts-util command takes: `--name value` or `--name=value`. */
import { UtilUsageError } from "./errors.js";

/**
 * Parses `--name value` / `--name=value` flags; names in `booleans` take no value (`--name` means
 * "true"). Throws UtilUsageError for a positional argument, a missing value, or (when `known` is
 * given) a name not in `known`.
 */
export function parseUtilFlags(
  argv: readonly string[],
  booleans: ReadonlySet<string>,
  known?: ReadonlySet<string>,
): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--")) throw new UtilUsageError(`unexpected argument ${a}`);
    const eq = a.indexOf("=");
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    if (known !== undefined && !known.has(name)) throw new UtilUsageError(`unknown flag --${name}`);
    if (eq >= 0) flags.set(name, a.slice(eq + 1));
    else if (booleans.has(name)) flags.set(name, "true");
    else {
      const v = argv[++i];
      if (v === undefined) throw new UtilUsageError(`--${name} needs a value`);
      flags.set(name, v);
    }
  }
  return flags;
}
