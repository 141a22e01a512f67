#!/bin/bash
# Usage: bench/elle.sh [--quick] [--dir DIR] [--keep]
#
# The Elle list-append verification of DBFS (docs/elle.md), at full size:
#   1. 200 clients x 50,000 transactions over the protocol (dbfs elle run),
#      serializable, on a fresh volume;
#   2. the same with the kill nemesis: durable commits, the daemon SIGKILLed
#      and the volume remounted 5 times during the run, checked for strict
#      serializability (an acknowledged commit lost in a kill is an anomaly).
# Each run gets a fresh volume that `dbfs elle run --volume` mounts and
# unmounts itself; fsck.dbfs -n checks the volume afterwards. Prints each
# verdict with committed/aborted/info counts and commits/s, then a summary.
# --quick: 20 clients x 2,000 transactions, 2 kills (a few seconds).
# --dir DIR: where the temporary directory goes (default $TMPDIR or /tmp);
# --keep: keep it (histories, outputs, daemon logs; also kept on failure).
#
# Exit 0 when every run is valid, 1 when one shows anomalies, 2 on errors.
# Environment: BUILD_DIR (default <repo>/build), DBFS_BIN_DIR (default
# $BUILD_DIR/bin), ELLE_MOUNT_OPTS (dbfs-mount -o for both runs).
set -euo pipefail
QUICK=0
KEEP=0
BASE=${TMPDIR:-/tmp}
usage() {
  echo "usage: $0 [--quick] [--dir DIR] [--keep]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --keep) KEEP=1; shift ;;
    --dir) BASE=${2:?--dir needs a value}; shift 2 ;;
    *) usage ;;
  esac
done
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$REPO/build}
BIN=${DBFS_BIN_DIR:-$BUILD/bin}
for tool in dbfs dbfs-mount mkfs.dbfs; do
  if [ ! -x "$BIN/$tool" ]; then
    echo "$BIN/$tool not found; build it first:" >&2
    echo "  cmake -S $REPO -B $BUILD && cmake --build $BUILD -j2 --target dbfs dbfs_mount mkfs_dbfs fsck_dbfs" >&2
    exit 2
  fi
done
[ "$(id -u)" = 0 ] || { echo "$0: mounting needs root" >&2; exit 2; }
if [ "$QUICK" = 1 ]; then
  CLIENTS=20 OPS=2000 KILLS=2
else
  CLIENTS=200 OPS=50000 KILLS=5
fi

T=$(mktemp -d "$BASE/dbfs-elle-XXXXXX")
RUNNER_PID=""
MOUNTS=()
is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }
# wait_until TIMEOUT_S CMD...: polls CMD every 50 ms until it succeeds.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  while ! "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}
pid_gone() { ! kill -0 "$1" 2>/dev/null; }
not_mounted() { ! is_mounted "$1"; }

cleanup() {
  local rc=$?
  set +e
  if [ -n "$RUNNER_PID" ]; then
    # The runner's daemon gets SIGTERM when the runner dies (PR_SET_PDEATHSIG)
    # and unmounts by itself.
    kill -TERM "$RUNNER_PID" 2>/dev/null
    wait_until 30 pid_gone "$RUNNER_PID" || kill -KILL "$RUNNER_PID" 2>/dev/null
    wait "$RUNNER_PID" 2>/dev/null
  fi
  local m
  for m in "${MOUNTS[@]}"; do
    wait_until 30 not_mounted "$m" && continue
    fusermount3 -u "$m" 2>/dev/null
    is_mounted "$m" && umount -l "$m" 2>/dev/null
    wait_until 10 not_mounted "$m" || echo "$0: could not unmount $m" >&2
  done
  if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then
    echo "kept $T" >&2
  else
    rm -rf --one-file-system "$T"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RESULTS=()
WORST=0
# run NAME ARGS...: one `dbfs elle run` on a fresh volume mounted by the runner.
run() {
  local name=$1
  shift
  local dir=$T/$name
  mkdir -p "$dir/mnt"
  "$BIN/mkfs.dbfs" -q "$dir/volume"
  MOUNTS+=("$dir/mnt")
  local opts=()
  [ -n "${ELLE_MOUNT_OPTS:-}" ] && opts=(--mount-opts "$ELLE_MOUNT_OPTS")
  echo "== $name: dbfs elle run --clients $CLIENTS --ops $OPS $*" >&2
  local rc=0
  "$BIN/dbfs" elle run --volume "$dir/volume" --mount "$dir/mnt" --mount-bin "$BIN/dbfs-mount" \
    "${opts[@]}" --clients "$CLIENTS" --ops "$OPS" --out "$dir/history.edn" "$@" \
    >"$dir/run.out" 2>"$dir/run.err" &
  RUNNER_PID=$!
  wait "$RUNNER_PID" || rc=$?
  RUNNER_PID=""
  grep -E '^(elle run:|committed |nemesis:|;; (VALID|INVALID))' "$dir/run.out" >&2 || true
  cat "$dir/run.err" >&2
  if [ "$rc" -ge 2 ] || ! grep -q '^committed ' "$dir/run.out"; then
    echo "$name: dbfs elle run failed (exit $rc); daemon log: $dir/history.edn.daemon.log" >&2
    exit 2
  fi
  local fsck="skipped"
  if [ -x "$BIN/fsck.dbfs" ]; then
    if "$BIN/fsck.dbfs" -n "$dir/volume" >"$dir/fsck.out" 2>&1; then fsck="clean"; else fsck="DAMAGED"; fi
  fi
  local verdict anomalies
  verdict=$(sed -n 's/^{:valid? \([a-z]*\).*/\1/p' "$dir/run.out" | head -1)
  anomalies=$(sed -n 's/^ :anomaly-types \[\(.*\)\]/\1/p' "$dir/run.out" | head -1)
  local line
  line=$(sed -n 's/^committed \([0-9]*\), aborted \([0-9]*\), unknown (info) \([0-9]*\), \([0-9]*\) commits\/s over \([0-9.]*\) s$/\1 \2 \3 \4 \5/p' "$dir/run.out")
  local kills
  kills=$(sed -n 's/^nemesis: \([0-9]*\) kills.*/\1/p' "$dir/run.out")
  local committed aborted info rate secs
  read -r committed aborted info rate secs <<<"$line"
  RESULTS+=("$(printf '%-14s %-8s %9s %9s %6s %10s %8.1f %5s  %-6s %s' "$name" \
    "$([ "$verdict" = true ] && echo valid || echo INVALID)" "$committed" "$aborted" "$info" "$rate" \
    "$secs" "${kills:--}" "$fsck" "${anomalies:-}")")
  if [ "$verdict" != true ] || [ "$rc" = 1 ]; then WORST=1; fi
  if [ "$fsck" = DAMAGED ]; then
    echo "$name: fsck.dbfs -n found damage:" >&2
    cat "$dir/fsck.out" >&2
    WORST=2
  fi
}

start=$SECONDS
run list-append
run nemesis-kill --durable --nemesis kill --kills "$KILLS"

echo
echo "Elle list-append, $CLIENTS clients x $OPS transactions per run ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs)"
printf '%-14s %-8s %9s %9s %6s %10s %8s %5s  %-6s %s\n' run verdict committed aborted info commits/s seconds kills fsck anomalies
for r in "${RESULTS[@]}"; do echo "$r"; done
echo "elle.sh: $((SECONDS - start)) s: $([ "$WORST" = 0 ] && echo PASS || echo FAIL)"
exit "$WORST"
