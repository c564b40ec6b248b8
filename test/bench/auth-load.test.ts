// The load generator with auth (--user/--password, the authenticate workload) and the watch
// latency from the put's acknowledgement: flag parsing and the ack bookkeeping on their own, then
// short runs against members with auth on (bcrypt cost 4 to keep them quick): every transport
// sends the token, a user without write permission gets etcd's denial on every put, a stale
// simple token is renewed, JWT tokens work, and the watch workload measures both latencies.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMember, type Member } from "../helpers/server.js";
import { TOOLS_TEST_TARGET } from "./target.js";
import {
  AckToEventLatency,
  defaultLoadOptions,
  formatLoadResult,
  GrpcCallError,
  isStaleTokenError,
  LoadUsageError,
  parseLoadArgs,
  runLoad,
  type LoadOptions,
} from "../../bench/load/index.js";
import { summarize } from "../../bench/load/histogram.js";
import { IndexingHeaderEncoder } from "../../bench/load/hpack-indexing.js";
import { httpPostJson } from "../../bench/compare/members.js";
import {
  BENCH_PASSWORD,
  BENCH_USER,
  authTokenArgs,
  enableBenchAuth,
  makeJwtKeys,
  parseAuthModes,
  roundRatios,
  type GatewayPost,
} from "../../bench/compare/auth.js";

/** Bound on every load run below, seconds (runs are a few hundred requests). */
const RUN_BOUND_MS = 30_000;

describe("auth and watch-ack options", () => {
  test("--user NAME --password PW, etcd's --user NAME:PW, and the rules", () => {
    const a = parseLoadArgs(["put", "--user", "u1", "--password", "p:w"]);
    assert.deepEqual([a.user, a.password], ["u1", "p:w"]);
    const b = parseLoadArgs(["range", "k", "--user=u2:secret:x"]);
    assert.deepEqual([b.user, b.password], ["u2", "secret:x"]);
    const c = parseLoadArgs(["put", "--user", "u3:ignored", "--password", "given"]);
    assert.deepEqual([c.user, c.password], ["u3", "given"]);
    assert.throws(() => parseLoadArgs(["put", "--password", "x"]), LoadUsageError);
    assert.throws(() => parseLoadArgs(["authenticate"]), /needs --user/);
    const d = parseLoadArgs(["authenticate", "--user", "u", "--password", "p", "--clients", "7"]);
    assert.equal(d.workload, "authenticate");
    assert.equal(d.clients, 7);
    const w = parseLoadArgs(["watch", "--put-conns", "1", "--val-size", "8"]);
    assert.equal(w.putConns, 1);
    assert.equal(w.valSizeBytes, 16, "a watch put's value carries its send time and index");
  });

  test("ack-to-event: events before the ack count as 0, later ones from the ack, others' puts ignored", () => {
    // puts 10..12 are ours; each makes 3 events here
    const a = new AckToEventLatency(10, 3, () => 3);
    a.onEvent(10, 5); // before put 10's ack
    a.onAck(10, 6);
    a.onEvent(10, 7.5); // 1.5 ms after the ack
    a.onEvent(10, 8); // 2 ms
    a.onEvent(9, 8); // another process's put
    a.onEvent(13, 8);
    assert.equal(a.pendingPuts, 0, "put 10 saw all its events");
    a.onAck(11, 10);
    a.onEvent(11, 10.25);
    assert.equal(a.pendingPuts, 1);
    const s = summarize(a.histogram);
    assert.equal(s.count, 4);
    assert.equal(a.eventsBeforeAck, 1);
    assert.equal(s.min, 0.001); // the early event, clamped to 1 µs
    assert.equal(s.max, 2);
  });

  test("stale-token errors are etcd's invalid token and old auth revision only", () => {
    const p = "/etcdserverpb.KV/Put";
    assert.ok(isStaleTokenError(new GrpcCallError(p, 16, "etcdserver: invalid auth token")));
    assert.ok(
      isStaleTokenError(new GrpcCallError(p, 3, "etcdserver: revision of auth store is old")),
    );
    assert.ok(!isStaleTokenError(new GrpcCallError(p, 7, "etcdserver: permission denied")));
    assert.ok(!isStaleTokenError(new GrpcCallError(p, 3, "etcdserver: user name is empty")));
    assert.ok(!isStaleTokenError(new Error("etcdserver: invalid auth token")));
  });

  test("header blocks are cached per path until forgotten (a new token)", () => {
    const e = new IndexingHeaderEncoder();
    const h = (token: string): [string, string][] => [
      [":path", "/p"],
      ["token", token],
    ];
    e.encode("/p", h("t1")); // inserts: not cached
    const b1 = e.encode("/p", h("t1"));
    assert.equal(e.cached("/p"), b1);
    assert.equal(b1.length, 2, "both headers are one index byte each");
    e.forgetBlocks();
    assert.equal(e.cached("/p"), undefined);
    e.encode("/p", h("t2"));
    const b2 = e.encode("/p", h("t2"));
    assert.notDeepEqual(b2, b1, "the new token's entry has its own index");
  });

  test("bench:compare --auth token kinds and per-round ratios", () => {
    assert.deepEqual(parseAuthModes("simple,jwt,simple"), ["simple", "jwt"]);
    assert.throws(() => parseAuthModes("oauth"), /unknown token kind/);
    assert.deepEqual(authTokenArgs("simple", null), ["--auth-token", "simple"]);
    assert.match(
      authTokenArgs("jwt", { publicKey: "/k.pub", privateKey: "/k" })[1]!,
      /^jwt,pub-key=\/k\.pub,priv-key=\/k,sign-method=RS256$/,
    );
    assert.deepEqual(roundRatios([4, null, 9], [2, 3, 0]), [2, null, null]);
  });
});

