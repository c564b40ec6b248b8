// Maintenance.Snapshot end to end, on whichever gRPC transport the run uses: real `etcdctl snapshot
// save` fetches our db file; its buckets match, entry by entry, what real etcd 3.4 writes after the
// same operations; `etcdctl snapshot status` reads it (revision, total keys and the hash its own
// algorithm gives); `etcdctl snapshot restore` turns it into a data dir that real etcd starts
// from and serves the keys, the lease and the compacted history back.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { snapshotStatusOf } from "../../tools/util/snapshot.js";
import type { Etcd3 } from "etcd3";
import { BoltFile, BoltFileWriter } from "../../lib/btree/index.js";
import { KeyValue } from "../../lib/proto/gen/mvccpb/kv.js";
import { Lease } from "../../lib/proto/gen/leasepb/lease.js";
import { DbFileFormatError, encodeMemberJson, parseEtcdDbFile } from "../../lib/server/db-file.js";
import { MvccStore } from "../../lib/mvcc/index.js";
import {
  etcdctl,
  freePort,
  parseJsonBig,
  startMember,
  type Member,
  type EtcdctlOptions,
} from "../helpers/server.js";
import { closeClient, newClient } from "../helpers/client.js";

const BULK_KEYS = 200;
const BIG_VALUE_BYTES = 200 * 1024;
const COMPACT_REVISION = 5;

