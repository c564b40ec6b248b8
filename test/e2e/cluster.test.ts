// A 3-member etcd-ts cluster of spawned processes with peer and client TLS (issue 14): writes and
// reads through every member, etcdctl's member list / endpoint status / endpoint hashkv with
// --cluster, the etcd3 npm client and python3-etcd3 given the members, a leader SIGKILLed under
// puts (a new leader, the old member rejoins, every acknowledged put on every member), and
// membership changes (a learner joins with --initial-cluster-state existing and catches up by
// snapshot, promote refused until then, a member removed stops itself, move-leader).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { Etcd3 } from "etcd3";
import {
  type Member,
  type TlsFiles,
  etcdctl,
  freePort,
  generateTls,
  python3,
  sleep,
  startMember,
  waitFor,
} from "../helpers/server.js";
import {
  type Cluster,
  clusterctl,
  etcdctlHashKVs,
  startCluster,
  memberctl as ctl,
} from "../helpers/cluster.js";

const FAST = [
  "--heartbeat-interval",
  "50",
  "--election-timeout",
  "500",
  "--snapshot-count",
  "60",
  "--experimental-snapshot-catchup-entries",
  "20",
];

async function hashes(c: Cluster, members: Member[]): Promise<string[]> {
  const rows = await etcdctlHashKVs(c, members);
  return typeof rows === "string" ? [rows] : rows.map((e) => String(e.hash));
}

