// Real etcdctl (3.4, ETCDCTL_API=3) against a spawned member: put/get/del with options, txn,
// watch, lease, compaction, endpoint status/health/hashkv, alarm list, member list.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  skipOnGrpcJsAuthority,
  etcdctl,
  parseJsonBig,
  startMember,
  type Member,
  type RunOptions,
} from "../helpers/server.js";

describe("etcdctl", { timeout: 90_000 }, () => {
  let member: Member;

  before(async () => {
    member = await startMember({ name: "ctl-1" });
  });
  after(async () => {
    await member?.close();
  });

  /** Runs etcdctl against the member; asserts exit 0 and returns stdout. */
  async function ctl(args: string[], opts: RunOptions = {}): Promise<string> {
    const r = await etcdctl(args, { member, ...opts });
    assert.equal(r.code, 0, `etcdctl ${args.join(" ")} exited ${r.code}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** Runs etcdctl expecting failure; returns stderr. */
  async function ctlFails(args: string[]): Promise<string> {
    const r = await etcdctl(args, { member });
    assert.notEqual(r.code, 0, `etcdctl ${args.join(" ")} should fail: ${r.stdout}`);
    return r.stderr;
  }

  async function revision(): Promise<number> {
    const j = parseJsonBig(await ctl(["get", "nothing-here", "-w", "json"])) as {
      header: { revision: number };
    };
    return Number(j.header.revision);
  }

  test("put prints OK and get prints key and value lines", async () => {
    assert.equal(await ctl(["put", "foo", "bar"]), "OK\n");
    assert.equal(await ctl(["get", "foo"]), "foo\nbar\n");
    assert.equal(await ctl(["get", "foo", "--print-value-only"]), "bar\n");
    assert.equal(await ctl(["get", "missing"]), "");
  });

  test("put --prev-kv prints the previous pair", async () => {
    assert.equal(await ctl(["put", "--prev-kv", "foo", "baz"]), "OK\nfoo\nbar\n");
  });

  test("get -w json gives the header, base64 keys and values, revisions and count", async () => {
    const j = parseJsonBig(await ctl(["get", "foo", "-w", "json"])) as {
      header: { cluster_id: string; member_id: string; revision: number; raft_term: number };
      kvs: {
        key: string;
        value: string;
        create_revision: number;
        mod_revision: number;
        version: number;
      }[];
      count: number;
    };
    assert.equal(j.count, 1);
    assert.equal(Buffer.from(j.kvs[0]!.key, "base64").toString(), "foo");
    assert.equal(Buffer.from(j.kvs[0]!.value, "base64").toString(), "baz");
    assert.equal(j.kvs[0]!.version, 2);
    assert.equal(j.kvs[0]!.mod_revision, j.kvs[0]!.create_revision + 1);
    assert.equal(j.kvs[0]!.mod_revision, j.header.revision);
    assert.ok(Number(j.header.raft_term) >= 1);
  });

  test("get --prefix, --from-key, --limit, --keys-only, --sort-by and --order", async () => {
    for (const [k, v] of [
      ["p/b", "2"],
      ["p/a", "3"],
      ["p/c", "1"],
      ["q", "x"],
    ] as const)
      await ctl(["put", k, v]);
    assert.equal(await ctl(["get", "--prefix", "p/"]), "p/a\n3\np/b\n2\np/c\n1\n");
    assert.equal(await ctl(["get", "--prefix", "p/", "--keys-only"]), "p/a\n\np/b\n\np/c\n\n");
    assert.equal(
      await ctl(["get", "--prefix", "p/", "--limit", "2", "--print-value-only"]),
      "3\n2\n",
    );
    assert.equal(await ctl(["get", "--from-key", "p/c", "--keys-only"]), "p/c\n\nq\n\n");
    assert.equal(
      await ctl([
        "get",
        "--prefix",
        "p/",
        "--sort-by",
        "VALUE",
        "--order",
        "ASCEND",
        "--print-value-only",
      ]),
      "1\n2\n3\n",
    );
    assert.equal(
      await ctl(["get", "--prefix", "p/", "--order", "DESCEND", "--keys-only"]),
      "p/c\n\np/b\n\np/a\n\n",
    );
    const lim = parseJsonBig(
      await ctl(["get", "--prefix", "p/", "--limit", "1", "-w", "json"]),
    ) as {
      more: boolean;
      count: number;
    };
    assert.equal(lim.more, true);
    assert.equal(lim.count, 3);
  });

  test("get --rev reads an older value", async () => {
    await ctl(["put", "r", "one"]);
    const rev = await revision();
    await ctl(["put", "r", "two"]);
    assert.equal(await ctl(["get", "r", "--rev", String(rev), "--print-value-only"]), "one\n");
    assert.equal(await ctl(["get", "r", "--print-value-only"]), "two\n");
  });

  test("a revision past 2^53 is a future revision, as in etcd (get --rev, compaction)", async () => {
    // etcd reads revisions as int64: 2^63 - 1 and 2^53 + 1 are future revisions, not bad requests.
    for (const rev of ["9223372036854775807", "9007199254740993"]) {
      const get = await ctlFails(["get", "r", "--rev", rev]);
      assert.match(get, /Error: etcdserver: mvcc: required revision is a future revision/);
      const compact = await ctlFails(["compaction", rev]);
      assert.match(compact, /Error: etcdserver: mvcc: required revision is a future revision/);
    }
    // a negative revision (past -2^53 too) means the current one, as in etcd
    await ctl(["put", "r", "three"]);
    assert.equal(
      await ctl(["get", "r", "--rev", "-9223372036854775808", "--print-value-only"]),
      "three\n",
    );
  });

  test("del prints the count; --prev-kv, --prefix and --from-key", async () => {
    for (const k of ["d/1", "d/2", "d/3", "e/1"]) await ctl(["put", k, `v${k}`]);
    assert.equal(await ctl(["del", "--prev-kv", "d/1"]), "1\nd/1\nvd/1\n");
    assert.equal(await ctl(["del", "nothing"]), "0\n");
    assert.equal(await ctl(["del", "--prefix", "d/"]), "2\n");
    await ctl(["put", "zz/1", "a"]);
    await ctl(["put", "zz/2", "b"]);
    assert.equal(await ctl(["del", "--from-key", "zz/"]), "2\n");
    assert.equal(await ctl(["get", "--prefix", "d/"]), "");
  });

  test("txn from stdin runs the success branch when the compare holds", async () => {
    await ctl(["put", "tx", "1"]);
    const out = await ctl(["txn"], {
      input: 'value("tx") = "1"\n\nput tx 2\nget tx\n\nput tx failed\n\n',
    });
    assert.equal(out, "SUCCESS\n\nOK\n\ntx\n2\n");
  });

  test("txn --interactive from stdin runs the failure branch when the compare fails", async () => {
    const out = await ctl(["txn", "--interactive"], {
      input: 'mod("tx") = "1"\nvalue("tx") = "2"\n\nput tx ok\n\nput tx fail\nget tx\n\n',
    });
    assert.equal(
      out,
      "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nFAILURE\n\nOK\n\ntx\nfail\n",
    );
  });

  test("txn -w json reports succeeded and the responses", async () => {
    const out = await ctl(["txn", "-w", "json"], { input: 'version("tx") > "0"\n\nget tx\n\n\n' });
    const j = parseJsonBig(out) as {
      succeeded: boolean;
      responses: { Response: { ResponseRange: { kvs: { value: string }[] } } }[];
    };
    assert.equal(j.succeeded, true);
    assert.equal(
      Buffer.from(j.responses[0]!.Response.ResponseRange.kvs[0]!.value, "base64").toString(),
      "fail",
    );
  });

  test("watch prints PUT and DELETE events (key, value lines) as they happen", async () => {
    const from = (await revision()) + 1;
    // Watching from the next revision makes the test independent of when the stream is set up.
    const watch = etcdctl(["watch", "--rev", String(from), "wk"], {
      member,
      timeoutMs: 15_000,
      until: (out) => out.includes("DELETE\nwk\n\n"),
    });
    await ctl(["put", "wk", "v1"]);
    await ctl(["put", "other", "x"]);
    await ctl(["del", "wk"]);
    const r = await watch;
    assert.equal(r.timedOut, false, `watch output so far: ${r.stdout} ${r.stderr}`);
    assert.equal(r.stdout, "PUT\nwk\nv1\nDELETE\nwk\n\n");
  });

  test("watch --prefix --prev-kv prints the previous pair before each event", async () => {
    const from = (await revision()) + 1;
    await ctl(["put", "wp/a", "1"]);
    await ctl(["put", "wp/a", "2"]);
    await ctl(["put", "wq", "no"]);
    await ctl(["del", "wp/a"]);
    const r = await etcdctl(["watch", "--rev", String(from), "--prefix", "--prev-kv", "wp/"], {
      member,
      timeoutMs: 15_000,
      until: (out) => out.includes("DELETE\nwp/a\n2\nwp/a\n\n"),
    });
    // etcdctl prints a put with prev_kv as: PUT, prev key, prev value, key, value.
    assert.equal(r.stdout, "PUT\nwp/a\n1\nPUT\nwp/a\n1\nwp/a\n2\nDELETE\nwp/a\n2\nwp/a\n\n");
  });

  test("lease grant, put --lease, timetolive --keys, keep-alive --once, list, revoke", async () => {
    const g = await ctl(["lease", "grant", "60"]);
    const m = /^lease ([0-9a-f]+) granted with TTL\(60s\)\n$/.exec(g);
    assert.ok(m, `grant output: ${g}`);
    const id = m[1]!;
    assert.equal(await ctl(["put", `--lease=${id}`, "lk", "lv"]), "OK\n");
    const ttl = await ctl(["lease", "timetolive", id, "--keys"]);
    assert.match(
      ttl,
      new RegExp(
        `^lease ${id} granted with TTL\\(60s\\), remaining\\((59|60)s\\), attached keys\\(\\[lk\\]\\)\\n$`,
      ),
    );
    assert.equal(
      await ctl(["lease", "keep-alive", "--once", id]),
      `lease ${id} keepalived with TTL(60)\n`,
    );
    const list = await ctl(["lease", "list"]);
    assert.match(list, /^found \d+ leases\n/);
    assert.ok(list.split("\n").includes(id));
    assert.equal(await ctl(["lease", "revoke", id]), `lease ${id} revoked\n`);
    assert.equal(await ctl(["get", "lk"]), "");
    assert.equal(await ctl(["lease", "timetolive", id]), `lease ${id} already expired\n`);
    const err = await ctlFails(["lease", "revoke", id]);
    assert.match(err, /etcdserver: requested lease not found/);
  });

  test("lease keep-alive (streaming) prints a keepalived line per renewal", async () => {
    const g = await ctl(["lease", "grant", "3"]);
    const id = /^lease ([0-9a-f]+) granted/.exec(g)![1]!;
    // etcdctl renews every TTL/3 s: two lines arrive within a few seconds.
    const r = await etcdctl(["lease", "keep-alive", id], {
      member,
      timeoutMs: 10_000,
      // Count only complete lines: output may arrive cut mid-line.
      until: (out) =>
        out
          .split("\n")
          .slice(0, -1)
          .filter((l) => l.includes("keepalived")).length >= 2,
    });
    assert.equal(r.timedOut, false, `keep-alive output: ${r.stdout} ${r.stderr}`);
    for (const line of r.stdout.split("\n").slice(0, -1)) {
      assert.equal(line, `lease ${id} keepalived with TTL(3)`);
    }
    await ctl(["lease", "revoke", id]);
  });

  test("put with an unknown lease fails with etcd's message", async () => {
    const err = await ctlFails(["put", "--lease=1234abcd", "k", "v"]);
    assert.match(err, /Error: etcdserver: requested lease not found/);
  });

  test(
    "endpoint status -w json reports version, db size, leader and raft figures",
    { skip: skipOnGrpcJsAuthority },
    async () => {
      const out = await ctl(["endpoint", "status", "-w", "json"]);
      const j = parseJsonBig(out) as {
        Endpoint: string;
        Status: {
          header: { member_id: string; revision: number };
          version: string;
          dbSize: number;
          leader: string;
          raftIndex: number;
          raftTerm: number;
        };
      }[];
      assert.equal(j.length, 1);
      assert.equal(j[0]!.Endpoint, member.endpoint);
      const s = j[0]!.Status;
      assert.match(s.version, /^3\.4\./);
      assert.ok(s.dbSize > 0);
      assert.equal(String(s.leader), String(s.header.member_id));
      assert.ok(s.raftIndex > 0 && s.raftTerm > 0);
      // The table form has the endpoint, the id in hex, the version and IS LEADER = true.
      const table = await ctl(["endpoint", "status"]);
      assert.match(
        table,
        new RegExp(
          `^${member.endpoint}, [0-9a-f]+, 3\\.4\\.\\d+, [^,]+, true, false, \\d+, \\d+, \\d+, \\n$`,
        ),
      );
    },
  );

  test("check datascale --load=s (10k puts of 1 KiB from 50 clients, then /metrics) passes", async () => {
    const before = await revision();
    const r = await etcdctl(["check", "datascale", "--load=s"], { member, timeoutMs: 60_000 });
    assert.equal(r.code, 0, `check datascale exited ${r.code}: ${r.stderr}`);
    assert.match(r.stdout, /PASS: Approximate system memory used : [\d.]+ MB\./);
    // the 10k puts went through the member, and the check deleted its keys afterwards
    assert.ok((await revision()) >= before + 10_000);
    assert.equal(await ctl(["get", "--prefix", "/etcdctl-check-datascale/", "--keys-only"]), "");
  });

  test("endpoint health (plain and -w json) says healthy", async () => {
    // etcdctl 3.4 prints the plain health line on stderr.
    const plain = await etcdctl(["endpoint", "health"], { member });
    assert.equal(plain.code, 0);
    assert.match(
      plain.stdout + plain.stderr,
      /^http:\/\/127\.0\.0\.1:\d+ is healthy: successfully committed proposal: took = /,
    );
    const j = JSON.parse(await ctl(["endpoint", "health", "-w", "json"])) as {
      endpoint: string;
      health: boolean;
    }[];
    assert.equal(j[0]!.endpoint, member.endpoint);
    assert.equal(j[0]!.health, true);
  });

  test(
    "endpoint hashkv -w json gives a hash that is stable without writes",
    { skip: skipOnGrpcJsAuthority },
    async () => {
      const h = async () =>
        (
          parseJsonBig(await ctl(["endpoint", "hashkv", "-w", "json"])) as {
            HashKV: { hash: number };
          }[]
        )[0]!.HashKV.hash;
      const a = await h();
      assert.equal(await h(), a);
      await ctl(["put", "hk", "1"]);
      assert.notEqual(await h(), a);
    },
  );

  test("alarm list prints nothing on a healthy member", async () => {
    assert.equal(await ctl(["alarm", "list"]), "");
  });

  test("member list shows this member, started, with its URLs", async () => {
    const out = await ctl(["member", "list"]);
    assert.match(
      out,
      new RegExp(
        `^[0-9a-f]+, started, ctl-1, http://127\\.0\\.0\\.1:${member.peerPort}, ${member.endpoint}, false\\n$`,
      ),
    );
    const j = parseJsonBig(await ctl(["member", "list", "-w", "json"])) as {
      members: { ID: string; name: string; peerURLs: string[]; clientURLs: string[] }[];
    };
    assert.equal(j.members.length, 1);
    assert.equal(j.members[0]!.name, "ctl-1");
    assert.deepEqual(j.members[0]!.clientURLs, [member.endpoint]);
  });

  test("compaction, then reads and watches below it fail with etcd's compacted error", async () => {
    await ctl(["put", "ck", "1"]);
    const old = await revision();
    await ctl(["put", "ck", "2"]);
    const rev = await revision();
    assert.equal(await ctl(["compaction", String(rev)]), `compacted revision ${rev}\n`);
    const err = await ctlFails(["get", "ck", "--rev", String(old)]);
    assert.match(err, /Error: etcdserver: mvcc: required revision has been compacted/);
    assert.equal(await ctl(["get", "ck", "--rev", String(rev), "--print-value-only"]), "2\n");
    const w = await etcdctl(["watch", "--rev", String(old), "ck"], { member, timeoutMs: 10_000 });
    assert.notEqual(w.code, 0);
    assert.match(
      w.stderr,
      /watch was canceled \(etcdserver: mvcc: required revision has been compacted\)/,
    );
    await ctl(["put", "ck", "3"]);
    const rev2 = await revision();
    assert.equal(
      await ctl(["compaction", "--physical", String(rev2)]),
      `compacted revision ${rev2}\n`,
    );
  });
});
