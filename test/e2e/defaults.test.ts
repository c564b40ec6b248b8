// "Done means" of issue 3: with no flags at all the member serves on 127.0.0.1:2379 with its data
// in ./default.etcd, and `etcdctl put foo bar && etcdctl get foo` and `etcdctl watch foo` work
// with no flags either. Skipped when something already listens on 2379 or 2380.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { etcdctl, portsFree, startMember, type Member } from "../helpers/server.js";

const free = await portsFree([2379, 2380]);

describe(
  "defaults: no flags",
  { timeout: 60_000, skip: free ? false : "127.0.0.1:2379 or :2380 is in use" },
  () => {
    let member: Member;

    before(async () => {
      member = await startMember({ noFlags: true });
    });
    after(async () => {
      await member?.close();
    });

    test("serves clients on http://127.0.0.1:2379 with data in ./default.etcd", () => {
      assert.equal(member.endpoint, "http://127.0.0.1:2379");
      assert.ok(existsSync(join(member.dataDir, "member")), `${member.dataDir}/member exists`);
    });

    test("etcdctl put foo bar && etcdctl get foo, no flags", async () => {
      const put = await etcdctl(["put", "foo", "bar"], { bare: true });
      assert.equal(put.code, 0, put.stderr);
      assert.equal(put.stdout, "OK\n");
      const get = await etcdctl(["get", "foo"], { bare: true });
      assert.equal(get.stdout, "foo\nbar\n");
    });

    test("etcdctl watch foo, no flags, sees a later put", async () => {
      const watch = etcdctl(["watch", "foo"], {
        bare: true,
        timeoutMs: 15_000,
        until: (o) => o.includes("PUT\nfoo\nbaz\n"),
      });
      // The watch starts at the current revision, so keep writing until it has seen one (bounded).
      let seen = false;
      void watch.then(() => {
        seen = true;
      });
      for (let i = 0; i < 50 && !seen; i++) {
        await etcdctl(["put", "foo", "baz"], { bare: true });
        await new Promise((r) => setTimeout(r, 200));
      }
      const r = await watch;
      assert.equal(r.timedOut, false, r.stderr);
      assert.ok(r.stdout.startsWith("PUT\nfoo\nbaz\n"), r.stdout);
    });

    test("member list names the default member 'default'", async () => {
      const r = await etcdctl(["member", "list"], { bare: true });
      assert.match(
        r.stdout,
        /^[0-9a-f]+, started, default, http:\/\/localhost:2380, http:\/\/localhost:2379, false\n$/,
      );
    });
  },
);
