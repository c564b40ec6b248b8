// A separate process for the Lock service's mutual-exclusion test (test/e2e/lock-election.test.ts):
// `node lock-worker.js <host:port> <lock name> <worker id> <rounds> [tls dir]` takes the lock `rounds` times
// through v3lockpb.Lock. Inside each critical section it checks that nobody else is in one (the key
// `<name>-holder` is empty), marks itself there, increments `<name>-counter` with a read and a
// separate write (a lost update if two workers overlapped), then leaves and unlocks. Prints one
// JSON line {"id", "rounds", "overlaps"} and exits 0, or exits 1 with the error. With a tls dir (one
// made by generateTls) it speaks TLS with that dir's CA and client certificate.
import { ConcurrencyClient } from "./concurrency-client.js";
import { tlsFilesIn } from "./server.js";

const [hostPort, name, id, roundsText, tlsDir] = process.argv.slice(2);
if (hostPort === undefined || name === undefined || id === undefined || roundsText === undefined) {
  console.error("usage: lock-worker <host:port> <name> <id> <rounds> [tls dir]");
  process.exit(2);
}
const rounds = Number(roundsText);
const tls = tlsDir === undefined ? undefined : tlsFilesIn(tlsDir);
const client = new ConcurrencyClient(hostPort, tls);

async function main(): Promise<void> {
  const lease = await client.grant(60);
  let overlaps = 0;
  for (let i = 0; i < rounds; i++) {
    const { key } = await client.lock(name!, lease, 20_000);
    const holder = await client.get(`${name}-holder`);
    if (holder !== undefined && holder !== "") overlaps++;
    await client.put(`${name}-holder`, id!);
    const n = Number((await client.get(`${name}-counter`)) ?? "0");
    // give the other worker a chance to run inside our section if the lock let it in
    await new Promise((r) => setTimeout(r, i % 3));
    await client.put(`${name}-counter`, String(n + 1));
    await client.put(`${name}-holder`, "");
    await client.unlock(key);
  }
  await client.revoke(lease);
  console.log(JSON.stringify({ id, rounds, overlaps }));
}

main().then(
  () => {
    client.close();
    process.exit(0);
  },
  (err: unknown) => {
    console.error(err);
    client.close();
    process.exit(1);
  },
);
