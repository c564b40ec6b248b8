/**
 * Version strings reported by `/version` and `Maintenance.Status`.
 * `etcdserver` is the etcd API version we implement (clients such as etcdctl gate features on it);
 * `etcdcluster` is the cluster version etcd 3.4 reports.
 */
export const serverVersion = "3.4.23";
export const clusterVersion = "3.4.0";
export const etcdTsVersion = "0.1.0";
