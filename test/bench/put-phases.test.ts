import { test } from "node:test";
import assert from "node:assert/strict";
import { findPuts, parseSegments, phasesOf, slowByPhase } from "../../bench/put-phases.js";

// Ports as bench/cluster-cpu.sh lays them out: the leader m1 (client 31011, peer 31012), the
// followers m2 and m3 (peers 31022 and 31032); the client and the leader's dialled peer
// connections use ephemeral ports.
const CLIENT = 31011;
const LEADER_PEER = 31012;
const FOLLOWER_PEERS = [31022, 31032];

/** A line as `tcpdump -r X -tt -nn` prints it, at `sec` seconds, from port `a` to port `b`. */
function line(sec: string, a: number, b: number, bytes: number): string {
  return (
    `${sec} IP 127.0.0.1.${a} > 127.0.0.1.${b}: Flags [P.], seq 1:${bytes + 1}, ack 1, win 64, ` +
    `options [nop,nop,TS val 1 ecr 2], length ${bytes}`
  );
}

const capture = [
  // an ACK without payload and the client's PING + WINDOW_UPDATE are not a put
  line("1000.000000", 50000, CLIENT, 0),
  line("1000.000010", 50000, CLIENT, 30),
  // put 1: request, MsgApps, an ack, the response (server 1,000 µs: send 100, ack 400, respond 500)
  line("1000.000100", 50000, CLIENT, 330),
  line("1000.000200", 40000, 31022, 334),
  line("1000.000210", 40001, 31032, 335),
  line("1000.000600", 41000, LEADER_PEER, 33),
  line("1000.000620", CLIENT, 50000, 17),
  line("1000.001100", CLIENT, 50000, 95),
  // put 2, 300 µs later: its HEADERS alone, then its DATA; the leader sends late (1,500 µs)
  line("1000.001400", 50000, CLIENT, 30),
  line("1000.001410", 50000, CLIENT, 300),
  line("1000.002910", 40000, 31022, 334),
  line("1000.003210", 42000, LEADER_PEER, 33),
  line("1000.003410", CLIENT, 50000, 95),
].join("\n");

test("put-phases finds each put's request, MsgApp, first ack and response in a tcpdump text", () => {
  const segs = parseSegments(capture);
  assert.equal(segs.length, 12, "segments with a payload only");
  const puts = findPuts(segs, CLIENT, LEADER_PEER, FOLLOWER_PEERS);
  assert.equal(puts.length, 2);
  const [p1, p2] = puts;
  assert.equal(Math.round(p1!.responseUs - p1!.requestUs), 1000);
  assert.deepEqual(
    Object.values(phasesOf(p1!)).map((x) => Math.round(x)),
    [100, 400, 500],
  );
  assert.equal(Math.round(p2!.requestUs - p1!.responseUs), 310, "split request counts from DATA");
  assert.deepEqual(
    Object.values(phasesOf(p2!)).map((x) => Math.round(x)),
    [1500, 300, 200],
  );
  assert.deepEqual(slowByPhase(puts, 1500), {
    "leader send": 1,
    "follower ack": 0,
    "leader respond": 0,
    "none over 1 ms": 0,
  });
  assert.deepEqual(
    slowByPhase(puts, 900)["none over 1 ms"],
    1,
    "put 1 is over 900 µs with no phase over 1 ms",
  );
});

test("put-phases without peer ports finds the puts but no phases", () => {
  const puts = findPuts(parseSegments(capture), CLIENT);
  assert.equal(puts.length, 2);
  assert.equal(puts[0]!.msgAppUs, undefined);
  assert.deepEqual(Object.values(slowByPhase(puts, 0)), [0, 0, 0, 0]);
});
