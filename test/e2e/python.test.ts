// Debian's python3-etcd3 (gRPC) and python3-etcd3gw (HTTP gateway), run with /usr/bin/python3,
// against a spawned member. The issue's program runs unchanged and its callback sees the delete.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { python3, startMember, type Member } from "../helpers/server.js";

/**
 * The issue's program, verbatim but for the port. `callback` and the imports are defined by the
 * harness before it runs.
 */
const ISSUE_PROGRAM = (port: number) => `\
client = etcd3.client(host='127.0.0.1', port=${port})
client.put('foo', 'bar')
value, metadata = client.get('foo')
watch_id = client.add_watch_callback('foo', callback)
client.delete('foo')
client.cancel_watch(watch_id)
`;

describe("python3-etcd3 and python3-etcd3gw", { timeout: 60_000 }, () => {
  let member: Member;

  before(async () => {
    member = await startMember();
  });
  after(async () => {
    await member?.close();
  });

  test("the issue's python3-etcd3 program runs unchanged and its callback sees the delete", async () => {
    // The program cancels the watch right after the delete returns, and python3-etcd3 drops events
    // that reach its watch thread after cancel_watch (with real etcd 3.4 the unpatched program sees
    // the delete in only about a third of runs). So the harness makes cancel_watch wait, bounded,
    // until the callback has had the delete; the program's own text is untouched.
    const script = `\
import json, sys, threading
import etcd3

events = []
saw_delete = threading.Event()

def callback(response):
    for ev in response.events:
        events.append({"type": type(ev).__name__, "key": ev.key.decode(), "value": ev.value.decode(),
                       "mod_revision": ev.mod_revision})
        if isinstance(ev, etcd3.events.DeleteEvent):
            saw_delete.set()

_cancel = etcd3.Etcd3Client.cancel_watch
def _cancel_after_delivery(self, watch_id):
    saw_delete.wait(10)
    return _cancel(self, watch_id)
etcd3.Etcd3Client.cancel_watch = _cancel_after_delivery

${ISSUE_PROGRAM(member.clientPort)}
print(json.dumps({"value": value.decode(), "mod_revision": metadata.mod_revision,
                  "version": metadata.version, "events": events}))
`;
    const r = await python3(script, { timeoutMs: 30_000 });
    assert.equal(r.code, 0, `python3 failed:\n${r.stderr}`);
    const out = JSON.parse(r.stdout.trim().split("\n").pop()!) as {
      value: string;
      mod_revision: number;
      version: number;
      events: { type: string; key: string; value: string; mod_revision: number }[];
    };
    assert.equal(out.value, "bar");
    assert.equal(out.version, 1);
    assert.deepEqual(
      out.events.map((e) => [e.type, e.key]),
      [["DeleteEvent", "foo"]],
    );
    assert.equal(out.events[0]!.mod_revision, out.mod_revision + 1);
  });

  test("the issue's program also runs with python3-etcd3 unpatched (exit 0, no errors)", async () => {
    const script = `import etcd3\ndef callback(response):\n    pass\n${ISSUE_PROGRAM(member.clientPort)}print("done")\n`;
    const r = await python3(script, { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "done\n");
  });

  test("python3-etcd3: prefix reads, transactions, leases and status", async () => {
    const script = `\
import json, etcd3
c = etcd3.client(host='127.0.0.1', port=${member.clientPort})
c.put('py/a', '1'); c.put('py/b', '2')
prefix = sorted((v.decode(), m.key.decode()) for v, m in c.get_prefix('py/'))
ok, _ = c.transaction(compare=[c.transactions.value('py/a') == '1'],
                      success=[c.transactions.put('py/a', 'tx')], failure=[])
lease = c.lease(30)
c.put('py/l', 'v', lease=lease)
ttl = lease.remaining_ttl
keys = [k.decode() for k in lease.keys]
lease.revoke()
after = c.get('py/l')[0]
st = c.status()
print(json.dumps({"prefix": prefix, "ok": ok, "a": c.get('py/a')[0].decode(), "ttl": ttl, "keys": keys,
                  "after": after, "version": st.version, "db": st.db_size,
                  "leader_is_self": st.leader.id == c.members.__next__().id}))
`;
    const r = await python3(script, { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.deepEqual(out.prefix, [
      ["1", "py/a"],
      ["2", "py/b"],
    ]);
    assert.equal(out.ok, true);
    assert.equal(out.a, "tx");
    assert.ok((out.ttl as number) > 25 && (out.ttl as number) <= 30);
    assert.deepEqual(out.keys, ["py/l"]);
    assert.equal(out.after, null);
    assert.match(out.version as string, /^3\.4\./);
    assert.ok((out.db as number) > 0);
    assert.equal(out.leader_is_self, true);
  });

  test("python3-etcd3gw over the /v3/ gateway: put, get, prefix, delete, lease, status, watch", async () => {
    // etcd3gw's client() defaults to the /v3alpha/ path, which etcd 3.4 no longer serves, so the
    // client class is built with api_path='/v3/'.
    const script = `\
import json, threading
from etcd3gw.client import Etcd3Client
c = Etcd3Client(host='127.0.0.1', port=${member.clientPort}, api_path='/v3/')
res = {}
res["put"] = c.put('gw/a', '1')
c.put('gw/b', '2')
res["get"] = [v.decode() if isinstance(v, bytes) else v for v in c.get('gw/a')]
res["prefix"] = sorted((v.decode() if isinstance(v, bytes) else v, m["key"]) for v, m in c.get_prefix('gw/'))
lease = c.lease(30)
c.put('gw/l', 'v', lease=lease)
res["ttl"] = lease.ttl()
res["lease_keys"] = [k.decode() if isinstance(k, bytes) else k for k in lease.keys()]
res["revoke"] = lease.revoke()
res["after_revoke"] = c.get('gw/l')
# From the next revision, so the events arrive however the stream setup races the writes.
rev = int(c.status()["header"]["revision"])
events, cancel = c.watch('gw/w', start_revision=rev + 1)
got = []
def reader():
    for ev in events:
        got.append(ev)
        if len(got) >= 2:
            return
t = threading.Thread(target=reader, daemon=True); t.start()
c.put('gw/w', 'x'); c.delete('gw/w')
t.join(10)
cancel()
res["watch"] = [(e.get("type", "PUT"), e["kv"]["key"]) for e in got]
res["delete"] = c.delete('gw/a')
res["status_version"] = c.status()["version"]
print(json.dumps(res, default=lambda b: b.decode()))
`;
    const r = await python3(script, { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(out.put, true);
    assert.deepEqual(out.get, ["1"]);
    assert.deepEqual(out.prefix, [
      ["1", "gw/a"],
      ["2", "gw/b"],
    ]);
    assert.ok((out.ttl as number) > 25 && (out.ttl as number) <= 30);
    assert.deepEqual(out.lease_keys, ["gw/l"]);
    assert.equal(out.revoke, true);
    assert.deepEqual(out.after_revoke, []);
    assert.deepEqual(out.watch, [
      ["PUT", "gw/w"],
      ["DELETE", "gw/w"],
    ]);
    assert.equal(out.delete, true);
    assert.match(out.status_version as string, /^3\.4\./);
  });
});
