// The JSON gateway and ops endpoints over HTTP/2 on the client port: curl with prior knowledge
// (cleartext) and over TLS (ALPN picks h2, as etcd's Go server does), node:http2 as a client for
// stream resets and small flow-control windows. Runs on both transports
// (ETCD_TS_GRPC_TRANSPORT=fast|grpc-js).
//
// Real etcd 3.4.23, checked by hand and with ETCD_TS_TARGET=etcd: over TLS it answers exactly as
// these tests expect (h2 chosen by ALPN; same statuses and JSON bodies as over HTTP/1.1). On
// cleartext its cmux hands every HTTP/2 connection to grpc-go, which resets a non-gRPC stream with
// PROTOCOL_ERROR (curl: "HTTP/2 stream 1 was not closed cleanly"); etcd-ts serves the gateway
// there too, so the cleartext suite is skipped against real etcd.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http2 from "node:http2";
import net from "node:net";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  curl,
  generateTls,
  startMember,
  TARGET,
  type Member,
  type TlsFiles,
} from "../helpers/server.js";
import { H2GrpcServer } from "../../lib/h2/index.js";
import { H2StreamExchange } from "../../lib/api/h2-gateway.js";

const b64 = (s: string | Buffer) => Buffer.from(s).toString("base64");

/** Bound on waiting for a server-side effect (a watcher going away), in ms. */
const settleTimeoutMs = 5000;

interface CurlAnswer {
  status: number;
  httpVersion: string;
  body: string;
}

/** The curl flags that pick HTTP/2 for `member`: prior knowledge on cleartext, ALPN over TLS. */
function h2Flags(member: Member): string[] {
  return member.tls !== undefined
    ? ["--http2", "--cacert", member.tls.caCert]
    : ["--http2-prior-knowledge"];
}

async function curlH2(member: Member, path: string, body?: string): Promise<CurlAnswer> {
  const args = [...h2Flags(member), "-w", "\n%{http_code} %{http_version}"];
  if (body !== undefined) args.push("-d", body);
  const r = await curl([...args, member.endpoint + path]);
  assert.equal(r.code, 0, `curl ${path}: ${r.stderr}`);
  const nl = r.stdout.lastIndexOf("\n");
  const [status, httpVersion] = r.stdout.slice(nl + 1).split(" ");
  return { status: Number(status), httpVersion, body: r.stdout.slice(0, nl) };
}

/** etcd_debugging_mvcc_watcher_total from /metrics (over HTTP/1.1). */
async function watchers(member: Member): Promise<number> {
  const r = await member.httpGet("/metrics");
  const m = /^etcd_debugging_mvcc_watcher_total (\d+)/m.exec(r.body);
  assert.ok(m !== null, "etcd_debugging_mvcc_watcher_total missing");
  return Number(m[1]);
}

async function waitWatchers(member: Member, want: number): Promise<void> {
  const deadline = Date.now() + settleTimeoutMs;
  let n = await watchers(member);
  while (n !== want && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    n = await watchers(member);
  }
  assert.equal(n, want, `watchers: ${n}, want ${want}`);
}

/**
 * Opens /v3/watch with curl (HTTP/2), puts `key` once the watch is created, and resolves with the
 * streamed lines after the event arrived; curl is then killed (by pid), which ends the stream.
 */
function curlWatch(member: Member, key: string, value: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      "/usr/bin/curl",
      [
        "-sS",
        "-N",
        "--max-time",
        "15",
        ...h2Flags(member),
        "-d",
        JSON.stringify({ create_request: { key: b64(key) } }),
        member.endpoint + "/v3/watch",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    let put = false;
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, "SIGKILL");
      if (err !== undefined) reject(err);
      else resolve(out.trim().split("\n"));
    };
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString("utf8");
      if (!put && out.includes('"created":true')) {
        put = true;
        curlH2(member, "/v3/kv/put", JSON.stringify({ key: b64(key), value: b64(value) })).catch(
          (err: Error) => finish(err),
        );
      }
      if (out.includes('"events"') && out.endsWith("\n")) finish();
    });
    child.on("exit", () => finish(new Error(`curl exited early; output: ${out}`)));
  });
}

