#!/bin/bash
# Usage: bench/recovery.sh [--quick] [--bin DIR] [--sizes "16 64 256"] [--dir DIR]
#
# Recovery time against the size of the WAL to replay (issue 4, "Recovery").
# For each kind of workload and each size S (MiB of WAL):
#
#   meta  small metadata commits: 4 threads cycling create, chmod, rename,
#         unlink (one commit each, a few hundred bytes of WAL)
#   data  1 MiB writes (one commit each: a 1 MiB DATA record + its COMMIT)
#
# it fills a fresh volume with S MiB of WAL, SIGKILLs the daemon, and mounts
# again twice, on two copies of the crashed volume:
#
#   kill  the volume as the crash left it. The background flusher copies the
#         overlay to LMDB every 200 ms (or at 64 MiB), so what is left to
#         replay is the last moments before the kill, whatever the WAL size.
#   full  LMDB rolled back to its state before the fill (taken right after
#         mkfs): the crash of a daemon whose flusher never ran. Recovery
#         replays all S MiB. This is how recovery grows with the WAL it has
#         to replay (un-checkpointed commits).
#
# Reported per mount: commits replayed and recovery time as the daemon logs
# them ("recovery: replayed N commits (M records) ... X ms", also in `dbfs
# stats` as recovery_micros), and the wall time from starting dbfs-mount
# until it returns (it daemonizes once the mount is live).
#
# --quick: sizes 4 and 16 MiB. Default sizes: 16 64 256. The volumes live in
# --dir (default: a temp dir under /var/tmp, a disk).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
QUICK=0 BIN="" SIZES="" BASE=/var/tmp
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --bin) BIN=$2; shift ;;
    --sizes) SIZES=$2; shift ;;
    --dir) BASE=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "recovery.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$SIZES" ]; then
  if [ $QUICK = 1 ]; then SIZES="4 16"; else SIZES="16 64 256"; fi
fi
if [ -z "$BIN" ]; then
  for d in "${BUILD_DIR:-}/bin" "$REPO/build/bin" "$REPO"/build-*/bin; do
    if [ -x "$d/mkfs.dbfs" ] && [ -x "$d/dbfs-mount" ] && [ -x "$d/dbfs" ]; then BIN=$d; break; fi
  done
fi
[ -n "$BIN" ] && [ -x "$BIN/dbfs-mount" ] || { echo "recovery.sh: no DBFS build found (use --bin DIR)" >&2; exit 2; }
BIN=$(cd "$BIN" && pwd)
[ "$(id -u)" = 0 ] || { echo "recovery.sh: run as root (FUSE mounts)" >&2; exit 2; }
command -v cc >/dev/null || { echo "recovery.sh: needs cc" >&2; exit 2; }

TMP=$(mktemp -d "$BASE/dbfs-recovery.XXXXXX")
MNT=$TMP/mnt
mkdir -p "$MNT"
PID=""  # the daemon serving $MNT

