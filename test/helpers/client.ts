// Builds `etcd3` npm clients for a member started by ./server.ts.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Etcd3, type IOptions } from "etcd3";
import type { Member } from "./server.js";

/** Options of {@link newClient}. */
export interface ClientOptions {
  /** With a TLS member: present the client certificate (default true). */
  useClientCert?: boolean;
  /** No retries at the client level: a failed call fails at once (crash tests). */
  noRetry?: boolean;
  /** Extra etcd3 options merged last. */
  extra?: Partial<IOptions>;
}

/**
 * A new etcd3 client for `member` (its TLS files when it serves TLS). The caller closes it
 * (client.close()) in an `after` hook.
 */
export function newClient(member: Member, opts: ClientOptions = {}): Etcd3 {
  const options: IOptions = { hosts: member.endpoint, dialTimeout: 3000 };
  if (member.tls !== undefined) {
    options.credentials = {
      rootCertificate: readFileSync(member.tls.caCert),
      ...(opts.useClientCert === false
        ? {}
        : {
            privateKey: readFileSync(member.tls.clientKey),
            certChain: readFileSync(member.tls.clientCert),
          }),
    };
  }
  if (opts.noRetry) {
    // A pass-through policy: cockatiel's `noop` executes the call once.
    options.faultHandling = { global: noopPolicy(), host: () => noopPolicy() };
  }
  return new Etcd3({ ...options, ...(opts.extra ?? {}) });
}

type Policy = NonNullable<NonNullable<IOptions["faultHandling"]>["global"]>;

/** A policy object that runs the function once (cockatiel's IPolicy shape). */
function noopPolicy(): Policy {
  const p = {
    _altReturn: undefined as never,
    onSuccess: () => ({ dispose() {} }),
    onFailure: () => ({ dispose() {} }),
    execute: <T>(fn: (ctx: { signal: AbortSignal }) => T | Promise<T>, signal?: AbortSignal) =>
      Promise.resolve(fn({ signal: signal ?? new AbortController().signal })),
  };
  return p as unknown as Policy;
}

/** The part of etcd3's private WatchManager that closeClient() touches. */
interface WatchManagerInternals {
  watchers: unknown[];
  stream?: { cancel(): void };
}

/**
 * Closes an etcd3 client so that it cannot keep the test process alive: etcd3 1.1.2 keeps
 * re-dialling for watchers that were never cancelled (e.g. after a failed assertion) even after
 * close(), so the watcher list is emptied and the stream cancelled first.
 */
export function closeClient(client: Etcd3 | undefined): void {
  if (client === undefined) return;
  const wm = (client as unknown as { watchManager?: WatchManagerInternals }).watchManager;
  if (wm !== undefined) {
    wm.watchers = [];
    try {
      wm.stream?.cancel();
    } catch {
      /* already gone */
    }
  }
  client.close();
}

/**
 * Reads every key under `prefix` from the member with a fresh etcd3 client and checks it serves
 * exactly the keys of `latest` with their values (messages name `why`, the key and the seed).
 */
export async function assertServesLatest(
  m: Member,
  prefix: string,
  latest: ReadonlyMap<string, string>,
  why: string,
  seed: number,
): Promise<void> {
  const client = newClient(m);
  try {
    const got = await client.getAll().prefix(prefix).strings();
    assert.equal(Object.keys(got).length, latest.size, `${why}: keys`);
    for (const [k, v] of latest) assert.equal(got[k], v, `${why}: ${k}; SEED=${seed}`);
  } finally {
    closeClient(client);
  }
}
