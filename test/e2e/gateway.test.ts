// curl against the HTTP/JSON gateway on the client port (etcd's grpc-gateway: protobuf JSON with
// the proto's original field names, bytes as base64, 64-bit integers as strings), the streamed
// /v3/watch response, and the ops endpoints /health, /version, /metrics.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { curl, startMember, TARGET, type Member } from "../helpers/server.js";

import { b64, unb64, type Header, type KV } from "../helpers/gateway-json.js";

describe("curl on the gateway", { timeout: 60_000 }, () => {
  let member: Member;

  before(async () => {
    member = await startMember();
  });
  after(async () => {
    await member?.close();
  });

  /** POSTs JSON with curl; returns the HTTP status and the parsed body. */
  async function post<T>(path: string, body: unknown): Promise<{ status: number; body: T }> {
    const r = await curl([
      "-X",
      "POST",
      "-H",
      "Content-Type: application/json",
      "-d",
      JSON.stringify(body),
      "-w",
      "\n%{http_code}",
      member.endpoint + path,
    ]);
    assert.equal(r.code, 0, `curl ${path}: ${r.stderr}`);
    const nl = r.stdout.lastIndexOf("\n");
    const status = Number(r.stdout.slice(nl + 1));
    const text = r.stdout.slice(0, nl);
    return { status, body: JSON.parse(text) as T };
  }

  test("POST /v3/kv/put answers a header with int64 fields as strings; prev_kv works", async () => {
    const r = await post<{ header: Header }>("/v3/kv/put", { key: b64("foo"), value: b64("bar") });
    assert.equal(r.status, 200);
    assert.match(r.body.header.revision, /^\d+$/);
    assert.match(r.body.header.cluster_id, /^\d+$/);
    assert.match(r.body.header.member_id, /^\d+$/);
    assert.match(r.body.header.raft_term, /^\d+$/);
    const p = await post<{ header: Header; prev_kv: KV }>("/v3/kv/put", {
      key: b64("foo"),
      value: b64("baz"),
      prev_kv: true,
    });
    assert.equal(unb64(p.body.prev_kv.value!), "bar");
    assert.equal(p.body.prev_kv.version, "1");
    assert.equal(Number(p.body.header.revision), Number(r.body.header.revision) + 1);
  });

  test("POST /v3/kv/range returns base64 kvs and a string count; absent fields are omitted", async () => {
    const r = await post<{ header: Header; kvs: KV[]; count: string; more?: boolean }>(
      "/v3/kv/range",
      { key: b64("foo") },
    );
    assert.equal(r.status, 200);
    assert.equal(r.body.count, "1");
    assert.equal(unb64(r.body.kvs[0]!.key), "foo");
    assert.equal(unb64(r.body.kvs[0]!.value!), "baz");
    assert.equal(r.body.kvs[0]!.version, "2");
    assert.equal(r.body.kvs[0]!.mod_revision, r.body.header.revision);
    assert.equal(r.body.more, undefined, "false is omitted as in grpc-gateway");
    const none = await post<{ header: Header; kvs?: KV[]; count?: string }>("/v3/kv/range", {
      key: b64("nope"),
    });
    assert.equal(none.body.kvs, undefined);
    assert.equal(none.body.count, undefined);
    // A range over every key ("\0" to "\0"), count only.
    const all = await post<{ count: string; kvs?: KV[] }>("/v3/kv/range", {
      key: "AA==",
      range_end: "AA==",
      count_only: true,
    });
    assert.equal(all.body.kvs, undefined);
    assert.ok(Number(all.body.count) >= 1);
  });

  test("POST /v3/kv/deleterange with prev_kv returns deleted and prev_kvs", async () => {
    await post("/v3/kv/put", { key: b64("del/a"), value: b64("1") });
    await post("/v3/kv/put", { key: b64("del/b"), value: b64("2") });
    const r = await post<{ deleted: string; prev_kvs: KV[] }>("/v3/kv/deleterange", {
      key: b64("del/"),
      range_end: b64("del0"),
      prev_kv: true,
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.deleted, "2");
    assert.deepEqual(
      r.body.prev_kvs.map((kv) => unb64(kv.value!)),
      ["1", "2"],
    );
  });

  test("POST /v3/kv/txn: compare, success and failure ops, enum names as strings", async () => {
    const ok = await post<{
      succeeded: boolean;
      responses: { response_put?: object; response_range?: { kvs: KV[] } }[];
    }>("/v3/kv/txn", {
      compare: [{ target: "VALUE", result: "EQUAL", key: b64("foo"), value: b64("baz") }],
      success: [
        { request_put: { key: b64("foo"), value: b64("qux") } },
        { request_range: { key: b64("foo") } },
      ],
      failure: [{ request_put: { key: b64("foo"), value: b64("failed") } }],
    });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.succeeded, true);
    assert.ok(ok.body.responses[0]!.response_put);
    assert.equal(unb64(ok.body.responses[1]!.response_range!.kvs[0]!.value!), "qux");
    // A create_revision == 0 compare on an existing key fails; the failure branch runs.
    // (JSON field names may be given in lowerCamelCase too, as protobuf JSON allows.)
    const bad = await post<{
      succeeded?: boolean;
      responses: { response_range?: { kvs: KV[] } }[];
    }>("/v3/kv/txn", {
      compare: [{ target: "CREATE", key: b64("foo"), createRevision: "0" }],
      success: [{ requestPut: { key: b64("foo"), value: b64("nope") } }],
      failure: [{ requestRange: { key: b64("foo") } }],
    });
    assert.equal(bad.status, 200);
    assert.equal(bad.body.succeeded, undefined, "succeeded=false is omitted");
    assert.equal(unb64(bad.body.responses[0]!.response_range!.kvs[0]!.value!), "qux");
  });

  test("POST /v3/lease/grant returns an ID and TTL as strings; put with that lease", async () => {
    const g = await post<{ ID: string; TTL: string }>("/v3/lease/grant", { TTL: 30 });
    assert.equal(g.status, 200);
    assert.match(g.body.ID, /^\d+$/);
    assert.equal(g.body.TTL, "30");
    await post("/v3/kv/put", { key: b64("leased"), value: b64("v"), lease: g.body.ID });
    const r = await post<{ kvs: KV[] }>("/v3/kv/range", { key: b64("leased") });
    assert.equal(r.body.kvs[0]!.lease, g.body.ID);
    const ttl = await post<{ ID: string; TTL: string; grantedTTL: string; keys: string[] }>(
      "/v3/lease/timetolive",
      {
        ID: g.body.ID,
        keys: true,
      },
    );
    assert.equal(ttl.body.grantedTTL, "30");
    assert.deepEqual(ttl.body.keys.map(unb64), ["leased"]);
    const rv = await post<{ header: Header }>("/v3/lease/revoke", { ID: g.body.ID });
    assert.equal(rv.status, 200);
    const gone = await post<{ kvs?: KV[] }>("/v3/kv/range", { key: b64("leased") });
    assert.equal(gone.body.kvs, undefined);
  });

  test("POST /v3/maintenance/status uses the proto's field names (dbSize, raftIndex, ...)", async () => {
    const s = await post<{
      header: Header;
      version: string;
      dbSize: string;
      leader: string;
      raftIndex: string;
      raftTerm: string;
    }>("/v3/maintenance/status", {});
    assert.equal(s.status, 200);
    assert.match(s.body.version, /^3\.4\.\d+/);
    assert.match(s.body.dbSize, /^\d+$/);
    assert.ok(Number(s.body.dbSize) > 0);
    assert.equal(s.body.leader, s.body.header.member_id);
    assert.match(s.body.raftIndex, /^\d+$/);
    assert.equal(s.body.raftTerm, s.body.header.raft_term);
  });

  test("errors: HTTP 400 with {error, message, code} carrying etcd's string and the gRPC code", async () => {
    const r = await post<{ error: string; message: string; code: number }>("/v3/kv/put", {
      key: "",
      value: b64("v"),
    });
    assert.equal(r.status, 400);
    assert.equal(r.body.error, "etcdserver: key is not provided");
    assert.equal(r.body.message, "etcdserver: key is not provided");
    assert.equal(r.body.code, 3);
    const future = await post<{ error: string; code: number }>("/v3/kv/range", {
      key: b64("foo"),
      revision: "100000",
    });
    assert.equal(future.body.error, "etcdserver: mvcc: required revision is a future revision");
    assert.equal(future.body.code, 11);
    // past 2^53, as a JSON string or a bare number: still a future revision (etcd reads int64)
    for (const revision of ["9223372036854775807", 9007199254740993n]) {
      const huge = await curl([
        "-s",
        "-X",
        "POST",
        "-d",
        `{"key":"${b64("foo")}","revision":${typeof revision === "string" ? `"${revision}"` : revision}}`,
        member.endpoint + "/v3/kv/range",
      ]);
      const body = JSON.parse(huge.stdout) as { error: string; code: number };
      assert.equal(body.error, "etcdserver: mvcc: required revision is a future revision");
      assert.equal(body.code, 11);
    }
    // A body that is not JSON is a 400 with code 3 (INVALID_ARGUMENT).
    const garbage = await curl([
      "-X",
      "POST",
      "-d",
      "garbage{",
      "-w",
      "\n%{http_code}",
      member.endpoint + "/v3/kv/put",
    ]);
    const status = Number(garbage.stdout.slice(garbage.stdout.lastIndexOf("\n") + 1));
    assert.equal(status, 400);
    assert.equal(
      (JSON.parse(garbage.stdout.slice(0, garbage.stdout.lastIndexOf("\n"))) as { code: number })
        .code,
      3,
    );
  });

  test("POST /v3/watch streams one JSON object per line: created, then events", async () => {
    const rev = Number(
      (await post<{ header: Header }>("/v3/kv/range", { key: b64("w") })).body.header.revision,
    );
    // Start from the next revision so the events are delivered however the stream races the puts.
    const body = JSON.stringify({
      create_request: { key: b64("w"), start_revision: String(rev + 1), prev_kv: true },
    });
    const watch = curl(["-N", "-X", "POST", "-d", body, member.endpoint + "/v3/watch"], {
      timeoutMs: 10_000,
      // A complete line (the stream may arrive cut mid-object).
      until: (out) => /"DELETE"[^\n]*\n/.test(out),
    });
    await post("/v3/kv/put", { key: b64("w"), value: b64("1") });
    await post("/v3/kv/deleterange", { key: b64("w") });
    const r = await watch;
    assert.ok(r.stdout.includes('"DELETE"'), `watch output: ${r.stdout} ${r.stderr}`);
    // Complete lines only: the process is stopped as soon as the DELETE line is in.
    const lines = r.stdout
      .split("\n")
      .slice(0, -1)
      .filter((l) => l.trim() !== "");
    type WatchResult = {
      result: {
        header: Header;
        created?: boolean;
        watch_id?: string;
        events?: { type?: string; kv: KV; prev_kv?: KV }[];
      };
    };
    const msgs = lines.map((l) => JSON.parse(l) as WatchResult);
    assert.equal(msgs[0]!.result.created, true);
    const events = msgs.flatMap((m) => m.result.events ?? []);
    assert.equal(events.length, 2);
    assert.equal(events[0]!.type, undefined, "PUT is the zero enum value and is omitted");
    assert.equal(unb64(events[0]!.kv.key), "w");
    assert.equal(unb64(events[0]!.kv.value!), "1");
    assert.equal(events[0]!.kv.mod_revision, String(rev + 1));
    assert.equal(events[1]!.type, "DELETE");
    assert.equal(events[1]!.kv.mod_revision, String(rev + 2));
    assert.equal(unb64(events[1]!.prev_kv!.value!), "1");
  });

  test('GET /health answers {"health":"true"}', async () => {
    const r = await curl(["-w", "\n%{http_code}", member.endpoint + "/health"]);
    const [body, status] = r.stdout.split("\n");
    assert.equal(status, "200");
    assert.deepEqual(JSON.parse(body!), { health: "true" });
  });

  test("GET /version answers etcdserver 3.4.x and etcdcluster 3.4.0", async () => {
    const r = await curl([member.endpoint + "/version"]);
    const v = JSON.parse(r.stdout) as { etcdserver: string; etcdcluster: string };
    assert.match(v.etcdserver, /^3\.4\.\d+/);
    assert.equal(v.etcdcluster, "3.4.0");
  });

  test("GET /metrics is Prometheus text with etcd's metric names", async () => {
    await post("/v3/kv/put", { key: b64("m"), value: b64("1") });
    const r = await curl([member.endpoint + "/metrics"]);
    assert.equal(r.code, 0);
    const text = r.stdout;
    const names = [
      "etcd_disk_wal_fsync_duration_seconds",
      "etcd_server_has_leader",
      "etcd_server_proposals_committed_total",
      "etcd_server_proposals_applied_total",
      "etcd_mvcc_db_total_size_in_bytes",
      "etcd_debugging_mvcc_keys_total",
      "etcd_debugging_mvcc_watcher_total",
    ];
    for (const n of names)
      assert.ok(text.includes(`# TYPE ${n} `), `missing metric ${n} (target ${TARGET})`);
    assert.match(text, /^# TYPE etcd_disk_wal_fsync_duration_seconds histogram$/m);
    assert.match(text, /^etcd_disk_wal_fsync_duration_seconds_count [1-9]\d*$/m);
    assert.match(text, /^etcd_server_has_leader 1$/m);
    assert.match(text, /^etcd_server_proposals_committed_total [1-9]\d*$/m);
    // counted per request, handed to prom-client when scraped
    assert.match(text, /^etcd_mvcc_put_total [1-9]\d*$/m);
    assert.match(text, /^etcd_server_proposals_pending 0$/m);
    if (TARGET === "etcd-ts") {
      // etcd 3.5's apply histogram (etcd 3.4 has none)
      assert.match(text, /^# TYPE etcd_server_apply_duration_seconds histogram$/m);
      assert.match(
        text,
        /^etcd_server_apply_duration_seconds_count\{version="v3",op="Put",success="true"\} [1-9]\d*$/m,
      );
      assert.match(
        text,
        /^etcd_server_apply_duration_seconds_bucket\{version="v3",op="Put",success="true",le="\+Inf"\} [1-9]\d*$/m,
      );
    }
  });
});
