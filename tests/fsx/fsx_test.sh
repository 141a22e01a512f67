#!/usr/bin/env bash
# fsx on a real DBFS mount, CI-sized: two seeds of 20,000 operations each
# with every operation group DBFS supports, then fsck.dbfs -n -f of the
# unmounted volume. The long run (1,000,000 operations per seed) is
# bench/fsx.sh. FSX_OPS / FSX_SEEDS override the size.
source "$(dirname "$0")/../integration/lib.sh"

FSX=$DBFS_BIN_DIR/fsx
[ -x "$FSX" ] || die "fsx not found in $DBFS_BIN_DIR"
OPS=${FSX_OPS:-20000}
SEEDS=${FSX_SEEDS:-"1 2"}

dbfs_setup
for seed in $SEEDS; do
  log "fsx seed $seed, $OPS operations"
  "$FSX" -S "$seed" -N "$OPS" "$MNT/fsx.$seed" || die "fsx seed $seed failed"
done
dbfs_unmount
if [ "$DBFS_PLAIN" != 1 ]; then
  "$DBFS_BIN_DIR/fsck.dbfs" -n -f "$VOL" >>"$LOG" 2>&1 || die "fsck.dbfs -n -f found problems"
fi
dbfs_pass