describe("3-member cluster over TLS", { timeout: 240_000 }, () => {
  let tls: TlsFiles;
  let c: Cluster;
  const extra: Member[] = [];

  before(async () => {
    tls = await generateTls();
    // every member's peer certificate is the test server certificate, CN=localhost
    c = await startCluster({ tls, extraArgs: [...FAST, "--peer-cert-allowed-cn", "localhost"] });
  });
  after(async () => {
    await Promise.all(extra.map((m) => m.close()));
    await c?.close();
    if (tls !== undefined) rmSync(tls.dir, { recursive: true, force: true });
  });

  test("writes and reads through every member; member list, endpoint status and hashkv --cluster", async () => {
    for (const [i, m] of c.members.entries()) {
      const r = await ctl(m, ["put", `k${i}`, `v${i}`]);
      assert.equal(r.code, 0, r.stderr);
    }
    for (const m of c.members) {
      const r = await ctl(m, ["get", "k", "--prefix", "--print-value-only"]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split("\n"), ["v0", "v1", "v2"]);
    }
    const list = await clusterctl(c, ["member", "list"]);
    assert.equal(list.code, 0, list.stderr);
    const lines = list.stdout.trim().split("\n");
    assert.equal(lines.length, 3);
    for (const m of c.members) {
      const line = lines.find((l) => l.includes(`, ${m.name}, `));
      assert.ok(line, `${m.name} in ${list.stdout}`);
      assert.match(line, /, started, /);
      assert.ok(line.includes(m.peerUrl) && m.peerUrl.startsWith("https://"), line);
      assert.ok(line.includes(m.endpoint), line);
    }
    const status = await etcdctl(["endpoint", "status", "--cluster", "-w", "json"], {
      endpoint: c.members[0]!.endpoint,
      member: c.members[0],
    });
    assert.equal(status.code, 0, status.stderr);
    const st = JSON.parse(status.stdout) as {
      Endpoint: string;
      Status: { header: { member_id: number }; leader: number };
    }[];
    assert.equal(st.length, 3);
    assert.equal(new Set(st.map((s) => String(s.Status.leader))).size, 1);
    await waitFor(
      "equal hashes",
      async () => new Set(await hashes(c, c.members)).size === 1,
      15_000,
    );
    const hk = await etcdctl(["endpoint", "hashkv", "--cluster"], {
      endpoint: c.members[1]!.endpoint,
      member: c.members[1],
    });
    assert.equal(hk.code, 0, hk.stderr);
    assert.equal(hk.stdout.trim().split("\n").length, 3);
  });

  test("the etcd3 npm client and python3-etcd3 given the members", async () => {
    const client = new Etcd3({
      hosts: c.members.map((m) => m.endpoint),
      credentials: {
        rootCertificate: readFileSync(tls.caCert),
        certChain: readFileSync(tls.clientCert),
        privateKey: readFileSync(tls.clientKey),
      },
    });
    try {
      await client.put("npm").value("1");
      assert.equal(await client.get("npm").string(), "1");
      const lease = client.lease(5);
      await lease.put("leased").value("x");
      assert.equal(await client.get("leased").string(), "x");
      await lease.revoke();
      assert.equal(await client.get("leased").string(), null);
    } finally {
      client.close();
    }
    for (const m of c.members) {
      const r = await python3(
        [
          "import etcd3",
          `c = etcd3.client(host='127.0.0.1', port=${m.clientPort}, ca_cert='${tls.caCert}',`,
          `    cert_key='${tls.clientKey}', cert_cert='${tls.clientCert}', timeout=10)`,
          `c.put('py-${m.name}', '${m.name}')`,
          "print(sorted(v.decode() for v, _ in c.get_prefix('py-')))",
          "l = c.lease(10)",
          // refresh half-closes its LeaseKeepAlive after one request and reads to the end
          "r = l.refresh()",
          "print('refreshed', len(r), r[0].TTL if r else None)",
          "print(l.remaining_ttl > 0)",
        ].join("\n"),
        { timeoutMs: 30_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /refreshed 1 10\n/, `${m.name}: one keep-alive answer`);
      assert.match(r.stdout, /True/);
    }
    const r = await ctl(c.members[2]!, ["get", "py-", "--prefix", "--print-value-only"]);
    assert.deepEqual(r.stdout.trim().split("\n"), ["m1", "m2", "m3"]);
  });

  test("sequential puts through a follower: each member writes its WAL about once per put", async () => {
    const writes = async () =>
      Promise.all(
        c.members.map(async (m) => {
          const body = (await m.httpGet("/metrics")).body;
          const line = body.split("\n").find((l) => l.startsWith("etcd_ts_wal_writes_total "));
          assert.ok(line !== undefined, `${m.name}: no etcd_ts_wal_writes_total`);
          return Number(line.split(" ")[1]);
        }),
      );
    const leader = await c.leader();
    const follower = c.members.find((m) => m !== leader)!;
    const client = new Etcd3({
      hosts: follower.endpoint,
      credentials: {
        rootCertificate: readFileSync(tls.caCert),
        certChain: readFileSync(tls.clientCert),
        privateKey: readFileSync(tls.clientKey),
      },
    });
    const puts = 200;
    const before = await writes();
    try {
      for (let i = 0; i < puts; i++) await client.put(`seq/${i}`).value("v");
    } finally {
      client.close();
    }
    const after = await writes();
    // one write per entry; a hardState whose only change is the commit index rides the next one
    // (a write of its own per put before: 1.6-1.7 writes per put); + the snapshots every 60
    for (const [i, m] of c.members.entries()) {
      const n = after[i]! - before[i]!;
      assert.ok(n <= puts * 1.15 + 10, `${m.name}: ${n} WAL writes for ${puts} puts`);
    }
  });

  test("leader SIGKILLed under puts: a new leader, the old member rejoins, every acknowledged put on every member", async (t) => {
    const old = await c.leader();
    const followers = c.members.filter((m) => m !== old);
    const clients = followers.map(
      (m) =>
        new Etcd3({
          hosts: m.endpoint,
          credentials: {
            rootCertificate: readFileSync(tls.caCert),
            certChain: readFileSync(tls.clientCert),
            privateKey: readFileSync(tls.clientKey),
          },
        }),
    );
    const acked: string[] = [];
    let failed = 0;
    let killedAt = 0;
    const totalPerWorker = 60;
    const worker = async (w: number) => {
      const client = clients[w % clients.length]!;
      for (let i = 0; i < totalPerWorker; i++) {
        const key = `load/${w}/${i}`;
        try {
          await client.put(key).value(String(i));
          acked.push(key);
        } catch {
          failed++;
        }
      }
    };
    const workers = [0, 1, 2, 3].map(worker);
    await waitFor("some puts acknowledged", () => acked.length >= 30, 20_000);
    killedAt = Date.now();
    await old.kill9();
    const lead = await c.leader(20_000, followers);
    t.diagnostic(`new leader ${lead.name} agreed ${Date.now() - killedAt} ms after SIGKILL`);
    await Promise.all(workers);
    for (const cl of clients) cl.close();
    t.diagnostic(`${acked.length} puts acknowledged, ${failed} failed`);
    assert.ok(acked.length >= 100, `only ${acked.length} acknowledged`);
    await old.restart();
    await waitFor(
      "every member has the same history",
      async () => new Set(await hashes(c, c.members)).size === 1,
      30_000,
    );
    for (const m of c.members) {
      const r = await ctl(m, ["get", "load/", "--prefix", "--keys-only", "--consistency=s"]);
      const keys = new Set(r.stdout.split("\n").filter((l) => l !== ""));
      const missing = acked.filter((k) => !keys.has(k));
      assert.deepEqual(missing, [], `${m.name} lacks acknowledged puts`);
    }
  });

  test("--peer-cert-allowed-cn: a member that allows another CN is cut off, and says why; it rejoins with the right one", async () => {
    const lead = await c.leader();
    const m = c.members.find((x) => x !== lead)!;
    await m.restart({
      acceptUnhealthy: true,
      extraArgs: ["--peer-cert-allowed-cn", "someone-else"],
    });
    // it refuses the others' certificates both ways: it hears no leader
    await sleep(1_500);
    assert.equal((await c.status(m)).leader, 0n);
    assert.match(readFileSync(m.logFile, "utf8"), /is not the allowed CN \\?"someone-else\\?"/);
    // the two others go on
    const put = await ctl(lead, ["put", "cn-check", "1"]);
    assert.equal(put.code, 0, put.stderr);
    // back to the cluster's CN: it rejoins and catches up
    await m.restart();
    await waitFor(
      "the member rejoined with the put",
      async () =>
        (
          await ctl(m, ["get", "cn-check", "--consistency=s", "--print-value-only"])
        ).stdout.trim() === "1",
      15_000,
    );
  });

  test("a restart from the data dir ignores changed --initial-cluster flags, as etcd", async () => {
    const lead = await c.leader();
    const m = c.members.find((x) => x !== lead)!;
    const before = await c.status(m);
    const put = await ctl(lead, ["put", "before-restart", "1"]);
    assert.equal(put.code, 0, put.stderr);
    // another cluster, token and state: read only when the data dir is new (etcd's NewServer)
    await m.restart({
      extraArgs: [
        "--initial-cluster",
        `${m.name}=http://127.0.0.1:1,ghost=http://127.0.0.1:2`,
        "--initial-cluster-token",
        "another-cluster",
        "--initial-cluster-state",
        "new",
      ],
    });
    const after = await c.status(m);
    assert.equal(after.memberId, before.memberId);
    const list = await ctl(m, ["member", "list"]);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(list.stdout.trim().split("\n").length, 3, list.stdout);
    assert.doesNotMatch(list.stdout, /ghost/);
    const put2 = await ctl(m, ["put", "after-restart", "2"]);
    assert.equal(put2.code, 0, put2.stderr);
    await waitFor(
      "the restarted member has both keys",
      async () =>
        (await ctl(m, ["get", "before-restart", "--print-value-only"])).stdout.trim() === "1" &&
        (await ctl(m, ["get", "after-restart", "--print-value-only"])).stdout.trim() === "2",
      15_000,
    );
    await waitFor(
      "every member has the same history",
      async () => new Set(await hashes(c, c.members)).size === 1,
      15_000,
    );
  });

  test("membership under puts: a learner joins and catches up, promote refused before, peer URLs updated, a member removed, leader moved", async (t) => {
    const base = c.members[0]!;
    // the follower to remove, chosen now so that the load goes through the two members that stay
    const leadAtStart = await c.leader();
    const gone = c.members.find((m) => m !== leadAtStart)!;
    const load = startPuts(
      c.members.filter((m) => m !== gone),
      tls,
    );
    // a learner whose process is not started yet cannot be promoted (etcd's isLearnerReady)
    const peerPort = await freePort();
    const peerUrl = `https://127.0.0.1:${peerPort}`;
    const add = await ctl(base, ["member", "add", "m4", "--learner", `--peer-urls=${peerUrl}`]);
    assert.equal(add.code, 0, add.stderr);
    const id = /Member\s+([0-9a-f]+) added/.exec(add.stdout)![1]!;
    const initialCluster = /ETCD_INITIAL_CLUSTER="([^"]+)"/.exec(add.stdout)![1]!;
    assert.match(add.stdout, /ETCD_INITIAL_CLUSTER_STATE="existing"/);
    const early = await ctl(base, ["member", "promote", id]);
    assert.notEqual(early.code, 0);
    assert.match(early.stderr, /can only promote a learner member which is in sync with leader/);
    // more than the catch-up window: the learner gets the leader's db file
    for (let i = 0; i < 4; i++) {
      const r = await ctl(base, ["put", `bulk${i}`, "x".repeat(100)]);
      assert.equal(r.code, 0, r.stderr);
    }
    for (let i = 0; i < 40; i++) await ctl(c.members[i % 3]!, ["put", `more${i}`, "y"]);
    load.phase("learner-catch-up");
    const m4 = await startMember({
      name: "m4",
      tls,
      peerTls: true,
      peerPort,
      initialCluster,
      initialClusterState: "existing",
      extraArgs: ["--initial-cluster-token", c.token, ...FAST],
    });
    extra.push(m4);
    await waitFor(
      "the learner has every key",
      async () => {
        const r = await ctl(m4, ["get", "more39", "--consistency=s", "--print-value-only"]);
        return r.stdout.trim() === "y";
      },
      20_000,
    );
    // the leader had compacted its log: the learner got the db file with a MsgSnap
    assert.match(readFileSync(m4.logFile, "utf8"), /applied snapshot from the leader/);
    load.phase("promote");
    await waitFor(
      "promote accepted",
      async () => (await ctl(base, ["member", "promote", id])).code === 0,
      20_000,
    );
    const list = await ctl(base, ["member", "list"]);
    assert.match(list.stdout, new RegExp(`${id}, started, m4, ${peerUrl}, ${m4.endpoint}, false`));
    load.phase("update");
    // MemberUpdate: the learner's peer URL by name instead of address (the same socket; the test
    // certificate holds both); the leader dials it there from now on
    const newPeerUrl = `https://localhost:${peerPort}`;
    const up = await ctl(base, ["member", "update", id, `--peer-urls=${newPeerUrl}`]);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, new RegExp(`Member\\s+${id} updated in cluster`));
    const lists = new Map<string, string>();
    const listed = async (): Promise<boolean> => {
      for (const m of [...c.members, m4]) {
        const r = await ctl(m, ["member", "list"]);
        lists.set(m.name, r.stdout + r.stderr);
        if (!r.stdout.includes(`${id}, started, m4, ${newPeerUrl}, ${m4.endpoint}, false`))
          return false;
      }
      return true;
    };
    await waitFor("every member lists the new peer URL", listed, 15_000).catch((err) => {
      throw new Error(`${String(err)}: ${JSON.stringify(Object.fromEntries(lists))}`);
    });
    load.phase("remove");
    // remove the follower chosen at the start (through a member that stays); it stops itself
    const stays = c.members.find((m) => m !== gone)!;
    const goneId = c.ids[c.members.indexOf(gone)]!.toString(16);
    const rm = await ctl(stays, ["member", "remove", goneId]);
    assert.equal(rm.code, 0, rm.stderr);
    await waitFor("the removed member exits", () => gone.pid === 0, 15_000);
    load.phase("move-leader");
    // move the leader to the promoted member
    const lead = await c.leader(
      20_000,
      c.members.filter((m) => m !== gone),
    );
    const mv = await ctl(lead, ["move-leader", id]);
    assert.equal(mv.code, 0, mv.stderr);
    assert.match(mv.stdout, new RegExp(`Leadership transferred from [0-9a-f]+ to ${id}`));
    const rest = [...c.members.filter((m) => m !== gone), m4];
    const st = await c.status(m4);
    assert.equal(st.leader.toString(16), id);
    load.phase("after");
    await waitFor("puts after the move", () => load.ackedIn("after") >= 5, 15_000);
    const { acked, byPhase, failures } = await load.stop();
    t.diagnostic(
      `puts acknowledged per phase: ${JSON.stringify(byPhase)}; failed: ${failures.length}`,
    );
    // the cluster served in every step; a put may fail only around the leader's move
    for (const [phase, n] of Object.entries(byPhase))
      assert.ok(n > 0, `no put acknowledged during ${phase}`);
    assert.ok(
      failures.every((f) => f.phase === "move-leader" || f.phase === "after"),
      JSON.stringify(failures.slice(0, 5)),
    );
    assert.ok(failures.length <= 3, JSON.stringify(failures.slice(0, 5)));
    await waitFor(
      "three members agree",
      async () => new Set(await hashes(c, rest)).size === 1,
      15_000,
    );
    const stored = await ctl(m4, ["get", "serve/", "--prefix", "--keys-only", "--consistency=s"]);
    const keys = new Set(stored.stdout.split("\n").filter((l) => l !== ""));
    assert.deepEqual(
      acked.filter((k) => !keys.has(k)),
      [],
      "acknowledged puts missing on the promoted member",
    );
  });
});

