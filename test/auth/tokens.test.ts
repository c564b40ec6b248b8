/**
 * JwtTokens: a verified token is remembered until its exp, never past it, and only by its exact
 * bytes (a changed signature or payload is checked again and refused).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JwtTokens } from "../../lib/auth/tokens.js";

function hs256(secret: string, ttlMs: number): JwtTokens {
  const dir = mkdtempSync(join(tmpdir(), "etcd-ts-jwt-"));
  const file = join(dir, "secret");
  writeFileSync(file, secret);
  return new JwtTokens(
    new Map([
      ["sign-method", "HS256"],
      ["priv-key", file],
      ["ttl", "x"],
    ]),
    () => ttlMs,
  );
}

test("a verified JWT is answered from memory until its exp, and refused from exp on", async () => {
  const jwt = hs256("secret-one", 10_000);
  const t0 = Date.now();
  const token = await jwt.sign("alice", 7, t0);
  const exp = Math.floor((t0 + 10_000) / 1000) * 1000;
  assert.deepEqual(await jwt.verify(token, t0), { username: "alice", revision: 7 });
  assert.deepEqual(await jwt.verify(token, exp - 1), { username: "alice", revision: 7 });
  assert.equal(await jwt.verify(token, exp), undefined);
});

test("a JWT whose bytes differ from a verified one is checked again: tampered or foreign keys fail", async () => {
  const jwt = hs256("secret-one", 60_000);
  const other = hs256("secret-two", 60_000);
  const now = Date.now();
  const token = await jwt.sign("alice", 1, now);
  assert.ok(await jwt.verify(token, now));
  const [h, p, sig] = token.split(".") as [string, string, string];
  const claims = JSON.parse(Buffer.from(p, "base64url").toString()) as Record<string, unknown>;
  const forged = Buffer.from(JSON.stringify({ ...claims, username: "root" })).toString("base64url");
  assert.equal(await jwt.verify(`${h}.${forged}.${sig}`, now), undefined);
  assert.equal(await jwt.verify(`${h}.${p}.${sig.slice(0, -2)}AA`, now), undefined);
  assert.equal(await jwt.verify(await other.sign("alice", 1, now), now), undefined);
});
