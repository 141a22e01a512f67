#!/bin/bash
# Usage: bench/cluster_latency.sh [--build DIR] [-- ARGS...]
#
# Round-trip latencies of the cluster clients (etcd Range/Put/Txn/Watch,
# RADOS write_full/read/stat) on this machine: builds the cluster_latency
# target of a CMake build directory (default: build; needs cluster support,
# tools/install-deps.sh --cluster) and runs it. It brings up its own 3-member
# etcd cluster and 3-OSD Ceph cluster on 127.0.0.1 (tests/cluster/*.sh) and
# stops them at the end. The table goes to stdout and to
# bench/results/cluster_latency-TIMESTAMP.txt, with the machine stated.
# ARGS go to the program: --iterations N (default 300), --etcd-members N,
# --osds N, or --etcd ENDPOINTS / --ceph-conf PATH --pool POOL to measure
# existing clusters. Docs: docs/cluster.md ("Measured latencies").
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$REPO/build"
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift ;;
    --) shift; break ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "cluster_latency.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
case "$BUILD" in /*) ;; *) BUILD="$REPO/$BUILD" ;; esac
[ -f "$BUILD/CMakeCache.txt" ] || { echo "no CMake build in $BUILD" >&2; exit 1; }
cmake --build "$BUILD" -j2 --target cluster_latency >/dev/null ||
  { echo "cannot build cluster_latency (cluster support off? see docs/cluster.md)" >&2; exit 1; }

mkdir -p "$REPO/bench/results"
out="$REPO/bench/results/cluster_latency-$(date +%Y%m%d-%H%M%S).txt"
{
  echo "# $(date -u '+%F %T UTC'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB," \
       "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "# etcd $(etcd --version 2>/dev/null | awk '/etcd Version/ {print $3}')," \
       "ceph $(ceph --version 2>/dev/null | awk '{print $3}'), data under /tmp ($(df -h /tmp | awk 'NR==2 {print $1}'))"
  echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$BUILD/bin/cluster_latency" "$@"
} | tee "$out"
echo "saved to $out" >&2