is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }
# wait_until TIMEOUT_S CMD...: bounded poll.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.02
  done
}
pid_gone() { ! kill -0 "$1" 2>/dev/null; }
cleanup() {
  set +e
  if is_mounted "$MNT"; then fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"; fi
  if [ -n "$PID" ]; then
    wait_until 30 pid_gone "$PID" || kill -9 "$PID" 2>/dev/null
  fi
  rm -rf --one-file-system "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
now_ms() { date +%s%3N; }

# The metadata workload: THREADS threads, each cycling create, chmod,
# rename, unlink on its own names (one commit each), OPS operations in all.
cat >"$TMP/meta.c" <<'EOF'
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
static const char* dir;
static long ops;
static int threads;
static void* run(void* arg) {
  long t = (long)arg, cycles = ops / 4 / threads;
  char a[4096], b[4096];
  for (long i = 0; i < cycles; ++i) {
    snprintf(a, sizeof a, "%s/t%ld-file-%ld", dir, t, i % 64);
    snprintf(b, sizeof b, "%s/t%ld-renamed-%ld", dir, t, i % 64);
    int fd = open(a, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0 || close(fd) != 0) { perror(a); exit(1); }
    if (chmod(a, 0600) != 0) { perror(a); exit(1); }
    if (rename(a, b) != 0) { perror(a); exit(1); }
    if (unlink(b) != 0) { perror(b); exit(1); }
  }
  return NULL;
}
int main(int argc, char** argv) {
  if (argc != 4) { fprintf(stderr, "usage: meta DIR OPS THREADS\n"); return 2; }
  dir = argv[1];
  ops = atol(argv[2]);
  threads = atoi(argv[3]);
  pthread_t th[64];
  for (long t = 0; t < threads; ++t) pthread_create(&th[t], NULL, run, (void*)t);
  for (int t = 0; t < threads; ++t) pthread_join(th[t], NULL);
  return 0;
}
EOF
cc -O2 -pthread "$TMP/meta.c" -o "$TMP/meta"

stat_of() { # stat_of NAME: one counter of `dbfs stats` on $MNT
  "$BIN/dbfs" stats --mount "$MNT" | awk -v k="$1" '$1 == k { gsub(/[^0-9]/, "", $NF); print $NF }'
}

# mount VOL: dbfs-mount in the background (it returns once the mount is
# live); sets PID and MOUNT_MS (wall time of the dbfs-mount command).
mount_vol() {
  local vol=$1 t0 t1
  t0=$(now_ms)
  "$BIN/dbfs-mount" "$vol" "$MNT" -o allow_other >>"$TMP/mount.out" 2>&1 ||
    { echo "recovery.sh: dbfs-mount $vol failed:" >&2; tail -5 "$TMP/mount.out" "$vol/dbfs.log" >&2; return 1; }
  t1=$(now_ms)
  MOUNT_MS=$((t1 - t0))
  is_mounted "$MNT" || { echo "recovery.sh: dbfs-mount returned before the mount was live" >&2; return 1; }
  # The daemon's pid: the volume lock file holds "PID dbfs-mount".
  wait_until 10 test -s "$vol/lock" || { echo "recovery.sh: no pid in $vol/lock" >&2; return 1; }
  PID=$(awk '{ print $1; exit }' "$vol/lock")
}
unmount_vol() {
  fusermount3 -u "$MNT"
  wait_until 120 pid_gone "$PID" || { echo "recovery.sh: daemon $PID did not exit" >&2; return 1; }
  PID=""
}
kill_vol() {
  kill -9 "$PID"
  wait_until 30 pid_gone "$PID" || { echo "recovery.sh: daemon $PID survived SIGKILL" >&2; return 1; }
  PID=""
  fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
}

# fill KIND MIB: S MiB of WAL on the mounted volume.
fill() {
  local kind=$1 mib=$2 target w0 w per ops
  target=$((mib * 1048576))
  w0=$(stat_of wal_bytes)
  if [ "$kind" = data ]; then
    # MIB writes of 1 MiB, into files of 16 MiB.
    local i
    for ((i = 0; i < mib; i++)); do
      dd if=/dev/urandom of="$MNT/data$((i / 16))" bs=1M count=1 seek=$((i % 16)) conv=notrunc \
        status=none
    done
  else
    mkdir -p "$MNT/m"
    # Calibrate: WAL bytes per metadata commit.
    "$TMP/meta" "$MNT/m" 4000 4
    w=$(($(stat_of wal_bytes) - w0))
    per=$((w / 4000))
    ops=$(((target - w) / per + 4000))
    "$TMP/meta" "$MNT/m" "$ops" 4
  fi
  FILLED=$(($(stat_of wal_bytes) - w0))
}

# recover VOL: mounts, reads what the daemon says about recovery, unmounts.
recover() {
  local vol=$1 line
  mount_vol "$vol"
  REPLAYED=$(stat_of recovery_commits_replayed)
  local us
  us=$(stat_of recovery_micros)
  STATS_MS=$(awk -v u="${us:-0}" 'BEGIN { printf "%.1f", u / 1000 }')
  line=$(grep "recovery: replayed" "$vol/dbfs.log" 2>/dev/null | tail -1 || true)
  LOG_MS=$(sed -n 's/.* \([0-9.]*\) ms$/\1/p' <<<"$line")
  RECORDS=$(sed -n 's/.*commits (\([0-9]*\) records).*/\1/p' <<<"$line")
  [ -n "$LOG_MS" ] || LOG_MS="-"
  [ -n "$RECORDS" ] || RECORDS="-"
  unmount_vol
}

ROWS=()
row() { ROWS+=("$(printf '| %-4s | %7s | %7s | %-4s | %9s | %9s | %13s | %12s | %13s |' "$@")"); }
echo "recovery.sh: $(nproc) CPUs, $(free -g | awk '/Mem:/ { print $2 }') GiB RAM, volumes in $(df --output=fstype "$TMP" | tail -1) ($TMP), binaries $BIN" >&2

for kind in meta data; do
  for mib in $SIZES; do
    vol=$TMP/vol
    rm -rf "$vol" "$TMP/crash"
    "$BIN/mkfs.dbfs" -q "$vol"
    cp -a "$vol/meta" "$TMP/meta.mkfs"  # LMDB before any commit
    mount_vol "$vol"
    t0=$(now_ms)
    fill "$kind" "$mib"
    t1=$(now_ms)
    commits=$(stat_of commits)
    echo "recovery.sh: $kind $mib MiB: $((FILLED / 1048576)) MiB of WAL, $commits commits in $((t1 - t0)) ms; SIGKILL" >&2
    kill_vol
    rm -f "$vol/dbfs.log"
    cp -a "$vol" "$TMP/crash"
    # kill: as the crash left it.
    recover "$vol"
    row "$kind" "$mib" "$((FILLED / 1048576))" kill "$REPLAYED" "$RECORDS" "$LOG_MS" "$STATS_MS" "$MOUNT_MS"
    # full: LMDB from before the fill, every commit to replay.
    rm -rf "$vol"
    mv "$TMP/crash" "$vol"
    rm -rf "$vol/meta"
    cp -a "$TMP/meta.mkfs" "$vol/meta"
    if recover "$vol"; then
      row "$kind" "$mib" "$((FILLED / 1048576))" full "$REPLAYED" "$RECORDS" "$LOG_MS" "$STATS_MS" "$MOUNT_MS"
    else
      row "$kind" "$mib" "$((FILLED / 1048576))" full "mount failed" "" "" "" ""
    fi
    rm -rf "$TMP/meta.mkfs"
  done
done

echo
echo "DBFS recovery time ($(date +%F), $(nproc) CPUs, $(df --output=fstype "$TMP" | tail -1))"
echo
printf '| %-4s | %7s | %7s | %-4s | %9s | %9s | %13s | %12s | %13s |\n' kind "size" "WAL MiB" mode commits records "recovery ms" "stats ms" "mount wall ms"
echo "|------|---------|---------|------|-----------|-----------|---------------|--------------|---------------|"
printf '%s\n' "${ROWS[@]}"
echo
echo "kill: the volume as SIGKILL left it (the flusher had copied all but the last moments to LMDB)."
echo "full: LMDB rolled back to before the fill: the whole WAL is replayed."
echo "recovery ms: the daemon's log line (\"-\": nothing replayed, so no line); stats ms: dbfs stats recovery_micros"
echo "(the whole of Store::Recover: WAL scan, replay, the flush into LMDB); mount wall ms: dbfs-mount until the mount is live."
