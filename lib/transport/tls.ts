/**
 * Peer TLS as etcd 3.4 configures it from --peer-cert-file, --peer-key-file,
 * --peer-trusted-ca-file, --peer-client-cert-auth and --peer-cert-allowed-cn
 * (pkg/transport/listener.go TLSInfo): one certificate serves both as the server certificate of
 * the peer listener and the client certificate when dialing peers; the listener asks for and
 * verifies a client certificate when a trusted CA or client-cert-auth is given (TLSInfo.
 * ServerConfig); an allowed CN is checked on the verified certificate of the other side in both
 * directions (etcd sets VerifyPeerCertificate in baseConfig, shared by server and client).
 */
import { readFileSync } from "node:fs";
import tls from "node:tls";
import { PeerTlsConfigError, PeerUrlError } from "./errors.js";

/** The --peer-* TLS flags. Empty strings mean "not given", as etcd's flags. */
export interface PeerTlsFiles {
  /** --peer-cert-file: PEM certificate (chain) of this member. */
  certFile: string;
  /** --peer-key-file: PEM private key of certFile. */
  keyFile: string;
  /** --peer-trusted-ca-file: PEM CA bundle peers' certificates must chain to. */
  trustedCaFile: string;
  /** --peer-client-cert-auth: the listener requires and verifies client certificates. */
  clientCertAuth: boolean;
  /** --peer-cert-allowed-cn: the other side's certificate must have this subject CN. */
  allowedCn: string;
}

/** Loaded peer TLS material, ready for node:tls. */
export interface PeerTls {
  /** Options for tls.createServer on the peer listener. */
  readonly server: tls.TlsOptions;
  /** Options for tls.connect to a peer (host, port and servername are added per dial). */
  readonly client: tls.ConnectionOptions;
  /** True when the listener requires and verifies client certificates. */
  readonly verifiesClientCerts: boolean;
  /** "" when any CN is accepted. */
  readonly allowedCn: string;
}

/** A parsed peer or listen URL. */
export interface PeerUrl {
  readonly url: string;
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
}

/**
 * Parses an etcd peer URL: http://host:port or https://host:port, no path. The port is required,
 * as etcd's types.NewURLs requires host:port. Throws PeerUrlError.
 */
export function parsePeerUrl(url: string): PeerUrl {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new PeerUrlError(url, "not a URL");
  }
  if (u.protocol !== "http:" && u.protocol !== "https:")
    throw new PeerUrlError(url, "peer URLs must be http:// or https://");
  if (u.port === "") throw new PeerUrlError(url, "missing port in address");
  if (u.pathname !== "/" && u.pathname !== "")
    throw new PeerUrlError(url, "peer URLs must not have a path");
  // URL keeps IPv6 hosts in brackets; node:net wants them bare.
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  return { url, secure: u.protocol === "https:", host, port: Number(u.port) };
}

function readPem(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new PeerTlsConfigError(`cannot read ${flag} ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * Reads the files named by the flags. Returns undefined when neither a certificate nor a key is
 * given (etcd's TLSInfo.Empty(): peer TLS off; https:// peer URLs are then refused by
 * requirePeerTls). Throws PeerTlsConfigError when only one of the two is given, a file cannot be
 * read, or the certificate, key and CA do not load together.
 */
export function loadPeerTls(files: PeerTlsFiles | undefined): PeerTls | undefined {
  if (files === undefined || (files.certFile === "" && files.keyFile === "")) return undefined;
  if (files.certFile === "" || files.keyFile === "") {
    throw new PeerTlsConfigError(
      `KeyFile and CertFile must both be present[key: ${files.keyFile}, cert: ${files.certFile}] ` +
        "(--peer-key-file, --peer-cert-file)",
    );
  }
  const cert = readPem("--peer-cert-file", files.certFile);
  const key = readPem("--peer-key-file", files.keyFile);
  const ca =
    files.trustedCaFile === "" ? undefined : readPem("--peer-trusted-ca-file", files.trustedCaFile);
  try {
    tls.createSecureContext({ cert, key, ca });
  } catch (err) {
    throw new PeerTlsConfigError(
      `peer TLS files do not load (cert ${files.certFile}, key ${files.keyFile}` +
        `${ca === undefined ? "" : `, CA ${files.trustedCaFile}`}): ${(err as Error).message}`,
      { cause: err },
    );
  }
  const verifiesClientCerts = files.trustedCaFile !== "" || files.clientCertAuth;
  return {
    server: {
      cert,
      key,
      ...(ca === undefined ? {} : { ca }),
      requestCert: verifiesClientCerts,
      rejectUnauthorized: verifiesClientCerts,
      minVersion: "TLSv1.2",
    },
    client: {
      cert,
      key,
      ...(ca === undefined ? {} : { ca }),
      rejectUnauthorized: true,
      minVersion: "TLSv1.2",
    },
    verifiesClientCerts,
    allowedCn: files.allowedCn,
  };
}

/**
 * Throws PeerTlsConfigError when `url` is https:// and peer TLS is not configured (etcd:
 * "cannot listen on TLS for …: KeyFile and CertFile are not presented").
 */
export function requirePeerTls(url: PeerUrl, peerTls: PeerTls | undefined, role: string): void {
  if (!url.secure || peerTls !== undefined) return;
  throw new PeerTlsConfigError(
    `cannot use TLS for ${role} ${url.url}: KeyFile and CertFile are not presented ` +
      "(https:// peer URLs need --peer-cert-file and --peer-key-file)",
  );
}

/**
 * Checks the other side's certificate against --peer-cert-allowed-cn. Returns undefined when
 * allowed (or no CN is configured), else the reason to refuse.
 */
export function checkAllowedCn(socket: tls.TLSSocket, allowedCn: string): string | undefined {
  if (allowedCn === "") return undefined;
  const cert = socket.getPeerCertificate();
  if (cert === null || cert === undefined || Object.keys(cert).length === 0)
    return `no certificate presented; --peer-cert-allowed-cn=${allowedCn} requires one`;
  const raw: unknown = cert.subject?.CN;
  const cn = Array.isArray(raw) ? raw.join(",") : typeof raw === "string" ? raw : "";
  if (cn === allowedCn) return undefined;
  return `certificate CN ${JSON.stringify(cn)} is not the allowed CN ${JSON.stringify(allowedCn)} (--peer-cert-allowed-cn)`;
}
