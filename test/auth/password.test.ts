/**
 * Passwords hash on worker threads of their own at low priority (lib/auth/password.ts): round
 * trips, etcd's $2a$ prefix, and the hashing thread's nice value.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { hashPassword, verifyPassword } from "../../lib/auth/index.js";

/** Nice values of this process's threads (Linux /proc). */
function threadNiceValues(): number[] {
  return readdirSync("/proc/self/task").map((t) => {
    const st = readFileSync(`/proc/self/task/${t}/stat`, "utf8");
    return Number(st.slice(st.lastIndexOf(")") + 2).split(" ")[16]);
  });
}

test("hash and verify round trip with etcd's $2a$ prefix; wrong or malformed never match", async () => {
  const h = await hashPassword("pw", 4);
  assert.match(h, /^\$2a\$04\$/);
  assert.equal(await verifyPassword("pw", h), true);
  assert.equal(await verifyPassword("other", h), false);
  assert.equal(await verifyPassword("pw", "not-a-hash"), false);
  assert.equal(await verifyPassword("pw", ""), false);
  const many = await Promise.all(Array.from({ length: 8 }, (_, i) => hashPassword(`p${i}`, 4)));
  for (const [i, m] of many.entries()) assert.equal(await verifyPassword(`p${i}`, m), true);
});

test("hashes run on a thread at nice 19 while the event loop keeps turning", async () => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const start = Date.now();
  await hashPassword("pw", 12); // ~200-300 ms of CPU
  const elapsed = Date.now() - start;
  clearInterval(timer);
  assert.ok(
    ticks >= Math.floor(elapsed / 5 / 4),
    `event loop turned ${ticks} times in ${elapsed} ms`,
  );
  assert.ok(threadNiceValues().includes(19), "a thread of this process runs at nice 19");
});