/** A node:http2 client session to `member` (trusting the test CA over TLS). */
function connect(member: Member, settings: http2.Settings = {}): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const opts: http2.SecureClientSessionOptions = { settings };
    if (member.tls !== undefined) opts.ca = readFileSync(member.tls.caCert);
    const s = http2.connect(member.endpoint, opts);
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/** One request on `session`; resolves with status, headers and the whole body. */
function request(
  session: http2.ClientHttp2Session,
  path: string,
  body?: string | Buffer,
): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ":method": body === undefined ? "GET" : "POST",
      ":path": path,
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    });
    const chunks: Buffer[] = [];
    let headers: http2.IncomingHttpHeaders = {};
    req.on("response", (h) => (headers = h));
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () =>
      resolve({ status: Number(headers[":status"]), headers, body: Buffer.concat(chunks) }),
    );
    req.on("error", reject);
    req.end(body);
  });
}

function suite(name: string, tlsMode: boolean, skip: string | false): void {
  describe(name, { timeout: 90_000, skip }, () => {
    let member: Member;
    let tls: TlsFiles | undefined;

    before(async () => {
      if (tlsMode) tls = await generateTls();
      member = await startMember(tls !== undefined ? { tls, noTrustedCa: true } : {});
    });
    after(async () => {
      await member?.close();
      if (tls !== undefined) rmSync(tls.dir, { recursive: true, force: true });
    });

    test("POST /v3/kv/put then /v3/kv/range answer etcd's JSON over HTTP/2", async () => {
      const put = await curlH2(
        member,
        "/v3/kv/put",
        JSON.stringify({ key: b64("h2gw"), value: b64("v1") }),
      );
      assert.equal(put.httpVersion, "2");
      assert.equal(put.status, 200, put.body);
      const header = (JSON.parse(put.body) as { header: { revision: string } }).header;
      assert.match(header.revision, /^\d+$/);
      const range = await curlH2(member, "/v3/kv/range", JSON.stringify({ key: b64("h2gw") }));
      assert.equal(range.status, 200, range.body);
      const r = JSON.parse(range.body) as { kvs: { key: string; value: string }[]; count: string };
      assert.equal(r.count, "1");
      assert.equal(r.kvs[0].value, b64("v1"));
      assert.equal(r.kvs[0].key, b64("h2gw"));
      // the /v3beta/ prefix etcd 3.4 still serves
      const beta = await curlH2(member, "/v3beta/kv/range", JSON.stringify({ key: b64("h2gw") }));
      assert.equal(beta.status, 200);
      assert.equal((JSON.parse(beta.body) as { count: string }).count, "1");
    });

    test("/health, /version and /metrics over HTTP/2", async () => {
      const health = await curlH2(member, "/health");
      assert.equal(health.httpVersion, "2");
      assert.equal(health.status, 200);
      assert.deepEqual(JSON.parse(health.body), { health: "true" });
      const version = await curlH2(member, "/version");
      assert.equal(version.status, 200);
      const v = JSON.parse(version.body) as { etcdserver: string; etcdcluster: string };
      assert.match(v.etcdserver, /^3\.4\./);
      assert.equal(v.etcdcluster, "3.4.0");
      const metrics = await curlH2(member, "/metrics");
      assert.equal(metrics.status, 200);
      assert.match(metrics.body, /^etcd_server_has_leader 1$/m);
    });

    test("wrong method and unknown path answer 405 and 404 as over HTTP/1.1", async () => {
      const get = await curlH2(member, "/v3/kv/range");
      assert.equal(get.status, 405);
      assert.equal(get.body, "Method Not Allowed\n");
      const nope = await curlH2(member, "/no/such/path");
      assert.equal(nope.status, 404);
      assert.equal(nope.body, "404 page not found\n");
      // answered before the (unread) body arrives: the stream must still end cleanly for curl,
      // which fails a request whose stream is reset while it uploads
      for (let i = 0; i < 10; i++) {
        const postVersion = await curlH2(member, "/version", "{}");
        assert.equal(postVersion.status, 405);
      }
      const bad = await curlH2(member, "/v3/kv/range", '{"key":');
      assert.equal(bad.status, 400);
      assert.equal((JSON.parse(bad.body) as { code: number }).code, 3);
    });

    test("etcd's CORS headers on answers; OPTIONS (a browser's preflight) answers 200", async () => {
      const session = await connect(member);
      try {
        const cors = {
          "access-control-allow-headers": "accept, content-type, authorization",
          "access-control-allow-methods": "POST, GET, OPTIONS, PUT, DELETE",
          "access-control-allow-origin": "*",
        };
        const health = await request(session, "/health");
        const range = await request(session, "/v3/kv/range", JSON.stringify({ key: b64("x") }));
        const options = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
          const req = session.request({ ":method": "OPTIONS", ":path": "/v3/kv/range" });
          let headers: http2.IncomingHttpHeaders = {};
          req.on("response", (h) => (headers = h));
          req.on("data", () => {});
          req.on("end", () => resolve(headers));
          req.on("error", reject);
          req.end();
        });
        assert.equal(options[":status"], 200);
        for (const h of [health.headers, range.headers, options]) {
          for (const [n, v] of Object.entries(cors)) assert.equal(h[n], v, n);
        }
      } finally {
        session.close();
      }
    });

    test("HEAD gets headers only (etcd: 405 with allow: GET and the body's length)", async () => {
      const session = await connect(member);
      try {
        for (const path of ["/health", "/version"]) {
          const r = await new Promise<{ headers: http2.IncomingHttpHeaders; bytes: number }>(
            (resolve, reject) => {
              const req = session.request({ ":method": "HEAD", ":path": path });
              let headers: http2.IncomingHttpHeaders = {};
              let bytes = 0;
              req.on("response", (h) => (headers = h));
              req.on("data", (c: Buffer) => (bytes += c.length));
              req.on("end", () => resolve({ headers, bytes }));
              req.on("error", reject);
              req.end();
            },
          );
          assert.equal(r.headers[":status"], 405, path);
          assert.equal(r.headers["allow"], "GET");
          assert.equal(r.headers["content-length"], "19");
          assert.equal(r.headers["x-content-type-options"], "nosniff");
          assert.equal(r.bytes, 0);
        }
      } finally {
        session.close();
      }
    });

    test("a /v3/watch stream over HTTP/2 delivers an event; the watcher goes when curl does", async () => {
      await waitWatchers(member, 0);
      const lines = await curlWatch(member, "h2gw-watch", "w1");
      const created = JSON.parse(lines[0]) as { result: { created: boolean } };
      assert.equal(created.result.created, true);
      const ev = JSON.parse(lines[lines.length - 1]) as {
        result: { events: { kv: { key: string; value: string } }[] };
      };
      assert.equal(ev.result.events[0].kv.key, b64("h2gw-watch"));
      assert.equal(ev.result.events[0].kv.value, b64("w1"));
      await waitWatchers(member, 0);
    });

    test("a watch ends when the client resets its stream; the connection serves on", async () => {
      await waitWatchers(member, 0);
      const session = await connect(member);
      try {
        const req = session.request({ ":method": "POST", ":path": "/v3/watch" });
        req.write(JSON.stringify({ create_request: { key: b64("h2gw-reset") } }));
        let out = "";
        const event = new Promise<void>((resolve, reject) => {
          req.on("data", (c: Buffer) => {
            out += c.toString("utf8");
            if (out.includes('"events"')) resolve();
          });
          req.on("error", reject);
        });
        await new Promise<void>((resolve) => {
          const check = () => (out.includes('"created":true') ? resolve() : setTimeout(check, 10));
          check();
        });
        await waitWatchers(member, 1);
        const put = await request(
          session,
          "/v3/kv/put",
          JSON.stringify({ key: b64("h2gw-reset"), value: b64("x") }),
        );
        assert.equal(put.status, 200);
        await event;
        req.close(http2.constants.NGHTTP2_CANCEL); // RST_STREAM(CANCEL), the session stays
        await waitWatchers(member, 0);
        const health = await request(session, "/health");
        assert.equal(health.status, 200);
        assert.equal(session.closed, false);
      } finally {
        session.close();
      }
    });

    test("a watch streams 200 events of 4 KB through a 16 KiB client window", async () => {
      const session = await connect(member, { initialWindowSize: 16 * 1024 });
      try {
        const req = session.request({ ":method": "POST", ":path": "/v3/watch" });
        req.write(JSON.stringify({ create_request: { key: b64("h2gw-many") } }));
        let out = "";
        let events = 0;
        const all = new Promise<void>((resolve, reject) => {
          req.on("data", (c: Buffer) => {
            out += c.toString("utf8");
            let nl = out.indexOf("\n");
            while (nl >= 0) {
              const line = JSON.parse(out.slice(0, nl)) as { result: { events?: unknown[] } };
              events += line.result.events?.length ?? 0;
              out = out.slice(nl + 1);
              nl = out.indexOf("\n");
            }
            if (events >= 200) resolve();
          });
          req.on("error", reject);
        });
        await waitWatchers(member, 1);
        const value = b64(Buffer.alloc(4096, 0x62));
        for (let i = 0; i < 200; i++) {
          const r = await request(
            session,
            "/v3/kv/put",
            JSON.stringify({ key: b64("h2gw-many"), value }),
          );
          assert.equal(r.status, 200);
        }
        await all;
        assert.equal(events, 200);
        req.close(http2.constants.NGHTTP2_CANCEL);
        await waitWatchers(member, 0);
      } finally {
        session.close();
      }
    });

    test("lease grant and a keep-alive stream over HTTP/2", async () => {
      const grant = await curlH2(member, "/v3/lease/grant", JSON.stringify({ TTL: 30 }));
      assert.equal(grant.status, 200, grant.body);
      const id = (JSON.parse(grant.body) as { ID: string }).ID;
      assert.match(id, /^\d+$/);
      const session = await connect(member);
      try {
        const req = session.request({ ":method": "POST", ":path": "/v3/lease/keepalive" });
        req.write(JSON.stringify({ ID: id }));
        const line = await new Promise<string>((resolve, reject) => {
          let out = "";
          req.on("data", (c: Buffer) => {
            out += c.toString("utf8");
            const nl = out.indexOf("\n");
            if (nl >= 0) resolve(out.slice(0, nl));
          });
          req.on("error", reject);
        });
        const r = JSON.parse(line) as { result: { ID: string; TTL: string } };
        assert.equal(r.result.ID, id);
        assert.equal(r.result.TTL, "30");
        req.close(http2.constants.NGHTTP2_CANCEL);
      } finally {
        session.close();
      }
    });

    test("a 1 MiB value goes up and comes back through a 16 KiB client window", async () => {
      const value = Buffer.alloc(1024 * 1024, 0x61);
      const up = await connect(member);
      try {
        // ~1.4 MB of JSON: more than the server's initial stream window, so it must open it
        const put = await request(
          up,
          "/v3/kv/put",
          JSON.stringify({ key: b64("h2gw-big"), value: b64(value) }),
        );
        assert.equal(put.status, 200, put.body.toString());
      } finally {
        up.close();
      }
      const down = await connect(member, { initialWindowSize: 16 * 1024 });
      try {
        const r = await request(down, "/v3/kv/range", JSON.stringify({ key: b64("h2gw-big") }));
        assert.equal(r.status, 200);
        const kv = (JSON.parse(r.body.toString()) as { kvs: { value: string }[] }).kvs[0];
        assert.ok(Buffer.from(kv.value, "base64").equals(value));
      } finally {
        down.close();
      }
    });

    test("oversized requests get etcd's answers over HTTP/2 and HTTP/1.1 alike", async () => {
      // real etcd 3.4.23: a message over --max-request-bytes (1.5 MiB) is "request is too large"
      // (400); one over the gRPC limit (1.5 MiB + 512 KiB) is RESOURCE_EXHAUSTED with both sizes
      const dir = mkdtempSync(join(tmpdir(), "h2gw-"));
      try {
        const cases = [
          { bytes: 1_700_000, status: 400, code: 3, message: "etcdserver: request is too large" },
          {
            bytes: 2_500_000,
            status: 429,
            code: 8,
            message: "grpc: received message larger than max (2500008 vs. 2097152)",
          },
        ];
        for (const c of cases) {
          const file = join(dir, `${c.bytes}.json`);
          writeFileSync(
            file,
            JSON.stringify({ key: b64("k"), value: b64(Buffer.alloc(c.bytes, 1)) }),
          );
          const h1 = member.tls !== undefined ? ["--http1.1", "--cacert", member.tls.caCert] : [];
          for (const flags of [h2Flags(member), h1]) {
            const r = await curl([
              ...flags,
              "-d",
              `@${file}`,
              "-w",
              "\n%{http_code} %{http_version}",
              member.endpoint + "/v3/kv/put",
            ]);
            assert.equal(r.code, 0, r.stderr);
            const nl = r.stdout.lastIndexOf("\n");
            const [status, version] = r.stdout.slice(nl + 1).split(" ");
            assert.equal(version, flags === h1 ? "1.1" : "2");
            assert.equal(Number(status), c.status, r.stdout.slice(0, 300));
            assert.deepEqual(JSON.parse(r.stdout.slice(0, nl)), {
              error: c.message,
              message: c.message,
              code: c.code,
            });
          }
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test("a body no etcd request could fit is cut short with 429; the connection serves on", async () => {
      const session = await connect(member);
      try {
        const big = JSON.stringify({ key: b64("k"), value: b64(Buffer.alloc(4_000_000, 1)) });
        const r = await request(session, "/v3/kv/put", big);
        assert.equal(r.status, 429);
        const e = JSON.parse(r.body.toString()) as { code: number; message: string };
        assert.equal(e.code, 8);
        assert.match(e.message, /^grpc: received message larger than max/);
        const health = await request(session, "/health");
        assert.equal(health.status, 200);
      } finally {
        session.close();
      }
    });
  });
}

suite(
  "gateway over HTTP/2, cleartext with prior knowledge",
  false,
  TARGET === "etcd"
    ? "real etcd 3.4 resets non-gRPC HTTP/2 streams on cleartext (cmux hands them to grpc-go)"
    : false,
);
suite("gateway over HTTP/2, TLS (ALPN h2)", true, false);

describe("TLS ALPN", { timeout: 60_000 }, () => {
  let member: Member;
  let tls: TlsFiles;
  before(async () => {
    tls = await generateTls();
    member = await startMember({ tls, noTrustedCa: true });
  });
  after(async () => {
    await member?.close();
    rmSync(tls.dir, { recursive: true, force: true });
  });

  test("curl offering h2 and http/1.1 gets h2; --http1.1 still gets HTTP/1.1", async () => {
    const dflt = await curl([
      "--cacert",
      tls.caCert,
      "-w",
      "%{http_version}",
      "-o",
      "/dev/null",
      member.endpoint + "/health",
    ]);
    assert.equal(dflt.stdout, "2");
    const h1 = await curl([
      "--http1.1",
      "--cacert",
      tls.caCert,
      "-w",
      "\n%{http_version}",
      member.endpoint + "/health",
    ]);
    assert.equal(h1.stdout, '{"health":"true"}\n1.1');
  });
});

describe("H2StreamExchange body bounds (lib/h2 without a member)", { timeout: 30_000 }, () => {
  const maxBytes = 4096;
  let server: H2GrpcServer;
  let listener: net.Server;
  let port = 0;
  /** what the test's handler does with each exchange */
  let onExchange: (ex: H2StreamExchange) => void = () => {};

  before(async () => {
    server = new H2GrpcServer(new Map(), {
      onHttpStream: (stream, headers) =>
        onExchange(new H2StreamExchange(stream, headers, maxBytes)),
    });
    listener = net.createServer((socket) => server.handleConnection(socket));
    await new Promise<void>((r) => listener.listen(0, "127.0.0.1", r));
    port = (listener.address() as net.AddressInfo).port;
  });
  after(async () => {
    server.forceClose();
    await new Promise<void>((r) => listener.close(() => r()));
  });

  async function noOpenStreams(): Promise<void> {
    const deadline = Date.now() + settleTimeoutMs;
    while (server.openStreams !== 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(server.openStreams, 0, "streams left open on the server");
  }

  /** Sends `chunks` as the body (one write each, 20 ms apart); resolves with status and reset code. */
  async function upload(
    chunks: Buffer[],
  ): Promise<{ status: number; rstCode: number; body: string }> {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      return await new Promise((resolve, reject) => {
        const req = session.request({ ":method": "POST", ":path": "/x" });
        let status = 0;
        let body = "";
        req.on("response", (h) => (status = Number(h[":status"])));
        req.on("data", (c: Buffer) => (body += c.toString()));
        req.on("close", () => resolve({ status, rstCode: req.rstCode ?? -1, body }));
        req.on("error", () => {});
        session.on("error", reject);
        let i = 0;
        const next = () => {
          if (req.closed || req.destroyed) return;
          if (i === chunks.length) {
            req.end();
            return;
          }
          req.write(chunks[i++]);
          setTimeout(next, 20);
        };
        next();
      });
    } finally {
      session.close();
    }
  }

  test("an answer before the body ends lets the client finish; the stream ends cleanly", async () => {
    onExchange = (ex) => {
      ex.writeHead(404, { "content-type": "text/plain" });
      ex.end("no\n");
    };
    const r = await upload([Buffer.alloc(1000), Buffer.alloc(1000)]);
    assert.equal(r.status, 404);
    assert.equal(r.body, "no\n");
    assert.equal(r.rstCode, http2.constants.NGHTTP2_NO_ERROR);
    await noOpenStreams();
  });

  test("after the answer, more than the bound of further body resets the stream (NO_ERROR)", async () => {
    onExchange = (ex) => {
      ex.writeHead(404, {});
      ex.end("no\n");
    };
    const r = await upload(Array.from({ length: 8 }, () => Buffer.alloc(1500)));
    assert.equal(r.status, 404);
    assert.equal(r.rstCode, http2.constants.NGHTTP2_NO_ERROR);
    await noOpenStreams();
  });

  test("a body the handler has not started reading is held up to the bound, then reset", async () => {
    const started: H2StreamExchange[] = [];
    onExchange = (ex) => started.push(ex); // never reads, never answers
    const r = await upload(Array.from({ length: 4 }, () => Buffer.alloc(1500)));
    assert.equal(r.status, 0);
    assert.equal(r.rstCode, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    assert.equal(started.length, 1);
    await noOpenStreams();
  });

  test("a body read by the handler arrives whole, in order", async () => {
    onExchange = (ex) => {
      const parts: Buffer[] = [];
      ex.readBody(
        (c) => parts.push(c),
        () => {
          const all = Buffer.concat(parts);
          ex.writeHead(200, {});
          ex.end(`${all.length} ${all[0]} ${all[all.length - 1]}`);
        },
      );
    };
    const r = await upload([Buffer.alloc(2000, 1), Buffer.alloc(2000, 2), Buffer.alloc(2000, 3)]);
    assert.equal(r.status, 200);
    assert.equal(r.body, "6000 1 3");
  });
});
