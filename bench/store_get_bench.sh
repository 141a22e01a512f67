#!/bin/bash
# Usage: bench/store_get_bench.sh [--build DIR] [--callgrind] [-- BENCH ARGS...]
#
# Builds bench/store_get_bench.cc against the static libraries of a CMake
# build directory (default: build-perf, then build; build the targets
# dbfs_mvcc first) and runs it in both modes:
#   store  mvcc::Store::Get of keys flushed to LMDB (overlay miss)
#   env    kv::Env::BeginRead + ReadTxn::Get
# Default: 10,000 keys, 200,000 point reads, wall time per read.
# --callgrind: runs each mode under valgrind --tool=callgrind, counting only
# the read loop (--toggle-collect), and prints instructions per read plus
# the top inclusive costs. Instruction counts are stable on a loaded
# machine; wall times are not.
#
#   bench/store_get_bench.sh --build build-perf --callgrind
#   bench/store_get_bench.sh -- --threads 2
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD="" CALLGRIND=0
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift ;;
    --callgrind) CALLGRIND=1 ;;
    --) shift; break ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "store_get_bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$BUILD" ]; then
  for d in "$REPO/build-perf" "$REPO/build"; do
    if [ -f "$d/mvcc/libdbfs_mvcc.a" ]; then BUILD=$d; break; fi
  done
fi
case "$BUILD" in /*) ;; *) BUILD="$REPO/$BUILD" ;; esac
for lib in mvcc/libdbfs_mvcc.a wal/libdbfs_wal.a kvstore/libdbfs_kvstore.a; do
  [ -f "$BUILD/$lib" ] || { echo "missing $BUILD/$lib (cmake --build $BUILD --target dbfs_mvcc)" >&2; exit 1; }
done

BIN="$BUILD/bin/store_get_bench"
mkdir -p "$BUILD/bin"
# Same flags as the RelWithDebInfo tree (spdlog/fmt as shared libraries).
c++ -std=c++20 -O2 -g -DNDEBUG -Wall -Wextra -Werror \
  -DFMT_SHARED -DSPDLOG_COMPILED_LIB -DSPDLOG_FMT_EXTERNAL -DSPDLOG_SHARED_LIB \
  -I"$REPO" "$REPO/bench/store_get_bench.cc" -o "$BIN" \
  "$BUILD/mvcc/libdbfs_mvcc.a" "$BUILD/wal/libdbfs_wal.a" "$BUILD/kvstore/libdbfs_kvstore.a" \
  -llmdb -lspdlog -lfmt -pthread

for mode in store env; do
  if [ "$CALLGRIND" = 0 ]; then
    "$BIN" "$mode" "$@"
    continue
  fi
  fn=RunStoreGets
  [ "$mode" = env ] && fn=RunEnvGets
  out=$(mktemp /tmp/store_get_bench.callgrind.XXXXXX)
  valgrind --tool=callgrind --toggle-collect="*$fn*" --callgrind-out-file="$out" \
    "$BIN" "$mode" "$@" 2>/dev/null
  gets=200000
  args=("$@")
  for ((i = 0; i < ${#args[@]}; i++)); do
    [ "${args[$i]}" = --gets ] && gets=${args[$((i + 1))]}
  done
  callgrind_annotate --inclusive=yes "$out" >"$out.txt" 2>/dev/null
  total=$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}' "$out.txt")
  echo "$mode: $total instructions in the read loop, $((total / gets)) per read"
  echo "top inclusive costs (Ir, whole loop):"
  sed -n '/file:function/,$p' "$out.txt" | sed -n '3,32p'
  rm -f "$out" "$out.txt"
done