/** The gateway of a test member, as enableBenchAuth takes it (with an optional token). */
function gatewayOf(m: Member, token?: string): GatewayPost {
  return async (path, body) => {
    const headers: Record<string, string> = token === undefined ? {} : { authorization: token };
    const r = await httpPostJson(m.clientPort, `/v3/${path}`, body, 30_000, headers);
    if (r.status !== 200) throw new Error(`/v3/${path}: ${r.status} ${r.body}`);
    return JSON.parse(r.body) as Record<string, unknown>;
  };
}

describe(`bench/load with auth against ${TOOLS_TEST_TARGET}`, { timeout: 120_000 }, () => {
  let m: Member;
  before(async () => {
    m = await startMember({
      target: TOOLS_TEST_TARGET,
      extraArgs: ["--bcrypt-cost", "4", "--auth-token-ttl", "1"],
    });
    await enableBenchAuth(gatewayOf(m));
    // a user that may read but not write
    const root = (
      await gatewayOf(m)("auth/authenticate", {
        name: "root",
        password: "root-password",
      })
    )["token"] as string;
    const asRoot = gatewayOf(m, root);
    await asRoot("auth/role/add", { name: "reader" });
    await asRoot("auth/role/grant", {
      name: "reader",
      perm: { permType: "READ", key: "AA==", range_end: "AA==" },
    });
    await asRoot("auth/user/add", { name: "reader", password: "reader-pw" });
    await asRoot("auth/user/grant", { user: "reader", role: "reader" });
  });
  after(async () => {
    await m?.close();
  });

  const opts = (patch: Partial<LoadOptions>): LoadOptions => ({
    ...defaultLoadOptions(patch.workload ?? "put"),
    endpoints: [m.hostPort],
    user: BENCH_USER,
    password: BENCH_PASSWORD,
    ...patch,
  });
  const bounded = <T>(p: Promise<T>): Promise<T> =>
    Promise.race([
      p,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error("load run took too long")), RUN_BOUND_MS).unref(),
      ),
    ]);

  for (const transport of ["raw", "http2", "grpc-js"] as const) {
    test(`put as ${BENCH_USER}: the token rides on every put (${transport})`, async () => {
      const r = await bounded(
        runLoad(opts({ total: 200, clients: 10, conns: 2, keySpaceSize: 100, transport })),
      );
      assert.equal(r.errors, 0, formatLoadResult(r));
      assert.equal(r.latencyMs.count, 200);
      const denied = await bounded(
        runLoad(opts({ total: 20, clients: 2, user: "reader", password: "reader-pw", transport })),
      );
      assert.deepEqual(denied.errorCounts, {
        "grpc-status 7: etcdserver: permission denied": 20,
      });
      const ranged = await bounded(
        runLoad(
          opts({
            workload: "range",
            total: 20,
            clients: 2,
            user: "reader",
            password: "reader-pw",
            transport,
          }),
        ),
      );
      assert.equal(ranged.errors, 0, formatLoadResult(ranged));
    });
  }

  test("without --user every put fails with etcd's 'user name is empty'; a bad password fails the login", async () => {
    const r = await bounded(runLoad(opts({ total: 10, user: "", password: "" })));
    assert.deepEqual(r.errorCounts, { "grpc-status 3: etcdserver: user name is empty": 10 });
    await assert.rejects(
      bounded(runLoad(opts({ total: 10, password: "wrong" }))),
      /Authenticate failed: .*authentication failed, invalid user ID or password/,
    );
  });

  test("authenticate: every call gets a token, no request fails", async () => {
    const r = await bounded(
      runLoad(opts({ workload: "authenticate", total: 40, clients: 4, conns: 2 })),
    );
    assert.equal(r.errors, 0, formatLoadResult(r));
    assert.equal(r.latencyMs.count, 40);
  });

  test("a simple token past --auth-token-ttl is renewed and the put retried", async () => {
    // two puts 2.5 s apart on one connection: the token (TTL 1 s) expires in between
    const r = await bounded(runLoad(opts({ total: 2, clients: 1, rate: 0.4 })));
    assert.equal(r.errors, 0, formatLoadResult(r));
    assert.equal(r.latencyMs.count, 2);
    assert.equal(r.reauthentications, 1, formatLoadResult(r));
  });

  test("watch with --user: puts on their own connection, latency from the send and from the ack", async () => {
    const r = await bounded(
      runLoad(
        opts({
          workload: "watch",
          streams: 4,
          watchPerStream: 5,
          watchedKeyTotal: 1,
          putTotal: 50,
          putRate: 100,
          clients: 1,
          conns: 2,
          putConns: 1,
          valSizeBytes: 64,
        }),
      ),
    );
    assert.equal(r.errors, 0, formatLoadResult(r));
    const w = r.watch!;
    assert.equal(w.events, 50 * 20);
    assert.equal(r.latencyMs.count, 1000);
    assert.equal(w.ackLatencyMs.count, 1000, "every event of this process's puts is measured");
    assert.ok(w.eventsBeforeAck >= 0 && w.eventsBeforeAck <= 1000);
    // From the ack is never longer than from the send (the ack comes after the send).
    assert.ok(w.ackLatencyMs.p50 <= r.latencyMs.p50, formatLoadResult(r));
    assert.ok(w.putsPerSecond <= 150, `paced at 100/s: ${w.putsPerSecond}`);
    assert.match(formatLoadResult(r), /from the put's acknowledgement/);
  });
});

describe(`bench/load with JWT tokens against ${TOOLS_TEST_TARGET}`, { timeout: 120_000 }, () => {
  let m: Member;
  let keyDir: string;
  before(async () => {
    keyDir = mkdtempSync(join(tmpdir(), "bench-jwt-"));
    m = await startMember({
      target: TOOLS_TEST_TARGET,
      extraArgs: ["--bcrypt-cost", "4", ...authTokenArgs("jwt", makeJwtKeys(keyDir))],
    });
    await enableBenchAuth(gatewayOf(m));
  });
  after(async () => {
    await m?.close();
    rmSync(keyDir, { recursive: true, force: true });
  });

  test("put as the bench user with a JWT per connection", async () => {
    const r = await runLoad({
      ...defaultLoadOptions("put"),
      endpoints: [m.hostPort],
      user: BENCH_USER,
      password: BENCH_PASSWORD,
      total: 100,
      clients: 8,
      conns: 2,
    });
    assert.equal(r.errors, 0, formatLoadResult(r));
    assert.equal(r.latencyMs.count, 100);
  });
});
