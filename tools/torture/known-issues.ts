/**
 * Known bugs of real etcd releases that the torture checks find when `--server-command` runs a
 * real etcd. A violation one of them explains is reported as `[KNOWN]` with the etcd issue and the
 * releases that fix it, and does not fail the run; every other violation still does. etcd-ts
 * members never get this allowance (the server's identity comes from `<command> --version`, which
 * prints an "etcd-ts Version:" line for etcd-ts).
 */
import { execFile } from "node:child_process";
import type { WatchGuarantee } from "../../lib/checker/watch.js";
import type { ServerCommand } from "./members.js";

/** What `<server command> --version` said: which product and which etcd version. */
export interface ServerIdentity {
  product: "etcd" | "etcd-ts";
  /** The "etcd Version:" line's value ("3.4.23"). */
  version: string;
}

/** A bug of some etcd releases that breaks one of the guarantees the checks test. */
export interface KnownIssue {
  /** "etcd-io/etcd#15220" */
  id: string;
  guarantee: WatchGuarantee;
  /** The etcd releases that fixed it ("3.4.24, 3.5.8"). */
  fixedIn: string;
  summary: string;
  /** Whether etcd `version` (x.y.z) has the bug. */
  affects(version: [number, number, number]): boolean;
}

/**
 * etcd-io/etcd#15220: a progress notification asked for with WatchProgressRequest was sent to
 * every watcher of the stream at the store's current revision, also to a watcher still catching
 * up (unsynced), so events at or below that revision arrive after it. Fixed by etcd PR #15237,
 * released in 3.4.24 and 3.5.8.
 */
const REQUESTED_PROGRESS_BEFORE_EVENTS: KnownIssue = {
  id: "etcd-io/etcd#15220",
  guarantee: "bookmarkable",
  fixedIn: "3.4.24, 3.5.8",
  summary: "a requested progress notification reaches a watcher that is still catching up",
  affects: ([major, minor, patch]) =>
    major === 3 && ((minor === 4 && patch < 24) || (minor === 5 && patch < 8) || minor < 4),
};

const KNOWN_ISSUES: KnownIssue[] = [REQUESTED_PROGRESS_BEFORE_EVENTS];

/** The known issues of `server` (none for etcd-ts, for an unknown server, or a fixed release). */
export function knownIssuesOf(server: ServerIdentity | undefined): KnownIssue[] {
  if (server === undefined || server.product !== "etcd") return [];
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(server.version);
  if (m === null) return [];
  const v: [number, number, number] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return KNOWN_ISSUES.filter((k) => k.affects(v));
}

/**
 * Parses `--version` output: "etcd Version: 3.4.23" names etcd's version; an "etcd-ts Version:"
 * line marks etcd-ts. Undefined when there is no "etcd Version:" line.
 */
export function parseVersionOutput(text: string): ServerIdentity | undefined {
  const m = /^etcd Version:\s*(\S+)/m.exec(text);
  if (m === null) return undefined;
  return { product: /^etcd-ts Version:/m.test(text) ? "etcd-ts" : "etcd", version: m[1]! };
}

/** Runs `<command> --version` (bounded by `timeoutMs`); undefined when it fails or says nothing. */
export function identifyServer(
  command: ServerCommand,
  timeoutMs = 10_000,
): Promise<ServerIdentity | undefined> {
  return new Promise((resolve) => {
    execFile(
      command.cmd,
      [...command.args, "--version"],
      { timeout: timeoutMs, maxBuffer: 64 * 1024 },
      (err, stdout) => resolve(err ? undefined : parseVersionOutput(stdout)),
    );
  });
}
