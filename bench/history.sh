#!/bin/bash
# Usage: bench/history.sh [--quick] [--files N,N...] [--dir DIR]
#
# History performance (issue 14), reported, never pass/fail:
#   1. `dbfs snapshot create` latency on volumes of N files (default 10000 and
#      1000000; --quick: 10000), median of 5;
#   2. sequential read of a 256 MiB file (--quick: 64 MiB) through
#      .dbfs/snapshots/S against the live file (cold page cache both times:
#      the file is dropped from the cache with POSIX_FADV_DONTNEED through a
#      fresh open), as a ratio (aim >= 0.8);
#   3. `dbfs diff` and `dbfs log PATH` time as the number of changed files grows
#      (100, 1000, 10000; --quick: 100, 1000), in a tree of 10x that many
#      unchanged files: the cost follows the changes, not the tree;
#   4. space under -o history=1h with bench/space.sh's overwrite workload
#      (--quick size), against no history.
# Machine: prints nproc, memory and the kernel. Environment: BUILD_DIR,
# DBFS_BIN_DIR.
set -euo pipefail
QUICK=0
FILES=""
DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --files) FILES=${2:?}; shift 2 ;;
    --dir) DIR=${2:?}; shift 2 ;;
    *) echo "usage: $0 [--quick] [--files N,N...] [--dir DIR]" >&2; exit 2 ;;
  esac
done
[ -n "$FILES" ] || FILES=$([ "$QUICK" = 1 ] && echo 10000 || echo 10000,1000000)
READ_MB=$([ "$QUICK" = 1 ] && echo 64 || echo 256)
CHANGES=$([ "$QUICK" = 1 ] && echo "100 1000" || echo "100 1000 10000")
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${DBFS_BIN_DIR:-${BUILD_DIR:-$REPO/build}/bin}
for t in mkfs.dbfs dbfs-mount dbfs; do
  [ -x "$BIN/$t" ] || { echo "$BIN/$t not found; build first" >&2; exit 2; }
done
T=$(mktemp -d "${DIR:-${TMPDIR:-/tmp}}/dbfs-history-XXXXXX")
MNT=$T/mnt
mkdir -p "$MNT"
PID=""
cleanup() {
  if awk -v m="$MNT" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; then
    fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
  fi
  if [ -n "$PID" ]; then
    for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null || true
  fi
  rm -rf "$T"
}
trap cleanup EXIT
mounted() { awk -v m="$MNT" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }
mount_new() {  # mount_new OPTS: a fresh volume at $MNT
  rm -rf "$T/vol"
  "$BIN/mkfs.dbfs" -q "$T/vol"
  "$BIN/dbfs-mount" "$T/vol" "$MNT" -f -o "$1" >>"$T/dbfs.log" 2>&1 &
  PID=$!
  for _ in $(seq 200); do mounted && return 0; sleep 0.05; done
  echo "mount failed" >&2
  exit 2
}
unmount() {
  fusermount3 -u "$MNT"
  for _ in $(seq 600); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  wait "$PID" 2>/dev/null || true
  PID=""
}
ms() { python3 -c "import sys; print('%.1f' % (float(sys.argv[1]) / 1e6))" "$1"; }
median5() { sort -n | sed -n 3p; }
HELPER=$T/bench_helper
cc -O2 -pthread -o "$HELPER" "$REPO/bench/bench_helper.c"

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"

echo "== 1. snapshot create latency"
for n in ${FILES//,/ }; do
  mount_new "allow_other"
  mkdir "$MNT/files"
  "$HELPER" create "$MNT/files" "$n" 4 >/dev/null
  for i in 1 2 3 4 5; do
    t0=$(date +%s%N)
    "$BIN/dbfs" snapshot create "s$i" --mount "$MNT" >/dev/null
    echo $(($(date +%s%N) - t0))
  done | median5 | { read -r d; echo "files $n: snapshot create $(ms "$d") ms (median of 5, dbfs process start included)"; }
  unmount
done

echo "== 2. reading a file at a snapshot vs now"
mount_new "allow_other"
head -c "${READ_MB}M" /dev/urandom >"$MNT/big"
"$BIN/dbfs" snapshot create s --mount "$MNT" >/dev/null
head -c 1M /dev/urandom | dd of="$MNT/big" conv=notrunc status=none  # the live file moves on
read_mbs() {  # read_mbs FILE: MiB/s of a cold sequential read
  python3 - "$1" <<'EOF'
import os, sys, time
f = sys.argv[1]
fd = os.open(f, os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
t0 = time.monotonic(); n = 0
while True:
    b = os.read(fd, 1 << 20)
    if not b: break
    n += len(b)
os.close(fd)
print("%.0f" % (n / (1 << 20) / (time.monotonic() - t0)))
EOF
}
now=$(read_mbs "$MNT/big"); snap=$(read_mbs "$MNT/.dbfs/snapshots/s/big")
echo "read ${READ_MB} MiB: now $now MiB/s, snapshot $snap MiB/s, ratio $(python3 -c "print('%.2f' % ($snap / $now))")"
unmount

echo "== 3. diff and log cost against the number of changes (tree of 10x unchanged files)"
for c in $CHANGES; do
  mount_new "allow_other,history=1h"
  mkdir -p "$MNT/tree/still" "$MNT/tree/moving"
  "$HELPER" create "$MNT/tree/still" $((c * 10)) 4 >/dev/null
  "$HELPER" create "$MNT/tree/moving" "$c" 4 >/dev/null
  "$BIN/dbfs" snapshot create before --mount "$MNT" >/dev/null
  for f in "$MNT"/tree/moving/*; do echo x >"$f"; done
  t0=$(date +%s%N)
  lines=$("$BIN/dbfs" diff before now --mount "$MNT" | wc -l)
  d=$(($(date +%s%N) - t0))
  t0=$(date +%s%N)
  "$BIN/dbfs" log "$MNT/tree/moving" --mount "$MNT" --limit 100 >/dev/null
  l=$(($(date +%s%N) - t0))
  echo "changes $c (tree $((c * 11)) files): diff $(ms "$d") ms ($lines lines), log PATH --limit 100 $(ms "$l") ms"
  unmount
done

echo "== 4. space under -o history=1h (bench/space.sh --quick workload)"
for opts in "" "history=1h"; do
  out=$(SPACE_MOUNT_OPTS="$opts" DBFS_BIN_DIR="$BIN" bash "$REPO/bench/space.sh" --quick 2>&1 || true)
  echo "${opts:-no history}: $(echo "$out" | grep -iE 'after|ratio' | tr '\n' ' ')"
done
