/**
 * The run-time failpoint endpoint, gofail's HTTP interface (runtime/http.go) under a path prefix
 * on the member's client port (lib/api serves it only when `--experimental-failpoints-http` is
 * on; etcd builds it with GOFAIL_HTTP on a port of its own):
 *
 *     GET    /debug/failpoints               every point, "name=terms" per line (empty when unset)
 *     GET    /debug/failpoints/<name>        its terms
 *     GET    /debug/failpoints/<name>/count  times a term ran since it was set
 *     PUT    /debug/failpoints/<name>        body: terms; 204
 *     DELETE /debug/failpoints/<name>        unset; 204
 *
 * Errors are plain text as gofail's: 400 for terms that do not parse or an unsupported action,
 * 404 for an unknown point, 405 for another method.
 *
 * A PUT takes effect after its answer is handed to the socket (`apply` runs once the caller has
 * written it), so `panic` set on a busy point still answers the client first, as gofail flushes
 * before it unlocks.
 */
import { FailpointError, FailpointUnknownError } from "./errors.js";
import { failpointNames } from "./points.js";
import {
  clearFailpoint,
  failpointCount,
  failpointTerms,
  setFailpoint,
  validateFailpoint,
} from "./runtime.js";

/** The path prefix of the endpoint. */
export const FAILPOINTS_HTTP_PATH = "/debug/failpoints";

/** The answer to one request; `apply` (when present) is run after the answer is written. */
export interface FailpointHttpAnswer {
  status: number;
  body: string;
  headers: Record<string, string>;
  apply?: () => void;
}

const text = { "content-type": "text/plain; charset=utf-8" };

function answer(status: number, body: string, headers: Record<string, string> = text) {
  return { status, body, headers };
}

function errorAnswer(err: unknown, what: string): FailpointHttpAnswer {
  if (!(err instanceof FailpointError)) throw err;
  const status = err instanceof FailpointUnknownError ? 404 : 400;
  return answer(status, `${what}: ${err.message}\n`);
}

/**
 * Answers one request to the endpoint. `path` is the URL path (starting with
 * FAILPOINTS_HTTP_PATH), `body` the request body (PUT). Never throws for bad input.
 */
export function serveFailpointHttp(
  method: string,
  path: string,
  body: string,
): FailpointHttpAnswer {
  const rest = path.slice(FAILPOINTS_HTTP_PATH.length).replace(/^\/+/, "");
  if (rest === "") {
    if (method !== "GET") return answer(405, "Method not allowed\n", { ...text, allow: "GET" });
    const lines = failpointNames().map((n) => `${n}=${failpointTerms(n)}`);
    return answer(200, `${lines.join("\n")}\n`);
  }
  const countSuffix = "/count";
  try {
    if (method === "GET" && rest.endsWith(countSuffix)) {
      return answer(200, String(failpointCount(rest.slice(0, -countSuffix.length))));
    }
    switch (method) {
      case "GET":
        return answer(200, `${failpointTerms(rest)}\n`);
      case "PUT":
        validateFailpoint(rest, body);
        return { ...answer(204, "", {}), apply: () => setFailpoint(rest, body) };
      case "DELETE":
        clearFailpoint(rest);
        return answer(204, "", {});
      default:
        return answer(405, "Method not allowed\n", { ...text, allow: "GET, PUT, DELETE" });
    }
  } catch (err) {
    return errorAnswer(err, `failed to ${method} failpoint ${rest}`);
  }
}
