#!/usr/bin/env bash
# Long operations show progress on a terminal and stay quiet in pipes:
# fsck.dbfs and dbfs checkpoint print no carriage returns or escapes into a
# pipe; on a terminal (script(1) gives them one) fsck.dbfs draws its
# self-overwriting progress line on stderr and clears it at the end.
source "$(dirname "$0")/../integration/lib.sh"
[ "$DBFS_PLAIN" = 1 ] && skip "needs a DBFS mount"
require script
dbfs_setup
for i in $(seq 50); do echo "$i" >"$MNT/f$i"; done
"$DBFS_BIN_DIR/dbfs" checkpoint --mount "$MNT" >"$T/cp.out" 2>"$T/cp.err" || die "checkpoint failed"
grep -q $'[\r\033]' "$T/cp.out" "$T/cp.err" && die "dbfs checkpoint wrote terminal control into a pipe"
grep -q . "$T/cp.out" || die "dbfs checkpoint printed no report"
dbfs_unmount
"$DBFS_BIN_DIR/fsck.dbfs" -n -f "$VOL" >"$T/fsck.out" 2>"$T/fsck.err" || die "fsck failed"
grep -q $'[\r\033]' "$T/fsck.out" "$T/fsck.err" && die "fsck.dbfs wrote progress into a pipe"
grep -q clean "$T/fsck.out" || die "fsck report missing"
# On a terminal: the progress line (phase names) and its final clearing.
script -qec "$DBFS_BIN_DIR/fsck.dbfs -n -f $VOL" /dev/null >"$T/tty.out" 2>&1 || die "fsck on a tty failed"
grep -q $'\r\033\\[Kfsck.dbfs: ' "$T/tty.out" || die "no progress on a terminal: $(cat -v "$T/tty.out")"
grep -q clean "$T/tty.out" || die "no report on a terminal"
dbfs_mount
dbfs_pass
