#!/bin/bash
# Usage: bench/instructions.sh [--files N] [--mib M] BINDIR [BINDIR...]
#
# Instructions the daemon executes for one fixed workload, per build: each
# BINDIR's dbfs-mount runs under `valgrind --tool=callgrind` while the
# workload runs through its mount — create, stat, rename and unlink N files,
# N/4 files written with 4 KiB and fsync'd, M MiB written sequentially and
# read back cold. Instruction counts do not depend on what else the machine
# is doing, so two builds (before and after a refactor, say) can be compared
# on a busy machine where wall-clock benchmarks are noise. Reported per
# build: total instructions (all daemon threads, start-up and shutdown
# included) and the ratio to the first BINDIR. Counts vary by a little from
# run to run (thread interleavings); differences under ~2 % are noise.
#
# INSTR_KEEP=DIR keeps each build's callgrind output as DIR/N.out (N: its
# position), for callgrind_annotate.
#
# Needs root (FUSE), valgrind and a C compiler. Every mount is unmounted and
# every daemon stopped on every path.
set -euo pipefail
FILES=2000 MIB=16
while [ $# -gt 0 ]; do
  case "$1" in
    --files) FILES=${2:?}; shift 2 ;;
    --mib) MIB=${2:?}; shift 2 ;;
    -*) echo "usage: $0 [--files N] [--mib M] BINDIR [BINDIR...]" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "usage: $0 [--files N] [--mib M] BINDIR [BINDIR...]" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is needed" >&2; exit 2; }
REPO=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d /tmp/dbfs-instr.XXXXXX)
DAEMON=""
MNT=""
cleanup() {
  if [ -n "$MNT" ] && grep -q " $MNT " /proc/mounts; then fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"; fi
  if [ -n "$DAEMON" ]; then kill "$DAEMON" 2>/dev/null || true; wait "$DAEMON" 2>/dev/null || true; fi
  rm -rf "$T"
}
trap cleanup EXIT
cc -O2 -pthread "$REPO/bench/bench_helper.c" -o "$T/helper"

wait_mounted() {
  for _ in $(seq 1 600); do
    grep -q " $1 " /proc/mounts && return 0
    kill -0 "$DAEMON" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

first="" n=0
printf '%-40s %16s %8s\n' build instructions ratio
for bin in "$@"; do
  bin=$(cd "$bin" && pwd)
  vol=$T/vol MNT=$T/mnt
  rm -rf "$vol" "$MNT"; mkdir -p "$MNT"
  "$bin/mkfs.dbfs" "$vol" >/dev/null
  valgrind --tool=callgrind --callgrind-out-file="$T/cg.out" --log-file="$T/vg.log" \
    "$bin/dbfs-mount" "$vol" "$MNT" -f >"$T/daemon.log" 2>&1 &
  DAEMON=$!
  wait_mounted "$MNT" || { echo "instructions.sh: $bin/dbfs-mount did not mount" >&2; cat "$T/daemon.log" >&2; exit 1; }
  d=$MNT/meta; mkdir "$d"
  "$T/helper" create "$d" "$FILES" 1 >/dev/null
  "$T/helper" stat "$d" "$FILES" 1 >/dev/null
  "$T/helper" rename "$d" "$FILES" 1 >/dev/null
  "$T/helper" unlink "$d" "$FILES" 1 >/dev/null
  mkdir "$MNT/sync"; "$T/helper" fsync "$MNT/sync" $((FILES / 4)) 1 >/dev/null
  dd if=/dev/zero of="$MNT/seq" bs=1M count="$MIB" status=none
  echo 3 >/proc/sys/vm/drop_caches
  dd if="$MNT/seq" of=/dev/null bs=1M status=none
  fusermount3 -u "$MNT"
  wait "$DAEMON" || { echo "instructions.sh: daemon of $bin failed" >&2; cat "$T/daemon.log" >&2; exit 1; }
  DAEMON=""
  ir=$(awk '/^summary:/ {print $2}' "$T/cg.out")
  [ -n "$ir" ] || { echo "instructions.sh: no callgrind summary for $bin" >&2; exit 1; }
  [ -n "$first" ] || first=$ir
  n=$((n + 1))
  if [ -n "${INSTR_KEEP:-}" ]; then mkdir -p "$INSTR_KEEP"; cp "$T/cg.out" "$INSTR_KEEP/$n.out"; fi
  printf '%-40s %16s %8s\n' "$bin" "$ir" "$(awk -v a="$ir" -v b="$first" 'BEGIN {printf "%.3f", a / b}')"
done