/**
 * Puts `serve/<n>` one at a time, every ~20 ms, through an etcd3 npm client given `members`,
 * until stop(); counts the acknowledged puts per phase (phase() names the step the test is in)
 * and records each failure with its phase and message.
 */
function startPuts(members: Member[], tls: TlsFiles) {
  const client = new Etcd3({
    hosts: members.map((m) => m.endpoint),
    credentials: {
      rootCertificate: readFileSync(tls.caCert),
      certChain: readFileSync(tls.clientCert),
      privateKey: readFileSync(tls.clientKey),
    },
  });
  let phase = "add-learner";
  let stopped = false;
  const acked: string[] = [];
  const byPhase: Record<string, number> = { [phase]: 0 };
  const failures: { phase: string; message: string }[] = [];
  const loop = (async () => {
    for (let n = 0; !stopped && n < 5_000; n++) {
      const key = `serve/${n}`;
      const at = phase;
      try {
        await client.put(key).value(String(n));
        acked.push(key);
        byPhase[at] = (byPhase[at] ?? 0) + 1;
      } catch (err) {
        failures.push({ phase: at, message: String(err) });
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    phase(name: string): void {
      phase = name;
      byPhase[name] ??= 0;
    },
    ackedIn: (name: string): number => byPhase[name] ?? 0,
    async stop() {
      stopped = true;
      await loop;
      client.close();
      return { acked, byPhase, failures };
    },
  };
}
