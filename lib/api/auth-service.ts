/**
 * The etcdserverpb.Auth service as one table, served by every transport: grpc.ts (grpc-js),
 * h2.ts (lib/h2) and gateway.ts (`POST /v3/auth/…`, etcd 3.4's rpc.proto http options, plus
 * 3.5's /v3/auth/status). Each entry calls EtcdApi.auth (auth.ts) with the call's credentials.
 */
import type { IMessageType } from "@protobuf-ts/runtime";
import * as rpc from "../proto/gen/etcdserverpb/rpc.js";
import type { EtcdApi } from "./handlers.js";
import type { CallAuth } from "./auth.js";

/** A message type as the transports need it: binary for gRPC, JSON for the gateway. */
interface Codec<T> {
  readonly fields: IMessageType<object>["fields"];
  fromBinary(bytes: Uint8Array): T;
  toBinary(message: T): Uint8Array;
  fromJson(json: unknown, options?: object): T;
  toJson(message: T, options?: object): unknown;
}

/** One Auth method. */
export interface AuthMethod {
  /** the grpc-js service implementation key, e.g. "userAdd" */
  name: string;
  /** the gRPC path, e.g. "/etcdserverpb.Auth/UserAdd" */
  path: string;
  /** the gateway path after /v3/, e.g. "auth/user/add" */
  gatewayPath: string;
  request: Codec<unknown>;
  response: Codec<unknown>;
  call(api: EtcdApi, req: unknown, auth: CallAuth | undefined): Promise<unknown>;
}

function method<Req, Res>(
  rpcName: string,
  gatewayPath: string,
  request: Codec<Req>,
  response: Codec<Res>,
  call: (api: EtcdApi, req: Req, auth: CallAuth | undefined) => Promise<Res>,
): AuthMethod {
  return {
    name: rpcName[0]!.toLowerCase() + rpcName.slice(1),
    path: `/etcdserverpb.Auth/${rpcName}`,
    gatewayPath,
    request: request as Codec<unknown>,
    response: response as Codec<unknown>,
    call: call as AuthMethod["call"],
  };
}

/** Every Auth method (etcd 3.4's, and 3.5's AuthStatus). */
export const authMethods: readonly AuthMethod[] = [
  method("AuthEnable", "auth/enable", rpc.AuthEnableRequest, rpc.AuthEnableResponse, (a, _r, c) =>
    a.auth.authEnable(c),
  ),
  method(
    "AuthDisable",
    "auth/disable",
    rpc.AuthDisableRequest,
    rpc.AuthDisableResponse,
    (a, _r, c) => a.auth.authDisable(c),
  ),
  method("AuthStatus", "auth/status", rpc.AuthStatusRequest, rpc.AuthStatusResponse, (a, _r, c) =>
    a.auth.authStatus(c),
  ),
  method(
    "Authenticate",
    "auth/authenticate",
    rpc.AuthenticateRequest,
    rpc.AuthenticateResponse,
    (a, r) => a.auth.authenticate(r),
  ),
  method("UserAdd", "auth/user/add", rpc.AuthUserAddRequest, rpc.AuthUserAddResponse, (a, r, c) =>
    a.auth.userAdd(r, c),
  ),
  method("UserGet", "auth/user/get", rpc.AuthUserGetRequest, rpc.AuthUserGetResponse, (a, r, c) =>
    a.auth.userGet(r, c),
  ),
  method(
    "UserList",
    "auth/user/list",
    rpc.AuthUserListRequest,
    rpc.AuthUserListResponse,
    (a, _r, c) => a.auth.userList(c),
  ),
  method(
    "UserDelete",
    "auth/user/delete",
    rpc.AuthUserDeleteRequest,
    rpc.AuthUserDeleteResponse,
    (a, r, c) => a.auth.userDelete(r, c),
  ),
  method(
    "UserChangePassword",
    "auth/user/changepw",
    rpc.AuthUserChangePasswordRequest,
    rpc.AuthUserChangePasswordResponse,
    (a, r, c) => a.auth.userChangePassword(r, c),
  ),
  method(
    "UserGrantRole",
    "auth/user/grant",
    rpc.AuthUserGrantRoleRequest,
    rpc.AuthUserGrantRoleResponse,
    (a, r, c) => a.auth.userGrantRole(r, c),
  ),
  method(
    "UserRevokeRole",
    "auth/user/revoke",
    rpc.AuthUserRevokeRoleRequest,
    rpc.AuthUserRevokeRoleResponse,
    (a, r, c) => a.auth.userRevokeRole(r, c),
  ),
  method("RoleAdd", "auth/role/add", rpc.AuthRoleAddRequest, rpc.AuthRoleAddResponse, (a, r, c) =>
    a.auth.roleAdd(r, c),
  ),
  method("RoleGet", "auth/role/get", rpc.AuthRoleGetRequest, rpc.AuthRoleGetResponse, (a, r, c) =>
    a.auth.roleGet(r, c),
  ),
  method(
    "RoleList",
    "auth/role/list",
    rpc.AuthRoleListRequest,
    rpc.AuthRoleListResponse,
    (a, _r, c) => a.auth.roleList(c),
  ),
  method(
    "RoleDelete",
    "auth/role/delete",
    rpc.AuthRoleDeleteRequest,
    rpc.AuthRoleDeleteResponse,
    (a, r, c) => a.auth.roleDelete(r, c),
  ),
  method(
    "RoleGrantPermission",
    "auth/role/grant",
    rpc.AuthRoleGrantPermissionRequest,
    rpc.AuthRoleGrantPermissionResponse,
    (a, r, c) => a.auth.roleGrantPermission(r, c),
  ),
  method(
    "RoleRevokePermission",
    "auth/role/revoke",
    rpc.AuthRoleRevokePermissionRequest,
    rpc.AuthRoleRevokePermissionResponse,
    (a, r, c) => a.auth.roleRevokePermission(r, c),
  ),
];
