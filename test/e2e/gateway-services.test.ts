// curl on the gateway paths beyond KV, Watch and Lease: /v3/lock/*, /v3/election/* (Observe as a
// streamed JSON response), /v3/maintenance/*, /v3/cluster/member/*, /v3/kv/compaction, and how
// etcd 3.4's mux answers paths outside them. Shapes and errors as real etcd 3.4.23 answers them
// (run with ETCD_TS_TARGET=etcd to check the expectations against /usr/bin/etcd).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { curl, startMember, TARGET, waitFor, type Member } from "../helpers/server.js";

import { b64, unb64, type Header, type KV } from "../helpers/gateway-json.js";
interface LeaderKey {
  name: string;
  key: string;
  rev: string;
  lease: string;
}
interface ErrorBody {
  error: string;
  message: string;
  code: number;
}

describe(
  "curl on the lock, election, maintenance and cluster gateway paths",
  { timeout: 60_000 },
  () => {
    let member: Member;

    before(async () => {
      member = await startMember();
    });
    after(async () => {
      await member?.close();
    });

    /** POSTs with curl; returns the HTTP status and the body (parsed when it is JSON). */
    async function post<T>(
      path: string,
      body: unknown,
      timeoutMs = 10_000,
    ): Promise<{ status: number; body: T; text: string }> {
      const r = await curl(
        ["-X", "POST", "-d", JSON.stringify(body), "-w", "\n%{http_code}", member.endpoint + path],
        { timeoutMs },
      );
      assert.equal(r.code, 0, `curl ${path}: ${r.stderr}`);
      const nl = r.stdout.lastIndexOf("\n");
      const text = r.stdout.slice(0, nl);
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON: keep the text */
      }
      return { status: Number(r.stdout.slice(nl + 1)), body: parsed as T, text };
    }

    async function grant(ttl: number): Promise<string> {
      return (await post<{ ID: string }>("/v3/lease/grant", { TTL: ttl })).body.ID;
    }

    function assertHeader(h: Header | undefined, withRevision = true): void {
      assert.ok(h !== undefined);
      assert.match(h.cluster_id, /^\d+$/);
      assert.match(h.member_id, /^\d+$/);
      assert.match(h.raft_term, /^\d+$/);
      if (withRevision) assert.match(h.revision ?? "", /^\d+$/);
      else assert.equal(h.revision, undefined);
    }

    /** etcd's v3lock / v3election errors: gRPC code Unknown (2), HTTP 500. */
    function assertServiceError(r: { status: number; body: ErrorBody }, message: string): void {
      assert.equal(r.status, 500);
      assert.deepEqual(r.body, { error: message, message, code: 2 });
    }

    test("/v3/lock/lock and /v3/lock/unlock; a second lock waits for the unlock", async () => {
      const [l1, l2] = [await grant(30), await grant(30)];
      const a = await post<{ header: Header; key: string }>("/v3/lock/lock", {
        name: b64("gwlock"),
        lease: l1,
      });
      assert.equal(a.status, 200);
      assertHeader(a.body.header);
      assert.equal(unb64(a.body.key), `gwlock/${BigInt(l1).toString(16)}`);
      const second = post<{ key: string }>("/v3/lock/lock", { name: b64("gwlock"), lease: l2 });
      await waitFor("the second lock's key", async () => {
        const r = await post<{ count?: string }>("/v3/kv/range", {
          key: b64("gwlock/"),
          range_end: b64("gwlock0"),
          count_only: true,
        });
        return r.body.count === "2";
      });
      const u = await post<{ header: Header }>("/v3/lock/unlock", { key: a.body.key });
      assert.equal(u.status, 200);
      assertHeader(u.body.header);
      const b = await second;
      assert.equal(b.status, 200);
      assert.equal(unb64(b.body.key), `gwlock/${BigInt(l2).toString(16)}`);
      assertServiceError(
        await post<ErrorBody>("/v3/lock/lock", { name: b64("gwlock"), lease: "4095" }),
        "etcdserver: requested lease not found",
      );
      assertServiceError(
        await post<ErrorBody>("/v3/lock/unlock", {}),
        "etcdserver: key is not provided",
      );
    });

    test("/v3/election/*: campaign, leader, proclaim, resign; observe streams each leader", async () => {
      const observe = curl(
        [
          "-N",
          "-X",
          "POST",
          "-d",
          JSON.stringify({ name: b64("gwel") }),
          member.endpoint + "/v3/election/observe",
        ],
        { timeoutMs: 20_000, until: (out) => out.split("\n").filter((l) => l !== "").length >= 3 },
      );
      assertServiceError(
        await post<ErrorBody>("/v3/election/leader", { name: b64("gwel") }),
        "election: no leader",
      );
      const lease = await grant(30);
      const c = await post<{ header: Header; leader: LeaderKey }>("/v3/election/campaign", {
        name: b64("gwel"),
        lease,
        value: b64("v1"),
      });
      assert.equal(c.status, 200);
      assertHeader(c.body.header);
      assert.deepEqual(Object.keys(c.body.leader).sort(), ["key", "lease", "name", "rev"]);
      assert.equal(unb64(c.body.leader.name), "gwel");
      assert.equal(c.body.leader.lease, lease);
      assert.equal(c.body.leader.rev, c.body.header.revision);
      const p = await post<{ header: Header }>("/v3/election/proclaim", {
        leader: c.body.leader,
        value: b64("v2"),
      });
      assert.equal(p.status, 200);
      assertHeader(p.body.header);
      const l = await post<{ header: Header; kv: KV }>("/v3/election/leader", {
        name: b64("gwel"),
      });
      assert.equal(l.status, 200);
      assert.equal(unb64(l.body.kv.value), "v2");
      assert.equal(l.body.kv.version, "2");
      assert.equal(l.body.kv.lease, lease);
      assertServiceError(
        await post<ErrorBody>("/v3/election/proclaim", {
          leader: { ...c.body.leader, rev: "1" },
          value: b64("x"),
        }),
        "election: not leader",
      );
      assertServiceError(
        await post<ErrorBody>("/v3/election/proclaim", { value: b64("x") }),
        '"leader" field must be provided',
      );
      // a key put under the prefix without a lease becomes the next leader once this one resigns
      await post("/v3/kv/put", { key: b64("gwel/zzz"), value: b64("other") });
      const r = await post<{ header: Header }>("/v3/election/resign", { leader: c.body.leader });
      assert.equal(r.status, 200);
      assertHeader(r.body.header);
      assertServiceError(
        await post<ErrorBody>("/v3/election/resign", {}),
        '"leader" field must be provided',
      );
      const out = await observe;
      const lines = out.stdout.split("\n").filter((x) => x !== "");
      const results = lines.map(
        (x) => (JSON.parse(x) as { result: { header: Header; kv: KV } }).result,
      );
      assert.deepEqual(
        results.map((x) => unb64(x.kv.value)),
        ["v1", "v2", "other"],
      );
      for (const x of results) assertHeader(x.header);
      assert.equal(results[0]!.kv.create_revision, c.body.leader.rev);
      assert.equal(unb64(results[2]!.kv.key), "gwel/zzz");
      await post("/v3/kv/deleterange", { key: b64("gwel/zzz") });
    });

    test("/v3/election/observe sends no status line until there is a leader", async () => {
      const r = await curl(
        [
          "-i",
          "-N",
          "-X",
          "POST",
          "-d",
          JSON.stringify({ name: b64("nobody") }),
          member.endpoint + "/v3/election/observe",
        ],
        { timeoutMs: 1000 },
      );
      assert.equal(r.stdout, "");
    });

    test("/v3/maintenance/*: status, alarm, defragment, hash, snapshot, transfer-leadership", async () => {
      const s = await post<{ header: Header; leader: string; version: string }>(
        "/v3/maintenance/status",
        {},
      );
      assert.equal(s.status, 200);
      assertHeader(s.body.header);
      // etcd 3.4 answers Alarm and Defragment without a header
      assert.deepEqual((await post("/v3/maintenance/alarm", { action: "GET" })).body, {});
      assert.deepEqual((await post("/v3/maintenance/defragment", {})).body, {});
      const h = await post<{ header: Header; hash: number }>("/v3/maintenance/hash", {});
      assert.equal(h.status, 200);
      assertHeader(h.body.header);
      assert.equal(typeof h.body.hash, "number");
      // the db file as a stream of {"result": {"blob", "remaining_bytes"}} lines, then its sha256
      const snap = await curl([
        "-N",
        "-X",
        "POST",
        "-d",
        "{}",
        member.endpoint + "/v3/maintenance/snapshot",
      ]);
      assert.equal(snap.code, 0, snap.stderr);
      const chunks = snap.stdout
        .split("\n")
        .filter((x) => x !== "")
        .map(
          (x) => (JSON.parse(x) as { result: { blob: string; remaining_bytes?: string } }).result,
        );
      assert.ok(chunks.length >= 2);
      const last = chunks.pop()!;
      assert.equal(last.remaining_bytes, undefined);
      const blobs = chunks.map((c) => Buffer.from(c.blob, "base64"));
      const db = Buffer.concat(blobs);
      let sent = 0;
      blobs.forEach((b, i) => {
        sent += b.length;
        // remaining_bytes counts what is still to come; 0 is left out of the JSON
        assert.equal(chunks[i]!.remaining_bytes ?? "0", String(db.length - sent));
      });
      assert.equal(createHash("sha256").update(db).digest("base64"), last.blob);
      // transfer-leadership: to a non-member it is refused; to the leader itself it is a no-op
      const bad = await post<ErrorBody>("/v3/maintenance/transfer-leadership", { targetID: "5" });
      assert.equal(bad.status, 412);
      assert.deepEqual(bad.body, {
        error: "etcdserver: bad leader transferee",
        message: "etcdserver: bad leader transferee",
        code: 9,
      });
      const self = await post("/v3/maintenance/transfer-leadership", { targetID: s.body.leader });
      assert.equal(self.status, 200);
      assert.deepEqual(self.body, {});
    });

    test("/v3/cluster/member/list; remove, update and promote of an unknown member", async () => {
      const list = await post<{ header: Header; members: { ID: string; name: string }[] }>(
        "/v3/cluster/member/list",
        {},
      );
      assert.equal(list.status, 200);
      assertHeader(list.body.header, false); // etcd 3.4's cluster server sets no revision
      assert.equal(list.body.members.length, 1);
      assert.equal(list.body.members[0]!.name, "m1");
      // an add is left out: both would add the member, which never starts, and lose their quorum
      // (etcd lets a lone member take a second); test/e2e/cluster.test.ts adds members that start
      const calls = [
        ["remove", { ID: "5" }],
        ["update", { ID: "5", peerURLs: ["http://127.0.0.1:1"] }],
        ["promote", { ID: "5" }],
      ] as const;
      for (const [name, body] of calls) {
        const r = await post<ErrorBody>(`/v3/cluster/member/${name}`, body);
        assert.equal(r.status, 404);
        assert.equal(r.body.error, "etcdserver: member not found");
        assert.equal(r.body.code, 5);
      }
    });

    test("/v3/kv/compaction: compacts, refuses a future or compacted revision", async () => {
      await post("/v3/kv/put", { key: b64("c"), value: b64("1") });
      const put = await post<{ header: Header }>("/v3/kv/put", { key: b64("c"), value: b64("2") });
      const rev = Number(put.body.header.revision);
      const ok = await post<{ header: Header }>("/v3/kv/compaction", { revision: String(rev - 1) });
      assert.equal(ok.status, 200);
      assertHeader(ok.body.header);
      const future = await post<ErrorBody>("/v3/kv/compaction", { revision: String(rev + 100) });
      assert.equal(future.status, 400);
      assert.equal(future.body.error, "etcdserver: mvcc: required revision is a future revision");
      assert.equal(future.body.code, 11);
      const old = await post<ErrorBody>("/v3/kv/compaction", { revision: String(rev - 1) });
      assert.equal(old.status, 400);
      assert.equal(old.body.error, "etcdserver: mvcc: required revision has been compacted");
    });

    test("paths: /v3beta/ is /v3/, /v3alpha/ is gone, unknown paths, /v3 redirects", async () => {
      const beta = await post<{ header: Header }>("/v3beta/election/proclaim", {});
      assert.equal(beta.status, 500);
      const gone = await post("/v3alpha/kv/range", { key: b64("a") });
      assert.equal(gone.status, 404);
      assert.equal(gone.text, "404 page not found\n");
      const unknown = await post("/v3/no/such/path", {});
      assert.equal(unknown.status, 404);
      assert.equal(unknown.text, "Not Found\n");
      const r = await curl(["-i", "-X", "POST", "-d", "{}", member.endpoint + "/v3"]);
      assert.match(r.stdout, /^HTTP\/1\.1 301 /);
      assert.match(r.stdout, /\r\nlocation: \/v3\/\r\n/i);
    });
  },
);