interface StatusJson {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

/** etcdctl snapshot status's figures computed from the file by our reader (v3_snapshot.go Status). */
function statusByOurReader(file: Buffer): StatusJson {
  return snapshotStatusOf(file);
}

/** The root bucket's raw values (bucket headers, with the page for inline buckets), by name. */
function rootValues(file: Buffer): Map<string, Buffer> {
  const { rootPgid, pageSizeBytes } = BoltFile.open(file).meta;
  const off = rootPgid * pageSizeBytes;
  assert.equal(file.readUInt16LE(off + 8), 0x02, "the root bucket is one leaf page");
  const out = new Map<string, Buffer>();
  for (let i = 0; i < file.readUInt16LE(off + 10); i++) {
    const e = off + 16 + 16 * i;
    const k = e + file.readUInt32LE(e + 4);
    const ks = file.readUInt32LE(e + 8);
    const vs = file.readUInt32LE(e + 12);
    out.set(file.toString("latin1", k, k + ks), file.subarray(k + ks, k + ks + vs));
  }
  return out;
}

type Buckets = Map<string, { inline: boolean; entries: [Buffer, Buffer][] }>;

function bucketsOf(file: Buffer): Buckets {
  const f = BoltFile.open(file);
  f.check();
  const out: Buckets = new Map();
  for (const [name, b] of f.buckets()) {
    out.set(name.toString(), { inline: b.isInline, entries: [...b.entries()] });
  }
  return out;
}

describe(
  "Maintenance.Snapshot with etcdctl snapshot save/status/restore",
  { timeout: 180_000 },
  () => {
    let ours: Member;
    let real: Member;
    let clientOurs: Etcd3;
    let clientReal: Etcd3;
    let dir: string;
    let leaseOurs = "";
    let ourFile: Buffer;
    let realFile: Buffer;
    const restored: Member[] = [];

    async function ctl(member: Member, args: string[], opts: EtcdctlOptions = {}): Promise<string> {
      const r = await etcdctl(args, { member, timeoutMs: 30_000, ...opts });
      assert.equal(r.code, 0, `etcdctl ${args.join(" ")} exited ${r.code}: ${r.stderr}${r.stdout}`);
      return r.stdout;
    }

    /** The same operations on a member; returns the lease id (hex) etcdctl printed. */
    async function populate(member: Member, client: Etcd3): Promise<string> {
      await ctl(member, ["put", "a", "1"]); // rev 2
      await ctl(member, ["put", "b", "2"]); // rev 3
      const grant = await ctl(member, ["lease", "grant", "600"]);
      const id = /lease ([0-9a-f]+) granted/.exec(grant)?.[1];
      assert.ok(id !== undefined, grant);
      await ctl(member, ["put", "--lease=" + id, "c", "3"]); // rev 4
      await ctl(member, ["put", "a", "11"]); // rev 5
      await ctl(member, ["del", "b"]); // rev 6
      for (let i = 0; i < BULK_KEYS; i++) {
        await client
          .put(`bulk/${String(i).padStart(4, "0")}`)
          .value(`value-${i}-`.repeat(20))
          .exec();
      }
      await client.put("big").value(Buffer.alloc(BIG_VALUE_BYTES, 0x61)).exec();
      await ctl(member, ["compact", String(COMPACT_REVISION)]);
      await ctl(member, ["put", "d", "4"]);
      return id;
    }

    before(
      async () => {
        dir = mkdtempSync(join(tmpdir(), "etcd-snapshot-e2e-"));
        [ours, real] = await Promise.all([
          startMember({ name: "snap-ours" }),
          startMember({ name: "snap-real", target: "etcd" }),
        ]);
        clientOurs = newClient(ours);
        clientReal = newClient(real);
        [leaseOurs] = await Promise.all([populate(ours, clientOurs), populate(real, clientReal)]);
        await ctl(ours, ["snapshot", "save", join(dir, "ours.db")]);
        await ctl(real, ["snapshot", "save", join(dir, "real.db")]);
        ourFile = readFileSync(join(dir, "ours.db"));
        realFile = readFileSync(join(dir, "real.db"));
        // bounded: a member that never answers /health must fail the suite, not hang it
      },
      { timeout: 120_000 },
    );
    after(async () => {
      closeClient(clientOurs);
      closeClient(clientReal);
      for (const m of restored) await m.close();
      await ours?.close();
      await real?.close();
      if (dir !== undefined && !process.env.KEEP_TEST_DIRS)
        rmSync(dir, { recursive: true, force: true });
    });

    test("the saved file is whole pages plus etcd's trailing sha256, and bbolt-valid", () => {
      assert.equal(ourFile.length % 512, 32, "etcdctl's hasChecksum: size % 512 == 32");
      assert.equal((ourFile.length - 32) % 4096, 0);
      bucketsOf(ourFile);
    });

    test("every bucket matches real etcd 3.4's after the same operations", () => {
      const o = bucketsOf(ourFile);
      const r = bucketsOf(realFile);
      assert.deepEqual([...o.keys()], [...r.keys()], "bucket names and order");
      assert.deepEqual(
        [...o.keys()],
        [
          "alarm",
          "auth",
          "authRoles",
          "authUsers",
          "cluster",
          "key",
          "lease",
          "members",
          "members_removed",
          "meta",
        ],
      );
      for (const name of o.keys()) {
        assert.equal(o.get(name)!.inline, r.get(name)!.inline, `bucket ${name} inline`);
      }
      // byte-identical buckets
      for (const name of [
        "alarm",
        "auth",
        "authRoles",
        "authUsers",
        "cluster",
        "members_removed",
      ]) {
        assert.deepEqual(o.get(name)!.entries, r.get(name)!.entries, `bucket ${name}`);
      }
      // inline buckets are stored exactly as etcd stores them (header, page header, elements)
      const ov = rootValues(ourFile);
      const rv = rootValues(realFile);
      for (const name of [
        "alarm",
        "auth",
        "authRoles",
        "authUsers",
        "cluster",
        "members_removed",
      ]) {
        assert.deepEqual(ov.get(name), rv.get(name), `inline bucket ${name}`);
      }
      // key: the same revisions; values byte-equal except the lease id the two members chose
      const ok = o.get("key")!.entries;
      const rk = r.get("key")!.entries;
      assert.equal(ok.length, rk.length, "key bucket entries");
      for (let i = 0; i < ok.length; i++) {
        assert.ok(ok[i]![0].equals(rk[i]![0]), `revision key ${i}`);
        const ov = KeyValue.fromBinary(ok[i]![1]);
        const rv = KeyValue.fromBinary(rk[i]![1]);
        if (rv.lease === 0n) assert.ok(ok[i]![1].equals(rk[i]![1]), `key bucket value ${i}`);
        else {
          assert.notEqual(ov.lease, 0n);
          assert.deepEqual({ ...ov, lease: 0n }, { ...rv, lease: 0n }, `key bucket value ${i}`);
          assert.equal(ov.lease, BigInt("0x" + leaseOurs));
        }
      }
      // lease: 8-byte big-endian id → leasepb.Lease{ID, TTL}
      const ol = o.get("lease")!.entries;
      const rl = r.get("lease")!.entries;
      assert.equal(ol.length, 1);
      assert.equal(rl.length, 1);
      assert.equal(ol[0]![0].readBigUInt64BE(0), BigInt("0x" + leaseOurs));
      const olv = Lease.fromBinary(ol[0]![1]);
      const rlv = Lease.fromBinary(rl[0]![1]);
      assert.equal(olv.iD, BigInt("0x" + leaseOurs));
      assert.equal(rlv.iD, rl[0]![0].readBigUInt64BE(0));
      assert.deepEqual({ ...olv, iD: 0n }, { ...rlv, iD: 0n });
      // members: hex id → Go's JSON of membership.Member; our encoder reproduces etcd's bytes
      const rm = r.get("members")!.entries;
      assert.equal(rm.length, 1);
      const rj = JSON.parse(rm[0]![1].toString().replace(/"id":(\d+)/, '"id":"$1"')) as {
        id: string;
        peerURLs: string[];
        name: string;
        clientURLs: string[];
      };
      const rebuilt = encodeMemberJson({
        id: BigInt(rj.id),
        name: rj.name,
        peerUrls: rj.peerURLs,
        clientUrls: rj.clientURLs,
        isLearner: false,
      });
      assert.equal(rebuilt.toString(), rm[0]![1].toString());
      assert.equal(rm[0]![0].toString(), BigInt(rj.id).toString(16));
      const om = o.get("members")!.entries;
      assert.equal(om.length, 1);
      const oj = JSON.parse(om[0]![1].toString().replace(/"id":(\d+)/, '"id":"$1"')) as {
        id: string;
        name: string;
      };
      assert.equal(om[0]![0].toString(), BigInt(oj.id).toString(16));
      assert.equal(oj.name, "snap-ours");
      // meta: the same keys; the compaction revisions byte-equal
      const ome = new Map(o.get("meta")!.entries.map(([k, v]) => [k.toString(), v]));
      const rme = new Map(r.get("meta")!.entries.map(([k, v]) => [k.toString(), v]));
      assert.deepEqual([...ome.keys()], [...rme.keys()]);
      assert.deepEqual(ome.get("finishedCompactRev"), rme.get("finishedCompactRev"));
      assert.deepEqual(ome.get("scheduledCompactRev"), rme.get("scheduledCompactRev"));
      assert.equal(ome.get("consistent_index")!.length, 8);
      assert.ok(ome.get("consistent_index")!.readBigUInt64BE(0) > 0n);
    });

    test("etcdctl snapshot status reads it: revision, total keys and hash by etcd's algorithm", async () => {
      const outOurs = await ctl(ours, ["snapshot", "status", "-w", "json", join(dir, "ours.db")], {
        bare: true,
      });
      const outReal = await ctl(real, ["snapshot", "status", "-w", "json", join(dir, "real.db")], {
        bare: true,
      });
      console.log(`etcdctl snapshot status, etcd-ts: ${outOurs.trim()}`);
      console.log(`etcdctl snapshot status, etcd 3.4: ${outReal.trim()}`);
      const s = parseJsonBig(outOurs) as StatusJson;
      const sr = parseJsonBig(outReal) as StatusJson;
      assert.deepEqual(s, statusByOurReader(ourFile));
      // the same computation over real etcd's file gives what etcdctl printed for it
      assert.deepEqual(sr, statusByOurReader(realFile));
      assert.equal(s.revision, sr.revision);
      assert.equal(s.totalKey, sr.totalKey);
    });

    test("real etcd's buckets rewritten by our writer: etcdctl status gives the same figures", async () => {
      const f = BoltFile.open(realFile);
      const buckets = [...f.buckets()].map(([name, b]) => {
        const entries = [...b.entries()];
        return { name, entries: () => entries };
      });
      const w = new BoltFileWriter(buckets);
      const rewritten = Buffer.concat([...w.chunks()]);
      const path = join(dir, "rewritten.db");
      writeFileSync(path, rewritten);
      const out = await ctl(real, ["snapshot", "status", "-w", "json", path], { bare: true });
      const outReal = await ctl(real, ["snapshot", "status", "-w", "json", join(dir, "real.db")], {
        bare: true,
      });
      const s = parseJsonBig(out) as StatusJson;
      const sr = parseJsonBig(outReal) as StatusJson;
      assert.deepEqual({ ...s, totalSize: 0 }, { ...sr, totalSize: 0 });
      assert.equal(s.totalSize, rewritten.length);
      // every inline bucket value is byte-identical to etcd's
      const ov = rootValues(rewritten);
      for (const [name, v] of rootValues(realFile)) {
        if (v.readBigUInt64LE(0) === 0n) assert.deepEqual(ov.get(name), v, `inline bucket ${name}`);
      }
    });

    test("parseEtcdDbFile reads both files; their key buckets restore to etcd's HashKV", async () => {
      for (const [member, file, name] of [
        [real, realFile, "snap-real"],
        [ours, ourFile, "snap-ours"],
      ] as const) {
        const p = parseEtcdDbFile(file);
        assert.equal(p.compactRevision, COMPACT_REVISION);
        assert.equal(p.scheduledCompactRevision, COMPACT_REVISION);
        assert.ok(p.consistentIndex > 0);
        assert.equal(p.clusterVersion, "3.4.0");
        assert.equal(p.authRevision, 1);
        assert.deepEqual(p.alarms, []);
        assert.deepEqual(p.removedMemberIds, []);
        assert.equal(p.members.length, 1);
        assert.equal(p.members[0]!.name, name);
        assert.deepEqual(p.members[0]!.clientUrls, [member.endpoint]);
        assert.equal(p.leases.length, 1);
        assert.equal(p.leases[0]!.ttlSeconds, 600);
        const store = new MvccStore({});
        store.restore(p.keyRecords(), p.compactRevision);
        const h = store.hashKV(0);
        const out = await ctl(member, ["endpoint", "hashkv", "-w", "json"], {
          endpoint: member.hostPort,
        });
        const j = parseJsonBig(out) as { HashKV: { hash: number; compact_revision: number } }[];
        assert.equal(h.hash, Number(j[0]!.HashKV.hash), `${name}: hash of the restored key bucket`);
        assert.equal(h.compactRevision, Number(j[0]!.HashKV.compact_revision));
      }
    });

    test("etcdctl snapshot restore, then real etcd serves the keys, the lease and history", async () => {
      const dataDir = join(dir, "restored");
      const peerUrl = `http://127.0.0.1:${await freePort()}`;
      await ctl(
        ours,
        [
          "snapshot",
          "restore",
          join(dir, "ours.db"),
          "--name",
          "restored",
          "--data-dir",
          dataDir,
          "--initial-cluster",
          `restored=${peerUrl}`,
          "--initial-advertise-peer-urls",
          peerUrl,
        ],
        { bare: true },
      );
      const m = await startMember({ name: "restored", dataDir, target: "etcd" });
      restored.push(m);
      const get = async (args: string[]) =>
        parseJsonBig(await ctl(m, ["get", ...args, "-w", "json"])) as {
          header: { revision: number | string };
          kvs?: { key: string; value: string; lease?: string | number; version: number }[];
          count?: number | string;
        };
      const all = await get(["", "--prefix", "--keys-only"]);
      assert.equal(Number(all.count), BULK_KEYS + 4); // a, big, bulk/*, c, d
      const a = await get(["a"]);
      assert.equal(Buffer.from(a.kvs![0]!.value, "base64").toString(), "11");
      assert.equal(a.kvs![0]!.version, 2);
      const c = await get(["c"]);
      assert.equal(BigInt(c.kvs![0]!.lease!), BigInt("0x" + leaseOurs));
      assert.equal((await get(["b"])).kvs, undefined, "b stays deleted");
      const bAtCompact = await get(["b", `--rev=${COMPACT_REVISION}`]);
      assert.equal(Buffer.from(bAtCompact.kvs![0]!.value, "base64").toString(), "2");
      const old = await etcdctl(["get", "b", `--rev=${COMPACT_REVISION - 1}`], { member: m });
      assert.notEqual(old.code, 0);
      assert.match(old.stderr, /required revision has been compacted/);
      const big = await get(["big"]);
      assert.equal(Buffer.from(big.kvs![0]!.value, "base64").length, BIG_VALUE_BYTES);
      const leases = await ctl(m, ["lease", "list"]);
      assert.match(leases, new RegExp(leaseOurs));
    });
  },
);

describe("parseEtcdDbFile refuses bad etcd content with DbFileFormatError", () => {
  const file = (buckets: Record<string, [string | Buffer, string | Buffer][]>) =>
    Buffer.concat([
      ...new BoltFileWriter(
        Object.entries(buckets).map(([name, entries]) => {
          const e = entries.map(([k, v]) => [Buffer.from(k), Buffer.from(v)] as const);
          return { name: Buffer.from(name), entries: () => e };
        }),
      ).chunks(),
    ]);
  const bad = (buckets: Record<string, [string | Buffer, string | Buffer][]>, re: RegExp) =>
    assert.throws(
      () => parseEtcdDbFile(file(buckets)),
      (e: unknown) =>
        e instanceof DbFileFormatError && e.code === "ErrDbFileFormat" && re.test(e.message),
    );

  test("missing key or meta bucket", () => {
    bad({ meta: [] }, /no "key" bucket/);
    bad({ key: [] }, /no "meta" bucket/);
  });

  test("malformed meta, member and lease entries", () => {
    bad({ key: [], meta: [["consistent_index", "x"]] }, /consistent_index is 1 bytes/);
    bad({ key: [], meta: [["finishedCompactRev", Buffer.alloc(8)]] }, /not a revision/);
    bad({ key: [], meta: [], members: [["zz", "{}"]] }, /not a hex id/);
    bad({ key: [], meta: [], members: [["1f", '{"id":32}']] }, /id does not match its key/);
    bad({ key: [], meta: [], members: [["1f", "{"]] }, /not JSON/);
    bad({ key: [], meta: [], lease: [[Buffer.alloc(8), Buffer.from([0x08, 0x05])]] }, /lease/);
  });

  test("an empty but complete file reads as a fresh member's", () => {
    const p = parseEtcdDbFile(file({ key: [], meta: [] }));
    assert.equal(p.consistentIndex, 0);
    assert.equal(p.compactRevision, -1);
    assert.deepEqual([...p.keyRecords()], []);
    assert.equal(p.clusterVersion, undefined);
  });
});
