#!/usr/bin/env bash
# Runs a command with a throwaway 3-member etcd cluster (with the limits DBFS
# needs) and a 3-OSD Ceph cluster on 127.0.0.1, and with
#   DBFS_TEST_CLUSTER_META=etcd://H:P,H:P,H:P
#   DBFS_TEST_CLUSTER_DATA=rados://POOL?conf=PATH
# in its environment, so the integration fixture (tests/integration/
# mount_fixture.h) makes every test volume a cluster volume there. Both
# clusters are stopped (by pid, through their scripts) on every path.
#
#   with_clusters.sh CMD [ARGS...]     exits with CMD's status
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[[ $# -ge 1 ]] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
etcd_dir=$(mktemp -d /tmp/dbfs-etcd-XXXXXX)
ceph_dir=$(mktemp -d /tmp/dbfs-ceph-XXXXXX)
watcher=
cleanup() {
  [[ -z $watcher ]] || kill "$watcher" 2>/dev/null || true
  bash "$here/ceph_cluster.sh" stop "$ceph_dir" || true
  bash "$here/etcd_cluster.sh" stop "$etcd_dir" || true
  [[ -n ${DBFS_TEST_KEEP:-} ]] || rm -rf "$etcd_dir" "$ceph_dir"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP
# Should this script be SIGKILLed (a ctest timeout), a watcher stops the
# clusters once it is gone.
me=$$
(
  while [[ -e /proc/$me && $(awk '{print $3}' "/proc/$me/stat" 2>/dev/null) != Z ]]; do sleep 1; done
  bash "$here/ceph_cluster.sh" stop "$ceph_dir" >/dev/null 2>&1 || true
  bash "$here/etcd_cluster.sh" stop "$etcd_dir" >/dev/null 2>&1 || true
) </dev/null >/dev/null 2>&1 &
watcher=$!
bash "$here/etcd_cluster.sh" start "$etcd_dir" 3 --dbfs-limits
bash "$here/ceph_cluster.sh" start "$ceph_dir" 3
# shellcheck disable=SC1091
. "$etcd_dir/env"
# shellcheck disable=SC1091
. "$ceph_dir/env"
export DBFS_TEST_CLUSTER_META="etcd://$ETCD_ENDPOINTS"
export DBFS_TEST_CLUSTER_DATA="rados://$CEPH_POOL?conf=$CEPH_CONF"
rc=0
"$@" || rc=$?
exit "$rc"
