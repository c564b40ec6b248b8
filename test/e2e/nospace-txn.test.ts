// NOSPACE and txns, as etcd 3.4.23 answers them: once the quota is exceeded and the alarm is
// raised, the capped applier refuses puts, lease grants and every txn that costs something (a put
// of its own in either branch, even in the branch that does not run), while txns that only read,
// only delete or put only inside a nested txn (etcd's costTxn does not look inside) still apply.
// Passes against /usr/bin/etcd with ETCD_TS_TARGET=etcd.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { curl, startMember, type Member } from "../helpers/server.js";
import { b64, unb64, type KV } from "../helpers/gateway-json.js";

/** Small enough to fill with a few dozen puts of FILL_VALUE_BYTES. */
const QUOTA_BYTES = 300_000;
const FILL_VALUE_BYTES = 20_000;
/** Bound on puts while filling the quota. */
const MAX_FILL_PUTS = 200;
const NOSPACE = "etcdserver: mvcc: database space exceeded";

describe("txns under the NOSPACE alarm", { timeout: 60_000 }, () => {
  let member: Member;

  before(async () => {
    member = await startMember({ extraArgs: ["--quota-backend-bytes", String(QUOTA_BYTES)] });
  });
  after(async () => {
    await member?.close();
  });

  async function post<T>(path: string, body: unknown): Promise<T> {
    const r = await curl(["-X", "POST", "-d", JSON.stringify(body), member.endpoint + path]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as T;
  }

  const put = (key: string, value = "v") => ({
    request_put: { key: b64(key), value: b64(value) },
  });

  test("only txns without puts of their own get through", async () => {
    const value = Buffer.alloc(FILL_VALUE_BYTES, "x").toString("base64");
    let refused: { error?: string } | undefined;
    for (let i = 0; i < MAX_FILL_PUTS && refused === undefined; i++) {
      const r = await post<{ error?: string }>("/v3/kv/put", { key: b64(`fill${i}`), value });
      if (r.error !== undefined) refused = r;
    }
    assert.equal(refused?.error, NOSPACE, "the quota was never exceeded");
    const alarms = await post<{ alarms?: { alarm: string }[] }>("/v3/maintenance/alarm", {
      action: "GET",
    });
    assert.deepEqual(
      alarms.alarms?.map((a) => a.alarm),
      ["NOSPACE"],
    );

    type TxnAnswer = { error?: string; succeeded?: boolean };
    const txn = (body: unknown) => post<TxnAnswer>("/v3/kv/txn", body);
    assert.equal((await txn({ success: [put("t-top")] })).error, NOSPACE);
    // a put in the failure branch costs even when the success branch runs
    const readOnlySuccess = { request_range: { key: b64("fill1") } };
    assert.equal(
      (await txn({ success: [readOnlySuccess], failure: [put("t-else")] })).error,
      NOSPACE,
    );
    const nested = await txn({ success: [{ request_txn: { success: [put("t-nested", "n")] } }] });
    assert.equal(nested.error, undefined, JSON.stringify(nested));
    assert.equal(nested.succeeded, true);
    const del = await txn({ success: [{ request_delete_range: { key: b64("fill0") } }] });
    assert.equal(del.error, undefined, JSON.stringify(del));
    const read = await txn({ success: [readOnlySuccess] });
    assert.equal(read.error, undefined, JSON.stringify(read));

    const kvs = async (key: string) =>
      (await post<{ kvs?: KV[] }>("/v3/kv/range", { key: b64(key) })).kvs ?? [];
    assert.deepEqual(
      (await kvs("t-nested")).map((kv) => unb64(kv.value)),
      ["n"],
    );
    assert.deepEqual(await kvs("t-top"), []);
    assert.deepEqual(await kvs("t-else"), []);
    assert.deepEqual(await kvs("fill0"), []);
    assert.equal((await post<{ error?: string }>("/v3/kv/put", { key: b64("p") })).error, NOSPACE);
    assert.equal((await post<{ error?: string }>("/v3/lease/grant", { TTL: 30 })).error, NOSPACE);
  });
});
