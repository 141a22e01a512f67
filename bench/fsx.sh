#!/usr/bin/env bash
# Usage: bench/fsx.sh [--ops N] [--seeds "S1 S2"] [--procs P] [--stress-ops N] [--quick]
#
# The long conformance stress run (issue 12), each part on a fresh volume
# followed by fsck.dbfs -n -f of the unmounted volume:
#   1. fsx (tests/fsx/fsx.cc): N random operations per seed over one file,
#      every operation group DBFS supports on, a full compare after each;
#      the seeds run side by side, each on its own file. Default 1,000,000
#      operations x seeds 1 and 2.
#   2. fsstress (tests/fsx/fsstress.cc): P processes doing random namespace
#      and data operations in one shared tree, then every file read back.
#      Default 16 processes x 100,000 operations.
# --quick: 20,000 fsx operations, 8 x 5,000 stress operations.
# Exit 0 when everything passed, 1 on a failure (the fsx log names the seed
# and the last operations), 2 on a setup error.
# Environment: DBFS_BIN_DIR (default <repo>/build/bin).
source "$(dirname "$0")/../tests/integration/lib.sh"

OPS=1000000
SEEDS="1 2"
PROCS=16
STRESS_OPS=100000
while [ $# -gt 0 ]; do
  case "$1" in
    --ops) OPS=${2:?}; shift 2 ;;
    --seeds) SEEDS=${2:?}; shift 2 ;;
    --procs) PROCS=${2:?}; shift 2 ;;
    --stress-ops) STRESS_OPS=${2:?}; shift 2 ;;
    --quick) OPS=20000; PROCS=8; STRESS_OPS=5000; shift ;;
    *) echo "usage: $0 [--ops N] [--seeds \"S1 S2\"] [--procs P] [--stress-ops N] [--quick]" >&2; exit 2 ;;
  esac
done
for t in fsx fsstress fsck.dbfs; do
  [ -x "$DBFS_BIN_DIR/$t" ] || { echo "$DBFS_BIN_DIR/$t not found; build first" >&2; exit 2; }
done

fsck_full() {
  "$DBFS_BIN_DIR/fsck.dbfs" -n -f "$VOL" >>"$LOG" 2>&1 || die "fsck.dbfs -n -f found problems ($1)"
  log "fsck.dbfs -n -f clean after $1"
}

dbfs_setup
start=$SECONDS
pids=()
for seed in $SEEDS; do
  "$DBFS_BIN_DIR/fsx" -S "$seed" -N "$OPS" -p $((OPS / 10)) "$MNT/fsx.$seed" >"$T/fsx.$seed.log" 2>&1 &
  pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done
for seed in $SEEDS; do
  echo "---- fsx seed $seed ----"
  grep -v ' ops, size ' "$T/fsx.$seed.log" | tail -n 80
done
[ "$failed" = 0 ] || die "fsx failed"
log "fsx: $OPS operations x seeds $SEEDS passed in $((SECONDS - start)) s"
dbfs_unmount
fsck_full "fsx"

rm -rf "$VOL"
"$DBFS_BIN_DIR/mkfs.dbfs" -q "$VOL" >>"$LOG" 2>&1 || die "mkfs.dbfs failed"
dbfs_mount
start=$SECONDS
mkdir "$MNT/stress"
"$DBFS_BIN_DIR/fsstress" -p "$PROCS" -n "$STRESS_OPS" -S 1 "$MNT/stress" || die "fsstress failed"
log "fsstress: $PROCS x $STRESS_OPS operations passed in $((SECONDS - start)) s"
dbfs_unmount
fsck_full "fsstress"
dbfs_pass
