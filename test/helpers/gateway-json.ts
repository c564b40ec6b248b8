// The JSON shapes etcd's grpc-gateway answers with (proto field names, int64 as strings, bytes as
// base64), for the curl tests of the gateway.

/** base64 of a string's UTF-8 bytes, as the gateway takes bytes fields. */
export const b64 = (s: string): string => Buffer.from(s).toString("base64");

/** The string a base64 bytes field holds ("" when the field is left out). */
export const unb64 = (s: string | undefined): string => Buffer.from(s ?? "", "base64").toString();

/** etcdserverpb.ResponseHeader as JSON (revision is left out where etcd sets none). */
export interface Header {
  cluster_id: string;
  member_id: string;
  revision: string;
  raft_term: string;
}

/** mvccpb.KeyValue as JSON. */
export interface KV {
  key: string;
  value?: string;
  create_revision: string;
  mod_revision: string;
  version: string;
  lease?: string;
}
