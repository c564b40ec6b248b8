// The WAL's write paths as a member chooses them (lib/wal fillAheadBytes and syncWriteMaxEntries,
// lib/server/raft-node.ts): a lone voter writes multi-entry group commits with blocking calls (it
// has one save in flight and nothing to overlap with it), `--experimental-wal-lone-voter-sync-
// write-max-entries 1` keeps that to single entries, and the tail is zero-filled ahead of the write
// position. Driven by the etcd3 npm client; checked through the member's /metrics.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { startMember, type Member } from "../helpers/server.js";

/** The value of an unlabelled metric line `name value` (or with `{labels}` given verbatim). */
function metric(body: string, name: string): number {
  const line = body.split("\n").find((l) => l.startsWith(`${name} `));
  assert.ok(line !== undefined, `no ${name} in /metrics`);
  return Number(line.slice(name.length + 1));
}

/** 40 rounds of 16 concurrent puts: the WAL sees batches of several entries. */
async function burstPuts(member: Member): Promise<void> {
  const client = new Etcd3({ hosts: member.hostPort });
  try {
    for (let round = 0; round < 40; round++) {
      await Promise.all(
        Array.from({ length: 16 }, (_, i) => client.put(`/b/${i}`).value(`v${round}`)),
      );
    }
  } finally {
    client.close();
  }
}

describe("a member's WAL write paths", { timeout: 120_000 }, () => {
  let lone: Member;
  let single: Member;
  before(async () => {
    [lone, single] = await Promise.all([
      startMember({ name: "wal-lone" }),
      startMember({
        name: "wal-single",
        extraArgs: ["--experimental-wal-lone-voter-sync-write-max-entries", "1"],
      }),
    ]);
  });
  after(async () => {
    await Promise.all([lone?.close(), single?.close()]);
  });

  test("only single-entry batches block with --experimental-wal-lone-voter-sync-write-max-entries 1", async () => {
    await burstPuts(single);
    const m = (await single.httpGet("/metrics")).body;
    const blocking = metric(m, "etcd_ts_wal_blocking_writes_total");
    const oneEntry = metric(m, 'etcd_ts_wal_entries_per_fsync_bucket{le="1"}');
    const fsyncs = metric(m, "etcd_ts_wal_entries_per_fsync_count");
    assert.ok(fsyncs > oneEntry, `some batches held several entries (${fsyncs} > ${oneEntry})`);
    // + the vote and term writes of the election (no entries, not in the histogram)
    assert.ok(blocking <= oneEntry + 2, `${blocking} blocking writes, ${oneEntry} single-entry`);
  });

  test("a lone voter writes multi-entry batches with blocking calls, zero-filled ahead", async (t) => {
    await burstPuts(lone);
    const m = (await lone.httpGet("/metrics")).body;
    const blocking = metric(m, "etcd_ts_wal_blocking_writes_total");
    const oneEntry = metric(m, 'etcd_ts_wal_entries_per_fsync_bucket{le="1"}');
    const fsyncs = metric(m, "etcd_ts_wal_entries_per_fsync_count");
    assert.ok(metric(m, "etcd_ts_wal_zero_filled_bytes_total") > 0, "nothing zero-filled");
    // the blocking path is off after a durable write over 5 ms (a slow disk): not a failure
    const fast = metric(m, 'etcd_disk_wal_fsync_duration_seconds_bucket{le="0.004"}');
    if (fast < 0.5 * metric(m, "etcd_disk_wal_fsync_duration_seconds_count")) {
      t.skip(`slow disk: ${fast} of the fsyncs took under 4 ms; the blocking path is off`);
      return;
    }
    assert.ok(fsyncs > oneEntry, `some batches held several entries (${fsyncs} > ${oneEntry})`);
    assert.ok(
      blocking > oneEntry,
      `${blocking} blocking writes, ${oneEntry} single-entry of ${fsyncs}, ${fast} under 4 ms`,
    );
  });
});
